//! Push: events to devices. Event frames encoded once ([`event`]), the table of connected
//! devices per account ([`hub`]) and the lanes through which group events reach the I/O
//! threads that own the sockets ([`fanout`]), the [`relay`] to devices on other nodes
//! in cluster mode, and who is online on any node ([`presence`]). A push never blocks: it is a `try_send` into a
//! bounded queue.

pub mod event;
pub mod fanout;
pub mod hub;
pub mod presence;
pub mod relay;

pub use event::{EventType, Outlet, Pushed, StoredEvent};
pub use fanout::{Fanout, Job, Lane, Member, MemberList, Members, Shared};
pub use hub::Hub;
pub use presence::Presence;
pub use relay::{NoRelay, Relay};
