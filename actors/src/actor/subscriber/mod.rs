//! The Subscriber actor: one per account. It owns the account's record, its edges (friends,
//! incoming requests, contact matches, platform links), its event log position and its live
//! devices. Nothing else changes them; everyone else sends it a message.
//!
//! By concern, each file with its messages beside their handlers: [`profile`] (the record,
//! views, tokens), [`links`] (platform links), [`friends`] (requests, friendships, contact
//! matches, relation lists), [`activities`] (posting, release status, who may read) and
//! [`devices`] (attaching devices, the event log).
//!
//! Every mutating handler builds one [`SubscriberWrite`] and persists it
//! ([`Durable::persist`]): the change is durable before memory, `seq` and the devices see it.

pub mod activities;
pub mod devices;
pub mod friends;
pub mod links;
pub mod profile;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::{Change, Durable, Life};
use crate::error::StoreError;
use crate::model::{AccountId, AccountRecord, AccountView, LinkRecord};
use crate::push::event::{EventType, StoredEvent, encode_data, frame_with_data};
use crate::store::{EdgeKind, Store, SubscriberSnapshot, SubscriberWrite};

pub use activities::{CanSeeActivities, PostActivity, RecordRelease};
pub use devices::{Attach, Detach, Notify, ReadEvents};
pub use friends::{
    AcceptFriend, BecomeFriends, DropFriend, ListRelation, MatchedBy, ReceiveFriendRequest,
    RecordMatches, RequestOutcome, StartFriendRequest, Unfriend,
};
pub use links::{LinkPlatform, UnlinkPlatform};
pub use profile::{AddToken, GetAccount, GetMe, UpdateProfile};

/// An event for the account's friends, encoded once: the caller appends it to each friend's
/// log once the account's own write is durable.
#[derive(Debug, Clone)]
pub struct Notice {
    pub friends: Vec<AccountId>,
    pub data: Arc<str>,
}

/// The actor.
pub struct Subscriber {
    record: AccountRecord,
    /// Friend -> since (ms).
    friends: HashMap<AccountId, u64>,
    /// Requester -> requested at (ms).
    requests_in: HashMap<AccountId, u64>,
    /// Account this one's contacts matched -> matched at (ms).
    matched: HashMap<AccountId, u64>,
    links: BTreeMap<String, LinkRecord>,
    /// The newest event's seq.
    seq: u64,
    life: Life,
}

impl Subscriber {
    /// Builds the actor from what the store holds.
    pub(crate) fn new(snapshot: SubscriberSnapshot, life: Life) -> Self {
        let mut me = Subscriber {
            record: snapshot.record,
            friends: HashMap::new(),
            requests_in: HashMap::new(),
            matched: HashMap::new(),
            links: BTreeMap::new(),
            seq: snapshot.last_seq,
            life,
        };
        for edge in snapshot.edges {
            let since = decode_since(&edge.value);
            match edge.kind {
                EdgeKind::Friend => {
                    me.friends.insert(edge.other, since);
                }
                EdgeKind::RequestIn => {
                    me.requests_in.insert(edge.other, since);
                }
                EdgeKind::Matched => {
                    me.matched.insert(edge.other, since);
                }
                EdgeKind::Link => match serde_json::from_slice::<LinkRecord>(&edge.value) {
                    Ok(link) => {
                        me.links.insert(link.link_id.clone(), link);
                    }
                    Err(e) => tracing::error!(
                        account = %me.record.account_id, link = %edge.other, error = %e,
                        "skipping undecodable link record"
                    ),
                },
            }
        }
        me
    }

    fn view(&self, viewer_is_close: bool) -> AccountView {
        AccountView::of(&self.record, viewer_is_close)
    }

    /// An empty change set of this account.
    fn write(&self) -> SubscriberWrite {
        SubscriberWrite::new(&self.record.account_id)
    }

    /// Adds an event to `write`, numbering it after the events already in it.
    fn push_event(&self, write: &mut SubscriberWrite, kind: EventType, data: &str) {
        let seq = self.seq + write.events.len() as u64 + 1;
        write.events.push(frame_with_data(kind, seq, data));
    }

    fn push_event_json(
        &self,
        write: &mut SubscriberWrite,
        kind: EventType,
        data: serde_json::Value,
    ) {
        let data = encode_data(&data);
        self.push_event(write, kind, &data);
    }

    /// The friends to tell about `data`.
    fn notice(&self, data: Arc<str>) -> Notice {
        Notice {
            friends: self.friends.keys().cloned().collect(),
            data,
        }
    }
}

/// A stored relation value is the start time in ms (big-endian); anything else reads as 0.
fn decode_since(value: &[u8]) -> u64 {
    value.try_into().map(u64::from_be_bytes).unwrap_or_default()
}

impl Change for SubscriberWrite {
    fn events(&self) -> &[StoredEvent] {
        &self.events
    }

    fn commit(self, store: Arc<dyn Store>) -> BoxFuture<'static, Result<(), StoreError>> {
        Box::pin(async move {
            if self.is_empty() {
                Ok(())
            } else {
                store.commit(self).await
            }
        })
    }
}

impl Durable for Subscriber {
    type Change = SubscriberWrite;
    const KIND: &'static str = "subscriber";

    fn life(&self) -> &Life {
        &self.life
    }

    fn life_mut(&mut self) -> &mut Life {
        &mut self.life
    }

    fn id(&self) -> &str {
        &self.record.account_id
    }

    /// Advances `seq` and pushes the events to every device of this account.
    fn published(&mut self, events: &[StoredEvent]) {
        if let Some(last) = events.last() {
            self.seq = last.seq;
            self.life.env.hub.push(&self.record.account_id, events);
        }
    }

    /// Not while a device is connected.
    fn may_passivate(&self) -> bool {
        self.life.env.hub.online(self.id()) == 0
    }
}

durable_actor!(Subscriber);
