//! The embedded store's keyspaces and how their keys are built. Ids are hex, so `\0` never
//! occurs inside one and `id \0` is a prefix no other id shares; numbers in keys are
//! big-endian `u64`, so they sort numerically.
//!
//! - `accounts`: `id` -> JSON [`AccountRecord`](chorus_actors::model::AccountRecord)
//! - `edges`: `id \0 tag other` -> opaque value
//! - `claims`: claim text -> owning account id
//! - `sessions`: first 16 bytes of a bearer token's SHA-256 -> last 16 bytes ++ issued ms ++
//!   account id (the keyspace `tokens` of earlier versions, without an issue time, is moved
//!   here on open, as issued then, and deleted: `upgrade.rs`)
//! - `events`: `id \0 seq` -> frame text
//! - `groups`: `gid` -> JSON `GroupRecord`; `group_members`: `gid \0 account` -> empty;
//!   `member_groups`: `account \0 gid` -> empty, the same membership the other way round,
//!   always written in the same batch
//! - `binding_requests`: `gid \0 request id` -> JSON
//! - `bindings_by_group`: `gid \0 cid` and `bindings_by_community`: `cid \0 gid` -> JSON
//!   `Binding`, always written together in one batch
//! - `messages`: `gid \0 ms message id` -> JSON; `group_events`: `gid \0 seq` -> frame
//! - `communities`: `cid` -> JSON; `community_members`: `cid \0 account` -> empty
//! - `dynamics`: `cid \0 ms dynamic id` -> JSON (a page is one reverse range scan)
//! - `server_keys`: first 16 bytes of the key's SHA-256 -> last 16 bytes ++ community id
//! - `activities`: `activity id` -> JSON `ActivityRecord`; `activity_feed`: `account \0 ms
//!   activity id` -> the same JSON (a page is one reverse range scan); `activity_keys`:
//!   `account \0 idempotency key` -> activity id
//! - `deliveries` (the releases; the name is the stored one): `activity id \0 link id` -> JSON
//!   `ReleaseRecord`; `outbox`: the same keys, present exactly while the release is not final
//!   (what a restart carries on with)
//! - `steps`: step id (time-ordered) -> JSON `StepRecord`, the outbox of cross-actor steps
//! - `log_marks`: `bucket ms ++ tag ++ id` -> the newest seq of that account (`a`) or group
//!   (`g`) log written in that time bucket, what retention trims by (`retention.rs`)

use chorus_actors::StoreError;
use chorus_actors::store::{EdgeKind, TokenGrant};
use fjall::{Database, Keyspace, KeyspaceCreateOptions};

use super::backend;

/// Longest key the engine takes. lsm-tree asserts `u16::try_from(key.len())` wherever it
/// builds an internal key (a write, and each bound of a range or prefix scan), and fjall's
/// write batch asserts the same: a longer key panics the thread that passes it (the writer
/// thread, or an actor's). Every key is checked against it before it reaches the engine.
pub(super) const MAX_KEY: usize = u16::MAX as usize;

/// `key`, if the engine takes it; [`StoreError::KeyTooLong`] naming `ks` otherwise.
pub(super) fn fits<'k>(ks: &Keyspace, key: &'k [u8]) -> Result<&'k [u8], StoreError> {
    if key.len() <= MAX_KEY {
        Ok(key)
    } else {
        Err(StoreError::KeyTooLong {
            table: ks.name().to_string(),
            len: key.len(),
            max: MAX_KEY,
        })
    }
}

/// Declares the keyspaces once: the struct of handles, the names they are opened under, and
/// the ids a write names them by ([`KsId`], [`IDS`]). A queued write carries ids, not
/// handles, so the writer applies it to the keyspaces it has open now, even if it reopened
/// the database after a disk failure while the write waited.
macro_rules! keyspaces {
    ($($name:ident),* $(,)?) => {
        /// Handles on every keyspace (cheap to clone: each is an `Arc`).
        #[derive(Clone)]
        pub(super) struct Keyspaces {
            $(pub(super) $name: Keyspace,)*
        }

        /// The id of every keyspace, by the same field names as [`Keyspaces`] (some, like
        /// `claims`, only the writer writes, by handle).
        #[allow(dead_code)]
        pub(super) struct KsIds {
            $(pub(super) $name: KsId,)*
        }

        /// The ids, numbered in declaration order.
        #[allow(unused_assignments)]
        pub(super) const IDS: KsIds = {
            let mut next = 0;
            KsIds {
                $($name: {
                    let id = KsId(next);
                    next += 1;
                    id
                },)*
            }
        };

        impl Keyspaces {
            /// Opens (or creates) every keyspace of `db`, each under its field's name.
            pub(super) fn open(db: &Database) -> Result<Self, StoreError> {
                Ok(Keyspaces {
                    $($name: db
                        .keyspace(stringify!($name), KeyspaceCreateOptions::default)
                        .map_err(backend)?,)*
                })
            }

            /// The keyspace `id` names.
            pub(super) fn get(&self, id: KsId) -> &Keyspace {
                [$(&self.$name),*][id.0]
            }
        }
    };
}

