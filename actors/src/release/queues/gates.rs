//! The caps on attempts running at once besides the global one and the account's own: per
//! link and per destination host, each a [`Gate`]. A release that finds a gate full waits on
//! it in a [`Parked`] line, which is itself round-robin over accounts: when the gate frees a
//! slot, the next account in turn gets it, so a thousand releases of one account waiting on a
//! shared host do not go before another account's one.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::model::ReleaseKey;

/// An account id, shared by every structure that names it.
pub(super) type Account = Arc<str>;

/// What caps concurrent attempts besides the global limit and the account's own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(in crate::release) enum Gate {
    /// One link (one platform account of one author).
    Link(Arc<str>),
    /// One destination host ([`crate::release::Connector::destination`]), every link to it
    /// together, whichever account made it.
    Destination(Arc<str>),
}

/// One gate: the attempts running through it and the releases waiting for it. Parked
/// releases exist only while some run: a release parks only on a full gate (so at least one
/// runs), each finished attempt wakes one, and the last one to finish wakes them all.
#[derive(Debug, Default)]
pub(super) struct GateState {
    pub running: usize,
    pub parked: Parked,
}

/// How many accounts a wake-up looks through for one that can run at once, before it settles
/// for the first in turn.
const WAKE_SCAN: usize = 16;

/// Releases waiting for one gate: first in, first out per account; accounts served in turn.
#[derive(Debug, Default)]
pub(super) struct Parked {
    /// The accounts with releases here, each once, in turn order.
    ring: VecDeque<Account>,
    pub(super) lines: HashMap<Account, VecDeque<ReleaseKey>>,
}

impl Parked {
    pub fn push(&mut self, account: &Account, key: ReleaseKey) {
        let line = self.lines.entry(account.clone()).or_default();
        if line.is_empty() {
            self.ring.push_back(account.clone());
        }
        line.push_back(key);
    }

    /// The longest-waiting release of the next account in turn, preferring, among the next
    /// few accounts, one that `can_run` now (one at its own cap would only sit on the slot).
    pub fn pop(&mut self, can_run: impl Fn(&Account) -> bool) -> Option<(Account, ReleaseKey)> {
        let scan = self.ring.len().min(WAKE_SCAN);
        let at = (0..scan).find(|&i| can_run(&self.ring[i])).unwrap_or(0);
        let account = self.ring.remove(at)?;
        let line = self.lines.get_mut(&account)?;
        let key = line.pop_front()?;
        if line.is_empty() {
            self.lines.remove(&account);
        } else {
            self.ring.push_back(account.clone());
        }
        Some((account, key))
    }

    /// Everything waiting, each account's line in order.
    pub fn drain(&mut self) -> Vec<(Account, VecDeque<ReleaseKey>)> {
        self.ring.clear();
        self.lines.drain().collect()
    }

    /// Takes `key` out of `account`'s line; answers whether it was there.
    pub fn remove(&mut self, account: &Account, key: &ReleaseKey) -> bool {
        let Some(line) = self.lines.get_mut(account) else {
            return false;
        };
        let Some(at) = line.iter().position(|k| k == key) else {
            return false;
        };
        line.remove(at);
        if line.is_empty() {
            self.lines.remove(account);
            self.ring.retain(|a| a != account);
        }
        true
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}
