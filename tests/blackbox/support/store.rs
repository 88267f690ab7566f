//! The store the servers under test run on: the embedded store (fjall, the default) or, with
//! `CHORUS_TEST_STORE=scylla`, the ScyllaDB store on the CQL cluster that
//! `CHORUS_TEST_SCYLLA_NODES` names (default `127.0.0.1:9042`, e.g. `scripts/cql-node`'s
//! node). So `cargo test --test blackbox` runs every black-box test on either store, and no
//! test knows which.
//!
//! With fjall, each server has a data directory of its own. The CQL equivalent, a keyspace per
//! server, would cost ~10 s of schema changes per test on a one-node Cassandra (the keyspace
//! and its tables, one schema change at a time). So servers lease keyspaces,
//! `chorus_bb_<n>`, from a pool instead:
//!
//! - A keyspace serves one server at a time (and its restarts: a server killed and started
//!   again keeps its keyspace, as it keeps its data directory with fjall). A file lock per
//!   keyspace and cluster, in the temporary directory, makes that hold across test processes
//!   too (two `cargo test` runs against one node at once).
//! - Before a server gets a keyspace, the tables that a server reads across entities are
//!   emptied: `claims` (login emails, phones and platform handles: a test's fixed
//!   `bob@example.com` would be taken by an earlier test or run) and `outbox` (every starting
//!   server resumes every unfinished release in it: it would release another test's
//!   activities to that test's receivers), and `steps` for the same reason (every server
//!   carries on every unfinished cross-actor step). Every other table is keyed by ids a server makes up
//!   afresh (accounts, tokens, groups, communities, activities), so what earlier tests left
//!   there is never reached.
//! - The pool grows to the number of servers running at once (about the number of test
//!   threads), each keyspace made by `chorus schema apply` the first time it is needed. The
//!   keyspaces outlive the run: the next run against the same node finds them made, and the
//!   apply then takes a fraction of a second.

use std::collections::HashSet;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;

/// The keyspaces' names: `chorus_bb_0`, `chorus_bb_1`, …
const KEYSPACE_PREFIX: &str = "chorus_bb_";
/// More servers than this at once would mean a leak, not a busy run.
const MAX_KEYSPACES: usize = 64;
/// One node: one replica.
const REPLICATION: &str = "{'class': 'SimpleStrategy', 'replication_factor': 1}";
/// The tables a server reads across entities, emptied before each lease (see the module doc).
const SHARED_TABLES: [&str; 3] = ["claims", "outbox", "steps"];

/// The store the servers of this run use, from the environment.
#[derive(Clone, Debug)]
enum TestStore {
    Fjall,
    Scylla { nodes: String },
}

fn test_store() -> &'static TestStore {
    static STORE: OnceLock<TestStore> = OnceLock::new();
    STORE.get_or_init(|| match std::env::var("CHORUS_TEST_STORE").as_deref() {
        Err(_) | Ok("") | Ok("fjall") => TestStore::Fjall,
        Ok("scylla") => TestStore::Scylla {
            nodes: std::env::var("CHORUS_TEST_SCYLLA_NODES")
                .ok()
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| "127.0.0.1:9042".into()),
        },
        Ok(other) => panic!("CHORUS_TEST_STORE={other}: want fjall or scylla"),
    })
}

/// Whether this run's servers use the CQL store (`CHORUS_TEST_STORE=scylla`), for the few
/// tests that are about that store only.
pub fn on_cql_store() -> bool {
    matches!(test_store(), TestStore::Scylla { .. })
}

/// What a server holds of the store for its lifetime: nothing with fjall (its data directory
/// is the server's own), a leased keyspace with scylla, shared by the nodes of a cluster.
pub struct StoreLease {
    keyspace: Option<Keyspace>,
}

impl StoreLease {
    /// The store of this run, ready for a new server: for scylla, a keyspace of the pool
    /// that no other server holds, with its shared tables emptied.
    pub fn take() -> StoreLease {
        match test_store() {
            TestStore::Fjall => StoreLease { keyspace: None },
            TestStore::Scylla { nodes } => StoreLease {
                keyspace: Some(Keyspace::lease(nodes)),
            },
        }
    }

    /// The `chorus` arguments that select this store.
    pub fn args(&self) -> Vec<String> {
        match (test_store(), &self.keyspace) {
            (TestStore::Scylla { nodes }, Some(ks)) => vec![
                "--store".into(),
                "scylla".into(),
                "--scylla-nodes".into(),
                nodes.clone(),
                "--scylla-keyspace".into(),
                ks.name.clone(),
            ],
            _ => vec!["--store".into(), "fjall".into()],
        }
    }
}

impl StoreLease {
    /// The leased keyspace (CQL store only).
    pub fn keyspace(&self) -> Option<&str> {
        self.keyspace.as_ref().map(|k| k.name.as_str())
    }

