//! Reads, straight from the keyspaces: fjall is safe to read concurrently and every read sees
//! each batch the writer committed, whole or not at all.

use bytestring::ByteString;
use chorus_actors::StoreError;
use chorus_actors::model::{FeedPos, ReleaseRecord, StepRecord};
use chorus_actors::push::event::StoredEvent;
use chorus_actors::store::{Edge, EdgeKind, SubscriberSnapshot, TokenOwner};
use fjall::Keyspace;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use super::backend;
use super::keys::{Keyspaces, event_key, feed_key, fits, id_prefix, seq_of};
use crate::store::json::decode;

/// The value under `key`, decoded.
pub(super) fn get<T: DeserializeOwned>(ks: &Keyspace, key: &str) -> Result<Option<T>, StoreError> {
    match ks.get(fits(ks, key.as_bytes())?).map_err(backend)? {
        Some(bytes) => Ok(Some(decode(key, &bytes)?)),
        None => Ok(None),
    }
}

/// Every value under `prefix`, decoded.
pub(super) fn scan<T: DeserializeOwned>(
    ks: &Keyspace,
    prefix: &[u8],
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    for item in ks.prefix(fits(ks, prefix)?) {
        let (key, value) = item.into_inner().map_err(backend)?;
        out.push(decode(&String::from_utf8_lossy(&key), &value)?);
    }
    Ok(out)
}

/// The ids after `prefix` of every key under it (member lists).
pub(super) fn scan_ids(ks: &Keyspace, prefix: &[u8]) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    for item in ks.prefix(fits(ks, prefix)?) {
        let key = item.key().map_err(backend)?;
        let rest = key.get(prefix.len()..).unwrap_or_default();
        out.push(String::from_utf8_lossy(rest).into_owned());
    }
    Ok(out)
}

/// Newest-first page of a time-ordered feed under `id`: keys at or after `since_ms` and
/// strictly before `before`.
pub(super) fn feed_page<T: DeserializeOwned>(
    ks: &Keyspace,
    id: &str,
    since_ms: u64,
    before: Option<&FeedPos>,
    limit: usize,
) -> Result<Vec<T>, StoreError> {
    let start = feed_key(id, since_ms, "");
    let end = match before {
        Some(pos) => feed_key(id, pos.ms, &pos.id),
        None => feed_key(id, u64::MAX, ""),
    };
    fits(ks, &start)?;
    fits(ks, &end)?;
    let mut out = Vec::new();
    for item in ks.range(start..end).rev().take(limit) {
        let (key, value) = item.into_inner().map_err(backend)?;
        out.push(decode(&String::from_utf8_lossy(&key), &value)?);
    }
    Ok(out)
}

/// Events of `id`'s log with `seq > after`, oldest first.
pub(super) fn read_log(
    ks: &Keyspace,
    id: &str,
    after: u64,
    limit: usize,
) -> Result<Vec<StoredEvent>, StoreError> {
    let start = event_key(id, after.saturating_add(1));
    let end = event_key(id, u64::MAX);
    fits(ks, &end)?;
    let mut out = Vec::new();
    for item in ks.range(start..=end).take(limit) {
        let (key, value) = item.into_inner().map_err(backend)?;
        let seq = seq_of(&key).ok_or_else(|| StoreError::Corrupt {
            key: id.to_owned(),
            reason: "event key without seq".into(),
        })?;
        let frame = ByteString::try_from(bytes::Bytes::copy_from_slice(&value)).map_err(|e| {
            StoreError::Corrupt {
                key: format!("{id}/{seq}"),
                reason: e.to_string(),
            }
        })?;
        out.push(StoredEvent { seq, frame });
    }
    Ok(out)
}

/// The newest seq of `id`'s log (0 when empty).
pub(super) fn last_seq(ks: &Keyspace, id: &str) -> Result<u64, StoreError> {
    Ok(match ks.prefix(fits(ks, &id_prefix(id))?).next_back() {
        Some(item) => seq_of(&item.key().map_err(backend)?).unwrap_or(0),
        None => 0,
    })
}

