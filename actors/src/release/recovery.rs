//! Recovery at start-up: the releaser reads the store's outbox (every release not final)
//! and carries on with it, before the server takes requests. A release whose link was
//! removed while the server was down ends as an unlink on a running server does.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use actix::prelude::*;

use super::releaser::Releaser;
use crate::error::{Error, Result};
use crate::model::ActivityRecord;
use crate::store::EdgeKind;

/// Sent once at start-up, before the server takes requests: read every release the store
/// holds as not final and carry on with it. Answers how many were picked up.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<usize>")]
pub struct Recover;

impl Handler<Recover> for Releaser {
    type Result = ResponseActFuture<Self, Result<usize>>;
    fn handle(&mut self, _: Recover, _: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        Box::pin(
            async move {
                let pending = store.pending_releases().await?;
                let mut activities: HashMap<String, Arc<ActivityRecord>> = HashMap::new();
                // Each author's links now: a link removed while the server was down ends its
                // releases here, as an unlink on a running server does.
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
                                    "release of a missing activity; skipped"
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
