//! Friendships: requests (either side), accepting, ending, contact matches (a mutual match
//! makes friends at once) and the relation lists. Each side is its own actor's turn; the
//! operations in `crate::ops::friends` drive both sides. The side that decides writes first,
//! and in the same write the step that brings the other side along
//! ([`Step::BecomeFriends`], [`Step::DropFriend`]): it answers that step for the caller to
//! carry out, and a restart carries it out if the caller could not.

use std::collections::HashMap;

use actix::prelude::*;
use serde::{Deserialize, Serialize};

use super::{AccountChange, Subscriber};
use crate::actor::{Durable, Turn, ready};
use crate::error::{Error, Result};
use crate::model::caps::limit_reached;
use crate::model::{AccountId, AccountView, FeedPos, Relation, Step, StepRecord, now_ms};
use crate::push::event::EventType;
use crate::store::{Edge, EdgeChange, EdgeKind};

/// The requester's side of a friend request (to another account): checks it may be sent. If
/// the other account had already asked us, we become friends here and answer
/// [`RequestOutcome::Mutual`] with the step that makes the other side a friend too.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<RequestOutcome>")]
pub struct StartFriendRequest {
    pub to: AccountId,
}

/// Outcome of [`StartFriendRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum RequestOutcome {
    /// Hand the request to the recipient; carries the requester's public view.
    Pending(AccountView),
    /// The recipient had asked first: we are friends now; the step (stored with this side,
    /// so always there) makes the recipient a friend too.
    Mutual(Option<StepRecord>),
}

/// The recipient's side: record a pending request and emit `friend.requested`.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<()>")]
pub struct ReceiveFriendRequest {
    pub from: AccountView,
}

/// The recipient declines a pending request from `from`: it is dropped, and the requester is
/// not told (it may ask again). `NotFound` if there is none.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<()>")]
pub struct DeclineFriend {
    pub from: AccountId,
}

/// The recipient accepts a pending request from `from`: becomes friends, emits `friend.added`.
/// Answers the step that makes `from` a friend too; accepting again once friends answers
/// `None` (a retry after a lost answer succeeds, and the stored step finishes the rest).
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<Option<StepRecord>>")]
pub struct AcceptFriend {
    pub from: AccountId,
}

/// The other side of an accepted request or a mutual match: become friends (idempotent).
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<()>")]
pub struct BecomeFriends {
    pub with: AccountId,
}

/// End a friendship from this side; `NotFound` if there is none. Answers the step that ends
/// it on the other side.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<Option<StepRecord>>")]
pub struct Unfriend {
    pub other: AccountId,
}

/// The other side of [`Unfriend`] (idempotent; answers `None`).
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<Option<StepRecord>>")]
pub struct DropFriend {
    pub other: AccountId,
}

/// Remember which accounts this account's uploaded contacts matched. Answers those that are
/// not friends already (suggestions, and candidates for a mutual match).
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<Vec<AccountId>>")]
pub struct RecordMatches {
    pub matched: Vec<AccountId>,
    /// Those of `matched` matched by an identifier that counts (`crate::model::identity`).
    /// A match already stored as not counting is upgraded; one that counts stays so. Absent
    /// (a node of an older build): none counts.
    #[serde(default)]
    pub counting: Vec<AccountId>,
}

/// `other`'s contacts matched this account by an identifier that counts. If this account
/// had matched `other` by one that counts too, they become friends here and the answer is
/// the step that makes `other` a friend too (`None`: no mutual match that counts, or
/// friends already).
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<Option<StepRecord>>")]
pub struct MatchedBy {
    pub other: AccountId,
}

/// List related accounts with the time the relation began, for paging newest first.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<Vec<FeedPos>>")]
pub struct ListRelation {
    pub relation: Relation,
}

/// A contact match as stored: the time it was made (8 bytes, big-endian), then 1 if it was
/// made by an identifier that counts. A match stored before that byte existed reads as not
/// counting: it was weighed by no rule, and uploading the contacts again weighs it.
fn match_edge(other: &str, since: u64, counts: bool) -> EdgeChange {
    let mut value = since.to_be_bytes().to_vec();
    value.push(u8::from(counts));
    EdgeChange::Put(Edge {
        kind: EdgeKind::Matched,
        other: other.to_owned(),
        value,
    })
}

/// Does a stored contact match count ([`match_edge`])?
pub(super) fn match_counts(value: &[u8]) -> bool {
    value.get(8) == Some(&1)
}

impl Subscriber {
    fn friend_edge(kind: EdgeKind, other: &str, since: u64) -> EdgeChange {
        EdgeChange::Put(Edge {
            kind,
            other: other.to_owned(),
            value: since.to_be_bytes().to_vec(),
        })
    }

