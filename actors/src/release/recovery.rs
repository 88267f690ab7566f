//! Reading the outbox: at start-up (`Recover`, before the server takes requests) the
//! releaser reads every release the store holds as not final and carries on with it; in a
//! cluster it does so only for the releases whose author its node owns, and reads the outbox
//! again after every view change (`Rescan`): it lets go of what moved to another node and
//! takes on what moved here. A release whose link was removed meanwhile ends as an unlink on a
//! running server does.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use actix::prelude::*;

use super::releaser::Releaser;
use crate::error::Result;
use crate::model::{ActivityRecord, ReleaseRecord};
use crate::store::{EdgeKind, Store};

/// Sent once at start-up, before the server takes requests: read every release the store
/// holds as not final (of authors this node owns) and carry on with it. Answers how many
/// were picked up.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<usize>")]
pub struct Recover;

/// Sent after each change of the cluster's view: let go of the releases whose author moved
/// to another node, and take on those whose author this node owns now (a release already
/// held is not taken twice).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Rescan;

/// A release to carry on with, its activity, and whether its link still stands.
type Pending = (ReleaseRecord, Arc<ActivityRecord>, bool);

/// Every release not final whose author `owns` accepts, with its activity and whether its
/// link still stands (each author's links now: a link removed meanwhile ends its releases).
async fn read_outbox(store: Arc<dyn Store>, owns: impl Fn(&str) -> bool) -> Result<Vec<Pending>> {
    let pending = store.pending_releases().await?;
    let mut activities: HashMap<String, Arc<ActivityRecord>> = HashMap::new();
    let mut links: HashMap<String, HashSet<String>> = HashMap::new();
    let mut out = Vec::with_capacity(pending.len());
    for d in pending.into_iter().filter(|d| owns(&d.account_id)) {
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
    /// Reads the outbox for the authors this node owns now.
    fn read(&self) -> impl Future<Output = Result<Vec<Pending>>> + 'static {
        read_outbox(self.store.clone(), self.owner_check())
    }

    /// Takes `pending` on (a release already held is not taken twice); answers how many.
    fn take_on(&mut self, pending: Vec<Pending>, ctx: &mut Context<Self>) -> usize {
        let n = pending.len();
        let mut gone = HashSet::new();
        for (d, activity, linked) in pending {
            if !linked {
                gone.insert(d.link.link_id.clone());
            }
            self.admit(d, activity);
        }
        // Links removed meanwhile end like an unlink now.
        for link in gone {
            self.cancel_link(link, ctx);
        }
        self.pump(ctx);
        n
    }
}

impl Handler<Recover> for Releaser {
    type Result = ResponseActFuture<Self, Result<usize>>;
    fn handle(&mut self, _: Recover, _: &mut Self::Context) -> Self::Result {
        Box::pin(
            self.read()
                .into_actor(self)
                .map(|res, act, ctx| Ok(act.take_on(res?, ctx))),
        )
    }
}

impl Handler<Rescan> for Releaser {
    type Result = ResponseActFuture<Self, ()>;
    fn handle(&mut self, _: Rescan, _: &mut Self::Context) -> Self::Result {
        Box::pin(self.read().into_actor(self).map(|res, act, ctx| {
            let let_go = act.let_go_moved();
            match res {
                Ok(pending) => {
                    let held = act.take_on(pending, ctx);
                    tracing::info!(let_go, held, "outbox read again after a view change");
                }
                Err(e) => tracing::warn!(let_go, error = %e,
                    "outbox unreadable after a view change; read again at the next one"),
            }
        }))
    }
}
