//! The commit protocol: claims by lightweight transaction, the seq fence (`fence.rs`),
//! everything else in one logged batch, claims given up last; writes admitted through a gate that
//! `close` shuts. Why each step is
//! as it is, and what an acknowledgement guarantees: docs/scylla.md, "Writes and what an
//! acknowledgement means".

use std::sync::Arc;

use chorus_actors::StoreError;
use chorus_actors::model::Claim;
use chorus_actors::store::{LogAppend, SubscriberWrite};
use futures_util::{StreamExt, stream};
use scylla::errors::{DbError, ExecutionError, RequestAttemptError, WriteType};
use scylla::statement::batch::{Batch, BatchType};
use scylla::value::CqlValue;

use super::keys::fits;
use super::lwt::LwtAnswer;
use super::rows::BatchRows;
use super::{ScyllaStore, backend};

/// Attempts at a claim release before it is given up (and logged).
const RELEASE_ATTEMPTS: usize = 3;

/// How many accounts' appends of one [`ScyllaStore::append_logs`] are in flight at once:
/// enough to keep the cluster busy, few enough not to queue thousands of Paxos rounds.
const APPEND_CONCURRENCY: usize = 256;

impl ScyllaStore {
    /// An account write, admitted through the gate. One that takes or gives up claims spans
    /// several requests, so it runs on a task of its own and finishes even if its caller is
    /// dropped (docs/scylla.md).
    pub(super) async fn commit_account(&self, write: SubscriberWrite) -> Result<(), StoreError> {
        let admitted = self.gate.enter().await?;
        if write.claims.is_empty() && write.unclaims.is_empty() {
            // One batch: dropped half way, it either was sent or was not, and was never
            // acknowledged either way.
            let result = self.apply_account_write(write).await;
            drop(admitted);
            return result;
        }
        // Claims, batch and give-ups are separate requests: run them to the end on a task of
        // their own, whatever happens to the caller, holding the admission until done.
        let store = self.share();
        self.runtime
            .spawn(async move {
                let result = store.apply_account_write(write).await;
                drop(admitted);
                result
            })
            .await
            .map_err(|e| backend("account write task", e))?
    }

    /// Many accounts' log appends: each its own fenced write (`fence.rs`), as an account write
    /// of events alone would be, [`APPEND_CONCURRENCY`] at a time. Not atomic across accounts:
    /// a logged batch over thousands of partitions would pass the batch size limit and load
    /// one coordinator with all of it; each account's append is atomic, which is what its log
    /// needs (docs/scylla.md, "Appends to many logs").
    pub(super) async fn append_logs(&self, appends: Vec<LogAppend>) -> Vec<Result<(), StoreError>> {
        stream::iter(appends)
            .map(|append| {
                let mut write = SubscriberWrite::new(&append.account);
                write.events = append.events;
                write.epoch = append.epoch;
                self.commit_account(write)
            })
            .buffered(APPEND_CONCURRENCY)
            .collect()
            .await
    }

    /// One account write: claims, then the fenced batch, then claims given up (docs/scylla.md).
    async fn apply_account_write(&self, write: SubscriberWrite) -> Result<(), StoreError> {
        let account = write.account.as_str();
        // Encode everything before taking any claim: a record that fails to encode, or a key
        // the cluster would refuse, must not leave claims behind.
        let rows = self.subscriber_rows(&write)?;
        for Claim(claim) in write.claims.iter().chain(&write.unclaims) {
            fits("claims", claim)?;
        }
        let taken = self.take_claims(&write).await?;
        self.write_rows(rows, &taken, account).await?;
        for Claim(claim) in &write.unclaims {
            if write.claims.iter().any(|c| &c.0 == claim) {
                // Released and claimed in one write: the claim wins, as in the embedded store.
                continue;
            }
            if let Err(e) = self.release(claim, account).await {
                tracing::error!(%account, %claim, error = %e,
                    "claim release failed after the write landed; the claim stays held");
            }
        }
        Ok(())
    }

    // ---- claims -------------------------------------------------------------------------

