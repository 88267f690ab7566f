//! The Chorus server under test: started by the harness (the default, so that it knows the PID
//! for CPU and RSS and can set a low password-hash cost for fast provisioning), given by URL,
//! or a cluster of N nodes the harness starts with its nats-server (`--nodes`, [`cluster`]).
//!
//! Scenarios provision through [`Target::base`] (the first node) and spread their clients
//! over every node ([`Target::ws_url`]); CPU and memory are summed over the nodes.

pub mod cluster;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
pub use cluster::{ClusterPlan, Varz};

/// The server (or the nodes of a cluster) under test.
pub struct Target {
    /// The first node's base URL: where provisioning goes.
    pub base: String,
    nodes: Vec<Node>,
    /// The cluster's nats-server, when the harness started a cluster.
    nats: Option<cluster::Nats>,
}

/// One `chorus` process.
struct Node {
    base: String,
    pid: Option<u32>,
    child: Option<Child>,
    _data: Option<tempfile::TempDir>,
}

impl Target {
    /// Starts `bin` on 127.0.0.1:0 with a fresh data dir and a low password-hash cost.
    pub fn spawn(bin: &Path, extra: &[String]) -> Result<Target> {
        Ok(Target::of(vec![Node::spawn(bin, extra)?], None))
    }

    /// A server already running at `base` (CPU and RSS only if `pid` is given).
    pub fn attach(base: String, pid: Option<u32>) -> Target {
        let base = base.trim_end_matches('/').to_owned();
        Target::of(
            vec![Node {
                base,
                pid,
                child: None,
                _data: None,
            }],
            None,
        )
    }

    fn of(nodes: Vec<Node>, nats: Option<cluster::Nats>) -> Target {
        Target {
            base: nodes.first().map(|n| n.base.clone()).unwrap_or_default(),
            nodes,
            nats,
        }
    }

    /// How many nodes serve clients.
    pub fn node_count(&self) -> usize {
        self.nodes.len().max(1)
    }

    /// The base URL of node `i % nodes`.
    pub fn base_of(&self, i: usize) -> &str {
        self.nodes
            .get(i % self.node_count())
            .map_or(self.base.as_str(), |n| n.base.as_str())
    }

    /// The WebSocket URL of node `i % nodes`: client `i` connects there.
    pub fn ws_url(&self, i: usize) -> String {
        format!("{}/v1/ws", self.base_of(i).replacen("http://", "ws://", 1))
    }

    /// The PIDs whose CPU time a run measures (every node the harness knows the PID of).
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().filter_map(|n| n.pid).collect()
    }

    /// The servers' resident set size in KiB, from /proc, summed over the nodes.
    pub fn rss_kib(&self) -> Option<u64> {
        self.sum(|pid| crate::procfs::status_kib(pid, "VmRSS"))
    }

    /// The servers' peak resident set size so far in KiB (VmHWM), summed over the nodes.
    pub fn rss_peak_kib(&self) -> Option<u64> {
        self.sum(|pid| crate::procfs::status_kib(pid, "VmHWM"))
    }

    fn sum(&self, read: impl Fn(u32) -> Option<u64>) -> Option<u64> {
        let pids = self.pids();
        if pids.is_empty() {
            return None;
        }
        pids.into_iter().map(read).sum()
    }

    /// The cluster's NATS counters now (None on one node).
    pub async fn nats_counters(&self) -> Option<Varz> {
        match &self.nats {
            Some(nats) => nats.varz().await.ok(),
            None => None,
        }
    }

    /// Waits until every node's `/healthz` answers (and, in a cluster, until each is ready
    /// and sees every node).
    pub async fn wait_healthy(&self, http: &reqwest::Client) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        for node in &self.nodes {
            loop {
                if node
                    .ready(http, self.nats.is_some().then_some(self.nodes.len()))
                    .await
                {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(Error::Unexpected(format!("{} is not healthy", node.base)));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }
}

impl Node {
    /// Starts `bin` on 127.0.0.1:0 with a fresh data dir and a low password-hash cost, and
    /// waits for the address it prints.
    fn spawn(bin: &Path, extra: &[String]) -> Result<Node> {
        let data = tempfile::tempdir()?;
        let mut child = Command::new(bin)
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .args([
                "--password-hash-memory-kib",
                "64",
                "--password-hash-iterations",
                "1",
            ])
            // Every client is on 127.0.0.1: the per-address limits and the hash cap would
            // refuse the thousands of accounts provisioned at once (loadtest/README.md).
            .args(["--login-attempts-per-address", "1000000"])
            .args(["--account-creations-per-hour", "1000000"])
            .args(["--account-creation-burst", "1000000"])
            .args(["--contact-uploads-per-hour", "1000000"])
            .args(["--contact-upload-burst", "1000000"])
            .args(["--password-hash-concurrency", "1024"])
            // The release scenario's webhook receivers listen on 127.0.0.1, which the
            // egress policy refuses: the load test turns it off.
            .arg("--allow-private-destinations")
            .args(extra)
            .env("RUST_LOG", "warn,chorus=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::Unexpected(format!("cannot start {}: {e}", bin.display())))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error::Unexpected("server stdout not captured".into()))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                if !sent && let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    let _ = tx.send(addr);
                    sent = true;
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| Error::Unexpected("server did not report its address in 30 s".into()))?;
        Ok(Node {
            base: format!("http://{addr}"),
            pid: Some(child.id()),
            child: Some(child),
            _data: Some(data),
        })
    }

    /// `/healthz` answers, and in a cluster of `nodes`, `/readyz` too and `/v1/cluster`
    /// lists them all.
    async fn ready(&self, http: &reqwest::Client, nodes: Option<usize>) -> bool {
        let ok = |path: &'static str| async move {
            http.get(format!("{}{path}", self.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        };
        let Some(n) = nodes else {
            return ok("/healthz").await;
        };
        if !ok("/readyz").await {
            return false;
        }
        let view: Option<serde_json::Value> =
            match http.get(format!("{}/v1/cluster", self.base)).send().await {
                Ok(r) => r.json().await.ok(),
                Err(_) => None,
            };
        view.and_then(|v| v["nodes"].as_array().map(Vec::len)) == Some(n)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            // SIGTERM for a graceful stop, then make sure.
            if let Ok(pid) = i32::try_from(child.id()) {
                // SAFETY: kill(2) on our own child's pid.
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
