//! The driver of cross-actor steps ([`crate::model::step`]): what makes a 2xx mean that every
//! part of an operation will happen.
//!
//! An operation's first write stores, atomically with it, the step that is left (its
//! outbox entry). Then:
//!
//! - **Live**: the operation carries the step out at once ([`Chorus::carry`]) on a task of its
//!   own (so a client that hangs up cannot cut it short), and settles it: removed when done,
//!   or replaced by what is left (the recipients or groups that failed) and handed to the
//!   sweeper. The answer waits for that first run, so normally everything has happened when
//!   the client hears 2xx.
//! - **Sweeper** ([`Chorus::drive_steps`]): runs what a failed run left, with a backoff (1 s
//!   doubling to 60 s), and looks at the outbox once a minute besides.
//! - **Recovery** ([`Chorus::recover_steps`]): at start-up, every step a previous process left
//!   (it crashed, or shut down, between the first write and the settle) is run again.
//!
//! A run that is not the first one *rechecks*: an event may have been appended, or a dynamic
//! pushed, by a run whose settle never happened. So a recipient whose log already holds the
//! event (the same frame, found among its newest events) is skipped, and a group that already
//! holds the dynamic does not get it twice; a friendship made or ended twice changes nothing.
//! Within one process a step runs once at a time (the `running` set).
//!
//! In a cluster every node has the one outbox. Recovery and the sweeper of a node run only
//! the steps it owns: a step belongs to the node that owns an account whose id were the
//! step's id (`placement.owner(Account, step_id)`: a hash over the live nodes, nothing
//! claimed), which spreads them evenly and moves only a dead node's. A live run stays on the
//! node whose operation wrote the step; each actor turn inside it goes to that actor's owner,
//! and each notify's appends to the recipients' owners, which recheck under the recipients'
//! log heads (so a slow live run and a sweep elsewhere never both append). When the view
//! changes, the sweeper looks at once, and again once a step left by a dead node's live run
//! is no longer fresh.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{StreamExt, stream};

use super::Chorus;
use crate::actor::group::PushDynamic;
use crate::actor::logs::{Notice, notify_each};
use crate::actor::place::{ActorKind, Owner};
use crate::actor::subscriber::{BecomeFriends, DropFriend, ListRelation};
use crate::backoff::Backoff;
use crate::error::{Error, Result};
use crate::faults::{self, Point};
use crate::model::step::FRESH_MS;
use crate::model::{AccountId, DynamicRecord, GroupId, Relation, Step, StepRecord, now_ms};
use crate::push::event::EventType;

/// Steps one sweep (or one page of recovery) reads.
const PAGE: usize = 256;
/// Steps run at once by a sweep or recovery.
const IN_FLIGHT: usize = 8;
/// Groups a dynamic is pushed to at once.
const GROUPS_AT_ONCE: usize = 8;
/// First wait of the sweeper after a failed run, doubled up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The sweeper looks at the outbox this often even when nothing failed here (a step left by
/// a run cut short, or, in a cluster, by another node).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The driver's state, shared by every clone of [`Chorus`].
#[derive(Default)]
pub(super) struct Steps {
    /// Steps being run in this process.
    running: Mutex<HashSet<String>>,
    /// Wakes the sweeper after a failed run.
    wake: tokio::sync::Notify,
    /// Wakes the sweeper at once, whatever it waits for: the cluster's view changed, so this
    /// node may own steps it did not.
    view: tokio::sync::Notify,
}

/// A step this process is running; let go when dropped.
struct Running {
    steps: Arc<Steps>,
    id: String,
}

