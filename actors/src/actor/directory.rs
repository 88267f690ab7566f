//! The directory: finds the live actor of an account, group or community, activating it
//! from the store on first use. An actor holds a [`Lease`] on its entry and gives it up when
//! it passivates; the next message activates it again.
//!
//! Actors are spread over a fixed pool of arbiters (threads) by a hash of their id. The
//! directory knows the actor types (it builds them); they know only their [`Env`].
//!
//! An actor whose handler panics dies alone: the arbiter's runtime catches the panic of the
//! actor's task, so the thread and the other actors on it go on, but the dead actor does not
//! give its lease back (it did not choose to stop: [`Lease`]). [`Directory::ask_with`] tells
//! that from a passivation (which gives the lease back before its mailbox closes): the
//! message that killed it is answered [`Error::Internal`] (not retried, it would kill the
//! next one too), its entry is dropped, and the next message activates a fresh actor from the
//! store.
//!
//! In a cluster ([`super::place`]) the directory holds only the actors this node owns. An ask
//! for an actor another node owns is forwarded to it ([`super::remote`]) and answered as if
//! it were local; the owner's registry runs it through the same `ask_*_here` as a local ask.
//! An actor is activated only where it is owned, and only after this node claimed it (its
//! epoch, kept in [`Life`]); when the view changes, [`Directory::shed`] stops the actors that
//! moved away.

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use actix::dev::ToEnvelope;
use actix::prelude::*;
use dashmap::DashMap;
use serde::de::DeserializeOwned;

use super::community::Community;
use super::env::Env;
use super::group::Group;
use super::place::{ActorKind, Owner};
use super::remote::{self, Routed};
use super::subscriber::Subscriber;
use super::{Lease, Life, Stop};
use crate::error::{Error, Result};

struct Slot<A: Actor> {
    generation: u64,
    addr: Addr<A>,
}

/// Live actors of one kind by id.
struct Table<A: Actor> {
    actors: DashMap<String, Slot<A>>,
}

impl<A: Actor> Default for Table<A> {
    fn default() -> Self {
        Self {
            actors: DashMap::new(),
        }
    }
}

impl<A: Actor> Table<A> {
    fn live(&self, id: &str) -> Option<Addr<A>> {
        self.actors
            .get(id)
            .filter(|slot| slot.addr.connected())
            .map(|slot| slot.addr.clone())
    }

    /// Inserts a started actor unless a live one raced in first (then `start` is not called).
    fn insert_with(&self, id: &str, generation: u64, start: impl FnOnce() -> Addr<A>) -> Addr<A> {
        let entry = self.actors.entry(id.to_owned());
        if let dashmap::Entry::Occupied(slot) = &entry
            && slot.get().addr.connected()
        {
            return slot.get().addr.clone();
        }
        let addr = start();
        entry.insert(Slot {
            generation,
            addr: addr.clone(),
        });
        addr
    }

    fn forget(&self, id: &str, generation: u64) {
        self.actors
            .remove_if(id, |_, slot| slot.generation == generation);
    }

    fn forget_dead(&self, id: &str) {
        self.actors.remove_if(id, |_, slot| !slot.addr.connected());
    }

    /// Drops the entry of `id` if it still names `addr`, and says whether it did. An actor
    /// that chose to stop has given its entry back before its mailbox closed, so a closed
    /// mailbox whose entry is still there is an actor that died in a handler (a panic).
    fn forget_failed(&self, id: &str, addr: &Addr<A>) -> bool {
        self.actors
            .remove_if(id, |_, slot| slot.addr == *addr)
            .is_some()
    }

    /// Tells every live actor that `keep` refuses to stop (after the messages already in its
    /// mailbox); answers their ids. Each gives its entry back as it stops.
    fn shed(&self, keep: impl Fn(&str) -> bool) -> Vec<String>
    where
        A: Handler<Stop>,
        A::Context: ToEnvelope<A, Stop>,
    {
        let gone: Vec<(String, Addr<A>)> = self
            .actors
            .iter()
            .filter(|slot| !keep(slot.key()))
            .map(|slot| (slot.key().clone(), slot.addr.clone()))
            .collect();
        gone.into_iter()
            .map(|(id, addr)| {
                addr.do_send(Stop);
                id
            })
            .collect()
    }
}

struct Inner {
    subscribers: Table<Subscriber>,
    groups: Table<Group>,
    communities: Table<Community>,
    env: Env,
    arbiters: Vec<Arbiter>,
    hasher: RandomState,
    next_generation: AtomicU64,
}

