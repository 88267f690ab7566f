//! Test peers shared by Chorus's connector unit tests (`src/connectors`) and its black-box
//! tests (`tests/blackbox`): the real servers a release goes to, so both kinds of test check
//! what actually arrived instead of what a mock was told.
//!
//! - [`receiver`]: a recording HTTP server on 127.0.0.1 (an OS-chosen port) standing in for
//!   webhook endpoints and Mastodon instances; answers from a [`Script`].
//! - [`smtp`]: the real SMTP server aiosmtpd (`smtp_sink.py` beside this crate's manifest)
//!   standing in for a relay; skipped when aiosmtpd is missing unless
//!   `CHORUS_REQUIRE_SMTP_SINK` is set.
//! - [`cql_node`]: the local CQL node of `scripts/cql-node`, found by its pid file and paused
//!   with SIGSTOP, for the tests of a write whose answer times out and which lands later.
//! - [`nats`]: a real nats-server on random ports for the cluster tests, with its message
//!   counters (`/varz`).
//!
//! A dev-dependency only; it knows nothing of Chorus's own types, so the `chorus` crate's
//! unit tests can use it without a dependency cycle.
// A test peer reports a broken setup by panicking, like the tests that use it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod cql_node;
pub mod nats;
pub mod receiver;
pub mod smtp;

pub use nats::NatsServer;
pub use receiver::{Received, Receiver, Reply, Script, sign};
pub use smtp::SmtpSink;

use std::time::{Duration, Instant};

/// Polls `fetch` every 20 ms until it holds at least `n` items: `Ok` with them, or `Err` with
/// what it held last once `timeout` has passed.
async fn wait_count<T>(
    n: usize,
    timeout: Duration,
    fetch: impl Fn() -> Vec<T>,
) -> Result<Vec<T>, Vec<T>> {
    let deadline = Instant::now() + timeout;
    loop {
        let got = fetch();
        if got.len() >= n {
            return Ok(got);
        }
        if Instant::now() > deadline {
            return Err(got);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
