use super::*;

fn cli(args: &[&str]) -> Cli {
    Cli::try_parse_from(std::iter::once("chorus").chain(args.iter().copied())).expect("parse")
}

#[test]
fn defaults_are_secure() {
    let cfg = Config::from_cli(&cli(&[])).expect("config");
    assert_eq!(cfg.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(cfg.body_limit, 65536);
    assert_eq!(cfg.password_hash.memory_kib, 19456);
    assert_eq!(cfg.release.max_attempts, 8);
    assert_eq!(cfg.release.attempt_timeout, Duration::from_secs(10));
    assert!(cfg.smtp_url.is_none());
}

#[test]
fn scylla_store_needs_nodes() {
    let err = Config::from_cli(&cli(&["--store", "scylla"])).expect_err("no nodes");
    assert!(err.to_string().contains("scylla"), "{err}");
    let cfg = Config::from_cli(&cli(&[
        "--store",
        "scylla",
        "--scylla-nodes",
        "10.0.0.1:9042, 10.0.0.2:9042",
    ]))
    .expect("config");
    assert_eq!(cfg.store, StoreKind::Scylla);
    assert_eq!(cfg.scylla.nodes, ["10.0.0.1:9042", "10.0.0.2:9042"]);
    assert_eq!(cfg.scylla.consistency, "local_quorum");
    let err = Config::from_cli(&cli(&[
        "--store",
        "scylla",
        "--scylla-nodes",
        "10.0.0.1:9042",
        "--scylla-keyspace",
        "bad-name",
    ]))
    .expect_err("bad keyspace");
    assert!(err.to_string().contains("keyspace"), "{err}");
}

#[test]
fn schema_command_parses() {
    let c = cli(&["schema", "print", "--scylla-keyspace", "chat"]);
    assert!(matches!(
        c.command,
        Some(Command::Schema {
            action: SchemaAction::Print
        })
    ));
    assert_eq!(c.settings.scylla_keyspace, "chat");
}

#[test]
fn release_settings_are_checked() {
    let cfg = Config::from_cli(&cli(&[
        "--release-max-attempts",
        "3",
        "--release-backoff-base-ms",
        "100",
    ]))
    .expect("config");
    assert_eq!(cfg.release.max_attempts, 3);
    assert_eq!(cfg.release.backoff_base, Duration::from_millis(100));
    let err = Config::from_cli(&cli(&["--release-max-attempts", "0"]))
        .expect_err("zero attempts must fail");
    assert!(err.to_string().contains("release_max_attempts"), "{err}");
}

#[test]
fn flags_win_over_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("chorus.toml");
    std::fs::write(&path, "listen = \"127.0.0.1:9000\"\nbody_limit = 2048\n").expect("write");
    let cfg = Config::from_cli(&cli(&[
        "--config",
        path.to_str().expect("utf8 path"),
        "--body-limit",
        "4096",
    ]))
    .expect("config");
    assert_eq!(cfg.listen.port(), 9000);
    assert_eq!(cfg.body_limit, 4096);
}

#[test]
fn bad_file_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("chorus.toml");
    std::fs::write(&path, "no_such_setting = 1\n").expect("write");
    let err = Config::from_cli(&cli(&["--config", path.to_str().expect("utf8 path")]))
        .expect_err("unknown key must fail");
    assert!(err.to_string().contains("no_such_setting"), "{err}");
}
