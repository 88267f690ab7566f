//! The Releaser actor: one per server. It carries every release of an activity to its
//! platform from `pending` to `delivered` or `failed`, through a [`Connector`], under the
//! [`ReleaseConfig`] policy.
//!
//! - **Durable first.** A release exists on disk (written with its activity, see the
//!   Subscriber's `PostActivity`) before the releaser hears of it, and every status change is
//!   recorded by the author's Subscriber actor (which also tells the author's devices with
//!   `release.status`) before the next attempt is scheduled. After a crash the store's outbox
//!   holds exactly what is left to do ([`super::recovery`]); an attempt that reached the
//!   platform but was not recorded is repeated with the same `Idempotency-Key`.
//! - **One releaser per release.** In a cluster every node runs a releaser, and each carries
//!   the releases whose author its node owns ([`crate::place`]): after a view change it lets
//!   go of those that moved away (an attempt under way finishes and is recorded through the
//!   author's new owner) and takes on those that moved to it (`super::recovery`, `Rescan`).
//!   A release a node was attempting when it died is attempted again by the new owner, with
//!   the same `Idempotency-Key`. So an author's releases all run on one node, and the caps
//!   per author hold across the cluster.
//! - **Fair, and nobody waits for the slowest** ([`super::queues`]). Attempts run
//!   concurrently, each bounded by a timeout, taken round-robin over authors; at most
//!   `max_in_flight` at once, `max_in_flight_per_account` per author, `max_in_flight_per_link`
//!   per link and `max_in_flight_per_destination` per destination host
//!   ([`Connector::destination`]). A dead platform, or one author's thousands of releases,
//!   cannot starve the others.
//! - **Bounded.** At most `max_held` releases are held (`max_held_per_account` per author);
//!   the others wait in the outbox, which is read again when there is room.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::connector::{AttemptOutcome, Connector, Outgoing};
use super::policy::ReleaseConfig;
use super::queues::{Admitted, Queues};
use super::recovery::Refill;
use crate::actor::directory::WeakDirectory;
use crate::actor::env::ReleaseQueue;
use crate::actor::place::{ActorKind, Owner, Placement, SingleNode};
use crate::actor::subscriber::RecordRelease;
use crate::backoff::Backoff;
use crate::error::Error;
use crate::model::{ActivityRecord, ReleaseKey, ReleaseRecord, ReleaseStatus, now_ms};
use crate::store::Store;

/// Sent by a Subscriber right after an activity and its releases are durable: start them.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Enqueue {
    pub activity: Arc<ActivityRecord>,
    pub releases: Vec<ReleaseRecord>,
}

/// Sent by a Subscriber once an unlink is durable: releases to that link that are waiting
/// are recorded `failed` ("platform unlinked") instead of attempted; one running now
/// finishes its attempt, and is not retried.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct CancelLink {
    pub link_id: String,
}

/// The account actors reach the releaser through [`ReleaseQueue`], so they need not know it.
impl ReleaseQueue for Addr<Releaser> {
    fn enqueue(&self, activity: Arc<ActivityRecord>, releases: Vec<ReleaseRecord>) {
        self.do_send(Enqueue { activity, releases });
    }

    fn cancel_link(&self, link_id: String) {
        self.do_send(CancelLink { link_id });
    }

    fn rescan(&self) {
        self.do_send(super::recovery::Rescan);
    }
}

/// The actor.
pub struct Releaser {
    directory: WeakDirectory,
    /// Which authors this node owns (every one on a single node).
    placement: Arc<dyn Placement>,
    pub(super) store: Arc<dyn Store>,
    connector: Arc<dyn Connector>,
    config: ReleaseConfig,
    /// Every release not final that this releaser is carrying, where it is, and what starts
    /// next.
    pub(super) queues: Queues,
    /// The timer for the soonest due time, and that time.
    wake: Option<(u64, SpawnHandle)>,
    /// Links unlinked while this releaser ran and that still have a release held (running
    /// or being recorded): nothing more is attempted to them. A link leaves it with its last
    /// release, so it is never larger than what is held.
    cancelled: HashSet<String>,
    /// Failed recordings of a status (the store refusing writes): retried after waits that
    /// double from 1 s to 30 s, logged when it starts and when it ends, not on every retry.
    store_backoff: Backoff,
    /// Reading the outbox again for releases the bounds left there ([`super::recovery`]):
    /// whether a read runs, when the last one began, and the timer for the next.
    pub(super) refill: Refill,
}

