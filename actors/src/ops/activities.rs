//! Activities: posting (the author's actor stores the post and its releases; the friends'
//! actors each append `activity.posted`), the activity feed (friends only) and where each
//! release of a post stands (its author only).

use super::Chorus;
use crate::actor::subscriber::{CanSeeActivities, PostActivity};
use crate::error::{Error, Result};
use crate::model::{ActivityView, FeedPos, Page, PageRequest, Posted, ReleaseView};

impl Chorus {
    /// Posts an activity for `me` (checked by [`crate::model::limits::check_post`]): stored
    /// with one release per linked platform (the releaser starts them as soon as the write is
    /// durable), then appended to every friend's log as `activity.posted` (a step stored with
    /// the post, so it happens after a crash too). A replay (same idempotency key) tells
    /// nobody again.
    pub async fn post_activity(
        &self,
        me: &str,
        text: String,
        idempotency_key: Option<String>,
    ) -> Result<Posted> {
        let (posted, step) = self
            .directory
            .ask(
                me,
                PostActivity {
                    text,
                    idempotency_key,
                },
            )
            .await?;
        self.carry(step).await;
        Ok(posted)
    }

    /// A page of `account`'s activities, newest first; only the account and its friends may
    /// read it.
    pub async fn list_activities(
        &self,
        viewer: &str,
        account: &str,
        page: &PageRequest,
    ) -> Result<Page<ActivityView>> {
        let allowed = self
            .directory
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
        let records = self
            .store()
            .list_activities(account, page.before.as_ref(), page.limit + 1)
            .await?;
        let page = Page::cut(records, page.limit, |a| FeedPos {
            ms: a.created_ms,
            id: a.activity_id.clone(),
        });
        Ok(page.map(|a| ActivityView::from(&a)))
    }

    /// Where each platform's release of an activity stands; its author only.
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
        let releases = self.store().list_releases(activity_id).await?;
        Ok(releases.iter().map(|r| r.view()).collect())
    }
}
