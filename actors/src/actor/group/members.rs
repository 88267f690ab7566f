//! Members and chat: reading the group, membership checks (the group's log and chat are read
//! from the store by whoever passed one), adding and removing members, posting a chat
//! message.

use actix::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Group, forbidden};
use crate::actor::{Durable, Turn, ready};
use crate::error::{Error, Result};
use crate::model::caps::limit_reached;
use crate::model::{AccountId, Binding, GroupView, MessageRecord, new_id, now_ms};
use crate::push::event::EventType;

/// Read the group (members only).
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<GroupView>")]
pub struct GetGroup {
    pub viewer: AccountId,
}

/// Check that `viewer` is a member; answers the group's bindings (for the merged feed).
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<Vec<Binding>>")]
pub struct MemberAccess {
    pub viewer: AccountId,
}

/// Check that `viewer` is a member; answers the seq of the group's newest event (a reader
/// of the log compares it with where it stands, `ops::retention`).
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<u64>")]
pub struct LogAccess {
    pub viewer: AccountId,
}

/// The owner adds an account (idempotent).
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<()>")]
pub struct AddMember {
    pub by: AccountId,
    pub account: AccountId,
}

/// The owner removes a member, or a member leaves.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<()>")]
pub struct RemoveMember {
    pub by: AccountId,
    pub account: AccountId,
}

/// A member posts a chat message (checked by [`crate::model::limits::check_text`]); stored,
/// then pushed to every member as `group.message`.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<MessageRecord>")]
pub struct PostMessage {
    pub by: AccountId,
    pub text: String,
}

impl Handler<GetGroup> for Group {
    type Result = Result<GroupView>;
    fn handle(&mut self, msg: GetGroup, _: &mut Self::Context) -> Self::Result {
        self.touch();
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
        self.touch();
        self.require_member(&msg.viewer)?;
        Ok(self.bindings.values().cloned().collect())
    }
}

impl Handler<LogAccess> for Group {
    type Result = Result<u64>;
    fn handle(&mut self, msg: LogAccess, _: &mut Self::Context) -> Self::Result {
        self.touch();
        self.require_member(&msg.viewer)?;
        Ok(self.seq)
    }
}

impl Handler<AddMember> for Group {
    type Result = Turn<Self, ()>;
    fn handle(&mut self, msg: AddMember, _: &mut Self::Context) -> Self::Result {
        if let Err(e) = self.require_owner(&msg.by) {
            return ready(Err(e));
        }
        if self.is_member(&msg.account) {
            return ready(Ok(()));
        }
        let cap = self.life.env.config.caps.group_members;
        if self.members.len() >= cap {
            return ready(Err(limit_reached("the group is full", cap)));
        }
        let mut write = self.write();
        write.members_add.push(msg.account.clone());
        self.persist(write, move |act| act.set_member(&msg.account, true))
    }
}

impl Handler<RemoveMember> for Group {
    type Result = Turn<Self, ()>;
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
        let mut write = self.write();
        write.members_remove.push(msg.account.clone());
        self.persist(write, move |act| act.set_member(&msg.account, false))
    }
}

impl Handler<PostMessage> for Group {
    type Result = Turn<Self, MessageRecord>;
    fn handle(&mut self, msg: PostMessage, _: &mut Self::Context) -> Self::Result {
        if let Err(e) = self.require_member(&msg.by) {
            return ready(Err(e));
        }
        let record = MessageRecord {
            message_id: new_id(),
            group_id: self.record.group_id.clone(),
            account_id: msg.by,
            text: msg.text,
            created_ms: now_ms(),
        };
        let mut write = self.write();
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
