//! `chorus-loadtest`: drives a Chorus server (started by the harness by default) through one
//! scenario, bounded in time, and reports deliveries/s, latency quantiles from an HDR
//! histogram, and server RSS. Clients spread over loopback source addresses; the harness
//! raises its own open-file limit to the hard limit first.

mod api;
mod client;
mod error;
mod report;
mod scenarios;
mod server;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

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
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// N idle authenticated WebSocket connections; server RSS per connection.
    Connect {
        #[arg(long, default_value_t = 1000)]
        connections: usize,
    },
    /// G groups x M online members; the group owners post messages.
    GroupFanout {
        #[arg(long, default_value_t = 1)]
        groups: usize,
        #[arg(long, default_value_t = 1000)]
        members: usize,
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

async fn run(cli: &Cli) -> error::Result<()> {
    let target = match &cli.url {
        Some(url) => Target::attach(url.clone(), cli.server_pid),
        None => Target::spawn(&cli.server_bin, &cli.server_args)?,
    };
    let http = reqwest::Client::new();
    target.wait_healthy(&http).await?;
    let common = Common {
        duration: Duration::from_secs(cli.duration),
        sources: cli.sources,
        rate: cli.rate,
        publishers: cli.publishers,
        payload: cli.payload.max(32),
    };
    let report = match &cli.scenario {
        Scenario::Connect { connections } => {
            scenarios::connect(&target, *connections, &common).await?
        }
        Scenario::GroupFanout { groups, members } => {
            scenarios::group_fanout(&target, *groups, *members, &common).await?
        }
        Scenario::CommunityDynamics {
            groups,
            members,
            posters,
        } => scenarios::community_dynamics(&target, *groups, *members, *posters, &common).await?,
        Scenario::ProfileSync { friends, devices } => {
            scenarios::profile_sync(&target, *friends, *devices, &common).await?
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
