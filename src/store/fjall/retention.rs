//! Event-log retention on the embedded store (`--log-retention-days`).
//!
//! fjall has no per-key expiry, and an event's key (`id \0 seq`) says nothing of its time. So
//! every write that appends events also writes, per log it touches, a *mark*: `log_marks`
//! key `bucket ms ++ tag ++ id` -> the newest seq of that log written in that time bucket
//! (buckets are a sixteenth of the retention, between a second and an hour, so a log has at
//! most a few dozen live marks). A mark whose bucket ended before the horizon says "every
//! event of this log below this seq is older than the horizon" (so an event is kept at least
//! the retention, and at most a bucket and a sweep interval longer): the sweep
//! ([`FjallStore::trim`]) removes those events and the mark, a bounded batch at a time,
//! through the writer like any write. The marked event itself stays, so every log keeps its
//! newest event, which is where its head (the next seq) is read from.
//!
//! Logs written before marks existed keep their events until they are written to again.

use chorus_actors::StoreError;
use std::collections::BTreeMap;
use std::time::Duration;

use super::encode::{EncodedWrite, Op};
use super::keys::{IDS, Keyspaces, KsId, event_key, fits};
use super::{FjallStore, backend};

/// Most removals one sweep write carries.
const TRIM_BATCH: usize = 10_000;

/// A log's tag in a mark: an account's or a group's.
const ACCOUNT: u8 = b'a';
const GROUP: u8 = b'g';

/// The time bucket of marks for a retention: a sixteenth of it, from 1 s to 1 h.
pub(super) fn mark_every(retention: Duration) -> u64 {
    let ms = u64::try_from((retention / 16).as_millis()).unwrap_or(u64::MAX);
    ms.clamp(1_000, 3_600_000)
}

fn mark_key(bucket_ms: u64, tag: u8, id: &[u8]) -> Vec<u8> {
    let mut key = bucket_ms.to_be_bytes().to_vec();
    key.push(tag);
    key.extend_from_slice(id);
    key
}

impl EncodedWrite {
    /// Marks every log this write appends to, in the bucket of `now_ms`.
    pub(super) fn mark_logs(&mut self, now_ms: u64, every: u64) {
        let bucket = now_ms - now_ms % every.max(1);
        let mut newest: BTreeMap<(u8, Vec<u8>), u64> = BTreeMap::new();
        for op in &self.ops {
            let Op::Put(ks, key, _) = op else { continue };
            let tag = match *ks {
                k if k == IDS.events => ACCOUNT,
                k if k == IDS.group_events => GROUP,
                _ => continue,
            };
            // `id \0 seq`: the id is all but the last nine bytes.
            let Some(split) = key.len().checked_sub(9) else {
                continue;
            };
            let (id, rest) = key.split_at(split);
            let Some(seq) = rest.get(1..).and_then(|s| s.try_into().ok()) else {
                continue;
            };
            let seq = u64::from_be_bytes(seq);
            let entry = newest.entry((tag, id.to_vec())).or_default();
            *entry = (*entry).max(seq);
        }
        for ((tag, id), seq) in newest {
            self.ops.push(Op::Put(
                IDS.log_marks,
                mark_key(bucket, tag, &id),
                seq.to_be_bytes().to_vec(),
            ));
        }
    }
}

/// One sweep write: the removals of the marks whose bucket ended by `horizon_ms` (at most
/// [`TRIM_BATCH`] of them) and how many were events. A mark is removed only once all its
/// events are in the write.
fn plan(ks: &Keyspaces, horizon_ms: u64, every: u64) -> Result<(EncodedWrite, usize), StoreError> {
    let mut out = EncodedWrite::default();
    let mut events = 0usize;
    // Only buckets that ended by the horizon: a mark's events were written before its
    // bucket's end.
    let end = horizon_ms
        .saturating_sub(every)
        .saturating_add(1)
        .to_be_bytes();
    for mark in ks.log_marks.range(..end.as_slice()) {
        let (key, value) = mark.into_inner().map_err(backend)?;
        let (Some(&tag), Some(id), Ok(seq)) = (
            key.get(8),
            key.get(9..),
            <[u8; 8]>::try_from(value.as_ref()).map(u64::from_be_bytes),
        ) else {
            tracing::error!(mark = ?key, "skipping an undecodable log mark");
            out.ops.push(Op::Remove(IDS.log_marks, key.to_vec()));
            continue;
        };
        let (log, log_id): (&fjall::Keyspace, KsId) = match tag {
            GROUP => (&ks.group_events, IDS.group_events),
            _ => (&ks.events, IDS.events),
        };
        let id = String::from_utf8_lossy(id);
        let (from, to) = (event_key(&id, 0), event_key(&id, seq));
        fits(log, &to)?;
        let mut whole = true;
        for item in log.range(from..to) {
            if out.ops.len() >= TRIM_BATCH {
                whole = false;
                break;
            }
            out.ops
                .push(Op::Remove(log_id, item.key().map_err(backend)?.to_vec()));
            events += 1;
        }
        if !whole {
            break;
        }
        out.ops.push(Op::Remove(IDS.log_marks, key.to_vec()));
        if out.ops.len() >= TRIM_BATCH {
            break;
        }
    }
    Ok((out, events))
}

impl FjallStore {
    /// Removes every event older than `horizon_ms` that a mark covers, a batch at a time;
    /// answers how many went.
    pub(super) async fn trim(&self, horizon_ms: u64) -> Result<usize, StoreError> {
        let Some(every) = self.mark_every else {
            return Ok(0);
        };
        let mut total = 0;
        loop {
            let (write, events) = self.read(move |ks| plan(ks, horizon_ms, every)).await?;
            if write.ops.is_empty() {
                return Ok(total);
            }
            let full = write.ops.len() >= TRIM_BATCH;
            self.submit(write).await?;
            total += events;
            if !full {
                return Ok(total);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_a_sixteenth_of_the_retention_within_bounds() {
        assert_eq!(mark_every(Duration::from_secs(2)), 1_000);
        assert_eq!(mark_every(Duration::from_secs(160)), 10_000);
        assert_eq!(mark_every(Duration::from_secs(30 * 24 * 3600)), 3_600_000);
    }
}
