//! What an actor is handed to work with: the store it persists to, the devices it pushes to,
//! the fan-out lanes, the account log heads, its settings, and the one actor it sends to on
//! its own (the releaser). Actors know nothing of the directory that activates them.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::courier::Verification;
use super::logs::LogHeads;
use super::place::Placement;
use crate::model::{ActivityRecord, Caps, LinkSealer, ReleaseRecord};
use crate::push::{Fanout, Hub, Presence, Relay};
use crate::store::Store;

/// The default of [`ActorConfig::fanout_budget`]: about a quarter of a second of deliveries
/// at this server's pace on two cores.
pub const DEFAULT_FANOUT_BUDGET: usize = 256 * 1024;

/// How actors run.
#[derive(Debug, Clone)]
pub struct ActorConfig {
    /// An actor with no device and no message for this long passivates.
    pub idle_timeout: Duration,
    /// Threads the actors run on.
    pub arbiters: usize,
    /// How long a binding request stays pending.
    pub binding_request_ttl: Duration,
    /// Recipients of group events in flight (handed to the I/O threads, not yet written to
    /// sockets) past which publishing answers 503 `unavailable` ([`crate::push::Fanout`]).
    pub fanout_budget: usize,
    /// Caps on what grows from other people's input, each enforced by the owning actor.
    pub caps: Caps,
    /// How identifiers are proven (the courier of codes and their rules); by default nothing
    /// can be, so every identifier is taken as registered.
    pub verification: Verification,
    /// How presence is announced (`presence.changed`).
    pub presence: PresenceConfig,
}

/// How `presence.changed` is announced (`crate::ops::presence`).
#[derive(Debug, Clone)]
pub struct PresenceConfig {
    /// An account's presence changes at most once per this long, and it is announced
    /// offline only once it has stayed offline this long: a flapping device stays quiet.
    pub debounce: Duration,
    /// Groups with more members than this get no `presence.changed` of their members (each
    /// change would be a frame to every member, so a group whose members all reconnect at
    /// once, after a restart say, would cost members² frames); `GET /v1/groups/{gid}/presence`
    /// still answers for them.
    pub max_group: usize,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        PresenceConfig {
            debounce: Duration::from_secs(2),
            max_group: 100,
        }
    }
}

impl Default for ActorConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(300),
            arbiters: std::thread::available_parallelism().map_or(2, |n| n.get()),
            binding_request_ttl: Duration::from_secs(7 * 24 * 3600),
            fanout_budget: DEFAULT_FANOUT_BUDGET,
            caps: Caps::default(),
            verification: Verification::default(),
            presence: PresenceConfig::default(),
        }
    }
}

/// The releaser as an account actor sees it: hand it releases once they are durable, tell
/// it a link is gone. Implemented by the releaser's address (`crate::release`), so the
/// account actors do not depend on the release machinery.
pub trait ReleaseQueue: Send + Sync + 'static {
    /// `releases` of `activity` are durable: start them.
    fn enqueue(&self, activity: Arc<ActivityRecord>, releases: Vec<ReleaseRecord>);
    /// The unlink of `link_id` is durable: attempt nothing more to it.
    fn cancel_link(&self, link_id: String);
    /// The cluster's view changed: carry the releases whose authors this node owns now, and
    /// let go of those it no longer owns.
    fn rescan(&self);
}

/// Where the releaser is, once it runs (set once, at start-up).
#[derive(Clone, Default)]
pub struct ReleaserSlot(Arc<OnceLock<Arc<dyn ReleaseQueue>>>);

impl ReleaserSlot {
    /// The releaser, if one was started.
    pub fn get(&self) -> Option<&Arc<dyn ReleaseQueue>> {
        self.0.get()
    }

    /// Sets the releaser; a second call is ignored.
    pub(crate) fn set(&self, queue: Arc<dyn ReleaseQueue>) {
        let _ = self.0.set(queue);
    }
}

/// Everything an actor is given; cheap to clone (every actor holds one).
#[derive(Clone)]
pub struct Env {
    pub store: Arc<dyn Store>,
    /// Connected devices per account: where account events are pushed.
    pub hub: Arc<Hub>,
    /// Who is online on any node (this node's hub and the other nodes' reports).
    pub presence: Arc<Presence>,
    /// The workers group events are handed to.
    pub fanout: Arc<Fanout>,
    pub config: Arc<ActorConfig>,
    pub releaser: ReleaserSlot,
    /// Account log heads, shared by each account's actor and the fan-outs to many accounts.
    pub logs: LogHeads,
    /// Where actors live ([`super::place::SingleNode`] unless in cluster mode).
    pub placement: Arc<dyn Placement>,
    /// Events to devices on other nodes ([`crate::push::NoRelay`] unless in cluster mode).
    pub relay: Arc<dyn Relay>,
    /// Seals the plaintext secrets of links written before secrets were sealed (set once,
    /// at start-up, by the server; unset, such links are kept as they are).
    pub sealer: Arc<OnceLock<Arc<dyn LinkSealer>>>,
}
