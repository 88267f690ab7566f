//! `chorus-loadtest`: drives a Chorus server (started by the harness by default) through one
//! scenario, bounded in time, and reports deliveries/s, latency quantiles from an HDR
//! histogram, and server RSS. Clients spread over loopback source addresses; the harness
//! raises its own open-file limit to the hard limit first.

mod api;
mod client;
mod error;
mod peers;
mod report;
mod scenarios;
mod server;
mod sink;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::peers::{Kind, Peers};
use crate::report::Report;
use crate::scenarios::Common;
use crate::server::Target;

#[derive(Parser)]
#[command(name = "chorus-loadtest", about = "Load harness for Chorus")]
struct Cli {
    /// Server binary to start for the run (on 127.0.0.1:0, fresh data dir, low hash cost).
    #[arg(long, default_value = "target/release/chorus")]
    server_bin: PathBuf,
    /// Extra argument for the started server (repeatable), e.g. --server-arg=--ws-mailbox=4096.
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// Use a server already running here instead of starting one.
    #[arg(long)]
    url: Option<String>,
    /// PID of the server at --url, to read its RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Seconds of publishing (or of holding connections).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Loopback source addresses to spread client sockets over (127.0.0.2 on).
    #[arg(long, default_value_t = 8)]
    sources: usize,
    /// Messages per second over all publishers; 0 publishes flat out.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Concurrent publishers when --rate 0.
    #[arg(long, default_value_t = 8)]
    publishers: usize,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 100)]
    payload: usize,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write throughput and latency over time as SVG here.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Hard stop for the whole run, provisioning included.
    #[arg(long, default_value_t = 900)]
    max_seconds: u64,
    /// nats-server binary for `--target nats` and `compare` (bare names: PATH, /usr/sbin).
    #[arg(long, default_value = "nats-server")]
    nats_server_bin: PathBuf,
    /// Node.js binary for `--target socketio` and `compare`.
    #[arg(long, default_value = "node")]
    node_bin: PathBuf,
    /// Directory with socketio-server.js and its node_modules (`loadtest/peers`).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/peers"))]
    peers_dir: PathBuf,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// N idle authenticated WebSocket connections; server RSS per connection.
    Connect {
        #[arg(long, default_value_t = 1000)]
        connections: usize,
        /// Connections one process holds; more are spread over child processes (default:
        /// this process's open-file limit less a margin).
        #[arg(long)]
        per_process: Option<usize>,
    },
    /// (internal) A child of `connect` holding the connections of the tokens in a file until
    /// its standard input closes.
    #[command(hide = true)]
    ConnectWorker {
        #[arg(long)]
        tokens_file: PathBuf,
    },
    /// G groups x M online members; the group owners post messages (or, for a peer, one
    /// more client publishes to the group's subject / room).
    GroupFanout {
        #[arg(long, default_value_t = 1)]
        groups: usize,
        #[arg(long, default_value_t = 1000)]
        members: usize,
        /// Server to run against: chorus, or a peer the harness starts (nats, socketio).
        #[arg(long, value_enum, default_value_t = Kind::Chorus)]
        target: Kind,
    },
    /// group-fanout against Chorus and each peer in turn (same G, M, payload, rate), then
    /// one table with the ratios Chorus/peer.
    Compare {
        #[arg(long, default_value_t = 1)]
        groups: usize,
        #[arg(long, default_value_t = 1000)]
        members: usize,
        /// Targets to run, in order.
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "chorus,nats,socketio"
        )]
        targets: Vec<Kind>,
        /// Exit non-zero if any target could not be started or its run failed (for CI,
        /// where loadtest/peers/setup.sh has installed the peers).
        #[arg(long)]
        strict: bool,
    },
    /// One community bound to K groups of M members; P members post dynamics.
    CommunityDynamics {
        #[arg(long, default_value_t = 2)]
        groups: usize,
        #[arg(long, default_value_t = 500)]
        members: usize,
        #[arg(long, default_value_t = 10)]
        posters: usize,
    },
    /// A accounts, each with P webhook platforms linked (P sinks in the harness, every account
    /// linked to each); the accounts post activities, and the sinks time each delivery from
    /// the post's due time.
    Release {
        #[arg(long, default_value_t = 50)]
        accounts: usize,
        #[arg(long, default_value_t = 4)]
        platforms: usize,
    },
    /// One account with F friends x D devices changes its profile.
    ProfileSync {
        #[arg(long, default_value_t = 1000)]
        friends: usize,
        #[arg(long, default_value_t = 2)]
        devices: usize,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let (soft, hard) = client::raise_nofile();
    eprintln!("open-file limit: {soft} (hard {hard})");
    let limit = Duration::from_secs(cli.max_seconds);
    match tokio::time::timeout(limit, run(&cli)).await {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("error: the run exceeded --max-seconds {}", cli.max_seconds);
            ExitCode::FAILURE
        }
    }
}

