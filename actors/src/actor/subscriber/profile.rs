//! The account's record: reading it as others and as itself, profile changes.

use std::collections::BTreeMap;

use actix::prelude::*;
use serde::{Deserialize, Serialize};

use super::Subscriber;
use crate::actor::{Durable, Turn, ready};
use crate::error::Result;
use crate::model::limits::check_profile_size;
use crate::model::{AccountId, AccountView, LinkView, MeView, StepRecord, login_claims_of};
use crate::push::event::{EventType, encode_data};

/// Read the account as `viewer` may see it (email/phone only for itself and friends).
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<AccountView>")]
pub struct GetAccount {
    pub viewer: Option<AccountId>,
}

/// Read the account's own view, links included.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<MeView>")]
pub struct GetMe;

/// Apply a profile patch (`None` clears a field), checked and normalised by
/// [`crate::model::limits::normalize_patch`]. Emits `profile.updated` to the account's own
/// devices; answers the new profile version and, if anything changed, the notice for the
/// caller to fan out to friends.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<(u64, Option<StepRecord>)>")]
pub struct UpdateProfile {
    pub changes: BTreeMap<String, Option<String>>,
}

impl Handler<GetAccount> for Subscriber {
    type Result = Result<AccountView>;
    fn handle(&mut self, msg: GetAccount, _: &mut Self::Context) -> Self::Result {
        self.touch();
        let close = msg
            .viewer
            .as_deref()
            .is_some_and(|v| v == self.id() || self.friends.contains_key(v));
        Ok(self.view(close))
    }
}

impl Handler<GetMe> for Subscriber {
    type Result = Result<MeView>;
    fn handle(&mut self, _: GetMe, _: &mut Self::Context) -> Self::Result {
        crate::faults::panic_at(crate::faults::Point::ACTOR_PANIC);
        self.touch();
        let provable = self.provable();
        let mut platforms: Vec<LinkView> = self
            .links
            .values()
            .map(|l| LinkView::of(l, provable))
            .collect();
        platforms.sort_by(|a, b| a.link_id.cmp(&b.link_id));
        Ok(MeView {
            account_id: self.record.account_id.clone(),
            profile: self.record.profile.clone(),
            profile_version: self.record.profile_version,
            platforms,
            unverified: self
                .record
                .unverified(provable)
                .into_iter()
                .map(str::to_owned)
                .collect(),
        })
    }
}

impl Handler<UpdateProfile> for Subscriber {
    type Result = Turn<Self, (u64, Option<StepRecord>)>;
    fn handle(&mut self, msg: UpdateProfile, _: &mut Self::Context) -> Self::Result {
        let mut profile = self.record.profile.clone();
        for (name, value) in &msg.changes {
            match value {
                Some(v) => {
                    profile.insert(name.clone(), v.clone());
                }
                None => {
                    profile.remove(name);
                }
            }
        }
        if let Err(e) = check_profile_size(&profile) {
            return ready(Err(e));
        }
        // What actually changed, with normalised values; `null` for cleared fields.
        let mut changes = serde_json::Map::new();
        for name in msg.changes.keys() {
            let (old, new) = (self.record.profile.get(name), profile.get(name));
            if old != new {
                changes.insert(
                    name.clone(),
                    new.map_or(serde_json::Value::Null, |v| v.clone().into()),
                );
            }
        }
        if changes.is_empty() {
            return ready(Ok((self.record.profile_version, None)));
        }
        let old_claims = login_claims_of(&self.record.profile);
        let new_claims = login_claims_of(&profile);
        let mut record = self.record.clone();
        record.profile = profile;
        record.profile_version += 1;
        // A changed email or phone is unproven again.
        record.prune_proofs();
        let version = record.profile_version;

        let mut write = self.write();
        write.claims = new_claims
            .iter()
            .filter(|c| !old_claims.contains(c))
            .cloned()
            .collect();
        write.unclaims = old_claims
            .into_iter()
            .filter(|c| !new_claims.contains(c))
            .collect();
        let data = encode_data(&serde_json::json!({
            "account_id": self.id(),
            "profile_version": version,
            "changes": changes,
        }));
        self.push_event(&mut write, EventType::PROFILE_UPDATED, &data);
        write.record = Some(record.clone());
        let step = self.tell_friends(EventType::PROFILE_UPDATED, &data);
        write.steps.extend(step.clone());
        self.persist(write, move |act| {
            act.record = record;
            (version, step)
        })
    }
}
