//! Change sets as batch rows: every record encoded and every key bound before a claim is
//! taken or a statement sent, so a write that cannot be built writes nothing.

use std::collections::HashMap;

use chorus_actors::StoreError;
use chorus_actors::model::StepRecord;
use chorus_actors::place::ActorKind;
use chorus_actors::push::event::StoredEvent;
use chorus_actors::store::{CommunityWrite, EdgeChange, GroupWrite, SubscriberWrite};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlValue;

use super::ScyllaStore;
use super::epochs::Held;
use super::fence::Fence;
use super::keys::{
    FeedKind, LogKind, MAX_KEY, edge_kind_text, event_bucket, feed_bucket, outbox_shard,
    split_hash, to_bigint,
};
use super::statements::Statements;
use crate::store::json::encode;

impl ScyllaStore {
    /// An account's change set, its claims aside (`commit.rs` takes and releases those).
    pub(super) fn subscriber_rows<'a>(
        &'a self,
        w: &SubscriberWrite,
    ) -> Result<BatchRows<'a>, StoreError> {
        let st = &self.st;
        let id = w.account.as_str();
        let mut rows = BatchRows::default();
        if let Some(record) = &w.record {
            rows.put(
                format!("accounts\0{id}"),
                &st.put_account,
                vec![text(id), blob(encode(id, record)?)],
            );
        }
        for change in &w.edges {
            match change {
                EdgeChange::Put(edge) => {
                    let kind = edge_kind_text(edge.kind);
                    rows.put(
                        format!("edges\0{id}\0{kind}\0{}", edge.other),
                        &st.put_edge,
                        vec![
                            text(id),
                            text(&kind),
                            text(&edge.other),
                            blob(edge.value.clone()),
                        ],
                    );
                }
                EdgeChange::Delete { kind, other } => {
                    let kind = edge_kind_text(*kind);
                    rows.put(
                        format!("edges\0{id}\0{kind}\0{other}"),
                        &st.delete_edge,
                        vec![text(id), text(&kind), text(other)],
                    );
                }
            }
        }
        for grant in &w.tokens {
            let (selector, verifier) = split_hash(&grant.hash);
            rows.put(
                format!("sessions\0{}", hex::encode(&selector)),
                &st.put_token,
                vec![
                    blob(selector),
                    blob(verifier),
                    CqlValue::BigInt(to_bigint(grant.issued_ms, "issued_ms")?),
                    text(id),
                ],
            );
        }
        for selector in &w.tokens_revoked {
            rows.put(
                format!("sessions\0{}", selector.to_hex()),
                &st.delete_token,
                vec![blob(selector.0.to_vec())],
            );
        }
        add_events(
            &mut rows,
            &st.put_event,
            LogKind::Account,
            id,
            &w.events,
            self.event_ttl,
        )?;
        for a in &w.activities {
            let record = encode(&a.activity_id, a)?;
            rows.put(
                format!("activities\0{}", a.activity_id),
                &st.put_activity,
                vec![text(&a.activity_id), blob(record.clone())],
            );
            add_feed_item(
                &mut rows,
                &st.put_feed_activity,
                FeedKind::Activities,
                id,
                a.created_ms,
                &a.activity_id,
                record,
                st,
            )?;
            if let Some(key) = &a.idempotency_key {
                rows.put(
                    format!("activity_keys\0{id}\0{key}"),
                    &st.put_activity_key,
                    vec![text(id), text(key), text(&a.activity_id)],
                );
            }
        }
        for d in &w.outbox {
            let (aid, lid) = (d.activity_id.as_str(), d.link.link_id.as_str());
            let record = encode(aid, d)?;
            rows.put(
                format!("deliveries\0{aid}\0{lid}"),
                &st.put_delivery,
                vec![text(aid), text(lid), blob(record.clone())],
            );
            let shard = CqlValue::Int(outbox_shard(aid));
            let key = format!("outbox\0{aid}\0{lid}");
            if d.status.is_final() {
                rows.put(key, &st.delete_outbox, vec![shard, text(aid), text(lid)]);
            } else {
                rows.put(
                    key,
                    &st.put_outbox,
                    vec![shard, text(aid), text(lid), blob(record)],
                );
            }
        }
        self.add_steps(&mut rows, &w.steps)?;
        rows.owned_by(ActorKind::Account, id, w.epoch);
        rows.checked()
    }

    /// The steps of the operation a write starts, in its batch.
    pub(super) fn add_steps<'a>(
        &'a self,
        rows: &mut BatchRows<'a>,
        steps: &[StepRecord],
    ) -> Result<(), StoreError> {
        for step in steps {
            let id = step.step_id.as_str();
            rows.put(
                format!("steps\0{id}"),
                &self.st.put_step,
                vec![
                    CqlValue::Int(outbox_shard(id)),
                    text(id),
                    blob(encode(id, step)?),
                ],
            );
        }
        Ok(())
    }

    /// A step settled: removed, or replaced by what is left of it.
    pub(super) fn settle_rows<'a>(
        &'a self,
        step_id: &str,
        rest: Option<&StepRecord>,
    ) -> Result<BatchRows<'a>, StoreError> {
        let mut rows = BatchRows::default();
        if rest.is_none_or(|r| r.step_id != step_id) {
            rows.put(
                format!("steps\0{step_id}"),
                &self.st.delete_step,
                vec![CqlValue::Int(outbox_shard(step_id)), text(step_id)],
            );
        }
        if let Some(rest) = rest {
            self.add_steps(&mut rows, std::slice::from_ref(rest))?;
        }
        rows.checked()
    }

    /// A group's change set: both sides of every binding change are in it.
    pub(super) fn group_rows<'a>(&'a self, w: &GroupWrite) -> Result<BatchRows<'a>, StoreError> {
        let st = &self.st;
        let gid = w.group_id.as_str();
        let mut rows = BatchRows::default();
        if let Some(record) = &w.record {
            rows.put(
                format!("groups\0{gid}"),
                &st.put_group,
                vec![text(gid), blob(encode(gid, record)?)],
            );
        }
        // Membership both ways: the account -> groups index rides in the same batch.
        for m in &w.members_add {
            rows.put(
                format!("group_members\0{gid}\0{m}"),
                &st.put_group_member,
                vec![text(gid), text(m)],
            );
            rows.put(
                format!("member_groups\0{m}\0{gid}"),
                &st.put_member_group,
                vec![text(m), text(gid)],
            );
        }
        for m in &w.members_remove {
            rows.put(
                format!("group_members\0{gid}\0{m}"),
                &st.delete_group_member,
                vec![text(gid), text(m)],
            );
            rows.put(
                format!("member_groups\0{m}\0{gid}"),
                &st.delete_member_group,
                vec![text(m), text(gid)],
            );
        }
        for r in &w.requests_remove {
            rows.put(
                format!("binding_requests\0{gid}\0{r}"),
                &st.delete_request,
                vec![text(gid), text(r)],
            );
        }
        for r in &w.requests_put {
            rows.put(
                format!("binding_requests\0{gid}\0{}", r.request_id),
                &st.put_request,
                vec![
                    text(gid),
                    text(&r.request_id),
                    blob(encode(&r.request_id, r)?),
                ],
            );
        }
        for b in &w.bindings_put {
            let cid = b.community_id.as_str();
            let record = encode(cid, b)?;
            rows.put(
                format!("bindings_by_group\0{gid}\0{cid}"),
                &st.put_binding_by_group,
                vec![text(gid), text(cid), blob(record.clone())],
            );
            rows.put(
                format!("bindings_by_community\0{cid}\0{gid}"),
                &st.put_binding_by_community,
                vec![text(cid), text(gid), blob(record)],
            );
        }
        for cid in &w.bindings_remove {
            rows.put(
                format!("bindings_by_group\0{gid}\0{cid}"),
                &st.delete_binding_by_group,
                vec![text(gid), text(cid)],
            );
            rows.put(
                format!("bindings_by_community\0{cid}\0{gid}"),
                &st.delete_binding_by_community,
                vec![text(cid), text(gid)],
            );
        }
        for m in &w.messages {
            add_feed_item(
                &mut rows,
                &st.put_message,
                FeedKind::Messages,
                gid,
                m.created_ms,
                &m.message_id,
                encode(&m.message_id, m)?,
                st,
            )?;
        }
        add_events(
            &mut rows,
            &st.put_group_event,
            LogKind::Group,
            gid,
            &w.events,
            self.event_ttl,
        )?;
        self.add_steps(&mut rows, &w.steps)?;
        rows.owned_by(ActorKind::Group, gid, w.epoch);
        rows.checked()
    }

    /// A community's change set.
    pub(super) fn community_rows<'a>(
        &'a self,
        w: &CommunityWrite,
    ) -> Result<BatchRows<'a>, StoreError> {
        let st = &self.st;
        let cid = w.community_id.as_str();
        let mut rows = BatchRows::default();
        if let Some(record) = &w.record {
            rows.put(
                format!("communities\0{cid}"),
                &st.put_community,
                vec![text(cid), blob(encode(cid, record)?)],
            );
        }
        if let Some(hash) = &w.server_key_hash {
            let (selector, verifier) = split_hash(hash);
            rows.put(
                format!("server_keys\0{}", hex::encode(&selector)),
                &st.put_server_key,
                vec![blob(selector), blob(verifier), text(cid)],
            );
        }
        for m in &w.members_add {
            rows.put(
                format!("community_members\0{cid}\0{m}"),
                &st.put_community_member,
                vec![text(cid), text(m)],
            );
        }
        for d in &w.dynamics {
            add_feed_item(
                &mut rows,
                &st.put_dynamic,
                FeedKind::Dynamics,
                cid,
                d.created_ms,
                &d.dynamic_id,
                encode(&d.dynamic_id, d)?,
                st,
            )?;
        }
        self.add_steps(&mut rows, &w.steps)?;
        rows.owned_by(ActorKind::Community, cid, w.epoch);
        rows.checked()
    }
}

