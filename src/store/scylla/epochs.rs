//! Owner epochs (cluster mode): which node may write an actor. Each account, group and
//! community has an epoch in its `logs` row (`a:<id>`, `g:<id>`, `c:<id>`). A node that
//! takes an actor over claims it ([`ScyllaStore::claim`]: the epoch moves one up by
//! lightweight transaction), and every later write of that node names the epoch it got; the
//! store refuses a write whose epoch is no longer the row's ([`StoreError::Fenced`]), with
//! nothing of it stored. How a write is checked ([`ScyllaStore::clear`]):
//!
//! - with events, by the seq fence's own transaction (`fence.rs`: `... AND epoch = ?`);
//! - without events, by one transaction of its own before the batch, `UPDATE logs SET epoch
//!   = e WHERE log = ? IF epoch = e`: one more Paxos round for such writes;
//! - without an epoch (a single node), not at all: the statements of before.
//!
//! A fenced write takes its batch's timestamp before the check and gives up when the check
//! took longer than the store's bound (half the cluster's dead-after), so that a node paused
//! right after its check cannot land a batch long after another node took the actor over
//! (docs/scylla.md, "Owner epochs").

use std::time::{Duration, Instant};

use chorus_actors::StoreError;
use chorus_actors::place::ActorKind;
use scylla::policies::timestamp_generator::TimestampGenerator;
use scylla::value::CqlValue;

use super::fence::{Fence, Reservation};
use super::keys::{fits, from_bigint, owner_log, to_bigint};
use super::lwt::LwtAnswer;
use super::{ScyllaStore, backend};

/// The default of [`ScyllaStore::with_fence_bound`]: half the cluster's default dead-after
/// (3 s), so a write whose check answered later than that is not trusted to still own its
/// actor.
pub const DEFAULT_FENCE_BOUND: Duration = Duration::from_millis(1500);

/// Claim transactions tried before a claim gives up (each refusal answers the epoch to try
/// from, so only nodes claiming the same actor at the same moment need more than one).
const CLAIM_ATTEMPTS: usize = 4;

/// The epoch a write without events names, checked before its batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Held {
    pub(super) log: String,
    pub(super) epoch: u64,
}

impl Held {
    pub(super) fn new(kind: ActorKind, id: &str, epoch: u64) -> Held {
        Held {
            log: owner_log(kind, id),
            epoch,
        }
    }
}

/// What a write's check leaves for its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Cleared {
    /// The seq fence reserved the write's seqs just now (so the batch's outcome matters).
    pub(super) reserved: bool,
    /// The batch's client timestamp, taken before the check (fenced writes only).
    pub(super) timestamp: Option<i64>,
}

/// The refusal of a write that named `epoch` of `log`, which is at `now` (0: no epoch, as
/// for a row no claim made).
pub(super) fn fenced(log: &str, epoch: u64, now: u64) -> StoreError {
    StoreError::Fenced {
        log: log.to_owned(),
        epoch,
        now,
    }
}

/// The epoch a refused transaction's answer shows for `log`: 0 when the row, or its epoch,
/// is absent (Cassandra answers `[applied]` alone for an absent row).
fn epoch_shown(answer: &LwtAnswer, log: &str) -> Result<u64, StoreError> {
    match answer.column("epoch") {
        Some(CqlValue::BigInt(epoch)) => from_bigint(*epoch, &format!("logs/{log}")),
        _ => Ok(0),
    }
}

/// For a refused transaction of a write that named `epoch`: [`StoreError::Fenced`] if the
/// answer shows another epoch, `Ok` if it shows the same (the refusal is about something
/// else, the head).
pub(super) fn refused_epoch(answer: &LwtAnswer, log: &str, epoch: u64) -> Result<(), StoreError> {
    match epoch_shown(answer, log)? {
        now if now == epoch => Ok(()),
        now => Err(fenced(log, epoch, now)),
    }
}

impl ScyllaStore {
    /// The same store, refusing a fenced write whose check took longer than `bound` (from
    /// before its check to its answer): half the cluster's dead-after is right, the
    /// default is [`DEFAULT_FENCE_BOUND`]. Writes without an epoch are never refused by it.
    pub fn with_fence_bound(mut self, bound: Duration) -> ScyllaStore {
        self.fence_bound = bound;
        self
    }

    /// Takes `kind`/`id` over: reads its epoch, moves it one up by lightweight transaction
    /// (`IF epoch = old`, or `IF epoch = null` for the first claim, which makes the row),
    /// and on a refusal tries again from the epoch the refusal showed, a few times.
    pub(super) async fn claim(&self, kind: ActorKind, id: &str) -> Result<u64, StoreError> {
        let what = "claiming an owner epoch";
        let log = owner_log(kind, id);
        fits("logs", &log)?;
        let row: Option<(Option<i64>,)> = self
            .get_one(&self.st.get_epoch, (log.as_str(),), "reading epochs")
            .await?;
        let mut seen = match row.and_then(|(epoch,)| epoch) {
            Some(epoch) => from_bigint(epoch, &format!("logs/{log}"))?,
            None => 0,
        };
        for _ in 0..CLAIM_ATTEMPTS {
            let next = seen
                .checked_add(1)
                .ok_or_else(|| StoreError::Backend(format!("{log}: epoch {seen} is the last")))?;
            let next_value = to_bigint(next, "epoch")?;
            let answer = if seen == 0 {
                self.session
                    .execute_unpaged(&self.st.first_epoch, (next_value, log.as_str()))
                    .await
            } else {
                let values = (next_value, log.as_str(), to_bigint(seen, "epoch")?);
                self.session
                    .execute_unpaged(&self.st.move_epoch, values)
                    .await
            }
            .map_err(|e| backend(what, e))?;
            let answer = LwtAnswer::of(answer, what)?;
            if answer.applied {
                tracing::debug!(%log, epoch = next, "owner epoch claimed");
                return Ok(next);
            }
            seen = epoch_shown(&answer, &log)?;
        }
        Err(StoreError::Unavailable(format!(
            "{log}: its epoch moved under {CLAIM_ATTEMPTS} claims in a row (other nodes \
             claiming it at the same time)"
        )))
    }

