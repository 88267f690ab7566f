//! Configuration: command-line flags, each also read from a `CHORUS_*` environment variable,
//! over an optional TOML file (`--config`), over defaults. Precedence: flag/env > file >
//! default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use serde::Deserialize;

use chorus_actors::release::ReleaseConfig;

use crate::error::Error;
use crate::store::scylla::ScyllaSettings;

/// Command line of the `chorus` binary.
#[derive(Debug, Parser)]
#[command(
    name = "chorus",
    version,
    about = "Actor-model fan-out server for IM groups and communities"
)]
pub struct Cli {
    /// Without a command, the server runs.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Address to listen on (port 0 picks a free port; the log line says which).
    #[arg(long, env = "CHORUS_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory of the embedded store.
    #[arg(long, env = "CHORUS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// TOML file with any of the settings below (flags and environment win over it).
    #[arg(long, env = "CHORUS_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Where state lives: the embedded store (default) or a ScyllaDB cluster.
    #[arg(long, env = "CHORUS_STORE", value_enum)]
    pub store: Option<StoreKind>,
    /// ScyllaDB contact points, `host:port,host:port` (with `--store scylla`).
    #[arg(
        long,
        env = "CHORUS_SCYLLA_NODES",
        value_delimiter = ',',
        global = true
    )]
    pub scylla_nodes: Option<Vec<String>>,
    /// ScyllaDB keyspace (default `chorus`).
    #[arg(long, env = "CHORUS_SCYLLA_KEYSPACE", global = true)]
    pub scylla_keyspace: Option<String>,
    /// Replication of the keyspace when `chorus schema apply` creates it, as a CQL map
    /// (default `{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}`).
    #[arg(long, env = "CHORUS_SCYLLA_REPLICATION", global = true)]
    pub scylla_replication: Option<String>,
    /// Consistency of every read and write: local_quorum (default), quorum, each_quorum,
    /// all, local_one, one.
    #[arg(long, env = "CHORUS_SCYLLA_CONSISTENCY", global = true)]
    pub scylla_consistency: Option<String>,
    /// Bound on one ScyllaDB request in ms (default 10000).
    #[arg(long, env = "CHORUS_SCYLLA_TIMEOUT_MS", global = true)]
    pub scylla_timeout_ms: Option<u64>,
    /// Largest accepted request body in bytes (413 above it).
    #[arg(long, env = "CHORUS_BODY_LIMIT")]
    pub body_limit: Option<usize>,
    /// Largest accepted WebSocket frame in bytes (close 1009 above it).
    #[arg(long, env = "CHORUS_WS_MAX_FRAME")]
    pub ws_max_frame: Option<usize>,
    /// Events queued per connection before a slow reader is closed with 1013.
    #[arg(long, env = "CHORUS_WS_MAILBOX")]
    pub ws_mailbox: Option<usize>,
    /// Seconds without activity after which an account's actor passivates.
    #[arg(long, env = "CHORUS_IDLE_TIMEOUT_SECS")]
    pub idle_timeout_secs: Option<u64>,
    /// Argon2id memory cost in KiB (default 19456, the OWASP minimum; lower only for load tests).
    #[arg(long, env = "CHORUS_PASSWORD_HASH_MEMORY_KIB")]
    pub password_hash_memory_kib: Option<u32>,
    /// Argon2id iterations (default 2).
    #[arg(long, env = "CHORUS_PASSWORD_HASH_ITERATIONS")]
    pub password_hash_iterations: Option<u32>,
    /// Login attempts per minute for one login name (burst of the same size).
    #[arg(long, env = "CHORUS_LOGIN_ATTEMPTS_PER_ACCOUNT")]
    pub login_attempts_per_account: Option<u32>,
    /// Login attempts per minute from one client address.
    #[arg(long, env = "CHORUS_LOGIN_ATTEMPTS_PER_ADDRESS")]
    pub login_attempts_per_address: Option<u32>,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "CHORUS_WORKERS")]
    pub workers: Option<usize>,
    /// Seconds a binding request stays pending before it expires (default 7 days).
    #[arg(long, env = "CHORUS_BINDING_REQUEST_TTL_SECS")]
    pub binding_request_ttl_secs: Option<u64>,
    /// Attempts per platform delivery before it is `failed` (default 8).
    #[arg(long, env = "CHORUS_RELEASE_MAX_ATTEMPTS")]
    pub release_max_attempts: Option<u32>,
    /// Wait after a delivery's first failed attempt in ms; doubles per attempt (default 30000).
    #[arg(long, env = "CHORUS_RELEASE_BACKOFF_BASE_MS")]
    pub release_backoff_base_ms: Option<u64>,
    /// Longest wait between two attempts in seconds, before jitter (default 1920).
    #[arg(long, env = "CHORUS_RELEASE_BACKOFF_MAX_SECS")]
    pub release_backoff_max_secs: Option<u64>,
    /// Bound on one delivery attempt in ms (default 10000).
    #[arg(long, env = "CHORUS_RELEASE_TIMEOUT_MS")]
    pub release_timeout_ms: Option<u64>,
    /// Delivery attempts running at once, over all platforms (default 256).
    #[arg(long, env = "CHORUS_RELEASE_CONCURRENCY")]
    pub release_concurrency: Option<usize>,
    /// Delivery attempts running at once to one linked platform account (default 4).
    #[arg(long, env = "CHORUS_RELEASE_PER_LINK")]
    pub release_per_link: Option<usize>,
    /// Delivery attempts running at once to one destination server, all links to it together
    /// (default 32).
    #[arg(long, env = "CHORUS_RELEASE_PER_DESTINATION")]
    pub release_per_destination: Option<usize>,
    /// SMTP relay for the `email` platform, e.g. `smtp://127.0.0.1:25` or
    /// `smtps://user:pass@mail.example.com`; without it there is no `email` platform.
    #[arg(long, env = "CHORUS_SMTP_URL")]
    pub smtp_url: Option<String>,
    /// From header of release emails (default `Chorus <chorus@localhost>`).
    #[arg(long, env = "CHORUS_SMTP_FROM")]
    pub smtp_from: Option<String>,
}

