//! Presence in a group: a member's `presence.changed`, to every member's every device, the
//! way the group's own events go (one job per I/O thread, one publish to the other nodes)
//! but stored nowhere and numbered by no `group_seq`.

use actix::prelude::*;
use bytestring::ByteString;
use serde::{Deserialize, Serialize};

use super::Group;
use crate::error::Result;
use crate::model::AccountId;
use crate::push::event::{EPHEMERAL_SEQ, StoredEvent};
use crate::push::fanout::Shared;

/// `account`'s presence changed: `frame` (its `presence.changed`, already encoded) to every
/// member. Answers whether it went out: not when `account` is no member, nor when the
/// group has more members than `PresenceConfig::max_group` (each change would be a frame to
/// each of them; such groups read `GET /v1/groups/{gid}/presence` instead).
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<bool>")]
pub struct MemberPresence {
    pub account: AccountId,
    pub frame: String,
}

impl Handler<MemberPresence> for Group {
    type Result = Result<bool>;
    fn handle(&mut self, msg: MemberPresence, _: &mut Self::Context) -> Self::Result {
        // No touch: a member's coming and going keeps no group in memory.
        let env = &self.life.env;
        if !self.is_member(&msg.account) || self.list.len() > env.config.presence.max_group {
            return Ok(false);
        }
        let frame = ByteString::from(msg.frame);
        let shared = Shared::new(&self.record.group_id, EPHEMERAL_SEQ, frame.clone());
        env.fanout
            .send(&self.list.snapshot(), self.list.len(), &shared);
        let event = StoredEvent {
            seq: EPHEMERAL_SEQ,
            frame,
        };
        env.relay.group_event(&self.record.group_id, &event);
        Ok(true)
    }
}
