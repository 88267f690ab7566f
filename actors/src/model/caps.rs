//! Caps on what grows from other people's input (issue 15): pending friend requests and
//! contact matches per account, members and pending binding requests per group, tokens per
//! account and how long they live, and how long event logs keep their events.
//!
//! Each cap is enforced by the actor that owns the state it bounds (in a cluster, the one
//! node that owns that actor), so it holds across nodes without any coordination. A cap that
//! is reached answers 409 `limit_reached` ([`limit_reached`]) and stores nothing; the one
//! exception is tokens, where the oldest is dropped instead (a user logging in on a new
//! device expects that to work, and the dropped token is the one least likely in use).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The code of every cap's refusal.
pub const LIMIT_REACHED: &str = "limit_reached";

/// The code of a read of an event log from before its retention horizon (`ops::retention`).
pub const RESYNC_REQUIRED: &str = "resync_required";

/// The caps in force (the server's settings fill them; [`Caps::default`] is the settings'
/// defaults).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caps {
    /// Incoming friend requests one account may have pending.
    pub friend_requests: usize,
    /// Accounts one account's uploaded contacts may have matched (its suggestions, and the
    /// candidates for a mutual match).
    pub contact_matches: usize,
    /// Members of one group, the owner included.
    pub group_members: usize,
    /// Pending (unexpired) binding requests of one group.
    pub binding_requests: usize,
    /// Live tokens of one account; a login past it drops the oldest.
    pub tokens: usize,
    /// How long a token works after it was issued.
    pub token_ttl: Duration,
    /// How long an event stays in an account's or a group's log; `None`: for ever.
    pub log_retention: Option<Duration>,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            friend_requests: 500,
            contact_matches: 5000,
            group_members: 100_000,
            binding_requests: 100,
            tokens: 20,
            token_ttl: Duration::from_secs(30 * 24 * 3600),
            log_retention: Some(Duration::from_secs(30 * 24 * 3600)),
        }
    }
}

impl Caps {
    /// The token TTL in ms (saturating).
    pub fn token_ttl_ms(&self) -> u64 {
        u64::try_from(self.token_ttl.as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether a token issued at `issued_ms` still works at `now_ms`.
    pub fn token_alive(&self, issued_ms: u64, now_ms: u64) -> bool {
        now_ms < issued_ms.saturating_add(self.token_ttl_ms())
    }
}

/// The 409 of a cap: `what` is full at `cap`.
pub fn limit_reached(what: &str, cap: usize) -> Error {
    Error::conflict(LIMIT_REACHED, format!("{what}: the limit is {cap}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_dies_at_its_ttl() {
        let caps = Caps {
            token_ttl: Duration::from_millis(10),
            ..Caps::default()
        };
        assert!(caps.token_alive(100, 109));
        assert!(!caps.token_alive(100, 110));
        assert!(caps.token_alive(u64::MAX - 1, u64::MAX - 1));
    }
}