    /// One claim's lightweight transaction.
    async fn take_claim(&self, claim: &str, account: &str) -> Result<ClaimOutcome, StoreError> {
        let what = "taking a claim";
        let answer = self
            .session
            .execute_unpaged(&self.st.take_claim, (claim, account))
            .await
            .map_err(|e| backend(what, e))?;
        // Columns are found by name: Cassandra answers `[applied]` alone when applied and the
        // current row when not; ScyllaDB every column each time (`lwt.rs`).
        let answer = LwtAnswer::of(answer, what)?;
        if answer.applied {
            return Ok(ClaimOutcome::Taken);
        }
        match answer.column("owner").and_then(CqlValue::as_text) {
            Some(owner) if owner == account => Ok(ClaimOutcome::AlreadyOurs),
            _ => Ok(ClaimOutcome::HeldByOther),
        }
    }

    /// Takes every claim of `write` in order. On a claim held by another account, gives back
    /// the ones taken here and answers [`StoreError::ClaimTaken`].
    async fn take_claims(&self, write: &SubscriberWrite) -> Result<Vec<String>, StoreError> {
        let account = write.account.as_str();
        let mut taken: Vec<String> = Vec::new();
        for Claim(claim) in &write.claims {
            if taken.contains(claim) {
                continue;
            }
            match self.take_claim(claim, account).await {
                Ok(ClaimOutcome::Taken) => taken.push(claim.clone()),
                Ok(ClaimOutcome::AlreadyOurs) => {}
                Ok(ClaimOutcome::HeldByOther) => {
                    self.give_back(account, &taken).await;
                    return Err(StoreError::ClaimTaken(claim.clone()));
                }
                Err(e) => {
                    // This claim's transaction may or may not have applied, and the account
                    // may have held it before: it is left as it is (at worst held by this
                    // account), and only the claims known to be taken here are given back.
                    self.give_back(account, &taken).await;
                    return Err(e);
                }
            }
        }
        Ok(taken)
    }

    /// Deletes `claim` if `account` holds it; retried, since the condition makes a repeat
    /// harmless.
    async fn release(&self, claim: &str, account: &str) -> Result<(), StoreError> {
        let mut last = None;
        for _ in 0..RELEASE_ATTEMPTS {
            match self
                .session
                .execute_unpaged(&self.st.release_claim, (claim, account))
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(e) => backend("releasing a claim", e),
            None => backend("releasing a claim", "no attempt made"),
        })
    }

    /// Best-effort undo of claims this write took.
    async fn give_back(&self, account: &str, claims: &[String]) {
        for claim in claims {
            if let Err(e) = self.release(claim, account).await {
                tracing::error!(%account, %claim, error = %e,
                    "claim taken by a failed write could not be given back; it stays held");
            }
        }
    }

    // ---- batches ------------------------------------------------------------------------

    /// Sends `rows` as one logged batch, at client `timestamp` when given (a fenced write
    /// takes it before its check: `epochs.rs`), else at the session clock's next one.
    pub(super) async fn run_batch(
        &self,
        rows: BatchRows<'_>,
        idempotent: bool,
        timestamp: Option<i64>,
    ) -> Result<(), BatchFailure> {
        crate::metrics::store_batch("scylla", rows.rows.len(), None);
        let mut batch = Batch::new(BatchType::Logged);
        let mut values = Vec::with_capacity(rows.rows.len());
        for (ps, row) in rows.rows {
            batch.append_statement(ps.clone());
            values.push(row);
        }
        batch.set_consistency(self.consistency);
        batch.set_is_idempotent(idempotent);
        batch.set_timestamp(timestamp);
        match self.session.batch(&batch, values).await {
            Ok(_) => Ok(()),
            Err(e) => Err(BatchFailure {
                outcome: batch_outcome(&e),
                unavailable: unavailable(&e),
                message: format!("scylla write failed: {e}"),
            }),
        }
    }

    /// A change set's batch, behind its seq fence when it carries events (`fence.rs`) and
    /// its owner check when it names an epoch (`epochs.rs`). `taken` are the claims this
    /// write has just taken: they are given back when nothing of the write can land. A fresh
    /// claim or a fresh reservation makes the batch's outcome matter, so the batch then goes
    /// without blind driver retries.
    pub(super) async fn write_rows(
        &self,
        mut rows: BatchRows<'_>,
        taken: &[String],
        owner: &str,
    ) -> Result<(), StoreError> {
        if rows.rows.is_empty() {
            return Ok(());
        }
        let _timer = crate::metrics::CommitTimer::new("scylla");
        let fence = rows.fence.take();
        let held = rows.held.take();
        let cleared = match self.clear(fence.as_ref(), held.as_ref()).await {
            Ok(cleared) => cleared,
            Err(e) => {
                // The batch was not sent: nothing of the write can land.
                self.give_back(owner, taken).await;
                if matches!(e, StoreError::Fenced { .. }) {
                    tracing::warn!(%owner, error = %e, "write refused: fenced");
                } else {
                    tracing::error!(%owner, error = %e, "write refused or failed at its seq fence");
                }
                return Err(e);
            }
        };
        let reserved = cleared.reserved;
        let idempotent = taken.is_empty() && !reserved;
        let Err(failure) = self.run_batch(rows, idempotent, cleared.timestamp).await else {
            return Ok(());
        };
        match failure.outcome {
            BatchOutcome::NotApplied => {
                if let (Some(fence), true) = (&fence, reserved) {
                    self.roll_back(fence).await;
                }
                self.give_back(owner, taken).await;
            }
            outcome => {
                if !taken.is_empty() {
                    tracing::error!(%owner, claims = ?taken, ?outcome,
                        "write outcome unknown or pending; its claims stay held");
                }
            }
        }
        tracing::error!(%owner, outcome = ?failure.outcome, error = %failure.message,
            "write failed");
        Err(if failure.unavailable {
            StoreError::Unavailable(failure.message)
        } else {
            StoreError::Backend(failure.message)
        })
    }
}

