//! The Group actor: one per IM group. It owns the group's record, members, pending binding
//! requests, bindings and event log. Its events (`group.message`, `group.dynamic`,
//! `binding.approved`, `binding.revoked`) are stored once in the group's log, encoded once,
//! and handed with the member partitions to the fan-out workers: the actor's turn ends after
//! the write, however large the group.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::error::{Error, Result, StoreError};
use crate::event::{EventType, StoredEvent, group_frame};
use crate::groups_model::{Binding, BindingRequest, GroupRecord, MessageRecord};
use crate::hub::{Fanout, Partition, partition, partition_of};
use crate::messages::*;
use crate::model::{AccountId, now_ms};
use crate::registry::{Kind, Registry, RegistryHandle};
use crate::store::{GroupSnapshot, GroupWrite, Store};
use crate::subscriber::MAX_EVENTS_PAGE;

/// The actor.
pub struct Group {
    record: GroupRecord,
    members: HashSet<Arc<str>>,
    /// The same members, split for the fan-out workers; replaced copy-on-write.
    partitions: Vec<Partition>,
    requests: HashMap<String, BindingRequest>,
    /// Community id -> binding.
    bindings: HashMap<String, Binding>,
    seq: u64,
    store: Arc<dyn Store>,
    fanout: Arc<Fanout>,
    registry: RegistryHandle,
    generation: u64,
    last_active: Instant,
    idle_timeout: Duration,
    request_ttl: Duration,
}

fn forbidden(what: &str) -> Error {
    Error::Forbidden(what.to_owned())
}

fn ready<T: 'static>(value: Result<T>) -> AtomicResponse<Group, Result<T>> {
    AtomicResponse::new(Box::pin(actix::fut::ready(value)))
}

impl Group {
    pub(crate) fn new(
        snapshot: GroupSnapshot,
        registry: &Registry,
        handle: RegistryHandle,
        generation: u64,
    ) -> Self {
        let members: HashSet<Arc<str>> = snapshot.members.into_iter().map(Arc::from).collect();
        let partitions = partition(members.iter().cloned());
        Group {
            record: snapshot.record,
            members,
            partitions,
            requests: snapshot
                .requests
                .into_iter()
                .map(|r| (r.request_id.clone(), r))
                .collect(),
            bindings: snapshot
                .bindings
                .into_iter()
                .map(|b| (b.community_id.clone(), b))
                .collect(),
            seq: snapshot.last_seq,
            store: registry.inner.store.clone(),
            fanout: registry.inner.fanout.clone(),
            registry: handle,
            generation,
            last_active: Instant::now(),
            idle_timeout: registry.inner.config.idle_timeout,
            request_ttl: registry.inner.config.binding_request_ttl,
        }
    }

    fn id(&self) -> &str {
        &self.record.group_id
    }

    fn is_member(&self, account: &str) -> bool {
        self.members.contains(account)
    }

    fn require_member(&self, account: &str) -> Result<()> {
        if self.is_member(account) {
            Ok(())
        } else {
            Err(forbidden("only members of the group may do this"))
        }
    }

    fn require_owner(&self, account: &str) -> Result<()> {
        if self.record.owner == account {
            Ok(())
        } else {
            Err(forbidden("only the group owner may do this"))
        }
    }

    /// Adds a group event to `write`, numbered after those already in it.
    fn push_event(&self, write: &mut GroupWrite, kind: EventType, data: serde_json::Value) {
        let seq = self.seq + write.events.len() as u64 + 1;
        let data = crate::event::encode_data(&data);
        write.events.push(group_frame(kind, self.id(), seq, &data));
    }