/// The rows of one logged batch (`S` is the statement; generic only so tests can use
/// names). Each row is keyed by its table and primary key; a later change of the same row
/// replaces the earlier one, because all statements of a batch share one timestamp and the
/// cluster would not honour their order.
pub(super) struct Rows<S> {
    pub(super) rows: Vec<(S, Vec<CqlValue>)>,
    index: HashMap<String, usize>,
    /// The log position the rows' events take, if they carry any.
    pub(super) fence: Option<Fence>,
    /// The owner epoch rows without events name (cluster mode), checked before their batch
    /// (`epochs.rs`); with events the fence carries it.
    pub(super) held: Option<Held>,
    /// The first row whose key the cluster would refuse (its table and key length).
    too_long: Option<(String, usize)>,
}

impl<S> Default for Rows<S> {
    fn default() -> Self {
        Rows {
            rows: Vec::new(),
            index: HashMap::new(),
            fence: None,
            held: None,
            too_long: None,
        }
    }
}

impl<S> Rows<S> {
    /// Adds a row, or replaces the earlier change of the same row. `key` is the table and
    /// the row's key columns: one over [`MAX_KEY`] bytes (a bound stricter than the cluster's,
    /// which is per column) makes the rows refused by [`Rows::checked`].
    pub(super) fn put(&mut self, key: String, statement: S, values: Vec<CqlValue>) {
        if key.len() > MAX_KEY && self.too_long.is_none() {
            let table = key.split('\0').next().unwrap_or_default().to_owned();
            self.too_long = Some((table, key.len()));
        }
        match self.index.get(&key) {
            Some(&at) => {
                if let Some(slot) = self.rows.get_mut(at) {
                    *slot = (statement, values);
                }
            }
            None => {
                self.index.insert(key, self.rows.len());
                self.rows.push((statement, values));
            }
        }
    }
}

