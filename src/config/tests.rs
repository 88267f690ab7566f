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
    // The egress policy is on, and the store keeps the secret key, unless told otherwise.
    assert!(!cfg.allow_private_destinations);
    assert_eq!(cfg.secret_key_file, None);
    // Without the command line: the same defaults, whatever the environment says.
    let plain = Config::default();
    assert_eq!(
        (plain.listen, plain.body_limit),
        (cfg.listen, cfg.body_limit)
    );
    assert_eq!(plain.scylla.replication, cfg.scylla.replication);
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
fn release_fairness_settings_are_read_and_checked() {
    let cfg = Config::default();
    assert_eq!(cfg.release.max_in_flight_per_account, 8);
    assert_eq!(cfg.release.max_held, 16_384);
    assert_eq!(cfg.release.max_held_per_account, 512);
    let cfg = Config::from_cli(&cli(&[
        "--release-per-account",
        "2",
        "--release-held",
        "100",
        "--release-held-per-account",
        "10",
    ]))
    .expect("config");
    assert_eq!(cfg.release.max_in_flight_per_account, 2);
    assert_eq!(cfg.release.max_held, 100);
    assert_eq!(cfg.release.max_held_per_account, 10);
    for bad in [
        ["--release-per-account", "0"],
        ["--release-held-per-account", "0"],
        ["--release-held", "10"],
    ] {
        let err = Config::from_cli(&cli(&bad)).expect_err("must fail");
        assert!(err.to_string().contains("release_"), "{bad:?}: {err}");
    }
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

/// Writes `text` as a TOML file in a fresh directory (kept alive by the returned guard).
fn file(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("chorus.toml");
    std::fs::write(&path, text).expect("write");
    let path = path.to_str().expect("utf8 path").to_owned();
    (dir, path)
}

#[test]
fn each_layer_wins_over_the_next() {
    let (_dir, path) =
        file("ws_mailbox = 7\nws_max_frame = 512\nworkers = 3\nscylla_keyspace = \"from_file\"\n");
    let cfg = Config::from_cli(&cli(&[
        "--config",
        &path,
        "--ws-mailbox",
        "5",
        "schema",
        "print",
        // A global flag after the command counts as given too.
        "--scylla-keyspace",
        "from_flag",
    ]))
    .expect("config");
    assert_eq!(cfg.ws_mailbox, 5, "flag over file");
    assert_eq!(cfg.ws_max_frame, 512, "file over default");
    assert_eq!(cfg.workers, 3, "file fills a setting without a default");
    assert_eq!(cfg.scylla.keyspace, "from_flag");
    assert_eq!(cfg.idle_timeout, Duration::from_secs(300), "default");
}

#[test]
fn a_flag_equal_to_the_default_still_wins_over_the_file() {
    let (_dir, path) = file("body_limit = 4096\n");
    let cfg =
        Config::from_cli(&cli(&["--config", &path, "--body-limit", "65536"])).expect("config");
    assert_eq!(cfg.body_limit, 65536);
}

/// Set in the child process that [`environment_sits_between_flags_and_file`] starts.
const CHILD: &str = "CHORUS_CONFIG_TEST_CHILD";

/// The environment is shared by every test running at once, so this one never changes it:
/// it runs itself again in a child process with the `CHORUS_*` variables set.
#[test]
fn environment_sits_between_flags_and_file() {
    let name = "config::tests::environment_sits_between_flags_and_file";
    if std::env::var_os(CHILD).is_none() {
        let (_dir, path) = file(
            "ws_mailbox = 7\nbody_limit = 4096\nws_max_frame = 512\nscylla_nodes = [\"c:3\"]\n",
        );
        let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([name, "--exact", "--nocapture"])
            .env(CHILD, "1")
            .env("CHORUS_CONFIG", &path)
            .env("CHORUS_WS_MAILBOX", "6")
            .env("CHORUS_BODY_LIMIT", "2048")
            .env("CHORUS_SCYLLA_NODES", "a:1,b:2")
            .env("CHORUS_ALLOW_PRIVATE_DESTINATIONS", "true")
            .env("CHORUS_SECRET_KEY_FILE", "/run/secrets/chorus.key")
            .output()
            .expect("run the child");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "child: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let cfg = Config::from_cli(&cli(&["--ws-mailbox", "5"])).expect("config");
    assert_eq!(cfg.ws_mailbox, 5, "flag over environment");
    assert_eq!(cfg.body_limit, 2048, "environment over file");
    assert_eq!(cfg.scylla.nodes, ["a:1", "b:2"], "environment over file");
    assert_eq!(
        cfg.ws_max_frame, 512,
        "file (named by CHORUS_CONFIG) over default"
    );
    assert_eq!(cfg.idle_timeout, Duration::from_secs(300), "default");
    assert!(cfg.allow_private_destinations, "environment");
    assert_eq!(
        cfg.secret_key_file.as_deref(),
        Some(Path::new("/run/secrets/chorus.key"))
    );
}

#[test]
fn egress_and_secret_key_settings_come_from_flags_and_file() {
    let cfg = Config::from_cli(&cli(&[
        "--allow-private-destinations",
        "--secret-key-file",
        "k.hex",
    ]))
    .expect("config");
    assert!(cfg.allow_private_destinations);
    assert_eq!(cfg.secret_key_file.as_deref(), Some(Path::new("k.hex")));
    let (_dir, path) =
        file("allow_private_destinations = true\nsecret_key_file = \"/etc/chorus/key\"\n");
    let cfg = Config::from_cli(&cli(&["--config", &path])).expect("config");
    assert!(cfg.allow_private_destinations);
    assert_eq!(
        cfg.secret_key_file.as_deref(),
        Some(Path::new("/etc/chorus/key"))
    );
}

#[test]
fn bad_value_in_file_names_key_and_line() {
    let (_dir, path) = file("listen = \"127.0.0.1:9000\"\nbody_limit = \"big\"\n");
    let err = Config::from_cli(&cli(&["--config", &path])).expect_err("string for a number");
    let msg = err.to_string();
    assert!(
        msg.contains("chorus.toml") && msg.contains("line 2"),
        "{msg}"
    );
    assert!(msg.contains("body_limit = \"big\""), "{msg}");
    // Even when a flag would override it, a broken file is an error.
    let err = Config::from_cli(&cli(&["--config", &path, "--body-limit", "4096"]))
        .expect_err("still broken");
    assert!(err.to_string().contains("line 2"), "{err}");
}

#[test]
fn bad_value_from_a_layer_fails_its_check() {
    let (_dir, path) = file("ws_max_frame = 10\n");
    let err = Config::from_cli(&cli(&["--config", &path])).expect_err("too small");
    assert!(err.to_string().contains("ws_max_frame"), "{err}");
    let err = cli_err(&["--body-limit", "lots"]);
    assert!(err.contains("--body-limit"), "{err}");
}

#[test]
fn missing_file_is_a_clear_error() {
    let err =
        Config::from_cli(&cli(&["--config", "/no/such/chorus.toml"])).expect_err("missing file");
    assert!(
        err.to_string().contains("cannot read /no/such/chorus.toml"),
        "{err}"
    );
}

fn cli_err(args: &[&str]) -> String {
    Cli::try_parse_from(std::iter::once("chorus").chain(args.iter().copied()))
        .expect_err("bad flag")
        .to_string()
}

const SCYLLA: [&str; 4] = ["--store", "scylla", "--scylla-nodes", "127.0.0.1:9042"];

fn with_scylla(args: &[&str]) -> Vec<String> {
    SCYLLA.iter().chain(args).map(|s| s.to_string()).collect()
}

fn config_of(args: &[String]) -> Result<Config, Error> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Config::from_cli(&cli(&args))
}

#[test]
fn cluster_mode_needs_the_cql_store() {
    let err = Config::from_cli(&cli(&["--nats-url", "nats://127.0.0.1:4222"]))
        .expect_err("the embedded store is single-node");
    assert_eq!(
        err.to_string(),
        "configuration: cluster mode (--nats-url) needs --store scylla: the embedded store is single-node"
    );
    let cfg = Config::from_cli(&cli(&[])).expect("config");
    assert!(cfg.cluster.is_none(), "single node without --nats-url");
}

#[test]
fn cluster_settings_and_their_defaults() {
    let cfg = config_of(&with_scylla(&["--nats-url", "nats://127.0.0.1:4222"])).expect("config");
    let cluster = cfg.cluster.expect("cluster mode");
    assert_eq!(cluster.nats_urls, ["nats://127.0.0.1:4222"]);
    assert_eq!(cluster.node_id, None, "built from host and port once bound");
    assert_eq!(cluster.heartbeat, Duration::from_millis(1000));
    assert_eq!(cluster.dead_after, Duration::from_millis(3000));
    assert_eq!(cluster.request_timeout, Duration::from_millis(2000));
    let cfg = config_of(&with_scylla(&[
        "--nats-url",
        "nats://10.0.0.1:4222, nats://10.0.0.2:4222",
        "--node-id",
        "node_1-a",
        "--cluster-heartbeat-ms",
        "200",
        "--cluster-dead-after-ms",
        "1000",
        "--cluster-request-timeout-ms",
        "500",
    ]))
    .expect("config");
    let cluster = cfg.cluster.expect("cluster mode");
    assert_eq!(
        cluster.nats_urls,
        ["nats://10.0.0.1:4222", "nats://10.0.0.2:4222"]
    );
    assert_eq!(cluster.node_id.as_deref(), Some("node_1-a"));
    assert_eq!(cluster.timing().heartbeat, Duration::from_millis(200));
    assert_eq!(cluster.dead_after, Duration::from_millis(1000));
    assert_eq!(cluster.request_timeout, Duration::from_millis(500));
}

#[test]
fn cluster_settings_come_from_the_file_too() {
    let (_dir, path) = file(
        "store = \"scylla\"\nscylla_nodes = [\"127.0.0.1:9042\"]\nnats_url = \"nats://n:4222\"\nnode_id = \"from_file\"\ncluster_heartbeat_ms = 500\ncluster_dead_after_ms = 1500\n",
    );
    let cfg =
        Config::from_cli(&cli(&["--config", &path, "--node-id", "from_flag"])).expect("config");
    let cluster = cfg.cluster.expect("cluster mode");
    assert_eq!(cluster.nats_urls, ["nats://n:4222"]);
    assert_eq!(cluster.node_id.as_deref(), Some("from_flag"));
    assert_eq!(cluster.heartbeat, Duration::from_millis(500));
}

#[test]
fn cluster_settings_are_checked() {
    for (args, expected) in [
        (
            vec!["--nats-url", "nats://h:1", "--node-id", "has.dot"],
            "--node-id",
        ),
        (
            vec!["--nats-url", "nats://h:1", "--node-id", ""],
            "--node-id",
        ),
        (
            vec![
                "--nats-url",
                "nats://h:1",
                "--cluster-heartbeat-ms",
                "1000",
                "--cluster-dead-after-ms",
                "2000",
            ],
            "more than twice",
        ),
        (
            vec!["--nats-url", "nats://h:1", "--cluster-heartbeat-ms", "0"],
            "--cluster-heartbeat-ms",
        ),
        (
            vec![
                "--nats-url",
                "nats://h:1",
                "--cluster-request-timeout-ms",
                "0",
            ],
            "--cluster-request-timeout-ms",
        ),
        (vec!["--nats-url", " , "], "--nats-url"),
        (vec!["--nats-url", "nats://h:notaport"], "--nats-url"),
    ] {
        let err = config_of(&with_scylla(&args)).expect_err("must fail");
        let msg = err.to_string();
        assert!(msg.contains(expected), "{args:?}: {msg}");
    }
}

#[test]
fn verification_settings_are_checked() {
    let c = config_of(&[]).unwrap();
    assert_eq!(c.verification.code_ttl, Duration::from_secs(600));
    assert_eq!(c.verification.code_attempts, 5);
    assert_eq!(c.verification.resend_after, Duration::from_secs(60));
    assert_eq!(c.verification.codes_per_day, 10);
    assert!(c.verification.courier.is_none());
    let c = config_of(&["--verify-code-ttl-secs".into(), "30".into()]).unwrap();
    assert_eq!(c.verification.code_ttl, Duration::from_secs(30));
    for (flag, value) in [
        ("--verify-code-ttl-secs", "0"),
        ("--verify-resend-secs", "0"),
        ("--verify-code-attempts", "0"),
        ("--verify-code-attempts", "101"),
        ("--verify-codes-per-day", "0"),
        ("--verify-codes-per-day", "1001"),
    ] {
        let err = config_of(&[flag.into(), value.into()]).unwrap_err();
        assert!(err.to_string().contains("verify_"), "{flag} {value}: {err}");
    }
}
