//! The connection table: which devices of which account are connected to this process, for
//! events of an account's own log. (Group events reach devices through the fan-out lanes,
//! [`super::fanout`].) A later multi-node transport sits behind these two seams; no actor
//! assumes its recipients live in this process beyond them.

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

    /// How many devices of `account` are connected here.
    pub fn online(&self, account: &str) -> usize {
        self.devices.get(account).map_or(0, |d| d.len())
    }

    /// Pushes events of the account's own log to all its devices.
    pub fn push(&self, account: &str, events: &[StoredEvent]) {
        if let Some(devices) = self.devices.get(account) {
            for device in devices.iter() {
                for event in events {
                    device.push(event);
                }
            }
        }
    }
}
