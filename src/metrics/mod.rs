//! `GET /metrics`: the server's metrics in Prometheus's text format.
//!
//! Every crate records through the `metrics` facade; [`install`] puts the Prometheus recorder
//! of `metrics-exporter-prometheus` behind it once per process (with the histograms' buckets,
//! a description of every name, and in cluster mode the global label `node`), and
//! [`scrape`] renders its text. Gauges that are a count of something the server already
//! keeps (devices, live actors, recipients in flight) are read when scraped ([`sample`]), so
//! they cost nothing in between. The names, their labels and what they mean are listed in
//! the README ("Metrics"); the domain's own are in `chorus_actors::metrics`.
//!
//! The WebSocket hot path ([`push`]) adds plain thread-local numbers per frame and hands them
//! to the recorder once per pass of the thread's lane: a group event to a thousand sockets
//! costs a few atomic adds, not a thousand.
//!
//! **Protection.** Served as is by default, as most exporters are (the numbers are counts,
//! never an id, an address or a token); with `--metrics-token` a scrape must carry it as a
//! bearer token (401 `unauthorized` otherwise), for a port that faces the internet.

pub mod push;
mod store;

use std::sync::OnceLock;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use chorus_actors::Chorus;
use chorus_actors::metrics as domain;
use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use subtle::ConstantTimeEq;

pub use self::store::{CommitTimer, store_batch};
use crate::auth::token_hash;
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::limits::Bucket;

/// WebSocket connections open on this node.
pub const WS_CONNECTIONS: &str = "chorus_ws_connections";
/// Devices attached to this node's hub (sampled).
pub const DEVICES_ONLINE: &str = "chorus_devices_online";
/// Accounts with at least one device on this node (sampled).
pub const ACCOUNTS_ONLINE: &str = "chorus_accounts_online";
/// Live events queued to a device's socket, by `kind` (`group`, `account`).
pub const EVENTS_PUSHED: &str = "chorus_events_pushed_total";
/// Events of an account's log sent again by `resume`.
pub const EVENTS_REPLAYED: &str = "chorus_events_replayed_total";
/// WebSocket frames queued to sockets (events, replays, `hello`, pings, pongs, errors, closes).
pub const WS_FRAMES: &str = "chorus_ws_frames_total";
/// `write` calls on WebSocket sockets.
pub const WS_WRITES: &str = "chorus_ws_writes_total";
/// Bytes the WebSocket sockets took.
pub const WS_WRITTEN_BYTES: &str = "chorus_ws_written_bytes_total";
/// Connections ended, by `code` (the close code sent, or `none` when the peer left or the
/// connection was reset).
pub const WS_CLOSES: &str = "chorus_ws_closes_total";
/// From a group event handed to the lanes to its frames written to one thread's sockets.
pub const FANOUT_DURATION: &str = "chorus_fanout_duration_seconds";
/// Recipients of group events handed to the lanes and not yet written (sampled).
pub const FANOUT_PENDING: &str = "chorus_fanout_pending_recipients";
/// How long a change set waits for its write to be durable, by `store`.
pub const STORE_COMMIT_DURATION: &str = "chorus_store_commit_duration_seconds";
/// Keys (fjall) or rows (CQL) per batch written, by `store`.
pub const STORE_BATCH_ROWS: &str = "chorus_store_batch_rows";
/// Change sets per group commit of the embedded store's writer.
pub const STORE_BATCH_WRITES: &str = "chorus_store_batch_writes";

/// Upper bounds of the latency histograms' buckets, in seconds.
const FANOUT_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0,
];
const COMMIT_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Upper bounds of the batch sizes' buckets (powers of 4 up to the writer's bounds).
const SIZE_BUCKETS: &[f64] = &[1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0];

/// How often recorded histogram samples are folded into their buckets, scraped or not.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder behind the `metrics` facade, once per process (a later
/// call keeps the first). `node`, in cluster mode, labels every series of this node.
pub fn install(node: Option<&str>) {
    if HANDLE.get().is_some() {
        return;
    }
    let mut builder = PrometheusBuilder::new();
    if let Some(node) = node {
        builder = builder.add_global_label("node", node);
    }
    let buckets = [
        (FANOUT_DURATION, FANOUT_BUCKETS),
        (STORE_COMMIT_DURATION, COMMIT_BUCKETS),
        (STORE_BATCH_ROWS, SIZE_BUCKETS),
        (STORE_BATCH_WRITES, SIZE_BUCKETS),
    ];
    for (name, bounds) in buckets {
        builder = match builder.set_buckets_for_metric(Matcher::Full(name.to_owned()), bounds) {
            Ok(b) => b,
            // Only an empty list fails, and none is.
            Err(e) => {
                tracing::error!(error = %e, "metrics buckets refused; /metrics is off");
                return;
            }
        };
    }
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    if let Err(e) = metrics::set_global_recorder(recorder) {
        tracing::warn!(error = %e, "another metrics recorder is installed; /metrics is off");
        return;
    }
    describe();
    zero_known_series();
    if HANDLE.set(handle.clone()).is_ok() {
        push::bind();
        let upkeep = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    handle.run_upkeep();
                }
            });
        if let Err(e) = upkeep {
            tracing::warn!(error = %e, "metrics upkeep thread not started");
        }
    }
}

