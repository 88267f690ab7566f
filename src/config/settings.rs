//! Every setting, written once: its field here gives the flag (`--body-limit`), the environment
//! variable (`CHORUS_BODY_LIMIT`), the TOML key (`body_limit`), the default and the help text.
//! Values keep the unit in their name (`_secs`, `_ms`); [`super::Config`] turns them into the
//! types the server uses.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, FromArgMatches, ValueEnum};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{ReleaseConfig, Verification};

/// The settings of the server, filled by flags and environment (clap) or by the TOML file
/// (serde); the key of a field is the same in both, which is what lets the layers be merged
/// by name (see [`super::Cli`]).
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on (port 0 picks a free port; the log line says which).
    #[arg(long, env = "CHORUS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Directory of the embedded store.
    #[arg(long, env = "CHORUS_DATA_DIR", default_value = "./chorus-data")]
    pub data_dir: PathBuf,
    /// Where state lives: the embedded store or a ScyllaDB cluster.
    #[arg(long, env = "CHORUS_STORE", value_enum, default_value_t = StoreKind::Fjall)]
    pub store: StoreKind,
    /// ScyllaDB contact points, `host:port,host:port` (with `--store scylla`).
    #[arg(
        long,
        env = "CHORUS_SCYLLA_NODES",
        value_delimiter = ',',
        global = true
    )]
    pub scylla_nodes: Vec<String>,
    /// ScyllaDB keyspace.
    #[arg(
        long,
        env = "CHORUS_SCYLLA_KEYSPACE",
        global = true,
        default_value = "chorus"
    )]
    pub scylla_keyspace: String,
    /// Replication of the keyspace when `chorus schema apply` creates it, as a CQL map.
    #[arg(
        long,
        env = "CHORUS_SCYLLA_REPLICATION",
        global = true,
        default_value = "{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}"
    )]
    pub scylla_replication: String,
    /// Consistency of every read and write: local_quorum, quorum, each_quorum, all,
    /// local_one, one.
    #[arg(
        long,
        env = "CHORUS_SCYLLA_CONSISTENCY",
        global = true,
        default_value = "local_quorum"
    )]
    pub scylla_consistency: String,
    /// Bound on one ScyllaDB request in ms.
    #[arg(
        long,
        env = "CHORUS_SCYLLA_TIMEOUT_MS",
        global = true,
        default_value_t = 10_000
    )]
    pub scylla_timeout_ms: u64,
    /// NATS server(s) of cluster mode, `nats://host:4222` (a comma-separated list for a NATS
    /// cluster). Set, this node is one of many over one CQL keyspace (needs `--store scylla`);
    /// unset, it is alone.
    #[arg(long, env = "CHORUS_NATS_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_url: Option<String>,
    /// This node's name in the cluster, `[A-Za-z0-9_-]` (default: `<hostname>-<port>`).
    #[arg(long, env = "CHORUS_NODE_ID")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// Milliseconds between two heartbeats of a cluster node.
    #[arg(long, env = "CHORUS_CLUSTER_HEARTBEAT_MS", default_value_t = 1000)]
    pub cluster_heartbeat_ms: u64,
    /// Milliseconds without a heartbeat after which a node is dead and its actors move
    /// (more than twice the heartbeat).
    #[arg(long, env = "CHORUS_CLUSTER_DEAD_AFTER_MS", default_value_t = 3000)]
    pub cluster_dead_after_ms: u64,
    /// Milliseconds a request forwarded to an actor's owner may take before it answers 503.
    #[arg(
        long,
        env = "CHORUS_CLUSTER_REQUEST_TIMEOUT_MS",
        default_value_t = 2000
    )]
    pub cluster_request_timeout_ms: u64,
    /// Largest accepted request body in bytes (413 above it).
    #[arg(long, env = "CHORUS_BODY_LIMIT", default_value_t = 64 * 1024)]
    pub body_limit: usize,
    /// Largest accepted WebSocket frame in bytes (close 1009 above it).
    #[arg(long, env = "CHORUS_WS_MAX_FRAME", default_value_t = 64 * 1024)]
    pub ws_max_frame: usize,
    /// Events queued per connection before a slow reader is closed with 1013.
    #[arg(long, env = "CHORUS_WS_MAILBOX", default_value_t = 1024)]
    pub ws_mailbox: usize,
    /// Milliseconds a WebSocket may refuse bytes (a reader that stopped reading) before its
    /// TCP connection is dropped; also the most a closing connection waits for its close
    /// frame to go out.
    #[arg(long, env = "CHORUS_WS_WRITE_TIMEOUT_MS", default_value_t = 10_000)]
    pub ws_write_timeout_ms: u64,
    /// Recipients of group events handed to the I/O threads and not yet written to their
    /// sockets, past which publishing answers 503 `unavailable` with `Retry-After`.
    #[arg(long, env = "CHORUS_FANOUT_BUDGET", default_value_t = chorus_actors::DEFAULT_FANOUT_BUDGET)]
    pub fanout_budget: usize,
    /// Milliseconds an account's presence is debounced: `presence.changed` says offline only
    /// once its last device has been gone this long, and at most one change is told per
    /// this long, so a flapping device stays quiet.
    #[arg(long, env = "CHORUS_PRESENCE_DEBOUNCE_MS", default_value_t = millis(presence().debounce))]
    pub presence_debounce_ms: u64,
    /// Groups with more members than this do not push their members' `presence.changed`
    /// (each change would be a frame to every member); `GET /v1/groups/{gid}/presence`
    /// answers for every group.
    #[arg(long, env = "CHORUS_PRESENCE_MAX_GROUP", default_value_t = presence().max_group)]
    pub presence_max_group: usize,
    /// Seconds without activity after which an account's actor passivates.
    #[arg(long, env = "CHORUS_IDLE_TIMEOUT_SECS", default_value_t = 300)]
    pub idle_timeout_secs: u64,
    /// Argon2id memory cost in KiB (the default is the OWASP minimum; lower only for load
    /// tests).
    #[arg(long, env = "CHORUS_PASSWORD_HASH_MEMORY_KIB", default_value_t = 19 * 1024)]
    pub password_hash_memory_kib: u32,
    /// Argon2id iterations.
    #[arg(long, env = "CHORUS_PASSWORD_HASH_ITERATIONS", default_value_t = 2)]
    pub password_hash_iterations: u32,
    /// Login attempts per minute for one login name (burst of the same size).
    #[arg(long, env = "CHORUS_LOGIN_ATTEMPTS_PER_ACCOUNT", default_value_t = 10)]
    pub login_attempts_per_account: u32,
    /// Login attempts per minute from one client address.
    #[arg(long, env = "CHORUS_LOGIN_ATTEMPTS_PER_ADDRESS", default_value_t = 60)]
    pub login_attempts_per_address: u32,
    // Abuse limits at the edge (issue 15; `super::edge` reads them): keep this block together.
    /// Accounts created per hour from one client address (IPv4 address, IPv6 /64), the
    /// refill of a token bucket of `account_creation_burst`; 429 past it.
    #[arg(long, env = "CHORUS_ACCOUNT_CREATIONS_PER_HOUR", default_value_t = 30)]
    pub account_creations_per_hour: u32,
    /// Accounts one client address may create back to back before the hourly rate applies.
    #[arg(long, env = "CHORUS_ACCOUNT_CREATION_BURST", default_value_t = 10)]
    pub account_creation_burst: u32,
    /// Contact uploads (`POST /v1/me/contacts`) per hour from one client address, the
    /// refill of a token bucket of `contact_upload_burst`; 429 past it.
    #[arg(long, env = "CHORUS_CONTACT_UPLOADS_PER_HOUR", default_value_t = 60)]
    pub contact_uploads_per_hour: u32,
    /// Contact uploads one client address may make back to back.
    #[arg(long, env = "CHORUS_CONTACT_UPLOAD_BURST", default_value_t = 20)]
    pub contact_upload_burst: u32,
    /// Password hashes (account creation, login) running at once; past it the answer is 503
    /// `unavailable` with `Retry-After` (default: twice the cores).
    #[arg(long, env = "CHORUS_PASSWORD_HASH_CONCURRENCY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_hash_concurrency: Option<usize>,
    /// Reverse proxies, `CIDR,CIDR` (e.g. `10.0.0.0/8,192.0.2.7/32`): a request from one of
    /// them is counted against the client address in its `X-Forwarded-For`. Without it the
    /// header is ignored.
    #[arg(long, env = "CHORUS_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<IpNet>,
    // End of the abuse-limits block.
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "CHORUS_WORKERS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// Seconds a binding request stays pending before it expires (7 days).
    #[arg(long, env = "CHORUS_BINDING_REQUEST_TTL_SECS", default_value_t = 7 * 24 * 3600)]
    pub binding_request_ttl_secs: u64,
    /// Attempts per platform release before it is `failed`.
    #[arg(long, env = "CHORUS_RELEASE_MAX_ATTEMPTS", default_value_t = release().max_attempts)]
    pub release_max_attempts: u32,
    /// Wait after a release's first failed attempt in ms; doubles per attempt.
    #[arg(
        long,
        env = "CHORUS_RELEASE_BACKOFF_BASE_MS",
        default_value_t = millis(release().backoff_base)
    )]
    pub release_backoff_base_ms: u64,
    /// Longest wait between two attempts in seconds, before jitter.
    #[arg(
        long,
        env = "CHORUS_RELEASE_BACKOFF_MAX_SECS",
        default_value_t = release().backoff_max.as_secs()
    )]
    pub release_backoff_max_secs: u64,
    /// Bound on one release attempt in ms.
    #[arg(
        long,
        env = "CHORUS_RELEASE_TIMEOUT_MS",
        default_value_t = millis(release().attempt_timeout)
    )]
    pub release_timeout_ms: u64,
    /// Release attempts running at once, over all platforms.
    #[arg(long, env = "CHORUS_RELEASE_CONCURRENCY", default_value_t = release().max_in_flight)]
    pub release_concurrency: usize,
    /// Release attempts running at once to one linked platform account.
    #[arg(
        long,
        env = "CHORUS_RELEASE_PER_LINK",
        default_value_t = release().max_in_flight_per_link
    )]
    pub release_per_link: usize,
    /// Release attempts running at once to one destination host (any port), all links to it
    /// together.
    #[arg(
        long,
        env = "CHORUS_RELEASE_PER_DESTINATION",
        default_value_t = release().max_in_flight_per_destination
    )]
    pub release_per_destination: usize,
    /// Release attempts running at once of one account's releases (accounts take turns).
    #[arg(
        long,
        env = "CHORUS_RELEASE_PER_ACCOUNT",
        default_value_t = release().max_in_flight_per_account
    )]
    pub release_per_account: usize,
    /// Releases the releaser holds in memory; past it they wait in the outbox on disk.
    #[arg(long, env = "CHORUS_RELEASE_HELD", default_value_t = release().max_held)]
    pub release_held: usize,
    /// Releases the releaser holds in memory for one account; past it theirs wait in the
    /// outbox on disk.
    #[arg(
        long,
        env = "CHORUS_RELEASE_HELD_PER_ACCOUNT",
        default_value_t = release().max_held_per_account
    )]
    pub release_held_per_account: usize,
    /// SMTP relay for the `email` platform, e.g. `smtp://127.0.0.1:25` or
    /// `smtps://user:pass@mail.example.com`; without it there is no `email` platform.
    #[arg(long, env = "CHORUS_SMTP_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_url: Option<String>,
    /// From header of release emails.
    #[arg(
        long,
        env = "CHORUS_SMTP_FROM",
        default_value = "Chorus <chorus@localhost>"
    )]
    pub smtp_from: String,
    // Caps on growth from other people's input (issue 15; chorus_actors::model::Caps).
    /// Incoming friend requests an account may have pending (409 `limit_reached` past it).
    #[arg(long, env = "CHORUS_MAX_FRIEND_REQUESTS", default_value_t = caps().friend_requests)]
    pub max_friend_requests: usize,
    /// Accounts one account's uploaded contacts may have matched (409 `limit_reached` past it).
    #[arg(long, env = "CHORUS_MAX_CONTACT_MATCHES", default_value_t = caps().contact_matches)]
    pub max_contact_matches: usize,
    /// Members of one group, the owner included (409 `limit_reached` past it).
    #[arg(long, env = "CHORUS_MAX_GROUP_MEMBERS", default_value_t = caps().group_members)]
    pub max_group_members: usize,
    /// Pending binding requests of one group (409 `limit_reached` past it).
    #[arg(long, env = "CHORUS_MAX_BINDING_REQUESTS", default_value_t = caps().binding_requests)]
    pub max_binding_requests: usize,
    /// Live tokens of one account; a login past it drops the oldest.
    #[arg(long, env = "CHORUS_MAX_TOKENS_PER_ACCOUNT", default_value_t = caps().tokens)]
    pub max_tokens_per_account: usize,
    /// Seconds a token works after the login that issued it (30 days; then 401
    /// `unauthorized`).
    #[arg(long, env = "CHORUS_TOKEN_TTL_SECS", default_value_t = caps().token_ttl.as_secs())]
    pub token_ttl_secs: u64,
    /// Days an event stays in an account's or a group's log (fractions allowed; 0: for
    /// ever); a `resume` from before that answers `resync_required`.
    #[arg(
        long,
        env = "CHORUS_LOG_RETENTION_DAYS",
        default_value_t = caps().log_retention.map_or(0.0, |d| d.as_secs_f64() / DAY)
    )]
    pub log_retention_days: f64,
    // Egress policy and secrets at rest (docs/api.md "Platform accounts"; README
    // "Configuration").
    /// Let platform links point at loopback, private, link-local and other non-public
    /// addresses, and Mastodon links use plain `http://`: for development and tests, whose
    /// receivers listen on 127.0.0.1. Off, such links answer 400 and such addresses are
    /// refused again when a release connects.
    #[arg(long, env = "CHORUS_ALLOW_PRIVATE_DESTINATIONS")]
    pub allow_private_destinations: bool,
    /// File holding the key that seals link secrets at rest (64 hex characters). Unset, the
    /// embedded store keeps one it makes in `--data-dir` (`secret.key`, mode 0600), and the
    /// CQL store one row every node shares.
    #[arg(long, env = "CHORUS_SECRET_KEY_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key_file: Option<PathBuf>,
    // Identities (issue 15): the codes that prove an email with `--smtp-url`.
    /// Seconds a verification code stays good.
    #[arg(
        long,
        env = "CHORUS_VERIFY_CODE_TTL_SECS",
        default_value_t = verification().code_ttl.as_secs()
    )]
    pub verify_code_ttl_secs: u64,
    /// Wrong codes accepted before a verification code is spent.
    #[arg(
        long,
        env = "CHORUS_VERIFY_CODE_ATTEMPTS",
        default_value_t = verification().code_attempts
    )]
    pub verify_code_attempts: u32,
    /// Least seconds between two codes sent to one identifier (429 before).
    #[arg(
        long,
        env = "CHORUS_VERIFY_RESEND_SECS",
        default_value_t = verification().resend_after.as_secs()
    )]
    pub verify_resend_secs: u64,
    /// Codes sent to one identifier in 24 hours at most (429 past it, with `Retry-After`).
    #[arg(
        long,
        env = "CHORUS_VERIFY_CODES_PER_DAY",
        default_value_t = verification().codes_per_day
    )]
    pub verify_codes_per_day: u32,
    // Metrics (issue 16; src/metrics).
    /// Bearer token a scrape of `GET /metrics` must carry (401 without it). Unset, the
    /// metrics are served to anyone who reaches the port, as most exporters do.
    #[arg(long, env = "CHORUS_METRICS_TOKEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_token: Option<String>,
}