impl<S> Rows<S> {
    /// The rows are `kind`/`id`'s write naming `epoch` (cluster mode; `None` on a single
    /// node): the seq fence checks it when the rows carry events, an epoch check of its own
    /// when they do not.
    pub(super) fn owned_by(&mut self, kind: ActorKind, id: &str, epoch: Option<u64>) {
        let Some(epoch) = epoch else {
            return;
        };
        match &mut self.fence {
            Some(fence) => fence.epoch = Some(epoch),
            None => self.held = Some(Held::new(kind, id, epoch)),
        }
    }

    /// The rows, unless a key is over what the cluster takes: then
    /// [`StoreError::KeyTooLong`], before any claim is taken or statement sent.
    pub(super) fn checked(self) -> Result<Self, StoreError> {
        match self.too_long {
            Some((table, len)) => Err(StoreError::KeyTooLong {
                table,
                len,
                max: MAX_KEY,
            }),
            None => Ok(self),
        }
    }
}

/// The rows of a batch of prepared statements.
pub(super) type BatchRows<'a> = Rows<&'a PreparedStatement>;

fn text(s: &str) -> CqlValue {
    CqlValue::Text(s.to_owned())
}

fn blob(bytes: Vec<u8>) -> CqlValue {
    CqlValue::Blob(bytes)
}