/// Admits writes until closed; closing waits until every admitted write has finished (or
/// been dropped), like the embedded store's close, which answers after the writes queued
/// before it. The lock is fair: once `close` waits, later writes wait too and then find the
/// gate closed.
#[derive(Clone)]
pub(super) struct WriteGate {
    open: Arc<tokio::sync::RwLock<bool>>,
}

impl WriteGate {
    pub(super) fn new() -> Self {
        WriteGate {
            open: Arc::new(tokio::sync::RwLock::new(true)),
        }
    }

    /// Admission of one write, held until the write is over.
    pub(super) async fn enter(
        &self,
    ) -> Result<tokio::sync::OwnedRwLockReadGuard<bool>, StoreError> {
        let admitted = Arc::clone(&self.open).read_owned().await;
        if *admitted {
            Ok(admitted)
        } else {
            Err(StoreError::Backend("store is closed".into()))
        }
    }

    /// Stops admitting writes; returns once the admitted ones are over.
    pub(super) async fn close(&self) {
        *self.open.write().await = false;
    }
}

enum ClaimOutcome {
    /// This transaction took it.
    Taken,
    /// The account held it already.
    AlreadyOurs,
    HeldByOther,
}

/// What a failed batch means for the rows it carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BatchOutcome {
    /// Rejected before anything was written.
    NotApplied,
    /// In the coordinator's batch log: it will be applied.
    WillApply,
    /// Unknown (a timeout, a lost connection).
    Unknown,
}

pub(super) struct BatchFailure {
    pub(super) outcome: BatchOutcome,
    /// The cluster could not serve it for now ([`unavailable`]).
    pub(super) unavailable: bool,
    pub(super) message: String,
}

/// Whether a failed request is the cluster's passing state rather than a bug or bad data:
/// too few replicas, a timeout, an overloaded or bootstrapping node, no connection. A client
/// is told to come back (503 `unavailable`, `Retry-After`); whether a timed-out write landed
/// is the caller's business ([`batch_outcome`]).
pub(super) fn unavailable(e: &ExecutionError) -> bool {
    match e {
        ExecutionError::ConnectionPoolError(_) | ExecutionError::RequestTimeout(_) => true,
        ExecutionError::LastAttemptError(attempt) => match attempt {
            RequestAttemptError::DbError(db, _) => matches!(
                db,
                DbError::Unavailable { .. }
                    | DbError::ReadTimeout { .. }
                    | DbError::WriteTimeout { .. }
                    | DbError::Overloaded
                    | DbError::IsBootstrapping
            ),
            RequestAttemptError::BrokenConnectionError(_)
            | RequestAttemptError::UnableToAllocStreamId => true,
            _ => false,
        },
        _ => false,
    }
}

