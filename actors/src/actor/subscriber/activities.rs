//! Activities: posting one (stored with one release per link and `activity.posted`, in one
//! write; then handed to the releaser), recording a release's new status, and who may read
//! the account's activities.

use std::sync::Arc;

use actix::prelude::*;
use serde::{Deserialize, Serialize};

use super::Subscriber;
use crate::actor::{Durable, Turn, ready};
use crate::error::{Error, Result, StoreError};
use crate::model::{
    AccountId, ActivityRecord, ActivityView, Posted, ReleaseRecord, StepRecord, new_id, now_ms,
};
use crate::push::event::{EventType, encode_data};

/// Post an activity, checked by [`crate::model::limits::check_post`]. Stores it, one release
/// per linked platform (but an unverified email link) and `activity.posted` in the author's log in one atomic write, then
/// hands the releases to the releaser; the write carries the step that tells the friends,
/// which the answer hands back for the caller to carry out. With an `idempotency_key` seen before, answers the first activity and changes
/// nothing.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<(Posted, Option<StepRecord>)>")]
pub struct PostActivity {
    pub text: String,
    pub idempotency_key: Option<String>,
}

/// Sent by the Releaser after an attempt: store the release's new state and tell the
/// author's devices (`release.status`), in one write.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<()>")]
pub struct RecordRelease {
    pub release: ReleaseRecord,
}

/// May `viewer` read this account's activities? Itself and its friends may.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<bool>")]
pub struct CanSeeActivities {
    pub viewer: AccountId,
}

impl Subscriber {
    /// Stores a new activity with one release per link and `activity.posted`; once durable,
    /// hands the releases to the releaser.
    fn post_new(
        &mut self,
        text: String,
        idempotency_key: Option<String>,
    ) -> ResponseActFuture<Self, Result<(Posted, Option<StepRecord>)>> {
        let activity = ActivityRecord {
            activity_id: new_id(),
            account_id: self.id().to_owned(),
            author_name: self
                .record
                .profile
                .get("display_name")
                .cloned()
                .unwrap_or_default(),
            text,
            created_ms: now_ms(),
            idempotency_key,
        };
        // Not to an email address that awaits its code (`LinkRecord::releases`).
        let provable = self.provable();
        let releases: Vec<ReleaseRecord> = self
            .links
            .values()
            .filter(|link| link.releases(provable))
            .map(|link| ReleaseRecord::new(&activity, link))
            .collect();
        let mut write = self.write();
        write.activities.push(activity.clone());
        write.outbox = releases.clone();
        let data = encode_data(&ActivityView::from(&activity));
        self.push_event(&mut write, EventType::ACTIVITY_POSTED, &data);
        let step = self.tell_friends(EventType::ACTIVITY_POSTED, &data);
        let friends_told = self.friends.len();
        write.steps.extend(step.clone());
        self.persist_fut(write, move |act| {
            let views = releases.iter().map(ReleaseRecord::view).collect();
            if !releases.is_empty() {
                match act.life.env.releaser.get() {
                    Some(releaser) => releaser.enqueue(Arc::new(activity.clone()), releases),
                    None => tracing::warn!(
                        activity = %activity.activity_id,
                        "no releaser running; the releases wait in the outbox"
                    ),
                }
            }
            let posted = Posted {
                activity,
                releases: views,
                replayed: false,
                friends_told,
            };
            (posted, step)
        })
    }
}

impl Handler<PostActivity> for Subscriber {
    type Result = Turn<Self, (Posted, Option<StepRecord>)>;
    fn handle(&mut self, msg: PostActivity, _: &mut Self::Context) -> Self::Result {
        self.touch();
        let Some(key) = msg.idempotency_key.clone() else {
            return AtomicResponse::new(self.post_new(msg.text, None));
        };
        // The lookup runs inside this atomic turn, so two posts with one key cannot both
        // miss it.
        let store = self.life.env.store.clone();
        let id = self.id().to_owned();
        AtomicResponse::new(Box::pin(
            async move {
                let Some(first) = store.find_activity_by_key(&id, &key).await? else {
                    return Ok(None);
                };
                let releases = store.list_releases(&first.activity_id).await?;
                Ok::<_, StoreError>(Some((first, releases)))
            }
            .into_actor(self)
            .then(
                move |found,
                      act,
                      _ctx|
                      -> ResponseActFuture<Self, Result<(Posted, Option<StepRecord>)>> {
                    let replay = match found {
                        Err(e) => Err(e.into()),
                        Ok(Some((first, _))) if first.text != msg.text => Err(Error::conflict(
                            "idempotency_key_reused",
                            "this idempotency_key was used for a post with another text",
                        )),
                        Ok(Some((first, releases))) => Ok((
                            Posted {
                                activity: first,
                                releases: releases.iter().map(ReleaseRecord::view).collect(),
                                replayed: true,
                                friends_told: 0,
                            },
                            None,
                        )),
                        Ok(None) => return act.post_new(msg.text, msg.idempotency_key),
                    };
                    Box::pin(actix::fut::ready(replay))
                },
            ),
        ))
    }
}

impl Handler<RecordRelease> for Subscriber {
    type Result = Turn<Self, ()>;
    fn handle(&mut self, msg: RecordRelease, _: &mut Self::Context) -> Self::Result {
        let mut write = self.write();
        match serde_json::to_value(msg.release.view()) {
            Ok(data) => self.push_event_json(&mut write, EventType::RELEASE_STATUS, data),
            Err(e) => return ready(Err(Error::invalid(format!("release view: {e}")))),
        }
        // A release written before secrets were sealed loses its copy of the secret here.
        let mut release = msg.release;
        release.link = release.link.public();
        write.outbox.push(release);
        self.persist(write, |_| ())
    }
}

impl Handler<CanSeeActivities> for Subscriber {
    type Result = Result<bool>;
    fn handle(&mut self, msg: CanSeeActivities, _: &mut Self::Context) -> Self::Result {
        self.touch();
        Ok(msg.viewer == self.id() || self.friends.contains_key(&msg.viewer))
    }
}
