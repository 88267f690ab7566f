//! `chorus-loadtest`: drives a Chorus server (started by the harness by default) through one
//! scenario, bounded in time, and reports deliveries/s, latency quantiles from an HDR
//! histogram, server CPU per delivery and server RSS. Clients spread over loopback source
//! addresses; the harness raises its own open-file limit to the hard limit first.
//! `group-fanout --target` and `compare` also drive peer servers ([`peers`]) the same way.

mod api;
mod client;
mod compare;
mod error;
mod peers;
mod procfs;
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
use crate::scenarios::Common;
use crate::server::Target;

/// Targets of `group-fanout --target` and `compare --targets`, for `--help`.
const TARGETS_HELP: &str = "\
Targets (group-fanout --target, compare --targets), each started by the harness on 127.0.0.1:
  chorus      the Chorus server (--server-bin), or the one at --url
  nats29      nats-server 2.9, Debian's package (--nats29-bin)
  nats        nats-server 2.15.2, built by loadtest/peers/setup.sh (--nats-bin)
  centrifugo  Centrifugo v6.9.1, built by loadtest/peers/setup.sh (--centrifugo-bin)
  socketio    Socket.IO 4 on Node, loadtest/peers/socketio-server.js (--node-bin, --peers-dir)
Install the peers once with `bash loadtest/peers/setup.sh`. Every fan-out report gives the
server process's CPU per delivery (utime+stime over the publishing and drain window, from
/proc/PID/stat) beside deliveries/s, latency and RSS.";

#[derive(Parser)]
#[command(
    name = "chorus-loadtest",
    about = "Load harness for Chorus (and the peers it is compared with)",
    after_help = TARGETS_HELP
)]
struct Cli {
    /// Server binary to start for the run (on 127.0.0.1:0, fresh data dir, low hash cost).
    #[arg(long, default_value = "target/release/chorus")]
    server_bin: PathBuf,
    /// Extra argument for the started server (repeatable), e.g. --server-arg=--ws-mailbox=4096.
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// Use a server already running here instead of starting one.
    #[arg(long, conflicts_with = "nodes")]
    url: Option<String>,
    /// Start a cluster of N Chorus nodes (cluster mode: `--store scylla` over --scylla-nodes,
    /// and a nats-server the harness starts) instead of one server; clients and posts are
    /// spread over the nodes. Needs a CQL node (scripts/cql-node start).
    #[arg(long)]
    nodes: Option<usize>,
    /// CQL contact points of the cluster's store, with --nodes.
    #[arg(long, default_value = "127.0.0.1:9042")]
    scylla_nodes: String,
    /// Keyspace of the cluster's store, with --nodes (made by `chorus schema apply`).
    #[arg(long, default_value = "chorus_loadtest")]
    scylla_keyspace: String,
    /// PID of the server at --url, to read its CPU time and RSS.
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
    /// Debian's nats-server 2.9, target `nats29`, and the NATS of --nodes (bare names: PATH,
    /// /usr/sbin).
    #[arg(long, default_value = "/usr/sbin/nats-server")]
    nats29_bin: PathBuf,
    /// The current nats-server, target `nats` [default: PEERS_DIR/bin/nats-server].
    #[arg(long)]
    nats_bin: Option<PathBuf>,
    /// Centrifugo v6, target `centrifugo` [default: PEERS_DIR/bin/centrifugo].
    #[arg(long)]
    centrifugo_bin: Option<PathBuf>,
    /// Node.js binary, target `socketio`.
    #[arg(long, default_value = "node")]
    node_bin: PathBuf,
    /// `loadtest/peers`: socketio-server.js with its node_modules, and bin/ (setup.sh).
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
        /// Server to run against: chorus, or a peer the harness starts (see `--help`).
        #[arg(long, value_enum, default_value_t = Kind::Chorus)]
        target: Kind,
    },
    /// group-fanout against Chorus and each peer in turn (same G, M, payload, rate), then
    /// one table (medians over --runs) with server CPU per delivery and the ratios
    /// Chorus/peer.
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
            default_value = "chorus,nats29,nats,centrifugo,socketio"
        )]
        targets: Vec<Kind>,
        /// Rounds of every target (round-robin); the table gives each column's median.
        #[arg(long, default_value_t = 1,
              value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
        runs: usize,
        /// Write the table of medians (with each column's range) as Markdown here.
        #[arg(long)]
        markdown: Option<PathBuf>,
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

/// The Chorus server under test: started by the harness unless `--url` is given, or the
/// cluster `--nodes` asks for.
async fn chorus(cli: &Cli) -> error::Result<Target> {
    let target = match (&cli.url, cli.nodes) {
        (Some(url), _) => Target::attach(url.clone(), cli.server_pid),
        (None, Some(nodes)) => {
            let nats_bin = peers::find_program(&cli.nats29_bin).ok_or_else(|| {
                error::Error::Unexpected(format!(
                    "--nodes needs a nats-server: {} not found (apt-get install nats-server)",
                    cli.nats29_bin.display()
                ))
            })?;
            let plan = server::ClusterPlan {
                nodes: nodes.max(1),
                scylla_nodes: cli.scylla_nodes.clone(),
                keyspace: cli.scylla_keyspace.clone(),
                nats_bin,
            };
            Target::cluster(&cli.server_bin, &cli.server_args, &plan)?
        }
        (None, None) => Target::spawn(&cli.server_bin, &cli.server_args)?,
    };
    target.wait_healthy(&reqwest::Client::new()).await?;
    Ok(target)
}

fn peers(cli: &Cli) -> Peers {
    let dir = &cli.peers_dir;
    Peers {
        nats29_server: cli.nats29_bin.clone(),
        nats_server: cli
            .nats_bin
            .clone()
            .unwrap_or_else(|| dir.join("bin/nats-server")),
        centrifugo: cli
            .centrifugo_bin
            .clone()
            .unwrap_or_else(|| dir.join("bin/centrifugo")),
        node: cli.node_bin.clone(),
        dir: dir.clone(),
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
            runs,
            markdown,
        } => {
            let plan = compare::Plan {
                groups: *groups,
                members: *members,
                targets,
                runs: *runs,
                common: &common,
            };
            let out = compare::Outputs {
                json: cli.json.as_deref(),
                markdown: markdown.as_deref(),
                plot: cli.plot.as_deref(),
            };
            let outcomes = compare::compare(&plan, &peers(cli), || chorus(cli), &out).await?;
            return if *strict {
                compare::check_strict(&outcomes)
            } else {
                Ok(())
            };
        }
        Scenario::GroupFanout {
            groups,
            members,
            target,
        } if *target != Kind::Chorus => {
            let server = peers::start(*target, &peers(cli)).await?;
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
