//! The release policy, the same for every platform: exponential backoff with jitter, the
//! platform's `Retry-After` when it gave one (up to a cap), `failed` after `max_attempts`,
//! the caps on attempts running at once and the bounds on releases held (both applied by
//! [`super::queues`]).

use std::time::Duration;

use rand::Rng;

use super::connector::AttemptOutcome;
use crate::model::{ReleaseRecord, ReleaseStatus};

/// How releases are retried and bounded.
#[derive(Debug, Clone)]
pub struct ReleaseConfig {
    /// Attempts before a release is `failed` (the first one included).
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
    /// Attempts running at once of one author's releases, so one account cannot take the
    /// slots of all (authors also take turns).
    pub max_in_flight_per_account: usize,
    /// Attempts running at once to one link.
    pub max_in_flight_per_link: usize,
    /// Attempts running at once to one destination host (all links to it together, whatever
    /// their port or author).
    pub max_in_flight_per_destination: usize,
    /// Releases the releaser holds in memory; past it they wait in the outbox on disk.
    pub max_held: usize,
    /// Releases the releaser holds in memory for one author; past it theirs wait in the
    /// outbox on disk.
    pub max_held_per_account: usize,
}

impl Default for ReleaseConfig {
    /// 8 attempts over about an hour: waits of 30 s, 1, 2, 4, 8, 16 and 32 min, each ±20 %.
    /// 16,384 releases held at about 1-2 KiB each (the activity is shared by its releases;
    /// one with the longest text and a single link is about 21 KiB).
    fn default() -> Self {
        ReleaseConfig {
            max_attempts: 8,
            backoff_base: Duration::from_secs(30),
            backoff_max: Duration::from_secs(32 * 60),
            max_retry_after: Duration::from_secs(3600),
            attempt_timeout: Duration::from_secs(10),
            max_in_flight: 256,
            max_in_flight_per_account: 8,
            max_in_flight_per_link: 4,
            max_in_flight_per_destination: 32,
            max_held: 16_384,
            max_held_per_account: 512,
        }
    }
}

impl ReleaseConfig {
    /// The wait after `failed` failed attempts (1 for the first): `base * 2^(failed-1)`, at
    /// most `backoff_max`, times a random factor in [0.8, 1.2) so that releases which failed
    /// together (a platform outage) do not all come back at the same instant.
    pub fn backoff(&self, failed: u32, rng: &mut impl Rng) -> Duration {
        let exp = failed.saturating_sub(1).min(30);
        let plain = self
            .backoff_base
            .saturating_mul(1u32 << exp)
            .min(self.backoff_max);
        plain.mul_f64(rng.random_range(0.8..1.2))
    }

    /// The release after one attempt that came to `outcome` (`now` in ms).
    pub fn next(
        &self,
        mut d: ReleaseRecord,
        outcome: AttemptOutcome,
        now: u64,
        rng: &mut impl Rng,
    ) -> ReleaseRecord {
        d.attempts = d.attempts.saturating_add(1);
        d.updated_ms = now;
        match outcome {
            AttemptOutcome::Delivered => {
                d.status = ReleaseStatus::Delivered;
                d.last_error = None;
            }
            AttemptOutcome::Fail { error } => {
                d.status = ReleaseStatus::Failed;
                d.last_error = Some(error);
            }
            AttemptOutcome::Retry { error, after } => {
                if d.attempts >= self.max_attempts {
                    d.status = ReleaseStatus::Failed;
                    d.last_error = Some(format!("{error} (gave up after {} attempts)", d.attempts));
                } else {
                    let wait = match after {
                        Some(after) => after.min(self.max_retry_after),
                        None => self.backoff(d.attempts, rng),
                    };
                    d.status = ReleaseStatus::Retrying;
                    d.last_error = Some(error);
                    d.next_attempt_ms =
                        now.saturating_add(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX));
                }
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ActivityRecord, LinkRecord};

    fn release() -> ReleaseRecord {
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
            secret: None,
            created_ms: 0,
            proof: Default::default(),
        };
        ReleaseRecord::new(&activity, &link)
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
    fn outcomes_move_the_release_forward() {
        let c = ReleaseConfig::default();
        let mut rng = rand::rng();
        let d = c.next(release(), AttemptOutcome::Delivered, 5000, &mut rng);
        assert_eq!((d.status, d.attempts), (ReleaseStatus::Delivered, 1));

        let d = c.next(
            release(),
            AttemptOutcome::Fail {
                error: "HTTP 400".into(),
            },
            5000,
            &mut rng,
        );
        assert_eq!(d.status, ReleaseStatus::Failed);
        assert_eq!(d.last_error.as_deref(), Some("HTTP 400"));

        let retry = |after| AttemptOutcome::Retry {
            error: "HTTP 500".into(),
            after,
        };
        let d = c.next(release(), retry(None), 5000, &mut rng);
        assert_eq!(d.status, ReleaseStatus::Retrying);
        assert!((5000 + 24_000..5000 + 36_000).contains(&d.next_attempt_ms));

        // Retry-After wins over the backoff, up to the cap.
        let d = c.next(
            release(),
            retry(Some(Duration::from_secs(7))),
            5000,
            &mut rng,
        );
        assert_eq!(d.next_attempt_ms, 12_000);
        let d = c.next(
            release(),
            retry(Some(Duration::from_secs(86_400))),
            5000,
            &mut rng,
        );
        assert_eq!(d.next_attempt_ms, 5000 + 3_600_000);

        // The last allowed attempt fails for good.
        let mut last = release();
        last.attempts = c.max_attempts - 1;
        let d = c.next(last, retry(None), 5000, &mut rng);
        assert_eq!(
            (d.status, d.attempts),
            (ReleaseStatus::Failed, c.max_attempts)
        );
        assert!(d.last_error.unwrap_or_default().contains("gave up"));
    }
}
