//! Bindings with communities: a community's request, the owner's answer (approve, reject),
//! ending a binding, and the dynamics of bound communities pushed to every member.

use std::sync::Arc;

use actix::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Group, forbidden};
use crate::actor::{Durable, Turn, ready};
use crate::error::StoreError;
use crate::error::{Error, Result};
use crate::model::caps::limit_reached;
use crate::model::step::RECHECK_TAIL;
use crate::model::{
    AccountId, Binding, BindingRequest, CommunityId, DynamicRecord, Revoker, Step, StepRecord,
    new_id, now_ms,
};
use crate::push::event::{EventType, StoredEvent, encode_data};

/// A community asks to bind. Stores the request with the step that tells the owner
/// (`binding.requested`); answers both.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<(BindingRequest, StepRecord)>")]
pub struct ReceiveBindingRequest {
    pub community_id: CommunityId,
    pub community_name: String,
    pub note: Option<String>,
}

/// The owner lists pending, unexpired requests.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<Vec<BindingRequest>>")]
pub struct ListBindingRequests {
    pub by: AccountId,
}

/// The owner approves: the binding is stored on both sides at once and members get
/// `binding.approved`. Approving a request again while its binding stands answers that
/// binding (a retry after a lost answer).
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<Binding>")]
pub struct ApproveBinding {
    pub by: AccountId,
    pub request_id: String,
}

/// The owner rejects; the request goes with the step that tells the owner's devices
/// (`binding.rejected`), which the turn answers.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<StepRecord>")]
pub struct RejectBinding {
    pub by: AccountId,
    pub request_id: String,
}

/// End a binding; members get `binding.revoked`.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<()>")]
pub struct RevokeBinding {
    pub by: Revoker,
    pub community_id: CommunityId,
}

/// A bound community's member posted a dynamic: push it to every member as `group.dynamic`
/// (ignored if the binding ended meanwhile). With `recheck` (a step run again, after a crash
/// or a failure whose outcome is unknown), the group's newest events are read first and a
/// dynamic already among them is not written twice.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<()>")]
pub struct PushDynamic {
    pub dynamic: Arc<DynamicRecord>,
    pub recheck: bool,
}

impl Group {
    fn expired(&self, now: u64) -> Vec<String> {
        self.requests
            .values()
            .filter(|r| r.expires_ms <= now)
            .map(|r| r.request_id.clone())
            .collect()
    }

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

impl Handler<ReceiveBindingRequest> for Group {
    type Result = Turn<Self, (BindingRequest, StepRecord)>;
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
        // Expired requests do not count: they are cleaned up by this very write.
        let live = self
            .requests
            .values()
            .filter(|r| r.expires_ms > now)
            .count();
        let cap = self.life.env.config.caps.binding_requests;
        if live >= cap {
            return ready(Err(limit_reached(
                "the group has too many pending binding requests",
                cap,
            )));
        }
        let ttl =
            u64::try_from(self.life.env.config.binding_request_ttl.as_millis()).unwrap_or(u64::MAX);
        let request = BindingRequest {
            request_id: new_id(),
            group_id: self.record.group_id.clone(),
            community_id: msg.community_id,
            community_name: msg.community_name,
            note: msg.note,
            created_ms: now,
            expires_ms: now.saturating_add(ttl),
        };
        let mut write = self.write();
        // Expired requests are cleaned up whenever a new one arrives.
        let expired = self.expired(now);
        write.requests_remove = expired.clone();
        write.requests_put.push(request.clone());
        let step = StepRecord::new(Step::Notify {
            to: vec![self.record.owner.clone()],
            event: EventType::BINDING_REQUESTED.0.to_owned(),
            data: encode_data(&request).to_string(),
        });
        write.steps.push(step.clone());
        self.persist(write, move |act| {
            for id in expired {
                act.requests.remove(&id);
            }
            act.requests
                .insert(request.request_id.clone(), request.clone());
            (request, step)
        })
    }
}

