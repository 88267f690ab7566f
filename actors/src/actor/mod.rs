//! The actors, and the plumbing they share.
//!
//! - [`subscriber`]: one per account (profile, links, friends, activities, devices).
//! - [`group`]: one per IM group (members and chat, binding requests and bindings).
//! - [`community`]: one per community (members, bound groups, dynamics).
//! - [`env`](mod@env): what an actor is handed ([`env::Env`]): store, hub, fan-out, settings, and the
//!   releaser. Actors depend on it, never on the directory.
//! - [`directory`]: activates an actor from the store on first use and finds it again; each
//!   actor holds a [`Lease`] on its entry and gives it up when it stops.
//! - [`logs`]: account log heads, where an account's next `seq` comes from, shared by the
//!   account's actor and by fan-outs that append to many accounts' logs with a few store
//!   calls ([`logs::notify_each`]).
//!
//! - [`place`]: where an actor lives (this node, or its owner in a cluster), and the epoch
//!   its writes carry so that two nodes never both write it.
//! - [`remote`]: messages to actors another node owns: each routed message's wire name and
//!   encoding, the one registry that runs them on the owner, and the node-level calls (a
//!   fan-out's appends to the accounts another node owns).
//!
//! Each actor's messages live beside their handlers, one documented struct per intent.
//! Every write goes through [`Durable::persist`]: one change set per turn, committed before
//! anything in memory changes, then its events pushed. Handlers that write answer a [`Turn`]
//! (an atomic response), so the next message waits until the write is durable and events
//! leave in `seq` order.

/// `impl Actor` for a [`Durable`] actor: watch for idleness once started, leave the
/// directory once stopped; and [`Stop`], which the directory sends when the actor moved to
/// another node. The same for every actor, so written once.
macro_rules! durable_actor {
    ($actor:ty) => {
        impl ::actix::Handler<$crate::actor::Stop> for $actor {
            type Result = ();
            fn handle(&mut self, _: $crate::actor::Stop, ctx: &mut Self::Context) {
                $crate::actor::Durable::stop(self, ctx);
            }
        }

        impl ::actix::Actor for $actor {
            type Context = ::actix::Context<Self>;

            fn started(&mut self, ctx: &mut Self::Context) {
                $crate::actor::Durable::watch_idle(self, ctx);
                $crate::actor::Durable::on_start(self, ctx);
            }

            fn stopped(&mut self, _ctx: &mut Self::Context) {
                $crate::actor::Durable::leave(self);
            }
        }
    };
}

pub mod community;
pub mod courier;
pub mod directory;
pub mod env;
pub mod group;
pub mod logs;
pub mod place;
pub mod remote;
pub mod subscriber;

use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::future::BoxFuture;

use crate::error::{Result, StoreError};
use crate::push::StoredEvent;
use env::Env;
use logs::LogGuard;
use place::ActorKind;

/// The answer of a handler that may write: it holds the actor's turn until the write is
/// durable.
pub type Turn<A, R> = AtomicResponse<A, Result<R>>;

/// The future inside a [`Turn`], for handlers that build one in steps.
pub type TurnFuture<A, R> = ResponseActFuture<A, Result<R>>;

/// A [`Turn`] whose answer is known at once (a rule said no, or nothing needs writing).
pub fn ready<A: Actor, T: 'static>(value: Result<T>) -> Turn<A, T> {
    AtomicResponse::new(Box::pin(actix::fut::ready(value)))
}

/// An actor's entry in the directory, given up when the actor stops so that the next
/// message activates a fresh one.
pub struct Lease(Option<Box<dyn FnOnce() + Send>>);

impl Lease {
    /// A lease whose release runs `forget`.
    pub fn new(forget: impl FnOnce() + Send + 'static) -> Self {
        Lease(Some(Box::new(forget)))
    }

    /// Gives the entry up (`forget`) if the actor chose to stop. An actor that stops without
    /// having chosen to (its task dropped after a panic in a handler: actix then runs
    /// `stopped` from the context's `Drop`) keeps its entry, pointing at a closed mailbox, so
    /// the directory can tell its death from a passivation and does not retry the message
    /// that killed it; the directory drops the entry then, or on the next activation.
    fn release(&mut self, chosen: bool) {
        if let Some(forget) = self.0.take()
            && chosen
        {
            forget();
        }
    }
}

/// What every actor keeps for the shared plumbing.
pub struct Life {
    pub env: Env,
    lease: Lease,
    last_active: Instant,
    /// Set when the actor stops itself ([`Durable::stop`]); a stop without it is a death.
    stopping: bool,
    /// This node's epoch of the actor (cluster mode, [`place`]), claimed before its state was
    /// loaded: every write of this actor carries it, so a write after another node took the
    /// actor over is refused. `None` on a single node.
    epoch: Option<u64>,
}

impl Life {
    pub fn new(env: Env, lease: Lease, epoch: Option<u64>) -> Self {
        Life {
            env,
            lease,
            last_active: Instant::now(),
            stopping: false,
            epoch,
        }
    }

    /// See [`Life`]'s `epoch`.
    pub fn epoch(&self) -> Option<u64> {
        self.epoch
    }
}

/// Sent by the directory to an actor this node no longer owns (a view change, [`place`]):
/// it stops by its own choice once the messages before this one are handled.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Stop;

