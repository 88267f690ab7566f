//! The buckets of this process: one keyed token-bucket table (governor's GCRA) per
//! [`Bucket`], with its quota from the configuration.

use std::num::NonZeroU32;
use std::sync::Arc;

use async_trait::async_trait;
use governor::clock::{Clock, DefaultClock, QuantaInstant};
use governor::{DefaultKeyedRateLimiter, NotUntil, Quota, RateLimiter};

use super::{Bucket, Key, Limiter, Verdict};
use crate::config::{Config, Rate};

/// Most keys one table tracks. An entry is dropped by [`LocalLimiter::prune`] once its
/// bucket is full again (within a minute for logins, within burst × the refill interval for
/// the hourly buckets), so only a flood of distinct addresses or logins reaches it; then a
/// key not tracked yet answers 429 until the next prune. That fails closed: the limit is
/// never skipped, and keys already tracked (clients already seen) keep their own buckets.
pub const MAX_TRACKED: usize = 100_000;
/// How often the server prunes (and the `Retry-After` of a refusal for a full table).
pub const PRUNE_EVERY_SECS: u64 = 10;

type Table = DefaultKeyedRateLimiter<u128>;

/// Cheap to clone (the tables are shared).
#[derive(Clone)]
pub struct LocalLimiter {
    tables: Arc<Tables>,
}

struct Tables {
    login: Table,
    login_address: Table,
    account_creation: Table,
    contact_upload: Table,
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

/// `n` a minute, a burst of `n`.
fn per_minute(n: u32) -> Quota {
    Quota::per_minute(nonzero(n))
}

fn hourly(rate: Rate) -> Quota {
    Quota::per_hour(nonzero(rate.per_hour)).allow_burst(nonzero(rate.burst))
}

impl LocalLimiter {
    pub fn new(config: &Config) -> LocalLimiter {
        let edge = &config.edge;
        LocalLimiter {
            tables: Arc::new(Tables {
                login: RateLimiter::keyed(per_minute(config.login_attempts_per_account)),
                login_address: RateLimiter::keyed(per_minute(config.login_attempts_per_address)),
                account_creation: RateLimiter::keyed(hourly(edge.account_creations)),
                contact_upload: RateLimiter::keyed(hourly(edge.contact_uploads)),
            }),
        }
    }

    fn table(&self, bucket: Bucket) -> &Table {
        let t = &self.tables;
        match bucket {
            Bucket::Login => &t.login,
            Bucket::LoginAddress => &t.login_address,
            Bucket::AccountCreation => &t.account_creation,
            Bucket::ContactUpload => &t.contact_upload,
        }
    }

    /// Counts one attempt against `key` here.
    pub fn check_here(&self, key: Key) -> Verdict {
        let table = self.table(key.bucket);
        if table.len() >= MAX_TRACKED {
            return Verdict::Wait(PRUNE_EVERY_SECS);
        }
        match table.check_key(&key.hash) {
            Ok(()) => Verdict::Allow,
            Err(not_until) => Verdict::Wait(wait_secs(&not_until)),
        }
    }

    /// Keys tracked in `bucket`'s table now.
    pub fn tracked(&self, bucket: Bucket) -> usize {
        self.table(bucket).len()
    }

    pub fn prune_here(&self) {
        for bucket in Bucket::ALL {
            self.table(bucket).retain_recent();
        }
    }
}

/// The whole seconds until the next attempt is allowed, rounded up (at least 1).
fn wait_secs(not_until: &NotUntil<QuantaInstant>) -> u64 {
    let wait = not_until.wait_time_from(DefaultClock::default().now());
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[async_trait]
impl Limiter for LocalLimiter {
    async fn check(&self, key: Key) -> Verdict {
        self.check_here(key)
    }

    fn prune(&self) {
        self.prune_here();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EdgeLimits;
    use crate::limits::{address_key, login_key};

    fn config(login: u32, creations: Rate) -> Config {
        let mut cfg = Config {
            login_attempts_per_account: login,
            ..Config::default()
        };
        cfg.edge = EdgeLimits {
            account_creations: creations,
            ..cfg.edge
        };
        cfg
    }

    #[test]
    fn a_login_bucket_trips_for_every_spelling_of_the_login() {
        let limits = LocalLimiter::new(&config(
            2,
            Rate {
                per_hour: 1,
                burst: 1,
            },
        ));
        let key = |login: &str| Key::new(Bucket::Login, &login_key(login));
        assert_eq!(limits.check_here(key("ann@example.com")), Verdict::Allow);
        assert_eq!(limits.check_here(key(" ANN@example.com")), Verdict::Allow);
        assert!(matches!(
            limits.check_here(key("ann@example.com ")),
            Verdict::Wait(s) if (1..=60).contains(&s)
        ));
        assert_eq!(limits.check_here(key("bob@example.com")), Verdict::Allow);
    }

    #[test]
    fn the_hourly_bucket_allows_its_burst_then_waits_for_the_refill() {
        let limits = LocalLimiter::new(&config(
            10,
            Rate {
                per_hour: 60,
                burst: 3,
            },
        ));
        let a = Key::new(Bucket::AccountCreation, &address_key([192, 0, 2, 1].into()));
        for _ in 0..3 {
            assert_eq!(limits.check_here(a), Verdict::Allow);
        }
        // One token a minute.
        assert!(matches!(limits.check_here(a), Verdict::Wait(s) if (1..=60).contains(&s)));
        // Another address, and another bucket of the same address, are not touched.
        let b = Key::new(Bucket::AccountCreation, &address_key([192, 0, 2, 2].into()));
        assert_eq!(limits.check_here(b), Verdict::Allow);
        let same_ip = Key {
            bucket: Bucket::ContactUpload,
            ..a
        };
        assert_eq!(limits.check_here(same_ip), Verdict::Allow);
    }

    #[test]
    fn a_flood_of_keys_is_bounded_and_refused_past_the_bound() {
        let limits = LocalLimiter::new(&Config::default());
        for i in 0..MAX_TRACKED {
            let key = Key::new(Bucket::Login, &format!("id:user{i}"));
            assert_eq!(limits.check_here(key), Verdict::Allow);
        }
        let one_more = Key::new(Bucket::Login, "id:one-more");
        assert_eq!(limits.check_here(one_more), Verdict::Wait(PRUNE_EVERY_SECS));
        assert_eq!(limits.tracked(Bucket::Login), MAX_TRACKED);
        // Other tables have room of their own.
        let address = Key::new(Bucket::LoginAddress, "ip:192.0.2.1");
        assert_eq!(limits.check_here(address), Verdict::Allow);
    }
}
