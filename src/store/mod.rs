//! Storage engines implementing the actors' traits. [`fjall`], the embedded default, and [`scylla`]
//! for a ScyllaDB cluster.

pub mod fjall;
pub mod scylla;

pub use self::fjall::FjallStore;
pub use self::scylla::ScyllaStore;
