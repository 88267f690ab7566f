//! Chorus domain: the actors, the operations between them, the records they keep and the
//! storage they need.
//!
//! Knows nothing of HTTP, WebSocket framing or any database engine; the server crate wires
//! those to the types here, and reaches the domain through one facade, [`Chorus`].
//!
//! # Code map
//! Dependencies point down this list (a module uses only those below it; see
//! `docs/architecture.md`):
//! - `ops` ([`Chorus`]): the one way in — a method for every operation the server offers.
//!   Operations spanning actors (friend requests, contact matching, profile fan-out, the
//!   binding handshake, dynamics to bound groups, merged feeds, posting an activity) are
//!   orchestrated here, so that no actor waits for another. `ops/{accounts, friends, groups,
//!   communities, activities, proofs}.rs`; `ops/presence.rs` announces `presence.changed`; `ops/steps.rs` carries out what such an operation left
//!   after its first write (stored in that write: the outbox of cross-actor steps), now, after
//!   a failure, and after a crash; `ops/retention.rs` trims event logs and tells a reader
//!   from before the horizon `resync_required`.
//! - [`release`]: activities to linked platforms. The Releaser actor (`releaser.rs`), its
//!   policy (`policy.rs`: backoff with jitter, `Retry-After`, giving up, concurrency caps,
//!   bounds), its queues (`queues/`: authors in turn, caps per author, link and host, bounds
//!   on releases held), reading the outbox (`recovery.rs`: at start-up, after a view change,
//!   when there is room again) and the seam to the platforms (`connector.rs`, implemented in
//!   the server crate).
//! - `actor` (private): the actors. `actor/mod.rs` is the plumbing they share, written once
//!   (persist, passivate when idle, leave the directory); `env.rs` what an actor is handed
//!   (store, hub, fan-out, log heads, settings, the releaser); `courier.rs` the seam that
//!   proves identifiers ([`Courier`]: email codes today, an SMS gateway tomorrow); `logs.rs` the account log heads
//!   (where an account's next `seq` comes from) and `notify_each`, one event appended to many
//!   accounts' logs with a few store calls (in a cluster, on each recipient's owner);
//!   `directory.rs` activates an actor on first use and finds it again, here or on its
//!   owner; `place.rs` where actors live and the epoch their writes carry (cluster mode);
//!   `remote/` messages to actors another node owns (wire names, the one registry, the
//!   node-level calls); `subscriber/` (profile, links, friends, activities, devices, proofs),
//!   `group/` (members, bindings) and `community.rs`, each message beside its handler.
//! - [`store`]: the storage traits the actors need (one change set per actor turn), and their
//!   conformance suite (`store/conformance/`, feature `conformance`: the fixture and the macro
//!   in `mod.rs`, the checks one file per area; each engine runs it with
//!   `chorus_actors::conformance_tests!`, one test per check).
//! - [`push`]: events to devices: frames encoded once (`event.rs`, whose [`push::StoredEvent`]
//!   the store also keeps), connected devices per account (`hub.rs`), who is online on any
//!   node (`presence.rs`), the lanes to the I/O
//!   threads and the budget of group events in flight (`fanout.rs`). Uses nothing else of
//!   the crate.
//! - [`model`]: records as stored (accounts, groups, communities, activities and their
//!   releases, cross-actor steps), identities that count (`model/identity.rs`), views, the
//!   one page/cursor type, and every input limit with its rule (`model/limits.rs`), and the
//!   caps on what grows from other people's input (`model/caps.rs`, enforced by the actors).
//! - [`backoff`]: waits that double up to a cap, and which failures and recoveries to log
//!   (the releaser's store retries; the embedded store's writer).
//! - [`metrics`]: the names of the domain's metrics and the call that records each (a no-op
//!   until the server installs its Prometheus recorder). Uses nothing else of the crate.
//! - [`faults`]: named fault points (crash as under `kill -9`, panic) that only tests arm,
//!   through `CHORUS_FAULTS`.
//! - [`error`]: the crate's error enum, [`Error`], and the stores' [`StoreError`] it carries.
//!
//! # Invariants
//! - An actor owns its state; only it changes it, and only after the change is durable.
//! - An event gets its `seq` under its log's head (an account's: `actor::logs`, held by the
//!   account's actor or by a fan-out, one at a time; a group's: the group actor's turn) and
//!   is written to the log in the same atomic write as the state change that caused it, then
//!   pushed before the head is let go: acknowledged means durable, and no gap, repeat or
//!   reordering.
//! - A push to a device never blocks the actor ([`push::Outlet::push`]).
//! - An operation that spans actors writes what is left of it with its first step: a 2xx
//!   means every part will happen, each once, after a crash too.
//! - An activity and one release per linked platform are written in one atomic write; a
//!   release's every status change is durable before the next attempt is scheduled.
//! - A group event is stored once in the group's log and encoded once; every member's every
//!   device gets the same bytes, written by the I/O thread that owns its socket (one job per
//!   thread through the fan-out lanes), never by the group actor.
//! - Actors know their `actor::env::Env`, never the directory or the facade: no import cycle
//!   between them.
//! - Input is checked once, where it enters (with [`model::limits`]); actors check only rules
//!   that need their state.

mod actor;
pub mod backoff;
pub mod error;
pub mod faults;
pub mod metrics;
pub mod model;
mod ops;
pub mod push;
pub mod release;
pub mod store;

pub use actor::courier::{Courier, Verification};
pub use actor::env::{ActorConfig, DEFAULT_FANOUT_BUDGET, PresenceConfig};
pub use actor::place;
pub use error::{Error, Result, StoreError};
pub use ops::cursor::{GroupHeads, GroupStart, ResumeGroups};
pub use ops::proofs::CodeSent;
pub use ops::{Chorus, Seams};
