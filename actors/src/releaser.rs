//! The Releaser actor: one per server. It carries every delivery of an activity to its
//! platform from `pending` to `delivered` or `failed`, through a [`Connector`].
//!
//! - **Durable first.** A delivery exists on disk (written with its activity, see
//!   `Subscriber`'s `PostActivity`) before the releaser hears of it, and every status change is
//!   recorded by the author's Subscriber actor (which also tells the author's devices with
//!   `release.status`) before the next attempt is scheduled. After a crash the store's outbox
//!   ([`SubscriberStore::pending_deliveries`]) holds exactly what is left to do; an attempt
//!   that reached the platform but was not recorded is repeated with the same
//!   `Idempotency-Key`.
//! - **Nobody waits for the slowest.** Attempts run concurrently, each bounded by a timeout;
//!   at most `max_in_flight` at once, at most `max_in_flight_per_link` per link and at most
//!   `max_in_flight_per_destination` per server ([`Connector::destination`]), so a dead
//!   platform holding slots until its timeout cannot starve the others.
//! - **One policy for every platform.** Connectors say what happened
//!   ([`AttemptOutcome`]); the releaser decides: exponential backoff with jitter, the
//!   platform's `Retry-After` when it gave one, and `failed` after `max_attempts`.
//!
//! [`SubscriberStore::pending_deliveries`]: crate::store::SubscriberStore::pending_deliveries

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use rand::Rng;

use crate::activity_model::{ActivityRecord, DeliveryKey, DeliveryRecord, DeliveryStatus};
use crate::connector::{AttemptOutcome, Connector, Outgoing};
use crate::error::{Error, Result};
use crate::messages::{CancelLink, Enqueue, LoadPending, RecordRelease};
use crate::model::now_ms;
use crate::registry::RegistryHandle;
use crate::store::{EdgeKind, Store};

/// How deliveries are retried and bounded.
#[derive(Debug, Clone)]
pub struct ReleaseConfig {
    /// Attempts before a delivery is `failed` (the first one included).
    pub max_attempts: u32,
    /// Wait after the first failed attempt; doubles after each further one.
    pub backoff_base: Duration,
    /// No wait is longer than this (before jitter).
    pub backoff_max: Duration,
    /// A platform's `Retry-After` is honoured up to this long.
    pub max_retry_after: Duration,
    /// One attempt's bound, whatever the connector does.
    pub attempt_timeout: Duration,
    /// Attempts running at once, over all platforms.
    pub max_in_flight: usize,
    /// Attempts running at once to one link.
    pub max_in_flight_per_link: usize,
    /// Attempts running at once to one destination server (all links to it together).
    pub max_in_flight_per_destination: usize,
}

impl Default for ReleaseConfig {
    /// 8 attempts over about an hour: waits of 30 s, 1, 2, 4, 8, 16 and 32 min, each ±20 %.
    fn default() -> Self {
        ReleaseConfig {
            max_attempts: 8,
            backoff_base: Duration::from_secs(30),
            backoff_max: Duration::from_secs(32 * 60),
            max_retry_after: Duration::from_secs(3600),
            attempt_timeout: Duration::from_secs(10),
            max_in_flight: 256,
            max_in_flight_per_link: 4,
            max_in_flight_per_destination: 32,
        }
    }
}

impl ReleaseConfig {
    /// The wait after `failed` failed attempts (1 for the first): `base * 2^(failed-1)`, at
    /// most `backoff_max`, times a random factor in [0.8, 1.2) so that deliveries which failed
    /// together (a platform outage) do not all come back at the same instant.
    pub fn backoff(&self, failed: u32, rng: &mut impl Rng) -> Duration {
        let exp = failed.saturating_sub(1).min(30);
        let plain = self
            .backoff_base
            .saturating_mul(1u32 << exp)
            .min(self.backoff_max);
        plain.mul_f64(rng.random_range(0.8..1.2))
    }

