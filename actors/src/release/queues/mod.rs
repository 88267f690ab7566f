//! What the releaser holds, and in which order it starts attempts: the scheduling half of
//! the releaser, kept apart from the actor so that it can be tested step by step.
//!
//! - **Round-robin over accounts.** A release that is due joins its author's `ready` line;
//!   the authors with a release ready take turns (`turns`), one attempt each per turn, the
//!   author with the fewest attempts running first (in the order they came, among equals).
//!   So one account's thousands of due releases do not delay another account's first one:
//!   an author with nothing running goes before any author with something running.
//! - **Caps on attempts running at once:** `max_in_flight` in all, `max_in_flight_per_account`
//!   per author, and per [`Gate`]: `max_in_flight_per_link` per link and
//!   `max_in_flight_per_destination` per destination host. A release whose gate is full waits
//!   on the gate (`gates`), in a line that is round-robin over accounts as well.
//! - **Bounds on what is held** ([`bounds`]): at most `max_held` releases in all and
//!   `max_held_per_account` per author. Past them a release is not held but stays in the
//!   durable outbox, and the releaser reads the outbox again once there is room.
//!
//! Every release held is in exactly one [`Stage`]: waiting for its time (`schedule`), ready
//! (its account's `ready` line), parked on a gate, running, or being recorded.

mod bounds;
mod gates;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use super::policy::ReleaseConfig;
use crate::model::{ActivityRecord, ReleaseKey, ReleaseRecord};
pub(super) use bounds::Spill;
pub(super) use gates::Gate;
use gates::{Account, GateState};

/// Where a release held is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Stage {
    /// Waiting for its time, in `schedule` under `record.next_attempt_ms`.
    Scheduled,
    /// Due, in its account's `ready` line.
    Ready,
    /// Due, waiting for a slot of this gate.
    Parked(Gate),
    /// An attempt is running.
    Running,
    /// Its new status is being recorded by the author's actor (or it was just taken out of
    /// the queues to be recorded failed or let go).
    Recording,
}

/// A release the releaser holds.
pub(super) struct Job {
    pub record: ReleaseRecord,
    pub activity: Arc<ActivityRecord>,
    account: Account,
    link: Arc<str>,
    destination: Arc<str>,
    stage: Stage,
}

impl Job {
    pub fn account(&self) -> &str {
        &self.account
    }

    pub fn link(&self) -> &str {
        &self.link
    }

    #[cfg(test)]
    pub fn stage(&self) -> &Stage {
        &self.stage
    }

    fn waiting(&self) -> bool {
        matches!(
            self.stage,
            Stage::Scheduled | Stage::Ready | Stage::Parked(_)
        )
    }

    /// The gates an attempt of this release holds while it runs.
    fn gates(&self) -> [Gate; 2] {
        [
            Gate::Link(self.link.clone()),
            Gate::Destination(self.destination.clone()),
        ]
    }
}

/// One author's share of the releaser.
#[derive(Debug, Default)]
struct AccountState {
    /// Releases held.
    held: usize,
    /// Attempts running.
    running: usize,
    /// Due releases, oldest first.
    ready: VecDeque<ReleaseKey>,
    /// Its place in `turns` (`running` when it took it, and its number in line), if it has
    /// one: an account is there at most once.
    turn: Option<(usize, u64)>,
}

/// What became of a release offered to the queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admitted {
    /// Held now.
    Held,
    /// Held already, or settled while the outbox was read: nothing to do.
    Known,
    /// Final: nothing to do.
    Final,
    /// Past a bound: left in the outbox, to be read again when there is room.
    Spilled,
}