    /// Commits `write`; on success applies `apply`, advances `seq` and hands the new events
    /// to the fan-out workers (the member list as it is after `apply`).
    fn persist<R: 'static>(
        &mut self,
        write: GroupWrite,
        apply: impl FnOnce(&mut Self) -> R + 'static,
    ) -> AtomicResponse<Self, Result<R>> {
        self.last_active = Instant::now();
        let store = self.store.clone();
        let events = write.events.clone();
        AtomicResponse::new(Box::pin(
            async move { store.commit_group(write).await }
                .into_actor(self)
                .map(move |res, act, _ctx| {
                    res.map_err(Error::Storage)?;
                    if let Some(last) = events.last() {
                        act.seq = last.seq;
                    }
                    let out = apply(act);
                    act.fan_out(&events);
                    Ok(out)
                }),
        ))
    }

    fn fan_out(&self, events: &[StoredEvent]) {
        for event in events {
            self.fanout.send(&self.partitions, &event.frame);
        }
    }

    fn set_member(&mut self, account: &str, present: bool) {
        let key: Arc<str> = Arc::from(account);
        let index = partition_of(account);
        let mut part: Vec<Arc<str>> = self.partitions[index].as_ref().clone();
        if present {
            if self.members.insert(key.clone()) {
                part.push(key);
            }
        } else if self.members.remove(account) {
            part.retain(|m| &**m != account);
        }
        self.partitions[index] = Arc::new(part);
    }

    fn expired(&self, now: u64) -> Vec<String> {
        self.requests
            .values()
            .filter(|r| r.expires_ms <= now)
            .map(|r| r.request_id.clone())
            .collect()
    }
}

