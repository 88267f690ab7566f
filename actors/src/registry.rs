//! The registry: finds the actor of an account, group or community, activating it from the
//! store on first use; actors passivate themselves after their idle timeout and the registry
//! forgets them. It also owns the [`Hub`] (devices) and the [`Fanout`] workers.
//!
//! Actors are spread over a fixed pool of arbiters (threads) by a hash of their id.

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use actix::dev::ToEnvelope;
use actix::prelude::*;
use dashmap::DashMap;

use crate::community::Community;
use crate::connector::Connector;
use crate::error::{Error, Result};
use crate::group::Group;
use crate::hub::{Fanout, Hub};
use crate::messages::LoadPending;
use crate::releaser::{ReleaseConfig, Releaser};
use crate::store::Store;
use crate::subscriber::Subscriber;

/// How the registry runs actors.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// An actor with no device and no message for this long passivates.
    pub idle_timeout: Duration,
    /// Threads the actors run on, and fan-out workers.
    pub arbiters: usize,
    /// How long a binding request stays pending.
    pub binding_request_ttl: Duration,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(300),
            arbiters: std::thread::available_parallelism().map_or(2, |n| n.get()),
            binding_request_ttl: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// The kinds of actor the registry keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Subscriber,
    Group,
    Community,
}

struct Slot<A: Actor> {
    generation: u64,
    addr: Addr<A>,
}

/// Live actors of one kind by id.
struct Directory<A: Actor> {
    actors: DashMap<String, Slot<A>>,
}

impl<A: Actor> Default for Directory<A> {
    fn default() -> Self {
        Self {
            actors: DashMap::new(),
        }
    }
}

impl<A: Actor> Directory<A> {
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
}

pub(crate) struct Inner {
    subscribers: Directory<Subscriber>,
    groups: Directory<Group>,
    communities: Directory<Community>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) hub: Arc<Hub>,
    pub(crate) fanout: Arc<Fanout>,
    arbiters: Vec<Arbiter>,
    hasher: RandomState,
    pub(crate) config: RegistryConfig,
    next_generation: AtomicU64,
    /// Set once by [`Registry::start_releaser`].
    releaser: OnceLock<Addr<Releaser>>,
    /// The releaser's own thread, stopped at shutdown.
    releaser_arbiter: Mutex<Option<Arbiter>>,
}

/// Cheap to clone; every clone is the same registry.
#[derive(Clone)]
pub struct Registry {
    pub(crate) inner: Arc<Inner>,
}

/// What an actor keeps to reach the registry (weak: actors never keep it alive).
#[derive(Clone)]
pub struct RegistryHandle(Weak<Inner>);

impl RegistryHandle {
    /// Removes `id` if it still maps to the actor of this `generation`.
    pub(crate) fn forget(&self, kind: Kind, id: &str, generation: u64) {
        if let Some(inner) = self.0.upgrade() {
            match kind {
                Kind::Subscriber => inner.subscribers.forget(id, generation),
                Kind::Group => inner.groups.forget(id, generation),
                Kind::Community => inner.communities.forget(id, generation),
            }
        }
    }

    /// The registry, while the server runs.
    pub(crate) fn upgrade(&self) -> Option<Registry> {
        self.0.upgrade().map(|inner| Registry { inner })
    }

    /// The releaser, if one was started.
    pub(crate) fn releaser(&self) -> Option<Addr<Releaser>> {
        self.0
            .upgrade()
            .and_then(|inner| inner.releaser.get().cloned())
    }
}

impl Registry {
    /// Must be called inside a running actix `System` (it starts the arbiter threads).
    pub fn new(store: Arc<dyn Store>, config: RegistryConfig) -> Self {
        let workers = config.arbiters.max(1);
        let arbiters = (0..workers).map(|_| Arbiter::new()).collect();
        let hub = Arc::new(Hub::default());
        let fanout = Arc::new(Fanout::new(hub.clone(), workers));
        Registry {
            inner: Arc::new(Inner {
                subscribers: Directory::default(),
                groups: Directory::default(),
                communities: Directory::default(),
                store,
                hub,
                fanout,
                arbiters,
                hasher: RandomState::new(),
                config,
                next_generation: AtomicU64::new(1),
                releaser: OnceLock::new(),
                releaser_arbiter: Mutex::new(None),
            }),
        }
    }

    /// Starts the Releaser on its own thread and has it pick up every delivery the store
    /// holds as not final. Call once, before taking requests (so nothing new is posted while
    /// the outbox is read); answers how many deliveries it carries on with.
    pub async fn start_releaser(
        &self,
        connector: Arc<dyn Connector>,
        config: ReleaseConfig,
    ) -> Result<usize> {
        if self.inner.releaser.get().is_some() {
            return Err(Error::Unavailable("the releaser is already running".into()));
        }
        let arbiter = Arbiter::new();
        let (handle, store) = (self.handle(), self.inner.store.clone());
        let addr = Releaser::start_in_arbiter(&arbiter.handle(), move |_| {
            Releaser::new(handle, store, connector, config)
        });
        if let Ok(mut slot) = self.inner.releaser_arbiter.lock() {
            *slot = Some(arbiter);
        }
        let _ = self.inner.releaser.set(addr.clone());
        addr.send(LoadPending)
            .await
            .map_err(|e| Error::Unavailable(format!("releaser: {e}")))?
    }

