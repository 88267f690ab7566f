//! The seam between the release machinery and the platforms: one [`Connector`] makes one
//! attempt of one release and says what happened. The server crate implements it per
//! platform (webhook, Mastodon, email); the releaser decides what an outcome means
//! ([`super::policy`]: retry when, give up when) so every platform gets the same policy.

use std::time::Duration;

use async_trait::async_trait;

use crate::model::{ActivityRecord, LinkRecord};

/// Everything one attempt needs.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub activity: ActivityRecord,
    /// The link as its author's actor holds it when the attempt starts (platform, handle,
    /// config and the sealed secret, which the connector unseals).
    pub link: LinkRecord,
    /// Same for every attempt of this release (see `ReleaseRecord::idempotency_key`).
    pub idempotency_key: String,
    /// 1 for the first attempt.
    pub attempt: u32,
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The platform accepted the activity.
    Delivered,
    /// Worth another try (network error, timeout, 5xx, 408, 429); `after` is the platform's
    /// own wish (`Retry-After`), if it said one.
    Retry {
        error: String,
        after: Option<Duration>,
    },
    /// Trying again cannot help (4xx other than 408/429, a config the platform rejects).
    Fail { error: String },
}

impl AttemptOutcome {
    /// Its name in metrics: `delivered`, `retry` or `failed`.
    pub fn label(&self) -> &'static str {
        match self {
            AttemptOutcome::Delivered => "delivered",
            AttemptOutcome::Retry { .. } => "retry",
            AttemptOutcome::Fail { .. } => "failed",
        }
    }

    /// The shared reading of an HTTP answer: any 2xx is delivered; 408, 429 and 5xx are retried
    /// (429 and 503 with the server's `Retry-After`); every other status fails at once
    /// (redirects are not followed: a platform that moved must be linked again).
    pub fn from_http(status: u16, retry_after: Option<Duration>, detail: &str) -> Self {
        let error = if detail.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {detail}")
        };
        match status {
            200..=299 => AttemptOutcome::Delivered,
            408 | 429 | 500..=599 => AttemptOutcome::Retry {
                error,
                after: retry_after,
            },
            _ => AttemptOutcome::Fail { error },
        }
    }
}

/// Releases activities to platforms. Implementations must not retry on their own (the
/// releaser owns the policy) and should bound their own I/O; the releaser also stops an
/// attempt at its configured timeout.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    async fn attempt(&self, out: &Outgoing) -> AttemptOutcome;

    /// The host a link's releases go to (its name, or its address when the link names an IP
    /// address; never the port or the scheme), so the releaser can cap the attempts running
    /// against one host: many accounts linked to one instance that went dark, or one account
    /// linking many ports of one host, must not take every slot. `None` counts the link as
    /// its own destination.
    fn destination(&self, link: &LinkRecord) -> Option<String> {
        let _ = link;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_statuses_map_to_the_release_policy() {
        assert_eq!(
            AttemptOutcome::from_http(204, None, ""),
            AttemptOutcome::Delivered
        );
        for retried in [408, 429, 500, 502, 503] {
            assert!(matches!(
                AttemptOutcome::from_http(retried, None, ""),
                AttemptOutcome::Retry { .. }
            ));
        }
        for failed in [301, 400, 401, 403, 404, 410, 422] {
            assert!(matches!(
                AttemptOutcome::from_http(failed, None, ""),
                AttemptOutcome::Fail { .. }
            ));
        }
        let wait = Some(Duration::from_secs(3));
        assert_eq!(
            AttemptOutcome::from_http(429, wait, "slow down"),
            AttemptOutcome::Retry {
                error: "HTTP 429: slow down".into(),
                after: wait
            }
        );
    }
}
