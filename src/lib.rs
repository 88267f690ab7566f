//! Chorus: an actor-model fan-out server for IM groups and communities.
//!
//! # Bird's-eye view
//! The domain lives in crate `chorus-actors`: every account, group and community is an actor,
//! and [`chorus_actors::Chorus`] is the one facade through which anything reaches them. This
//! crate puts HTTP, WebSocket, the stores and the platform connectors around it. A request is
//! authenticated ([`http::auth`]), its input checked once with the domain's rules
//! ([`chorus_actors::model::limits`]), handed to one facade method, and answered once the
//! actors' change is durable. Events an actor emits are written to its log in the same atomic
//! write, then handed to the thread that owns each device's socket ([`ws`]): account events
//! through the hub and the device's outlet, group events through the fan-out lanes
//! ([`chorus_actors::push`]), encoded once and written many frames per `write`.
//!
//! # Code map
//! - [`config`]: each setting defined once (`config/settings.rs`), filled by flags, `CHORUS_*`
//!   environment, TOML file, defaults.
//! - [`http`]: routes of the contract (`accounts`, `platforms`, `proofs`, `activities`,
//!   `friends`, `groups`, `communities`), each calling the facade; [`http::auth`], every way a request
//!   authenticates (client token, community server key, either); the object-only JSON body
//!   extractor, the page query, query/path error mapping, `/healthz`; [`http::webapp`], the
//!   web client's files (`web/`, embedded) at `/`. No actor message and no store call
//!   appears here.
//! - [`ws`]: WebSockets on the thread that owns the socket: [`ws::upgrade`] takes the socket
//!   from actix-http after the handshake; [`ws::shard`], one per worker thread, writes every
//!   live frame (group events from the thread's fan-out lane, account events from the
//!   device's [`ws::WsOutlet`]), many per `write`; the session (`ws/session.rs`) reads client
//!   frames (`resume`, `ping`), pings, replays, enforces the limits (1009/1007), the mailbox
//!   (1013), the write timeout (a reset), and closes with 1001 at shutdown; [`ws::frames`]
//!   encodes and decodes frames.
//! - [`connectors`]: the platforms activities are released to (`webhook`, `mastodon`,
//!   `email`), each validating its link config and making one attempt (`retry_after.rs` reads
//!   a platform's `Retry-After`); the releaser in `chorus-actors` owns retries. The egress
//!   policy ([`connectors::egress`]) keeps links and releases to public addresses. A
//!   Mastodon link is proven with the instance when made; the SMTP relay also carries the
//!   codes that prove an email (`email/code.rs`, the domain's `Courier`).
//! - [`secrets`]: link secrets sealed at rest (ChaCha20-Poly1305) under the server key, and
//!   where that key comes from (`--secret-key-file`, the data directory, the keyspace).
//! - [`auth`]: argon2id passwords (at most `--password-hash-concurrency` at once), bearer
//!   tokens and server keys (stored hashed).
//! - [`limits`]: rate limits per client address (IPv4 address, IPv6 /64; through trusted
//!   proxies, [`http::client`]) and per normalised login; in cluster mode each bucket is
//!   counted on one node.
//! - [`cluster`]: cluster mode (`--nats-url`): membership by NATS heartbeats, placement by
//!   rendezvous hashing with epochs claimed in the store, requests to an actor's owner over
//!   NATS request/reply; `GET /v1/cluster` ([`http::cluster`]) shows its view.
//! - [`store`]: storage engines behind the actors' traits: [`store::fjall`], the embedded
//!   default (group commit), and [`store::scylla`] (`--store scylla`; schema in
//!   `src/store/scylla/schema.cql`, printed and applied by `chorus schema print|apply`).
//! - [`cluster`]: cluster mode over NATS; [`cluster::relay`] publishes each event once and
//!   delivers other nodes' events to this node's devices, [`cluster::interest`] keeps the
//!   subjects this node's devices need.
//! - [`error`]: the crate's error enum and the contract's error shape.
//! - [`metrics`]: `GET /metrics` in Prometheus's text format: the recorder installed once, the
//!   hot path's thread-local counts handed over per pass ([`metrics::push`]), the stores'
//!   commit latency and batch sizes, gauges read when scraped; `--metrics-token` guards it.
//! - [`health`]: what `/readyz` answers: the store's health, the recoveries running and, in
//!   cluster mode, the node's place in the cluster ([`health::Readiness`]).
//! - [`run`]: wires it all together (the HTTP server is built from actix-server and
//!   actix-http, so WebSocket upgrades get their socket) and shuts down gracefully. `main.rs`
//!   (the binary) only sets the allocator's arenas, reads the command line, sets up logging,
//!   and calls [`run`] or `chorus schema print|apply`.
//!
//! `docs/architecture.md` walks the rooms of both crates, their invariants, and the path of a
//! request and of a fan-out through them.
//!
//! # Invariants
//! - One path in: HTTP and WebSocket reach the domain only through [`chorus_actors::Chorus`].
//! - Acknowledged means durable: a 2xx or an event `seq` is given only after the store's
//!   write is durable (fjall: group commit synced; ScyllaDB: its consistency level met).
//! - Nobody waits for the slowest, and nothing queues without bound: a push is a `try_send`
//!   into a bounded lane; publishing answers 503 while the fan-out budget is spent; a device
//!   that stops reading is closed (1013) and, if it never reads, reset.
//! - A sick disk is visible, not fatal: a write the store cannot take now answers 503
//!   `unavailable` with `Retry-After`, reads go on, `/readyz` fails until the store takes
//!   writes again ([`health`]); every internal queue has a bound (docs/architecture.md,
//!   "Queues and their bounds").
//! - Bad input is data, not a crash: every failure leaves through [`error::Error`] in the
//!   contract's shape; nothing is stored for a rejected request.