/// The `# HELP` and `# TYPE` of every name, so a scrape lists them before they first move.
fn describe() {
    describe_gauge!(WS_CONNECTIONS, "WebSocket connections open on this node");
    describe_gauge!(DEVICES_ONLINE, "Devices attached on this node");
    describe_gauge!(ACCOUNTS_ONLINE, "Accounts with a device on this node");
    describe_counter!(
        EVENTS_PUSHED,
        "Live events queued to a device's socket, by kind"
    );
    describe_counter!(EVENTS_REPLAYED, "Account events sent again by resume");
    describe_counter!(WS_FRAMES, "WebSocket frames queued to sockets");
    describe_counter!(WS_WRITES, "write calls on WebSocket sockets");
    describe_counter!(
        WS_WRITTEN_BYTES,
        Unit::Bytes,
        "Bytes written to WebSocket sockets"
    );
    describe_counter!(WS_CLOSES, "WebSocket connections ended, by close code");
    describe_histogram!(
        FANOUT_DURATION,
        Unit::Seconds,
        "From a group event handed to the lanes to its frames written by one I/O thread"
    );
    describe_gauge!(
        FANOUT_PENDING,
        "Recipients of group events not yet written to their sockets"
    );
    describe_histogram!(
        STORE_COMMIT_DURATION,
        Unit::Seconds,
        "How long a change set waits for its write to be durable"
    );
    describe_histogram!(
        STORE_BATCH_ROWS,
        "Keys (fjall) or rows (CQL) per batch written"
    );
    describe_histogram!(
        STORE_BATCH_WRITES,
        "Change sets per group commit of the embedded store"
    );
    describe_counter!(
        domain::ACTIVATIONS,
        "Actors activated from the store, by kind"
    );
    describe_gauge!(domain::ACTORS_LIVE, "Live actors on this node, by kind");
    describe_counter!(
        domain::RELEASE_ATTEMPTS,
        "Release attempts, by platform and outcome"
    );
    describe_counter!(domain::RATE_LIMITED, "Requests refused by a limit, by kind");
    describe_counter!(domain::LANE_SHED, "Group events shed by a full lane");
}

/// The `code`s of [`WS_CLOSES`], as [`ws_closed`] writes them.
const CLOSE_CODES: [&str; 10] = [
    "none", "1000", "1001", "1002", "1007", "1008", "1009", "1011", "1013", "other",
];

/// The `kind`s of `chorus_rate_limited_total` the server records besides the limiter's
/// buckets ([`Bucket::token`]) and the domain's fan-out budget.
pub const VERIFICATION_CODE: &str = "verification_code";
pub const PASSWORD_HASH: &str = "password_hash";

/// Puts every series of a counter whose labels are known in advance at 0. `rate()` sees only
/// an increase between two scrapes, so a series born with its first event would hide that
/// event from every panel and alert: the first slow reader (1013), the first refusal of a
/// kind, the burst of activations when a node starts.
fn zero_known_series() {
    counter!(domain::LANE_SHED).absolute(0);
    for code in CLOSE_CODES {
        counter!(WS_CLOSES, "code" => code).absolute(0);
    }
    let kinds = Bucket::ALL.map(Bucket::token);
    for kind in kinds
        .into_iter()
        .chain([VERIFICATION_CODE, PASSWORD_HASH, domain::FANOUT_BUDGET])
    {
        counter!(domain::RATE_LIMITED, "kind" => kind).absolute(0);
    }
    for kind in domain::ACTOR_KINDS {
        counter!(domain::ACTIVATIONS, "kind" => kind).absolute(0);
    }
}

