//! The registry: finds the Subscriber actor of an account, activating it from the store on
//! first use, and forgets it when it passivates itself after its idle timeout.
//!
//! Actors are spread over a fixed pool of arbiters (threads) by a hash of the account id, so
//! a busy account never shares a thread with more than its share of the others.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use actix::dev::ToEnvelope;
use actix::prelude::*;
use dashmap::DashMap;

use crate::error::{Error, Result};
use crate::model::AccountId;
use crate::store::SubscriberStore;
use crate::subscriber::Subscriber;

/// How the registry runs actors.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// An actor with no device and no message for this long passivates.
    pub idle_timeout: Duration,
    /// Threads the actors run on.
    pub arbiters: usize,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(300),
            arbiters: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

struct Slot {
    generation: u64,
    addr: Addr<Subscriber>,
}

pub(crate) struct Inner {
    actors: DashMap<AccountId, Slot>,
    pub(crate) store: Arc<dyn SubscriberStore>,
    arbiters: Vec<Arbiter>,
    hasher: RandomState,
    idle_timeout: Duration,
    next_generation: AtomicU64,
}

/// Cheap to clone; every clone is the same registry.
#[derive(Clone)]
pub struct Registry {
    pub(crate) inner: Arc<Inner>,
}

/// What an actor keeps to remove itself from the registry (weak: actors never keep the
/// registry alive).
#[derive(Clone)]
pub struct RegistryHandle(Weak<Inner>);

impl RegistryHandle {
    /// Removes `id` if it still maps to the actor of this `generation`.
    pub(crate) fn forget(&self, id: &str, generation: u64) {
        if let Some(inner) = self.0.upgrade() {
            inner
                .actors
                .remove_if(id, |_, slot| slot.generation == generation);
        }
    }
}

impl Registry {
    /// Must be called inside a running actix `System` (it starts the arbiter threads).
    pub fn new(store: Arc<dyn SubscriberStore>, config: RegistryConfig) -> Self {
        let arbiters = (0..config.arbiters.max(1))
            .map(|_| Arbiter::new())
            .collect();
        Registry {
            inner: Arc::new(Inner {
                actors: DashMap::new(),
                store,
                arbiters,
                hasher: RandomState::new(),
                idle_timeout: config.idle_timeout,
                next_generation: AtomicU64::new(1),
            }),
        }
    }

    /// The store the actors persist to.
    pub fn store(&self) -> &Arc<dyn SubscriberStore> {
        &self.inner.store
    }

    /// How many actors are active now.
    pub fn active(&self) -> usize {
        self.inner.actors.len()
    }

    /// The live actor of `id`, activated from the store if needed. `NotFound` if no such
    /// account exists.
    pub async fn subscriber(&self, id: &str) -> Result<Addr<Subscriber>> {
        if let Some(slot) = self.inner.actors.get(id)
            && slot.addr.connected()
        {
            return Ok(slot.addr.clone());
        }
        let snapshot = self
            .inner
            .store
            .load_subscriber(id)
            .await?
            .ok_or(Error::NotFound("account"))?;
        let entry = self.inner.actors.entry(id.to_owned());
        if let dashmap::Entry::Occupied(slot) = &entry
            && slot.get().addr.connected()
        {
            return Ok(slot.get().addr.clone());
        }
        let generation = self.inner.next_generation.fetch_add(1, Ordering::Relaxed);
        let index = (self.inner.hasher.hash_one(id) as usize) % self.inner.arbiters.len();
        let store = self.inner.store.clone();
        let handle = RegistryHandle(Arc::downgrade(&self.inner));
        let idle = self.inner.idle_timeout;
        let addr = Subscriber::start_in_arbiter(&self.inner.arbiters[index].handle(), move |_| {
            Subscriber::new(snapshot, store, handle, generation, idle)
        });
        entry.insert(Slot {
            generation,
            addr: addr.clone(),
        });
        tracing::debug!(account = %id, "subscriber activated");
        Ok(addr)
    }

    /// Sends `msg` to the account's actor and waits for its answer. If the actor stopped
    /// (passivated) between lookup and delivery, it is activated again and asked once more.
    pub async fn ask<M, R>(&self, id: &str, msg: M) -> Result<R>
    where
        M: Message<Result = Result<R>> + Clone + Send + 'static,
        R: Send + 'static,
        Subscriber: Handler<M>,
        <Subscriber as Actor>::Context: ToEnvelope<Subscriber, M>,
    {
        for _ in 0..3 {
            let addr = self.subscriber(id).await?;
            match addr.send(msg.clone()).await {
                Ok(answer) => return answer,
                Err(MailboxError::Closed) => {
                    self.inner
                        .actors
                        .remove_if(id, |_, slot| !slot.addr.connected());
                }
                Err(MailboxError::Timeout) => break,
            }
        }
        Err(Error::Unavailable(format!(
            "subscriber {id} did not answer"
        )))
    }

    /// Stops every actor thread (graceful shutdown, after the server stopped taking requests).
    pub fn shutdown(&self) {
        for arbiter in &self.inner.arbiters {
            arbiter.stop();
        }
        self.inner.actors.clear();
    }
}
