//! Backing off from a failing dependency (the store's disk, for the releaser, the embedded
//! store's writer and the sweeper of cross-actor steps): waits that double from `first` up to
//! `cap`, and the two moments worth a log line, the first failure of a run and the success
//! that ends it, so a dependency that stays down costs one line, not one per second.

use std::time::Duration;

/// A run of failures and the wait it calls for.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    cap: Duration,
    failures: u32,
}

impl Backoff {
    /// Waits of `first`, `2 × first`, … up to `cap`.
    pub const fn new(first: Duration, cap: Duration) -> Self {
        Backoff {
            first,
            cap,
            failures: 0,
        }
    }

    /// Counts a failure; answers how long to wait before trying again, and whether it is the
    /// first of a run (the one to log).
    pub fn failed(&mut self) -> (Duration, bool) {
        self.failures = self.failures.saturating_add(1);
        let doublings = self.failures.saturating_sub(1).min(31);
        let wait = self.first.saturating_mul(1 << doublings).min(self.cap);
        (wait, self.failures == 1)
    }

    /// Counts a success; answers whether it ends a run of failures (the one to log).
    pub fn succeeded(&mut self) -> bool {
        std::mem::take(&mut self.failures) > 0
    }

    /// Whether the last try failed.
    pub fn failing(&self) -> bool {
        self.failures > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_and_only_state_changes_are_reported() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        assert!(!b.failing());
        assert!(!b.succeeded(), "a success without failures is no change");
        let waits: Vec<(u64, bool)> = (0..8)
            .map(|_| {
                let (wait, first) = b.failed();
                (wait.as_secs(), first)
            })
            .collect();
        assert_eq!(
            waits,
            vec![
                (1, true),
                (2, false),
                (4, false),
                (8, false),
                (16, false),
                (30, false),
                (30, false),
                (30, false)
            ]
        );
        assert!(b.failing());
        assert!(b.succeeded(), "the success that ends a run is reported");
        assert!(!b.succeeded());
        assert_eq!(
            b.failed(),
            (Duration::from_secs(1), true),
            "a new run starts over"
        );
    }

    #[test]
    fn a_long_run_never_overflows() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
        for _ in 0..10_000 {
            b.failed();
        }
        assert_eq!(b.failed().0, Duration::from_secs(60));
    }
}
