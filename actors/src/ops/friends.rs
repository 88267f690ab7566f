//! Friends: requests, accepting, ending, contact matching and the relation lists. Each side
//! is its own actor's turn; the side whose state decides writes first, with the step that
//! brings the other side along (`ops::steps`).

use super::Chorus;
use crate::actor::place::ActorKind;
use crate::actor::subscriber::{
    AcceptFriend, DeclineFriend, ListRelation, MatchedBy, ReceiveFriendRequest, RecordMatches,
    RequestOutcome, StartFriendRequest, Unfriend,
};
use crate::error::{Error, Result};
use crate::model::{AccountId, AccountView, Claim, Page, PageRequest, Relation, RequestStatus};

impl Chorus {
    /// `from` asks `to` to be friends.
    pub async fn request_friend(&self, from: &str, to: &str) -> Result<RequestStatus> {
        if from == to {
            return Err(Error::invalid("you cannot befriend yourself"));
        }
        // The recipient must exist before anything is written.
        self.directory.exists(ActorKind::Account, to).await?;
        let outcome = self
            .directory
            .ask(from, StartFriendRequest { to: to.to_owned() })
            .await?;
        match outcome {
            RequestOutcome::Pending(view) => {
                self.directory
                    .ask(to, ReceiveFriendRequest { from: view })
                    .await?;
                Ok(RequestStatus::Pending)
            }
            RequestOutcome::Mutual(step) => {
                self.carry(step).await;
                Ok(RequestStatus::Friends)
            }
        }
    }

    /// `me` accepts the pending request from `from`: `me`'s side and the step that makes
    /// `from`'s side follow are one write. Accepting again once friends succeeds.
    pub async fn accept_friend(&self, me: &str, from: &str) -> Result<()> {
        let step = self
            .directory
            .ask(
                me,
                AcceptFriend {
                    from: from.to_owned(),
                },
            )
            .await?;
        self.carry(step).await;
        Ok(())
    }

    /// `me` declines the pending request from `from` (the requester is not told).
    pub async fn decline_friend(&self, me: &str, from: &str) -> Result<()> {
        self.directory
            .ask(
                me,
                DeclineFriend {
                    from: from.to_owned(),
                },
            )
            .await
    }

    /// `me` ends the friendship with `other`; both get `friend.removed` (`other`'s side is a
    /// step stored with `me`'s).
    pub async fn remove_friend(&self, me: &str, other: &str) -> Result<()> {
        let step = self
            .directory
            .ask(
                me,
                Unfriend {
                    other: other.to_owned(),
                },
            )
            .await?;
        self.carry(step).await;
        Ok(())
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
            .directory
            .ask(
                me,
                RecordMatches {
                    matched: matched.clone(),
                },
            )
            .await?;
        for other in candidates {
            // A mutual match: `other` becomes a friend, with the step that makes `me` one.
            let step = self
                .directory
                .ask(
                    &other,
                    MatchedBy {
                        other: me.to_owned(),
                    },
                )
                .await?;
            self.carry(step).await;
        }
        Ok(matched)
    }

    /// One page of `me`'s friends, incoming requests or suggestions, with their profiles
    /// (email/phone only where they are friends).
    pub async fn list_related(
        &self,
        me: &str,
        relation: Relation,
        page: &PageRequest,
    ) -> Result<Page<AccountView>> {
        let positions = self.directory.ask(me, ListRelation { relation }).await?;
        let ids = Page::of_positions(positions, page);
        let mut items = Vec::with_capacity(ids.items.len());
        for id in &ids.items {
            // Listings read the durable record directly: no need to wake every friend's actor.
            if let Some(rec) = self.store().load_account(id).await? {
                items.push(AccountView::of(&rec, relation == Relation::Friends));
            }
        }
        Ok(Page {
            items,
            next: ids.next,
        })
    }
}