/// `chorus <command>`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The ScyllaDB schema: `print` it, or `apply` it to the cluster at `--scylla-nodes`.
    Schema {
        #[command(subcommand)]
        action: SchemaAction,
    },
}

/// What `chorus schema` does.
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum SchemaAction {
    /// Print the CQL (keyspace and replication filled in) to stdout.
    Print,
    /// Create the keyspace and every table (IF NOT EXISTS: safe to repeat).
    Apply,
}

/// The storage engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// fjall under `--data-dir`: nothing else to run.
    Fjall,
    /// A ScyllaDB cluster: any node can activate any actor.
    Scylla,
}

/// The same settings as they appear in the TOML file; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    body_limit: Option<usize>,
    ws_max_frame: Option<usize>,
    ws_mailbox: Option<usize>,
    idle_timeout_secs: Option<u64>,
    password_hash_memory_kib: Option<u32>,
    password_hash_iterations: Option<u32>,
    login_attempts_per_account: Option<u32>,
    login_attempts_per_address: Option<u32>,
    workers: Option<usize>,
    binding_request_ttl_secs: Option<u64>,
    release_max_attempts: Option<u32>,
    release_backoff_base_ms: Option<u64>,
    release_backoff_max_secs: Option<u64>,
    release_timeout_ms: Option<u64>,
    release_concurrency: Option<usize>,
    release_per_link: Option<usize>,
    release_per_destination: Option<usize>,
    smtp_url: Option<String>,
    smtp_from: Option<String>,
    store: Option<StoreKind>,
    scylla_nodes: Option<Vec<String>>,
    scylla_keyspace: Option<String>,
    scylla_replication: Option<String>,
    scylla_consistency: Option<String>,
    scylla_timeout_ms: Option<u64>,
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub body_limit: usize,
    pub ws_max_frame: usize,
    pub ws_mailbox: usize,
    pub idle_timeout: Duration,
    pub password_hash: PasswordHashCost,
    pub login_attempts_per_account: u32,
    pub login_attempts_per_address: u32,
    pub workers: usize,
    pub binding_request_ttl: Duration,
    /// How often the server pings an idle WebSocket, and how long it waits for any frame
    /// before closing it.
    pub ws_heartbeat: Duration,
    pub ws_client_timeout: Duration,
    /// Retries and bounds of platform deliveries.
    pub release: ReleaseConfig,
    pub smtp_url: Option<String>,
    pub smtp_from: String,
    pub store: StoreKind,
    /// Used with `store = scylla` and by `chorus schema`.
    pub scylla: ScyllaSettings,
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy)]
pub struct PasswordHashCost {
    pub memory_kib: u32,
    pub iterations: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./chorus-data"),
            body_limit: 64 * 1024,
            ws_max_frame: 64 * 1024,
            ws_mailbox: 1024,
            idle_timeout: Duration::from_secs(300),
            password_hash: PasswordHashCost {
                memory_kib: 19 * 1024,
                iterations: 2,
            },
            login_attempts_per_account: 10,
            login_attempts_per_address: 60,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            binding_request_ttl: Duration::from_secs(7 * 24 * 3600),
            ws_heartbeat: Duration::from_secs(30),
            ws_client_timeout: Duration::from_secs(90),
            release: ReleaseConfig::default(),
            smtp_url: None,
            smtp_from: "Chorus <chorus@localhost>".into(),
            store: StoreKind::Fjall,
            scylla: ScyllaSettings {
                nodes: Vec::new(),
                keyspace: "chorus".into(),
                replication: "{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}".into(),
                consistency: "local_quorum".into(),
                request_timeout: Duration::from_secs(10),
            },
        }
    }
}

