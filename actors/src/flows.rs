//! Operations that involve more than one actor. They are orchestrated here, from outside the
//! actors, so that no actor ever waits for another inside its turn (two actors asking each
//! other at once would deadlock). Each step is one durable actor turn; the order is chosen so
//! that the account whose state is the source of truth writes first.

use std::sync::Arc;

use futures_util::{StreamExt, stream};

use crate::error::{Error, Result};
use crate::event::EventType;
use crate::messages::*;
use crate::model::{AccountId, AccountRecord, Claim};
use crate::registry::Registry;
use crate::store::SubscriberWrite;

/// How many friends' actors a fan-out talks to at once. Each friend's append is a durable
/// write; with many in flight, one group commit (one fsync) covers hundreds of them instead of
/// the fan-out waiting for one sync per small batch.
const FANOUT_CONCURRENCY: usize = 1024;

/// Most items one page of a list holds.
pub const MAX_PAGE: usize = 200;

/// A page of a list, newest first.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// The status of a friend request once sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    Pending,
    Friends,
}

/// Orders `(since, id)` newest first and cuts the page after the cursor `before`
/// (`"{since}.{id}"`, as returned in `next`).
pub fn paginate(
    mut entries: Vec<(u64, String)>,
    limit: usize,
    before: Option<&str>,
) -> Result<(Vec<String>, Option<String>)> {
    entries.sort_by(|a, b| b.cmp(a));
    let start = match before {
        None => 0,
        Some(cursor) => {
            let (since, id) = cursor
                .split_once('.')
                .and_then(|(s, id)| s.parse::<u64>().ok().map(|s| (s, id.to_owned())))
                .ok_or_else(|| Error::invalid("before is not a cursor this list returned"))?;
            let key = (since, id);
            entries.partition_point(|e| *e >= key)
        }
    };
    let page: Vec<(u64, String)> = entries.iter().skip(start).take(limit).cloned().collect();
    let next = if start + page.len() < entries.len() {
        page.last().map(|(since, id)| format!("{since}.{id}"))
    } else {
        None
    };
    Ok((page.into_iter().map(|(_, id)| id).collect(), next))
}

impl Registry {
    /// Stores a new account with its login claims and first token, atomically.
    pub async fn create_account(&self, record: AccountRecord, token_hash: [u8; 32]) -> Result<()> {
        let mut write = SubscriberWrite::new(&record.account_id);
        write.claims = record.login_claims();
        write.tokens.push(token_hash);
        write.record = Some(record);
        self.store().commit(write).await.map_err(|e| match e {
            crate::error::StoreError::ClaimTaken(key) => {
                let claim = Claim(key);
                Error::conflict(claim.taken_code(), format!("{} is already taken", claim.0))
            }
            other => Error::Storage(other),
        })
    }

    /// `from` asks `to` to be friends.
    pub async fn request_friend(&self, from: &str, to: &str) -> Result<RequestStatus> {
        if from == to {
            return Err(Error::invalid("you cannot befriend yourself"));
        }
        // The recipient must exist before anything is written.
        self.subscriber(to).await?;
        let outcome = self
            .ask(from, StartFriendRequest { to: to.to_owned() })
            .await?;
        match outcome {
            RequestOutcome::Pending(view) => {
                self.ask(to, ReceiveFriendRequest { from: view }).await?;
                Ok(RequestStatus::Pending)
            }
            RequestOutcome::Mutual => {
                self.ask(
                    to,
                    BecomeFriends {
                        with: from.to_owned(),
                    },
                )
                .await?;
                Ok(RequestStatus::Friends)
            }
        }
    }

    /// `me` accepts the pending request from `from`.
    pub async fn accept_friend(&self, me: &str, from: &str) -> Result<()> {
        self.ask(
            me,
            AcceptFriend {
                from: from.to_owned(),
            },
        )
        .await?;
        self.ask(
            from,
            BecomeFriends {
                with: me.to_owned(),
            },
        )
        .await
    }

