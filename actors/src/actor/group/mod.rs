//! The Group actor: one per IM group. It owns the group's record, members, pending binding
//! requests, bindings and event log. Its events (`group.message`, `group.dynamic`,
//! `binding.approved`, `binding.revoked`) are stored once in the group's log, encoded once,
//! and handed with a snapshot of the member list to the I/O threads' lanes
//! ([`crate::push::fanout`]): the actor's turn ends after the write, however large the group.
//!
//! By concern, each file with its messages beside their handlers: [`members`] (members,
//! chat), [`presence`] (members' `presence.changed`, never stored) and [`bindings`] (binding requests, bindings, dynamics of bound
//! communities).

pub mod bindings;
pub mod members;
pub mod presence;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::env::Env;
use super::place::ActorKind;
use super::{Change, Committed, Durable, Life};
use crate::error::{Error, Result, StoreError};
use crate::model::{Binding, BindingRequest, GroupRecord};
use crate::push::event::{EventType, StoredEvent, encode_data, group_frame};
use crate::push::fanout::{MemberList, Shared};
use crate::store::{GroupSnapshot, GroupWrite};

pub use bindings::{
    ApproveBinding, ListBindingRequests, PushDynamic, ReceiveBindingRequest, RejectBinding,
    RevokeBinding,
};
pub use members::{AddMember, GetGroup, LogAccess, MemberAccess, PostMessage, RemoveMember};
pub use presence::MemberPresence;

/// The actor.
pub struct Group {
    record: GroupRecord,
    members: HashSet<Arc<str>>,
    /// The same members as the I/O threads get them (partitioned, copy-on-write).
    list: MemberList,
    requests: HashMap<String, BindingRequest>,
    /// Community id -> binding.
    bindings: HashMap<String, Binding>,
    seq: u64,
    life: Life,
}

fn forbidden(what: &str) -> Error {
    Error::Forbidden(what.to_owned())
}

impl Group {
    /// Builds the actor from what the store holds.
    pub(crate) fn new(snapshot: GroupSnapshot, life: Life) -> Self {
        let members: HashSet<Arc<str>> = snapshot.members.into_iter().map(Arc::from).collect();
        let list = MemberList::new(members.iter().cloned());
        Group {
            record: snapshot.record,
            members,
            list,
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
            life,
        }
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

    /// An empty change set of this group.
    fn write(&self) -> GroupWrite {
        GroupWrite::new(&self.record.group_id)
    }

    /// Adds a group event to `write`, numbered after those already in it.
    fn push_event(&self, write: &mut GroupWrite, kind: EventType, data: serde_json::Value) {
        let seq = self.seq + write.events.len() as u64 + 1;
        let data = encode_data(&data);
        write.events.push(group_frame(kind, self.id(), seq, &data));
    }

    /// Applies a durable membership change, and tells the nodes where `account` has devices
    /// (the relay) so they start or stop taking the group's events for it.
    fn set_member(&mut self, account: &str, present: bool) {
        let changed = if present {
            let key: Arc<str> = Arc::from(account);
            let added = self.members.insert(key.clone());
            if added {
                self.list.insert(key);
            }
            added
        } else {
            let removed = self.members.remove(account);
            if removed {
                self.list.remove(account);
            }
            removed
        };
        if changed {
            self.life
                .env
                .relay
                .membership(account, &self.record.group_id, present);
        }
    }
}

impl Change for GroupWrite {
    fn set_epoch(&mut self, epoch: Option<u64>) {
        self.epoch = epoch;
    }

    /// The group actor is the only writer of its log: its turn is all the order it needs.
    fn commit(self, env: &Env) -> BoxFuture<'static, Result<Committed, StoreError>> {
        let store = env.store.clone();
        Box::pin(async move {
            let events = self.events.clone();
            store.commit_group(self).await?;
            Ok(Committed::events(events))
        })
    }
}

impl Durable for Group {
    type Change = GroupWrite;
    const KIND: &'static str = "group";
    const ACTOR: ActorKind = ActorKind::Group;

    fn life(&self) -> &Life {
        &self.life
    }

    fn life_mut(&mut self) -> &mut Life {
        &mut self.life
    }

    fn id(&self) -> &str {
        &self.record.group_id
    }

    /// Advances `seq` and hands each event to the I/O threads, with the member list as it
    /// is after the change.
    fn published(&mut self, events: &[StoredEvent]) {
        let members = self.list.snapshot();
        for event in events {
            self.seq = event.seq;
            let shared = Shared::new(&self.record.group_id, event.seq, event.frame.clone());
            self.life
                .env
                .fanout
                .send(&members, self.list.len(), &shared);
            self.life
                .env
                .relay
                .group_event(&self.record.group_id, event);
        }
    }
}

durable_actor!(Group);