/// A keyspace, named by its place in [`keyspaces!`] (only [`IDS`] makes them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct KsId(usize);

keyspaces!(
    accounts,
    edges,
    claims,
    sessions,
    events,
    groups,
    group_members,
    binding_requests,
    bindings_by_group,
    bindings_by_community,
    messages,
    group_events,
    communities,
    community_members,
    dynamics,
    server_keys,
    activities,
    activity_feed,
    activity_keys,
    deliveries,
    outbox,
    steps,
    member_groups,
    log_marks,
);

/// `id \0`: the prefix of every key an owner has in a keyspace.
pub(super) fn id_prefix(id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(id.len() + 1);
    key.extend_from_slice(id.as_bytes());
    key.push(0);
    key
}

/// `id \0 tag other`.
pub(super) fn edge_key(id: &str, kind: EdgeKind, other: &str) -> Vec<u8> {
    let mut key = id_prefix(id);
    key.push(kind.tag());
    key.extend_from_slice(other.as_bytes());
    key
}

/// `id \0 seq`.
pub(super) fn event_key(id: &str, seq: u64) -> Vec<u8> {
    let mut key = id_prefix(id);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The seq at the end of an [`event_key`].
pub(super) fn seq_of(key: &[u8]) -> Option<u64> {
    let tail = key.get(key.len().checked_sub(8)?..)?;
    tail.try_into().ok().map(u64::from_be_bytes)
}

/// `a \0 b`.
pub(super) fn pair_key(a: &str, b: &str) -> Vec<u8> {
    let mut key = id_prefix(a);
    key.extend_from_slice(b.as_bytes());
    key
}

/// `id \0 ms item`: a feed entry, ordered by time, then item id.
pub(super) fn feed_key(id: &str, ms: u64, item: &str) -> Vec<u8> {
    let mut key = id_prefix(id);
    key.extend_from_slice(&ms.to_be_bytes());
    key.extend_from_slice(item.as_bytes());
    key
}

/// A selector/verifier index entry (server keys): the first half of the hash is the key, the
/// second half (compared in constant time on lookup) and the owner the value.
pub(super) fn hash_entry(hash: &[u8; 32], owner: &str) -> (Vec<u8>, Vec<u8>) {
    let (selector, verifier) = hash.split_at(16);
    let mut value = verifier.to_vec();
    value.extend_from_slice(owner.as_bytes());
    (selector.to_vec(), value)
}

/// A token's index entry: like [`hash_entry`], with the issue time (8 bytes, big-endian)
/// between the verifier and the owner.
pub(super) fn token_entry(grant: &TokenGrant, owner: &str) -> (Vec<u8>, Vec<u8>) {
    let (selector, verifier) = grant.hash.split_at(16);
    let mut value = verifier.to_vec();
    value.extend_from_slice(&grant.issued_ms.to_be_bytes());
    value.extend_from_slice(owner.as_bytes());
    (selector.to_vec(), value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_their_own_keyspace() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Database::builder(dir.path()).open().expect("open");
        let ks = Keyspaces::open(&db).expect("keyspaces");
        let (accounts, outbox): (&str, &str) =
            (ks.get(IDS.accounts).name(), ks.get(IDS.outbox).name());
        assert_eq!((accounts, outbox), ("accounts", "outbox"));
    }

    #[test]
    fn event_keys_sort_numerically() {
        assert!(event_key("a", 255) < event_key("a", 256));
        assert_eq!(seq_of(&event_key("a", 300)), Some(300));
        // An account id that is a prefix of another never shares its key range.
        assert!(!event_key("ab", 1).starts_with(&id_prefix("a")));
    }
}
