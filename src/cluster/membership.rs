//! Membership: which nodes are alive, as this node sees them (docs/cluster.md).
//!
//! Every node publishes a [`Heartbeat`] on `<prefix>.hb` every heartbeat interval and
//! listens to everyone else's. A peer is live while its last heartbeat is younger than
//! dead-after; a new peer (or a new incarnation of a known one) counts only from its second
//! heartbeat (at least half an interval after the first), so a node flapping in and out does
//! not move actors back and forth. NATS's
//! `no_echo` hides a node's own heartbeats from it, so it counts itself locally. What this
//! node concludes is a [`View`]: the nodes that own actors and a version that changes with
//! every change of it; placement hashes over it, the domain watches the version
//! ([`chorus_actors::place::Placement::changes`]) and lets go of actors it no longer owns.
//!
//! Membership decides only where requests go; it never decides who may write. That is the
//! store's epoch fence (`OwnerStore::claim_owner`), so two nodes that disagree for a moment
//! (a heartbeat in flight, a partition) cost a refused write and a retry, never a lost or
//! doubled one.
//!
//! # The paused node
//! A node stopped for longer than dead-after (SIGSTOP, a VM migration, a long GC-like stall
//! of its runtime) comes back believing its view, but its peers have dropped it and taken its
//! actors over. The heartbeat task measures the gap between its own ticks with the monotonic
//! clock (which runs on while the process is stopped). A gap over dead-after, or a NATS
//! disconnection longer than dead-after, means "the others presumed me dead", and the node:
//! - takes a new **incarnation** (peers that still list the old one drop it at the first new
//!   heartbeat, then re-admit it from the second, like any new node);
//! - becomes [`Phase::Joining`]: it owns nothing and forwards everything, and the view's
//!   version changes, so the domain lets go of all its actors; the claim cache (placement)
//!   is emptied through the change hook, so every actor is claimed afresh later;
//! - stays so for **dead-after + 2 heartbeats** after the gap. Why that long: by then every
//!   peer has either timed the old incarnation out (dead-after after the last heartbeat it
//!   got, which was before the gap) or dropped it on the new one, and has had two heartbeats
//!   of the new one, which is what re-admits a node. Only then can the peers' views and this
//!   node's agree that it owns its share again, so answering `Local` earlier would have two
//!   nodes serve (and claim back and forth) the same actors. A node starting up waits the
//!   same way, for 2½ heartbeats: long enough to hear two heartbeats of every live peer and
//!   for them to hear two of its own.
//!
//! Between the end of the gap and the first tick that notices it, other tasks may run first;
//! placement therefore also asks [`Membership::fresh`] on every lookup, so nothing is served
//! as local on a view older than dead-after. Turns that slip through are refused by the
//! store's fence (503, the client retries and reaches the new owner).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use async_nats::Client;
use async_nats::connection::State;
use chorus_actors::place::NodeId;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::placement::node_seed;

/// What a node announces on `<prefix>.hb`, as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub node: NodeId,
    /// Changes (upwards) each time the node starts, or comes back after it was presumed
    /// dead: unix milliseconds, or one more than the previous one.
    pub incarnation: u64,
    /// Where the node serves HTTP (informational: `/v1/cluster`, tools).
    pub http_addr: String,
    /// The node is shutting down: drop it at once rather than after dead-after.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub leaving: bool,
}

/// A live node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub node: NodeId,
    pub incarnation: u64,
    pub http_addr: String,
    /// Its rendezvous seed (placement), computed once per view.
    #[serde(skip)]
    pub(crate) seed: u64,
}

impl Member {
    fn new(node: NodeId, incarnation: u64, http_addr: String) -> Member {
        Member {
            seed: node_seed(&node),
            node,
            incarnation,
            http_addr,
        }
    }
}

/// Whether this node may own actors now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Starting, or back after it was presumed dead: its peers may not count it as live
    /// yet, so it owns nothing and forwards everything (module doc).
    Joining,
    /// Counted as live by its peers: it owns the actors placement gives it.
    Member,
}

/// The cluster as this node sees it.
#[derive(Debug, Clone)]
pub struct View {
    /// Changes with every change of `owners`, of this node's phase or incarnation.
    pub version: u64,
    /// The nodes actors are placed on, sorted by id: the admitted peers, and this node while
    /// it is a [`Phase::Member`].
    pub owners: Vec<Member>,
    /// This node.
    pub me: Member,
    pub phase: Phase,
}

/// The two durations membership runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub heartbeat: Duration,
    pub dead_after: Duration,
}

