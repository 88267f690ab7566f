//! The black-box tests: one binary that starts the real `chorus` binary (one process per
//! test, on 127.0.0.1:0 and a temporary data directory) and talks to it with real HTTP and
//! WebSocket clients, and to the real peers a release goes to (`chorus_testkit`). Tests run
//! side by side on the harness's threads; nothing here changes this process's environment.
//! `CHORUS_TEST_STORE=scylla` (with `CHORUS_TEST_SCYLLA_NODES`) runs every test on the
//! ScyllaDB store instead of the embedded one: see `support::store`.
//!
//! One module per area of the API; `support` holds the helpers, one module per concern.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod accounts;
mod ambiguous;
mod backpressure;
mod bindings;
mod bounded;
mod caps;
mod cluster;
mod conventions;
mod crash_steps;
mod cursor;
mod cursor_cluster;
mod disk;
mod durability;
mod egress;
mod faults;
mod friends;
mod groups;
mod identities;
mod limits;
mod metrics;
mod openapi;
mod platforms;
mod presence;
mod presence_cluster;
mod profile_sync;
mod release;
mod release_crash;
mod release_fairness;
mod retention;
mod scylla_cli;
mod secrets;
mod sessions;
mod verification;
mod webapp;
mod websocket;