impl Config {
    /// Resolves the command line (and environment) over the file over the defaults.
    pub fn from_cli(cli: &Cli) -> Result<Config, Error> {
        let file = match &cli.config {
            Some(path) => load_file(path)?,
            None => FileConfig::default(),
        };
        let d = Config::default();
        let cfg = Config {
            listen: cli.listen.or(file.listen).unwrap_or(d.listen),
            data_dir: cli.data_dir.clone().or(file.data_dir).unwrap_or(d.data_dir),
            body_limit: cli.body_limit.or(file.body_limit).unwrap_or(d.body_limit),
            ws_max_frame: cli
                .ws_max_frame
                .or(file.ws_max_frame)
                .unwrap_or(d.ws_max_frame),
            ws_mailbox: cli.ws_mailbox.or(file.ws_mailbox).unwrap_or(d.ws_mailbox),
            idle_timeout: cli
                .idle_timeout_secs
                .or(file.idle_timeout_secs)
                .map_or(d.idle_timeout, Duration::from_secs),
            password_hash: PasswordHashCost {
                memory_kib: cli
                    .password_hash_memory_kib
                    .or(file.password_hash_memory_kib)
                    .unwrap_or(d.password_hash.memory_kib),
                iterations: cli
                    .password_hash_iterations
                    .or(file.password_hash_iterations)
                    .unwrap_or(d.password_hash.iterations),
            },
            login_attempts_per_account: cli
                .login_attempts_per_account
                .or(file.login_attempts_per_account)
                .unwrap_or(d.login_attempts_per_account),
            login_attempts_per_address: cli
                .login_attempts_per_address
                .or(file.login_attempts_per_address)
                .unwrap_or(d.login_attempts_per_address),
            workers: cli.workers.or(file.workers).unwrap_or(d.workers),
            binding_request_ttl: cli
                .binding_request_ttl_secs
                .or(file.binding_request_ttl_secs)
                .map_or(d.binding_request_ttl, Duration::from_secs),
            release: ReleaseConfig {
                max_attempts: cli
                    .release_max_attempts
                    .or(file.release_max_attempts)
                    .unwrap_or(d.release.max_attempts),
                backoff_base: cli
                    .release_backoff_base_ms
                    .or(file.release_backoff_base_ms)
                    .map_or(d.release.backoff_base, Duration::from_millis),
                backoff_max: cli
                    .release_backoff_max_secs
                    .or(file.release_backoff_max_secs)
                    .map_or(d.release.backoff_max, Duration::from_secs),
                attempt_timeout: cli
                    .release_timeout_ms
                    .or(file.release_timeout_ms)
                    .map_or(d.release.attempt_timeout, Duration::from_millis),
                max_in_flight: cli
                    .release_concurrency
                    .or(file.release_concurrency)
                    .unwrap_or(d.release.max_in_flight),
                max_in_flight_per_link: cli
                    .release_per_link
                    .or(file.release_per_link)
                    .unwrap_or(d.release.max_in_flight_per_link),
                max_in_flight_per_destination: cli
                    .release_per_destination
                    .or(file.release_per_destination)
                    .unwrap_or(d.release.max_in_flight_per_destination),
                ..d.release.clone()
            },
            smtp_url: cli.smtp_url.clone().or(file.smtp_url),
            smtp_from: cli
                .smtp_from
                .clone()
                .or(file.smtp_from)
                .unwrap_or(d.smtp_from.clone()),
            store: cli.store.or(file.store).unwrap_or(d.store),
            scylla: ScyllaSettings {
                nodes: cli
                    .scylla_nodes
                    .clone()
                    .or(file.scylla_nodes)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|n| n.trim().to_owned())
                    .filter(|n| !n.is_empty())
                    .collect(),
                keyspace: cli
                    .scylla_keyspace
                    .clone()
                    .or(file.scylla_keyspace)
                    .unwrap_or(d.scylla.keyspace.clone()),
                replication: cli
                    .scylla_replication
                    .clone()
                    .or(file.scylla_replication)
                    .unwrap_or(d.scylla.replication.clone()),
                consistency: cli
                    .scylla_consistency
                    .clone()
                    .or(file.scylla_consistency)
                    .unwrap_or(d.scylla.consistency.clone()),
                request_timeout: cli
                    .scylla_timeout_ms
                    .or(file.scylla_timeout_ms)
                    .map_or(d.scylla.request_timeout, Duration::from_millis),
            },
            ..d
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), Error> {
        let bad = |what: &str| Err(Error::Config(what.to_owned()));
        if self.body_limit < 1024 {
            return bad("body_limit must be at least 1024 bytes");
        }
        if self.ws_max_frame < 256 {
            return bad("ws_max_frame must be at least 256 bytes");
        }
        if self.ws_mailbox == 0 {
            return bad("ws_mailbox must be at least 1");
        }
        if self.idle_timeout.is_zero() {
            return bad("idle_timeout_secs must be at least 1");
        }
        if self.password_hash.memory_kib < 8 || self.password_hash.iterations == 0 {
            return bad("password hash cost needs memory_kib >= 8 and iterations >= 1");
        }
        if self.login_attempts_per_account == 0 || self.login_attempts_per_address == 0 {
            return bad("login attempt limits must be at least 1 per minute");
        }
        if self.binding_request_ttl.is_zero() {
            return bad("binding_request_ttl_secs must be at least 1");
        }
        if self.workers == 0 {
            return bad("workers must be at least 1");
        }
        let r = &self.release;
        if r.max_attempts == 0 || r.max_attempts > 100 {
            return bad("release_max_attempts must be from 1 to 100");
        }
        if r.backoff_base.is_zero() || r.backoff_max < r.backoff_base {
            return bad("release backoff needs base >= 1 ms and max >= base");
        }
        if r.attempt_timeout < Duration::from_millis(10) {
            return bad("release_timeout_ms must be at least 10");
        }
        if r.max_in_flight == 0
            || r.max_in_flight_per_link == 0
            || r.max_in_flight_per_destination == 0
        {
            return bad(
                "release_concurrency, release_per_link and release_per_destination must be at least 1",
            );
        }
        if self.store == StoreKind::Scylla {
            self.check_scylla()?;
        }
        Ok(())
    }
}

impl Config {
    /// The ScyllaDB settings must hold (with `--store scylla`, and for `chorus schema apply`).
    pub fn check_scylla(&self) -> Result<(), Error> {
        self.scylla
            .validate()
            .map_err(|e| Error::Config(format!("scylla: {e}")))
    }

    /// What `chorus schema print` needs: a keyspace name and a replication map, no nodes.
    pub fn check_scylla_schema(&self) -> Result<(), Error> {
        let mut s = self.scylla.clone();
        if s.nodes.is_empty() {
            s.nodes.push("unused:9042".into());
        }
        s.validate()
            .map_err(|e| Error::Config(format!("scylla: {e}")))
    }
}

fn load_file(path: &Path) -> Result<FileConfig, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
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
        assert_eq!(c.scylla_keyspace.as_deref(), Some("chat"));
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
}
