//! What the domain counts for the operator: the names of its metrics and the one call that
//! records each, through the `metrics` facade. Until the server installs a recorder
//! (`src/metrics/` in the server crate, which also describes every name for `GET /metrics`)
//! each call is a no-op. Nothing here runs per recipient of an event: a call is one lookup
//! and one atomic add, made per activation, per release attempt, per refused publish.
//!
//! Uses nothing else of the crate, so every module may record.

/// Actors activated from the store, by `kind` (`account`, `group`, `community`).
pub const ACTIVATIONS: &str = "chorus_actor_activations_total";
/// Live actors on this node, by `kind` (sampled when scraped, from the directory).
pub const ACTORS_LIVE: &str = "chorus_actors_live";
/// Release attempts by `platform` and `outcome` (`delivered`, `retry`, `failed`).
pub const RELEASE_ATTEMPTS: &str = "chorus_release_attempts_total";
/// Requests refused by a limit, by `kind` (the server adds its own kinds).
pub const RATE_LIMITED: &str = "chorus_rate_limited_total";
/// Group events an I/O thread's lane was too full to take (shed there; devices read them
/// back from the group's history).
pub const LANE_SHED: &str = "chorus_fanout_shed_total";

/// The `kind`s of actor ([`ACTIVATIONS`], [`ACTORS_LIVE`]).
pub const ACTOR_KINDS: [&str; 3] = ["account", "group", "community"];
/// The `outcome`s of a release attempt ([`RELEASE_ATTEMPTS`]).
pub const RELEASE_OUTCOMES: [&str; 3] = ["delivered", "retry", "failed"];
/// The `kind` of [`RATE_LIMITED`] the domain records (the server adds its own).
pub const FANOUT_BUDGET: &str = "fanout_budget";

/// An actor of `kind` was activated from the store.
pub fn activated(kind: &'static str) {
    metrics::counter!(ACTIVATIONS, "kind" => kind).increment(1);
}

/// One release attempt to `platform` ended with `outcome`.
pub fn release_attempt(platform: &str, outcome: &'static str) {
    metrics::counter!(RELEASE_ATTEMPTS, "platform" => platform.to_owned(), "outcome" => outcome)
        .increment(1);
}

/// A request was refused by the limit `kind`.
pub fn rejected(kind: &'static str) {
    metrics::counter!(RATE_LIMITED, "kind" => kind).increment(1);
}

/// A group event was shed by a full lane.
pub fn lane_shed() {
    metrics::counter!(LANE_SHED).increment(1);
}