impl Actor for Group {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let every = (self.idle_timeout / 4).max(Duration::from_millis(50));
        ctx.run_interval(every, |act, ctx| {
            if act.last_active.elapsed() >= act.idle_timeout {
                tracing::debug!(group = %act.id(), "passivating idle group");
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.registry
            .forget(Kind::Group, &self.record.group_id, self.generation);
    }
}

impl Handler<GetGroup> for Group {
    type Result = Result<GroupView>;
    fn handle(&mut self, msg: GetGroup, _: &mut Self::Context) -> Self::Result {
        self.last_active = Instant::now();
        self.require_member(&msg.viewer)?;
        let mut members: Vec<AccountId> = self.members.iter().map(|m| m.to_string()).collect();
        members.sort();
        let mut bindings: Vec<String> = self.bindings.keys().cloned().collect();
        bindings.sort();
        Ok(GroupView {
            group_id: self.record.group_id.clone(),
            name: self.record.name.clone(),
            owner: self.record.owner.clone(),
            members,
            bindings,
        })
    }
}

impl Handler<MemberAccess> for Group {
    type Result = Result<Vec<Binding>>;
    fn handle(&mut self, msg: MemberAccess, _: &mut Self::Context) -> Self::Result {
        self.last_active = Instant::now();
        self.require_member(&msg.viewer)?;
        Ok(self.bindings.values().cloned().collect())
    }
}

impl Handler<AddMember> for Group {
    type Result = AtomicResponse<Self, Result<()>>;
    fn handle(&mut self, msg: AddMember, _: &mut Self::Context) -> Self::Result {
        if let Err(e) = self.require_owner(&msg.by) {
            return ready(Err(e));
        }
        if self.is_member(&msg.account) {
            return ready(Ok(()));
        }
        let mut write = GroupWrite::new(self.id());
        write.members_add.push(msg.account.clone());
        self.persist(write, move |act| act.set_member(&msg.account, true))
    }
}

impl Handler<RemoveMember> for Group {
    type Result = AtomicResponse<Self, Result<()>>;
    fn handle(&mut self, msg: RemoveMember, _: &mut Self::Context) -> Self::Result {
        if msg.by != msg.account && msg.by != self.record.owner {
            return ready(Err(forbidden(
                "only the owner or the member itself may remove a member",
            )));
        }
        if !self.is_member(&msg.account) {
            return ready(Err(Error::NotFound("member")));
        }
        if msg.account == self.record.owner {
            return ready(Err(Error::conflict(
                "owner_cannot_leave",
                "the owner cannot leave the group",
            )));
        }
        let mut write = GroupWrite::new(self.id());
        write.members_remove.push(msg.account.clone());
        self.persist(write, move |act| act.set_member(&msg.account, false))
    }
}

impl Handler<PostMessage> for Group {
    type Result = AtomicResponse<Self, Result<MessageRecord>>;
    fn handle(&mut self, msg: PostMessage, _: &mut Self::Context) -> Self::Result {
        if let Err(e) = self.require_member(&msg.by) {
            return ready(Err(e));
        }
        let record = MessageRecord {
            message_id: crate::ids::new_id(),
            group_id: self.record.group_id.clone(),
            account_id: msg.by,
            text: msg.text,
            created_ms: now_ms(),
        };
        let mut write = GroupWrite::new(self.id());
        self.push_event(
            &mut write,
            EventType::GROUP_MESSAGE,
            serde_json::json!({
                "group_id": &record.group_id,
                "message_id": &record.message_id,
                "account_id": &record.account_id,
                "text": &record.text,
                "created_ms": record.created_ms,
            }),
        );
        write.messages.push(record.clone());
        self.persist(write, move |_| record)
    }
}

impl Handler<ReceiveBindingRequest> for Group {
    type Result = AtomicResponse<Self, Result<(BindingRequest, AccountId)>>;
    fn handle(&mut self, msg: ReceiveBindingRequest, _: &mut Self::Context) -> Self::Result {
        if self.bindings.contains_key(&msg.community_id) {
            return ready(Err(Error::conflict(
                "already_bound",
                "this community is already bound to the group",
            )));
        }
        let now = now_ms();
        let pending = self
            .requests
            .values()
            .any(|r| r.community_id == msg.community_id && r.expires_ms > now);
        if pending {
            return ready(Err(Error::conflict(
                "already_requested",
                "a binding request of this community is already pending",
            )));
        }
        let ttl = u64::try_from(self.request_ttl.as_millis()).unwrap_or(u64::MAX);
        let request = BindingRequest {
            request_id: crate::ids::new_id(),
            group_id: self.record.group_id.clone(),
            community_id: msg.community_id,
            community_name: msg.community_name,
            note: msg.note,
            created_ms: now,
            expires_ms: now.saturating_add(ttl),
        };
        let mut write = GroupWrite::new(self.id());
        // Expired requests are cleaned up whenever a new one arrives.
        let expired = self.expired(now);
        write.requests_remove = expired.clone();
        write.requests_put.push(request.clone());
        let owner = self.record.owner.clone();
        self.persist(write, move |act| {
            for id in expired {
                act.requests.remove(&id);
            }
            act.requests
                .insert(request.request_id.clone(), request.clone());
            (request, owner)
        })
    }
}

impl Handler<ListBindingRequests> for Group {
    type Result = Result<Vec<BindingRequest>>;
    fn handle(&mut self, msg: ListBindingRequests, _: &mut Self::Context) -> Self::Result {
        self.last_active = Instant::now();
        self.require_owner(&msg.by)?;
        let now = now_ms();
        let mut pending: Vec<BindingRequest> = self
            .requests
            .values()
            .filter(|r| r.expires_ms > now)
            .cloned()
            .collect();
        pending.sort_by(|a, b| (b.created_ms, &b.request_id).cmp(&(a.created_ms, &a.request_id)));
        Ok(pending)
    }
}

impl Group {
    /// The pending request `request_id` if the owner may answer it now.
    fn answerable(&self, by: &str, request_id: &str) -> Result<BindingRequest> {
        self.require_owner(by)?;
        let request = self
            .requests
            .get(request_id)
            .ok_or(Error::NotFound("binding request"))?;
        if request.expires_ms <= now_ms() {
            return Err(Error::conflict(
                "request_expired",
                "the binding request has expired; the community may ask again",
            ));
        }
        Ok(request.clone())
    }
}

impl Handler<ApproveBinding> for Group {
    type Result = AtomicResponse<Self, Result<Binding>>;
    fn handle(&mut self, msg: ApproveBinding, _: &mut Self::Context) -> Self::Result {
        let request = match self.answerable(&msg.by, &msg.request_id) {
            Ok(r) => r,
            Err(e) => return ready(Err(e)),
        };
        let binding = Binding {
            group_id: self.record.group_id.clone(),
            community_id: request.community_id.clone(),
            since_ms: now_ms(),
        };
        let mut write = GroupWrite::new(self.id());
        write.requests_remove.push(request.request_id.clone());
        write.bindings_put.push(binding.clone());
        self.push_event(
            &mut write,
            EventType::BINDING_APPROVED,
            serde_json::json!({
                "group_id": &binding.group_id,
                "community_id": &binding.community_id,
                "community_name": &request.community_name,
                "request_id": &request.request_id,
            }),
        );
        self.persist(write, move |act| {
            act.requests.remove(&request.request_id);
            act.bindings
                .insert(binding.community_id.clone(), binding.clone());
            binding
        })
    }
}

impl Handler<RejectBinding> for Group {
    type Result = AtomicResponse<Self, Result<BindingRequest>>;
    fn handle(&mut self, msg: RejectBinding, _: &mut Self::Context) -> Self::Result {
        let request = match self.answerable(&msg.by, &msg.request_id) {
            Ok(r) => r,
            Err(e) => return ready(Err(e)),
        };
        let mut write = GroupWrite::new(self.id());
        write.requests_remove.push(request.request_id.clone());
        self.persist(write, move |act| {
            act.requests.remove(&request.request_id);
            request
        })
    }
}

impl Handler<RevokeBinding> for Group {
    type Result = AtomicResponse<Self, Result<()>>;
    fn handle(&mut self, msg: RevokeBinding, _: &mut Self::Context) -> Self::Result {
        let by = match &msg.by {
            Revoker::Owner(account) => {
                if let Err(e) = self.require_owner(account) {
                    return ready(Err(e));
                }
                "owner"
            }
            Revoker::Community(cid) => {
                if *cid != msg.community_id {
                    return ready(Err(forbidden(
                        "a community may only revoke its own binding",
                    )));
                }
                "community"
            }
        };
        if !self.bindings.contains_key(&msg.community_id) {
            return ready(Err(Error::NotFound("binding")));
        }
        let mut write = GroupWrite::new(self.id());
        write.bindings_remove.push(msg.community_id.clone());
        self.push_event(
            &mut write,
            EventType::BINDING_REVOKED,
            serde_json::json!({
                "group_id": self.id(),
                "community_id": &msg.community_id,
                "by": by,
            }),
        );
        self.persist(write, move |act| {
            act.bindings.remove(&msg.community_id);
        })
    }
}

impl Handler<DeliverDynamic> for Group {
    type Result = AtomicResponse<Self, Result<()>>;
    fn handle(&mut self, msg: DeliverDynamic, _: &mut Self::Context) -> Self::Result {
        let d = &msg.dynamic;
        if !self.bindings.contains_key(&d.community_id) {
            // Revoked meanwhile: nothing more of that community arrives.
            return ready(Ok(()));
        }
        let mut write = GroupWrite::new(self.id());
        self.push_event(
            &mut write,
            EventType::GROUP_DYNAMIC,
            serde_json::json!({
                "group_id": self.id(),
                "community_id": &d.community_id,
                "dynamic_id": &d.dynamic_id,
                "account_id": &d.account_id,
                "kind": &d.kind,
                "text": &d.text,
                "created_ms": d.created_ms,
            }),
        );
        self.persist(write, |_| ())
    }
}

impl Handler<ReadGroupEvents> for Group {
    type Result = ResponseFuture<Result<Vec<StoredEvent>>>;
    fn handle(&mut self, msg: ReadGroupEvents, _: &mut Self::Context) -> Self::Result {
        self.last_active = Instant::now();
        if let Err(e) = self.require_member(&msg.viewer) {
            return Box::pin(async move { Err(e) });
        }
        let store = self.store.clone();
        let id = self.record.group_id.clone();
        let limit = msg.limit.clamp(1, MAX_EVENTS_PAGE);
        Box::pin(async move {
            store
                .read_group_events(&id, msg.after, limit)
                .await
                .map_err(|e: StoreError| Error::Storage(e))
        })
    }
}
