//! Configuration: every setting is defined once, in [`Settings`], and filled from command-line
//! flags, each also read from a `CHORUS_*` environment variable, over an optional TOML file
//! (`--config`), over defaults. Precedence: flag > env > file > default.
//!
//! - `settings.rs`: the settings themselves (flag, variable, TOML key, default, help).
//! - here: the command line, the layering of the file under the flags, and [`Config`], the
//!   checked, typed view the rest of the server reads.

mod edge;
mod settings;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

use chorus_actors::Verification;
use chorus_actors::model::Caps;
use chorus_actors::release::ReleaseConfig;

use crate::cluster::ClusterSettings;
use crate::error::Error;
use crate::store::scylla::ScyllaSettings;

pub use edge::{EdgeLimits, Rate};
pub use settings::{Settings, StoreKind};

/// The command line as clap declares it; [`Cli`] adds which settings it actually gave.
#[derive(Debug, Parser)]
#[command(
    name = "chorus",
    version,
    about = "Actor-model fan-out server for IM groups and communities"
)]
struct Line {
    /// Without a command, the server runs.
    #[command(subcommand)]
    command: Option<Command>,
    /// TOML file with any of the settings below (flags and environment win over it).
    #[arg(long, env = "CHORUS_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: Settings,
}

/// Command line of the `chorus` binary.
#[derive(Debug)]
pub struct Cli {
    /// Without a command, the server runs.
    pub command: Option<Command>,
    /// The TOML file, if any.
    config: Option<PathBuf>,
    /// Each setting from its flag, its variable, or else its default (the file is not read
    /// yet).
    settings: Settings,
    /// Settings given by a flag or a variable: only these win over the file, since clap fills
    /// the others with defaults.
    given: BTreeSet<String>,
}

impl Cli {
    /// Parses `std::env::args_os()`; on a bad flag, or `--help`, prints and exits as clap does.
    pub fn parse() -> Cli {
        Cli::from_matches(&Line::command().get_matches()).unwrap_or_else(|e| e.exit())
    }

    /// Parses `args` (the program name first).
    pub fn try_parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        Cli::from_matches(&Line::command().try_get_matches_from(args)?)
    }

    fn from_matches(matches: &ArgMatches) -> Result<Cli, clap::Error> {
        let line = Line::from_arg_matches(matches)?;
        let given = matches
            .ids()
            .filter(|id| {
                matches!(
                    matches.value_source(id.as_str()),
                    Some(ValueSource::CommandLine | ValueSource::EnvVariable)
                )
            })
            .map(|id| id.as_str().to_owned())
            .collect();
        Ok(Cli {
            command: line.command,
            config: line.config,
            settings: line.settings,
            given,
        })
    }

    /// The settings with the file layered in: a key of the file replaces a default, never a
    /// flag or a variable. Layers are merged as TOML tables by key, which is the field name
    /// on both sides.
    fn settings(&self) -> Result<Settings, Error> {
        let Some(path) = &self.config else {
            return Ok(self.settings.clone());
        };
        let in_file = |e: &dyn std::fmt::Display| Error::Config(format!("{}: {e}", path.display()));
        let text = read(path)?;
        // The file alone, over the defaults: every key and value in it is checked, even one a
        // flag overrides, and an error names its line and column.
        toml::from_str::<Settings>(&text).map_err(|e| in_file(&e))?;
        let file: toml::Table = toml::from_str(&text).map_err(|e| in_file(&e))?;
        let line = toml::Table::try_from(&self.settings).map_err(|e| {
            Error::Config(format!(
                "cannot layer {} under the flags: {e}",
                path.display()
            ))
        })?;
        let mut table = line.clone();
        table.extend(file);
        table.extend(line.into_iter().filter(|(key, _)| self.given.contains(key)));
        table.try_into().map_err(|e| in_file(&e))
    }
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