    /// `me` ends the friendship with `other`; both get `friend.removed`.
    pub async fn remove_friend(&self, me: &str, other: &str) -> Result<()> {
        self.ask(
            me,
            Unfriend {
                other: other.to_owned(),
            },
        )
        .await?;
        match self
            .ask(
                other,
                DropFriend {
                    other: me.to_owned(),
                },
            )
            .await
        {
            Err(Error::NotFound(_)) => Ok(()),
            other => other,
        }
    }

    /// `me` uploaded contacts that normalise to `claims`. Answers every other account they
    /// match; where the match is mutual the two become friends at once.
    pub async fn match_contacts(&self, me: &str, claims: Vec<Claim>) -> Result<Vec<AccountId>> {
        let mut matched = Vec::new();
        for claim in &claims {
            if let Some(id) = self.store().find_claim(claim).await?
                && id != me
                && !matched.contains(&id)
            {
                matched.push(id);
            }
        }
        let candidates = self
            .ask(
                me,
                RecordMatches {
                    matched: matched.clone(),
                },
            )
            .await?;
        for other in candidates {
            if self
                .ask(
                    &other,
                    MatchedBy {
                        other: me.to_owned(),
                    },
                )
                .await?
            {
                self.ask(me, BecomeFriends { with: other }).await?;
            }
        }
        Ok(matched)
    }

    /// Applies a profile patch and, once it is durable, appends `profile.updated` to every
    /// friend's log and pushes it to their devices. Answers the new profile version after
    /// every friend's copy is durable too, so an acknowledged change reaches offline devices.
    pub async fn update_profile(
        &self,
        me: &str,
        changes: std::collections::BTreeMap<String, Option<String>>,
    ) -> Result<u64> {
        let changed = self.ask(me, UpdateProfile { changes }).await?;
        if let Some(data) = changed.data {
            self.notify_all(changed.friends, EventType::PROFILE_UPDATED, data)
                .await;
        }
        Ok(changed.profile_version)
    }

    /// Appends one event (data encoded once) to each account's log, a bounded number at a
    /// time. A recipient that fails is logged and skipped: one broken account must not stop
    /// the others' delivery.
    pub async fn notify_all(&self, to: Vec<AccountId>, kind: EventType, data: Arc<str>) {
        stream::iter(to)
            .map(|id| {
                let data = data.clone();
                async move {
                    if let Err(e) = self.ask(&id, Notify { kind, data }).await {
                        tracing::warn!(account = %id, kind = kind.0, error = %e, "event not delivered");
                    }
                }
            })
            .buffer_unordered(FANOUT_CONCURRENCY)
            .collect::<()>()
            .await;
    }

    /// One page of `me`'s friends, incoming requests or suggestions, with their profiles
    /// (email/phone only where they are friends).
    pub async fn list_related(
        &self,
        me: &str,
        relation: Relation,
        limit: usize,
        before: Option<&str>,
    ) -> Result<Page<AccountView>> {
        let entries = self.ask(me, ListRelation { relation }).await?;
        let (ids, next) = paginate(entries, limit.clamp(1, MAX_PAGE), before)?;
        let mut items = Vec::with_capacity(ids.len());
        for id in ids {
            // Listings read the durable record directly: no need to wake every friend's actor.
            if let Some(rec) = self.store().load_account(&id).await? {
                items.push(AccountView {
                    account_id: rec.account_id.clone(),
                    profile: rec.visible_profile(relation == Relation::Friends),
                    profile_version: rec.profile_version,
                });
            }
        }
        Ok(Page { items, next })
    }
}

#[cfg(test)]
mod tests {
    use super::paginate;

    #[test]
    fn pages_newest_first_with_cursor() {
        let entries: Vec<(u64, String)> = (1..=5).map(|i| (i, format!("id{i}"))).collect();
        let (first, next) = paginate(entries.clone(), 2, None).unwrap_or_default();
        assert_eq!(first, vec!["id5", "id4"]);
        let (second, next2) = paginate(entries.clone(), 2, next.as_deref()).unwrap_or_default();
        assert_eq!(second, vec!["id3", "id2"]);
        let (third, next3) = paginate(entries.clone(), 2, next2.as_deref()).unwrap_or_default();
        assert_eq!(third, vec!["id1"]);
        assert_eq!(next3, None);
        assert!(paginate(entries, 2, Some("garbage")).is_err());
    }
}