/// The releaser's queues.
pub(super) struct Queues {
    config: ReleaseConfig,
    jobs: HashMap<ReleaseKey, Job>,
    /// `(due ms, key)` of the releases waiting for their time, soonest first.
    schedule: BTreeSet<(u64, ReleaseKey)>,
    /// Every author with a release held.
    accounts: HashMap<Account, AccountState>,
    /// Authors with a release ready and a free slot of their own, in turn order: fewest
    /// attempts running first, then first come.
    turns: BTreeSet<(usize, u64, Account)>,
    /// The number the next author to take a place in `turns` gets.
    turn_seq: u64,
    /// Gates with an attempt running or a release waiting.
    gates: HashMap<Gate, GateState>,
    in_flight: usize,
    /// What the bounds left in the outbox ([`bounds`]).
    spill: Spill,
    /// Reads of the outbox under way, and the releases that became final meanwhile: a read
    /// may still show them as not final, and they must not be taken on again.
    reads: usize,
    settled: HashSet<ReleaseKey>,
}

impl Queues {
    pub fn new(config: ReleaseConfig) -> Self {
        Queues {
            config,
            jobs: HashMap::new(),
            schedule: BTreeSet::new(),
            accounts: HashMap::new(),
            turns: BTreeSet::new(),
            turn_seq: 0,
            gates: HashMap::new(),
            in_flight: 0,
            spill: Spill::default(),
            reads: 0,
            settled: HashSet::new(),
        }
    }

    /// Releases held.
    pub fn held(&self) -> usize {
        self.jobs.len()
    }

    /// Attempts running.
    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub fn job(&self, key: &ReleaseKey) -> Option<&Job> {
        self.jobs.get(key)
    }

    pub fn jobs(&self) -> impl Iterator<Item = (&ReleaseKey, &Job)> {
        self.jobs.iter()
    }

    /// Takes a release on, due at its `next_attempt_ms`, its attempts capped under
    /// `destination` (see [`Gate::Destination`]) — unless a bound says to leave it in the
    /// outbox. At the bound on all releases held, a release due sooner than the one due
    /// last takes that one's place (which goes back to the outbox): what is held is what is
    /// due first.
    pub fn admit(
        &mut self,
        record: ReleaseRecord,
        activity: Arc<ActivityRecord>,
        destination: &str,
    ) -> Admitted {
        if record.status.is_final() {
            return Admitted::Final;
        }
        let key = record.key();
        if self.jobs.contains_key(&key) || self.settled.contains(&key) {
            return Admitted::Known;
        }
        let account = self.account_id(&record.account_id);
        let held = self.accounts.get(&account).map_or(0, |a| a.held);
        if held >= self.config.max_held_per_account {
            self.spill.account(&account);
            return Admitted::Spilled;
        }
        if self.jobs.len() >= self.config.max_held && !self.evict_later_than(record.next_attempt_ms)
        {
            self.spill.total();
            return Admitted::Spilled;
        }
        self.accounts.entry(account.clone()).or_default().held += 1;
        self.schedule.insert((record.next_attempt_ms, key.clone()));
        let link = Arc::from(key.link_id.as_str());
        self.jobs.insert(
            key,
            Job {
                record,
                activity,
                account,
                link,
                destination: Arc::from(destination),
                stage: Stage::Scheduled,
            },
        );
        Admitted::Held
    }

    /// The shared id of `account` if it has releases held (one allocation per author).
    fn account_id(&self, account: &str) -> Account {
        self.accounts
            .get_key_value(account)
            .map_or_else(|| Arc::from(account), |(id, _)| id.clone())
    }

    /// Lets go of the release due last if it is due after `due` and only waiting for its
    /// time; answers whether it did.
    fn evict_later_than(&mut self, due: u64) -> bool {
        let Some((last, key)) = self.schedule.last().cloned() else {
            return false;
        };
        if last <= due {
            return false;
        }
        self.remove(&key, false);
        self.spill.total();
        true
    }

    /// When the soonest release waiting for its time is due.
    pub fn next_due(&self) -> Option<u64> {
        self.schedule.first().map(|(due, _)| *due)
    }

    /// Moves every release due by `now` to its account's `ready` line.
    pub fn promote(&mut self, now: u64) {
        while let Some((due, _)) = self.schedule.first() {
            if *due > now {
                break;
            }
            let Some((_, key)) = self.schedule.pop_first() else {
                break;
            };
            let Some(job) = self.jobs.get_mut(&key) else {
                continue;
            };
            job.stage = Stage::Ready;
            let account = job.account.clone();
            if let Some(state) = self.accounts.get_mut(&account) {
                state.ready.push_back(key);
            }
            self.take_turn(&account);
        }
    }

