//! The commit protocol: claims by lightweight transaction, everything else in one logged
//! batch, claims given up last; writes admitted through a gate that `close` shuts. Why each step is
//! as it is, and what an acknowledgement guarantees: docs/scylla.md, "Writes and what an
//! acknowledgement means".

use std::sync::Arc;

use chorus_actors::StoreError;
use chorus_actors::model::Claim;
use chorus_actors::store::SubscriberWrite;
use scylla::errors::{DbError, ExecutionError, RequestAttemptError, WriteType};
use scylla::statement::batch::{Batch, BatchType};
use scylla::value::{CqlValue, Row};

use super::rows::BatchRows;
use super::{ScyllaStore, backend};

/// Attempts at a claim release before it is given up (and logged).
const RELEASE_ATTEMPTS: usize = 3;

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

    /// One account write: claims, then the batch, then claims given up (docs/scylla.md).
    async fn apply_account_write(&self, write: SubscriberWrite) -> Result<(), StoreError> {
        let account = write.account.as_str();
        // Encode everything before taking any claim: a record that fails to encode must not
        // leave claims behind.
        let rows = self.subscriber_rows(&write)?;
        let taken = self.take_claims(&write).await?;
        if !rows.rows.is_empty() {
            // Fresh claims make the outcome matter: no blind driver retries then.
            let idempotent = taken.is_empty();
            if let Err(failure) = self.run_batch(rows, idempotent).await {
                match failure.outcome {
                    BatchOutcome::NotApplied => self.give_back(account, &taken).await,
                    outcome => {
                        if !taken.is_empty() {
                            tracing::error!(%account, claims = ?taken, ?outcome,
                                "write outcome unknown or pending; its claims stay held");
                        }
                    }
                }
                tracing::error!(%account, outcome = ?failure.outcome, error = %failure.message,
                    "account write failed");
                return Err(StoreError::Backend(failure.message));
            }
        }
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
        let rows = self
            .session
            .execute_unpaged(&self.st.take_claim, (claim, account))
            .await
            .map_err(|e| backend(what, e))?
            .into_rows_result()
            .map_err(|e| backend(what, e))?;
        // Scylla answers `[applied]` plus every column (null when applied); Cassandra only
        // `[applied]` when applied. Columns are found by name to read either.
        let specs = rows.column_specs();
        let applied_at = specs.get_by_name("[applied]").map_or(0, |(i, _)| i);
        let owner_at = specs.get_by_name("owner").map(|(i, _)| i);
        let row: Row = rows.single_row().map_err(|e| backend(what, e))?;
        let column = |i: usize| row.columns.get(i).and_then(Option::as_ref);
        let applied = column(applied_at)
            .and_then(CqlValue::as_boolean)
            .ok_or_else(|| backend(what, "answer without [applied]"))?;
        if applied {
            return Ok(ClaimOutcome::Taken);
        }
        match owner_at.and_then(column).and_then(CqlValue::as_text) {
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

    async fn run_batch(&self, rows: BatchRows<'_>, idempotent: bool) -> Result<(), BatchFailure> {
        let mut batch = Batch::new(BatchType::Logged);
        let mut values = Vec::with_capacity(rows.rows.len());
        for (ps, row) in rows.rows {
            batch.append_statement(ps.clone());
            values.push(row);
        }
        batch.set_consistency(self.consistency);
        batch.set_is_idempotent(idempotent);
        match self.session.batch(&batch, values).await {
            Ok(_) => Ok(()),
            Err(e) => Err(BatchFailure {
                outcome: batch_outcome(&e),
                message: format!("scylla write failed: {e}"),
            }),
        }
    }

    /// A batch without claims: nothing to undo when it fails.
    pub(super) async fn write_rows(
        &self,
        rows: BatchRows<'_>,
        owner: &str,
    ) -> Result<(), StoreError> {
        if rows.rows.is_empty() {
            return Ok(());
        }
        self.run_batch(rows, true).await.map_err(|f| {
            tracing::error!(%owner, outcome = ?f.outcome, error = %f.message, "write failed");
            StoreError::Backend(f.message)
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
enum BatchOutcome {
    /// Rejected before anything was written.
    NotApplied,
    /// In the coordinator's batch log: it will be applied.
    WillApply,
    /// Unknown (a timeout, a lost connection).
    Unknown,
}

struct BatchFailure {
    outcome: BatchOutcome,
    message: String,
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
}
