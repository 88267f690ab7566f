//! The Subscriber actor: one per account. It owns the account's record, its edges (friends,
//! incoming requests, contact matches, platform links), its event log position and its live
//! devices. Nothing else changes them; everyone else sends it a message.
//!
//! By concern, each file with its messages beside their handlers: [`profile`] (the record,
//! views), [`tokens`] (logins and logouts), [`links`] (platform links), [`friends`] (requests, friendships, contact
//! matches, relation lists), [`activities`] (posting, release status, who may read) and
//! [`devices`] (where the log stands when a device attaches).
//!
//! Every mutating handler builds one [`AccountChange`] (a [`SubscriberWrite`] and the events
//! it appends) and persists it ([`Durable::persist`]): the change is durable before memory and
//! the devices see it. Its events are numbered only once the account's log head is held
//! (`actor::logs`), since a fan-out may have appended to the log since the handler ran.

pub mod activities;
pub mod devices;
pub mod friends;
pub mod links;
pub mod profile;
pub mod proofs;
pub mod tokens;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::env::Env;
use super::logs::LogHead;
use super::place::ActorKind;
use super::{Change, Committed, Durable, Life};
use crate::error::StoreError;
use crate::model::{AccountId, AccountRecord, AccountView, LinkRecord, Provable, Step, StepRecord};
use crate::push::event::{EventType, StoredEvent, encode_data, frame_with_data};
use crate::store::{EdgeKind, SubscriberSnapshot, SubscriberWrite, TokenSelector};

pub use activities::{CanSeeActivities, PostActivity, RecordRelease};
pub use devices::{FriendIds, HeadSeq};
pub use friends::{
    AcceptFriend, BecomeFriends, DeclineFriend, DropFriend, ListRelation, MatchedBy,
    ReceiveFriendRequest, RecordMatches, RequestOutcome, StartFriendRequest, Unfriend,
};
pub use links::{GetLink, LinkPlatform, UnlinkPlatform};
pub use profile::{GetAccount, GetMe, UpdateProfile};
pub use proofs::{ConfirmCode, Confirmed, IssueCode, Issued, Vouch, WithdrawCode};
pub use tokens::{AddToken, RevokeToken};

/// The actor.
pub struct Subscriber {
    record: AccountRecord,
    /// Friend -> since (ms).
    friends: HashMap<AccountId, u64>,
    /// Requester -> requested at (ms).
    requests_in: HashMap<AccountId, u64>,
    /// Account this one's contacts matched -> matched at (ms).
    matched: HashMap<AccountId, u64>,
    /// Those of `matched` matched by an identifier that counts (`model::identity`): only
    /// these take part in a mutual match.
    counted: HashSet<AccountId>,
    links: BTreeMap<String, LinkRecord>,
    /// Live tokens (by selector) -> issued at (ms).
    tokens: HashMap<TokenSelector, u64>,
    /// The account's log head: held while events are numbered, written and pushed.
    log: LogHead,
    life: Life,
}

