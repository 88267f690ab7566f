//! Chorus domain: the actors, their messages and the storage they need.
//!
//! Knows nothing of HTTP, WebSocket framing or any database engine; the server crate wires
//! those to the types here.
//!
//! # Code map
//! - [`subscriber`]: the Subscriber actor, one per account (profile, links, friends, requests,
//!   event log position, live devices).
//! - [`messages`]: one documented struct per thing you can ask a Subscriber.
//! - [`registry`]: activates an actor from the store on first use; actors passivate when idle.
//! - [`flows`]: operations spanning two or more actors (friend requests, contact matching,
//!   profile fan-out), orchestrated from outside so that no actor waits for another.
//! - [`store`]: the storage trait the actors need, and its conformance suite.
//! - [`event`]: event frames (encoded once) and [`event::Outlet`], the one seam through which
//!   events reach devices.
//! - [`model`]: ids, records, normalisation of personal info.
//! - [`error`]: the crate's error enum.
//!
//! # Invariants
//! - An actor owns its state; only it changes it, and only after the change is durable.
//! - An event gets its `seq` in the actor's turn and is written to the log in the same atomic
//!   write as the state change that caused it, then delivered: acknowledged means durable.
//! - Delivery to a device never blocks the actor ([`event::Outlet::deliver`]).

pub mod error;
pub mod event;
pub mod flows;
pub mod messages;
pub mod model;
pub mod registry;
pub mod store;
pub mod subscriber;

pub use error::{Error, Result, StoreError};
pub use registry::{Registry, RegistryConfig};