/// Cheap to clone; every clone is the same directory.
#[derive(Clone)]
pub struct Directory {
    inner: Arc<Inner>,
}

/// A directory handle that does not keep it alive (held by the releaser).
#[derive(Clone)]
pub struct WeakDirectory(Weak<Inner>);

impl WeakDirectory {
    /// The directory, while the server runs.
    pub fn upgrade(&self) -> Option<Directory> {
        self.0.upgrade().map(|inner| Directory { inner })
    }
}

/// Which table a lease gives its entry back to.
fn lease<A: Actor>(
    inner: Weak<Inner>,
    table: fn(&Inner) -> &Table<A>,
    id: &str,
    generation: u64,
) -> Lease {
    let id = id.to_owned();
    Lease::new(move || {
        if let Some(inner) = inner.upgrade() {
            table(&inner).forget(&id, generation);
        }
    })
}

impl Directory {
    /// Starts `arbiters` actor threads; must be called inside a running actix `System`.
    pub fn new(env: Env) -> Self {
        let workers = env.config.arbiters.max(1);
        Directory {
            inner: Arc::new(Inner {
                subscribers: Table::default(),
                groups: Table::default(),
                communities: Table::default(),
                env,
                arbiters: (0..workers).map(|_| Arbiter::new()).collect(),
                hasher: RandomState::new(),
                next_generation: AtomicU64::new(1),
            }),
        }
    }

    /// What every actor is handed.
    pub fn env(&self) -> &Env {
        &self.inner.env
    }

    pub fn downgrade(&self) -> WeakDirectory {
        WeakDirectory(Arc::downgrade(&self.inner))
    }

    fn arbiter_for(&self, id: &str) -> ArbiterHandle {
        let index = (self.inner.hasher.hash_one(id) as usize) % self.inner.arbiters.len();
        self.inner.arbiters[index].handle()
    }

    /// Starts the actor `build` makes of `snapshot` on its arbiter, with a fresh generation,
    /// a lease on its entry in `table` (unless a live one raced in first) and this node's
    /// `epoch` of it.
    fn start<A, S>(
        &self,
        table: fn(&Inner) -> &Table<A>,
        id: &str,
        snapshot: S,
        epoch: Option<u64>,
        build: fn(S, Life) -> A,
    ) -> Addr<A>
    where
        A: Actor<Context = Context<A>>,
        S: Send + 'static,
    {
        let generation = self.inner.next_generation.fetch_add(1, Ordering::Relaxed);
        let lease = lease(Arc::downgrade(&self.inner), table, id, generation);
        let life = Life::new(self.inner.env.clone(), lease, epoch);
        let arbiter = self.arbiter_for(id);
        table(&self.inner).insert_with(id, generation, move || {
            A::start_in_arbiter(&arbiter, move |_| build(snapshot, life))
        })
    }

    /// This node's epoch of `kind`/`id`, claimed if it holds none: before the snapshot is
    /// read, so the snapshot holds everything the previous owner wrote.
    async fn claim(&self, kind: ActorKind, id: &str) -> Result<Option<u64>> {
        Ok(self.inner.env.placement.epoch(kind, id).await?)
    }

    /// The live actor of account `id`, activated from the store if needed; `NotFound` if no
    /// such account exists.
    async fn subscriber(&self, id: &str) -> Result<Addr<Subscriber>> {
        if let Some(addr) = self.inner.subscribers.live(id) {
            return Ok(addr);
        }
        let epoch = self.claim(ActorKind::Account, id).await?;
        let snapshot = self
            .inner
            .env
            .store
            .load_subscriber(id)
            .await?
            .ok_or(Error::NotFound("account"))?;
        crate::metrics::activated("account");
        Ok(self.start(|i| &i.subscribers, id, snapshot, epoch, Subscriber::new))
    }

    /// The live actor of group `id`; `NotFound` if there is no such group.
    async fn group(&self, id: &str) -> Result<Addr<Group>> {
        if let Some(addr) = self.inner.groups.live(id) {
            return Ok(addr);
        }
        let epoch = self.claim(ActorKind::Group, id).await?;
        let snapshot = self
            .inner
            .env
            .store
            .load_group(id)
            .await?
            .ok_or(Error::NotFound("group"))?;
        crate::metrics::activated("group");
        Ok(self.start(|i| &i.groups, id, snapshot, epoch, Group::new))
    }