impl Timing {
    /// How long a starting node waits before it owns anything: two heartbeats of every live
    /// peer reach it, two of its own reach them, and half an interval for the way.
    pub fn settle(&self) -> Duration {
        self.heartbeat * 2 + self.heartbeat / 2
    }

    /// How long a node presumed dead waits before it owns anything again (module doc).
    pub fn rejoin(&self) -> Duration {
        self.dead_after + self.heartbeat * 2
    }
}

/// What this node knows of a peer.
#[derive(Debug, Clone)]
struct Peer {
    incarnation: u64,
    http_addr: String,
    last_seen: Instant,
    /// Heartbeats of this incarnation in a row (none more than dead-after apart, bursts
    /// counted once).
    beats: u32,
    admitted: bool,
}

impl Peer {
    fn first(hb: &Heartbeat, now: Instant) -> Peer {
        Peer {
            incarnation: hb.incarnation,
            http_addr: hb.http_addr.clone(),
            last_seen: now,
            beats: 1,
            admitted: false,
        }
    }
}

/// The state machine of membership, apart from NATS and the clock (so tests drive it with
/// their own instants). Every method answers whether the view changed.
#[derive(Debug)]
pub(crate) struct Table {
    me: NodeId,
    http_addr: String,
    timing: Timing,
    incarnation: u64,
    phase: Phase,
    /// While [`Phase::Joining`]: when it may end, and how long it lasts from a reconnection.
    joining_until: Instant,
    joining_window: Duration,
    peers: HashMap<NodeId, Peer>,
    last_tick: Instant,
    disconnected_since: Option<Instant>,
    /// The disconnection going on has already made this node presumed dead.
    dead_while_disconnected: bool,
    version: u64,
}

impl Table {
    pub(crate) fn new(me: NodeId, http_addr: String, timing: Timing, now: Instant) -> Table {
        Table {
            me,
            http_addr,
            timing,
            incarnation: unix_ms(),
            phase: Phase::Joining,
            joining_until: now + timing.settle(),
            joining_window: timing.settle(),
            peers: HashMap::new(),
            last_tick: now,
            disconnected_since: None,
            dead_while_disconnected: false,
            version: 1,
        }
    }

    /// A peer's heartbeat arrived at `now`.
    pub(crate) fn heard(&mut self, hb: &Heartbeat, now: Instant) -> bool {
        if hb.node == self.me {
            return false;
        }
        let dead_after = self.timing.dead_after;
        let Some(peer) = self.peers.get_mut(&hb.node) else {
            if !hb.leaving {
                self.peers.insert(hb.node.clone(), Peer::first(hb, now));
            }
            return false;
        };
        if hb.incarnation < peer.incarnation {
            // A late heartbeat of an earlier life.
            return false;
        }
        if hb.leaving {
            let was = peer.admitted;
            self.peers.remove(&hb.node);
            return was;
        }
        if hb.incarnation > peer.incarnation {
            // It restarted, or came back after it was presumed dead: gone now, and a new
            // node from its second heartbeat on.
            let was = peer.admitted;
            *peer = Peer::first(hb, now);
            return was;
        }
        let since = now.saturating_duration_since(peer.last_seen);
        if since > dead_after {
            peer.beats = 1;
        } else if since >= self.timing.heartbeat / 2 {
            peer.beats = peer.beats.saturating_add(1);
        }
        // Closer together (a burst: a node's first tick and its wake-up on connecting, or
        // heartbeats queued behind a stall) they count as one.
        peer.last_seen = now;
        peer.http_addr.clone_from(&hb.http_addr);
        if !peer.admitted && peer.beats >= 2 {
            peer.admitted = true;
            return true;
        }
        false
    }

