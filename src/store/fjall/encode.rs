//! A change set turned into bytes on the caller's side, before it is queued: every record is
//! encoded here, so an encode failure fails that write alone and the writer only ever sees
//! writes it can apply whole.

use chorus_actors::StoreError;
use chorus_actors::model::{Claim, StepRecord};
use chorus_actors::store::{CommunityWrite, EdgeChange, GroupWrite, LogAppend, SubscriberWrite};
use serde::Serialize;

use super::keys::{
    Keyspaces, KsId, KsIds, edge_key, event_key, feed_key, fits, hash_entry, pair_key, token_entry,
};
use crate::store::json;

/// One key of one keyspace, set or removed.
pub(super) enum Op {
    Put(KsId, Vec<u8>, Vec<u8>),
    Remove(KsId, Vec<u8>),
}

/// The claims a subscriber write takes and gives up; the writer decides them against every
/// other write, so they stay unresolved until then.
pub(super) struct ClaimChanges {
    pub(super) account: String,
    pub(super) take: Vec<Claim>,
    pub(super) give_up: Vec<Claim>,
}

/// One write, ready for the writer.
#[derive(Default)]
pub(super) struct EncodedWrite {
    /// `None` for writes without claims (groups, communities).
    pub(super) claims: Option<ClaimChanges>,
    /// Applied in order.
    pub(super) ops: Vec<Op>,
}

impl EncodedWrite {
    /// Every key of the write, its claims too, within what the engine takes
    /// ([`super::keys::MAX_KEY`]); [`StoreError::KeyTooLong`] for the first that is not.
    pub(super) fn check_keys(&self, ks: &Keyspaces) -> Result<(), StoreError> {
        for op in &self.ops {
            match op {
                Op::Put(id, key, _) | Op::Remove(id, key) => fits(ks.get(*id), key)?,
            };
        }
        if let Some(claims) = &self.claims {
            for claim in claims.take.iter().chain(&claims.give_up) {
                fits(&ks.claims, claim.0.as_bytes())?;
            }
        }
        Ok(())
    }

    fn put(&mut self, ks: &KsId, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(Op::Put(*ks, key.into(), value.into()));
    }

    fn remove(&mut self, ks: &KsId, key: impl Into<Vec<u8>>) {
        self.ops.push(Op::Remove(*ks, key.into()));
    }

    /// Puts `value` as JSON; an encode failure fails the whole write.
    pub(super) fn put_json<T: Serialize>(
        &mut self,
        ks: &KsId,
        key: Vec<u8>,
        value: &T,
    ) -> Result<(), StoreError> {
        let bytes = json::encode(&key.escape_ascii().to_string(), value)?;
        self.put(ks, key, bytes);
        Ok(())
    }

    /// An account's write (its claims are left to the writer).
    pub(super) fn subscriber(ks: &KsIds, w: &SubscriberWrite) -> Result<Self, StoreError> {
        let id = w.account.as_str();
        let mut out = EncodedWrite {
            claims: Some(ClaimChanges {
                account: w.account.clone(),
                take: w.claims.clone(),
                give_up: w.unclaims.clone(),
            }),
            ops: Vec::new(),
        };
        if let Some(record) = &w.record {
            out.put_json(&ks.accounts, id.as_bytes().to_vec(), record)?;
        }
        for change in &w.edges {
            match change {
                EdgeChange::Put(edge) => out.put(
                    &ks.edges,
                    edge_key(id, edge.kind, &edge.other),
                    edge.value.as_slice(),
                ),
                EdgeChange::Delete { kind, other } => {
                    out.remove(&ks.edges, edge_key(id, *kind, other));
                }
            }
        }
        for grant in &w.tokens {
            let (selector, value) = token_entry(grant, id);
            out.put(&ks.sessions, selector, value);
        }
        for selector in &w.tokens_revoked {
            out.remove(&ks.sessions, selector.0.to_vec());
        }
        for event in &w.events {
            out.put(
                &ks.events,
                event_key(id, event.seq),
                event.frame.as_bytes().as_ref(),
            );
        }
        for a in &w.activities {
            out.put_json(&ks.activities, a.activity_id.as_bytes().to_vec(), a)?;
            out.put_json(
                &ks.activity_feed,
                feed_key(id, a.created_ms, &a.activity_id),
                a,
            )?;
            if let Some(key) = &a.idempotency_key {
                out.put(
                    &ks.activity_keys,
                    pair_key(id, key),
                    a.activity_id.as_bytes(),
                );
            }
        }
        for d in &w.outbox {
            let key = pair_key(&d.activity_id, &d.link.link_id);
            out.put_json(&ks.deliveries, key.clone(), d)?;
            if d.status.is_final() {
                out.remove(&ks.outbox, key);
            } else {
                out.put(&ks.outbox, key, b"".as_slice());
            }
        }
        out.put_steps(ks, &w.steps)?;
        Ok(out)
    }