/// Events, and the fence that must hold before the batch carrying them is sent: the log's
/// head is not written here (`fence.rs` moves it by lightweight transaction).
fn add_events<'a>(
    rows: &mut BatchRows<'a>,
    put: &'a PreparedStatement,
    kind: LogKind,
    owner: &str,
    events: &[StoredEvent],
    ttl_secs: i32,
) -> Result<(), StoreError> {
    let table = match kind {
        LogKind::Account => "events",
        LogKind::Group => "group_events",
    };
    for e in events {
        rows.put(
            format!("{table}\0{owner}\0{}", e.seq),
            put,
            vec![
                text(owner),
                CqlValue::BigInt(event_bucket(e.seq)),
                CqlValue::BigInt(to_bigint(e.seq, "seq")?),
                text(&e.frame),
                CqlValue::Int(ttl_secs),
            ],
        );
    }
    rows.fence = Fence::of(kind, owner, events)?;
    Ok(())
}

/// A feed item and its day in the feed's day index.
#[allow(clippy::too_many_arguments)]
fn add_feed_item<'a>(
    rows: &mut BatchRows<'a>,
    put: &'a PreparedStatement,
    kind: FeedKind,
    owner: &str,
    created_ms: u64,
    item_id: &str,
    record: Vec<u8>,
    st: &'a Statements,
) -> Result<(), StoreError> {
    let feed = kind.key(owner);
    let bucket = feed_bucket(created_ms);
    rows.put(
        format!("feed\0{feed}\0{created_ms}\0{item_id}"),
        put,
        vec![
            text(&feed),
            CqlValue::BigInt(bucket),
            CqlValue::BigInt(to_bigint(created_ms, "created_ms")?),
            text(item_id),
            blob(record),
        ],
    );
    rows.put(
        format!("feed_buckets\0{feed}\0{bucket}"),
        &st.put_feed_bucket,
        vec![CqlValue::Text(feed), CqlValue::BigInt(bucket)],
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_collapse_repeated_changes_last_wins() {
        let mut rows: Rows<&str> = Rows::default();
        rows.put("members\0g\0a".into(), "put_member", vec![text("a")]);
        rows.put("members\0g\0b".into(), "put_member", vec![text("b")]);
        rows.put("members\0g\0a".into(), "delete_member", vec![text("a")]);
        let ops: Vec<_> = rows.rows.iter().map(|(s, _)| *s).collect();
        assert_eq!(
            ops,
            ["delete_member", "put_member"],
            "last change of a row wins"
        );
        assert_eq!(rows.rows.len(), 2);
        assert!(rows.checked().is_ok());
    }

    #[test]
    fn a_row_key_over_the_cluster_limit_refuses_the_rows() {
        let mut rows: Rows<&str> = Rows::default();
        rows.put("members\0g\0a".into(), "put_member", vec![text("a")]);
        let huge = "İ".repeat(22_000).to_lowercase();
        rows.put(format!("claims\0{huge}"), "put_claim", vec![text(&huge)]);
        match rows.checked() {
            Err(StoreError::KeyTooLong { table, .. }) => assert_eq!(table, "claims"),
            other => panic!("expected KeyTooLong, got {:?}", other.map(|r| r.rows.len())),
        }
    }
}