pub mod auth;
pub mod cluster;
pub mod config;
pub mod connectors;
pub mod error;
pub mod health;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod secrets;
pub mod store;
pub mod ws;

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_http::HttpService;
use actix_service::{
    IntoServiceFactory, ServiceFactoryExt as _, fn_factory, fn_service, map_config,
};
use actix_web::dev::AppConfig;
use actix_web::{App, web};
use chorus_actors::store::{OwnerStore, Store};
use chorus_actors::{ActorConfig, Chorus, Courier, Seams, Verification};
use tokio::sync::watch;

use crate::auth::Passwords;
use crate::cluster::Cluster;
use crate::config::{Config, StoreKind};
use crate::connectors::egress::Egress;
use crate::connectors::email::EmailSender;
use crate::connectors::{ConnectorSettings, Connectors};
use crate::error::{Error, Result};
use crate::health::{Readiness, StoreHealth};
use crate::http::AppState;
use crate::limits::{ClusterLimiter, Limiter, Limits, LocalLimiter};
use crate::secrets::SecretBox;
use crate::secrets::key::Keeper;
use crate::store::{FjallStore, ScyllaStore};

/// The HTTP server on `listener`: actix-web's routes, and WebSocket upgrades handed with
/// their socket to [`ws::upgrade`] on the worker thread that accepted them (built from
/// actix-server and actix-http directly, because actix-web's `HttpServer` does not let a
/// handler own its socket). The defaults are those of `HttpServer`.
fn serve(
    listener: TcpListener,
    state: AppState,
    config: &Config,
    cluster: Option<Cluster>,
) -> Result<actix_server::Server> {
    let body_limit = config.body_limit;
    let server = actix_server::Server::build()
        .workers(config.workers)
        .disable_signals()
        .shutdown_timeout(5)
        .backlog(1024)
        .listen("chorus", listener, move || {
            let upgrade_state = state.clone();
            let app_state = state.clone();
            let mut app = App::new().app_data(web::Data::new(app_state));
            if let Some(cluster) = &cluster {
                // Only in cluster mode: `GET /v1/cluster` answers 404 without it.
                app = app.app_data(web::Data::new(cluster.clone()));
            }
            let app = app
                .configure(|cfg| http::configure(cfg, body_limit))
                .wrap_fn(http::panics::catch_panics)
                .into_factory()
                .map_err(|err| err.error_response());
            HttpService::build()
                .client_request_timeout(Duration::from_secs(5))
                .client_disconnect_timeout(Duration::from_secs(1))
                .upgrade(fn_factory(move || {
                    let state = upgrade_state.clone();
                    async move {
                        Ok::<_, ()>(fn_service(move |(req, framed)| {
                            let state = state.clone();
                            async move {
                                ws::upgrade(state, req, framed).await;
                                Ok::<_, actix_web::Error>(())
                            }
                        }))
                    }
                }))
                .finish(map_config(app, |_| AppConfig::default()))
                .tcp()
        })
        .map_err(|e| Error::Internal(format!("listen: {e}")))?
        .run();
    Ok(server)
}

/// How identifiers are proven (`chorus_actors::model::identity`): with `--smtp-url`, emails
/// by a code sent through the relay; without it nothing can prove them, so they are taken as
/// registered. Phones always are (no SMS gateway).
fn identities(config: &Config) -> Result<Verification> {
    let courier: Option<Arc<dyn Courier>> = match &config.smtp_url {
        Some(url) => Some(Arc::new(EmailSender::new(
            url,
            &config.smtp_from,
            config.release.attempt_timeout,
        )?)),
        None => None,
    };
    Ok(Verification {
        courier,
        ..config.verification.clone()
    })
}

