//! Cluster mode: N nodes over one CQL keyspace, talking over NATS (`--nats-url`;
//! docs/cluster.md).
//!
//! The domain (`chorus-actors`) knows two seams, [`chorus_actors::place::Placement`] and
//! [`chorus_actors::push::Relay`]; this module implements them with async-nats:
//! - [`membership`]: heartbeats on `<prefix>.hb`, the live view and its version, the paused
//!   node's way back;
//! - [`placement`]: [`ClusterPlacement`], owners by rendezvous hashing over the view, epochs
//!   claimed in the store and cached;
//! - [`rpc`]: requests to an actor's owner on `<prefix>.node.<node>`, and the server that
//!   answers this node's;
//! - [`relay`]: delivery once per node, the [`chorus_actors::push::Relay`] of a cluster:
//!   account and group events to the nodes that have devices for them, on
//!   `<prefix>.a.<account>` and `<prefix>.g.<group>`;
//! - [`interest`]: which account and group subjects this node takes, and where what arrives
//!   goes;
//! - [`presence`]: every node's devices per account, on `<prefix>.presence.<node>`, so each
//!   node's presence table answers for the cluster.
//!
//! [`Cluster::start`] connects and starts the first three; `src/lib.rs` builds the domain
//! with its placement, then hands it the domain's [`Serve`] ([`Cluster::set_serve`]).
//! The subject prefix is `chorus.<keyspace>`, so two clusters sharing a NATS never mix.

pub mod interest;
pub mod membership;
pub mod placement;
pub mod presence;
pub mod relay;
pub mod rpc;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use async_nats::{Client, ConnectOptions, Event, ServerAddr};
use chorus_actors::place::{NodeId, Placement, Serve};
use chorus_actors::store::{OwnerStore, Store};
use serde::Serialize;
use tokio::sync::{Notify, broadcast};
use tokio::task::JoinHandle;

pub use membership::{Member, Membership, Phase, Timing, View};
pub use placement::ClusterPlacement;
pub use rpc::{Forwarder, RequestServer};

use crate::error::Error;
use relay::ClusterRelay;

/// Commands (publishes, subscribes, requests) queued for the NATS connection, from every
/// user of the client; a publisher waits when it is full (the relay never waits on an
/// actor's thread: it has its own queue).
pub const CLIENT_CAPACITY: usize = 8192;

/// Messages queued per subscription before NATS drops them (and says `SlowConsumer`).
pub const SUBSCRIPTION_CAPACITY: usize = 65_536;

/// Connection events kept for a slow [`Cluster::events`] receiver.
const EVENTS: usize = 64;

/// How long connecting to NATS may take at start-up before the server gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Cluster mode's settings (`--nats-url` and the `--cluster-*` flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// One URL, or several of one NATS cluster.
    pub nats_urls: Vec<String>,
    /// `--node-id`; `None`: `<hostname>-<port>` ([`default_node_id`]).
    pub node_id: Option<NodeId>,
    pub heartbeat: Duration,
    pub dead_after: Duration,
    pub request_timeout: Duration,
}

impl ClusterSettings {
    /// Checks the settings; the message names the flag.
    pub fn validate(&self) -> Result<(), String> {
        if self.nats_urls.is_empty() {
            return Err("--nats-url is empty".into());
        }
        for url in &self.nats_urls {
            url.parse::<ServerAddr>()
                .map_err(|e| format!("--nats-url {url:?} is not a NATS address: {e}"))?;
        }
        if let Some(id) = &self.node_id
            && !valid_node_id(id)
        {
            return Err(format!(
                "--node-id {id:?} must be 1 to 64 characters of [A-Za-z0-9_-] (it is a NATS subject token)"
            ));
        }
        if self.heartbeat < Duration::from_millis(10) || self.heartbeat > Duration::from_secs(60) {
            return Err("--cluster-heartbeat-ms must be from 10 to 60000".into());
        }
        if self.dead_after <= self.heartbeat * 2 {
            return Err(format!(
                "--cluster-dead-after-ms ({}) must be more than twice --cluster-heartbeat-ms ({}): \
                 one late heartbeat must not declare a node dead",
                self.dead_after.as_millis(),
                self.heartbeat.as_millis()
            ));
        }
        if self.dead_after > Duration::from_secs(600) {
            return Err("--cluster-dead-after-ms must be at most 600000".into());
        }
        if self.request_timeout < Duration::from_millis(10)
            || self.request_timeout > Duration::from_secs(600)
        {
            return Err("--cluster-request-timeout-ms must be from 10 to 600000".into());
        }
        Ok(())
    }

    pub fn timing(&self) -> Timing {
        Timing {
            heartbeat: self.heartbeat,
            dead_after: self.dead_after,
        }
    }
}

/// A node id is a NATS subject token: `[A-Za-z0-9_-]{1,64}`.
pub fn valid_node_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `raw` as a node id: every character outside `[A-Za-z0-9_-]` becomes `_`, cut to 64
/// characters; empty becomes `node`.
pub fn sanitize_node_id(raw: &str) -> NodeId {
    let id: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if id.is_empty() { "node".to_owned() } else { id }
}

