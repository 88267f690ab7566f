//! The ScyllaDB side of the binary that needs no cluster: `chorus schema print`, and the
//! clear failures when settings are missing or no node answers. (The store itself is checked
//! by the shared conformance suite in `src/store/scylla`, against a real cluster whenever
//! `CHORUS_SCYLLA_NODES` is set.)

use std::net::TcpListener;
use std::process::{Command, Output};
use std::time::Duration;

fn chorus(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chorus"));
    cmd.args(args)
        .env_remove("CHORUS_SCYLLA_NODES")
        .env_remove("CHORUS_STORE")
        .env("RUST_LOG", "info");
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn chorus");
    // Every case here ends by itself; a hang is a failure, not a stuck test run.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let pid = child.id();
    let waiter = std::thread::spawn(move || child.wait_with_output().expect("wait"));
    while !waiter.is_finished() {
        if std::time::Instant::now() > deadline {
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("chorus {args:?} did not exit within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    waiter.join().expect("join")
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// A loopback port nobody listens on (bound, then released).
fn dead_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[test]
fn schema_print_fills_keyspace_and_replication() {
    let out = chorus(&[
        "schema",
        "print",
        "--scylla-keyspace",
        "chat_prod",
        "--scylla-replication",
        "{'class': 'NetworkTopologyStrategy', 'dc1': 3}",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cql = text(&out.stdout);
    assert!(
        cql.contains("CREATE KEYSPACE IF NOT EXISTS chat_prod"),
        "{cql}"
    );
    assert!(
        cql.contains("{'class': 'NetworkTopologyStrategy', 'dc1': 3}"),
        "{cql}"
    );
    assert!(
        cql.contains("CREATE TABLE IF NOT EXISTS chat_prod."),
        "{cql}"
    );
    // stdout is only CQL (pipeable into cqlsh): no log lines.
    assert!(!cql.contains("INFO"), "{cql}");
}

#[test]
fn schema_print_rejects_a_bad_keyspace_name() {
    let out = chorus(&["schema", "print", "--scylla-keyspace", "drop table x;"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(text(&out.stdout).is_empty());
    let err = text(&out.stdout) + &text(&out.stderr);
    assert!(err.contains("keyspace"), "{err}");
}

#[test]
fn scylla_store_without_nodes_is_a_config_error() {
    let out = chorus(&["--store", "scylla", "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(2));
    let log = text(&out.stdout) + &text(&out.stderr);
    assert!(log.contains("scylla"), "{log}");
}

#[test]
fn unreachable_cluster_fails_start_and_apply_clearly() {
    let node = format!("127.0.0.1:{}", dead_port());
    let out = chorus(&[
        "--store",
        "scylla",
        "--scylla-nodes",
        &node,
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!out.status.success());
    let log = text(&out.stdout) + &text(&out.stderr);
    assert!(log.contains("ScyllaDB"), "{log}");
    assert!(!log.contains("listening on"), "{log}");

    let out = chorus(&["schema", "apply", "--scylla-nodes", &node]);
    assert!(!out.status.success());
    let log = text(&out.stdout) + &text(&out.stderr);
    assert!(log.contains("applying the schema"), "{log}");
}
