//! Storage engines implementing the actors' traits. Today: [`fjall`], the embedded default.

pub mod fjall;

pub use self::fjall::FjallStore;
