//! The connection table: which devices of which account are connected to this process, for
//! events of an account's own log. (Group events reach devices through the fan-out lanes,
//! [`super::fanout`].) Events reach it two ways: [`Hub::push`] from the account's own actor
//! on this node, and in cluster mode [`Hub::deliver`] from the relay, for events the
//! account's actor on another node published ([`super::relay`]).

use std::sync::Arc;

use dashmap::DashMap;

use super::event::{Outlet, StoredEvent};

/// Online devices per account.
#[derive(Default)]
pub struct Hub {
    devices: DashMap<String, Vec<Arc<dyn Outlet>>>,
}

impl Hub {
    /// A device of `account` connected here.
    pub fn attach(&self, account: &str, outlet: Arc<dyn Outlet>) {
        self.devices
            .entry(account.to_owned())
            .or_default()
            .push(outlet);
    }

    /// The device `outlet_id` of `account` disconnected.
    pub fn detach(&self, account: &str, outlet_id: u64) {
        if let dashmap::Entry::Occupied(mut entry) = self.devices.entry(account.to_owned()) {
            entry.get_mut().retain(|o| o.id() != outlet_id);
            if entry.get().is_empty() {
                entry.remove();
            }
        }
    }

    /// How many accounts have a device here, and how many devices (for `GET /metrics`).
    pub fn counts(&self) -> (usize, usize) {
        let devices = self.devices.iter().map(|d| d.len()).sum();
        (self.devices.len(), devices)
    }

    /// How many devices of `account` are connected here.
    pub fn online(&self, account: &str) -> usize {
        self.devices.get(account).map_or(0, |d| d.len())
    }

    /// Pushes events of the account's own log to all its devices. Called by the account's
    /// actor, which also hands the events to the relay for devices on other nodes.
    pub fn push(&self, account: &str, events: &[StoredEvent]) {
        if let Some(devices) = self.devices.get(account) {
            for device in devices.iter() {
                for event in events {
                    device.push(event);
                }
            }
        }
    }

    /// Events of `account`'s log that its actor on another node published (cluster mode):
    /// to this node's devices only, and never relayed again. The same path as
    /// [`Hub::push`]; a separate name so the one direction is never mistaken for the other.
    pub fn deliver(&self, account: &str, events: &[StoredEvent]) {
        self.push(account, events);
    }

    /// Tells every device connected here to resume ([`Outlet::resume`]): events for them may
    /// have been lost between nodes. Answers how many were told.
    pub fn resume_all(&self) -> usize {
        let mut told = 0;
        for devices in self.devices.iter() {
            for device in devices.iter() {
                device.resume();
                told += 1;
            }
        }
        told
    }
}