/// Resolved settings, in the types the server uses.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub body_limit: usize,
    pub ws_max_frame: usize,
    pub ws_mailbox: usize,
    pub ws_write_timeout: Duration,
    pub fanout_budget: usize,
    pub presence: chorus_actors::PresenceConfig,
    pub idle_timeout: Duration,
    pub password_hash: PasswordHashCost,
    pub login_attempts_per_account: u32,
    pub login_attempts_per_address: u32,
    /// Per-address limits, the password-hash cap, trusted proxies ([`EdgeLimits`]).
    pub edge: EdgeLimits,
    pub workers: usize,
    pub binding_request_ttl: Duration,
    /// Caps on growth from other people's input.
    pub caps: Caps,
    /// How often the server pings an idle WebSocket, and how long it waits for any frame
    /// before closing it (fixed, not settings).
    pub ws_heartbeat: Duration,
    pub ws_client_timeout: Duration,
    /// Retries and bounds of platform releases.
    pub release: ReleaseConfig,
    pub smtp_url: Option<String>,
    pub smtp_from: String,
    /// Off: links to non-public addresses (and plain-http Mastodon) are refused.
    pub allow_private_destinations: bool,
    /// The key sealing link secrets; `None`: kept by the store (`crate::secrets::key`).
    pub secret_key_file: Option<PathBuf>,
    /// The rules of verification codes (the courier is set at start-up: the SMTP relay, if
    /// any).
    pub verification: Verification,
    pub store: StoreKind,
    /// Used with `store = scylla` and by `chorus schema`.
    pub scylla: ScyllaSettings,
    /// Cluster mode (`--nats-url`): other nodes share the keyspace; `None` on a single node.
    pub cluster: Option<ClusterSettings>,
    /// The bearer token `GET /metrics` asks for; `None`: served to anyone.
    pub metrics_token: Option<String>,
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy)]
pub struct PasswordHashCost {
    pub memory_kib: u32,
    pub iterations: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config::from(Settings::default())
    }
}

impl From<Settings> for Config {
    fn from(s: Settings) -> Self {
        let edge = EdgeLimits::from_settings(&s);
        Config {
            listen: s.listen,
            data_dir: s.data_dir,
            body_limit: s.body_limit,
            ws_max_frame: s.ws_max_frame,
            ws_mailbox: s.ws_mailbox,
            ws_write_timeout: Duration::from_millis(s.ws_write_timeout_ms),
            fanout_budget: s.fanout_budget,
            presence: chorus_actors::PresenceConfig {
                debounce: Duration::from_millis(s.presence_debounce_ms),
                max_group: s.presence_max_group,
            },
            idle_timeout: Duration::from_secs(s.idle_timeout_secs),
            password_hash: PasswordHashCost {
                memory_kib: s.password_hash_memory_kib,
                iterations: s.password_hash_iterations,
            },
            login_attempts_per_account: s.login_attempts_per_account,
            login_attempts_per_address: s.login_attempts_per_address,
            edge,
            workers: s
                .workers
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
            binding_request_ttl: Duration::from_secs(s.binding_request_ttl_secs),
            caps: Caps {
                friend_requests: s.max_friend_requests,
                contact_matches: s.max_contact_matches,
                group_members: s.max_group_members,
                binding_requests: s.max_binding_requests,
                tokens: s.max_tokens_per_account,
                token_ttl: Duration::from_secs(s.token_ttl_secs),
                // A value that is no duration (negative, NaN, too large) is refused by
                // `validate`, which sees it as 0 s here.
                log_retention: (s.log_retention_days != 0.0).then(|| {
                    Duration::try_from_secs_f64(s.log_retention_days * settings::DAY)
                        .unwrap_or_default()
                }),
            },
            ws_heartbeat: Duration::from_secs(30),
            ws_client_timeout: Duration::from_secs(90),
            release: ReleaseConfig {
                max_attempts: s.release_max_attempts,
                backoff_base: Duration::from_millis(s.release_backoff_base_ms),
                backoff_max: Duration::from_secs(s.release_backoff_max_secs),
                attempt_timeout: Duration::from_millis(s.release_timeout_ms),
                max_in_flight: s.release_concurrency,
                max_in_flight_per_link: s.release_per_link,
                max_in_flight_per_destination: s.release_per_destination,
                max_in_flight_per_account: s.release_per_account,
                max_held: s.release_held,
                max_held_per_account: s.release_held_per_account,
                ..ReleaseConfig::default()
            },
            smtp_url: s.smtp_url,
            smtp_from: s.smtp_from,
            allow_private_destinations: s.allow_private_destinations,
            secret_key_file: s.secret_key_file,
            verification: Verification {
                courier: None,
                code_ttl: Duration::from_secs(s.verify_code_ttl_secs),
                code_attempts: s.verify_code_attempts,
                resend_after: Duration::from_secs(s.verify_resend_secs),
                codes_per_day: s.verify_codes_per_day,
            },
            store: s.store,
            scylla: ScyllaSettings {
                nodes: s
                    .scylla_nodes
                    .into_iter()
                    .map(|n| n.trim().to_owned())
                    .filter(|n| !n.is_empty())
                    .collect(),
                keyspace: s.scylla_keyspace,
                replication: s.scylla_replication,
                consistency: s.scylla_consistency,
                request_timeout: Duration::from_millis(s.scylla_timeout_ms),
            },
            cluster: s.nats_url.map(|url| ClusterSettings {
                nats_urls: url
                    .split(',')
                    .map(|u| u.trim().to_owned())
                    .filter(|u| !u.is_empty())
                    .collect(),
                node_id: s.node_id,
                heartbeat: Duration::from_millis(s.cluster_heartbeat_ms),
                dead_after: Duration::from_millis(s.cluster_dead_after_ms),
                request_timeout: Duration::from_millis(s.cluster_request_timeout_ms),
            }),
            metrics_token: s.metrics_token.filter(|t| !t.is_empty()),
        }
    }
}