    /// The heartbeat task's tick at `now`, with NATS `connected` or not.
    pub(crate) fn tick(&mut self, now: Instant, connected: bool) -> bool {
        let gap = now.saturating_duration_since(self.last_tick);
        self.last_tick = now;
        let dead_after = self.timing.dead_after;
        let mut changed = false;
        if gap > dead_after {
            tracing::warn!(
                node = %self.me,
                gap_ms = gap.as_millis(),
                "this node stalled for longer than dead-after: the others presumed it dead"
            );
            self.presumed_dead(now);
            changed = true;
        }
        if !connected {
            let since = *self.disconnected_since.get_or_insert(now);
            if now.saturating_duration_since(since) > dead_after && !self.dead_while_disconnected {
                tracing::warn!(
                    node = %self.me,
                    "NATS unreachable for longer than dead-after: the others presumed this node dead"
                );
                self.dead_while_disconnected = true;
                self.presumed_dead(now);
                changed = true;
            }
            // Nothing is heard while disconnected: peers are not timed out for it.
            return changed;
        }
        if self.disconnected_since.take().is_some() {
            self.dead_while_disconnected = false;
            self.refresh_peers(now);
            if self.phase == Phase::Joining {
                self.joining_until = self.joining_until.max(now + self.joining_window);
            }
        }
        let before = self.peers.len();
        let admitted_before = self.peers.values().filter(|p| p.admitted).count();
        self.peers
            .retain(|_, p| now.saturating_duration_since(p.last_seen) <= dead_after);
        if self.peers.len() != before {
            let admitted_after = self.peers.values().filter(|p| p.admitted).count();
            changed |= admitted_after != admitted_before;
        }
        if self.phase == Phase::Joining && now >= self.joining_until {
            self.phase = Phase::Member;
            changed = true;
        }
        changed
    }

    /// The others dropped this node: a new life, owning nothing for a while (module doc).
    fn presumed_dead(&mut self, now: Instant) {
        self.incarnation = unix_ms().max(self.incarnation + 1);
        self.phase = Phase::Joining;
        self.joining_window = self.timing.rejoin();
        self.joining_until = now + self.joining_window;
        // What was heard before the stall is stale by this node's fault, not the peers':
        // they get a full dead-after to show they are alive.
        self.refresh_peers(now);
    }

    fn refresh_peers(&mut self, now: Instant) {
        for peer in self.peers.values_mut() {
            peer.last_seen = peer.last_seen.max(now);
        }
    }

    /// The view as of now, with the next version.
    pub(crate) fn next_view(&mut self) -> View {
        self.version += 1;
        self.view()
    }

    pub(crate) fn view(&self) -> View {
        let me = Member::new(self.me.clone(), self.incarnation, self.http_addr.clone());
        let mut owners: Vec<Member> = self
            .peers
            .iter()
            .filter(|(_, p)| p.admitted)
            .map(|(id, p)| Member::new(id.clone(), p.incarnation, p.http_addr.clone()))
            .collect();
        if self.phase == Phase::Member {
            owners.push(me.clone());
        }
        owners.sort_by(|a, b| a.node.cmp(&b.node));
        View {
            version: self.version,
            owners,
            me,
            phase: self.phase,
        }
    }

    pub(crate) fn heartbeat(&self, leaving: bool) -> Heartbeat {
        Heartbeat {
            node: self.me.clone(),
            incarnation: self.incarnation,
            http_addr: self.http_addr.clone(),
            leaving,
        }
    }
}

/// Run on every view change, before its version is announced.
pub(crate) type ChangeHook = Box<dyn Fn(&View) + Send + Sync>;

/// Membership of a running node: the [`Table`] fed by NATS and the heartbeat timer.
pub struct Membership {
    me: NodeId,
    subject: String,
    client: Client,
    timing: Timing,
    table: Mutex<Table>,
    view: ArcSwap<View>,
    version: watch::Sender<u64>,
    /// Runs on every view change, before the version is announced (placement's claim cache).
    on_change: OnceLock<ChangeHook>,
    /// Monotonic time of the last tick, in ns since `base`.
    base: Instant,
    last_tick_ns: AtomicU64,
    /// Poked on NATS connection events so the next tick runs at once.
    wake: Arc<Notify>,
    warned_duplicate: AtomicBool,
}

impl Membership {
    /// Membership of node `me` over `client`, on `<prefix>.hb`; call [`Membership::run`]
    /// to start it.
    pub(crate) fn new(
        client: Client,
        prefix: &str,
        me: NodeId,
        http_addr: String,
        timing: Timing,
        wake: Arc<Notify>,
    ) -> Membership {
        let now = Instant::now();
        let table = Table::new(me.clone(), http_addr, timing, now);
        let view = table.view();
        let (version, _) = watch::channel(view.version);
        Membership {
            me,
            subject: format!("{prefix}.hb"),
            client,
            timing,
            table: Mutex::new(table),
            view: ArcSwap::from_pointee(view),
            version,
            on_change: OnceLock::new(),
            base: now,
            last_tick_ns: AtomicU64::new(0),
            wake,
            warned_duplicate: AtomicBool::new(false),
        }
    }