    /// The live actor of community `id`; `NotFound` if there is no such community.
    async fn community(&self, id: &str) -> Result<Addr<Community>> {
        if let Some(addr) = self.inner.communities.live(id) {
            return Ok(addr);
        }
        let epoch = self.claim(ActorKind::Community, id).await?;
        let snapshot = self
            .inner
            .env
            .store
            .load_community(id)
            .await?
            .ok_or(Error::NotFound("community"))?;
        crate::metrics::activated("community");
        Ok(self.start(|i| &i.communities, id, snapshot, epoch, Community::new))
    }

    /// Whether this node owns `kind`/`id` now.
    fn owns(&self, kind: ActorKind, id: &str) -> bool {
        self.inner.env.placement.owner(kind, id) == Owner::Local
    }

    /// Sends `msg` to an actor of this node found by `find` and waits for its answer. If the
    /// actor stopped (passivated) between the lookup and the message's arrival, it is
    /// activated again and asked once more. If it died handling the message (a panic: its
    /// entry is still there, see the module doc), the entry is dropped and the answer is
    /// [`Error::Internal`]. If this node does not own the actor (any more), `msg` comes back
    /// (`Err`), unsent, for the caller to send to its owner.
    async fn ask_with<A, M, R, F, Fut>(
        &self,
        kind: ActorKind,
        id: &str,
        find: F,
        table: fn(&Inner) -> &Table<A>,
        msg: M,
    ) -> std::result::Result<Result<R>, M>
    where
        A: Actor + Handler<M>,
        A::Context: ToEnvelope<A, M>,
        M: Message<Result = Result<R>> + Clone + Send + 'static,
        R: Send + 'static,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Addr<A>>>,
    {
        for _ in 0..3 {
            if !self.owns(kind, id) {
                return Err(msg);
            }
            let addr = match find().await {
                Ok(addr) => addr,
                Err(e) => return Ok(Err(e)),
            };
            match addr.send(msg.clone()).await {
                Ok(answer) => return Ok(answer),
                Err(MailboxError::Closed) => {
                    let table = table(&self.inner);
                    if table.forget_failed(id, &addr) {
                        tracing::error!(%id, "actor died handling a message (a panic); \
                            the next message activates it afresh");
                        return Ok(Err(Error::Internal(format!("actor {id} failed"))));
                    }
                    table.forget_dead(id);
                }
                Err(MailboxError::Timeout) => break,
            }
        }
        Ok(Err(Error::Unavailable(format!(
            "actor {id} did not answer"
        ))))
    }

    /// Asks the account's actor, wherever it lives.
    pub async fn ask<M, R>(&self, id: &str, msg: M) -> Result<R>
    where
        M: Routed + Message<Result = Result<R>>,
        R: DeserializeOwned + Send + 'static,
        Subscriber: Handler<M>,
        <Subscriber as Actor>::Context: ToEnvelope<Subscriber, M>,
    {
        let kind = ActorKind::Account;
        remote::route(self.env(), kind, id, M::NAME, msg, |m| self.ask_here(id, m)).await
    }

    /// Asks the account's actor if this node owns it (else `msg` comes back).
    pub(crate) async fn ask_here<M, R>(&self, id: &str, msg: M) -> std::result::Result<Result<R>, M>
    where
        M: Message<Result = Result<R>> + Clone + Send + 'static,
        R: Send + 'static,
        Subscriber: Handler<M>,
        <Subscriber as Actor>::Context: ToEnvelope<Subscriber, M>,
    {
        let find = || self.subscriber(id);
        self.ask_with(ActorKind::Account, id, find, |i| &i.subscribers, msg)
            .await
    }

    /// Asks the group's actor, wherever it lives.
    pub async fn ask_group<M, R>(&self, id: &str, msg: M) -> Result<R>
    where
        M: Routed + Message<Result = Result<R>>,
        R: DeserializeOwned + Send + 'static,
        Group: Handler<M>,
        <Group as Actor>::Context: ToEnvelope<Group, M>,
    {
        let kind = ActorKind::Group;
        remote::route(self.env(), kind, id, M::NAME, msg, |m| {
            self.ask_group_here(id, m)
        })
        .await
    }

    /// Asks the group's actor if this node owns it (else `msg` comes back).
    pub(crate) async fn ask_group_here<M, R>(
        &self,
        id: &str,
        msg: M,
    ) -> std::result::Result<Result<R>, M>
    where
        M: Message<Result = Result<R>> + Clone + Send + 'static,
        R: Send + 'static,
        Group: Handler<M>,
        <Group as Actor>::Context: ToEnvelope<Group, M>,
    {
        let find = || self.group(id);
        self.ask_with(ActorKind::Group, id, find, |i| &i.groups, msg)
            .await
    }