impl Subscriber {
    /// Builds the actor from what the store holds.
    pub(crate) fn new(snapshot: SubscriberSnapshot, life: Life) -> Self {
        // The head's seq is read from the store under its lock, not taken from the snapshot:
        // a fan-out may have appended since the snapshot was read.
        let log = life.env.logs.head(&snapshot.record.account_id);
        let mut me = Subscriber {
            record: snapshot.record,
            friends: HashMap::new(),
            requests_in: HashMap::new(),
            matched: HashMap::new(),
            counted: HashSet::new(),
            links: BTreeMap::new(),
            tokens: HashMap::new(),
            log,
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
                    if friends::match_counts(&edge.value) {
                        me.counted.insert(edge.other.clone());
                    }
                    me.matched.insert(edge.other, since);
                }
                EdgeKind::Token => match TokenSelector::from_hex(&edge.other) {
                    Some(selector) => {
                        me.tokens.insert(selector, since);
                    }
                    None => tracing::error!(
                        account = %me.record.account_id, "skipping undecodable token edge"
                    ),
                },
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

    /// Which kinds of identifier this server can prove.
    fn provable(&self) -> Provable {
        self.life.env.config.verification.provable()
    }

    fn view(&self, viewer_is_close: bool) -> AccountView {
        AccountView::of(&self.record, viewer_is_close)
    }

    /// An empty change set of this account.
    fn write(&self) -> AccountChange {
        AccountChange {
            write: SubscriberWrite::new(&self.record.account_id),
            events: Vec::new(),
            log: self.log.clone(),
        }
    }

    /// Adds an event to `write`, after the events already in it.
    fn push_event(&self, write: &mut AccountChange, kind: EventType, data: &Arc<str>) {
        write.events.push((kind, data.clone()));
    }

    fn push_event_json(&self, write: &mut AccountChange, kind: EventType, data: serde_json::Value) {
        let data = encode_data(&data);
        self.push_event(write, kind, &data);
    }

    /// The step that tells every friend about `data` (`None` without friends), written with
    /// the turn's own change: a friend's copy is then sure to follow (`crate::ops::steps`).
    fn tell_friends(&self, kind: EventType, data: &str) -> Option<StepRecord> {
        (!self.friends.is_empty()).then(|| {
            StepRecord::new(Step::NotifyFriends {
                account: self.record.account_id.clone(),
                event: kind.0.to_owned(),
                data: data.to_owned(),
            })
        })
    }
}

/// A stored relation value starts with the start time in ms (big-endian; a contact match
/// adds a byte after it, `friends::match_counts`); anything shorter reads as 0.
fn decode_since(value: &[u8]) -> u64 {
    value
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or_default()
}

/// One turn's change set of an account: the store's write, and the events it appends, not
/// yet numbered.
pub struct AccountChange {
    write: SubscriberWrite,
    events: Vec<(EventType, Arc<str>)>,
    log: LogHead,
}

impl Deref for AccountChange {
    type Target = SubscriberWrite;
    fn deref(&self) -> &SubscriberWrite {
        &self.write
    }
}

impl DerefMut for AccountChange {
    fn deref_mut(&mut self) -> &mut SubscriberWrite {
        &mut self.write
    }
}

impl Change for AccountChange {
    fn set_epoch(&mut self, epoch: Option<u64>) {
        self.write.epoch = epoch;
    }

    /// Without events, one store write. With events: hold the log head, number the events
    /// after it, write, advance the head, and keep holding it until the events are pushed.
    fn commit(self, env: &Env) -> BoxFuture<'static, Result<Committed, StoreError>> {
        let store = env.store.clone();
        Box::pin(async move {
            let AccountChange {
                mut write,
                events,
                log,
            } = self;
            if events.is_empty() {
                if !write.is_empty() {
                    store.commit(write).await?;
                }
                return Ok(Committed::default());
            }
            let mut head = log.lock_owned().await;
            let after = head.seq(&*store, write.epoch).await?;
            write.events = events
                .iter()
                .zip(after + 1..)
                .map(|((kind, data), seq)| frame_with_data(*kind, seq, data))
                .collect();
            let events = write.events.clone();
            match store.commit(write).await {
                Ok(()) => {
                    head.advance(after + events.len() as u64);
                    Ok(Committed {
                        events,
                        log: Some(head),
                    })
                }
                Err(e) => {
                    if !matches!(e, StoreError::ClaimTaken(_)) {
                        // It may still land: read the head again next time.
                        head.forget();
                    }
                    Err(e)
                }
            }
        })
    }
}

impl Durable for Subscriber {
    type Change = AccountChange;
    const KIND: &'static str = "subscriber";
    const ACTOR: ActorKind = ActorKind::Account;

    fn life(&self) -> &Life {
        &self.life
    }

    fn life_mut(&mut self) -> &mut Life {
        &mut self.life
    }

    fn id(&self) -> &str {
        &self.record.account_id
    }

    /// Pushes the events to every device of this account (the log head is still held).
    fn published(&mut self, events: &[StoredEvent]) {
        if !events.is_empty() {
            self.life.env.hub.push(&self.record.account_id, events);
            self.life
                .env
                .relay
                .account_events(&self.record.account_id, events);
        }
    }

    /// Links written before secrets were sealed are sealed now ([`links::SealLegacyLinks`]).
    fn on_start(&mut self, ctx: &mut actix::Context<Self>) {
        if self.links.values().any(LinkRecord::has_plain_secret) {
            actix::AsyncContext::notify(ctx, links::SealLegacyLinks);
        }
    }

    /// Not while a device is connected.
    fn may_passivate(&self) -> bool {
        self.life.env.hub.online(self.id()) == 0
    }
}

durable_actor!(Subscriber);