/// `<hostname>-<port>`, sanitized: unique per process on one machine, stable across
/// restarts on the same port (built once the listener is bound, so port 0 shows the real
/// one).
pub fn default_node_id(port: u16) -> NodeId {
    let host = hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_owned());
    // Leave room for the port within the 64 characters.
    let host: String = host.chars().take(57).collect();
    sanitize_node_id(&format!("{host}-{port}"))
}

/// The subject prefix of a cluster over `keyspace`.
pub fn subject_prefix(keyspace: &str) -> String {
    format!("chorus.{keyspace}")
}

/// This node in a cluster: its NATS connection, membership, placement and request server.
/// Cheap to clone; the tasks stop when the last clone is dropped, or at
/// [`Cluster::shutdown`].
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    prefix: String,
    membership: Arc<Membership>,
    placement: ClusterPlacement,
    serve: Arc<OnceLock<Serve>>,
    /// The delivery side, once the domain exists ([`Cluster::relay_with`]).
    relay: OnceLock<Arc<ClusterRelay>>,
    events: broadcast::Sender<Event>,
    server: Mutex<Option<RequestServer>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in self.tasks.get_mut().unwrap_or_else(PoisonError::into_inner) {
            task.abort();
        }
    }
}

impl Cluster {
    /// Connects to NATS as `node` and starts heartbeating, listening to the others and
    /// serving requests (answered "unavailable" until [`Cluster::set_serve`]).
    ///
    /// NATS must be reachable now: a node that cannot reach it has no view and could only
    /// answer 503, so a clear start-up error (and a supervisor's restart) beats a process
    /// that looks up but is never ready. Once connected, the client reconnects on its own
    /// for as long as it takes, and `/readyz` says so meanwhile.
    pub async fn start(
        settings: &ClusterSettings,
        node: NodeId,
        keyspace: &str,
        http_addr: SocketAddr,
        store: Arc<dyn OwnerStore>,
    ) -> Result<Cluster, Error> {
        let prefix = subject_prefix(keyspace);
        let wake = Arc::new(Notify::new());
        let (events, _) = broadcast::channel(EVENTS);
        let urls = settings.nats_urls.join(",");
        let addrs = settings
            .nats_urls
            .iter()
            .map(|u| u.parse::<ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Config(format!("--nats-url {urls}: {e}")))?;
        let client = ConnectOptions::new()
            .name(&node)
            .no_echo()
            .client_capacity(CLIENT_CAPACITY)
            .subscription_capacity(SUBSCRIPTION_CAPACITY)
            .request_timeout(Some(settings.request_timeout))
            .connection_timeout(CONNECT_TIMEOUT)
            // A connection that silently died is found within about two of these.
            .ping_interval(settings.dead_after.max(Duration::from_secs(1)))
            .event_callback(on_event(node.clone(), wake.clone(), events.clone()))
            .connect(addrs)
            .await
            .map_err(|e| {
                Error::Internal(format!(
                    "cluster mode cannot reach NATS at {urls}: {e} (is nats-server running, and --nats-url right?)"
                ))
            })?;
        let subscribe = |what: &str, e: async_nats::SubscribeError| {
            Error::Internal(format!("cluster mode: subscribing to {what}: {e}"))
        };
        let membership = Arc::new(Membership::new(
            client.clone(),
            &prefix,
            node.clone(),
            http_addr.to_string(),
            settings.timing(),
            wake,
        ));
        let forwarder = Forwarder::new(client.clone(), &prefix, &node, settings.request_timeout);
        let placement = ClusterPlacement::new(membership.clone(), forwarder, store);
        let serve = Arc::new(OnceLock::new());
        let server = RequestServer::start(client.clone(), &prefix, &node, serve.clone())
            .await
            .map_err(|e| subscribe("requests", e))?;
        let tasks = membership
            .run()
            .await
            .map_err(|e| subscribe("heartbeats", e))?;
        tracing::info!(
            node = %node,
            nats = %urls,
            prefix = %prefix,
            heartbeat_ms = settings.heartbeat.as_millis(),
            dead_after_ms = settings.dead_after.as_millis(),
            "cluster mode: joining"
        );
        Ok(Cluster {
            inner: Arc::new(Inner {
                client,
                prefix,
                membership,
                placement,
                serve,
                relay: OnceLock::new(),
                events,
                server: Mutex::new(Some(server)),
                tasks: Mutex::new(tasks.into()),
            }),
        })
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        self.inner.membership.me()
    }

