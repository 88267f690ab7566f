//! The remaining steps of an operation that spans actors, as stored: the outbox of
//! cross-actor steps.
//!
//! An operation that changes more than one actor (accepting a friend request changes both
//! accounts; a profile change appends to every friend's log; a dynamic reaches every bound
//! group) writes its first step and, in the same atomic write, a [`StepRecord`] saying what is
//! left to do. A driver then carries the step out and removes the record, and carries on with
//! any record it finds at start-up. So once the first write is durable (and the client has
//! its 2xx), every part will happen, after a crash too. Each step is safe to run again: a
//! friendship or its end is made idempotently, and an event already appended to a log or a
//! group is found there (by the ids in its data) and not appended twice.

use serde::{Deserialize, Serialize};

use super::group::DynamicRecord;
use super::ids::new_id;
use super::{AccountId, GroupId, now_ms};

/// How many of a log's newest events a rerun of a step looks through for the event it
/// would append (an account's log for a notify, a group's for a dynamic): found there, it is
/// not appended twice.
pub const RECHECK_TAIL: usize = 256;

/// A sweep leaves alone a step this young that no run has failed: its own operation is
/// about to carry it out.
pub const FRESH_MS: u64 = 5_000;

/// In a cluster, a first run's append this long after its step was written rechecks too
/// (under the recipient's log head, on its owner): a sweep on another node, which waits
/// [`FRESH_MS`], may have run the step meanwhile. Half of it leaves room for clock skew.
pub const RECHECK_AFTER_MS: u64 = FRESH_MS / 2;

/// What is left of one cross-actor operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Append one event to each account's log and push it to their devices:
    /// `binding.requested` and `binding.rejected` to a group's owner, and what is left of a
    /// [`Step::NotifyFriends`] that did not reach everyone. `data` is the event's data,
    /// encoded once; it carries the ids that tell one such event from another (profile
    /// version, activity id, request id).
    Notify {
        to: Vec<AccountId>,
        event: String,
        data: String,
    },
    /// The same, to every friend of `account` when the step runs: friends' copies of
    /// `profile.updated` and `activity.posted`. The friends are not listed in the record, so
    /// its size does not grow with them (it rides in the account's own write, one batch on
    /// ScyllaDB, whose size the cluster caps).
    NotifyFriends {
        account: AccountId,
        event: String,
        data: String,
    },
    /// `account` becomes friends with `with`: the second side of an accepted request, a mutual
    /// request or a mutual contact match.
    BecomeFriends { account: AccountId, with: AccountId },
    /// `account` ends its friendship with `other`: the second side of ending one.
    DropFriend {
        account: AccountId,
        other: AccountId,
    },
    /// A community's dynamic reaches each of these bound groups as `group.dynamic`.
    PushDynamic {
        dynamic: DynamicRecord,
        groups: Vec<GroupId>,
    },
}

/// One stored step, with the id it is stored and settled under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Time-ordered: 13 hex digits of the creation time in ms, then random hex (32 in all),
    /// so steps sort oldest first.
    pub step_id: String,
    pub created_ms: u64,
    /// Runs so far that did not finish it (0 until a run fails or is cut short).
    #[serde(default)]
    pub attempts: u32,
    #[serde(flatten)]
    pub step: Step,
}

impl StepRecord {
    /// A new step, created now.
    pub fn new(step: Step) -> Self {
        let created_ms = now_ms();
        let mut step_id = format!("{created_ms:013x}");
        step_id.push_str(&new_id()[..19]);
        StepRecord {
            step_id,
            created_ms,
            attempts: 0,
            step,
        }
    }

    /// The same step with only `step` left to do, one attempt more.
    pub fn rest(&self, step: Step) -> Self {
        StepRecord {
            step_id: self.step_id.clone(),
            created_ms: self.created_ms,
            attempts: self.attempts.saturating_add(1),
            step,
        }
    }

    /// A short name of its kind, for logs.
    pub fn kind(&self) -> &'static str {
        match self.step {
            Step::Notify { .. } => "notify",
            Step::NotifyFriends { .. } => "notify_friends",
            Step::BecomeFriends { .. } => "become_friends",
            Step::DropFriend { .. } => "drop_friend",
            Step::PushDynamic { .. } => "push_dynamic",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_age_and_records_round_trip() {
        let a = StepRecord::new(Step::DropFriend {
            account: "a".into(),
            other: "b".into(),
        });
        assert_eq!(a.step_id.len(), 32);
        let mut later = a.clone();
        later.created_ms += 1;
        later.step_id = format!("{:013x}{}", later.created_ms, &a.step_id[13..]);
        assert!(later.step_id > a.step_id);
        let json = serde_json::to_string(&a).unwrap();
        assert!(json.contains(r#""step":"drop_friend""#), "{json}");
        assert_eq!(serde_json::from_str::<StepRecord>(&json).unwrap(), a);
        assert_eq!(a.rest(a.step.clone()).attempts, 1);
    }
}
