//! Messages of the actors: one documented struct per intent, one file per actor.

pub mod community;
pub mod group;
pub mod releaser;
pub mod subscriber;

pub use community::*;
pub use group::*;
pub use releaser::*;
pub use subscriber::*;