    /// Steps of the operation a write starts, stored under their ids.
    fn put_steps(&mut self, ks: &KsIds, steps: &[StepRecord]) -> Result<(), StoreError> {
        for step in steps {
            self.put_json(&ks.steps, step.step_id.as_bytes().to_vec(), step)?;
        }
        Ok(())
    }

    /// A step settled: removed, or replaced by what is left of it.
    pub(super) fn settle(
        ks: &KsIds,
        step_id: &str,
        rest: Option<&StepRecord>,
    ) -> Result<Self, StoreError> {
        let mut out = EncodedWrite::default();
        match rest {
            Some(rest) if rest.step_id == step_id => {
                out.put_steps(ks, std::slice::from_ref(rest))?;
            }
            rest => {
                out.remove(&ks.steps, step_id.as_bytes());
                if let Some(rest) = rest {
                    out.put_steps(ks, std::slice::from_ref(rest))?;
                }
            }
        }
        Ok(out)
    }

    /// Many accounts' log appends as one write (one batch, one sync), without claims.
    pub(super) fn appends(ks: &KsIds, appends: &[LogAppend]) -> Self {
        let mut out = EncodedWrite {
            claims: None,
            ops: Vec::with_capacity(appends.iter().map(|a| a.events.len()).sum()),
        };
        for append in appends {
            for event in &append.events {
                out.put(
                    &ks.events,
                    event_key(&append.account, event.seq),
                    event.frame.as_bytes().as_ref(),
                );
            }
        }
        out
    }

    /// A group's write: both sides of every binding change go in it.
    pub(super) fn group(ks: &KsIds, w: &GroupWrite) -> Result<Self, StoreError> {
        let gid = w.group_id.as_str();
        let mut out = EncodedWrite::default();
        if let Some(record) = &w.record {
            out.put_json(&ks.groups, gid.as_bytes().to_vec(), record)?;
        }
        // Membership both ways: the account -> groups index rides in the same batch.
        for m in &w.members_add {
            out.put(&ks.group_members, pair_key(gid, m), b"".as_slice());
            out.put(&ks.member_groups, pair_key(m, gid), b"".as_slice());
        }
        for m in &w.members_remove {
            out.remove(&ks.group_members, pair_key(gid, m));
            out.remove(&ks.member_groups, pair_key(m, gid));
        }
        for r in &w.requests_remove {
            out.remove(&ks.binding_requests, pair_key(gid, r));
        }
        for r in &w.requests_put {
            out.put_json(&ks.binding_requests, pair_key(gid, &r.request_id), r)?;
        }
        for b in &w.bindings_put {
            out.put_json(&ks.bindings_by_group, pair_key(gid, &b.community_id), b)?;
            out.put_json(&ks.bindings_by_community, pair_key(&b.community_id, gid), b)?;
        }
        for cid in &w.bindings_remove {
            out.remove(&ks.bindings_by_group, pair_key(gid, cid));
            out.remove(&ks.bindings_by_community, pair_key(cid, gid));
        }
        for m in &w.messages {
            out.put_json(&ks.messages, feed_key(gid, m.created_ms, &m.message_id), m)?;
        }
        for e in &w.events {
            out.put(
                &ks.group_events,
                event_key(gid, e.seq),
                e.frame.as_bytes().as_ref(),
            );
        }
        out.put_steps(ks, &w.steps)?;
        Ok(out)
    }

    /// A community's write.
    pub(super) fn community(ks: &KsIds, w: &CommunityWrite) -> Result<Self, StoreError> {
        let cid = w.community_id.as_str();
        let mut out = EncodedWrite::default();
        if let Some(record) = &w.record {
            out.put_json(&ks.communities, cid.as_bytes().to_vec(), record)?;
        }
        if let Some(hash) = &w.server_key_hash {
            let (selector, value) = hash_entry(hash, cid);
            out.put(&ks.server_keys, selector, value);
        }
        for m in &w.members_add {
            out.put(&ks.community_members, pair_key(cid, m), b"".as_slice());
        }
        for d in &w.dynamics {
            out.put_json(&ks.dynamics, feed_key(cid, d.created_ms, &d.dynamic_id), d)?;
        }
        out.put_steps(ks, &w.steps)?;
        Ok(out)
    }
}
