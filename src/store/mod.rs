//! Storage engines implementing the actors' traits. [`fjall`], the embedded default, and [`scylla`]
//! for a ScyllaDB cluster; both keep records as the same JSON documents (`json.rs`).

pub mod fjall;
mod json;
pub mod scylla;

pub use self::fjall::FjallStore;
pub use self::scylla::ScyllaStore;