    /// The delivery after one attempt that came to `outcome` (`now` in ms).
    pub fn next(
        &self,
        mut d: DeliveryRecord,
        outcome: AttemptOutcome,
        now: u64,
        rng: &mut impl Rng,
    ) -> DeliveryRecord {
        d.attempts = d.attempts.saturating_add(1);
        d.updated_ms = now;
        match outcome {
            AttemptOutcome::Delivered => {
                d.status = DeliveryStatus::Delivered;
                d.last_error = None;
            }
            AttemptOutcome::Fail { error } => {
                d.status = DeliveryStatus::Failed;
                d.last_error = Some(error);
            }
            AttemptOutcome::Retry { error, after } => {
                if d.attempts >= self.max_attempts {
                    d.status = DeliveryStatus::Failed;
                    d.last_error = Some(format!("{error} (gave up after {} attempts)", d.attempts));
                } else {
                    let wait = match after {
                        Some(after) => after.min(self.max_retry_after),
                        None => self.backoff(d.attempts, rng),
                    };
                    d.status = DeliveryStatus::Retrying;
                    d.last_error = Some(error);
                    d.next_attempt_ms =
                        now.saturating_add(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX));
                }
            }
        }
        d
    }
}

/// A delivery the releaser carries. At any time it is in exactly one place: `schedule`
/// (waiting for its time), `ready` or a link's `parked` queue (due, waiting for a slot),
/// running, or being recorded by the author's actor.
struct Job {
    record: DeliveryRecord,
    activity: Arc<ActivityRecord>,
    /// Where its attempts go ([`Connector::destination`], or the link itself).
    destination: String,
}

/// What caps concurrent attempts besides the global limit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Gate {
    Link(String),
    Destination(String),
}

impl Job {
    /// The gates an attempt of this job holds while it runs.
    fn gates(&self, key: &DeliveryKey) -> Vec<Gate> {
        vec![
            Gate::Link(key.link_id.clone()),
            Gate::Destination(self.destination.clone()),
        ]
    }
}

/// The actor.
pub struct Releaser {
    registry: RegistryHandle,
    store: Arc<dyn Store>,
    connector: Arc<dyn Connector>,
    config: ReleaseConfig,
    /// Every delivery not final that this releaser is carrying, by key.
    jobs: HashMap<DeliveryKey, Job>,
    /// `(due ms, key)` of the `Waiting` ones, soonest first.
    schedule: BTreeSet<(u64, DeliveryKey)>,
    /// Due, waiting for a global slot.
    ready: VecDeque<DeliveryKey>,
    /// Due, waiting for a slot on their link or destination (by [`Gate`]).
    parked: HashMap<Gate, VecDeque<DeliveryKey>>,
    in_flight: usize,
    /// Attempts running per link and per destination.
    running: HashMap<Gate, usize>,
    /// The timer for the soonest due time, and that time.
    wake: Option<(u64, SpawnHandle)>,
    /// Links unlinked while this releaser ran: nothing more is attempted to them.
    cancelled: HashSet<String>,
}

impl Releaser {
    pub(crate) fn new(
        registry: RegistryHandle,
        store: Arc<dyn Store>,
        connector: Arc<dyn Connector>,
        config: ReleaseConfig,
    ) -> Self {
        Releaser {
            registry,
            store,
            connector,
            config,
            jobs: HashMap::new(),
            schedule: BTreeSet::new(),
            ready: VecDeque::new(),
            parked: HashMap::new(),
            in_flight: 0,
            running: HashMap::new(),
            wake: None,
            cancelled: HashSet::new(),
        }
    }

    /// Takes a delivery on (once: a key already held is ignored).
    fn admit(&mut self, record: DeliveryRecord, activity: Arc<ActivityRecord>) {
        if record.status.is_final() {
            return;
        }
        let key = record.key();
        if self.jobs.contains_key(&key) {
            return;
        }
        self.schedule.insert((record.next_attempt_ms, key.clone()));
        let destination = self
            .connector
            .destination(&record.link)
            .unwrap_or_else(|| format!("link {}", key.link_id));
        self.jobs.insert(
            key,
            Job {
                record,
                activity,
                destination,
            },
        );
    }