/// Serves on `listener` until `shutdown` resolves, then stops taking connections, closes
/// every WebSocket with 1001, stops the actors and flushes the store. Must run inside an
/// actix `System` (as `#[actix_web::main]` provides).
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Internal(e.to_string()))?;
    let node_id = config.cluster.as_ref().map(|c| {
        c.node_id
            .clone()
            .unwrap_or_else(|| cluster::default_node_id(addr.port()))
    });
    // First, so that everything after records: in cluster mode every series says its node.
    metrics::install(node_id.as_deref());
    let key_file = config.secret_key_file.as_deref();
    let (store, store_desc, store_health, (key, key_desc)): (
        Arc<dyn Store>,
        String,
        StoreHealth,
        _,
    ) = match config.store {
        StoreKind::Fjall => {
            let store = FjallStore::open(&config.data_dir)
                .map_err(|e| {
                    Error::Internal(format!(
                        "opening store at {}: {e}",
                        config.data_dir.display()
                    ))
                })?
                .with_log_retention(config.caps.log_retention);
            let health = store.health();
            let key = secrets::key::server_key(key_file, Keeper::DataDir(&config.data_dir)).await?;
            (
                Arc::new(store),
                format!("embedded fjall at {}", config.data_dir.display()),
                health,
                key,
            )
        }
        StoreKind::Scylla => {
            let s = &config.scylla;
            let mut store = ScyllaStore::connect(s)
                .await
                .map_err(|e| Error::Internal(format!("connecting to ScyllaDB: {e}")))?
                .with_log_retention(config.caps.log_retention);
            if let Some(cluster) = &config.cluster {
                // A write whose epoch check answers later than half the time after which
                // the others take this node for dead is refused: the others may have
                // taken its actors over meanwhile (docs/scylla.md, "Owner epochs").
                store = store.with_fence_bound(cluster.dead_after / 2);
            }
            let key = secrets::key::server_key(key_file, Keeper::Cql(&store, &s.keyspace)).await?;
            (
                Arc::new(store),
                format!(
                    "scylla keyspace {} at {} ({})",
                    s.keyspace,
                    s.nodes.join(","),
                    s.consistency
                ),
                // A cluster has no sick state to wait out: each write that finds it
                // unavailable answers 503 on its own.
                StoreHealth::default(),
                key,
            )
        }
    };
    let armed = chorus_actors::faults::armed_points();
    if !armed.is_empty() {
        tracing::warn!(points = ?armed, "fault injection armed ({}): for tests only", chorus_actors::faults::ENV);
    }
    // Cluster mode: on NATS, in the view, taking requests, before the domain exists (its
    // placement is the cluster's).
    let cluster = match (&config.cluster, node_id) {
        (Some(settings), Some(node)) => {
            let owners: Arc<dyn OwnerStore> = store.clone();
            Some(Cluster::start(settings, node, &config.scylla.keyspace, addr, owners).await?)
        }
        _ => None,
    };
    let relay = cluster.as_ref().map(|c| c.relay_with(store.clone()));
    let seams = match (&cluster, &relay) {
        (Some(cluster), Some(relay)) => Seams {
            placement: cluster.placement(),
            relay: relay.clone(),
        },
        _ => Seams::default(),
    };
    let verification = identities(&config)?;
    let identities_line = verification.describe();
    let chorus = Chorus::with_seams(
        store.clone(),
        ActorConfig {
            idle_timeout: config.idle_timeout,
            arbiters: config.workers,
            binding_request_ttl: config.binding_request_ttl,
            fanout_budget: config.fanout_budget,
            caps: config.caps.clone(),
            presence: config.presence.clone(),
            verification,
        },
        seams,
    );
    let egress = Egress::new(config.allow_private_destinations);
    let connectors = Arc::new(Connectors::new(&ConnectorSettings {
        // A tenth under the releaser's bound, so that an attempt without an answer ends in
        // the connector, with its fixed reason, not in the releaser's backstop.
        timeout: config.release.attempt_timeout * 9 / 10,
        smtp_url: config.smtp_url.clone(),
        smtp_from: config.smtp_from.clone(),
        egress,
        secrets: Arc::new(SecretBox::new(&key)?),
    })?);
    // Links stored before secrets were sealed are sealed as their accounts activate.
    chorus.set_link_sealer(connectors.clone());
    tracing::info!("link secrets sealed under the key {key_desc}");
    if egress.allows_private() {
        tracing::warn!(
            "--allow-private-destinations: links may point at loopback and private addresses, \
             and Mastodon at plain http (for development and tests only)"
        );
    }
    // Once the domain exists, cluster mode hands it what other nodes forward here (until
    // then answered "unavailable") and binds the relay to its hub and fan-out.
    if let (Some(relay), Some(cluster)) = (&relay, &cluster) {
        relay.bind(chorus.hub().clone(), chorus.fanout().clone());
        cluster.share_presence(relay.clone(), chorus.presence().clone());
    }
    // This node's rate-limit buckets; in cluster mode, each key counted on its owner node,
    // which answers other nodes' checks before handing them the domain's routes.
    let local_limits = LocalLimiter::new(&config);
    let limiter: Arc<dyn Limiter> = match (&cluster, &config.cluster) {
        (Some(cluster), Some(settings)) => {
            cluster.set_serve(limits::cluster::serve_with(
                local_limits.clone(),
                chorus.serve(),
            ));
            Arc::new(ClusterLimiter::new(
                local_limits,
                cluster.placement(),
                settings.request_timeout,
            ))
        }
        _ => Arc::new(local_limits),
    };
    let readiness = Readiness::new(store_health);
    if let Some(cluster) = &cluster {
        let cluster = cluster.clone();
        readiness.follow_cluster(Arc::new(move || cluster.not_ready()));
    }
    // Before any request: the outbox is read while nothing new can be posted.
    let recovering = readiness.recovering("releases");
    let resumed = chorus
        .start_releaser(connectors.clone(), config.release.clone())
        .await
        .map_err(|e| Error::Internal(format!("starting the releaser: {e}")))?;
    drop(recovering);
    if resumed > 0 {
        tracing::info!(
            releases = resumed,
            "carrying on with unfinished platform releases"
        );
    }
    // Steps a previous run left (it crashed or stopped between an operation's first write
    // and its last step) are carried on with in the background while the server serves.
    let recovering = chorus.clone();
    // `/readyz` answers 503 until they are carried out (or left to the sweeper).
    let steps_guard = readiness.recovering("steps");
    actix_web::rt::spawn(async move {
        let _recovering = steps_guard;
        match recovering.recover_steps().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(steps = n, "carried on with unfinished cross-actor steps"),
            Err(e) => {
                tracing::error!(error = %e, "unfinished steps unreadable; the sweeper retries")
            }
        }
        recovering.drive_steps();
    });
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let rate_limits = Limits::new(limiter);
    let state = AppState {
        config: Arc::new(config.clone()),
        chorus: chorus.clone(),
        passwords: Passwords::new(config.password_hash, config.edge.password_hash_concurrency)?,
        limits: rate_limits.clone(),
        shutdown: shutdown_rx,
        connectors,
        readiness: readiness.clone(),
    };
    let state_platforms = state.connectors.platforms();
    metrics::zero_release_attempts(&state_platforms);
    let server = serve(listener, state, &config, cluster.clone())?;
    let handle = server.handle();
    let mode = cluster.as_ref().map_or_else(String::new, |c| {
        format!("; cluster node {} on {}", c.node_id(), c.prefix())
    });
    tracing::info!(
        "chorus listening on http://{addr} (store: {store_desc}; platforms: {}; {identities_line}{mode})",
        state_platforms.join(", ")
    );
    let pruner = actix_web::rt::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(limits::local::PRUNE_EVERY_SECS));
        loop {
            every.tick().await;
            rate_limits.prune();
        }
    });
    let mut served = actix_web::rt::spawn(server);
    let mut server_ended = false;
    tokio::select! {
        _ = shutdown => {}
        result = &mut served => {
            server_ended = true;
            tracing::error!(?result, "HTTP server stopped on its own");
        }
    }
    tracing::info!("shutting down: closing connections");
    readiness.shutting_down();
    // Events already accepted reach the sockets before the sessions close (bounded: the
    // grace period is 5 s).
    if tokio::time::timeout(Duration::from_secs(2), chorus.fanout().flush())
        .await
        .is_err()
    {
        tracing::warn!("fan-out lanes not drained in 2 s; closing anyway");
    }
    let _ = shutdown_tx.send(true);
    handle.stop(true).await;
    if !server_ended {
        let _ = served.await;
    }
    pruner.abort();
    if let Some(cluster) = &cluster {
        // The others drop this node now and take its actors over; its own stop below.
        cluster.shutdown().await;
    }
    chorus.shutdown();
    store
        .close()
        .await
        .map_err(|e| Error::Internal(format!("flushing store: {e}")))?;
    tracing::info!("shutdown complete");
    Ok(())
}
