//! Support for the black-box tests, one module per concern. What nearly every test uses is
//! re-exported here (`use crate::support::*`): the server process, HTTP, accounts and
//! WebSocket devices. [`store`] picks the store the servers run on (fjall, or the CQL store
//! with `CHORUS_TEST_STORE=scylla`) and gives each server its own data there. The area helpers are imported by the tests that need them:
//! [`groups`] (groups, communities, bindings) and [`release`] (activities, releases and the
//! release fixture), which re-exports the peers a release goes to: [`receivers`] (HTTP) and
//! [`smtp`] (email), both built on `chorus_testkit`. [`at_rest`] reads what a stopped server
//! left in its store, for the tests of secrets at rest.

pub mod accounts;
pub mod at_rest;
pub mod cluster;
pub mod groups;
pub mod http;
pub mod receivers;
pub mod release;
pub mod server;
pub mod smtp;
pub mod store;
pub mod ws;

pub use accounts::*;
pub use http::*;
pub use server::*;
pub use ws::*;