    /// Subscribes to heartbeats (registered with the server when this returns) and starts
    /// the task that listens and the one that beats.
    pub(crate) async fn run(
        self: &Arc<Self>,
    ) -> Result<[JoinHandle<()>; 2], async_nats::SubscribeError> {
        let mut heard = self.client.subscribe(self.subject.clone()).await?;
        // Heartbeats published from now on reach this node.
        if let Err(e) = self.client.flush().await {
            tracing::warn!(error = %e, "NATS flush after subscribing to heartbeats");
        }
        let listen = {
            let this = self.clone();
            tokio::spawn(async move {
                while let Some(message) = heard.next().await {
                    this.receive(&message.payload);
                }
            })
        };
        let beat = {
            let this = self.clone();
            tokio::spawn(async move { this.beat().await })
        };
        Ok([listen, beat])
    }

    fn receive(&self, payload: &[u8]) {
        let hb: Heartbeat = match serde_json::from_slice(payload) {
            Ok(hb) => hb,
            Err(e) => {
                tracing::debug!(error = %e, "unreadable heartbeat ignored");
                return;
            }
        };
        if hb.node == self.me {
            if !self.warned_duplicate.swap(true, Ordering::Relaxed) {
                tracing::error!(
                    node = %self.me,
                    http_addr = %hb.http_addr,
                    "another process uses this node id: give every node its own --node-id"
                );
            }
            return;
        }
        let mut table = self.lock();
        if table.heard(&hb, Instant::now()) {
            self.publish(&mut table);
        }
    }

    async fn beat(&self) {
        let mut every = tokio::time::interval(self.timing.heartbeat);
        every.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                () = self.wake.notified() => {}
            }
            let connected = self.connected();
            let hb = {
                let mut table = self.lock();
                let now = Instant::now();
                if table.tick(now, connected) {
                    self.publish(&mut table);
                }
                self.last_tick_ns
                    .store(nanos(now.duration_since(self.base)), Ordering::Release);
                table.heartbeat(false)
            };
            if connected {
                self.announce(&hb).await;
            }
        }
    }

    /// Publishes `hb`, waiting at most one heartbeat for room in the client's queue.
    async fn announce(&self, hb: &Heartbeat) {
        let payload = match serde_json::to_vec(hb) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "heartbeat not encoded");
                return;
            }
        };
        let publish = self.client.publish(self.subject.clone(), payload.into());
        match tokio::time::timeout(self.timing.heartbeat, publish).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "heartbeat not published"),
            Err(_) => tracing::warn!("heartbeat not published: the NATS client is backed up"),
        }
    }

    /// Tells the others this node is going (they drop it at once), and flushes.
    pub(crate) async fn leave(&self) {
        let hb = self.lock().heartbeat(true);
        self.announce(&hb).await;
        let _ = tokio::time::timeout(self.timing.heartbeat, self.client.flush()).await;
    }

    fn publish(&self, table: &mut Table) {
        let view = Arc::new(table.next_view());
        self.view.store(view.clone());
        if let Some(hook) = self.on_change.get() {
            hook(&view);
        }
        self.version.send_replace(view.version);
        tracing::info!(
            node = %self.me,
            version = view.version,
            phase = ?view.phase,
            incarnation = view.me.incarnation,
            owners = ?view.owners.iter().map(|m| m.node.as_str()).collect::<Vec<_>>(),
            "cluster view changed"
        );
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Installs the hook run on every view change (once; later calls are ignored).
    pub(crate) fn on_change(&self, hook: ChangeHook) {
        let _ = self.on_change.set(hook);
    }

    /// The current view (cheap: no lock).
    pub fn view(&self) -> arc_swap::Guard<Arc<View>> {
        self.view.load()
    }

    /// The view's version, announced after each change.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    pub fn me(&self) -> &str {
        &self.me
    }

    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// NATS is connected now.
    pub fn connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    /// The heartbeat task ran within dead-after: this node was not stopped since, so its
    /// peers still count it (module doc, the paused node).
    pub fn fresh(&self) -> bool {
        let last = Duration::from_nanos(self.last_tick_ns.load(Ordering::Acquire));
        self.base.elapsed().saturating_sub(last) <= self.timing.dead_after
    }

    /// Why this node cannot serve its share of the cluster now, if it cannot (`/readyz`).
    pub fn not_ready(&self) -> Option<String> {
        if !self.connected() {
            return Some("NATS is not connected".to_owned());
        }
        if !self.fresh() {
            return Some("heartbeats stalled".to_owned());
        }
        let view = self.view();
        (view.phase == Phase::Joining).then(|| {
            format!(
                "joining the cluster ({} other nodes live)",
                view.owners.len()
            )
        })
    }
}

/// Milliseconds since the Unix epoch (0 before it).
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| nanos(d) / 1_000_000)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