    /// The write that makes `other` a friend (and clears a pending request from it).
    fn befriend_write(&self, other: &str, now: u64) -> AccountChange {
        let mut w = self.write();
        w.edges
            .push(Self::friend_edge(EdgeKind::Friend, other, now));
        if self.requests_in.contains_key(other) {
            w.edges.push(EdgeChange::Delete {
                kind: EdgeKind::RequestIn,
                other: other.to_owned(),
            });
        }
        self.push_event_json(
            &mut w,
            EventType::FRIEND_ADDED,
            serde_json::json!({ "account_id": other }),
        );
        w
    }

    /// Makes `other` a friend; with `tell`, the same write stores the step that makes this
    /// account `other`'s friend too, and the turn answers it once durable.
    fn befriend<R: 'static>(
        &mut self,
        other: AccountId,
        tell: bool,
        out: impl FnOnce(Option<StepRecord>) -> R + 'static,
    ) -> Turn<Self, R> {
        let now = now_ms();
        let mut write = self.befriend_write(&other, now);
        let step = tell.then(|| {
            StepRecord::new(Step::BecomeFriends {
                account: other.clone(),
                with: self.id().to_owned(),
            })
        });
        write.steps.extend(step.clone());
        self.persist(write, move |act| {
            act.requests_in.remove(&other);
            act.friends.insert(other, now);
            out(step)
        })
    }

    /// Ends the friendship with `other`; with `tell`, the same write stores the step that
    /// ends it on `other`'s side, and the turn answers it.
    fn end_friendship(&mut self, other: AccountId, tell: bool) -> Turn<Self, Option<StepRecord>> {
        let mut write = self.write();
        let step = tell.then(|| {
            StepRecord::new(Step::DropFriend {
                account: other.clone(),
                other: self.id().to_owned(),
            })
        });
        write.steps.extend(step.clone());
        write.edges.push(EdgeChange::Delete {
            kind: EdgeKind::Friend,
            other: other.clone(),
        });
        self.push_event_json(
            &mut write,
            EventType::FRIEND_REMOVED,
            serde_json::json!({ "account_id": &other }),
        );
        self.persist(write, move |act| {
            act.friends.remove(&other);
            step
        })
    }
}

impl Handler<StartFriendRequest> for Subscriber {
    type Result = Turn<Self, RequestOutcome>;
    fn handle(&mut self, msg: StartFriendRequest, _: &mut Self::Context) -> Self::Result {
        if self.friends.contains_key(&msg.to) {
            return ready(Err(Error::conflict(
                "already_friends",
                "you are friends already",
            )));
        }
        if self.requests_in.contains_key(&msg.to) {
            // They asked first: this request accepts theirs.
            return self.befriend(msg.to, true, RequestOutcome::Mutual);
        }
        self.touch();
        ready(Ok(RequestOutcome::Pending(self.view(false))))
    }
}

impl Handler<ReceiveFriendRequest> for Subscriber {
    type Result = Turn<Self, ()>;
    fn handle(&mut self, msg: ReceiveFriendRequest, _: &mut Self::Context) -> Self::Result {
        let from = msg.from.account_id.clone();
        if self.friends.contains_key(&from) {
            return ready(Err(Error::conflict(
                "already_friends",
                "you are friends already",
            )));
        }
        if self.requests_in.contains_key(&from) {
            return ready(Err(Error::conflict(
                "already_requested",
                "a friend request is already pending",
            )));
        }
        let cap = self.life.env.config.caps.friend_requests;
        if self.requests_in.len() >= cap {
            return ready(Err(limit_reached(
                "this account has too many pending friend requests",
                cap,
            )));
        }
        let now = now_ms();
        let mut write = self.write();
        write
            .edges
            .push(Self::friend_edge(EdgeKind::RequestIn, &from, now));
        self.push_event_json(
            &mut write,
            EventType::FRIEND_REQUESTED,
            serde_json::json!({ "account_id": &from, "profile": &msg.from.profile }),
        );
        self.persist(write, move |act| {
            act.requests_in.insert(from, now);
        })
    }
}

impl Handler<AcceptFriend> for Subscriber {
    type Result = Turn<Self, Option<StepRecord>>;
    fn handle(&mut self, msg: AcceptFriend, _: &mut Self::Context) -> Self::Result {
        if self.friends.contains_key(&msg.from) {
            // Accepted before (the answer may have been lost): nothing more to do here.
            self.touch();
            return ready(Ok(None));
        }
        if !self.requests_in.contains_key(&msg.from) {
            return ready(Err(Error::NotFound("friend request")));
        }
        self.befriend(msg.from, true, |step| step)
    }
}

impl Handler<DeclineFriend> for Subscriber {
    type Result = Turn<Self, ()>;
    fn handle(&mut self, msg: DeclineFriend, _: &mut Self::Context) -> Self::Result {
        if !self.requests_in.contains_key(&msg.from) {
            return ready(Err(Error::NotFound("friend request")));
        }
        let mut write = self.write();
        write.edges.push(EdgeChange::Delete {
            kind: EdgeKind::RequestIn,
            other: msg.from.clone(),
        });
        self.persist(write, move |act| {
            act.requests_in.remove(&msg.from);
        })
    }
}