/// The Chorus server under test: started by the harness unless `--url` is given.
async fn chorus(cli: &Cli) -> error::Result<Target> {
    let target = match &cli.url {
        Some(url) => Target::attach(url.clone(), cli.server_pid),
        None => Target::spawn(&cli.server_bin, &cli.server_args)?,
    };
    target.wait_healthy(&reqwest::Client::new()).await?;
    Ok(target)
}

fn peers(cli: &Cli) -> Peers {
    Peers {
        nats_server: cli.nats_server_bin.clone(),
        node: cli.node_bin.clone(),
        dir: cli.peers_dir.clone(),
    }
}

async fn run(cli: &Cli) -> error::Result<()> {
    let common = Common {
        duration: Duration::from_secs(cli.duration),
        sources: cli.sources,
        rate: cli.rate,
        publishers: cli.publishers,
        payload: cli.payload.max(32),
    };
    if let Scenario::ConnectWorker { tokens_file } = &cli.scenario {
        let target = chorus(cli).await?;
        return scenarios::connect_worker(&target, tokens_file, &common).await;
    }
    let report = match &cli.scenario {
        Scenario::Compare {
            groups,
            members,
            targets,
            strict,
        } => return compare(cli, *groups, *members, targets, *strict, &common).await,
        Scenario::GroupFanout {
            groups,
            members,
            target: kind @ (Kind::Nats | Kind::Socketio),
        } => {
            let server = peers::start(*kind, &peers(cli)).await?;
            server.group_fanout(*groups, *members, &common).await?
        }
        scenario => {
            let target = chorus(cli).await?;
            match scenario {
                Scenario::Connect {
                    connections,
                    per_process,
                } => {
                    let (soft, _) = client::raise_nofile();
                    let default = (soft as usize).saturating_sub(1000).max(100);
                    let per_process = per_process.unwrap_or(default);
                    scenarios::connect(&target, *connections, per_process, &common).await?
                }
                Scenario::GroupFanout {
                    groups, members, ..
                } => scenarios::group_fanout(&target, *groups, *members, &common).await?,
                Scenario::CommunityDynamics {
                    groups,
                    members,
                    posters,
                } => {
                    scenarios::community_dynamics(&target, *groups, *members, *posters, &common)
                        .await?
                }
                Scenario::Release {
                    accounts,
                    platforms,
                } => scenarios::release(&target, *accounts, *platforms, &common).await?,
                Scenario::ProfileSync { friends, devices } => {
                    scenarios::profile_sync(&target, *friends, *devices, &common).await?
                }
                Scenario::Compare { .. } | Scenario::ConnectWorker { .. } => {
                    return Err(error::Error::Unexpected("compare handled above".into()));
                }
            }
        }
    };
    report.print();
    if let Some(path) = &cli.json {
        report.write_json(path)?;
    }
    if let Some(path) = &cli.plot {
        report.plot(path)?;
    }
    Ok(())
}

/// What became of one target in `compare`.
enum Outcome {
    Ran(Box<Report>),
    /// The server could not be started (binary or package missing, ...).
    NotStarted(String),
    /// It started but the run failed.
    Failed(String),
}

