//! Friends: requests, accepting, ending, contact matching and the relation lists. Each side
//! is its own actor's turn; the side whose state decides writes first, with the step that
//! brings the other side along (`ops::steps`).

use super::Chorus;
use crate::actor::place::ActorKind;
use crate::actor::subscriber::{
    AcceptFriend, DeclineFriend, ListRelation, MatchedBy, ReceiveFriendRequest, RecordMatches,
    RequestOutcome, StartFriendRequest, Unfriend, Vouch,
};
use crate::error::{Error, Result};
use crate::model::identity::{Weight, weigh};
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
    /// match; where the match is mutual, and each side matched an identifier of the other
    /// that counts (`crate::model::identity`), the two become friends at once.
    pub async fn match_contacts(&self, me: &str, claims: Vec<Claim>) -> Result<Vec<AccountId>> {
        // Each matched account (in the order first matched) with the claims that matched it.
        let mut found: Vec<(AccountId, Vec<Claim>)> = Vec::new();
        for claim in claims {
            let Some(id) = self.store().find_claim(&claim).await? else {
                continue;
            };
            if id == me {
                continue;
            }
            match found.iter_mut().find(|(other, _)| *other == id) {
                Some((_, of_it)) => of_it.push(claim),
                None => found.push((id, vec![claim])),
            }
        }
        let mut counting = Vec::new();
        for (id, of_it) in &found {
            if self.match_counts(id, of_it).await? {
                counting.push(id.clone());
            }
        }
        let matched: Vec<AccountId> = found.into_iter().map(|(id, _)| id).collect();
        let candidates = self
            .directory
            .ask(
                me,
                RecordMatches {
                    matched: matched.clone(),
                    counting: counting.clone(),
                },
            )
            .await?;
        for other in candidates.into_iter().filter(|c| counting.contains(c)) {
            // A mutual match that counts: `other` becomes a friend, with the step that makes
            // `me` one.
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

    /// Does a match on any of `claims`, held by `holder`, count? Known from a claim's kind
    /// where it can be (a phone here; a webhook handle never); otherwise the holder says,
    /// from its proofs.
    async fn match_counts(&self, holder: &str, claims: &[Claim]) -> Result<bool> {
        let provable = self.directory.env().config.verification.provable();
        let mut ask = Vec::new();
        for claim in claims {
            match weigh(claim, provable) {
                Weight::Counts => return Ok(true),
                Weight::Label => {}
                Weight::AskHolder => ask.push(claim.clone()),
            }
        }
        if ask.is_empty() {
            return Ok(false);
        }
        self.directory.ask(holder, Vouch { claims: ask }).await
    }

    /// One page of `me`'s friends, incoming requests or suggestions, with their profiles
    /// (email/phone only where they are friends), and for friends whether they are online.
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
                let view = AccountView::of(&rec, relation == Relation::Friends);
                items.push(match relation {
                    Relation::Friends => view.with_presence(self.devices_online(id)),
                    _ => view,
                });
            }
        }
        Ok(Page {
            items,
            next: ids.next,
        })
    }
}
