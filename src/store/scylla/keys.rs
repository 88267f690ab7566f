//! Pure key computations of the ScyllaDB store: which partition an item goes to, and how
//! keys and numbers become column values and back. No I/O here, so all of it is unit-tested
//! without a cluster.

use chorus_actors::StoreError;
use chorus_actors::place::ActorKind;
use chorus_actors::store::EdgeKind;

/// Width of one feed partition: a day. A busy feed then splits into one partition per day,
/// and a page of recent items reads one or two partitions.
pub const FEED_BUCKET_MS: u64 = 86_400_000;

/// Events per event-log partition. Seqs have no gaps, so a log of n events spans
/// `n / EVENT_BUCKET + 1` partitions and a reader knows every one of them from the last seq.
pub const EVENT_BUCKET: u64 = 4096;

/// Shards of the outbox. The outbox is read as a whole only at startup; spreading it keeps
/// each shard's partition small while a listing stays a fixed number of queries.
pub const OUTBOX_SHARDS: i32 = 16;

/// Longest key the cluster takes: Cassandra and ScyllaDB refuse a partition key (all its
/// components together) or a clustering column value over 65,535 bytes with `InvalidRequest`.
/// Every key is checked against it before a statement carrying it is sent.
pub const MAX_KEY: usize = u16::MAX as usize;

/// `key`'s length, if the cluster takes it; [`StoreError::KeyTooLong`] naming `table`
/// otherwise.
pub fn fits(table: &str, key: &str) -> Result<(), StoreError> {
    if key.len() <= MAX_KEY {
        Ok(())
    } else {
        Err(StoreError::KeyTooLong {
            table: table.to_owned(),
            len: key.len(),
            max: MAX_KEY,
        })
    }
}

/// The day bucket of a feed item created at `ms`.
pub fn feed_bucket(ms: u64) -> i64 {
    // u64::MAX / FEED_BUCKET_MS fits in i64 with room to spare.
    (ms / FEED_BUCKET_MS) as i64
}

/// The partition bucket of event `seq`.
pub fn event_bucket(seq: u64) -> i64 {
    // u64::MAX / 4096 < i64::MAX.
    (seq / EVENT_BUCKET) as i64
}

/// The three feeds; each names its rows `<prefix><owner id>` so the shared `feed_buckets`
/// index keeps them apart even when two owners share an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedKind {
    /// A group's chat messages.
    Messages,
    /// A community's dynamics.
    Dynamics,
    /// An account's activities.
    Activities,
}

impl FeedKind {
    #[cfg(test)]
    pub const ALL: [FeedKind; 3] = [FeedKind::Messages, FeedKind::Dynamics, FeedKind::Activities];

    pub fn prefix(self) -> &'static str {
        match self {
            FeedKind::Messages => "m:",
            FeedKind::Dynamics => "d:",
            FeedKind::Activities => "a:",
        }
    }

    /// The feed key of `owner`'s feed of this kind.
    pub fn key(self, owner: &str) -> String {
        format!("{}{owner}", self.prefix())
    }
}

/// The two event logs; the `logs` table keys each owner's last seq as `<prefix><owner id>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind {
    Account,
    Group,
}

impl LogKind {
    pub fn prefix(self) -> &'static str {
        match self {
            LogKind::Account => "a:",
            LogKind::Group => "g:",
        }
    }

    pub fn key(self, owner: &str) -> String {
        format!("{}{owner}", self.prefix())
    }
}

/// The `logs` row that holds `kind`/`id`'s owner epoch: `<token>:<id>`, the same row as its
/// event log's head for accounts (`a:`) and groups (`g:`), and a row of its own (`c:`) for a
/// community, which has no event log.
pub fn owner_log(kind: ActorKind, id: &str) -> String {
    format!("{}:{id}", kind.token())
}

/// The outbox shard of an activity: FNV-1a (64 bit) of its id, modulo [`OUTBOX_SHARDS`].
/// Written here rather than taken from `std::hash` because it must never change between
/// builds: a row written under one shard must be found there by every later version.
pub fn outbox_shard(activity_id: &str) -> i32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in activity_id.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // The remainder is below OUTBOX_SHARDS, so it fits in i32.
    (hash % OUTBOX_SHARDS as u64) as i32
}

/// An edge kind as stored in the `kind` column: its one-byte tag as a one-letter string.
pub fn edge_kind_text(kind: EdgeKind) -> String {
    char::from(kind.tag()).to_string()
}

/// The inverse of [`edge_kind_text`].
pub fn edge_kind_of(text: &str) -> Option<EdgeKind> {
    match text.as_bytes() {
        [tag] => EdgeKind::from_tag(*tag),
        _ => None,
    }
}

/// A `u64` of the domain (seq, ms) as a CQL `bigint`. Values above `i64::MAX` are refused
/// rather than wrapped, so they can never sort before smaller ones.
pub fn to_bigint(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Backend(format!("{what} {value} is out of range")))
}

/// A stored `bigint` back to the domain's `u64`.
pub fn from_bigint(value: i64, key: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt {
        key: key.to_owned(),
        reason: format!("negative value {value}"),
    })
}

