//! Event-log retention: the sweep that trims old events (engines that expire events by
//! themselves do nothing in it), and the rule that tells a reader it asked for events from
//! before the horizon: `resync_required` (409 over HTTP, an error frame on the WebSocket).
//!
//! **The rule.** A reader that has every event up to `since` asks for the ones after it. Its
//! read starts one event early, at `since` itself (when `since >= 1`): if event `since` is
//! still stored, nothing after it can have been trimmed (trimming removes a log's oldest
//! events first); if it is gone, the first event returned must be `since + 1`, and if none
//! is returned the log's head must not be past `since`. Otherwise events the reader never
//! saw were trimmed, and it must reload its state. (On the CQL store
//! a seq can be skipped, docs/api.md; the rule errs on the side of `resync_required` only
//! when `since` itself is gone as well, which a reader that saw event `since` does not meet
//! unless that event expired.)

use std::time::Duration;

use super::Chorus;
use crate::error::{Error, Result};
use crate::model::caps::RESYNC_REQUIRED;
use crate::model::now_ms;
use crate::push::event::StoredEvent;

/// The error of a read from before the horizon.
fn resync_required() -> Error {
    Error::conflict(
        RESYNC_REQUIRED,
        "events after this seq are no longer kept: reload the state and go on from the newest",
    )
}

/// Where a read that checks the horizon starts, and how many to ask for: one early, so the
/// reader's own last event is among them.
pub(super) fn checked_read(since: u64, limit: usize) -> (u64, usize) {
    match since {
        0 => (0, limit),
        n => (n - 1, limit + 1),
    }
}

/// The events after `since` of a read made with [`checked_read`], at most `limit`, or
/// `resync_required` when some were trimmed. `head` is the log's newest seq, looked at only
/// when the read found nothing (an engine that expires events by itself may have taken
/// every one of them, the newest too).
pub(super) fn after_horizon(
    since: u64,
    mut page: Vec<StoredEvent>,
    limit: usize,
    head: u64,
) -> Result<Vec<StoredEvent>> {
    match page.first().map(|e| e.seq) {
        None if head > since => return Err(resync_required()),
        None => return Ok(page),
        Some(first) if since >= 1 && first == since => {
            page.remove(0);
        }
        Some(first) if first == since + 1 => {}
        Some(_) => return Err(resync_required()),
    }
    page.truncate(limit);
    Ok(page)
}

impl Chorus {
    /// With a retention, trims the logs now and then: every sixteenth of the retention
    /// (from once a second to once an hour), in the background for as long as the domain
    /// runs. Nothing without one.
    pub(super) fn start_trimming(&self) {
        let Some(retention) = self.directory.env().config.caps.log_retention else {
            return;
        };
        let every = (retention / 16).clamp(Duration::from_secs(1), Duration::from_secs(3600));
        let store = self.store().clone();
        let horizon_ms = u64::try_from(retention.as_millis()).unwrap_or(u64::MAX);
        actix::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match store.trim_logs(now_ms().saturating_sub(horizon_ms)).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(events = n, "event logs trimmed"),
                    Err(e) => tracing::warn!(error = %e, "trimming event logs failed; next time"),
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytestring::ByteString;

    fn events(seqs: &[u64]) -> Vec<StoredEvent> {
        seqs.iter()
            .map(|&seq| StoredEvent {
                seq,
                frame: ByteString::from_static("{}"),
            })
            .collect()
    }

    fn seqs(page: Result<Vec<StoredEvent>>) -> Option<Vec<u64>> {
        page.ok().map(|p| p.iter().map(|e| e.seq).collect())
    }

    #[test]
    fn a_read_past_the_readers_last_event_is_whole_or_refused() {
        let check = |since, page: &[u64], limit, head| {
            seqs(after_horizon(since, events(page), limit, head))
        };
        // Event `since` is kept: what follows is whole.
        assert_eq!(check(5, &[5, 6, 7], 10, 7), Some(vec![6, 7]));
        // Event `since` trimmed, the next one kept: nothing is missing.
        assert_eq!(check(5, &[6, 7], 10, 7), Some(vec![6, 7]));
        // Events the reader never saw are gone.
        assert_eq!(check(5, &[9, 10], 10, 10), None);
        assert_eq!(check(0, &[3], 10, 3), None);
        assert_eq!(check(0, &[1, 2], 10, 2), Some(vec![1, 2]));
        // Every event after `since` expired, the newest too.
        assert_eq!(check(5, &[], 10, 7), None);
        // Nothing after `since`: nothing to miss.
        assert_eq!(check(5, &[], 10, 5), Some(vec![]));
        assert_eq!(check(5, &[5], 10, 0), Some(vec![]));
        // The extra event read early does not cost the page an event.
        assert_eq!(checked_read(5, 2), (4, 3));
        assert_eq!(check(5, &[5, 6, 7], 2, 0), Some(vec![6, 7]));
        assert_eq!(check(5, &[6, 7, 8], 2, 0), Some(vec![6, 7]));
    }
}
