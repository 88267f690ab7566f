//! Events to devices on other nodes.
//!
//! An actor pushes its events to the devices connected to this node ([`super::Hub`],
//! [`super::Fanout`]) and hands them to the [`Relay`] too. On a single node the relay is
//! [`NoRelay`] and does nothing. In cluster mode (the server's `cluster` module) it publishes
//! each event once on a subject other nodes subscribe to while they have a device that wants
//! it, so a group event crosses the network once per interested node, whatever the group's
//! size (docs/cluster.md, "Delivery once per node").
//!
//! Every method returns at once: a relay queues, it never waits for the network on an
//! actor's thread.

use futures_util::future::BoxFuture;

use super::event::StoredEvent;
use crate::error::Error;

/// Where events for devices on other nodes go.
pub trait Relay: Send + Sync + 'static {
    /// `events` of `account`'s log are durable and were pushed to this node's devices.
    fn account_events(&self, account: &str, events: &[StoredEvent]);

    /// A group event is durable and was handed to this node's fan-out.
    fn group_event(&self, group: &str, event: &StoredEvent);

    /// `account` joined (`member`) or left `group`, durably (the group's actor; a group's
    /// creation for its owner): nodes where it has devices, this one included, start or
    /// stop taking the group's events for it.
    fn membership(&self, account: &str, group: &str, member: bool);

    /// A device of `account` is about to attach here: take its account events and its
    /// groups' events from other nodes from now on. Answers once that is in effect (the
    /// subscriptions are registered), so every event numbered after the device's starting
    /// point reaches it. On an error nothing is counted (do not [`Relay::release`]); a
    /// caller that stops waiting leaves nothing counted either.
    fn interest(&self, account: &str) -> BoxFuture<'static, Result<(), Error>>;

    /// A device of `account` left this node (undoes one successful [`Relay::interest`]).
    fn release(&self, account: &str);

    /// `account` has `devices` devices on this node now: tell the other nodes' presence
    /// tables ([`super::Presence`]). Nothing on a single node.
    fn presence(&self, _account: &str, _devices: usize) {}
}

/// One node: nothing to relay.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoRelay;

impl Relay for NoRelay {
    fn account_events(&self, _account: &str, _events: &[StoredEvent]) {}

    fn group_event(&self, _group: &str, _event: &StoredEvent) {}

    fn membership(&self, _account: &str, _group: &str, _member: bool) {}

    fn interest(&self, _account: &str) -> BoxFuture<'static, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }

    fn release(&self, _account: &str) {}
}