/// First wait before recording a status again after the store refused it.
pub(super) const RECORD_RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest wait between two tries (the embedded store probes a sick disk as often).
pub(super) const RECORD_RETRY_CAP: Duration = Duration::from_secs(30);

impl Releaser {
    pub(crate) fn new(
        directory: WeakDirectory,
        store: Arc<dyn Store>,
        connector: Arc<dyn Connector>,
        config: ReleaseConfig,
    ) -> Self {
        let placement = directory.upgrade().map_or_else(
            || Arc::new(SingleNode) as Arc<dyn Placement>,
            |d| d.env().placement.clone(),
        );
        Releaser {
            directory,
            placement,
            store,
            connector,
            queues: Queues::new(config.clone()),
            config,
            wake: None,
            cancelled: HashSet::new(),
            store_backoff: Backoff::new(RECORD_RETRY_FIRST, RECORD_RETRY_CAP),
            refill: Refill::default(),
        }
    }

    /// Whether this node carries the releases of `author` (it owns the author's account).
    pub(super) fn owns(&self, author: &str) -> bool {
        self.placement.owner(ActorKind::Account, author) == Owner::Local
    }

    /// [`Releaser::owns`], for a read of the outbox away from the actor.
    pub(super) fn owner_check(&self) -> impl Fn(&str) -> bool + 'static {
        let placement = self.placement.clone();
        move |author| placement.owner(ActorKind::Account, author) == Owner::Local
    }

    /// Lets go of the releases whose author this node no longer owns: those waiting leave
    /// every queue now; one being attempted or recorded is let go once recorded. Answers how
    /// many were waiting.
    pub(super) fn let_go_moved(&mut self) -> usize {
        let placement = self.placement.clone();
        let moved = self.queues.unqueue_where(|job| {
            placement.owner(ActorKind::Account, job.account()) != Owner::Local
        });
        for key in &moved {
            self.forget(key, false);
        }
        moved.len()
    }

    /// Takes a release on (once: a key already held is ignored), unless a bound leaves it in
    /// the outbox; answers which.
    pub(super) fn admit(
        &mut self,
        record: ReleaseRecord,
        activity: Arc<ActivityRecord>,
    ) -> Admitted {
        let destination = self
            .connector
            .destination(&record.link)
            .unwrap_or_else(|| format!("link {}", record.link.link_id));
        let was_spilled = self.queues.spilled();
        let admitted = self.queues.admit(record, activity, &destination);
        if admitted == Admitted::Spilled && !was_spilled {
            tracing::info!(
                held = self.queues.held(),
                max_held = self.config.max_held,
                max_held_per_account = self.config.max_held_per_account,
                "releases past the releaser's bounds wait in the outbox; it is read again \
                 when there is room"
            );
        }
        admitted
    }

    /// Starts what is due and free to run, then sets the timer for the next due time.
    pub(super) fn pump(&mut self, ctx: &mut Context<Self>) {
        self.queues.promote(now_ms());
        while let Some(key) = self.queues.next_start() {
            self.start(key, ctx);
        }
        self.arm(ctx);
        self.refill_if_room(ctx);
    }

    /// Sets the timer for the soonest release waiting for its time (if it is not set for it
    /// already).
    fn arm(&mut self, ctx: &mut Context<Self>) {
        let Some(due) = self.queues.next_due() else {
            return;
        };
        if let Some((at, handle)) = self.wake {
            if at <= due {
                return;
            }
            ctx.cancel_future(handle);
        }
        let wait = Duration::from_millis(due.saturating_sub(now_ms()));
        let handle = ctx.run_later(wait, |act, ctx| {
            act.wake = None;
            act.pump(ctx);
        });
        self.wake = Some((due, handle));
    }

    /// Runs one attempt of `key` (its slots are taken already).
    fn start(&mut self, key: ReleaseKey, ctx: &mut Context<Self>) {
        let Some(job) = self.queues.job(&key) else {
            return;
        };
        let out = Outgoing {
            activity: (*job.activity).clone(),
            link: job.record.link.clone(),
            idempotency_key: job.record.idempotency_key(),
            attempt: job.record.attempts.saturating_add(1),
        };
        let connector = self.connector.clone();
        let limit = self.config.attempt_timeout;
        let (directory, author) = (self.directory.clone(), job.record.account_id.clone());
        let attempt = async move {
            let attempt = async {
                match super::secret::with_secret(&directory, &author, out).await {
                    Ok(out) => connector.attempt(&out).await,
                    Err(outcome) => outcome,
                }
            };
            match tokio::time::timeout(limit, attempt).await {
                Ok(outcome) => outcome,
                Err(_) => AttemptOutcome::Retry {
                    error: format!("timed out after {} ms", limit.as_millis()),
                    after: None,
                },
            }
        };
        ctx.spawn(
            attempt
                .into_actor(self)
                .map(move |outcome, act, ctx| act.finished(key, outcome, ctx)),
        );
    }

    /// An attempt ended: free its slots, work out the new state, have it recorded.
    fn finished(&mut self, key: ReleaseKey, outcome: AttemptOutcome, ctx: &mut Context<Self>) {
        self.queues.finished(&key);
        if let Some(job) = self.queues.job(&key) {
            crate::metrics::release_attempt(&job.record.link.platform, outcome.label());
            match &outcome {
                AttemptOutcome::Delivered => {}
                AttemptOutcome::Retry { error, .. } | AttemptOutcome::Fail { error } => {
                    tracing::info!(
                        activity = %key.activity_id, link = %key.link_id,
                        platform = %job.record.link.platform, attempt = job.record.attempts + 1,
                        error = %error, "release attempt failed"
                    );
                }
            }
            let next = self
                .config
                .next(job.record.clone(), outcome, now_ms(), &mut rand::rng());
            self.record(key, next, ctx);
        }
        self.pump(ctx);
    }

    /// Has the author's actor store `next` (and tell the author's devices); then schedules
    /// the next attempt or forgets a final release. A failed recording is tried again: the
    /// stored state must never lag behind what the releaser acts on.
    fn record(&mut self, key: ReleaseKey, next: ReleaseRecord, ctx: &mut Context<Self>) {
        let Some(directory) = self.directory.upgrade() else {
            return;
        };
        let author = next.account_id.clone();
        let msg = RecordRelease {
            release: next.clone(),
        };
        ctx.spawn(
            async move { directory.ask(&author, msg).await }
                .into_actor(self)
                .map(move |res, act, ctx| match res {
                    Ok(()) => {
                        if act.store_backoff.succeeded() {
                            tracing::info!("recording release statuses works again");
                        }
                        act.recorded(key, next, ctx);
                    }
                    Err(Error::NotFound(_)) => {
                        tracing::error!(
                            activity = %key.activity_id, link = %key.link_id,
                            "author of a release is gone; dropping it"
                        );
                        act.forget(&key, true);
                        act.refill_if_room(ctx);
                    }
                    Err(e) => {
                        let (wait, first) = act.store_backoff.failed();
                        if first {
                            tracing::warn!(
                                activity = %key.activity_id, link = %key.link_id, error = %e,
                                "recording a release status failed; retrying every release \
                                 after waits of {}-{} s until it works (logged then)",
                                RECORD_RETRY_FIRST.as_secs(), RECORD_RETRY_CAP.as_secs()
                            );
                        } else {
                            tracing::debug!(
                                activity = %key.activity_id, link = %key.link_id, error = %e,
                                retry_in_s = wait.as_secs(), "recording a release status failed"
                            );
                        }
                        ctx.run_later(wait, move |act, ctx| {
                            act.record(key, next, ctx);
                        });
                    }
                }),
        );
    }

    /// The link is gone: its waiting and queued releases leave every queue and are recorded
    /// as failed; running or recording ones see `cancelled` when they come back.
    pub(super) fn cancel_link(&mut self, link: String, ctx: &mut Context<Self>) {
        let stopped = self.queues.unqueue_where(|job| job.link() == link);
        for key in stopped {
            if let Some(job) = self.queues.job(&key) {
                let failed = unlinked(job.record.clone());
                self.record(key, failed, ctx);
            }
        }
        // Only releases still held can come back to find it.
        if self.queues.jobs().any(|(k, _)| k.link_id == link) {
            self.cancelled.insert(link);
        }
    }

    /// A release is done with (final, its author gone, or moved to another node): it leaves
    /// the queues, and its link leaves `cancelled` with the link's last release.
    fn forget(&mut self, key: &ReleaseKey, settled: bool) {
        self.queues.forget(key, settled);
        if self.cancelled.contains(&key.link_id)
            && !self.queues.jobs().any(|(k, _)| k.link_id == key.link_id)
        {
            self.cancelled.remove(&key.link_id);
        }
    }

    fn recorded(&mut self, key: ReleaseKey, next: ReleaseRecord, ctx: &mut Context<Self>) {
        // Final, or its author moved to another node while it was attempted (that node's
        // releaser carries it on from the status just recorded).
        let is_final = next.status.is_final();
        if is_final || !self.owns(&next.account_id) {
            self.forget(&key, is_final);
            self.refill_if_room(ctx);
            return;
        }
        if self.cancelled.contains(&key.link_id) {
            let failed = unlinked(next);
            self.record(key, failed, ctx);
            return;
        }
        self.queues.reschedule(&key, next);
        self.pump(ctx);
    }
}