/// A cursor position as a bound: positions beyond the bigint range are beyond every row.
pub fn bound_ms(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// A row limit as CQL `LIMIT ?` takes it (an `int`).
pub fn limit_value(limit: usize) -> i32 {
    i32::try_from(limit).unwrap_or(i32::MAX)
}

/// Splits a token or server-key hash into the selector (row key) and verifier (compared in
/// constant time), as the embedded store does.
pub fn split_hash(hash: &[u8; 32]) -> (Vec<u8>, Vec<u8>) {
    let (selector, verifier) = hash.split_at(16);
    (selector.to_vec(), verifier.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_over_the_cluster_limit_are_refused() {
        assert!(fits("claims", &"a".repeat(MAX_KEY)).is_ok());
        assert!(matches!(
            fits("claims", &"a".repeat(MAX_KEY + 1)),
            Err(StoreError::KeyTooLong { len: 65_536, .. })
        ));
    }

    #[test]
    fn day_buckets_split_at_midnight_utc() {
        assert_eq!(feed_bucket(0), 0);
        assert_eq!(feed_bucket(FEED_BUCKET_MS - 1), 0);
        assert_eq!(feed_bucket(FEED_BUCKET_MS), 1);
        // 2024-01-01T00:00:00Z is day 19723.
        assert_eq!(feed_bucket(1_704_067_200_000), 19_723);
        assert_eq!(feed_bucket(1_704_067_199_999), 19_722);
        assert!(feed_bucket(u64::MAX) > 0, "never wraps negative");
    }

    #[test]
    fn event_buckets_hold_4096_seqs() {
        assert_eq!(event_bucket(0), 0);
        assert_eq!(event_bucket(1), 0);
        assert_eq!(event_bucket(EVENT_BUCKET - 1), 0);
        assert_eq!(event_bucket(EVENT_BUCKET), 1);
        assert_eq!(event_bucket(3 * EVENT_BUCKET + 5), 3);
        assert!(event_bucket(u64::MAX) > 0);
    }

    #[test]
    fn outbox_shard_is_stable_and_in_range() {
        // Pinned values: changing the hash would orphan every stored outbox row.
        assert_eq!(outbox_shard(""), (0xcbf2_9ce4_8422_2325u64 % 16) as i32);
        assert_eq!(outbox_shard("act1"), outbox_shard("act1"));
        let mut seen = std::collections::HashSet::new();
        for n in 0..1000 {
            let shard = outbox_shard(&format!("{n:032x}"));
            assert!((0..OUTBOX_SHARDS).contains(&shard));
            seen.insert(shard);
        }
        assert_eq!(
            seen.len(),
            OUTBOX_SHARDS as usize,
            "spreads over every shard"
        );
    }

    #[test]
    fn fnv1a_matches_reference_vectors() {
        // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c.
        assert_eq!(outbox_shard("a"), (0xaf63_dc4c_8601_ec8cu64 % 16) as i32);
    }

    #[test]
    fn feed_and_log_keys_are_distinct() {
        let prefixes: Vec<_> = FeedKind::ALL.iter().map(|k| k.prefix()).collect();
        for (i, a) in prefixes.iter().enumerate() {
            for b in &prefixes[i + 1..] {
                assert_ne!(a, b);
                assert!(!a.starts_with(b) && !b.starts_with(a));
            }
        }
        assert_ne!(FeedKind::Messages.key("x"), FeedKind::Dynamics.key("x"));
        assert_eq!(FeedKind::Activities.key("p1"), "a:p1");
        assert_ne!(LogKind::Account.key("x"), LogKind::Group.key("x"));
    }

    #[test]
    fn an_owner_epoch_lives_in_its_log_row() {
        assert_eq!(
            owner_log(ActorKind::Account, "x"),
            LogKind::Account.key("x")
        );
        assert_eq!(owner_log(ActorKind::Group, "x"), LogKind::Group.key("x"));
        assert_eq!(owner_log(ActorKind::Community, "x"), "c:x");
    }

    #[test]
    fn edge_kinds_round_trip_through_text() {
        for kind in EdgeKind::ALL {
            assert_eq!(edge_kind_of(&edge_kind_text(kind)), Some(kind));
        }
        assert_eq!(edge_kind_of("x"), None);
        assert_eq!(edge_kind_of("ff"), None);
        assert_eq!(edge_kind_of(""), None);
    }

    #[test]
    fn bigint_conversions_refuse_to_wrap() {
        assert_eq!(to_bigint(5, "seq").unwrap(), 5);
        assert!(matches!(
            to_bigint(u64::MAX, "seq"),
            Err(StoreError::Backend(_))
        ));
        assert!(matches!(
            from_bigint(-1, "k"),
            Err(StoreError::Corrupt { .. })
        ));
        assert_eq!(bound_ms(u64::MAX), i64::MAX);
        assert_eq!(limit_value(usize::MAX), i32::MAX);
        let (sel, ver) = split_hash(&[[1u8; 16], [2u8; 16]].concat().try_into().unwrap());
        assert_eq!((sel, ver), (vec![1u8; 16], vec![2u8; 16]));
    }
}
