//! Push: events to devices. Event frames encoded once ([`event`]), the table of connected
//! devices per account ([`hub`]) and the workers that fan a group event out to every member's
//! devices ([`fanout`]). A push never blocks: it is a `try_send` into a device's bounded
//! mailbox ([`Outlet`]).

pub mod event;
pub mod fanout;
pub mod hub;

pub use event::{EventType, Outlet, Pushed, StoredEvent};
pub use fanout::{Fanout, Partition, partition};
pub use hub::Hub;
