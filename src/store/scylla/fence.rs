//! The seq fence: a write's events take seqs `after + 1 ..= last` of their log, and before
//! the batch carrying them is sent the log's head (`logs.last_seq`) is moved from `after` to
//! `last` by a lightweight transaction (`advance_log`, `open_log` for a log's first write).
//! Only those transactions ever write the head, so:
//! - a seq range is reserved by one write only; a batch that times out and lands later
//!   fills only the seqs it had reserved, never those of a later write;
//! - a later write that expects the old head (an actor that did not see the ambiguous write
//!   land) is refused, with nothing written, by [`log_moved`]; the actor must reload;
//! - a repeat of a write already applied (its events stored, the head at its last seq) is
//!   recognised and answered as applied.
//!
//! A reservation still in flight is completed by the next transaction on the head (Paxos
//! finishes an accepted proposal before its own), so it cannot be overtaken either. The
//! price is one Paxos round on the head's partition per write that carries events
//! (docs/scylla.md, "The seq fence"). A reservation whose batch did not apply leaves a gap
//! of unused seqs unless it is known not to have applied, in which case it is rolled back.
//!
//! In cluster mode a write names its actor's owner epoch (`epochs.rs`), and the same
//! transaction checks it (`... IF last_seq = ? AND epoch = ?`): a refusal that shows another
//! epoch is [`StoreError::Fenced`], not a moved log, since the writer no longer owns the log.

use chorus_actors::StoreError;
use chorus_actors::push::event::StoredEvent;
use scylla::value::CqlValue;

use super::epochs::refused_epoch;
use super::keys::{LogKind, from_bigint, to_bigint};
use super::lwt::LwtAnswer;
use super::{ScyllaStore, backend};

/// The log position a write's events take.
#[derive(Debug, Clone)]
pub(super) struct Fence {
    kind: LogKind,
    owner: String,
    /// The head the write expects: its first seq − 1.
    after: u64,
    /// The head once the write is in: its last seq.
    last: u64,
    /// The write's events, to recognise a repeat of a write already applied.
    events: Vec<StoredEvent>,
    /// The writer's epoch of the log's actor (cluster mode): the reservation applies only
    /// while it is still the log's. `None` on a single node.
    pub(super) epoch: Option<u64>,
}

/// What a reservation found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reservation {
    /// The head moved from `after` to `last`: the batch may go.
    Taken,
    /// The head is at `last` and the log holds exactly this write's events: an earlier
    /// attempt of the same write applied.
    AlreadyApplied,
}

impl Fence {
    /// The fence of `events` (`None` without events). Seqs must be consecutive from 1 up:
    /// the fence reserves a range.
    pub(super) fn of(
        kind: LogKind,
        owner: &str,
        events: &[StoredEvent],
    ) -> Result<Option<Fence>, StoreError> {
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            return Ok(None);
        };
        let consecutive = events
            .iter()
            .zip(first.seq..)
            .all(|(event, seq)| event.seq == seq);
        if first.seq == 0 || !consecutive {
            return Err(StoreError::Backend(format!(
                "the events of one write to log {} must have consecutive seqs from 1 up",
                kind.key(owner)
            )));
        }
        to_bigint(last.seq, "seq")?;
        Ok(Some(Fence {
            kind,
            owner: owner.to_owned(),
            after: first.seq - 1,
            last: last.seq,
            events: events.to_vec(),
            epoch: None,
        }))
    }

    pub(super) fn log(&self) -> String {
        self.kind.key(&self.owner)
    }
}

/// The error of a write refused by the fence: the log's head is not where the write expected
/// it, because an earlier write the caller took for failed did land (or reserved its seqs),
/// or another writer appended. Nothing of the write was stored; its caller must reload the
/// owner from the store before writing again.
pub(super) fn log_moved(log: &str, expected: u64, head: Option<u64>) -> StoreError {
    StoreError::LogMoved {
        log: log.to_owned(),
        expected,
        head,
    }
}

impl ScyllaStore {
    /// Moves the head from `after` to `last`, or recognises the write as already applied;
    /// any other head refuses the write with [`log_moved`], and, when the write names an
    /// epoch, any other epoch with [`StoreError::Fenced`] (even for a repeat: the batch must
    /// not be sent again once another node owns the log). An error here (a timeout) means
    /// the batch was not sent, though the reservation itself may land.
    pub(super) async fn reserve(&self, fence: &Fence) -> Result<Reservation, StoreError> {
        let what = "reserving seqs";
        let log = fence.log();
        let (after, last) = (
            to_bigint(fence.after, "seq")?,
            to_bigint(fence.last, "seq")?,
        );
        let (st, log_key) = (&self.st, log.as_str());
        let answer = match (fence.after, fence.epoch) {
            (0, None) => {
                self.session
                    .execute_unpaged(&st.open_log, (log_key, last))
                    .await
            }
            (_, None) => {
                let values = (last, log_key, after);
                self.session.execute_unpaged(&st.advance_log, values).await
            }
            (0, Some(epoch)) => {
                let values = (last, log_key, to_bigint(epoch, "epoch")?);
                self.session
                    .execute_unpaged(&st.open_log_fenced, values)
                    .await
            }
            (_, Some(epoch)) => {
                let values = (last, log_key, after, to_bigint(epoch, "epoch")?);
                self.session
                    .execute_unpaged(&st.advance_log_fenced, values)
                    .await
            }
        }
        .map_err(|e| backend(what, e))?;
        let answer = LwtAnswer::of(answer, what)?;
        if answer.applied {
            return Ok(Reservation::Taken);
        }
        if let Some(epoch) = fence.epoch {
            refused_epoch(&answer, &log, epoch)?;
        }
        let head = match answer.column("last_seq") {
            Some(CqlValue::BigInt(seq)) => Some(from_bigint(*seq, &format!("logs/{log}"))?),
            _ => None,
        };
        if head == Some(fence.last) && self.holds(fence).await? {
            return Ok(Reservation::AlreadyApplied);
        }
        Err(log_moved(&log, fence.after, head))
    }