impl Handler<ListBindingRequests> for Group {
    type Result = Result<Vec<BindingRequest>>;
    fn handle(&mut self, msg: ListBindingRequests, _: &mut Self::Context) -> Self::Result {
        self.touch();
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

impl Handler<ApproveBinding> for Group {
    type Result = Turn<Self, Binding>;
    fn handle(&mut self, msg: ApproveBinding, _: &mut Self::Context) -> Self::Result {
        let approved = self
            .bindings
            .values()
            .find(|b| b.request_id.as_deref() == Some(msg.request_id.as_str()))
            .cloned();
        if let Some(bound) = approved
            && self.record.owner == msg.by
        {
            self.touch();
            return ready(Ok(bound));
        }
        let request = match self.answerable(&msg.by, &msg.request_id) {
            Ok(r) => r,
            Err(e) => return ready(Err(e)),
        };
        let binding = Binding {
            group_id: self.record.group_id.clone(),
            community_id: request.community_id.clone(),
            since_ms: now_ms(),
            request_id: Some(request.request_id.clone()),
        };
        let mut write = self.write();
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
    type Result = Turn<Self, StepRecord>;
    fn handle(&mut self, msg: RejectBinding, _: &mut Self::Context) -> Self::Result {
        let request = match self.answerable(&msg.by, &msg.request_id) {
            Ok(r) => r,
            Err(e) => return ready(Err(e)),
        };
        let mut write = self.write();
        write.requests_remove.push(request.request_id.clone());
        let step = StepRecord::new(Step::Notify {
            to: vec![msg.by],
            event: EventType::BINDING_REJECTED.0.to_owned(),
            data: encode_data(&serde_json::json!({
                "group_id": &request.group_id,
                "community_id": &request.community_id,
                "request_id": &request.request_id,
            }))
            .to_string(),
        });
        write.steps.push(step.clone());
        self.persist(write, move |act| {
            act.requests.remove(&request.request_id);
            step
        })
    }
}

impl Handler<RevokeBinding> for Group {
    type Result = Turn<Self, ()>;
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
        let mut write = self.write();
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

impl Handler<PushDynamic> for Group {
    type Result = Turn<Self, ()>;
    fn handle(&mut self, msg: PushDynamic, _: &mut Self::Context) -> Self::Result {
        if !self.bindings.contains_key(&msg.dynamic.community_id) {
            // Revoked meanwhile: nothing more of that community arrives.
            return ready(Ok(()));
        }
        if !msg.recheck {
            return AtomicResponse::new(self.push_dynamic(&msg.dynamic));
        }
        // Inside this atomic turn, so nothing is appended between the read and the write.
        self.touch();
        let store = self.life.env.store.clone();
        let (gid, after) = (
            self.id().to_owned(),
            self.seq.saturating_sub(RECHECK_TAIL as u64),
        );
        AtomicResponse::new(Box::pin(
            async move { store.read_group_events(&gid, after, RECHECK_TAIL).await }
                .into_actor(self)
                .then(
                    move |tail: std::result::Result<Vec<StoredEvent>, StoreError>, act, _| {
                        match tail {
                            Err(e) => Box::pin(actix::fut::ready(Err(e.into()))),
                            Ok(tail) if holds_dynamic(&tail, &msg.dynamic.dynamic_id) => {
                                Box::pin(actix::fut::ready(Ok(())))
                            }
                            Ok(_) => act.push_dynamic(&msg.dynamic),
                        }
                    },
                ),
        ))
    }
}

/// Whether one of `events` is the `group.dynamic` of `dynamic_id` (ids are unique, so the
/// id in the frame is enough).
fn holds_dynamic(events: &[StoredEvent], dynamic_id: &str) -> bool {
    let needle = format!(r#""dynamic_id":"{dynamic_id}""#);
    events.iter().any(|e| {
        e.frame.starts_with(r#"{"type":"group.dynamic""#) && e.frame.contains(needle.as_str())
    })
}

impl Group {
    /// Writes `group.dynamic` for `d` and hands it to fan-out.
    fn push_dynamic(&mut self, d: &DynamicRecord) -> crate::actor::TurnFuture<Self, ()> {
        let mut write = self.write();
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
        self.persist_fut(write, |_| ())
    }
}