    /// The NATS connection (for the relay).
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// `chorus.<keyspace>`: every subject of this cluster starts with it.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The NATS connection's events from now on (`Disconnected`, `Connected`,
    /// `SlowConsumer`, …): what the relay needs to tell devices fed over NATS to resume.
    /// A receiver that falls more than a few dozen events behind skips the oldest.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// The relay to build the domain with (`Seams.relay`): it publishes on this node's
    /// connection now, and hears what other nodes publish once it is bound to the domain's
    /// hub and fan-out ([`ClusterRelay::bind`]). It is told of the connection's losses
    /// (every device fed over NATS resumes) and shows its counters on `GET /v1/cluster`.
    pub fn relay_with(&self, store: Arc<dyn Store>) -> Arc<ClusterRelay> {
        let relay = self
            .inner
            .relay
            .get_or_init(|| {
                ClusterRelay::start(
                    self.client().clone(),
                    self.prefix().to_owned(),
                    self.node_id(),
                    store,
                )
            })
            .clone();
        let mut events = self.events();
        let told = relay.clone();
        let task = tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(event) => told.on_event(&event),
                    // Events were missed: some may have been losses, so resume to be sure.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        told.connection_lost();
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        self.keep_tasks([task]);
        relay
    }

    /// Tasks that stop with this node ([`Cluster::shutdown`], or the last clone dropped).
    pub(crate) fn keep_tasks(&self, tasks: impl IntoIterator<Item = JoinHandle<()>>) {
        self.inner
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(tasks);
    }

    /// The placement to build the domain with (`Seams.placement`).
    pub fn placement(&self) -> Arc<dyn Placement> {
        Arc::new(self.inner.placement.clone())
    }

    pub fn membership(&self) -> &Arc<Membership> {
        &self.inner.membership
    }

    /// How this node runs requests forwarded to it: the domain's, once it exists. Set
    /// once; a second call is ignored (and logged).
    pub fn set_serve(&self, serve: Serve) {
        if self.inner.serve.set(serve).is_err() {
            tracing::warn!("cluster: the request handler was already set");
        }
    }

    /// Why this node is not ready to serve its share, if it is not (`/readyz`).
    pub fn not_ready(&self) -> Option<String> {
        self.inner.membership.not_ready()
    }

    /// What `GET /v1/cluster` shows.
    pub fn status(&self) -> Status {
        let view = self.inner.membership.view();
        let stats = self.inner.client.statistics();
        let mut nodes = view.owners.clone();
        if view.phase == Phase::Joining {
            nodes.push(view.me.clone());
            nodes.sort_by(|a, b| a.node.cmp(&b.node));
        }
        Status {
            node: view.me.node.clone(),
            incarnation: view.me.incarnation,
            phase: view.phase,
            connected: self.inner.membership.connected(),
            view_version: view.version,
            nodes,
            claims: self.inner.placement.claims_held(),
            relay: self.inner.relay.get().map(|r| r.stats()),
            nats: NatsCounters {
                in_msgs: stats.in_messages.load(Relaxed),
                out_msgs: stats.out_messages.load(Relaxed),
                in_bytes: stats.in_bytes.load(Relaxed),
                out_bytes: stats.out_bytes.load(Relaxed),
                connects: stats.connects.load(Relaxed),
            },
        }
    }

    /// Leaves the cluster: the others are told (they drop this node at once), this node's
    /// requests subject goes (callers get "no responders" and try the new owner) after the
    /// requests running finish, and the connection is flushed and closed. Idempotent.
    pub async fn shutdown(&self) {
        let server = self
            .inner
            .server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(server) = server else { return };
        for task in self
            .inner
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            task.abort();
        }
        self.inner.membership.leave().await;
        server.stop().await;
        if let Err(e) = self.inner.client.drain().await {
            tracing::debug!(error = %e, "draining the NATS connection");
        }
        tracing::info!(node = %self.node_id(), "cluster mode: left the cluster");
    }
}

/// `GET /v1/cluster`: this node, its view and its NATS traffic (internal; not in the wire
/// contract).
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub node: NodeId,
    pub incarnation: u64,
    pub phase: Phase,
    /// NATS is connected now.
    pub connected: bool,
    pub view_version: u64,
    /// The live nodes, this one included (while joining too), by id.
    pub nodes: Vec<Member>,
    /// Actor epochs this node holds.
    pub claims: usize,
    /// Events this node published and received for devices ([`relay`]).
    pub relay: Option<relay::RelayStats>,
    pub nats: NatsCounters,
}

/// The NATS client's counters since start (payload bytes, without protocol overhead).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct NatsCounters {
    pub in_msgs: u64,
    pub out_msgs: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    pub connects: u64,
}

/// The client's connection events: logged with this node's id, and a connection change
/// wakes the heartbeat task so membership reacts at once.
fn on_event(
    node: NodeId,
    wake: Arc<Notify>,
    events: broadcast::Sender<Event>,
) -> impl Fn(Event) -> futures_util::future::Ready<()> + Send + Sync + 'static {
    move |event| {
        // Nobody listening is fine.
        let _ = events.send(event.clone());
        match &event {
            Event::Connected => {
                tracing::info!(node = %node, "NATS connected");
                wake.notify_one();
            }
            Event::Disconnected => {
                tracing::warn!(node = %node, "NATS disconnected: this node serves no actor until it is back");
                wake.notify_one();
            }
            Event::SlowConsumer(sid) => {
                tracing::warn!(node = %node, sid, "NATS dropped messages for a subscription that fell behind");
            }
            other => tracing::info!(node = %node, event = %other, "NATS"),
        }
        futures_util::future::ready(())
    }
}
