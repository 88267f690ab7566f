//! Plain data of the domain: records as stored, the views clients get, pages and cursors,
//! and every limit on client input with the rule that checks it.
//!
//! Each submodule is re-exported here, so `chorus_actors::model::AccountRecord` and
//! `chorus_actors::model::account::AccountRecord` are the same item.

pub mod account;
pub mod activity;
pub mod caps;
pub mod group;
pub mod identity;
pub mod ids;
pub mod limits;
pub mod page;
pub mod step;

pub use account::*;
pub use activity::*;
pub use caps::Caps;
pub use group::*;
pub use identity::{CodeTarget, IdKind, PendingCode, Proof, Provable};
pub use ids::new_id;
pub use page::*;
pub use step::{Step, StepRecord};

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