impl Actor for Releaser {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        tracing::debug!(
            max_attempts = self.config.max_attempts,
            max_in_flight = self.config.max_in_flight,
            max_in_flight_per_account = self.config.max_in_flight_per_account,
            max_held = self.config.max_held,
            "releaser started"
        );
    }
}

impl Handler<Enqueue> for Releaser {
    type Result = ();
    fn handle(&mut self, msg: Enqueue, ctx: &mut Self::Context) {
        for r in msg.releases {
            self.admit(r, msg.activity.clone());
        }
        self.pump(ctx);
    }
}

/// `d`, failed because its link is gone.
fn unlinked(mut d: ReleaseRecord) -> ReleaseRecord {
    d.status = ReleaseStatus::Failed;
    d.last_error = Some("platform unlinked".into());
    d.updated_ms = now_ms();
    d
}

impl Handler<CancelLink> for Releaser {
    type Result = ();
    fn handle(&mut self, msg: CancelLink, ctx: &mut Self::Context) {
        self.cancel_link(msg.link_id, ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The releaser's schedule for a status the store refused: 1, 2, 4, … s up to 30 s, the
    /// first failure and the recovery reported (logged) once each, not every retry.
    #[test]
    fn a_refused_status_is_retried_after_doubling_waits_up_to_the_cap() {
        let mut b = Backoff::new(RECORD_RETRY_FIRST, RECORD_RETRY_CAP);
        let waits: Vec<u64> = (0..8).map(|_| b.failed().0.as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert!(b.succeeded());
        let (wait, first) = b.failed();
        assert_eq!((wait, first), (RECORD_RETRY_FIRST, true));
        let reported = (0..100).filter(|_| b.failed().1).count();
        assert_eq!(reported, 0, "one report per run of failures");
    }
}
