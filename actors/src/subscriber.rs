//! The Subscriber actor: one per account. It owns the account's record, its edges (friends,
//! incoming requests, contact matches, platform links), its event log position and its live
//! devices. Nothing else changes them; everyone else sends it a message.
//!
//! Every mutating handler builds one [`SubscriberWrite`], commits it, and only then updates
//! memory, advances `seq` and pushes the new events to the devices (see `Subscriber::persist`).
//! Handlers that persist are atomic (`AtomicResponse`): the next message waits until the
//! write is durable, so events leave in `seq` order and state never runs ahead of the disk.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::activity_model::{
    ActivityRecord, ActivityView, DeliveryRecord, MAX_ACTIVITY_TEXT, MAX_IDEMPOTENCY_KEY,
};
use crate::error::{Error, Result, StoreError};
use crate::event::{EventType, StoredEvent, encode_data, frame_with_data};
use crate::hub::Hub;
use crate::ids::new_id;
use crate::messages::*;
use crate::model::{
    AccountId, AccountRecord, Claim, LinkRecord, MAX_LINKS, login_claims_of, normalize_profile,
    now_ms,
};
use crate::registry::{Kind, RegistryHandle};
use crate::store::{
    Edge, EdgeChange, EdgeKind, SubscriberSnapshot, SubscriberStore, SubscriberWrite,
};

/// Most events one `resume` page reads.
pub const MAX_EVENTS_PAGE: usize = 1000;

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
    /// Where this account's devices are (the delivery seam).
    hub: Arc<Hub>,
    store: Arc<dyn SubscriberStore>,
    registry: RegistryHandle,
    generation: u64,
    last_active: Instant,
    idle_timeout: Duration,
}

