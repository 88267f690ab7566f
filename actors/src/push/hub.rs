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
    /// A device of `account` connected here. Answers how many devices of the account were
    /// here before and are now (under the account's entry: concurrent attaches and detaches
    /// each see their own change, so exactly one sees the count leave or reach zero).
    pub fn attach(&self, account: &str, outlet: Arc<dyn Outlet>) -> (usize, usize) {
        let mut devices = self.devices.entry(account.to_owned()).or_default();
        devices.push(outlet);
        (devices.len() - 1, devices.len())
    }

    /// The device `outlet_id` of `account` disconnected. Answers the counts before and after,
    /// as [`Hub::attach`] does.
    pub fn detach(&self, account: &str, outlet_id: u64) -> (usize, usize) {
        match self.devices.entry(account.to_owned()) {
            dashmap::Entry::Occupied(mut entry) => {
                let before = entry.get().len();
                entry.get_mut().retain(|o| o.id() != outlet_id);
                let after = entry.get().len();
                if after == 0 {
                    entry.remove();
                }
                (before, after)
            }
            dashmap::Entry::Vacant(_) => (0, 0),
        }
    }

    /// Every account with a device here, and how many (a presence snapshot).
    pub fn accounts(&self) -> Vec<(String, usize)> {
        self.devices
            .iter()
            .map(|d| (d.key().clone(), d.len()))
            .collect()
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