impl Config {
    /// Resolves the command line (and environment) over the file over the defaults.
    pub fn from_cli(cli: &Cli) -> Result<Config, Error> {
        let cfg = Config::from(cli.settings()?);
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
        if self.ws_write_timeout.is_zero() {
            return bad("ws_write_timeout_ms must be at least 1");
        }
        if self.fanout_budget == 0 {
            return bad("fanout_budget must be at least 1");
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
        self.edge.validate().map_err(Error::Config)?;
        if self.binding_request_ttl.is_zero() {
            return bad("binding_request_ttl_secs must be at least 1");
        }
        let c = &self.caps;
        if c.friend_requests == 0
            || c.contact_matches == 0
            || c.group_members < 2
            || c.binding_requests == 0
            || c.tokens == 0
        {
            return bad(
                "max_friend_requests, max_contact_matches, max_binding_requests and \
                 max_tokens_per_account must be at least 1, max_group_members at least 2",
            );
        }
        if c.token_ttl.is_zero() {
            return bad("token_ttl_secs must be at least 1");
        }
        if c.log_retention.is_some_and(|d| d < Duration::from_secs(1)) {
            return bad("log_retention_days must be 0 (for ever) or at least one second's worth");
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
            || r.max_in_flight_per_account == 0
        {
            return bad(
                "release_concurrency, release_per_link, release_per_destination and \
                 release_per_account must be at least 1",
            );
        }
        if r.max_held_per_account == 0 || r.max_held < r.max_held_per_account {
            return bad("release_held_per_account must be at least 1 and at most release_held");
        }
        let v = &self.verification;
        if v.code_ttl.is_zero() || v.resend_after.is_zero() {
            return bad("verify_code_ttl_secs and verify_resend_secs must be at least 1");
        }
        if v.code_attempts == 0 || v.code_attempts > 100 {
            return bad("verify_code_attempts must be from 1 to 100");
        }
        if v.codes_per_day == 0 || v.codes_per_day > 1000 {
            return bad("verify_codes_per_day must be from 1 to 1000");
        }
        if self.store == StoreKind::Scylla {
            self.check_scylla()?;
        }
        if let Some(cluster) = &self.cluster {
            if self.store != StoreKind::Scylla {
                return bad(
                    "cluster mode (--nats-url) needs --store scylla: the embedded store is single-node",
                );
            }
            cluster
                .validate()
                .map_err(|e| Error::Config(format!("cluster: {e}")))?;
        }
        Ok(())
    }

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

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))
}