/// `compare`: group-fanout against each target in turn, each server started for its run
/// and stopped after it; then one table and the ratios Chorus/peer.
async fn compare(
    cli: &Cli,
    groups: usize,
    members: usize,
    targets: &[Kind],
    strict: bool,
    common: &Common,
) -> error::Result<()> {
    let peers = peers(cli);
    let mut outcomes: Vec<(Kind, Outcome)> = Vec::new();
    for &kind in targets {
        eprintln!("== compare: {} ({groups} x {members})", kind.name());
        let outcome = match kind {
            Kind::Chorus => match chorus(cli).await {
                Err(e) => Outcome::NotStarted(e.to_string()),
                Ok(target) => {
                    match scenarios::group_fanout(&target, groups, members, common).await {
                        Ok(r) => Outcome::Ran(Box::new(r)),
                        Err(e) => Outcome::Failed(e.to_string()),
                    }
                }
            },
            peer => match peers::start(peer, &peers).await {
                Err(e) => Outcome::NotStarted(e.to_string()),
                Ok(server) => match server.group_fanout(groups, members, common).await {
                    Ok(r) => Outcome::Ran(Box::new(r)),
                    Err(e) => Outcome::Failed(e.to_string()),
                },
            },
        };
        match &outcome {
            Outcome::Ran(r) => {
                r.print();
                if let Some(path) = &cli.plot {
                    let path = path.with_file_name(format!(
                        "{}-{}.svg",
                        path.file_stem().unwrap_or_default().to_string_lossy(),
                        kind.name()
                    ));
                    if let Err(e) = r.plot(&path) {
                        eprintln!("warning: plot {}: {e}", path.display());
                    }
                }
            }
            Outcome::NotStarted(e) => eprintln!("{}: not started: {e}", kind.name()),
            Outcome::Failed(e) => eprintln!("{}: run failed: {e}", kind.name()),
        }
        outcomes.push((kind, outcome));
    }
    print_comparison(groups, members, common, &outcomes);
    if let Some(path) = &cli.json {
        let runs: Vec<serde_json::Value> = outcomes
            .iter()
            .map(|(kind, o)| match o {
                Outcome::Ran(r) => serde_json::json!({"target": kind.name(), "report": r}),
                Outcome::NotStarted(e) => {
                    serde_json::json!({"target": kind.name(), "not_started": e})
                }
                Outcome::Failed(e) => serde_json::json!({"target": kind.name(), "failed": e}),
            })
            .collect();
        let all = serde_json::json!({
            "scenario": "compare",
            "params": {"groups": groups, "members": members, "rate": common.rate,
                       "payload": common.payload, "duration_s": common.duration.as_secs()},
            "runs": runs,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&all)?)?;
    }
    let bad: Vec<&str> = outcomes
        .iter()
        .filter(|(_, o)| !matches!(o, Outcome::Ran(_)))
        .map(|(k, _)| k.name())
        .collect();
    if strict && !bad.is_empty() {
        return Err(error::Error::Unexpected(format!(
            "--strict: no result for {}",
            bad.join(", ")
        )));
    }
    Ok(())
}

fn print_comparison(groups: usize, members: usize, common: &Common, outcomes: &[(Kind, Outcome)]) {
    println!();
    println!(
        "== compare: group-fanout, {groups} groups x {members} members, {} msg/s, {} B payload, {} s",
        common.rate,
        common.payload,
        common.duration.as_secs()
    );
    println!(
        "   {:<10} {:>13} {:>9} {:>9} {:>9} {:>9} {:>10}",
        "target", "deliveries/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "delivered%"
    );
    for (kind, outcome) in outcomes {
        match outcome {
            Outcome::Ran(r) => {
                let (p50, p99, p999, max) = r
                    .collected
                    .as_ref()
                    .map(|c| {
                        let l = &c.latency;
                        (l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms)
                    })
                    .unwrap_or_default();
                println!(
                    "   {:<10} {:>13.0} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>10.2}",
                    kind.name(),
                    r.deliveries_per_s,
                    p50,
                    p99,
                    p999,
                    max,
                    delivered_pct(r)
                );
            }
            Outcome::NotStarted(e) => {
                println!("   {:<10} NOT STARTED: {e}", kind.name())
            }
            Outcome::Failed(e) => println!("   {:<10} RUN FAILED: {e}", kind.name()),
        }
    }
    let chorus = outcomes.iter().find_map(|(k, o)| match o {
        Outcome::Ran(r) if *k == Kind::Chorus => Some(r),
        _ => None,
    });
    for (kind, outcome) in outcomes {
        if *kind == Kind::Chorus {
            continue;
        }
        let line = match (chorus, outcome) {
            (Some(c), Outcome::Ran(p)) => {
                let p99 = |r: &Report| r.collected.as_ref().map(|c| c.latency.p99_ms);
                format!(
                    "deliveries/s {}   p99 {}",
                    ratio(Some(c.deliveries_per_s), Some(p.deliveries_per_s)),
                    ratio(p99(c), p99(p))
                )
            }
            (None, _) => "n/a (no chorus result)".into(),
            (_, _) => "n/a (no result for the peer)".into(),
        };
        println!("   chorus/{:<9} {line}", kind.name());
    }
    println!(
        "   (deliveries/s: above 1 = chorus delivers more; p99: below 1 = chorus is faster. At a \
         fixed --rate every target that keeps up delivers about rate x members per second.)"
    );
}

fn delivered_pct(r: &Report) -> f64 {
    if r.expected > 0 {
        r.delivered as f64 * 100.0 / r.expected as f64
    } else {
        0.0
    }
}

fn ratio(chorus: Option<f64>, peer: Option<f64>) -> String {
    match (chorus, peer) {
        (Some(c), Some(p)) if p > 0.0 => format!("x{:.2}", c / p),
        _ => "n/a".into(),
    }
}