impl Subscriber {
    /// Builds the actor from what the store holds.
    pub(crate) fn new(
        snapshot: SubscriberSnapshot,
        store: Arc<dyn SubscriberStore>,
        hub: Arc<Hub>,
        registry: RegistryHandle,
        generation: u64,
        idle_timeout: Duration,
    ) -> Self {
        let mut me = Subscriber {
            record: snapshot.record,
            friends: HashMap::new(),
            requests_in: HashMap::new(),
            matched: HashMap::new(),
            links: BTreeMap::new(),
            seq: snapshot.last_seq,
            hub,
            store,
            registry,
            generation,
            last_active: Instant::now(),
            idle_timeout,
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

    fn id(&self) -> &str {
        &self.record.account_id
    }

    fn touch(&mut self) {
        self.last_active = Instant::now();
    }

    fn view(&self, viewer_is_close: bool) -> AccountView {
        AccountView {
            account_id: self.record.account_id.clone(),
            profile: self.record.visible_profile(viewer_is_close),
            profile_version: self.record.profile_version,
        }
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

    /// Commits `write`; on success applies `apply` to memory, advances `seq` and delivers the
    /// write's events to every device. Nothing in memory changes if the commit fails.
    fn persist<R: 'static>(
        &mut self,
        write: SubscriberWrite,
        apply: impl FnOnce(&mut Self) -> R + 'static,
    ) -> AtomicResponse<Self, Result<R>> {
        AtomicResponse::new(self.persist_fut(write, apply))
    }

    /// [`Subscriber::persist`] as a future, for handlers that first read something.
    fn persist_fut<R: 'static>(
        &mut self,
        write: SubscriberWrite,
        apply: impl FnOnce(&mut Self) -> R + 'static,
    ) -> ResponseActFuture<Self, Result<R>> {
        self.touch();
        let store = self.store.clone();
        let events = write.events.clone();
        let skip = write.is_empty();
        Box::pin(
            async move {
                if skip {
                    Ok(())
                } else {
                    store.commit(write).await
                }
            }
            .into_actor(self)
            .map(move |res, act, _ctx| {
                res.map_err(store_error)?;
                if let Some(last) = events.last() {
                    act.seq = last.seq;
                }
                let out = apply(act);
                act.deliver(&events);
                Ok(out)
            }),
        )
    }

    /// Pushes events to every device of this account.
    fn deliver(&mut self, events: &[StoredEvent]) {
        if !events.is_empty() {
            self.hub.deliver(&self.record.account_id, events);
        }
    }

    fn friend_edge(&self, kind: EdgeKind, other: &str, since: u64) -> EdgeChange {
        let _ = self;
        EdgeChange::Put(Edge {
            kind,
            other: other.to_owned(),
            value: since.to_be_bytes().to_vec(),
        })
    }

    /// The write that makes `other` a friend (and clears a pending request from it).
    fn befriend_write(&self, other: &str, now: u64) -> SubscriberWrite {
        let mut w = SubscriberWrite::new(self.id());
        w.edges.push(self.friend_edge(EdgeKind::Friend, other, now));
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

    fn befriend(&mut self, other: AccountId) -> AtomicResponse<Self, Result<()>> {
        let now = now_ms();
        let write = self.befriend_write(&other, now);
        self.persist(write, move |act| {
            act.requests_in.remove(&other);
            act.friends.insert(other, now);
        })
    }
}

/// A stored relation value is the start time in ms (big-endian); anything else reads as 0.
fn decode_since(value: &[u8]) -> u64 {
    value.try_into().map(u64::from_be_bytes).unwrap_or_default()
}

fn store_error(e: StoreError) -> Error {
    match e {
        StoreError::ClaimTaken(key) => {
            let claim = Claim(key);
            Error::conflict(claim.taken_code(), format!("{} is already taken", claim.0))
        }
        other => Error::Storage(other),
    }
}

fn ready<T: 'static>(value: Result<T>) -> AtomicResponse<Subscriber, Result<T>> {
    AtomicResponse::new(Box::pin(actix::fut::ready(value)))
}

impl Actor for Subscriber {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Check for idleness a few times per timeout; passivate when nobody is connected and
        // nothing has happened for a whole timeout. State is already on disk.
        let every = (self.idle_timeout / 4).max(Duration::from_millis(50));
        ctx.run_interval(every, |act, ctx| {
            if act.hub.online(act.id()) == 0 && act.last_active.elapsed() >= act.idle_timeout {
                tracing::debug!(account = %act.id(), "passivating idle subscriber");
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.registry
            .forget(Kind::Subscriber, &self.record.account_id, self.generation);
    }
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
        self.touch();
        let mut platforms: Vec<LinkView> = self.links.values().map(LinkView::from).collect();
        platforms.sort_by(|a, b| a.link_id.cmp(&b.link_id));
        Ok(MeView {
            account_id: self.record.account_id.clone(),
            profile: self.record.profile.clone(),
            profile_version: self.record.profile_version,
            platforms,
        })
    }
}

impl Handler<UpdateProfile> for Subscriber {
    type Result = AtomicResponse<Self, Result<ProfileChanged>>;
    fn handle(&mut self, msg: UpdateProfile, _: &mut Self::Context) -> Self::Result {
        if msg.changes.is_empty() {
            return ready(Err(Error::invalid("the patch sets no field")));
        }
        let mut profile = self.record.profile.clone();
        for (name, value) in &msg.changes {
            match value {
                Some(v) => {
                    profile.insert(name.clone(), v.clone());
                }
                None if name == "display_name" => {
                    return ready(Err(Error::invalid("display_name cannot be cleared")));
                }
                None => {
                    profile.remove(name);
                }
            }
        }
        if let Err(e) = normalize_profile(&mut profile) {
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
        let friends: Vec<AccountId> = self.friends.keys().cloned().collect();
        if changes.is_empty() {
            return ready(Ok(ProfileChanged {
                profile_version: self.record.profile_version,
                data: None,
                friends,
            }));
        }
        let old_claims = login_claims_of(&self.record.profile);
        let new_claims = login_claims_of(&profile);
        let mut record = self.record.clone();
        record.profile = profile;
        record.profile_version += 1;
        let version = record.profile_version;

        let mut write = SubscriberWrite::new(self.id());
        write.claims = new_claims
            .iter()
            .filter(|c| !old_claims.contains(c))
            .cloned()
            .collect();
        write.releases = old_claims
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
        self.persist(write, move |act| {
            act.record = record;
            ProfileChanged {
                profile_version: version,
                data: Some(data),
                friends,
            }
        })
    }
}

impl Handler<AddToken> for Subscriber {
    type Result = AtomicResponse<Self, Result<()>>;
    fn handle(&mut self, msg: AddToken, _: &mut Self::Context) -> Self::Result {
        let mut write = SubscriberWrite::new(self.id());
        write.tokens.push(msg.hash);
        self.persist(write, |_| ())
    }
}

impl Handler<Attach> for Subscriber {
    type Result = Result<u64>;
    fn handle(&mut self, msg: Attach, _: &mut Self::Context) -> Self::Result {
        self.touch();
        self.hub.attach(&self.record.account_id, msg.outlet);
        Ok(self.seq)
    }
}

impl Handler<Detach> for Subscriber {
    type Result = Result<()>;
    fn handle(&mut self, msg: Detach, _: &mut Self::Context) -> Self::Result {
        self.touch();
        self.hub.detach(&self.record.account_id, msg.outlet_id);
        Ok(())
    }
}

impl Handler<ReadEvents> for Subscriber {
    type Result = ResponseFuture<Result<Vec<StoredEvent>>>;
    fn handle(&mut self, msg: ReadEvents, _: &mut Self::Context) -> Self::Result {
        self.touch();
        // Reads do not need the actor's turn: everything acknowledged is already stored.
        let store = self.store.clone();
        let id = self.record.account_id.clone();
        let limit = msg.limit.clamp(1, MAX_EVENTS_PAGE);
        Box::pin(async move {
            store
                .read_events(&id, msg.after, limit)
                .await
                .map_err(store_error)
        })
    }
}

impl Handler<Notify> for Subscriber {
    type Result = AtomicResponse<Self, Result<u64>>;
    fn handle(&mut self, msg: Notify, _: &mut Self::Context) -> Self::Result {
        let mut write = SubscriberWrite::new(self.id());
        self.push_event(&mut write, msg.kind, &msg.data);
        let seq = self.seq + 1;
        self.persist(write, move |_| seq)
    }
}

impl Handler<LinkPlatform> for Subscriber {
    type Result = AtomicResponse<Self, Result<()>>;
    fn handle(&mut self, msg: LinkPlatform, _: &mut Self::Context) -> Self::Result {
        if self.links.len() >= MAX_LINKS {
            return ready(Err(Error::invalid(format!(
                "an account links at most {MAX_LINKS} platform accounts"
            ))));
        }
        let claim = msg.link.claim();
        if self.links.values().any(|l| l.claim() == claim) {
            return ready(Err(Error::conflict(
                "handle_taken",
                "this platform account is already linked",
            )));
        }
        let value = match serde_json::to_vec(&msg.link) {
            Ok(v) => v,
            Err(e) => return ready(Err(Error::invalid(format!("link does not encode: {e}")))),
        };
        let mut write = SubscriberWrite::new(self.id());
        write.claims.push(claim);
        write.edges.push(EdgeChange::Put(Edge {
            kind: EdgeKind::Link,
            other: msg.link.link_id.clone(),
            value,
        }));
        let link = msg.link;
        self.persist(write, move |act| {
            act.links.insert(link.link_id.clone(), link);
        })
    }
}

impl Handler<UnlinkPlatform> for Subscriber {
    type Result = AtomicResponse<Self, Result<()>>;
    fn handle(&mut self, msg: UnlinkPlatform, _: &mut Self::Context) -> Self::Result {
        let Some(link) = self.links.get(&msg.link_id) else {
            return ready(Err(Error::NotFound("link")));
        };
        let mut write = SubscriberWrite::new(self.id());
        write.releases.push(link.claim());
        write.edges.push(EdgeChange::Delete {
            kind: EdgeKind::Link,
            other: msg.link_id.clone(),
        });
        self.persist(write, move |act| {
            act.links.remove(&msg.link_id);
            if let Some(releaser) = act.registry.releaser() {
                releaser.do_send(CancelLink {
                    link_id: msg.link_id,
                });
            }
        })
    }
}

impl Handler<StartFriendRequest> for Subscriber {
    type Result = AtomicResponse<Self, Result<RequestOutcome>>;
    fn handle(&mut self, msg: StartFriendRequest, _: &mut Self::Context) -> Self::Result {
        if msg.to == self.id() {
            return ready(Err(Error::invalid("you cannot befriend yourself")));
        }
        if self.friends.contains_key(&msg.to) {
            return ready(Err(Error::conflict(
                "already_friends",
                "you are friends already",
            )));
        }
        if self.requests_in.contains_key(&msg.to) {
            // They asked first: this request accepts theirs.
            let now = now_ms();
            let write = self.befriend_write(&msg.to, now);
            let other = msg.to;
            return self.persist(write, move |act| {
                act.requests_in.remove(&other);
                act.friends.insert(other, now);
                RequestOutcome::Mutual
            });
        }
        self.touch();
        ready(Ok(RequestOutcome::Pending(self.view(false))))
    }
}

impl Handler<ReceiveFriendRequest> for Subscriber {
    type Result = AtomicResponse<Self, Result<()>>;
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
        let now = now_ms();
        let mut write = SubscriberWrite::new(self.id());
        write
            .edges
            .push(self.friend_edge(EdgeKind::RequestIn, &from, now));
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
    type Result = AtomicResponse<Self, Result<()>>;
    fn handle(&mut self, msg: AcceptFriend, _: &mut Self::Context) -> Self::Result {
        if !self.requests_in.contains_key(&msg.from) {
            return ready(Err(Error::NotFound("friend request")));
        }
        self.befriend(msg.from)
    }
}

impl Handler<BecomeFriends> for Subscriber {
    type Result = AtomicResponse<Self, Result<()>>;
    fn handle(&mut self, msg: BecomeFriends, _: &mut Self::Context) -> Self::Result {
        if self.friends.contains_key(&msg.with) {
            return ready(Ok(()));
        }
        self.befriend(msg.with)
    }
}

impl Subscriber {
    fn end_friendship(&mut self, other: AccountId) -> AtomicResponse<Self, Result<()>> {
        let mut write = SubscriberWrite::new(self.id());
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
        })
    }
}

impl Handler<Unfriend> for Subscriber {
    type Result = AtomicResponse<Self, Result<()>>;
    fn handle(&mut self, msg: Unfriend, _: &mut Self::Context) -> Self::Result {
        if !self.friends.contains_key(&msg.other) {
            return ready(Err(Error::NotFound("friend")));
        }
        self.end_friendship(msg.other)
    }
}

impl Handler<DropFriend> for Subscriber {
    type Result = AtomicResponse<Self, Result<()>>;
    fn handle(&mut self, msg: DropFriend, _: &mut Self::Context) -> Self::Result {
        if !self.friends.contains_key(&msg.other) {
            return ready(Ok(()));
        }
        self.end_friendship(msg.other)
    }
}

impl Handler<RecordMatches> for Subscriber {
    type Result = AtomicResponse<Self, Result<Vec<AccountId>>>;
    fn handle(&mut self, msg: RecordMatches, _: &mut Self::Context) -> Self::Result {
        let now = now_ms();
        let mut candidates: Vec<AccountId> = msg
            .matched
            .into_iter()
            .filter(|id| id != self.id() && !self.friends.contains_key(id))
            .collect();
        candidates.sort();
        candidates.dedup();
        let mut write = SubscriberWrite::new(self.id());
        let fresh: Vec<AccountId> = candidates
            .iter()
            .filter(|id| !self.matched.contains_key(*id))
            .cloned()
            .collect();
        for id in &fresh {
            write
                .edges
                .push(self.friend_edge(EdgeKind::Matched, id, now));
        }
        self.persist(write, move |act| {
            for id in fresh {
                act.matched.insert(id, now);
            }
            candidates
        })
    }
}

impl Handler<MatchedBy> for Subscriber {
    type Result = AtomicResponse<Self, Result<bool>>;
    fn handle(&mut self, msg: MatchedBy, _: &mut Self::Context) -> Self::Result {
        if self.friends.contains_key(&msg.other) {
            return ready(Ok(true));
        }
        if !self.matched.contains_key(&msg.other) {
            self.touch();
            return ready(Ok(false));
        }
        let now = now_ms();
        let write = self.befriend_write(&msg.other, now);
        let other = msg.other;
        self.persist(write, move |act| {
            act.requests_in.remove(&other);
            act.friends.insert(other, now);
            true
        })
    }
}

impl Handler<ListRelation> for Subscriber {
    type Result = Result<Vec<(u64, AccountId)>>;
    fn handle(&mut self, msg: ListRelation, _: &mut Self::Context) -> Self::Result {
        self.touch();
        let pairs = |m: &HashMap<AccountId, u64>| -> Vec<(u64, AccountId)> {
            m.iter().map(|(id, since)| (*since, id.clone())).collect()
        };
        Ok(match msg.relation {
            Relation::Friends => pairs(&self.friends),
            Relation::IncomingRequests => pairs(&self.requests_in),
            Relation::Suggestions => self
                .matched
                .iter()
                .filter(|(id, _)| !self.friends.contains_key(*id))
                .map(|(id, since)| (*since, id.clone()))
                .collect(),
        })
    }
}

/// Checks a post before anything is stored.
fn check_post(msg: &PostActivity) -> Result<()> {
    let chars = msg.text.chars().count();
    if msg.text.trim().is_empty() || chars > MAX_ACTIVITY_TEXT {
        return Err(Error::invalid(format!(
            "text must have 1 to {MAX_ACTIVITY_TEXT} characters and not be blank"
        )));
    }
    if msg.text.contains('\0') {
        return Err(Error::invalid("text must not contain NUL characters"));
    }
    if let Some(key) = &msg.idempotency_key {
        let n = key.chars().count();
        if n == 0 || n > MAX_IDEMPOTENCY_KEY || key.chars().any(char::is_control) {
            return Err(Error::invalid(format!(
                "idempotency_key must have 1 to {MAX_IDEMPOTENCY_KEY} characters, none a control character"
            )));
        }
    }
    Ok(())
}

impl Subscriber {
    /// Stores a new activity with one delivery per link and `activity.posted`; once durable,
    /// hands the deliveries to the releaser.
    fn post_new(
        &mut self,
        text: String,
        idempotency_key: Option<String>,
    ) -> ResponseActFuture<Self, Result<Posted>> {
        let activity = ActivityRecord {
            activity_id: new_id(),
            account_id: self.id().to_owned(),
            author_name: self
                .record
                .profile
                .get("display_name")
                .cloned()
                .unwrap_or_default(),
            text,
            created_ms: now_ms(),
            idempotency_key,
        };
        let deliveries: Vec<DeliveryRecord> = self
            .links
            .values()
            .map(|link| DeliveryRecord::new(&activity, link))
            .collect();
        let mut write = SubscriberWrite::new(self.id());
        write.activities.push(activity.clone());
        write.deliveries = deliveries.clone();
        let data = encode_data(&ActivityView::from(&activity));
        self.push_event(&mut write, EventType::ACTIVITY_POSTED, &data);
        let friends: Vec<AccountId> = self.friends.keys().cloned().collect();
        self.persist_fut(write, move |act| {
            let releases = deliveries.iter().map(DeliveryRecord::view).collect();
            if !deliveries.is_empty() {
                match act.registry.releaser() {
                    Some(releaser) => releaser.do_send(Enqueue {
                        activity: Arc::new(activity.clone()),
                        deliveries,
                    }),
                    None => tracing::warn!(
                        activity = %activity.activity_id,
                        "no releaser running; the deliveries wait in the outbox"
                    ),
                }
            }
            Posted {
                activity,
                releases,
                replayed: false,
                friends,
                data: Some(data),
            }
        })
    }
}

impl Handler<PostActivity> for Subscriber {
    type Result = AtomicResponse<Self, Result<Posted>>;
    fn handle(&mut self, msg: PostActivity, _: &mut Self::Context) -> Self::Result {
        if let Err(e) = check_post(&msg) {
            return ready(Err(e));
        }
        self.touch();
        let Some(key) = msg.idempotency_key.clone() else {
            return AtomicResponse::new(self.post_new(msg.text, None));
        };
        // The lookup runs inside this atomic turn, so two posts with one key cannot both
        // miss it.
        let store = self.store.clone();
        let id = self.id().to_owned();
        AtomicResponse::new(Box::pin(
            async move {
                let Some(first) = store.find_activity_by_key(&id, &key).await? else {
                    return Ok(None);
                };
                let deliveries = store.list_deliveries(&first.activity_id).await?;
                Ok::<_, StoreError>(Some((first, deliveries)))
            }
            .into_actor(self)
            .then(
                move |found, act, _ctx| -> ResponseActFuture<Self, Result<Posted>> {
                    match found {
                        Err(e) => Box::pin(actix::fut::ready(Err(store_error(e)))),
                        Ok(Some((first, _))) if first.text != msg.text => {
                            Box::pin(actix::fut::ready(Err(Error::conflict(
                                "idempotency_key_reused",
                                "this idempotency_key was used for a post with another text",
                            ))))
                        }
                        Ok(Some((first, deliveries))) => Box::pin(actix::fut::ready(Ok(Posted {
                            activity: first,
                            releases: deliveries.iter().map(DeliveryRecord::view).collect(),
                            replayed: true,
                            friends: Vec::new(),
                            data: None,
                        }))),
                        Ok(None) => act.post_new(msg.text, msg.idempotency_key),
                    }
                },
            ),
        ))
    }
}

impl Handler<RecordRelease> for Subscriber {
    type Result = AtomicResponse<Self, Result<()>>;
    fn handle(&mut self, msg: RecordRelease, _: &mut Self::Context) -> Self::Result {
        let mut write = SubscriberWrite::new(self.id());
        match serde_json::to_value(msg.delivery.view()) {
            Ok(data) => self.push_event_json(&mut write, EventType::RELEASE_STATUS, data),
            Err(e) => return ready(Err(Error::invalid(format!("release view: {e}")))),
        }
        write.deliveries.push(msg.delivery);
        self.persist(write, |_| ())
    }
}

impl Handler<CanSeeActivities> for Subscriber {
    type Result = Result<bool>;
    fn handle(&mut self, msg: CanSeeActivities, _: &mut Self::Context) -> Self::Result {
        self.touch();
        Ok(msg.viewer == self.id() || self.friends.contains_key(&msg.viewer))
    }
}
