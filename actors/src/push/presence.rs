//! Who is online: the devices of each account, on this node and, in cluster mode, on every
//! other node. An account is online while it has a device anywhere.
//!
//! This node's own devices are the [`Hub`]'s. Each other node tells every node its count of
//! devices per account as it changes, and a snapshot of all of them after a view change, a
//! lost connection, and every minute (the server's `cluster::presence`): the table is
//! replicated, as Phoenix.Presence replicates its, so asking whether an account is online is
//! a local lookup on any node, and `GET /v1/friends` or a group's presence never crosses the
//! network. A node that dies takes its counts with it ([`Presence::keep_nodes`]).
//!
//! Whenever an account's count on one node crosses zero (its first device there came or its
//! last one went), the account is handed to the announcer (`ops::presence`) which decides,
//! on the account's owner node and debounced, whether its friends and groups hear
//! `presence.changed`. A count that only moves between non-zero values changes nothing
//! anyone is told.

use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::mpsc;

use super::hub::Hub;

/// What other nodes reported of one account: `(node, devices there, snapshot round)`.
type Reports = Vec<(Arc<str>, u32, u64)>;

/// The presence table of this node.
pub struct Presence {
    hub: Arc<Hub>,
    /// Devices of each account on other nodes, as they reported them (never zero).
    remote: DashMap<String, Reports>,
    /// The snapshot round each other node is in (its reports carry it).
    rounds: DashMap<Arc<str>, u64>,
    /// Accounts whose count crossed zero somewhere, for the announcer. Unbounded: one item
    /// per first-device or last-device change, which the announcer takes at once.
    flips: mpsc::UnboundedSender<String>,
}

impl Presence {
    /// A table over `hub` (this node's devices) that hands accounts whose presence may have
    /// changed to `flips`.
    pub fn new(hub: Arc<Hub>, flips: mpsc::UnboundedSender<String>) -> Self {
        Presence {
            hub,
            remote: DashMap::new(),
            rounds: DashMap::new(),
            flips,
        }
    }

    /// How many devices `account` has connected, on every node.
    pub fn devices(&self, account: &str) -> usize {
        let remote = self
            .remote
            .get(account)
            .map_or(0, |r| r.iter().map(|(_, n, _)| *n as usize).sum::<usize>());
        self.hub.online(account) + remote
    }

    /// This node's count of `account` went from `before` to `after` devices (the hub's
    /// answer to an attach or detach).
    pub fn local_changed(&self, account: &str, before: usize, after: usize) {
        if (before == 0) != (after == 0) {
            self.flip(account);
        }
    }

    /// `node` reported `devices` devices of `account` (0: none left there), in snapshot
    /// `round` if it is part of a snapshot.
    pub fn remote(&self, node: &str, account: &str, devices: u32, round: Option<u64>) {
        let round = match round {
            Some(r) => {
                self.rounds.insert(Arc::from(node), r);
                r
            }
            None => self.rounds.get(node).map_or(0, |r| *r),
        };
        let before = {
            let mut reports = self.remote.entry(account.to_owned()).or_default();
            let at = reports.iter().position(|(n, _, _)| &**n == node);
            let before = at.map_or(0, |i| reports[i].1);
            match (at, devices) {
                (Some(i), 0) => {
                    reports.swap_remove(i);
                }
                (Some(i), n) => reports[i] = (reports[i].0.clone(), n, round),
                (None, 0) => {}
                (None, n) => reports.push((Arc::from(node), n, round)),
            }
            before
        };
        self.remote.remove_if(account, |_, r| r.is_empty());
        if (before == 0) != (devices == 0) {
            self.flip(account);
        }
    }

    /// `node` finished snapshot `round`: what it reported before that round is gone.
    pub fn snapshot_done(&self, node: &str, round: u64) {
        self.drop_reports(|n, r| n == node && r < round);
    }

    /// Forgets every node `live` says is gone (dead, or left): their devices are.
    pub fn keep_nodes(&self, live: impl Fn(&str) -> bool) {
        self.drop_reports(|n, _| !live(n));
        self.rounds.retain(|n, _| live(n));
    }

    fn drop_reports(&self, gone: impl Fn(&str, u64) -> bool) {
        let mut flipped = Vec::new();
        self.remote.retain(|account, reports| {
            let had = !reports.is_empty();
            reports.retain(|(n, _, r)| !gone(n, *r));
            if had && reports.is_empty() {
                flipped.push(account.clone());
            }
            !reports.is_empty()
        });
        for account in flipped {
            self.flip(&account);
        }
    }

    /// This node's devices per account (for a snapshot to the other nodes).
    pub fn local_counts(&self) -> Vec<(String, usize)> {
        self.hub.accounts()
    }

    fn flip(&self, account: &str) {
        // Closed only when the domain stops: nobody is left to tell.
        let _ = self.flips.send(account.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> (Presence, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Presence::new(Arc::new(Hub::default()), tx), rx)
    }

    fn flips(rx: &mut mpsc::UnboundedReceiver<String>) -> Vec<String> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    #[test]
    fn remote_counts_add_up_and_only_zero_crossings_flip() {
        let (p, mut rx) = table();
        p.remote("b", "ann", 1, None);
        p.remote("c", "ann", 2, None);
        assert_eq!(p.devices("ann"), 3);
        p.remote("b", "ann", 3, None);
        assert_eq!(p.devices("ann"), 5);
        p.remote("b", "ann", 0, None);
        assert_eq!(p.devices("ann"), 2);
        assert_eq!(
            flips(&mut rx),
            ["ann", "ann", "ann"],
            "b: 0->1, c: 0->2, b: 3->0"
        );
        p.remote("c", "ann", 0, None);
        assert_eq!(p.devices("ann"), 0);
        assert!(p.remote.is_empty(), "no empty rows are kept");
    }

    #[test]
    fn a_gone_node_takes_its_devices_with_it() {
        let (p, mut rx) = table();
        p.remote("b", "ann", 1, None);
        p.remote("c", "bob", 1, None);
        flips(&mut rx);
        p.keep_nodes(|n| n == "c");
        assert_eq!((p.devices("ann"), p.devices("bob")), (0, 1));
        assert_eq!(flips(&mut rx), ["ann"]);
    }

    #[test]
    fn a_finished_snapshot_drops_what_it_did_not_repeat() {
        let (p, mut rx) = table();
        p.remote("b", "ann", 1, Some(1));
        p.remote("b", "bob", 1, Some(1));
        p.snapshot_done("b", 1);
        flips(&mut rx);
        // Round 2 still has Ann (a later change of hers came as a delta), not Bob.
        p.remote("b", "ann", 2, Some(2));
        p.remote("b", "ann", 1, None);
        p.snapshot_done("b", 2);
        assert_eq!((p.devices("ann"), p.devices("bob")), (1, 0));
        assert_eq!(flips(&mut rx), ["bob"]);
    }
}
