//! The local CQL node of `scripts/cql-node`, paused on purpose: SIGSTOP of its JVM makes every
//! request in flight time out on the client and land when the node resumes, the ambiguous
//! write of docs/cql-node-findings.md, finding 2. Used by the ScyllaDB store's own test
//! (`src/store/scylla/tests/ambiguous.rs`) and the black-box one (`tests/blackbox/ambiguous.rs`).
//!
//! The node is found by its pid file, `$CQL_NODE_DIR/node.pid` (default
//! `<repo>/.cql-node/node.pid`, where the script puts it); a test without one skips, unless
//! `CHORUS_REQUIRE_CQL_NODE` is set (as `.ci/run` does), where a missing node fails it.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

/// The pid of the local node's JVM, if its pid file names a live Cassandra process.
///
/// # Panics
/// When there is none and `CHORUS_REQUIRE_CQL_NODE` is set: CI must not pass by skipping.
pub fn node_pid() -> Option<String> {
    let pid = find_pid();
    if pid.is_none() && std::env::var_os("CHORUS_REQUIRE_CQL_NODE").is_some() {
        panic!("CHORUS_REQUIRE_CQL_NODE is set but no live CQL node pid file was found");
    }
    pid
}

fn find_pid() -> Option<String> {
    let dir = std::env::var_os("CQL_NODE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cql-node"));
    let pid = std::fs::read_to_string(dir.join("node.pid")).ok()?;
    let pid = pid.trim().to_owned();
    // A stale pid file whose pid was recycled must not get another process stopped.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    String::from_utf8_lossy(&cmdline)
        .contains("CassandraDaemon")
        .then_some(pid)
}

/// The node's JVM, paused for as long as this lives (resumed on drop, panics included).
/// One pause at a time per test process: tests pausing side by side would otherwise resume
/// the node under each other.
pub struct Paused {
    pid: String,
    _one_at_a_time: MutexGuard<'static, ()>,
}

impl Paused {
    pub fn node(pid: &str) -> Paused {
        static PAUSE: Mutex<()> = Mutex::new(());
        let one_at_a_time = PAUSE
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        signal("-STOP", pid);
        Paused {
            pid: pid.to_owned(),
            _one_at_a_time: one_at_a_time,
        }
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        signal("-CONT", &self.pid);
    }
}

fn signal(which: &str, pid: &str) {
    let status = Command::new("kill")
        .args([which, pid])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {which} {pid}");
}
