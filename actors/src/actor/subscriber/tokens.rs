//! The account's bearer tokens: a login adds one (dropping the expired ones and, past the
//! cap, the oldest), a logout ends one. Each token is an index entry (its hash -> this
//! account, for lookups that need no actor) and an edge of the account, always written
//! together ([`SubscriberWrite::grant_token`](crate::store::SubscriberWrite::grant_token)),
//! so the cap is enforced here, by the one actor that owns the account (in a cluster, on its
//! owner), and an expired token is refused wherever it is looked up
//! ([`crate::model::Caps::token_alive`]).

use actix::prelude::*;
use serde::{Deserialize, Serialize};

use super::Subscriber;
use crate::actor::{Durable, Turn};
use crate::error::Result;
use crate::model::now_ms;
use crate::store::TokenSelector;

/// Store a new bearer token's hash for the account (login). Expired tokens go in the same
/// write, and so do the oldest live ones past [`crate::model::Caps::tokens`].
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<()>")]
pub struct AddToken {
    pub hash: [u8; 32],
}

/// End the token whose SHA-256 starts with `selector` (logout). Ending one that is not
/// there changes nothing and succeeds.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<()>")]
pub struct RevokeToken {
    pub selector: [u8; 16],
}

impl Subscriber {
    /// The tokens a new one pushes out at `now`: every expired one, then the oldest live
    /// ones until the new one fits under the cap.
    fn tokens_to_drop(&self, now: u64) -> Vec<TokenSelector> {
        let caps = &self.life.env.config.caps;
        let (mut live, mut dead): (Vec<_>, Vec<_>) = self
            .tokens
            .iter()
            .map(|(selector, issued)| (*issued, *selector))
            .partition(|(issued, _)| caps.token_alive(*issued, now));
        live.sort_by_key(|(issued, selector)| (*issued, selector.0));
        let over = (live.len() + 1).saturating_sub(caps.tokens.max(1));
        dead.extend(live.into_iter().take(over));
        dead.into_iter().map(|(_, selector)| selector).collect()
    }
}

impl Handler<AddToken> for Subscriber {
    type Result = Turn<Self, ()>;
    fn handle(&mut self, msg: AddToken, _: &mut Self::Context) -> Self::Result {
        let now = now_ms();
        let dropped = self.tokens_to_drop(now);
        let mut write = self.write();
        for selector in &dropped {
            write.revoke_token(*selector);
        }
        write.grant_token(msg.hash, now);
        let added = TokenSelector::of(&msg.hash);
        self.persist(write, move |act| {
            for selector in dropped {
                act.tokens.remove(&selector);
            }
            act.tokens.insert(added, now);
        })
    }
}

impl Handler<RevokeToken> for Subscriber {
    type Result = Turn<Self, ()>;
    fn handle(&mut self, msg: RevokeToken, _: &mut Self::Context) -> Self::Result {
        let selector = TokenSelector(msg.selector);
        let mut write = self.write();
        // Written even for a token this actor does not know, so its index entry goes too.
        write.revoke_token(selector);
        self.persist(write, move |act| {
            act.tokens.remove(&selector);
        })
    }
}
