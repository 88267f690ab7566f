//! Reading the outbox. At start-up (`Recover`, before the server takes requests) the
//! releaser reads every release the store holds as not final and carries on with it; in a
//! cluster it does so only for the releases whose author its node owns, and reads the outbox
//! again after every view change (`Rescan`): it lets go of what moved to another node and
//! takes on what moved here. It reads it again as well when its bounds left releases there
//! and there is room now (`refill_if_room`, at most once a second). A release whose link
//! was removed meanwhile ends as an unlink on a running server does.
//!
//! A read takes on what the bounds leave room for ([`super::queues::Queues::pick`]); only
//! the releases it takes on have their activity and their author's links loaded.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::queues::Admitted;
use super::releaser::Releaser;
use crate::backoff::Backoff;
use crate::error::Result;
use crate::model::{ActivityRecord, ReleaseRecord};
use crate::store::{EdgeKind, Store};

/// Sent once at start-up, before the server takes requests: read every release the store
/// holds as not final (of authors this node owns) and carry on with it. Answers how many
/// were taken on (the bounds may leave some in the outbox for later).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<usize>")]
pub struct Recover;

/// Sent after each change of the cluster's view: let go of the releases whose author moved
/// to another node, and take on those whose author this node owns now (a release already
/// held is not taken twice).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Rescan;

/// The shortest time between the starts of two reads for room.
pub(super) const REFILL_GAP: Duration = Duration::from_secs(1);

/// Reading the outbox again for releases the bounds left there.
pub(super) struct Refill {
    /// A read for room is under way.
    running: bool,
    /// No read for room starts before this.
    not_before: Option<Instant>,
    /// The timer for `not_before`.
    timer: Option<SpawnHandle>,
    /// Failed reads: retried after waits that double from 1 s to 30 s.
    backoff: Backoff,
}

impl Default for Refill {
    fn default() -> Self {
        Refill {
            running: false,
            not_before: None,
            timer: None,
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(30)),
        }
    }
}

/// A release to carry on with, its activity, and whether its link still stands.
type Pending = (ReleaseRecord, Arc<ActivityRecord>, bool);

/// Every release not final whose author `owns` accepts.
async fn read_outbox(
    store: Arc<dyn Store>,
    owns: impl Fn(&str) -> bool,
) -> Result<Vec<ReleaseRecord>> {
    let mut pending = store.pending_releases().await?;
    pending.retain(|d| owns(&d.account_id));
    Ok(pending)
}

/// `picked` with each release's activity and whether its link still stands (each author's
/// links now: a link removed meanwhile ends its releases).
async fn load(store: Arc<dyn Store>, picked: Vec<ReleaseRecord>) -> Result<Vec<Pending>> {
    let mut activities: HashMap<String, Arc<ActivityRecord>> = HashMap::new();
    let mut links: HashMap<String, HashSet<String>> = HashMap::new();
    let mut out = Vec::with_capacity(picked.len());
    for d in picked {
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
                        "release of a missing activity; skipped"
                    );
                    continue;
                }
            },
        };
        out.push((d, activity, linked));
    }
    Ok(out)
}

impl Releaser {
    /// Reads the outbox for the authors this node owns now and takes on what the bounds
    /// leave room for; answers how many it took on.
    fn read(&mut self) -> ResponseActFuture<Self, Result<usize>> {
        let before = self.queues.begin_read();
        let store = self.store.clone();
        let read = read_outbox(store.clone(), self.owner_check());
        Box::pin(
            read.into_actor(self)
                .then(move |res, act, _| {
                    let picked = res.map(|records| act.queues.pick(records));
                    async move { load(store, picked?).await }.into_actor(act)
                })
                .map(move |res, act, ctx| match res {
                    Ok(pending) => {
                        let held = act.take_on(pending, ctx);
                        act.queues.end_read(None);
                        Ok(held)
                    }
                    Err(e) => {
                        act.queues.end_read(Some(before));
                        Err(e)
                    }
                }),
        )
    }

    /// Takes `pending` on (a release already held is not taken twice); answers how many.
    fn take_on(&mut self, pending: Vec<Pending>, ctx: &mut Context<Self>) -> usize {
        let mut held = 0;
        let mut gone = HashSet::new();
        for (d, activity, linked) in pending {
            if !linked {
                gone.insert(d.link.link_id.clone());
            }
            if self.admit(d, activity) == Admitted::Held {
                held += 1;
            }
        }
        // Links removed meanwhile end like an unlink now.
        for link in gone {
            self.cancel_link(link, ctx);
        }
        self.pump(ctx);
        held
    }

    /// Reads the outbox again if the bounds left releases there and there is room now; at
    /// most one such read at a time, [`REFILL_GAP`] apart (longer after failures).
    pub(super) fn refill_if_room(&mut self, ctx: &mut Context<Self>) {
        if self.refill.running || !self.queues.wants_read() {
            return;
        }
        let now = Instant::now();
        if let Some(at) = self.refill.not_before
            && at > now
        {
            if self.refill.timer.is_none() {
                let handle = ctx.run_later(at - now, |act, ctx| {
                    act.refill.timer = None;
                    act.refill_if_room(ctx);
                });
                self.refill.timer = Some(handle);
            }
            return;
        }
        self.refill.running = true;
        let read = self.read();
        ctx.spawn(read.map(|res, act, ctx| {
            act.refill.running = false;
            let wait = match res {
                Ok(held) => {
                    if act.refill.backoff.succeeded() {
                        tracing::info!("reading the outbox works again");
                    }
                    tracing::debug!(held, "outbox read for releases left there");
                    REFILL_GAP
                }
                Err(e) => {
                    let (wait, first) = act.refill.backoff.failed();
                    if first {
                        tracing::warn!(error = %e,
                            "reading the outbox for releases left there failed; retrying \
                             after waits of 1-30 s until it works (logged then)");
                    } else {
                        tracing::debug!(error = %e, "reading the outbox failed");
                    }
                    wait
                }
            };
            act.refill.not_before = Some(Instant::now() + wait);
            act.refill_if_room(ctx);
        }));
    }
}

impl Handler<Recover> for Releaser {
    type Result = ResponseActFuture<Self, Result<usize>>;
    fn handle(&mut self, _: Recover, _: &mut Self::Context) -> Self::Result {
        self.read()
    }
}

impl Handler<Rescan> for Releaser {
    type Result = ResponseActFuture<Self, ()>;
    fn handle(&mut self, _: Rescan, _: &mut Self::Context) -> Self::Result {
        let let_go = self.let_go_moved();
        Box::pin(self.read().map(move |res, _, _| match res {
            Ok(held) => tracing::info!(let_go, held, "outbox read again after a view change"),
            Err(e) => tracing::warn!(let_go, error = %e,
                "outbox unreadable after a view change; read again when there is room or \
                 at the next change"),
        }))
    }
}
