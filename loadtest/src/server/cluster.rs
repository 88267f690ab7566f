//! `--nodes N`: a Chorus cluster on this machine for a run. The harness starts a nats-server
//! (ports of its own choosing, read from the ports file it writes), applies the schema to a
//! keyspace of the CQL node given by `--scylla-nodes`, and starts N `chorus` nodes in cluster
//! mode on 127.0.0.1:0 (docs/cluster.md). Clients are spread over the nodes round-robin; NATS
//! traffic per event is read from the server's `/varz` counters.
//!
//! The CQL node is not started here: `scripts/cql-node start` (or `scripts/cluster`) does
//! that, once, since it takes a minute.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::{Node, Target};
use crate::error::{Error, Result};
use crate::peers::Process;

/// What `--nodes` and its companions ask for.
#[derive(Debug, Clone)]
pub struct ClusterPlan {
    pub nodes: usize,
    /// `host:port,…` of the CQL cluster.
    pub scylla_nodes: String,
    pub keyspace: String,
    pub nats_bin: PathBuf,
}

/// The counters of nats-server's `/varz` that say how much crossed it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Varz {
    pub in_msgs: u64,
    pub out_msgs: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
}

impl Varz {
    /// What crossed the server between `earlier` and `self`.
    pub fn since(&self, earlier: &Varz) -> Varz {
        Varz {
            in_msgs: self.in_msgs.saturating_sub(earlier.in_msgs),
            out_msgs: self.out_msgs.saturating_sub(earlier.out_msgs),
            in_bytes: self.in_bytes.saturating_sub(earlier.in_bytes),
            out_bytes: self.out_bytes.saturating_sub(earlier.out_bytes),
        }
    }
}

/// The cluster's nats-server.
pub(super) struct Nats {
    process: Process,
    url: String,
    monitor: String,
    http: reqwest::Client,
}

impl Nats {
    fn start(bin: &PathBuf) -> Result<Nats> {
        let dir = tempfile::tempdir()?;
        let ports_dir = dir.path().to_path_buf();
        let mut cmd = Command::new(bin);
        cmd.args([
            "-a",
            "127.0.0.1",
            "-p",
            "-1",
            "-m",
            "-1",
            "--ports_file_dir",
        ])
        .arg(&ports_dir);
        let mut process = Process::spawn(cmd, dir, "nats-server", false)?;
        let file = ports_dir.join(format!("nats-server_{}.ports", process.pid));
        let deadline = Instant::now() + Duration::from_secs(10);
        let ports: serde_json::Value = loop {
            if let Ok(text) = std::fs::read_to_string(&file)
                && let Ok(ports) = serde_json::from_str(&text)
            {
                break ports;
            }
            process.check_alive("nats-server")?;
            if Instant::now() > deadline {
                return Err(Error::Unexpected(
                    "nats-server wrote no ports file in 10 s".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let first = |key: &str| {
            ports[key][0]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| Error::Unexpected(format!("no {key} port in {ports}")))
        };
        Ok(Nats {
            url: first("nats")?,
            monitor: first("monitoring")?,
            process,
            http: reqwest::Client::new(),
        })
    }

    /// `GET /varz`.
    pub(super) async fn varz(&self) -> Result<Varz> {
        let v: serde_json::Value = self
            .http
            .get(format!("{}/varz", self.monitor))
            .send()
            .await?
            .json()
            .await?;
        let n = |k: &str| v[k].as_u64().unwrap_or_default();
        Ok(Varz {
            in_msgs: n("in_msgs"),
            out_msgs: n("out_msgs"),
            in_bytes: n("in_bytes"),
            out_bytes: n("out_bytes"),
        })
    }
}

impl Target {
    /// Starts NATS and `plan.nodes` Chorus nodes of `bin` over `plan.keyspace` (made or
    /// brought up to date first with `chorus schema apply`).
    pub fn cluster(bin: &PathBuf, extra: &[String], plan: &ClusterPlan) -> Result<Target> {
        let nats = Nats::start(&plan.nats_bin)?;
        eprintln!(
            "cluster: nats-server {} (pid {})",
            nats.url, nats.process.pid
        );
        let out = Command::new(bin)
            .args(["schema", "apply", "--scylla-nodes", &plan.scylla_nodes])
            .args(["--scylla-keyspace", &plan.keyspace])
            .args([
                "--scylla-replication",
                "{'class': 'SimpleStrategy', 'replication_factor': 1}",
            ])
            .env("RUST_LOG", "warn")
            .output()
            .map_err(|e| Error::Unexpected(format!("cannot run {}: {e}", bin.display())))?;
        if !out.status.success() {
            return Err(Error::Unexpected(format!(
                "chorus schema apply on {} failed: {}",
                plan.scylla_nodes,
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let mut nodes = Vec::with_capacity(plan.nodes);
        for i in 0..plan.nodes {
            let mut args: Vec<String> = [
                "--store",
                "scylla",
                "--scylla-nodes",
                &plan.scylla_nodes,
                "--scylla-keyspace",
                &plan.keyspace,
                "--nats-url",
                &nats.url,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            args.extend(["--node-id".to_owned(), format!("n{i}")]);
            args.extend(extra.iter().cloned());
            let node = Node::spawn(bin, &args)?;
            eprintln!("cluster: node n{i} {}", node.base);
            nodes.push(node);
        }
        Ok(Target::of(nodes, Some(nats)))
    }
}
