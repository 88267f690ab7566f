//! The scenarios. Each provisions what it needs through the public API, connects its clients,
//! publishes on an open-loop schedule (or flat out), waits for what it published to arrive,
//! and reports.
//!
//! One file per scenario, so each one's setup reads on its own; this module holds what they
//! (and the peer targets in [`crate::peers`]) share: the [`Common`] settings, the receiver
//! and publisher types, connecting clients, progress bars and the [`Report`] assembly.
//!
//! - `run.rs`: [`run_fanout`], the publishing schedule and the drain every fan-out
//!   scenario (and peer target) goes through.
//! - `connect.rs`: idle connections and server RSS per connection, spread over worker
//!   processes of this binary.
//! - `group_fanout.rs`: group messages to online members.
//! - `community_dynamics.rs`: community dynamics through bound groups.
//! - `profile_sync.rs`: a profile change pushed to every friend's devices.
//! - `release.rs`: activities released to webhook sinks run by the harness.

mod community_dynamics;
mod connect;
mod group_fanout;
mod profile_sync;
mod release;
mod run;

pub use community_dynamics::community_dynamics;
pub use connect::{connect, connect_worker};
pub use group_fanout::group_fanout;
pub use profile_sync::profile_sync;
pub use release::release;
pub use run::{Fanout, run_fanout};

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use futures_util::{StreamExt, stream};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;

use crate::client::{self, Ws};
use crate::error::{Error, Result};
use crate::report::Report;
use crate::server::Target;
use crate::stats;

/// Settings every scenario shares.
#[derive(Debug, Clone)]
pub struct Common {
    pub duration: Duration,
    pub sources: usize,
    /// Messages per second over all publishers; 0 = flat out.
    pub rate: f64,
    /// Concurrent publishers in flat-out mode.
    pub publishers: usize,
    pub payload: usize,
}

/// Publishes message `i` due at `due_ns` (wall clock) carrying [`client::payload`].
pub type Publish =
    Arc<dyn Fn(u64, u64) -> Pin<Box<dyn Future<Output = Result<()>> + Send>> + Send + Sync>;

/// A receiving client's task: answers frames read and why the server closed it, if it did.
pub type Receiver = tokio::task::JoinHandle<(u64, Option<String>)>;

/// Starts every receiving client, given where to record samples, the delivery counter to
/// bump per sample, and the stop signal.
pub type SpawnReceivers =
    Box<dyn FnOnce(stats::Recorder, Arc<AtomicU64>, watch::Receiver<bool>) -> Vec<Receiver> + Send>;

/// Receivers for Chorus WebSockets.
pub fn chorus_receivers(clients: Vec<Ws>) -> SpawnReceivers {
    Box::new(move |rec, delivered, stop| {
        clients
            .into_iter()
            .map(|ws| {
                tokio::spawn(client::receive(
                    ws,
                    rec.clone(),
                    delivered.clone(),
                    stop.clone(),
                ))
            })
            .collect()
    })
}

pub fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>14} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

/// Opens one WebSocket per token (tokens may repeat: several devices of one account), token
/// `i` on node `i % nodes` of the target.
pub async fn connect_all(
    target: &Target,
    tokens: &[String],
    sources: usize,
) -> Result<(Vec<Ws>, Vec<String>)> {
    let urls: Vec<String> = (0..target.node_count()).map(|i| target.ws_url(i)).collect();
    let servers = urls
        .iter()
        .map(|url| client::server_addr(url))
        .collect::<Result<Vec<_>>>()?;
    let (ok, errors) = open_all(tokens.len(), |i| {
        let node = i % urls.len();
        let url = format!("{}?token={}", urls[node], tokens[i]);
        let server = servers[node];
        async move { client::connect(&url, server, client::source(i, sources)).await }
    })
    .await;
    Ok((ok.into_iter().map(|(_, ws)| ws).collect(), errors))
}

/// Runs `open(i)` for i in 0..n, 256 at a time, each bounded by 30 s; answers the clients
/// that made it (with their index) and the errors.
pub async fn open_all<T, F, Fut>(n: usize, open: F) -> (Vec<(usize, T)>, Vec<String>)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let b = bar(n as u64, "connecting");
    let results: Vec<(usize, Result<T>)> = stream::iter(0..n)
        .map(|i| {
            let fut = open(i);
            let b = b.clone();
            async move {
                let r = match tokio::time::timeout(Duration::from_secs(30), fut).await {
                    Ok(r) => r,
                    Err(_) => Err(Error::Unexpected("client setup timed out (30 s)".into())),
                };
                b.inc(1);
                (i, r)
            }
        })
        .buffer_unordered(256)
        .collect()
        .await;
    b.finish_and_clear();
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for (i, r) in results {
        match r {
            Ok(c) => ok.push((i, c)),
            Err(e) => errors.push(e.to_string()),
        }
    }
    (ok, errors)
}

/// Builds the report of a fan-out run from what [`run_fanout`] answered; `expected` is the
/// deliveries if every recipient got every published message.
pub fn finish(
    scenario: &str,
    target: &Target,
    params: serde_json::Value,
    expected: u64,
    run: Fanout,
    extra: serde_json::Value,
) -> Report {
    let collected = run.collected;
    let active_s = (collected
        .last_recv_ns
        .saturating_sub(collected.first_recv_ns)) as f64
        / 1e9;
    Report {
        scenario: scenario.to_owned(),
        target: match target.node_count() {
            1 => target.base.clone(),
            n => format!("a cluster of {n} nodes ({} first)", target.base),
        },
        params,
        published: run.published,
        publish_failures: run.publish_failures,
        expected,
        delivered: collected.deliveries,
        active_s,
        deliveries_per_s: if active_s > 0.0 {
            collected.deliveries as f64 / active_s
        } else {
            0.0
        },
        frames_received: run.frames,
        closed_by_server: run.closed,
        server_window: run.server_window,
        server_rss_kib: target.rss_kib(),
        server_rss_peak_kib: target.rss_peak_kib(),
        extra,
        collected: Some(collected),
    }
}