    /// The store the actors persist to.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The table of connected devices.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.inner.hub
    }

    /// How many actors of each kind are active now.
    pub fn active(&self) -> (usize, usize, usize) {
        (
            self.inner.subscribers.actors.len(),
            self.inner.groups.actors.len(),
            self.inner.communities.actors.len(),
        )
    }

    fn arbiter_for(&self, id: &str) -> ArbiterHandle {
        let index = (self.inner.hasher.hash_one(id) as usize) % self.inner.arbiters.len();
        self.inner.arbiters[index].handle()
    }

    fn handle(&self) -> RegistryHandle {
        RegistryHandle(Arc::downgrade(&self.inner))
    }

    fn generation(&self) -> u64 {
        self.inner.next_generation.fetch_add(1, Ordering::Relaxed)
    }

    /// The live actor of account `id`, activated from the store if needed; `NotFound` if no
    /// such account exists.
    pub async fn subscriber(&self, id: &str) -> Result<Addr<Subscriber>> {
        if let Some(addr) = self.inner.subscribers.live(id) {
            return Ok(addr);
        }
        let snapshot = self
            .inner
            .store
            .load_subscriber(id)
            .await?
            .ok_or(Error::NotFound("account"))?;
        let generation = self.generation();
        let (store, hub, handle, idle) = (
            self.inner.store.clone(),
            self.inner.hub.clone(),
            self.handle(),
            self.inner.config.idle_timeout,
        );
        let arbiter = self.arbiter_for(id);
        Ok(self.inner.subscribers.insert_with(id, generation, move || {
            Subscriber::start_in_arbiter(&arbiter, move |_| {
                Subscriber::new(snapshot, store, hub, handle, generation, idle)
            })
        }))
    }

    /// The live actor of group `id`; `NotFound` if there is no such group.
    pub async fn group(&self, id: &str) -> Result<Addr<Group>> {
        if let Some(addr) = self.inner.groups.live(id) {
            return Ok(addr);
        }
        let snapshot = self
            .inner
            .store
            .load_group(id)
            .await?
            .ok_or(Error::NotFound("group"))?;
        let generation = self.generation();
        let (registry, handle) = (self.clone(), self.handle());
        let arbiter = self.arbiter_for(id);
        Ok(self.inner.groups.insert_with(id, generation, move || {
            Group::start_in_arbiter(&arbiter, move |_| {
                Group::new(snapshot, &registry, handle, generation)
            })
        }))
    }

    /// The live actor of community `id`; `NotFound` if there is no such community.
    pub async fn community(&self, id: &str) -> Result<Addr<Community>> {
        if let Some(addr) = self.inner.communities.live(id) {
            return Ok(addr);
        }
        let snapshot = self
            .inner
            .store
            .load_community(id)
            .await?
            .ok_or(Error::NotFound("community"))?;
        let generation = self.generation();
        let (store, handle, idle) = (
            self.inner.store.clone(),
            self.handle(),
            self.inner.config.idle_timeout,
        );
        let arbiter = self.arbiter_for(id);
        Ok(self.inner.communities.insert_with(id, generation, move || {
            Community::start_in_arbiter(&arbiter, move |_| {
                Community::new(snapshot, store, handle, generation, idle)
            })
        }))
    }

    /// Sends `msg` to an actor found by `find` and waits for its answer. If the actor stopped
    /// (passivated) between lookup and delivery, it is activated again and asked once more.
    async fn ask_with<A, M, R, F, Fut>(
        &self,
        id: &str,
        find: F,
        forget: impl Fn(&str),
        msg: M,
    ) -> Result<R>
    where
        A: Actor + Handler<M>,
        A::Context: ToEnvelope<A, M>,
        M: Message<Result = Result<R>> + Clone + Send + 'static,
        R: Send + 'static,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Addr<A>>>,
    {
        for _ in 0..3 {
            let addr = find().await?;
            match addr.send(msg.clone()).await {
                Ok(answer) => return answer,
                Err(MailboxError::Closed) => forget(id),
                Err(MailboxError::Timeout) => break,
            }
        }
        Err(Error::Unavailable(format!("actor {id} did not answer")))
    }

    /// Asks the account's actor.
    pub async fn ask<M, R>(&self, id: &str, msg: M) -> Result<R>
    where
        M: Message<Result = Result<R>> + Clone + Send + 'static,
        R: Send + 'static,
        Subscriber: Handler<M>,
        <Subscriber as Actor>::Context: ToEnvelope<Subscriber, M>,
    {
        self.ask_with(
            id,
            || self.subscriber(id),
            |id| self.inner.subscribers.forget_dead(id),
            msg,
        )
        .await
    }

    /// Asks the group's actor.
    pub async fn ask_group<M, R>(&self, id: &str, msg: M) -> Result<R>
    where
        M: Message<Result = Result<R>> + Clone + Send + 'static,
        R: Send + 'static,
        Group: Handler<M>,
        <Group as Actor>::Context: ToEnvelope<Group, M>,
    {
        self.ask_with(
            id,
            || self.group(id),
            |id| self.inner.groups.forget_dead(id),
            msg,
        )
        .await
    }

    /// Asks the community's actor.
    pub async fn ask_community<M, R>(&self, id: &str, msg: M) -> Result<R>
    where
        M: Message<Result = Result<R>> + Clone + Send + 'static,
        R: Send + 'static,
        Community: Handler<M>,
        <Community as Actor>::Context: ToEnvelope<Community, M>,
    {
        self.ask_with(
            id,
            || self.community(id),
            |id| self.inner.communities.forget_dead(id),
            msg,
        )
        .await
    }

    /// Stops every actor thread (graceful shutdown, after the server stopped taking requests).
    pub fn shutdown(&self) {
        if let Some(arbiter) = self
            .inner
            .releaser_arbiter
            .lock()
            .ok()
            .and_then(|mut a| a.take())
        {
            arbiter.stop();
        }
        for arbiter in &self.inner.arbiters {
            arbiter.stop();
        }
        self.inner.subscribers.actors.clear();
        self.inner.groups.actors.clear();
        self.inner.communities.actors.clear();
    }
}
