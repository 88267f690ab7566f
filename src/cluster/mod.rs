//! Cluster mode (docs/cluster.md): N nodes over the CQL store and NATS.
//! - [`relay`]: delivery once per node, the [`chorus_actors::push::Relay`] of a cluster;
//! - [`interest`]: which account and group subjects this node takes, and where what arrives
//!   goes.

pub mod interest;
pub mod relay;