    /// A write without events: its epoch must still be the row's (`SET epoch = e ... IF
    /// epoch = e`, which changes nothing when it applies).
    async fn check_epoch(&self, held: &Held) -> Result<(), StoreError> {
        let what = "checking an owner epoch";
        fits("logs", &held.log)?;
        let epoch = to_bigint(held.epoch, "epoch")?;
        let answer = self
            .session
            .execute_unpaged(&self.st.move_epoch, (epoch, held.log.as_str(), epoch))
            .await
            .map_err(|e| backend(what, e))?;
        let answer = LwtAnswer::of(answer, what)?;
        if answer.applied {
            return Ok(());
        }
        Err(fenced(
            &held.log,
            held.epoch,
            epoch_shown(&answer, &held.log)?,
        ))
    }

    /// Everything a batch must pass before it is sent: its seq fence (`fence`, a write with
    /// events), else its epoch check (`held`, a write without events that names an epoch),
    /// else nothing. A fenced write takes its batch's timestamp first and, when the check
    /// answered later than the bound, gives its reservation back and is refused as
    /// [`StoreError::Fenced`]: by then another node may own the actor. An `Err` means the
    /// batch must not be sent.
    pub(super) async fn clear(
        &self,
        fence: Option<&Fence>,
        held: Option<&Held>,
    ) -> Result<Cleared, StoreError> {
        let epoch = fence.and_then(|f| f.epoch).or(held.map(|h| h.epoch));
        let began = Instant::now();
        let timestamp = epoch.map(|_| self.clock.next_timestamp());
        let mut reserved = false;
        if let Some(fence) = fence {
            match self.reserve(fence).await? {
                Reservation::Taken => reserved = true,
                Reservation::AlreadyApplied => {
                    // Sent again (same rows): the acknowledgement then covers all of it.
                    tracing::info!(log = %fence.log(), "write already applied by an earlier attempt");
                }
            }
        } else if let Some(held) = held {
            self.check_epoch(held).await?;
        }
        let Some(epoch) = epoch.filter(|_| began.elapsed() > self.fence_bound) else {
            return Ok(Cleared {
                reserved,
                timestamp,
            });
        };
        let log = match (fence, held) {
            (Some(fence), _) => fence.log(),
            (None, Some(held)) => held.log.clone(),
            (None, None) => String::new(),
        };
        let undo = match (fence, reserved) {
            (Some(fence), true) => self.roll_back(fence).await,
            _ => None,
        };
        // The epoch an undo that did not apply found; else still the writer's.
        let now = match undo {
            Some(answer) if !answer.applied => epoch_shown(&answer, &log).unwrap_or(epoch),
            _ => epoch,
        };
        tracing::warn!(%log, epoch, now, elapsed_ms = began.elapsed().as_millis(),
            bound_ms = self.fence_bound.as_millis(),
            "write refused: its owner check answered too late to trust it (paused?)");
        Err(fenced(&log, epoch, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(epoch: Option<i64>) -> LwtAnswer {
        let mut names = vec!["[applied]".to_owned()];
        let mut values = vec![Some(CqlValue::Boolean(false))];
        if let Some(epoch) = epoch {
            names.extend(["last_seq".to_owned(), "epoch".to_owned()]);
            values.extend([Some(CqlValue::BigInt(4)), Some(CqlValue::BigInt(epoch))]);
        }
        LwtAnswer::read(names, values).expect("an answer")
    }

    #[test]
    fn a_refusal_showing_another_epoch_is_fenced() {
        assert!(refused_epoch(&answer(Some(3)), "g:x", 3).is_ok());
        match refused_epoch(&answer(Some(4)), "g:x", 3) {
            Err(StoreError::Fenced { log, epoch, now }) => {
                assert_eq!((log.as_str(), epoch, now), ("g:x", 3, 4));
            }
            other => panic!("expected Fenced, got {other:?}"),
        }
        // No row (or no epoch in it): no claim was made, so no write may name an epoch.
        assert!(matches!(
            refused_epoch(&answer(None), "g:x", 3),
            Err(StoreError::Fenced { now: 0, .. })
        ));
    }

    #[test]
    fn an_epoch_lives_in_its_actors_log_row() {
        assert_eq!(Held::new(ActorKind::Community, "c1", 2).log, "c:c1");
        assert_eq!(Held::new(ActorKind::Account, "a1", 2).log, "a:a1");
    }
}