    /// Asks the community's actor, wherever it lives.
    pub async fn ask_community<M, R>(&self, id: &str, msg: M) -> Result<R>
    where
        M: Routed + Message<Result = Result<R>>,
        R: DeserializeOwned + Send + 'static,
        Community: Handler<M>,
        <Community as Actor>::Context: ToEnvelope<Community, M>,
    {
        let kind = ActorKind::Community;
        remote::route(self.env(), kind, id, M::NAME, msg, |m| {
            self.ask_community_here(id, m)
        })
        .await
    }

    /// Asks the community's actor if this node owns it (else `msg` comes back).
    pub(crate) async fn ask_community_here<M, R>(
        &self,
        id: &str,
        msg: M,
    ) -> std::result::Result<Result<R>, M>
    where
        M: Message<Result = Result<R>> + Clone + Send + 'static,
        R: Send + 'static,
        Community: Handler<M>,
        <Community as Actor>::Context: ToEnvelope<Community, M>,
    {
        let find = || self.community(id);
        self.ask_with(ActorKind::Community, id, find, |i| &i.communities, msg)
            .await
    }

    /// `NotFound` unless `kind`/`id` exists; activates it on its owner (where the next
    /// message will find it live).
    pub async fn exists(&self, kind: ActorKind, id: &str) -> Result<()> {
        remote::route(self.env(), kind, id, remote::EXISTS, (), |()| {
            self.exists_here(kind, id)
        })
        .await
    }

    /// [`Directory::exists`] if this node owns the actor (else `Err`).
    pub(crate) async fn exists_here(
        &self,
        kind: ActorKind,
        id: &str,
    ) -> std::result::Result<Result<()>, ()> {
        if !self.owns(kind, id) {
            return Err(());
        }
        Ok(match kind {
            ActorKind::Account => self.subscriber(id).await.map(drop),
            ActorKind::Group => self.group(id).await.map(drop),
            ActorKind::Community => self.community(id).await.map(drop),
        })
    }

    /// Stops every live actor that `keep` refuses (those this node no longer owns after a
    /// view change), each after the messages already in its mailbox (they still write under
    /// its epoch), and forgets this node's epochs of them; later asks are forwarded to their
    /// owners. Answers how many it stopped.
    pub fn shed(&self, keep: impl Fn(ActorKind, &str) -> bool) -> usize {
        let inner = &self.inner;
        let tables = [
            (
                ActorKind::Account,
                inner.subscribers.shed(|id| keep(ActorKind::Account, id)),
            ),
            (
                ActorKind::Group,
                inner.groups.shed(|id| keep(ActorKind::Group, id)),
            ),
            (
                ActorKind::Community,
                inner.communities.shed(|id| keep(ActorKind::Community, id)),
            ),
        ];
        let mut stopped = 0;
        for (kind, ids) in tables {
            for id in ids {
                inner.env.placement.forget(kind, &id);
                stopped += 1;
            }
        }
        stopped
    }

    /// How many actors of each kind are live on this node (for `GET /metrics`).
    pub fn live(&self) -> [(&'static str, usize); 3] {
        let inner = &self.inner;
        [
            ("account", inner.subscribers.actors.len()),
            ("group", inner.groups.actors.len()),
            ("community", inner.communities.actors.len()),
        ]
    }

    /// Whether `kind`/`id` is live here (for the crate's tests).
    #[cfg(test)]
    pub(crate) fn is_live(&self, kind: ActorKind, id: &str) -> bool {
        match kind {
            ActorKind::Account => self.inner.subscribers.live(id).is_some(),
            ActorKind::Group => self.inner.groups.live(id).is_some(),
            ActorKind::Community => self.inner.communities.live(id).is_some(),
        }
    }

    /// Stops every actor thread and forgets every actor (graceful shutdown).
    pub fn shutdown(&self) {
        // Entries first: a message that then finds its actor's mailbox closed is retried
        // (and answered unavailable), not taken for an actor that died of a panic.
        self.inner.subscribers.actors.clear();
        self.inner.groups.actors.clear();
        self.inner.communities.actors.clear();
        for arbiter in &self.inner.arbiters {
            arbiter.stop();
        }
    }
}