/// One turn's change set, as the store takes it.
pub trait Change: Send + 'static {
    /// Names the writer's epoch of the actor ([`Life`]); the store refuses the write if it
    /// is no longer the newest.
    fn set_epoch(&mut self, epoch: Option<u64>);

    /// Writes it atomically; resolves once durable, with what to publish.
    fn commit(self, env: &Env) -> BoxFuture<'static, Result<Committed, StoreError>>;
}

/// A change that is durable: the events it appended, to publish, and the log head it holds
/// until they are pushed (account logs: [`logs`]), so that pushes leave in `seq` order.
#[derive(Default)]
pub struct Committed {
    pub events: Vec<StoredEvent>,
    pub log: Option<LogGuard>,
}

impl Committed {
    /// Events of a log that no one else appends to (a group's).
    pub fn events(events: Vec<StoredEvent>) -> Self {
        Committed { events, log: None }
    }
}

/// The plumbing every actor shares: persist, passivate when idle, leave the directory.
/// Written once here; an actor says what its change set is and what to do once one is
/// durable.
pub trait Durable: Actor<Context = Context<Self>> + Sized {
    /// What one turn writes.
    type Change: Change;
    /// For logs: `subscriber`, `group`, `community`.
    const KIND: &'static str;
    /// Which owner (and epoch) the actor has in a cluster.
    const ACTOR: ActorKind;

    fn life(&self) -> &Life;
    fn life_mut(&mut self) -> &mut Life;
    /// The actor's id, for logs.
    fn id(&self) -> &str;

    /// A change is durable and applied: push its events (and, for a group, advance its log
    /// position).
    fn published(&mut self, events: &[StoredEvent]);

    /// From `Actor::started`, before any message: work the actor finds it must do on
    /// activation (an account seals the plaintext secrets of old links). Nothing by default.
    fn on_start(&mut self, ctx: &mut Context<Self>) {
        let _ = ctx;
    }

    /// Whether the actor may passivate once idle (an account with devices online may not).
    fn may_passivate(&self) -> bool {
        true
    }

    /// Something happened: the idle clock starts again.
    fn touch(&mut self) {
        self.life_mut().last_active = Instant::now();
    }

    /// Commits `change`; on success applies `apply` to memory, then [`Durable::published`].
    /// Nothing in memory changes if the commit fails.
    fn persist<R: 'static>(
        &mut self,
        change: Self::Change,
        apply: impl FnOnce(&mut Self) -> R + 'static,
    ) -> Turn<Self, R> {
        AtomicResponse::new(self.persist_fut(change, apply))
    }

    /// [`Durable::persist`] as a future, for handlers that first read something.
    fn persist_fut<R: 'static>(
        &mut self,
        change: Self::Change,
        apply: impl FnOnce(&mut Self) -> R + 'static,
    ) -> ResponseActFuture<Self, Result<R>> {
        self.touch();
        let mut change = change;
        change.set_epoch(self.life().epoch);
        let commit = change.commit(&self.life().env);
        let commit = async move {
            if crate::faults::armed(crate::faults::Point::SLOW_WRITE) {
                tokio::time::sleep(crate::faults::SLOW_WRITE_DELAY).await;
            }
            commit.await
        };
        Box::pin(commit.into_actor(self).map(move |res, act, ctx| {
            let Committed { events, log } = match res {
                Ok(committed) => committed,
                Err(e) => {
                    if let StoreError::Fenced { .. } = e {
                        // Another node took the actor over: this node's epoch is
                        // spent; it claims anew only if it owns the actor again.
                        act.life().env.placement.forget(Self::ACTOR, act.id());
                    }
                    if !matches!(e, StoreError::ClaimTaken(_)) {
                        // The outcome may be unknown (a timeout whose write lands
                        // later), so memory may no longer match the store. Stop: the
                        // next message activates the actor afresh from the store
                        // (docs/scylla.md, "The seq fence").
                        tracing::warn!(kind = Self::KIND, id = %act.id(), error = %e,
                                    "write failed; the actor reloads from the store on next use");
                        act.stop(ctx);
                    }
                    return Err(e.into());
                }
            };
            let out = apply(act);
            act.published(&events);
            // The log head, if any, is let go only now, after the push.
            drop(log);
            Ok(out)
        }))
    }

    /// From `Actor::started`: checks a few times per idle timeout and stops the actor once
    /// nothing happened for a whole timeout (its state is already on disk).
    fn watch_idle(&mut self, ctx: &mut Context<Self>) {
        let timeout = self.life().env.config.idle_timeout;
        let every = (timeout / 4).max(Duration::from_millis(50));
        ctx.run_interval(every, move |act, ctx| {
            if act.may_passivate() && act.life().last_active.elapsed() >= timeout {
                tracing::debug!(kind = Self::KIND, id = %act.id(), "passivating idle actor");
                act.stop(ctx);
            }
        });
    }

    /// Stops the actor by its own choice (idle, or memory no longer known to match the
    /// store): its entry is given up as it stops. Every deliberate stop goes through here.
    fn stop(&mut self, ctx: &mut Context<Self>) {
        self.life_mut().stopping = true;
        ctx.stop();
    }

    /// From `Actor::stopped`: gives up the directory entry if the actor chose to stop (see
    /// [`Lease`]).
    fn leave(&mut self) {
        let life = self.life_mut();
        life.lease.release(life.stopping);
    }
}
