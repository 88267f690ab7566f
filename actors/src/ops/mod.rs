//! The domain's one way in: [`Chorus`], with a method for every operation the server offers
//! (HTTP routes and the WebSocket session call nothing else).
//!
//! An operation that involves more than one actor is orchestrated here, from outside the
//! actors, so that no actor ever waits for another inside its turn (two actors asking each
//! other at once would deadlock). Each step is one durable actor turn; the order is chosen so
//! that the actor whose state is the source of truth writes first. By concern: [`accounts`]
//! (accounts, logins, profiles, links, devices), [`friends`], [`groups`] (members, chat,
//! the owner's side of bindings, merged feeds), [`presence`] (`presence.changed`, who is
//! online), [`communities`] (the community server's
//! side), [`activities`] and [`proofs`] (codes that prove an email). Whatever an operation leaves for other actors after its first
//! write is a durable step, stored with that write and carried out by [`steps`].
//!
//! Input reaches these methods already checked by the rules in [`crate::model::limits`] (and
//! pages as a [`crate::model::PageRequest`]); rules that need an actor's state are the actor's.

pub mod accounts;
pub mod activities;
pub mod communities;
pub mod cursor;
pub mod friends;
pub mod groups;
pub mod presence;
pub mod proofs;
pub mod retention;
pub mod steps;

use std::sync::{Arc, Mutex};

use actix::prelude::*;

use crate::actor::directory::Directory;
use crate::actor::env::{ActorConfig, Env, ReleaserSlot};
use crate::actor::logs::LogHeads;
use crate::actor::place::{Owner, Placement, Serve, SingleNode};
use crate::actor::remote;
use crate::error::Result;
use crate::push::{Fanout, Hub, NoRelay, Presence, Relay};
use crate::release::{self, Connector, ReleaseConfig};
use crate::store::Store;

/// The domain facade. Cheap to clone; every clone is the same domain.
#[derive(Clone)]
pub struct Chorus {
    directory: Directory,
    /// The releaser's own thread, stopped at shutdown.
    releaser: Arc<Mutex<Option<Arbiter>>>,
    /// The driver of cross-actor steps ([`steps`]).
    steps: Arc<steps::Steps>,
}

/// What cluster mode plugs into the domain (docs/cluster.md); a single node by default.
#[derive(Clone)]
pub struct Seams {
    pub placement: Arc<dyn Placement>,
    pub relay: Arc<dyn Relay>,
}

impl Default for Seams {
    fn default() -> Self {
        Seams {
            placement: Arc::new(SingleNode),
            relay: Arc::new(NoRelay),
        }
    }
}

impl Chorus {
    /// The actors over `store` on a single node, with no releaser yet. Must be called inside
    /// a running actix `System` (it starts the actor threads; the I/O threads open their
    /// fan-out lanes).
    pub fn new(store: Arc<dyn Store>, config: ActorConfig) -> Self {
        Self::with_seams(store, config, Seams::default())
    }

    /// [`Chorus::new`] with the placement and relay of a cluster.
    pub fn with_seams(store: Arc<dyn Store>, config: ActorConfig, seams: Seams) -> Self {
        let hub = Arc::new(Hub::default());
        let fanout = Arc::new(Fanout::new(config.fanout_budget));
        let (flips, flipped) = tokio::sync::mpsc::unbounded_channel();
        let presence = Arc::new(Presence::new(hub.clone(), flips));
        let debounce = config.presence.debounce;
        let env = Env {
            store,
            hub,
            presence,
            fanout,
            config: Arc::new(config),
            releaser: ReleaserSlot::default(),
            logs: LogHeads::default(),
            placement: seams.placement,
            relay: seams.relay,
            sealer: Arc::default(),
        };
        let chorus = Chorus {
            directory: Directory::new(env),
            releaser: Arc::new(Mutex::new(None)),
            steps: Arc::default(),
        };
        chorus.watch_view();
        chorus.start_trimming();
        let announcer = presence::Announcer::new(chorus.directory.downgrade(), debounce);
        actix::spawn(announcer.run(flipped));
        chorus
    }