/// Puts the release attempts of each of `platforms` (the connectors this server has) at 0
/// for every outcome (see [`zero_known_series`]).
pub fn zero_release_attempts(platforms: &[&'static str]) {
    for platform in platforms {
        for outcome in domain::RELEASE_OUTCOMES {
            counter!(domain::RELEASE_ATTEMPTS, "platform" => *platform, "outcome" => outcome)
                .absolute(0);
        }
    }
}

/// Sets the gauges that count what the server keeps anyway.
fn sample(chorus: &Chorus) {
    let (accounts, devices) = chorus.hub().counts();
    gauge!(ACCOUNTS_ONLINE).set(accounts as f64);
    gauge!(DEVICES_ONLINE).set(devices as f64);
    gauge!(FANOUT_PENDING).set(chorus.fanout().pending() as f64);
    for (kind, live) in chorus.live_actors() {
        gauge!(domain::ACTORS_LIVE, "kind" => kind).set(live as f64);
    }
}

/// `GET /metrics`: the text exposition format 0.0.4. With `--metrics-token`, only for a
/// request that carries it as its bearer token.
pub async fn scrape(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse> {
    if let Some(token) = &state.config.metrics_token {
        let given = crate::http::auth::bearer(&req, false).unwrap_or_default();
        if !bool::from(token_hash(&given).ct_eq(&token_hash(token))) {
            return Err(Error::Unauthorized);
        }
    }
    let Some(handle) = HANDLE.get() else {
        return Err(Error::Internal("metrics recorder not installed".into()));
    };
    sample(&state.chorus);
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(handle.render()))
}

/// A connection ended: with the close `code` sent, or without one (`None`: the peer left,
/// or the connection was reset).
pub fn ws_closed(code: Option<u16>) {
    metrics::counter!(WS_CLOSES, "code" => close_label(code)).increment(1);
}

/// The `code` label of a close: one of [`CLOSE_CODES`].
fn close_label(code: Option<u16>) -> &'static str {
    match code {
        None => "none",
        Some(1000) => "1000",
        Some(1001) => "1001",
        Some(1002) => "1002",
        Some(1007) => "1007",
        Some(1008) => "1008",
        Some(1009) => "1009",
        Some(1011) => "1011",
        Some(1013) => "1013",
        Some(_) => "other",
    }
}

/// A request was refused by the limit `kind` (429 or 503).
pub fn rejected(kind: &'static str) {
    domain::rejected(kind);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every name this server records.
    const ALL: &[&str] = &[
        WS_CONNECTIONS,
        DEVICES_ONLINE,
        ACCOUNTS_ONLINE,
        EVENTS_PUSHED,
        EVENTS_REPLAYED,
        WS_FRAMES,
        WS_WRITES,
        WS_WRITTEN_BYTES,
        WS_CLOSES,
        FANOUT_DURATION,
        FANOUT_PENDING,
        STORE_COMMIT_DURATION,
        STORE_BATCH_ROWS,
        STORE_BATCH_WRITES,
        domain::ACTIVATIONS,
        domain::ACTORS_LIVE,
        domain::RELEASE_ATTEMPTS,
        domain::RATE_LIMITED,
        domain::LANE_SHED,
    ];

    /// The `chorus_*` names `text` mentions, a histogram's series (`_bucket`, `_sum`,
    /// `_count`) read as the histogram.
    fn mentioned(text: &str) -> Vec<String> {
        let mut names = Vec::new();
        let mut rest = text;
        while let Some(at) = rest.find("chorus_") {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            let name = &tail[..end];
            let name = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            names.push(name.to_owned());
            rest = &tail[end..];
        }
        names
    }

    #[test]
    fn names_are_prometheus_style_with_the_prefix_and_a_unit_where_one_applies() {
        for name in ALL {
            assert!(name.starts_with("chorus_"), "{name}");
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
        }
        for timed in [FANOUT_DURATION, STORE_COMMIT_DURATION] {
            assert!(timed.ends_with("_seconds"), "{timed}");
        }
    }

    #[test]
    fn the_readme_lists_every_metric_and_the_dashboard_uses_only_real_ones() {
        let readme = include_str!("../../README.md");
        for name in ALL {
            assert!(
                readme.contains(&format!("| `{name}` |")),
                "README's metrics table lacks {name}"
            );
        }
        let dashboard = include_str!("../../docs/grafana/chorus.json");
        let used = mentioned(dashboard);
        assert!(!used.is_empty());
        for name in &used {
            assert!(
                ALL.contains(&name.as_str()),
                "dashboard uses unknown {name}"
            );
        }
        for wanted in [
            WS_CONNECTIONS,
            EVENTS_PUSHED,
            FANOUT_DURATION,
            WS_CLOSES,
            STORE_COMMIT_DURATION,
            domain::RELEASE_ATTEMPTS,
            domain::RATE_LIMITED,
        ] {
            assert!(used.iter().any(|u| u == wanted), "dashboard lacks {wanted}");
        }
    }

    #[test]
    fn every_close_label_is_one_put_at_zero() {
        let labels: Vec<_> = std::iter::once(None)
            .chain((0..=u16::MAX).map(Some))
            .map(close_label)
            .collect();
        for label in &labels {
            assert!(CLOSE_CODES.contains(label), "{label}");
        }
        for code in CLOSE_CODES {
            assert!(labels.contains(&code), "{code} is never written");
        }
    }

    #[test]
    fn without_a_recorder_the_hot_path_counts_and_drops() {
        push::group_event();
        push::fanned_out(std::time::Instant::now());
        push::wrote(10);
        push::flush();
        push::flush();
    }
}