impl Default for Settings {
    /// Every setting at its default, as clap fills it from no flags, the environment ignored.
    fn default() -> Self {
        let defaults =
            Settings::augment_args(clap::Command::new("chorus")).mut_args(|a| a.env(None));
        match defaults
            .try_get_matches_from(["chorus"])
            .and_then(|m| Settings::from_arg_matches(&m))
        {
            Ok(s) => s,
            // Only a default that does not parse gets here: a bug that every test run finds.
            Err(e) => panic!("the built-in defaults do not parse: {e}"),
        }
    }
}

/// The storage engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// fjall under `--data-dir`: nothing else to run.
    Fjall,
    /// A ScyllaDB cluster: any node can activate any actor.
    Scylla,
}

/// Seconds of a day, the unit of `log_retention_days`.
pub(super) const DAY: f64 = 24.0 * 3600.0;

/// The caps' defaults belong to the domain; the flags show them.
fn caps() -> chorus_actors::model::Caps {
    chorus_actors::model::Caps::default()
}

/// The release defaults belong to the releaser; the flags show them.
fn release() -> ReleaseConfig {
    ReleaseConfig::default()
}

/// The presence defaults belong to the domain; the flags show them.
fn presence() -> chorus_actors::PresenceConfig {
    chorus_actors::PresenceConfig::default()
}

/// The defaults of verification codes belong to the domain; the flags show them.
fn verification() -> Verification {
    Verification::default()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
