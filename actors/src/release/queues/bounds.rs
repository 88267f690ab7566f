//! The bounds on what the releaser holds: `max_held` releases in all, `max_held_per_account`
//! per author. A release past them is not dropped: it is durable in the outbox already, and
//! stays there. [`Spill`] remembers that the outbox holds more than the releaser does, and
//! for whom; once there is room again ([`Queues::wants_read`]) the releaser reads the outbox
//! and [`Queues::pick`] chooses what to take on: round-robin over authors, soonest due first
//! within each, up to the room there is.
//!
//! The room that starts a read has some slack (a quarter of the bound), so that an author
//! at its bound does not have the outbox read again for every release of theirs that ends.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use super::Queues;
use super::gates::Account;
use crate::model::ReleaseRecord;

/// Authors remembered by name as having releases left in the outbox; past this many, room
/// for any author starts a read.
const SPILL_NAMED: usize = 4096;

/// What the bounds left in the outbox since the last read of it began.
#[derive(Debug, Default)]
pub(in crate::release) struct Spill {
    /// Authors at their own bound.
    accounts: HashSet<Account>,
    /// More authors than [`SPILL_NAMED`].
    overflow: bool,
    /// Releases left out by the bound on all releases held.
    total: bool,
    /// An author in `accounts` (any author, on overflow) has room now.
    room: bool,
}

impl Spill {
    /// `account` is at its bound and left a release in the outbox.
    pub(super) fn account(&mut self, account: &Account) {
        if self.accounts.len() < SPILL_NAMED {
            self.accounts.insert(account.clone());
        } else if !self.accounts.contains(account) {
            self.overflow = true;
        }
    }

    /// The bound on all releases held left a release in the outbox.
    pub(super) fn total(&mut self) {
        self.total = true;
    }

    /// A release of `account` ended; `room` says whether it has room now by both bounds.
    pub(super) fn room_for(&mut self, account: &str, room: bool) {
        if room && (self.overflow || self.accounts.contains(account)) {
            self.room = true;
        }
    }

    pub(in crate::release) fn is_empty(&self) -> bool {
        !self.overflow && !self.total && self.accounts.is_empty()
    }

    fn merge(&mut self, other: Spill) {
        self.accounts.extend(other.accounts);
        self.overflow |= other.overflow || self.accounts.len() > SPILL_NAMED;
        self.total |= other.total;
        self.room |= other.room;
    }
}

impl Queues {
    /// Whether the outbox holds releases this releaser left there.
    pub fn spilled(&self) -> bool {
        !self.spill.is_empty()
    }

    /// Whether there is room for releases left in the outbox: an author that was at its
    /// bound is well below it, or the releases held in all are.
    pub fn wants_read(&self) -> bool {
        let total = self.config.max_held;
        self.spill.room || (self.spill.total && self.jobs.len() <= total.saturating_sub(total / 4))
    }

    /// A read of the outbox begins. It will see every release left there so far, so the
    /// marks start afresh (what this read leaves out, or what is left out meanwhile, marks
    /// them again); answers the old ones, to give back with [`Queues::end_read`] should the
    /// read fail.
    pub fn begin_read(&mut self) -> Spill {
        self.reads += 1;
        std::mem::take(&mut self.spill)
    }

    /// A read of the outbox ended (its releases taken on). `failed` gives back the marks it
    /// replaced; what it would have taken on is still in the outbox, so the next read comes
    /// as soon as there is room.
    pub fn end_read(&mut self, failed: Option<Spill>) {
        if let Some(old) = failed {
            self.spill.merge(old);
            self.spill.total();
        }
        self.reads = self.reads.saturating_sub(1);
        if self.reads == 0 {
            self.settled.clear();
        }
    }

    /// Chooses, among `records` (a read of the outbox), the releases to take on: those not
    /// held yet, round-robin over authors and soonest due first within each, up to the room
    /// under both bounds. What is left out is marked as still in the outbox.
    pub fn pick(&mut self, records: Vec<ReleaseRecord>) -> Vec<ReleaseRecord> {
        let mut lines: HashMap<String, Vec<ReleaseRecord>> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        for r in records {
            let key = r.key();
            if r.status.is_final() || self.jobs.contains_key(&key) || self.settled.contains(&key) {
                continue;
            }
            match lines.get_mut(&r.account_id) {
                Some(line) => line.push(r),
                None => {
                    order.push(r.account_id.clone());
                    lines.insert(r.account_id.clone(), vec![r]);
                }
            }
        }
        let mut turns: VecDeque<(String, Vec<ReleaseRecord>, usize)> = VecDeque::new();
        for account in order {
            let Some(mut line) = lines.remove(&account) else {
                continue;
            };
            // Soonest due last, where `pop` takes it.
            line.sort_by(|a, b| due_order(b).cmp(&due_order(a)));
            let held = self.accounts.get(account.as_str()).map_or(0, |a| a.held);
            let left = self.config.max_held_per_account.saturating_sub(held);
            turns.push_back((account, line, left));
        }
        let mut room = self.config.max_held.saturating_sub(self.jobs.len());
        let mut picked = Vec::new();
        while room > 0 {
            let Some((account, mut line, left)) = turns.pop_front() else {
                break;
            };
            if left == 0 {
                self.spill.account(&Arc::from(account.as_str()));
                continue;
            }
            let Some(r) = line.pop() else {
                continue;
            };
            picked.push(r);
            room -= 1;
            if !line.is_empty() {
                turns.push_back((account, line, left - 1));
            }
        }
        for (account, _, left) in turns {
            if left == 0 {
                self.spill.account(&Arc::from(account.as_str()));
            } else {
                self.spill.total();
            }
        }
        picked
    }
}

/// Soonest due first; then the outbox's own order.
fn due_order(r: &ReleaseRecord) -> (u64, &str, &str) {
    (r.next_attempt_ms, &r.activity_id, &r.link.link_id)
}