    /// Starts what is due and free to run, then sets the timer for the next due time.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        let now = now_ms();
        while let Some((due, _)) = self.schedule.first() {
            if *due > now {
                break;
            }
            let Some((_, key)) = self.schedule.pop_first() else {
                break;
            };
            if self.jobs.contains_key(&key) {
                self.ready.push_back(key);
            }
        }
        while self.in_flight < self.config.max_in_flight {
            let Some(key) = self.ready.pop_front() else {
                break;
            };
            let Some(job) = self.jobs.get(&key) else {
                continue;
            };
            let gates = [
                (
                    Gate::Link(key.link_id.clone()),
                    self.config.max_in_flight_per_link,
                ),
                (
                    Gate::Destination(job.destination.clone()),
                    self.config.max_in_flight_per_destination,
                ),
            ];
            match gates
                .into_iter()
                .find(|(gate, cap)| self.running.get(gate).copied().unwrap_or(0) >= *cap)
            {
                Some((full, _)) => self.parked.entry(full).or_default().push_back(key),
                None => self.start(key, ctx),
            }
        }
        self.arm(ctx);
    }

    /// Sets the timer for the soonest `Waiting` delivery (if it is not set for it already).
    fn arm(&mut self, ctx: &mut Context<Self>) {
        let Some((due, _)) = self.schedule.first() else {
            return;
        };
        let due = *due;
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

    /// Runs one attempt of `key`.
    fn start(&mut self, key: DeliveryKey, ctx: &mut Context<Self>) {
        let Some(job) = self.jobs.get(&key) else {
            return;
        };
        self.in_flight += 1;
        for gate in job.gates(&key) {
            *self.running.entry(gate).or_insert(0) += 1;
        }
        let out = Outgoing {
            activity: (*job.activity).clone(),
            link: job.record.link.clone(),
            idempotency_key: job.record.idempotency_key(),
            attempt: job.record.attempts.saturating_add(1),
        };
        let connector = self.connector.clone();
        let limit = self.config.attempt_timeout;
        let attempt = async move {
            match tokio::time::timeout(limit, connector.deliver(&out)).await {
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
    fn finished(&mut self, key: DeliveryKey, outcome: AttemptOutcome, ctx: &mut Context<Self>) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let gates = self
            .jobs
            .get(&key)
            .map(|job| job.gates(&key))
            .unwrap_or_default();
        for gate in gates {
            if let Some(n) = self.running.get_mut(&gate) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.running.remove(&gate);
                }
            }
            // The gate has a free slot again: its longest-waiting delivery goes first.
            if let Some(queue) = self.parked.get_mut(&gate) {
                if let Some(next) = queue.pop_front() {
                    self.ready.push_front(next);
                }
                if queue.is_empty() {
                    self.parked.remove(&gate);
                }
            }
        }
        if let Some(job) = self.jobs.get_mut(&key) {
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
    /// the next attempt or forgets a final delivery. A failed recording is tried again: the
    /// stored state must never lag behind what the releaser acts on.
    fn record(&mut self, key: DeliveryKey, next: DeliveryRecord, ctx: &mut Context<Self>) {
        let Some(registry) = self.registry.upgrade() else {
            return;
        };
        let author = next.account_id.clone();
        let msg = RecordRelease {
            delivery: next.clone(),
        };
        ctx.spawn(
            async move { registry.ask(&author, msg).await }
                .into_actor(self)
                .map(move |res, act, ctx| match res {
                    Ok(()) => act.recorded(key, next, ctx),
                    Err(Error::NotFound(_)) => {
                        tracing::error!(
                            activity = %key.activity_id, link = %key.link_id,
                            "author of a delivery is gone; dropping it"
                        );
                        act.jobs.remove(&key);
                    }
                    Err(e) => {
                        tracing::warn!(
                            activity = %key.activity_id, link = %key.link_id, error = %e,
                            "recording a release status failed; retrying in 1 s"
                        );
                        ctx.run_later(Duration::from_secs(1), move |act, ctx| {
                            act.record(key, next, ctx);
                        });
                    }
                }),
        );
    }

    /// The link is gone: its waiting and queued deliveries leave every queue and are recorded
    /// as failed; running or recording ones see `cancelled` when they come back.
    fn cancel_link(&mut self, link: String, ctx: &mut Context<Self>) {
        let waiting: Vec<(u64, DeliveryKey)> = self
            .schedule
            .iter()
            .filter(|(_, k)| k.link_id == link)
            .cloned()
            .collect();
        let mut stopped: Vec<DeliveryKey> = Vec::new();
        for entry in waiting {
            self.schedule.remove(&entry);
            stopped.push(entry.1);
        }
        for queue in std::iter::once(&mut self.ready).chain(self.parked.values_mut()) {
            queue.retain(|k| {
                let hit = k.link_id == link;
                if hit {
                    stopped.push(k.clone());
                }
                !hit
            });
        }
        self.parked.retain(|_, queue| !queue.is_empty());
        for key in stopped {
            if let Some(job) = self.jobs.get(&key) {
                let failed = unlinked(job.record.clone());
                self.record(key, failed, ctx);
            }
        }
        self.cancelled.insert(link);
    }

    fn recorded(&mut self, key: DeliveryKey, next: DeliveryRecord, ctx: &mut Context<Self>) {
        if next.status.is_final() {
            self.jobs.remove(&key);
            return;
        }
        if self.cancelled.contains(&key.link_id) {
            let failed = unlinked(next);
            self.record(key, failed, ctx);
            return;
        }
        if let Some(job) = self.jobs.get_mut(&key) {
            self.schedule.insert((next.next_attempt_ms, key));
            job.record = next;
            self.pump(ctx);
        }
    }
}

impl Actor for Releaser {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        tracing::debug!(
            max_attempts = self.config.max_attempts,
            max_in_flight = self.config.max_in_flight,
            "releaser started"
        );
    }
}

impl Handler<Enqueue> for Releaser {
    type Result = ();
    fn handle(&mut self, msg: Enqueue, ctx: &mut Self::Context) {
        for d in msg.deliveries {
            self.admit(d, msg.activity.clone());
        }
        self.pump(ctx);
    }
}

/// `d`, failed because its link is gone.
fn unlinked(mut d: DeliveryRecord) -> DeliveryRecord {
    d.status = DeliveryStatus::Failed;
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

impl Handler<LoadPending> for Releaser {
    type Result = ResponseActFuture<Self, Result<usize>>;
    fn handle(&mut self, _: LoadPending, _: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        Box::pin(
            async move {
                let pending = store.pending_deliveries().await?;
                let mut activities: HashMap<String, Arc<ActivityRecord>> = HashMap::new();
                // Each author's links now: a link removed while the server was down ends its
                // deliveries here, as an unlink on a running server does.
                let mut links: HashMap<String, HashSet<String>> = HashMap::new();
                let mut out = Vec::with_capacity(pending.len());
                for d in pending {
                    if !links.contains_key(&d.account_id) {
                        let now: HashSet<String> = store
                            .load_subscriber(&d.account_id)
                            .await?
                            .map(|snap| {
                                snap.edges
                                    .into_iter()
                                    .filter(|e| e.kind == EdgeKind::Link)
                                    .map(|e| e.other)
                                    .collect()
                            })
                            .unwrap_or_default();
                        links.insert(d.account_id.clone(), now);
                    }
                    let linked = links
                        .get(&d.account_id)
                        .is_some_and(|l| l.contains(&d.link.link_id));
                    let activity = match activities.get(&d.activity_id) {
                        Some(a) => a.clone(),
                        None => match store.load_activity(&d.activity_id).await? {
                            Some(a) => {
                                let a = Arc::new(a);
                                activities.insert(d.activity_id.clone(), a.clone());
                                a
                            }
                            None => {
                                tracing::error!(
                                    activity = %d.activity_id,
                                    "delivery of a missing activity; skipped"
                                );
                                continue;
                            }
                        },
                    };
                    out.push((d, activity, linked));
                }
                Ok::<_, Error>(out)
            }
            .into_actor(self)
            .map(|res, act, ctx| {
                let pending = res?;
                let n = pending.len();
                let mut gone = HashSet::new();
                for (d, activity, linked) in pending {
                    if !linked {
                        gone.insert(d.link.link_id.clone());
                    }
                    act.admit(d, activity);
                }
                // Links removed while the server was down end like an unlink now.
                for link in gone {
                    act.cancel_link(link, ctx);
                }
                act.pump(ctx);
                Ok(n)
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LinkRecord;

    fn delivery() -> DeliveryRecord {
        let activity = ActivityRecord {
            activity_id: "a".into(),
            account_id: "u".into(),
            author_name: "U".into(),
            text: "hi".into(),
            created_ms: 1000,
            idempotency_key: None,
        };
        let link = LinkRecord {
            link_id: "l".into(),
            platform: "webhook".into(),
            handle: "h".into(),
            config: serde_json::json!({}),
            created_ms: 0,
        };
        DeliveryRecord::new(&activity, &link)
    }

    #[test]
    fn default_schedule_spans_about_an_hour() {
        let c = ReleaseConfig::default();
        // Without jitter: 30 s * (1 + 2 + ... + 64) = 63.5 min over 7 waits.
        let total: u64 = (1..c.max_attempts)
            .map(|n| {
                let exp = n - 1;
                (c.backoff_base * (1 << exp)).min(c.backoff_max).as_secs()
            })
            .sum();
        assert_eq!(total, 3810);
    }

    #[test]
    fn backoff_doubles_with_jitter_within_bounds() {
        let c = ReleaseConfig {
            backoff_base: Duration::from_secs(10),
            backoff_max: Duration::from_secs(60),
            ..ReleaseConfig::default()
        };
        let mut rng = rand::rng();
        for (failed, plain) in [(1u32, 10.0), (2, 20.0), (3, 40.0), (4, 60.0), (9, 60.0)] {
            for _ in 0..50 {
                let d = c.backoff(failed, &mut rng).as_secs_f64();
                assert!(d >= plain * 0.8 && d < plain * 1.2, "{failed}: {d}");
            }
        }
    }

    #[test]
    fn outcomes_move_the_delivery_forward() {
        let c = ReleaseConfig::default();
        let mut rng = rand::rng();
        let d = c.next(delivery(), AttemptOutcome::Delivered, 5000, &mut rng);
        assert_eq!((d.status, d.attempts), (DeliveryStatus::Delivered, 1));

        let d = c.next(
            delivery(),
            AttemptOutcome::Fail {
                error: "HTTP 400".into(),
            },
            5000,
            &mut rng,
        );
        assert_eq!(d.status, DeliveryStatus::Failed);
        assert_eq!(d.last_error.as_deref(), Some("HTTP 400"));

        let retry = |after| AttemptOutcome::Retry {
            error: "HTTP 500".into(),
            after,
        };
        let d = c.next(delivery(), retry(None), 5000, &mut rng);
        assert_eq!(d.status, DeliveryStatus::Retrying);
        assert!((5000 + 24_000..5000 + 36_000).contains(&d.next_attempt_ms));

        // Retry-After wins over the backoff, up to the cap.
        let d = c.next(
            delivery(),
            retry(Some(Duration::from_secs(7))),
            5000,
            &mut rng,
        );
        assert_eq!(d.next_attempt_ms, 12_000);
        let d = c.next(
            delivery(),
            retry(Some(Duration::from_secs(86_400))),
            5000,
            &mut rng,
        );
        assert_eq!(d.next_attempt_ms, 5000 + 3_600_000);

        // The last allowed attempt fails for good.
        let mut last = delivery();
        last.attempts = c.max_attempts - 1;
        let d = c.next(last, retry(None), 5000, &mut rng);
        assert_eq!(
            (d.status, d.attempts),
            (DeliveryStatus::Failed, c.max_attempts)
        );
        assert!(d.last_error.unwrap_or_default().contains("gave up"));
    }
}