    /// Whether the log holds exactly the fence's events.
    async fn holds(&self, fence: &Fence) -> Result<bool, StoreError> {
        let read = match fence.kind {
            LogKind::Account => &self.st.read_events,
            LogKind::Group => &self.st.read_group_events,
        };
        let stored = self
            .read_log(
                fence.kind,
                read,
                &fence.owner,
                fence.after,
                fence.events.len(),
            )
            .await?;
        Ok(stored == fence.events)
    }

    /// Gives a reservation back after its batch surely did not apply (or was never sent), so
    /// the writer's next write finds the head where it left it. Only if the head is still at
    /// `last` (and, with an epoch, the epoch still the writer's): a head that moved on is left
    /// alone. Best effort: a failure leaves a gap of unused seqs (and the writer's next write
    /// is refused until it reloads). Answers the LWT's answer when there was one.
    pub(super) async fn roll_back(&self, fence: &Fence) -> Option<LwtAnswer> {
        let log = fence.log();
        let (Ok(last), Ok(after)) = (to_bigint(fence.last, "seq"), to_bigint(fence.after, "seq"))
        else {
            return None;
        };
        let epoch = fence
            .epoch
            .map(|e| to_bigint(e, "epoch"))
            .transpose()
            .ok()?;
        let (st, log_key) = (&self.st, log.as_str());
        let result = match (fence.after, epoch) {
            (0, None) => {
                self.session
                    .execute_unpaged(&st.drop_log, (log_key, last))
                    .await
            }
            (_, None) => {
                let values = (after, log_key, last);
                self.session.execute_unpaged(&st.advance_log, values).await
            }
            (0, Some(epoch)) => {
                let values = (log_key, last, epoch);
                self.session
                    .execute_unpaged(&st.drop_log_fenced, values)
                    .await
            }
            (_, Some(epoch)) => {
                let values = (after, log_key, last, epoch);
                self.session
                    .execute_unpaged(&st.advance_log_fenced, values)
                    .await
            }
        };
        let outcome = result
            .map_err(|e| backend("rolling back seqs", e))
            .and_then(|answer| LwtAnswer::of(answer, "rolling back seqs"));
        match outcome {
            Ok(answer) => {
                if !answer.applied {
                    tracing::warn!(%log, after = fence.after, last = fence.last,
                        "seq reservation not rolled back: the head (or its owner) moved on");
                }
                Some(answer)
            }
            Err(e) => {
                tracing::error!(%log, after = fence.after, last = fence.last, error = %e,
                    "seq reservation not rolled back; its seqs stay unused");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chorus_actors::push::event::{EventType, encode_event};

    use super::*;

    fn event(seq: u64) -> StoredEvent {
        encode_event(EventType::FRIEND_ADDED, seq, &seq)
    }

    #[test]
    fn a_fence_reserves_the_range_of_its_events() {
        let events: Vec<_> = (5..=7).map(event).collect();
        let fence = Fence::of(LogKind::Group, "g1", &events)
            .expect("valid")
            .expect("events");
        assert_eq!((fence.after, fence.last), (4, 7));
        assert_eq!(fence.log(), "g:g1");
        assert!(
            Fence::of(LogKind::Account, "a", &[])
                .expect("valid")
                .is_none()
        );
    }

    #[test]
    fn a_fence_needs_consecutive_seqs_from_one() {
        for seqs in [vec![0], vec![1, 3], vec![2, 1], vec![4, 4]] {
            let events: Vec<_> = seqs.iter().copied().map(event).collect();
            assert!(
                Fence::of(LogKind::Account, "a", &events).is_err(),
                "{seqs:?}"
            );
        }
    }

    #[test]
    fn the_refusal_says_what_to_do() {
        let err = log_moved("g:g1", 11, Some(12));
        assert!(matches!(err, StoreError::LogMoved { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("g:g1 is at 12, the write expected 11"),
            "{text}"
        );
        assert!(text.contains("reload"), "{text}");
    }
}