    /// The first column, as bytes (a blob or text), of every row `cql` selects, `values`
    /// bound in order as text (CQL store only).
    pub fn select_first_column(&self, cql: &str, values: Vec<String>) -> Vec<Vec<u8>> {
        let TestStore::Scylla { nodes } = test_store() else {
            panic!("a CQL read on the embedded store");
        };
        let session = admin_session(nodes);
        let cql = cql.to_string();
        on_admin_runtime(async move {
            let rows = session
                .query_unpaged(cql.as_str(), values)
                .await
                .map_err(|e| format!("{cql}: {e}"))?
                .into_rows_result()
                .map_err(|e| format!("{cql}: {e}"))?;
            let mut out = Vec::new();
            for row in rows
                .rows::<(scylla::value::CqlValue,)>()
                .map_err(|e| format!("{cql}: {e}"))?
            {
                let (value,) = row.map_err(|e| format!("{cql}: {e}"))?;
                out.push(match value {
                    scylla::value::CqlValue::Blob(b) => b,
                    scylla::value::CqlValue::Text(t) | scylla::value::CqlValue::Ascii(t) => {
                        t.into_bytes()
                    }
                    other => format!("{other:?}").into_bytes(),
                });
            }
            Ok::<_, String>(out)
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// A keyspace of the pool, held (by a file lock) until dropped.
struct Keyspace {
    name: String,
    _lock: File,
}

impl Keyspace {
    fn lease(nodes: &str) -> Keyspace {
        let dir = lock_dir(nodes);
        std::fs::create_dir_all(&dir).expect("create the keyspace lock directory");
        for n in 0..MAX_KEYSPACES {
            let name = format!("{KEYSPACE_PREFIX}{n}");
            let lock = File::create(dir.join(format!("{name}.lock"))).expect("open a lock file");
            // SAFETY: flock(2) on a descriptor we own; the lock goes with the file.
            if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                continue;
            }
            ensure_schema(nodes, &name);
            empty_shared_tables(nodes, &name);
            return Keyspace { name, _lock: lock };
        }
        panic!("all {MAX_KEYSPACES} test keyspaces are held: a server was not dropped?");
    }
}

/// Where the locks of `nodes`' keyspaces live: one directory per cluster.
fn lock_dir(nodes: &str) -> PathBuf {
    let cluster: String = nodes
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    std::env::temp_dir()
        .join("chorus-blackbox-keyspaces")
        .join(cluster)
}

/// `chorus schema apply` for `keyspace`, once per keyspace in this process (it is idempotent:
/// ~10 s on a keyspace that does not exist yet, a fraction of a second on one that does).
fn ensure_schema(nodes: &str, keyspace: &str) {
    static APPLIED: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    if APPLIED
        .lock()
        .expect("applied set")
        .get_or_insert_with(HashSet::new)
        .contains(keyspace)
    {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args(["schema", "apply", "--scylla-nodes", nodes])
        .args(["--scylla-keyspace", keyspace])
        .args(["--scylla-replication", REPLICATION])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run chorus schema apply");
    assert!(
        out.status.success(),
        "chorus schema apply --scylla-keyspace {keyspace} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    APPLIED
        .lock()
        .expect("applied set")
        .get_or_insert_with(HashSet::new)
        .insert(keyspace.to_string());
}

/// TRUNCATE of the tables a server reads across entities.
fn empty_shared_tables(nodes: &str, keyspace: &str) {
    let session = admin_session(nodes);
    let keyspace = keyspace.to_string();
    on_admin_runtime(async move {
        for table in SHARED_TABLES {
            let cql = format!("TRUNCATE {keyspace}.{table}");
            if let Err(e) = session.query_unpaged(cql.as_str(), ()).await {
                return Err(format!("{cql}: {e}"));
            }
        }
        Ok(())
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

/// One driver session for the pool's own statements, on [`admin_runtime`].
fn admin_session(nodes: &str) -> Arc<Session> {
    static SESSION: OnceLock<Arc<Session>> = OnceLock::new();
    let nodes: Vec<String> = nodes.split(',').map(|n| n.trim().to_string()).collect();
    SESSION
        .get_or_init(|| {
            on_admin_runtime(async move {
                let profile = ExecutionProfile::builder()
                    .request_timeout(Some(Duration::from_secs(60)))
                    .build();
                SessionBuilder::new()
                    .known_nodes(&nodes)
                    .default_execution_profile_handle(profile.into_handle())
                    .build()
                    .await
                    .map(Arc::new)
                    .map_err(|e| format!("connect to the CQL cluster {nodes:?}: {e}"))
            })
            .unwrap_or_else(|e| panic!("{e}"))
        })
        .clone()
}

/// Runs `fut` to its end on a runtime of the pool's own, from any thread (the tests call
/// [`StoreLease::take`] from inside their own runtimes, where blocking on another is refused).
fn on_admin_runtime<T: Send + 'static>(
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let rt = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("store-pool")
            .enable_all()
            .build()
            .expect("build the store pool's runtime")
    });
    let (tx, rx) = std::sync::mpsc::channel();
    rt.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv()
        .expect("the store pool's task ended without an answer")
}
