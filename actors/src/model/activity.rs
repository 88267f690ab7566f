//! Activities and their per-platform releases, as stored.
//!
//! One activity is posted once; it gets one [`ReleaseRecord`] per platform link of its
//! author, written in the same atomic write as the activity (the outbox). A release's status
//! only moves forward: `pending` -> `retrying`* -> `delivered` | `failed`.
//!
//! The stored form (serde field names, status strings) is the one written before these types
//! were called releases; it must not change, so stored outboxes still load.

use serde::{Deserialize, Serialize};

use super::{AccountId, LinkRecord};

/// Activity id: 32 hex characters.
pub type ActivityId = String;

/// One post of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityRecord {
    pub activity_id: ActivityId,
    pub account_id: AccountId,
    /// The author's `display_name` when posted (connectors show it; e.g. an email's sender name).
    pub author_name: String,
    pub text: String,
    pub created_ms: u64,
    /// The client's key: a repeat with the same key answers this activity and releases
    /// nothing again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// Where a release stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseStatus {
    /// Written with the activity; no attempt finished yet.
    Pending,
    /// At least one attempt failed in a way worth retrying; another is scheduled.
    Retrying,
    /// The platform accepted it (final).
    Delivered,
    /// The platform refused it for good, or every attempt failed (final).
    Failed,
}

impl ReleaseStatus {
    /// True for `delivered` and `failed`: nothing more will be attempted.
    pub fn is_final(self) -> bool {
        matches!(self, ReleaseStatus::Delivered | ReleaseStatus::Failed)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseStatus::Pending => "pending",
            ReleaseStatus::Retrying => "retrying",
            ReleaseStatus::Delivered => "delivered",
            ReleaseStatus::Failed => "failed",
        }
    }
}

/// The durable state of one activity's release to one platform link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    pub activity_id: ActivityId,
    /// The author, whose actor records every status change (and tells its devices).
    pub account_id: AccountId,
    /// The link as it was when the activity was posted, without its secret
    /// ([`LinkRecord::public`]): each attempt looks the secret up by `link_id`, so it is
    /// stored once, with the link, and gone once the link is. A record written before
    /// secrets were sealed may still hold one here; [`ReleaseRecord::new`] and every status
    /// write drop it.
    pub link: LinkRecord,
    pub status: ReleaseStatus,
    /// Attempts finished so far.
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the next attempt is due (ms since the epoch); meaningless once final.
    pub next_attempt_ms: u64,
    pub updated_ms: u64,
}

impl ReleaseRecord {
    /// A fresh release of `activity` to `link`, due now.
    pub fn new(activity: &ActivityRecord, link: &LinkRecord) -> Self {
        ReleaseRecord {
            activity_id: activity.activity_id.clone(),
            account_id: activity.account_id.clone(),
            link: link.public(),
            status: ReleaseStatus::Pending,
            attempts: 0,
            last_error: None,
            next_attempt_ms: activity.created_ms,
            updated_ms: activity.created_ms,
        }
    }

    /// The key every attempt of this release carries (`Idempotency-Key`, an email's
    /// Message-ID): stable across retries and restarts, distinct per (activity, link).
    pub fn idempotency_key(&self) -> String {
        format!("{}-{}", self.activity_id, self.link.link_id)
    }

    /// Identifies the release among all others.
    pub fn key(&self) -> ReleaseKey {
        ReleaseKey {
            activity_id: self.activity_id.clone(),
            link_id: self.link.link_id.clone(),
        }
    }

    /// How clients see it (never the link's config).
    pub fn view(&self) -> ReleaseView {
        ReleaseView {
            activity_id: self.activity_id.clone(),
            link_id: self.link.link_id.clone(),
            platform: self.link.platform.clone(),
            status: self.status,
            attempts: self.attempts,
            last_error: self.last_error.clone(),
            next_attempt_ms: (self.status == ReleaseStatus::Retrying)
                .then_some(self.next_attempt_ms),
        }
    }
}

/// (activity, link): one release.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReleaseKey {
    pub activity_id: ActivityId,
    pub link_id: String,
}

/// A release as the author sees it: `GET /v1/activities/{id}/releases` items and the data of
/// `release.status` events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReleaseView {
    #[schema(value_type = String)]
    pub activity_id: ActivityId,
    pub link_id: String,
    pub platform: String,
    pub status: ReleaseStatus,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the next attempt is due, while `retrying`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_ms: Option<u64>,
}

/// An activity as friends see it (`activity.posted` data, activity feed items).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ActivityView {
    #[schema(value_type = String)]
    pub activity_id: ActivityId,
    #[schema(value_type = String)]
    pub account_id: AccountId,
    pub text: String,
    pub created_ms: u64,
}

impl From<&ActivityRecord> for ActivityView {
    fn from(a: &ActivityRecord) -> Self {
        ActivityView {
            activity_id: a.activity_id.clone(),
            account_id: a.account_id.clone(),
            text: a.text.clone(),
            created_ms: a.created_ms,
        }
    }
}

/// What posting an activity did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Posted {
    pub activity: ActivityRecord,
    /// One per linked platform, as stored now.
    pub releases: Vec<ReleaseView>,
    /// True when the idempotency key matched an earlier post: nothing was stored or released.
    pub replayed: bool,
    /// How many friends were told (`activity.posted`); 0 for a replay.
    pub friends_told: usize,
}
