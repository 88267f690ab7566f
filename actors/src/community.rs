//! The Community actor: one per community. It owns the community's record, its members and
//! the set of groups it is bound to (kept in step by the binding flows; the durable truth is
//! the binding index both sides share). A dynamic is stored once in the community feed; the
//! caller then hands it to each bound group.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::error::{Error, Result};
use crate::groups_model::{CommunityRecord, DynamicRecord, GroupId};
use crate::messages::*;
use crate::model::{AccountId, now_ms};
use crate::registry::{Kind, RegistryHandle};
use crate::store::{CommunitySnapshot, CommunityWrite, Store};

/// The actor.
pub struct Community {
    record: CommunityRecord,
    members: HashSet<AccountId>,
    bound: HashSet<GroupId>,
    store: Arc<dyn Store>,
    registry: RegistryHandle,
    generation: u64,
    last_active: Instant,
    idle_timeout: Duration,
}

impl Community {
    pub(crate) fn new(
        snapshot: CommunitySnapshot,
        store: Arc<dyn Store>,
        registry: RegistryHandle,
        generation: u64,
        idle_timeout: Duration,
    ) -> Self {
        Community {
            record: snapshot.record,
            members: snapshot.members.into_iter().collect(),
            bound: snapshot.bindings.into_iter().map(|b| b.group_id).collect(),
            store,
            registry,
            generation,
            last_active: Instant::now(),
            idle_timeout,
        }
    }

    fn persist<R: 'static>(
        &mut self,
        write: CommunityWrite,
        apply: impl FnOnce(&mut Self) -> R + 'static,
    ) -> AtomicResponse<Self, Result<R>> {
        self.last_active = Instant::now();
        let store = self.store.clone();
        AtomicResponse::new(Box::pin(
            async move { store.commit_community(write).await }
                .into_actor(self)
                .map(move |res, act, _ctx| {
                    res.map_err(Error::Storage)?;
                    Ok(apply(act))
                }),
        ))
    }
}

impl Actor for Community {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let every = (self.idle_timeout / 4).max(Duration::from_millis(50));
        ctx.run_interval(every, |act, ctx| {
            if act.last_active.elapsed() >= act.idle_timeout {
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.registry
            .forget(Kind::Community, &self.record.community_id, self.generation);
    }
}

impl Handler<GetCommunity> for Community {
    type Result = Result<CommunityRecord>;
    fn handle(&mut self, _: GetCommunity, _: &mut Self::Context) -> Self::Result {
        self.last_active = Instant::now();
        Ok(self.record.clone())
    }
}

impl Handler<AddCommunityMember> for Community {
    type Result = AtomicResponse<Self, Result<()>>;
    fn handle(&mut self, msg: AddCommunityMember, _: &mut Self::Context) -> Self::Result {
        if self.members.contains(&msg.account) {
            return AtomicResponse::new(Box::pin(actix::fut::ready(Ok(()))));
        }
        let mut write = CommunityWrite::new(&self.record.community_id);
        write.members_add.push(msg.account.clone());
        self.persist(write, move |act| {
            act.members.insert(msg.account);
        })
    }
}

impl Handler<PostDynamic> for Community {
    type Result = AtomicResponse<Self, Result<(DynamicRecord, Vec<GroupId>)>>;
    fn handle(&mut self, msg: PostDynamic, _: &mut Self::Context) -> Self::Result {
        if !self.members.contains(&msg.account_id) {
            return AtomicResponse::new(Box::pin(actix::fut::ready(Err(Error::Forbidden(
                "the account is not a member of this community".into(),
            )))));
        }
        let dynamic = DynamicRecord {
            dynamic_id: crate::ids::new_id(),
            community_id: self.record.community_id.clone(),
            account_id: msg.account_id,
            kind: msg.kind,
            text: msg.text,
            created_ms: now_ms(),
        };
        let mut write = CommunityWrite::new(&self.record.community_id);
        write.dynamics.push(dynamic.clone());
        self.persist(write, move |act| {
            let mut groups: Vec<GroupId> = act.bound.iter().cloned().collect();
            groups.sort();
            (dynamic, groups)
        })
    }
}

impl Handler<BindingAdded> for Community {
    type Result = Result<()>;
    fn handle(&mut self, msg: BindingAdded, _: &mut Self::Context) -> Self::Result {
        self.last_active = Instant::now();
        self.bound.insert(msg.group_id);
        Ok(())
    }
}

impl Handler<BindingRemoved> for Community {
    type Result = Result<()>;
    fn handle(&mut self, msg: BindingRemoved, _: &mut Self::Context) -> Self::Result {
        self.last_active = Instant::now();
        self.bound.remove(&msg.group_id);
        Ok(())
    }
}