    /// Puts `account` in `turns` if it has a release ready, a free slot of its own, and is
    /// not there already; if it is, moves it to where its attempts running now put it (it
    /// keeps its number in line).
    fn take_turn(&mut self, account: &Account) {
        let Some(state) = self.accounts.get_mut(account) else {
            return;
        };
        if let Some((running, seq)) = state.turn {
            if running != state.running {
                self.turns.remove(&(running, seq, account.clone()));
                self.turns.insert((state.running, seq, account.clone()));
                state.turn = Some((state.running, seq));
            }
            return;
        }
        if state.ready.is_empty() || state.running >= self.config.max_in_flight_per_account {
            return;
        }
        self.turn_seq += 1;
        state.turn = Some((state.running, self.turn_seq));
        self.turns
            .insert((state.running, self.turn_seq, account.clone()));
    }

    /// The next release to attempt, if a slot is free: the next account in turn gives its
    /// oldest ready release whose gates have room (those whose gate is full park on it), and
    /// takes its place in the turns again. The release is `Running` once answered; the caller
    /// runs it and reports [`Queues::finished`].
    pub fn next_start(&mut self) -> Option<ReleaseKey> {
        while self.in_flight < self.config.max_in_flight {
            let (_, _, account) = self.turns.pop_first()?;
            let Some(state) = self.accounts.get_mut(&account) else {
                continue;
            };
            state.turn = None;
            if state.held == 0 {
                self.accounts.remove(&account);
                continue;
            }
            if state.running >= self.config.max_in_flight_per_account {
                continue;
            }
            while let Some(key) = state.ready.pop_front() {
                let Some(job) = self.jobs.get_mut(&key) else {
                    continue;
                };
                let full = job.gates().into_iter().find(|gate| {
                    let cap = match gate {
                        Gate::Link(_) => self.config.max_in_flight_per_link,
                        Gate::Destination(_) => self.config.max_in_flight_per_destination,
                    };
                    self.gates.get(gate).is_some_and(|g| g.running >= cap)
                });
                if let Some(gate) = full {
                    job.stage = Stage::Parked(gate.clone());
                    self.gates
                        .entry(gate)
                        .or_default()
                        .parked
                        .push(&account, key);
                    continue;
                }
                job.stage = Stage::Running;
                for gate in job.gates() {
                    self.gates.entry(gate).or_default().running += 1;
                }
                self.in_flight += 1;
                state.running += 1;
                self.take_turn(&account);
                return Some(key);
            }
        }
        None
    }

    /// An attempt of `key` ended: its slots are free (a release waiting on one of its gates
    /// is woken) and it is `Recording` until [`Queues::reschedule`] or [`Queues::forget`].
    pub fn finished(&mut self, key: &ReleaseKey) {
        let Some(job) = self.jobs.get_mut(key) else {
            return;
        };
        if job.stage != Stage::Running {
            return;
        }
        job.stage = Stage::Recording;
        let (account, gates) = (job.account.clone(), job.gates());
        self.in_flight = self.in_flight.saturating_sub(1);
        if let Some(state) = self.accounts.get_mut(&account) {
            state.running = state.running.saturating_sub(1);
        }
        for gate in gates {
            self.free_slot(gate);
        }
        self.take_turn(&account);
    }