/// Looks up a selector/verifier hash index (tokens, server keys); the verifier half is
/// compared in constant time. Answers what follows the verifier.
fn find_hash_value(ks: &Keyspace, hash: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
    let (selector, verifier) = hash.split_at(16);
    let Some(value) = ks.get(selector).map_err(backend)? else {
        return Ok(None);
    };
    let (stored, rest) = value.split_at(16.min(value.len()));
    Ok(bool::from(stored.ct_eq(verifier)).then(|| rest.to_vec()))
}

/// The owner a server key's hash names.
pub(super) fn find_hash(ks: &Keyspace, hash: &[u8; 32]) -> Result<Option<String>, StoreError> {
    Ok(find_hash_value(ks, hash)?.map(|owner| String::from_utf8_lossy(&owner).into_owned()))
}

/// The account a token's hash names, and when it was issued ([`super::keys::token_entry`]).
pub(super) fn find_token(ks: &Keyspace, hash: &[u8; 32]) -> Result<Option<TokenOwner>, StoreError> {
    let Some(rest) = find_hash_value(ks, hash)? else {
        return Ok(None);
    };
    let (issued, owner) = rest.split_at(8.min(rest.len()));
    let issued_ms = issued
        .try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Corrupt {
            key: "sessions".into(),
            reason: "token entry without its issue time".into(),
        })?;
    Ok(Some(TokenOwner {
        account: String::from_utf8_lossy(owner).into_owned(),
        issued_ms,
    }))
}

/// An account's record, every edge it has, and its log's newest seq.
pub(super) fn load_subscriber(
    ks: &Keyspaces,
    id: &str,
) -> Result<Option<SubscriberSnapshot>, StoreError> {
    let Some(record) = get(&ks.accounts, id)? else {
        return Ok(None);
    };
    let prefix = id_prefix(id);
    let mut edges = Vec::new();
    for item in ks.edges.prefix(fits(&ks.edges, &prefix)?) {
        let (key, value) = item.into_inner().map_err(backend)?;
        let rest = key.get(prefix.len()..).unwrap_or_default();
        let Some((&tag, other)) = rest.split_first() else {
            continue;
        };
        let (Some(kind), Ok(other)) = (EdgeKind::from_tag(tag), std::str::from_utf8(other)) else {
            tracing::error!(account = %id, "skipping undecodable edge key");
            continue;
        };
        edges.push(Edge {
            kind,
            other: other.to_owned(),
            value: value.to_vec(),
        });
    }
    Ok(Some(SubscriberSnapshot {
        record,
        edges,
        last_seq: last_seq(&ks.events, id)?,
    }))
}

/// Every release in the outbox (not final), read from `deliveries`.
pub(super) fn pending_releases(ks: &Keyspaces) -> Result<Vec<ReleaseRecord>, StoreError> {
    let mut out = Vec::new();
    for item in ks.outbox.iter() {
        let key = item.key().map_err(backend)?;
        match ks.deliveries.get(&key).map_err(backend)? {
            Some(bytes) => out.push(decode(&String::from_utf8_lossy(&key), &bytes)?),
            None => tracing::error!(
                key = %String::from_utf8_lossy(&key),
                "outbox entry without its delivery; skipped"
            ),
        }
    }
    Ok(out)
}

/// The oldest `limit` steps of the outbox of cross-actor steps (keys are time-ordered ids).
pub(super) fn pending_steps(ks: &Keyspaces, limit: usize) -> Result<Vec<StepRecord>, StoreError> {
    let mut out = Vec::new();
    for item in ks.steps.iter().take(limit) {
        let (key, value) = item.into_inner().map_err(backend)?;
        out.push(decode(&String::from_utf8_lossy(&key), &value)?);
    }
    Ok(out)
}
