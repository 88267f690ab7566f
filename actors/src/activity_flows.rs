//! Operations on activities that span actors: posting (the author's actor stores the post
//! and its deliveries; the friends' actors each append `activity.posted`), the activity feed
//! (friends only) and the release status of a post (its author only).

use crate::activity_model::{ActivityView, ReleaseView};
use crate::error::{Error, Result};
use crate::event::EventType;
use crate::flows::{MAX_PAGE, Page};
use crate::group_flows::{cut, parse_cursor};
use crate::groups_model::FeedPos;
use crate::messages::{CanSeeActivities, PostActivity, Posted};
use crate::registry::Registry;

impl Registry {
    /// Posts an activity for `me`: stored with one delivery per linked platform (the releaser
    /// starts them as soon as the write is durable), then appended to every friend's log as
    /// `activity.posted`, a bounded number at a time. A replay (same idempotency key) tells
    /// nobody again.
    pub async fn post_activity(
        &self,
        me: &str,
        text: String,
        idempotency_key: Option<String>,
    ) -> Result<Posted> {
        let posted = self
            .ask(
                me,
                PostActivity {
                    text,
                    idempotency_key,
                },
            )
            .await?;
        if let Some(data) = &posted.data {
            self.notify_all(
                posted.friends.clone(),
                EventType::ACTIVITY_POSTED,
                data.clone(),
            )
            .await;
        }
        Ok(posted)
    }

    /// A page of `account`'s activities, newest first; only the account and its friends may
    /// read it.
    pub async fn list_activities(
        &self,
        viewer: &str,
        account: &str,
        limit: usize,
        before: Option<&str>,
    ) -> Result<Page<ActivityView>> {
        let before = parse_cursor(before)?;
        let allowed = self
            .ask(
                account,
                CanSeeActivities {
                    viewer: viewer.to_owned(),
                },
            )
            .await?;
        if !allowed {
            return Err(Error::Forbidden(
                "only the account and its friends see its activities".into(),
            ));
        }
        let limit = limit.clamp(1, MAX_PAGE);
        let mut records = self
            .store()
            .list_activities(account, before.as_ref(), limit + 1)
            .await?;
        let next = cut(&mut records, limit, |a| FeedPos {
            ms: a.created_ms,
            id: a.activity_id.clone(),
        });
        let items = records.iter().map(ActivityView::from).collect();
        Ok(Page { items, next })
    }

    /// Where each platform's delivery of an activity stands; its author only.
    pub async fn list_releases(&self, viewer: &str, activity_id: &str) -> Result<Vec<ReleaseView>> {
        let activity = self
            .store()
            .load_activity(activity_id)
            .await?
            .ok_or(Error::NotFound("activity"))?;
        if activity.account_id != viewer {
            return Err(Error::Forbidden(
                "only the author sees an activity's releases".into(),
            ));
        }
        let deliveries = self.store().list_deliveries(activity_id).await?;
        Ok(deliveries.iter().map(|d| d.view()).collect())
    }
}
