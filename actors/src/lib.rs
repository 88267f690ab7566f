//! Chorus domain: the actors, their messages and the storage they need.
//!
//! Knows nothing of HTTP, WebSocket framing or any database engine; the server crate wires
//! those to the types here.
//!
//! # Code map
//! - [`subscriber`]: the Subscriber actor, one per account (profile, links, friends, requests,
//!   event log position).
//! - [`group`]: the Group actor, one per IM group (members, binding requests, bindings, chat,
//!   group event log).
//! - [`community`]: the Community actor (members, bound groups, dynamics feed).
//! - [`releaser`]: the Releaser actor (one per server): every platform delivery of an
//!   activity from `pending` to `delivered`/`failed` — concurrency limits, backoff with
//!   jitter, `Retry-After`, each status recorded by the author's actor before the next step.
//! - [`connector`]: the seam to the platforms ([`connector::Connector`], implemented in the
//!   server crate) and the shared reading of HTTP answers.
//! - [`messages`]: one documented struct per intent, a file per actor.
//! - [`registry`]: activates an actor from the store on first use; actors passivate when idle.
//! - [`flows`], [`group_flows`], [`activity_flows`]: operations spanning two or more actors
//!   (friend requests, contact matching, profile fan-out, the binding handshake, dynamic
//!   delivery, merged feeds, posting an activity), orchestrated from outside so that no actor
//!   waits for another.
//! - [`hub`]: connected devices per account and the fan-out workers — the one seam through
//!   which events reach devices.
//! - [`store`]: the storage traits the actors need, and their conformance suite.
//! - [`event`]: event frames, encoded once, and [`event::Outlet`] (a device's mailbox).
//! - [`model`], [`groups_model`], [`activity_model`]: records as stored (activities and their
//!   deliveries included); normalisation of personal info.
//! - [`ids`]: opaque random ids.
//! - [`error`]: the crate's error enum.
//!
//! # Invariants
//! - An actor owns its state; only it changes it, and only after the change is durable.
//! - An event gets its `seq` in the actor's turn and is written to the log in the same atomic
//!   write as the state change that caused it, then delivered: acknowledged means durable.
//! - Delivery to a device never blocks the actor ([`event::Outlet::deliver`]).
//! - An activity and one delivery per linked platform are written in one atomic write; a
//!   delivery's every status change is durable before the next attempt is scheduled.
//! - A group event is stored once in the group's log and encoded once; every member's every
//!   device gets the same buffer, from the fan-out workers, never from the group actor.

pub mod activity_flows;
pub mod activity_model;
pub mod community;
pub mod connector;
pub mod error;
pub mod event;
pub mod flows;
pub mod group;
pub mod group_flows;
pub mod groups_model;
pub mod hub;
pub mod ids;
pub mod messages;
pub mod model;
pub mod registry;
pub mod releaser;
pub mod store;
pub mod subscriber;

pub use error::{Error, Result, StoreError};
pub use registry::{Registry, RegistryConfig};