impl Handler<BecomeFriends> for Subscriber {
    type Result = Turn<Self, ()>;
    fn handle(&mut self, msg: BecomeFriends, _: &mut Self::Context) -> Self::Result {
        if self.friends.contains_key(&msg.with) {
            return ready(Ok(()));
        }
        self.befriend(msg.with, false, |_| ())
    }
}

impl Handler<Unfriend> for Subscriber {
    type Result = Turn<Self, Option<StepRecord>>;
    fn handle(&mut self, msg: Unfriend, _: &mut Self::Context) -> Self::Result {
        if !self.friends.contains_key(&msg.other) {
            return ready(Err(Error::NotFound("friend")));
        }
        self.end_friendship(msg.other, true)
    }
}

impl Handler<DropFriend> for Subscriber {
    type Result = Turn<Self, Option<StepRecord>>;
    fn handle(&mut self, msg: DropFriend, _: &mut Self::Context) -> Self::Result {
        if !self.friends.contains_key(&msg.other) {
            return ready(Ok(None));
        }
        self.end_friendship(msg.other, false)
    }
}

impl Handler<RecordMatches> for Subscriber {
    type Result = Turn<Self, Vec<AccountId>>;
    fn handle(&mut self, msg: RecordMatches, _: &mut Self::Context) -> Self::Result {
        let now = now_ms();
        let mut candidates: Vec<AccountId> = msg
            .matched
            .into_iter()
            .filter(|id| id != self.id() && !self.friends.contains_key(id))
            .collect();
        candidates.sort();
        candidates.dedup();
        let mut write = self.write();
        // New matches, and matches that count now where they did not: (id, since, counts).
        let changed: Vec<(AccountId, u64, bool)> = candidates
            .iter()
            .filter_map(|id| {
                let counts = msg.counting.contains(id);
                match self.matched.get(id) {
                    None => Some((id.clone(), now, counts)),
                    Some(since) if counts && !self.counted.contains(id) => {
                        Some((id.clone(), *since, true))
                    }
                    Some(_) => None,
                }
            })
            .collect();
        let fresh = changed
            .iter()
            .filter(|(id, _, _)| !self.matched.contains_key(id))
            .count();
        let cap = self.life.env.config.caps.contact_matches;
        if self.matched.len() + fresh > cap {
            return ready(Err(limit_reached(
                "your contacts would match too many accounts",
                cap,
            )));
        }
        for (id, since, counts) in &changed {
            write.edges.push(match_edge(id, *since, *counts));
        }
        self.persist(write, move |act| {
            for (id, since, counts) in changed {
                if counts {
                    act.counted.insert(id.clone());
                }
                act.matched.insert(id, since);
            }
            candidates
        })
    }
}

impl Handler<MatchedBy> for Subscriber {
    type Result = Turn<Self, Option<StepRecord>>;
    fn handle(&mut self, msg: MatchedBy, _: &mut Self::Context) -> Self::Result {
        if self.friends.contains_key(&msg.other) || !self.counted.contains(&msg.other) {
            self.touch();
            return ready(Ok(None));
        }
        self.befriend(msg.other, true, |step| step)
    }
}

impl Handler<ListRelation> for Subscriber {
    type Result = Result<Vec<FeedPos>>;
    fn handle(&mut self, msg: ListRelation, _: &mut Self::Context) -> Self::Result {
        self.touch();
        let positions = |m: &HashMap<AccountId, u64>| -> Vec<FeedPos> {
            m.iter()
                .map(|(id, since)| FeedPos {
                    ms: *since,
                    id: id.clone(),
                })
                .collect()
        };
        Ok(match msg.relation {
            Relation::Friends => positions(&self.friends),
            Relation::IncomingRequests => positions(&self.requests_in),
            Relation::Suggestions => self
                .matched
                .iter()
                .filter(|(id, _)| !self.friends.contains_key(*id))
                .map(|(id, since)| FeedPos {
                    ms: *since,
                    id: id.clone(),
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::subscriber::decode_since;

    #[test]
    fn a_match_stores_whether_it_counts_and_old_ones_do_not() {
        for counts in [false, true] {
            let EdgeChange::Put(edge) = match_edge("b", 1_700_000_000_123, counts) else {
                panic!("a match is a put");
            };
            assert_eq!(edge.kind, EdgeKind::Matched);
            assert_eq!(decode_since(&edge.value), 1_700_000_000_123);
            assert_eq!(match_counts(&edge.value), counts);
        }
        // Written before the flag: 8 bytes of time, weighed by no rule.
        let old = 1_600_000_000_000u64.to_be_bytes();
        assert_eq!(decode_since(&old), 1_600_000_000_000);
        assert!(!match_counts(&old));
    }
}