impl Steps {
    fn claim(self: &Arc<Self>, id: &str) -> Option<Running> {
        let mut running = self.running.lock().ok()?;
        running.insert(id.to_owned()).then(|| Running {
            steps: self.clone(),
            id: id.to_owned(),
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(mut running) = self.steps.running.lock() {
            running.remove(&self.id);
        }
    }
}

impl Chorus {
    /// Carries out the step an operation's first write just stored, then settles it. Never
    /// fails the operation: the step is durable, so what does not happen now is left to the
    /// sweeper.
    pub(super) async fn carry(&self, step: Option<StepRecord>) {
        let Some(step) = step else {
            return;
        };
        faults::crash_at(Point::AFTER_FIRST_STEP);
        let me = self.clone();
        // A task of its own: the request's future may be dropped (the client hung up); the
        // step goes on.
        if let Err(e) = actix::spawn(async move { me.run_and_settle(step, false).await }).await {
            tracing::error!(error = %e, "a step's run panicked; the sweeper retries it");
            self.steps.wake.notify_one();
        }
    }

    /// Carries on with every step a previous process left (run before or while the server
    /// starts taking requests). Answers how many it finished; those it could not finish are
    /// left to the sweeper.
    pub async fn recover_steps(&self) -> Result<usize> {
        let mut finished = 0;
        loop {
            let page = self.store().pending_steps(PAGE).await?;
            let full = page.len() == PAGE;
            let mine: Vec<StepRecord> = page.into_iter().filter(|s| self.owns(s)).collect();
            let (done, left) = self.run_page(mine, true).await;
            finished += done;
            if left > 0 {
                self.steps.wake.notify_one();
                return Ok(finished);
            }
            // A page where nothing of this node's finished would be read again as it is:
            // the rest waits for the other nodes to settle theirs (the sweeper looks again).
            if !full || done == 0 {
                return Ok(finished);
            }
        }
    }

    /// Whether this node recovers and sweeps `step` (the module doc: every step on a single
    /// node; in a cluster, the owner of an account id equal to the step's id).
    fn owns(&self, step: &StepRecord) -> bool {
        let placement = &self.directory.env().placement;
        placement.owner(ActorKind::Account, &step.step_id) == Owner::Local
    }

    /// The cluster's view changed: the sweeper looks at once, and again once the steps that
    /// a node that left was carrying live are no longer fresh.
    pub(super) fn wake_steps(&self) {
        self.steps.view.notify_one();
        let steps = self.steps.clone();
        actix::spawn(async move {
            tokio::time::sleep(Duration::from_millis(FRESH_MS)).await;
            steps.view.notify_one();
        });
    }

    /// The sweeper: runs until the actor system stops. Start once, after
    /// [`Chorus::recover_steps`] (or beside it).
    pub fn drive_steps(&self) {
        let me = self.clone();
        actix::spawn(async move {
            loop {
                // Woken by a failed run (the sweep follows after the backoff's first wait),
                // by a view change (at once), or once every SWEEP_EVERY.
                let at_once = tokio::select! {
                    _ = me.steps.wake.notified() => false,
                    _ = me.steps.view.notified() => true,
                    _ = tokio::time::sleep(SWEEP_EVERY) => false,
                };
                // Each sweep that leaves something waits longer before the next; a view
                // change cuts the wait short.
                let mut backoff = Backoff::new(MIN_BACKOFF, MAX_BACKOFF);
                let mut wait = if at_once {
                    Duration::ZERO
                } else {
                    backoff.failed().0
                };
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = me.steps.view.notified() => {}
                    }
                    match me.sweep().await {
                        Ok(true) => break,
                        Ok(false) => {}
                        Err(e) => tracing::warn!(error = %e, "outbox of steps unreadable"),
                    }
                    wait = backoff.failed().0;
                }
            }
        });
    }

    /// One page of the outbox, each step not running and not fresh run again. Answers whether
    /// the outbox is clear (nothing left, nothing more to read).
    async fn sweep(&self) -> Result<bool> {
        let now = now_ms();
        let page = self.store().pending_steps(PAGE).await?;
        let full = page.len() == PAGE;
        let due: Vec<StepRecord> = page
            .into_iter()
            .filter(|s| s.attempts > 0 || now.saturating_sub(s.created_ms) >= FRESH_MS)
            .filter(|s| self.owns(s))
            .collect();
        // A fresh step left alone is its own operation's to run; if that run fails, it wakes
        // the sweeper again. A full page with nothing of this node's due reads the same
        // next time: the rest waits for the next sweep.
        let ran = due.len();
        let (_, left) = self.run_page(due, true).await;
        Ok(left == 0 && (!full || ran == 0))
    }

    /// Runs `page`, [`IN_FLIGHT`] at a time; answers how many finished and how many did not.
    async fn run_page(&self, page: Vec<StepRecord>, recheck: bool) -> (usize, usize) {
        let outcomes: Vec<bool> = stream::iter(page)
            .map(|step| self.run_and_settle(step, recheck))
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        let done = outcomes.iter().filter(|d| **d).count();
        (done, outcomes.len() - done)
    }

    /// Runs one step (unless this process is running it already) and settles it; answers
    /// whether it is done.
    ///
    /// A finished step is removed without waiting for that write: nobody needs it durable
    /// (lost in a crash, the step only runs again, rechecked, and finds everything done), so
    /// the operation's answer does not wait for one more sync. The step stays claimed until
    /// the removal is in, so no sweep here runs it meanwhile.
    async fn run_and_settle(&self, step: StepRecord, recheck: bool) -> bool {
        let Some(running) = self.steps.claim(&step.step_id) else {
            return false;
        };
        let Some(left) = self.run_step(&step, recheck).await else {
            let store = self.store().clone();
            actix::spawn(async move {
                if let Err(e) = store.settle_step(&running.id, None).await {
                    tracing::warn!(step = %running.id, error = %e,
                        "finished step not removed; it runs again (rechecked) and finds it done");
                    running.steps.wake.notify_one();
                }
            });
            return true;
        };
        let rest = step.rest(left);
        tracing::warn!(step = %step.step_id, kind = step.kind(), attempts = rest.attempts,
            "step not finished; the sweeper carries on with what is left");
        if let Err(e) = self.store().settle_step(&step.step_id, Some(rest)).await {
            tracing::warn!(step = %step.step_id, error = %e,
                "step not settled; it runs again (rechecked)");
        }
        drop(running);
        self.steps.wake.notify_one();
        false
    }

