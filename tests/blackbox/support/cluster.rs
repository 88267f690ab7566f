//! A cluster under test: a real nats-server (`chorus_testkit::nats`) and N `chorus` processes
//! in cluster mode on 127.0.0.1, ports of their own, sharing one keyspace of the CQL store.
//!
//! Cluster mode needs the CQL store, so these tests run in the black-box pass on
//! `CHORUS_TEST_STORE=scylla` and skip (printing why) on the embedded store. `.ci/run` sets
//! `CHORUS_REQUIRE_NATS`, so a missing nats-server fails there instead of skipping.
//!
//! Three nodes and Cassandra on two cores leave little room, so cluster tests run one at a
//! time ([`TestCluster::start`] holds a process-wide lock), nodes use one actor thread and
//! one I/O thread each, and heartbeats are fast (200 ms, a node is dead after 1 s) so that a
//! test of node loss is over in seconds. Tests poll to a deadline; none times an assertion.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chorus_testkit::NatsServer;
use chorus_testkit::nats::Varz;

use super::http::get;
use super::server::Server;
use super::store::{StoreLease, on_cql_store};

/// Heartbeat period of the nodes under test.
pub const HEARTBEAT_MS: u64 = 200;
/// After this long without a heartbeat a node is taken for dead.
pub const DEAD_AFTER_MS: u64 = 1_000;

/// N nodes, their NATS and their keyspace. Dropping it kills them all.
pub struct TestCluster {
    pub nodes: Vec<Server>,
    pub nats: NatsServer,
    store: Arc<StoreLease>,
    _serial: MutexGuard<'static, ()>,
}

impl TestCluster {
    /// Starts `n` nodes and waits until each sees all of them and is ready. `None` (after
    /// printing why) when the run is not on the CQL store, or there is no nats-server.
    pub async fn start(n: usize) -> Option<TestCluster> {
        Self::start_with(n, &[]).await
    }

    /// [`TestCluster::start`] with environment variables for some nodes (fault points, say):
    /// `(node, name, value)`.
    pub async fn start_with(n: usize, env: &[(usize, &str, &str)]) -> Option<TestCluster> {
        Self::start_full(n, env, &[]).await
    }

    /// [`TestCluster::start`] with `args`, flags every node gets.
    pub async fn start_with_args(n: usize, args: &[&str]) -> Option<TestCluster> {
        Self::start_full(n, &[], args).await
    }

    async fn start_full(
        n: usize,
        env: &[(usize, &str, &str)],
        args: &[&str],
    ) -> Option<TestCluster> {
        if !on_cql_store() {
            println!("skipped: cluster mode needs the CQL store (CHORUS_TEST_STORE=scylla)");
            return None;
        }
        static SERIAL: Mutex<()> = Mutex::new(());
        // A test that failed while holding the lock poisons it; the next one may still run.
        let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let nats = NatsServer::start()?;
        let store = Arc::new(tokio::task::block_in_place(StoreLease::take));
        let mut cluster = TestCluster {
            nodes: Vec::with_capacity(n),
            nats,
            store,
            _serial: serial,
        };
        for i in 0..n {
            let mine: Vec<(&str, &str)> = env
                .iter()
                .filter(|(node, _, _)| *node == i)
                .map(|(_, k, v)| (*k, *v))
                .collect();
            let node = cluster.spawn_node(i, &mine, args);
            cluster.nodes.push(node);
        }
        cluster.wait_formed(n).await;
        Some(cluster)
    }

    fn spawn_node(&self, i: usize, env: &[(&str, &str)], extra: &[&str]) -> Server {
        let id = format!("n{i}");
        let heartbeat = HEARTBEAT_MS.to_string();
        let dead_after = DEAD_AFTER_MS.to_string();
        let mut args = vec![
            "--nats-url",
            self.nats.url(),
            "--node-id",
            id.as_str(),
            "--cluster-heartbeat-ms",
            heartbeat.as_str(),
            "--cluster-dead-after-ms",
            dead_after.as_str(),
            "--workers",
            "1",
        ];
        args.extend_from_slice(extra);
        tokio::task::block_in_place(|| Server::start_in(self.store.clone(), &args, env))
    }

    /// Node `i`.
    pub fn node(&self, i: usize) -> &Server {
        &self.nodes[i]
    }

    /// SIGKILL node `i`.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// The live nodes node `i` sees (by id).
    pub async fn live(&self, i: usize) -> Vec<String> {
        let view = get(&self.nodes[i], "/v1/cluster", None).await;
        if !view.status.is_success() {
            return Vec::new();
        }
        let mut nodes: Vec<String> = view.body["nodes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| m["node"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        nodes.sort();
        nodes
    }

    /// Waits (up to 60 s) until every running node is ready and sees `n` live nodes.
    pub async fn wait_formed(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut formed = true;
            for (i, node) in self.nodes.iter().enumerate() {
                if !node.running() {
                    continue;
                }
                let ready = get(node, "/readyz", None).await.status.is_success();
                if !ready || self.live(i).await.len() != n {
                    formed = false;
                    break;
                }
            }
            if formed {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not form ({n} nodes) in 60 s; views: {:?}",
                self.views().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn views(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        for i in 0..self.nodes.len() {
            out.push(if self.nodes[i].running() {
                self.live(i).await
            } else {
                vec!["(killed)".into()]
            });
        }
        out
    }

    /// The NATS server's message and byte counters now.
    pub fn varz(&self) -> Varz {
        tokio::task::block_in_place(|| self.nats.varz())
    }
}
