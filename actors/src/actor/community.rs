//! The Community actor: one per community. It owns the community's record, its members and
//! the set of groups it is bound to (kept in step by the binding operations; the durable
//! truth is the binding index both sides share). A dynamic is stored once in the community
//! feed; the caller then hands it to each bound group. Small enough for one file, messages
//! beside their handlers.

use std::collections::HashSet;

use actix::prelude::*;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::env::Env;
use super::place::ActorKind;
use super::{Change, Committed, Durable, Life, Turn, ready};
use crate::error::{Error, Result, StoreError};
use crate::model::{
    AccountId, CommunityRecord, DynamicRecord, GroupId, Step, StepRecord, new_id, now_ms,
};
use crate::push::event::StoredEvent;
use crate::store::{CommunitySnapshot, CommunityWrite};

/// Read the community's record.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<CommunityRecord>")]
pub struct GetCommunity;

/// The community server adds a member (idempotent).
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<()>")]
pub struct AddMember {
    pub account: AccountId,
}

/// The community server posts a member's dynamic (checked by
/// [`crate::model::limits::check_kind`] and `check_text`): stored once in the community feed,
/// with the step that pushes it to every group bound now ([`Step::PushDynamic`]; `None`
/// when none is). Answers both, for the caller to carry the step out.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<(DynamicRecord, Option<StepRecord>)>")]
pub struct PostDynamic {
    pub account_id: AccountId,
    pub kind: String,
    pub text: String,
}

/// A binding was approved (already durable on both sides): start pushing to the group.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<()>")]
pub struct BindingAdded {
    pub group_id: GroupId,
}

/// A binding ended (already durable): stop pushing to the group.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<()>")]
pub struct BindingRemoved {
    pub group_id: GroupId,
}

/// The actor.
pub struct Community {
    record: CommunityRecord,
    members: HashSet<AccountId>,
    bound: HashSet<GroupId>,
    life: Life,
}

impl Community {
    /// Builds the actor from what the store holds.
    pub(crate) fn new(snapshot: CommunitySnapshot, life: Life) -> Self {
        Community {
            record: snapshot.record,
            members: snapshot.members.into_iter().collect(),
            bound: snapshot.bindings.into_iter().map(|b| b.group_id).collect(),
            life,
        }
    }
}

impl Change for CommunityWrite {
    fn set_epoch(&mut self, epoch: Option<u64>) {
        self.epoch = epoch;
    }

    /// A community keeps no event log: its dynamics reach devices through bound groups.
    fn commit(self, env: &Env) -> BoxFuture<'static, Result<Committed, StoreError>> {
        let store = env.store.clone();
        Box::pin(async move {
            store.commit_community(self).await?;
            Ok(Committed::default())
        })
    }
}

impl Durable for Community {
    type Change = CommunityWrite;
    const KIND: &'static str = "community";
    const ACTOR: ActorKind = ActorKind::Community;

    fn life(&self) -> &Life {
        &self.life
    }

    fn life_mut(&mut self) -> &mut Life {
        &mut self.life
    }

    fn id(&self) -> &str {
        &self.record.community_id
    }

    fn published(&mut self, _events: &[StoredEvent]) {}
}

durable_actor!(Community);

impl Handler<GetCommunity> for Community {
    type Result = Result<CommunityRecord>;
    fn handle(&mut self, _: GetCommunity, _: &mut Self::Context) -> Self::Result {
        self.touch();
        Ok(self.record.clone())
    }
}

impl Handler<AddMember> for Community {
    type Result = Turn<Self, ()>;
    fn handle(&mut self, msg: AddMember, _: &mut Self::Context) -> Self::Result {
        if self.members.contains(&msg.account) {
            return ready(Ok(()));
        }
        let mut write = CommunityWrite::new(&self.record.community_id);
        write.members_add.push(msg.account.clone());
        self.persist(write, move |act| {
            act.members.insert(msg.account);
        })
    }
}

impl Handler<PostDynamic> for Community {
    type Result = Turn<Self, (DynamicRecord, Option<StepRecord>)>;
    fn handle(&mut self, msg: PostDynamic, _: &mut Self::Context) -> Self::Result {
        if !self.members.contains(&msg.account_id) {
            return ready(Err(Error::Forbidden(
                "the account is not a member of this community".into(),
            )));
        }
        let dynamic = DynamicRecord {
            dynamic_id: new_id(),
            community_id: self.record.community_id.clone(),
            account_id: msg.account_id,
            kind: msg.kind,
            text: msg.text,
            created_ms: now_ms(),
        };
        let mut write = CommunityWrite::new(&self.record.community_id);
        write.dynamics.push(dynamic.clone());
        let mut groups: Vec<GroupId> = self.bound.iter().cloned().collect();
        groups.sort();
        let step = (!groups.is_empty()).then(|| {
            StepRecord::new(Step::PushDynamic {
                dynamic: dynamic.clone(),
                groups,
            })
        });
        write.steps.extend(step.clone());
        self.persist(write, move |_| (dynamic, step))
    }
}

impl Handler<BindingAdded> for Community {
    type Result = Result<()>;
    fn handle(&mut self, msg: BindingAdded, _: &mut Self::Context) -> Self::Result {
        self.touch();
        self.bound.insert(msg.group_id);
        Ok(())
    }
}

impl Handler<BindingRemoved> for Community {
    type Result = Result<()>;
    fn handle(&mut self, msg: BindingRemoved, _: &mut Self::Context) -> Self::Result {
        self.touch();
        self.bound.remove(&msg.group_id);
        Ok(())
    }
}