    /// Runs `step`; answers what is left of it (`None`: all done).
    async fn run_step(&self, record: &StepRecord, recheck: bool) -> Option<Step> {
        if !recheck && faults::armed(Point::STEP_FAILS) {
            tracing::warn!(step = %record.step_id, "fault injected: the step's first run fails");
            return Some(record.step.clone());
        }
        match &record.step {
            Step::Notify { to, event, data } => {
                self.notify_step(record, to, event, data, recheck).await
            }
            Step::NotifyFriends {
                account,
                event,
                data,
            } => {
                // The friends as the account's actor has them now (live after the turn that
                // wrote this step; activated from the store after a crash).
                let relation = ListRelation {
                    relation: Relation::Friends,
                };
                let friends: Vec<AccountId> = match self.directory.ask(account, relation).await {
                    Ok(positions) => positions.into_iter().map(|p| p.id).collect(),
                    Err(Error::NotFound(_)) => return None,
                    Err(e) => {
                        tracing::warn!(step = %record.step_id, error = %e, "friends unreadable");
                        return Some(record.step.clone());
                    }
                };
                self.notify_step(record, &friends, event, data, recheck)
                    .await
            }
            Step::BecomeFriends { account, with } => {
                let msg = BecomeFriends { with: with.clone() };
                let outcome = self.directory.ask(account, msg).await;
                self.settled(outcome, record)
            }
            Step::DropFriend { account, other } => {
                let msg = DropFriend {
                    other: other.clone(),
                };
                let outcome = self.directory.ask(account, msg).await.map(|_| ());
                self.settled(outcome, record)
            }
            Step::PushDynamic { dynamic, groups } => {
                let left = self.push_dynamic(dynamic, groups, recheck).await;
                (!left.is_empty()).then(|| Step::PushDynamic {
                    dynamic: dynamic.clone(),
                    groups: left,
                })
            }
        }
    }

    /// A one-actor step's outcome: done, or all of it left. An actor that does not exist
    /// (any more) has nothing left to do.
    fn settled(&self, outcome: Result<()>, record: &StepRecord) -> Option<Step> {
        match outcome {
            Ok(()) | Err(Error::NotFound(_)) => None,
            Err(e) => {
                tracing::warn!(step = %record.step_id, kind = record.kind(), error = %e, "step failed");
                Some(record.step.clone())
            }
        }
    }

    /// A notify step to `to`: the event appended to each account's log; answers what is left
    /// (the accounts it could not reach, as a [`Step::Notify`]).
    async fn notify_step(
        &self,
        record: &StepRecord,
        to: &[AccountId],
        event: &str,
        data: &str,
        recheck: bool,
    ) -> Option<Step> {
        let Some(kind) = EventType::named(event) else {
            tracing::error!(step = %record.step_id, %event, "step names no known event; dropped");
            return None;
        };
        let notice = Notice {
            kind,
            data,
            recheck,
            created_ms: record.created_ms,
        };
        let left = self.notify(to, notice).await;
        (!left.is_empty()).then(|| Step::Notify {
            to: left,
            event: event.to_owned(),
            data: data.to_owned(),
        })
    }

    /// Appends the event to each account's log; answers those it could not. A rerun
    /// rechecks each recipient under its log head, on the node that owns it
    /// ([`notify_each`]).
    async fn notify(&self, to: &[AccountId], notice: Notice<'_>) -> Vec<AccountId> {
        let env = self.directory.env();
        if to.len() > 1 && faults::armed(Point::MID_STEP) {
            let mut failed = notify_each(env, &to[..1], notice).await;
            faults::crash_at(Point::MID_STEP);
            failed.extend(notify_each(env, &to[1..], notice).await);
            return failed;
        }
        notify_each(env, to, notice).await
    }

    /// Pushes the dynamic through each group; answers those it could not.
    async fn push_dynamic(
        &self,
        dynamic: &DynamicRecord,
        groups: &[GroupId],
        recheck: bool,
    ) -> Vec<GroupId> {
        let dynamic = Arc::new(dynamic.clone());
        let one = |group: GroupId| {
            let msg = PushDynamic {
                dynamic: dynamic.clone(),
                recheck,
            };
            let dynamic_id = dynamic.dynamic_id.clone();
            async move {
                match self.directory.ask_group(&group, msg).await {
                    Ok(()) | Err(Error::NotFound(_)) => None,
                    Err(e) => {
                        tracing::warn!(%group, dynamic = %dynamic_id, error = %e,
                            "dynamic not pushed to a bound group yet");
                        Some(group)
                    }
                }
            }
        };
        let mut left = Vec::new();
        let mut groups = groups.to_vec();
        if groups.len() > 1 && faults::armed(Point::MID_STEP) {
            let first = groups.remove(0);
            left.extend(one(first).await);
            faults::crash_at(Point::MID_STEP);
        }
        let rest: Vec<Option<GroupId>> = stream::iter(groups)
            .map(one)
            .buffer_unordered(GROUPS_AT_ONCE)
            .collect()
            .await;
        left.extend(rest.into_iter().flatten());
        left
    }
}