    /// The receiving side of [`Placement::forward`] for this domain: runs a message another
    /// node forwarded to an actor this node owns (or a node-level call, such as a fan-out's
    /// appends to accounts it owns) and answers its encoded result. The server hands it to
    /// the cluster's transport once the domain runs.
    pub fn serve(&self) -> Serve {
        remote::server(self.directory.downgrade())
    }

    /// In a cluster, follows the view ([`Placement::changes`]): after each change, the
    /// actors this node no longer owns stop, the sweeper of steps looks at once, and the
    /// releaser takes on the releases it owns now. Nothing on a single node.
    fn watch_view(&self) {
        let placement = self.directory.env().placement.clone();
        if !placement.clustered() {
            return;
        }
        let mut changes = placement.changes();
        let me = self.clone();
        actix::spawn(async move {
            while changes.changed().await.is_ok() {
                let version = *changes.borrow_and_update();
                let shed = me
                    .directory
                    .shed(|kind, id| placement.owner(kind, id) == Owner::Local);
                tracing::info!(
                    version,
                    shed,
                    "cluster view changed; actors that moved away stopped"
                );
                me.wake_steps();
                if let Some(releaser) = me.directory.env().releaser.get() {
                    releaser.rescan();
                }
            }
        });
    }

    /// Lets go of every live actor, and of this node's epochs of them (the server calls it
    /// when it finds it was presumed dead, before it joins again: another node may have
    /// taken them over meanwhile). Answers how many stopped.
    pub fn shed_all(&self) -> usize {
        self.directory.shed(|_, _| false)
    }

    /// The lanes to the I/O threads: each thread that owns sockets opens one.
    pub fn fanout(&self) -> &Arc<Fanout> {
        &self.directory.env().fanout
    }

    /// The devices connected to this process, per account (cluster mode delivers account
    /// events from other nodes to them).
    pub fn hub(&self) -> &Arc<Hub> {
        &self.directory.env().hub
    }

    /// Who is online on any node (cluster mode feeds it the other nodes' devices).
    pub fn presence(&self) -> &Arc<Presence> {
        &self.directory.env().presence
    }

    /// How many actors of each kind are live on this node (`GET /metrics`).
    pub fn live_actors(&self) -> [(&'static str, usize); 3] {
        self.directory.live()
    }

    /// Refuses a publish while the fan-out budget is spent (503 `unavailable` with
    /// `Retry-After`), before anything is stored: overload pushes back on publishers.
    fn admit_publish(&self) -> Result<()> {
        if self.directory.env().fanout.busy() {
            crate::metrics::rejected(crate::metrics::FANOUT_BUDGET);
            return Err(crate::Error::Unavailable(
                "fan-out is saturated: retry shortly".into(),
            ));
        }
        Ok(())
    }

    /// Starts the Releaser on its own thread and has it pick up every release the store
    /// holds as not final. Call once, before taking requests (so nothing new is posted while
    /// the outbox is read); answers how many releases it carries on with.
    pub async fn start_releaser(
        &self,
        connector: Arc<dyn Connector>,
        config: ReleaseConfig,
    ) -> Result<usize> {
        let (arbiter, recovered) = release::start(&self.directory, connector, config).await?;
        if let Ok(mut slot) = self.releaser.lock() {
            *slot = Some(arbiter);
        }
        Ok(recovered)
    }

    /// Has every account's actor seal, when it next activates, the plaintext secrets of
    /// links written before secrets were sealed ([`crate::model::LinkSealer`]). Call once,
    /// before taking requests; a second call is ignored.
    pub fn set_link_sealer(&self, sealer: Arc<dyn crate::model::LinkSealer>) {
        let _ = self.directory.env().sealer.set(sealer);
    }

    /// Stops the releaser and every actor thread (graceful shutdown, after the server stopped
    /// taking requests).
    pub fn shutdown(&self) {
        if let Some(arbiter) = self.releaser.lock().ok().and_then(|mut a| a.take()) {
            arbiter.stop();
        }
        self.directory.shutdown();
    }

    fn store(&self) -> &Arc<dyn Store> {
        &self.directory.env().store
    }

    /// The directory, for the crate's tests.
    #[cfg(test)]
    pub(crate) fn directory(&self) -> &Directory {
        &self.directory
    }
}