/// Reads a batch error. Only the last attempt's error is visible, which is why a batch whose
/// outcome matters (one guarded by fresh claims) is sent non-idempotent: the driver then
/// retries only after attempts that surely did not apply.
fn batch_outcome(e: &ExecutionError) -> BatchOutcome {
    match e {
        ExecutionError::BadQuery(_)
        | ExecutionError::EmptyPlan
        | ExecutionError::PrepareError(_)
        | ExecutionError::ConnectionPoolError(_) => BatchOutcome::NotApplied,
        ExecutionError::LastAttemptError(attempt) => match attempt {
            RequestAttemptError::SerializationError(_)
            | RequestAttemptError::CqlRequestSerialization(_)
            | RequestAttemptError::UnableToAllocStreamId => BatchOutcome::NotApplied,
            RequestAttemptError::DbError(db, _) => match db {
                DbError::Unavailable { .. }
                | DbError::Invalid
                | DbError::SyntaxError
                | DbError::Unauthorized
                | DbError::ConfigError
                | DbError::IsBootstrapping
                | DbError::Unprepared { .. } => BatchOutcome::NotApplied,
                DbError::WriteTimeout {
                    write_type: WriteType::Batch,
                    ..
                } => BatchOutcome::WillApply,
                _ => BatchOutcome::Unknown,
            },
            _ => BatchOutcome::Unknown,
        },
        _ => BatchOutcome::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use scylla::statement::Consistency;

    use super::*;

    #[tokio::test]
    async fn close_waits_for_admitted_writes_and_refuses_later_ones() {
        let gate = WriteGate::new();
        let admitted = gate.enter().await.expect("open gate admits");
        let closing = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.close().await })
        };
        // The write in flight holds the close back...
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(
            !closing.is_finished(),
            "close returned before a write ended"
        );
        // ...and a write arriving meanwhile waits, then finds the gate closed.
        let late = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.enter().await.map(drop) })
        };
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!late.is_finished(), "a write slipped past a waiting close");
        drop(admitted);
        closing.await.expect("close");
        assert!(matches!(
            late.await.expect("join"),
            Err(StoreError::Backend(_))
        ));
        assert!(gate.enter().await.is_err(), "closed gate admits nothing");
    }

    #[test]
    fn only_certain_failures_count_as_not_applied() {
        let unavailable = ExecutionError::LastAttemptError(RequestAttemptError::DbError(
            DbError::Unavailable {
                consistency: Consistency::LocalQuorum,
                required: 2,
                alive: 1,
            },
            "down".into(),
        ));
        assert_eq!(batch_outcome(&unavailable), BatchOutcome::NotApplied);
        let logged = ExecutionError::LastAttemptError(RequestAttemptError::DbError(
            DbError::WriteTimeout {
                consistency: Consistency::LocalQuorum,
                received: 1,
                required: 2,
                write_type: WriteType::Batch,
            },
            "slow".into(),
        ));
        assert_eq!(batch_outcome(&logged), BatchOutcome::WillApply);
        let batchlog = ExecutionError::LastAttemptError(RequestAttemptError::DbError(
            DbError::WriteTimeout {
                consistency: Consistency::LocalQuorum,
                received: 0,
                required: 2,
                write_type: WriteType::BatchLog,
            },
            "slow".into(),
        ));
        assert_eq!(batch_outcome(&batchlog), BatchOutcome::Unknown);
        assert_eq!(
            batch_outcome(&ExecutionError::RequestTimeout(Duration::from_secs(1))),
            BatchOutcome::Unknown
        );
        assert_eq!(
            batch_outcome(&ExecutionError::EmptyPlan),
            BatchOutcome::NotApplied
        );
    }

    /// Too few replicas, timeouts and overload answer 503 (`StoreError::Unavailable`); a bad
    /// statement stays a 500.
    #[test]
    fn the_clusters_passing_states_are_unavailable_not_backend_failures() {
        let db = |e: DbError| {
            ExecutionError::LastAttemptError(RequestAttemptError::DbError(e, "x".into()))
        };
        let unavailable_now = [
            db(DbError::Unavailable {
                consistency: Consistency::LocalQuorum,
                required: 2,
                alive: 1,
            }),
            db(DbError::WriteTimeout {
                consistency: Consistency::LocalQuorum,
                received: 1,
                required: 2,
                write_type: WriteType::Batch,
            }),
            db(DbError::Overloaded),
            ExecutionError::RequestTimeout(Duration::from_secs(1)),
        ];
        for e in &unavailable_now {
            assert!(unavailable(e), "{e}");
        }
        for e in [
            db(DbError::SyntaxError),
            db(DbError::Invalid),
            ExecutionError::EmptyPlan,
        ] {
            assert!(!unavailable(&e), "{e}");
        }
        assert!(matches!(
            super::super::backend(
                "writing",
                ExecutionError::RequestTimeout(Duration::from_secs(1))
            ),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            super::super::backend("writing", "something else"),
            StoreError::Backend(_)
        ));
    }
}