    /// One attempt through `gate` ended: the next account in the gate's line gets its
    /// longest-waiting release back at the front of its `ready` line;
    /// when none runs through the gate any more, every release waiting on it does.
    fn free_slot(&mut self, gate: Gate) {
        let Some(g) = self.gates.get_mut(&gate) else {
            return;
        };
        g.running = g.running.saturating_sub(1);
        let woken: Vec<(Account, VecDeque<ReleaseKey>)> = if g.running == 0 {
            g.parked.drain()
        } else {
            let (accounts, cap) = (&self.accounts, self.config.max_in_flight_per_account);
            let can_run = |a: &Account| accounts.get(a).is_some_and(|s| s.running < cap);
            g.parked
                .pop(can_run)
                .map(|(a, k)| vec![(a, VecDeque::from([k]))])
                .unwrap_or_default()
        };
        if g.running == 0 && g.parked.is_empty() {
            self.gates.remove(&gate);
        }
        for (account, keys) in woken {
            let Some(state) = self.accounts.get_mut(&account) else {
                continue;
            };
            for key in keys.into_iter().rev() {
                if let Some(job) = self.jobs.get_mut(&key) {
                    job.stage = Stage::Ready;
                    state.ready.push_front(key);
                }
            }
            self.take_turn(&account);
        }
    }

    /// After its status was recorded, `key` waits for its next attempt, as `record` says.
    pub fn reschedule(&mut self, key: &ReleaseKey, record: ReleaseRecord) {
        let Some(job) = self.jobs.get_mut(key) else {
            return;
        };
        if job.stage != Stage::Recording {
            return;
        }
        self.schedule.insert((record.next_attempt_ms, key.clone()));
        job.record = record;
        job.stage = Stage::Scheduled;
    }

    /// Takes every waiting release that `pick` chooses out of the queues (it is `Recording`
    /// then: the caller records it failed or forgets it); answers their keys.
    pub fn unqueue_where(&mut self, pick: impl Fn(&Job) -> bool) -> Vec<ReleaseKey> {
        let keys: Vec<ReleaseKey> = self
            .jobs
            .iter()
            .filter(|(_, job)| job.waiting() && pick(job))
            .map(|(key, _)| key.clone())
            .collect();
        for key in &keys {
            self.unqueue(key);
        }
        keys
    }

    /// Takes a waiting release out of its queue; it is `Recording` then.
    fn unqueue(&mut self, key: &ReleaseKey) {
        let Some(job) = self.jobs.get_mut(key) else {
            return;
        };
        match std::mem::replace(&mut job.stage, Stage::Recording) {
            Stage::Scheduled => {
                self.schedule
                    .remove(&(job.record.next_attempt_ms, key.clone()));
            }
            Stage::Ready => {
                if let Some(state) = self.accounts.get_mut(&job.account) {
                    state.ready.retain(|k| k != key);
                }
            }
            Stage::Parked(gate) => {
                if let Some(g) = self.gates.get_mut(&gate) {
                    g.parked.remove(&job.account, key);
                    if g.running == 0 && g.parked.is_empty() {
                        self.gates.remove(&gate);
                    }
                }
            }
            running @ (Stage::Running | Stage::Recording) => job.stage = running,
        }
    }

    /// A release is done with: it leaves the queues. `settled` (it became final, or its
    /// author is gone) keeps a read of the outbox under way from taking it on again.
    pub fn forget(&mut self, key: &ReleaseKey, settled: bool) -> Option<Job> {
        let job = self.remove(key, settled)?;
        self.spill.room_for(&job.account, self.room(&job.account));
        Some(job)
    }

    /// [`Queues::forget`], without telling the bounds that there is room now.
    fn remove(&mut self, key: &ReleaseKey, settled: bool) -> Option<Job> {
        if self
            .jobs
            .get(key)
            .is_some_and(|j| j.stage == Stage::Running)
        {
            self.finished(key);
        }
        self.unqueue(key);
        let job = self.jobs.remove(key)?;
        if let Some(state) = self.accounts.get_mut(&job.account) {
            state.held = state.held.saturating_sub(1);
            if state.held == 0 && state.turn.is_none() {
                self.accounts.remove(&job.account);
            }
        }
        if settled && self.reads > 0 {
            self.settled.insert(key.clone());
        }
        Some(job)
    }

    /// Whether `account` could take another release on now, by both bounds, with some
    /// slack so that the outbox is not read again for every single release that ends.
    fn room(&self, account: &str) -> bool {
        let held = self.accounts.get(account).map_or(0, |a| a.held);
        let per_account = self.config.max_held_per_account;
        held <= per_account.saturating_sub(per_account / 4)
            && self.jobs.len() < self.config.max_held
    }
}
