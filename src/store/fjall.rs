//! The embedded store: fjall (an LSM keyspace engine) under `--data-dir`.
//!
//! All writes go through one writer thread that takes every write waiting in its queue,
//! checks their uniqueness claims against the database and against each other, commits them
//! as one fjall batch, `fdatasync`s the journal once, and only then answers each caller:
//! group commit, so a thousand concurrent writers cost one sync, and nothing is acknowledged
//! before it is on disk. Reads go straight to the keyspaces (fjall is safe to read
//! concurrently and sees every committed batch).
//!
//! Keys (ids are hex, so `\0` never occurs inside one):
//! - `accounts`: `id` -> JSON [`AccountRecord`]
//! - `edges`: `id \0 tag other` -> opaque value
//! - `claims`: claim text -> owning account id
//! - `tokens`: first 16 bytes of the token's SHA-256 -> last 16 bytes ++ account id
//! - `events`: `id \0 seq(u64 big-endian)` -> frame text
//! - `groups`: `gid` -> JSON `GroupRecord`; `group_members`: `gid \0 account` -> empty
//! - `binding_requests`: `gid \0 request id` -> JSON
//! - `bindings_by_group`: `gid \0 cid` and `bindings_by_community`: `cid \0 gid` -> JSON
//!   `Binding`, always written together in one batch
//! - `messages`: `gid \0 ms(u64 BE) message id` -> JSON; `group_events`: `gid \0 seq` -> frame
//! - `communities`: `cid` -> JSON; `community_members`: `cid \0 account` -> empty
//! - `dynamics`: `cid \0 ms(u64 BE) dynamic id` -> JSON (a page is one reverse range scan)
//! - `server_keys`: like `tokens`, for community server keys
//! - `activities`: `activity id` -> JSON `ActivityRecord`; `activity_feed`: `account \0 ms(u64
//!   BE) activity id` -> the same JSON (a page is one reverse range scan); `activity_keys`:
//!   `account \0 idempotency key` -> activity id
//! - `deliveries`: `activity id \0 link id` -> JSON `DeliveryRecord`; `outbox`: the same keys,
//!   present exactly while the delivery is not final (what a restart carries on with)

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, mpsc};
use std::thread::JoinHandle;

use async_trait::async_trait;
use bytestring::ByteString;
use chorus_actors::StoreError;
use chorus_actors::model::{
    AccountId, AccountRecord, ActivityRecord, Claim, CommunityId, DynamicRecord, FeedPos,
    MessageRecord, ReleaseRecord as DeliveryRecord,
};
use chorus_actors::push::StoredEvent;
use chorus_actors::store::{
    CommunitySnapshot, CommunityStore, CommunityWrite, Edge, EdgeChange, EdgeKind, GroupSnapshot,
    GroupStore, GroupWrite, SubscriberSnapshot, SubscriberStore, SubscriberWrite,
};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;

/// Most writes one group commit takes from the queue.
const MAX_GROUP: usize = 1024;

#[derive(Clone)]
struct Keyspaces {
    accounts: Keyspace,
    edges: Keyspace,
    claims: Keyspace,
    tokens: Keyspace,
    events: Keyspace,
    groups: Keyspace,
    group_members: Keyspace,
    binding_requests: Keyspace,
    bindings_by_group: Keyspace,
    bindings_by_community: Keyspace,
    messages: Keyspace,
    group_events: Keyspace,
    communities: Keyspace,
    community_members: Keyspace,
    dynamics: Keyspace,
    server_keys: Keyspace,
    activities: Keyspace,
    activity_feed: Keyspace,
    activity_keys: Keyspace,
    deliveries: Keyspace,
    outbox: Keyspace,
}

/// One write of any kind, as queued for the writer.
enum Change {
    Subscriber(Box<SubscriberWrite>),
    Group(Box<GroupWrite>),
    Community(Box<CommunityWrite>),
}

/// Where the writer answers one write.
type Reply = oneshot::Sender<Result<(), StoreError>>;

enum Job {
    Write(Change, Reply),
    Close(Reply),
}

/// The embedded [`SubscriberStore`].
pub struct FjallStore {
    ks: Keyspaces,
    queue: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn id_prefix(id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(id.len() + 1);
    key.extend_from_slice(id.as_bytes());
    key.push(0);
    key
}

fn edge_key(id: &str, kind: EdgeKind, other: &str) -> Vec<u8> {
    let mut key = id_prefix(id);
    key.push(kind.tag());
    key.extend_from_slice(other.as_bytes());
    key
}

fn event_key(id: &str, seq: u64) -> Vec<u8> {
    let mut key = id_prefix(id);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

fn seq_of(key: &[u8]) -> Option<u64> {
    let tail = key.get(key.len().checked_sub(8)?..)?;
    tail.try_into().ok().map(u64::from_be_bytes)
}

impl FjallStore {
    /// Opens (or creates) the store under `dir` and starts its writer thread.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(backend)?;
        let db = Database::builder(dir).open().map_err(backend)?;
        let open = |name: &str| {
            db.keyspace(name, KeyspaceCreateOptions::default)
                .map_err(backend)
        };
        let ks = Keyspaces {
            accounts: open("accounts")?,
            edges: open("edges")?,
            claims: open("claims")?,
            tokens: open("tokens")?,
            events: open("events")?,
            groups: open("groups")?,
            group_members: open("group_members")?,
            binding_requests: open("binding_requests")?,
            bindings_by_group: open("bindings_by_group")?,
            bindings_by_community: open("bindings_by_community")?,
            messages: open("messages")?,
            group_events: open("group_events")?,
            communities: open("communities")?,
            community_members: open("community_members")?,
            dynamics: open("dynamics")?,
            server_keys: open("server_keys")?,
            activities: open("activities")?,
            activity_feed: open("activity_feed")?,
            activity_keys: open("activity_keys")?,
            deliveries: open("deliveries")?,
            outbox: open("outbox")?,
        };
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            db: db.clone(),
            ks: ks.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("chorus-store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(backend)?;
        Ok(FjallStore {
            ks,
            queue: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
        })
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        let queue = self
            .queue
            .lock()
            .map_err(|_| backend("writer queue lock poisoned"))?;
        match queue.as_ref() {
            Some(tx) => tx
                .send(job)
                .map_err(|_| backend("store writer has stopped")),
            None => Err(backend("store is closed")),
        }
    }

    async fn submit(&self, change: Change) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Job::Write(change, tx))?;
        rx.await
            .map_err(|_| backend("store writer dropped the write"))?
    }

    fn decode_record(key: &str, bytes: &[u8]) -> Result<AccountRecord, StoreError> {
        decode(key, bytes)
    }

    /// Every value under `prefix`, decoded.
    fn scan<T: DeserializeOwned>(ks: &Keyspace, prefix: &[u8]) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        for item in ks.prefix(prefix) {
            let (key, value) = item.into_inner().map_err(backend)?;
            out.push(decode(&String::from_utf8_lossy(&key), &value)?);
        }
        Ok(out)
    }

    /// The ids after `prefix` of every key under it (member lists).
    fn scan_ids(ks: &Keyspace, prefix: &[u8]) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for item in ks.prefix(prefix) {
            let key = item.key().map_err(backend)?;
            let rest = key.get(prefix.len()..).unwrap_or_default();
            out.push(String::from_utf8_lossy(rest).into_owned());
        }
        Ok(out)
    }

    /// Newest-first page of a time-ordered feed under `id`: keys at or after `since_ms` and
    /// strictly before `before`.
    fn feed_page<T: DeserializeOwned>(
        ks: &Keyspace,
        id: &str,
        since_ms: u64,
        before: Option<&FeedPos>,
        limit: usize,
    ) -> Result<Vec<T>, StoreError> {
        let start = feed_key(id, since_ms, "");
        let end = match before {
            Some(pos) => feed_key(id, pos.ms, &pos.id),
            None => feed_key(id, u64::MAX, ""),
        };
        let mut out = Vec::new();
        for item in ks.range(start..end).rev().take(limit) {
            let (key, value) = item.into_inner().map_err(backend)?;
            out.push(decode(&String::from_utf8_lossy(&key), &value)?);
        }
        Ok(out)
    }

    fn read_log(
        ks: &Keyspace,
        id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let start = event_key(id, after.saturating_add(1));
        let end = event_key(id, u64::MAX);
        let mut out = Vec::new();
        for item in ks.range(start..=end).take(limit) {
            let (key, value) = item.into_inner().map_err(backend)?;
            let seq = seq_of(&key).ok_or_else(|| StoreError::Corrupt {
                key: id.to_owned(),
                reason: "event key without seq".into(),
            })?;
            let frame =
                ByteString::try_from(bytes::Bytes::copy_from_slice(&value)).map_err(|e| {
                    StoreError::Corrupt {
                        key: format!("{id}/{seq}"),
                        reason: e.to_string(),
                    }
                })?;
            out.push(StoredEvent { seq, frame });
        }
        Ok(out)
    }

    fn last_seq(ks: &Keyspace, id: &str) -> Result<u64, StoreError> {
        Ok(match ks.prefix(id_prefix(id)).next_back() {
            Some(item) => seq_of(&item.key().map_err(backend)?).unwrap_or(0),
            None => 0,
        })
    }

    /// Looks up a selector/verifier hash index (tokens, server keys).
    fn find_hash(ks: &Keyspace, hash: &[u8; 32]) -> Result<Option<String>, StoreError> {
        let (selector, verifier) = hash.split_at(16);
        let Some(value) = ks.get(selector).map_err(backend)? else {
            return Ok(None);
        };
        let (stored, owner) = value.split_at(16.min(value.len()));
        if bool::from(stored.ct_eq(verifier)) {
            Ok(Some(String::from_utf8_lossy(owner).into_owned()))
        } else {
            Ok(None)
        }
    }
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

fn pair_key(a: &str, b: &str) -> Vec<u8> {
    let mut key = id_prefix(a);
    key.extend_from_slice(b.as_bytes());
    key
}

fn feed_key(id: &str, ms: u64, item: &str) -> Vec<u8> {
    let mut key = id_prefix(id);
    key.extend_from_slice(&ms.to_be_bytes());
    key.extend_from_slice(item.as_bytes());
    key
}

fn hash_entry(hash: &[u8; 32], owner: &str) -> (Vec<u8>, Vec<u8>) {
    let (selector, verifier) = hash.split_at(16);
    let mut value = verifier.to_vec();
    value.extend_from_slice(owner.as_bytes());
    (selector.to_vec(), value)
}

#[async_trait]
impl SubscriberStore for FjallStore {
    async fn commit(&self, write: SubscriberWrite) -> Result<(), StoreError> {
        self.submit(Change::Subscriber(Box::new(write))).await
    }

    async fn load_account(&self, id: &str) -> Result<Option<AccountRecord>, StoreError> {
        match self.ks.accounts.get(id).map_err(backend)? {
            Some(bytes) => Ok(Some(Self::decode_record(id, &bytes)?)),
            None => Ok(None),
        }
    }

    async fn load_subscriber(&self, id: &str) -> Result<Option<SubscriberSnapshot>, StoreError> {
        let Some(record) = self.load_account(id).await? else {
            return Ok(None);
        };
        let prefix = id_prefix(id);
        let mut edges = Vec::new();
        for item in self.ks.edges.prefix(&prefix) {
            let (key, value) = item.into_inner().map_err(backend)?;
            let rest = key.get(prefix.len()..).unwrap_or_default();
            let Some((&tag, other)) = rest.split_first() else {
                continue;
            };
            let (Some(kind), Ok(other)) = (EdgeKind::from_tag(tag), std::str::from_utf8(other))
            else {
                tracing::error!(account = %id, "skipping undecodable edge key");
                continue;
            };
            edges.push(Edge {
                kind,
                other: other.to_owned(),
                value: value.to_vec(),
            });
        }
        let last_seq = Self::last_seq(&self.ks.events, id)?;
        Ok(Some(SubscriberSnapshot {
            record,
            edges,
            last_seq,
        }))
    }

    async fn find_claim(&self, claim: &Claim) -> Result<Option<AccountId>, StoreError> {
        Ok(self
            .ks
            .claims
            .get(claim.0.as_bytes())
            .map_err(backend)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    async fn find_token(&self, hash: &[u8; 32]) -> Result<Option<AccountId>, StoreError> {
        Self::find_hash(&self.ks.tokens, hash)
    }

    async fn read_events(
        &self,
        id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        Self::read_log(&self.ks.events, id, after, limit)
    }

    async fn load_activity(&self, id: &str) -> Result<Option<ActivityRecord>, StoreError> {
        match self.ks.activities.get(id).map_err(backend)? {
            Some(bytes) => Ok(Some(decode(id, &bytes)?)),
            None => Ok(None),
        }
    }

    async fn find_activity_by_key(
        &self,
        account: &str,
        key: &str,
    ) -> Result<Option<ActivityRecord>, StoreError> {
        match self
            .ks
            .activity_keys
            .get(pair_key(account, key))
            .map_err(backend)?
        {
            Some(id) => self.load_activity(&String::from_utf8_lossy(&id)).await,
            None => Ok(None),
        }
    }

    async fn list_activities(
        &self,
        account: &str,
        before: Option<&FeedPos>,
        limit: usize,
    ) -> Result<Vec<ActivityRecord>, StoreError> {
        Self::feed_page(&self.ks.activity_feed, account, 0, before, limit)
    }

    async fn list_deliveries(&self, activity_id: &str) -> Result<Vec<DeliveryRecord>, StoreError> {
        Self::scan(&self.ks.deliveries, &id_prefix(activity_id))
    }

    async fn pending_deliveries(&self) -> Result<Vec<DeliveryRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self.ks.outbox.iter() {
            let key = item.key().map_err(backend)?;
            match self.ks.deliveries.get(&key).map_err(backend)? {
                Some(bytes) => out.push(decode(&String::from_utf8_lossy(&key), &bytes)?),
                None => tracing::error!(
                    key = %String::from_utf8_lossy(&key),
                    "outbox entry without its delivery; skipped"
                ),
            }
        }
        Ok(out)
    }

    async fn close(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        let sent = self.send(Job::Close(tx));
        // Later writes find the queue gone.
        if let Ok(mut queue) = self.queue.lock() {
            queue.take();
        }
        sent?;
        let result = rx
            .await
            .map_err(|_| backend("store writer stopped before closing"))?;
        let handle = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        result
    }
}

#[async_trait]
impl GroupStore for FjallStore {
    async fn commit_group(&self, write: GroupWrite) -> Result<(), StoreError> {
        self.submit(Change::Group(Box::new(write))).await
    }

    async fn load_group(&self, id: &str) -> Result<Option<GroupSnapshot>, StoreError> {
        let Some(bytes) = self.ks.groups.get(id).map_err(backend)? else {
            return Ok(None);
        };
        let prefix = id_prefix(id);
        Ok(Some(GroupSnapshot {
            record: decode(id, &bytes)?,
            members: Self::scan_ids(&self.ks.group_members, &prefix)?,
            requests: Self::scan(&self.ks.binding_requests, &prefix)?,
            bindings: Self::scan(&self.ks.bindings_by_group, &prefix)?,
            last_seq: Self::last_seq(&self.ks.group_events, id)?,
        }))
    }

    async fn read_group_events(
        &self,
        id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        Self::read_log(&self.ks.group_events, id, after, limit)
    }

    async fn list_messages(
        &self,
        id: &str,
        before: Option<&FeedPos>,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        Self::feed_page(&self.ks.messages, id, 0, before, limit)
    }
}

#[async_trait]
impl CommunityStore for FjallStore {
    async fn commit_community(&self, write: CommunityWrite) -> Result<(), StoreError> {
        self.submit(Change::Community(Box::new(write))).await
    }

    async fn load_community(&self, id: &str) -> Result<Option<CommunitySnapshot>, StoreError> {
        let Some(bytes) = self.ks.communities.get(id).map_err(backend)? else {
            return Ok(None);
        };
        let prefix = id_prefix(id);
        Ok(Some(CommunitySnapshot {
            record: decode(id, &bytes)?,
            members: Self::scan_ids(&self.ks.community_members, &prefix)?,
            bindings: Self::scan(&self.ks.bindings_by_community, &prefix)?,
        }))
    }

    async fn find_server_key(&self, hash: &[u8; 32]) -> Result<Option<CommunityId>, StoreError> {
        Self::find_hash(&self.ks.server_keys, hash)
    }

    async fn list_dynamics(
        &self,
        id: &str,
        since_ms: u64,
        before: Option<&FeedPos>,
        limit: usize,
    ) -> Result<Vec<DynamicRecord>, StoreError> {
        Self::feed_page(&self.ks.dynamics, id, since_ms, before, limit)
    }
}

/// The single writer: owns the order of all writes.
struct Writer {
    db: Database,
    ks: Keyspaces,
}

impl Writer {
    fn run(self, rx: mpsc::Receiver<Job>) {
        while let Ok(first) = rx.recv() {
            let mut jobs = vec![first];
            while jobs.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            let mut writes: Vec<(Change, Reply)> = Vec::with_capacity(jobs.len());
            let mut close = None;
            for job in jobs {
                match job {
                    Job::Write(w, done) => writes.push((w, done)),
                    Job::Close(done) => close = Some(done),
                }
            }
            self.commit_group(writes);
            if let Some(done) = close {
                let result = self.db.persist(PersistMode::SyncAll).map_err(backend);
                tracing::info!("embedded store flushed and closed");
                let _ = done.send(result);
                return;
            }
        }
    }

    /// Commits every write whose claims hold as one batch, with one sync.
    fn commit_group(&self, writes: Vec<(Change, Reply)>) {
        if writes.is_empty() {
            return;
        }
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
        // Claim owners as this batch leaves them, so two writes in one group see each other.
        let mut claims: HashMap<String, Option<String>> = HashMap::new();
        let mut accepted = Vec::with_capacity(writes.len());
        for (change, done) in writes {
            match change {
                Change::Subscriber(write) => match self.check_claims(&write, &mut claims) {
                    Ok(released) => {
                        self.add_to_batch(&mut batch, &write, &released);
                        accepted.push(done);
                    }
                    Err(e) => {
                        let _ = done.send(Err(e));
                    }
                },
                Change::Group(write) => {
                    self.add_group(&mut batch, &write);
                    accepted.push(done);
                }
                Change::Community(write) => {
                    self.add_community(&mut batch, &write);
                    accepted.push(done);
                }
            }
        }
        let result = batch.commit().map_err(backend);
        if let Err(e) = &result {
            tracing::error!(error = %e, writes = accepted.len(), "group commit failed");
        }
        for done in accepted {
            let _ = done.send(result.clone_err());
        }
    }

    fn owner(
        &self,
        claims: &HashMap<String, Option<String>>,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        if let Some(owner) = claims.get(key) {
            return Ok(owner.clone());
        }
        Ok(self
            .ks
            .claims
            .get(key.as_bytes())
            .map_err(backend)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Checks every claim of `write`; if all hold, records its claims and releases in `claims`
    /// and answers the claims it really releases (those this account holds).
    fn check_claims(
        &self,
        write: &SubscriberWrite,
        claims: &mut HashMap<String, Option<String>>,
    ) -> Result<Vec<String>, StoreError> {
        for claim in &write.claims {
            match self.owner(claims, &claim.0)? {
                Some(owner) if owner != write.account => {
                    return Err(StoreError::ClaimTaken(claim.0.clone()));
                }
                _ => {}
            }
        }
        let mut released = Vec::new();
        for claim in &write.releases {
            if self.owner(claims, &claim.0)?.as_deref() == Some(write.account.as_str()) {
                released.push(claim.0.clone());
            }
        }
        for key in &released {
            claims.insert(key.clone(), None);
        }
        for claim in &write.claims {
            claims.insert(claim.0.clone(), Some(write.account.clone()));
        }
        Ok(released)
    }

    fn add_to_batch(
        &self,
        batch: &mut fjall::OwnedWriteBatch,
        write: &SubscriberWrite,
        released: &[String],
    ) {
        let id = write.account.as_str();
        if let Some(record) = &write.record {
            match serde_json::to_vec(record) {
                Ok(bytes) => batch.insert(&self.ks.accounts, id, bytes),
                Err(e) => tracing::error!(account = %id, error = %e, "record failed to encode"),
            }
        }
        for key in released {
            batch.remove(&self.ks.claims, key.as_bytes());
        }
        for claim in &write.claims {
            batch.insert(&self.ks.claims, claim.0.as_bytes(), id.as_bytes());
        }
        for change in &write.edges {
            match change {
                EdgeChange::Put(edge) => batch.insert(
                    &self.ks.edges,
                    edge_key(id, edge.kind, &edge.other),
                    edge.value.as_slice(),
                ),
                EdgeChange::Delete { kind, other } => {
                    batch.remove(&self.ks.edges, edge_key(id, *kind, other));
                }
            }
        }
        for hash in &write.tokens {
            let (selector, value) = hash_entry(hash, id);
            batch.insert(&self.ks.tokens, selector, value);
        }
        for event in &write.events {
            batch.insert(
                &self.ks.events,
                event_key(id, event.seq),
                event.frame.as_bytes().as_ref(),
            );
        }
        let ks = &self.ks;
        for a in &write.activities {
            Self::put_json(batch, &ks.activities, a.activity_id.as_bytes().to_vec(), a);
            Self::put_json(
                batch,
                &ks.activity_feed,
                feed_key(id, a.created_ms, &a.activity_id),
                a,
            );
            if let Some(key) = &a.idempotency_key {
                batch.insert(
                    &ks.activity_keys,
                    pair_key(id, key),
                    a.activity_id.as_bytes(),
                );
            }
        }
        for d in &write.deliveries {
            let key = pair_key(&d.activity_id, &d.link.link_id);
            Self::put_json(batch, &ks.deliveries, key.clone(), d);
            if d.status.is_final() {
                batch.remove(&ks.outbox, key);
            } else {
                batch.insert(&ks.outbox, key, b"".as_slice());
            }
        }
    }
}

impl Writer {
    fn put_json<T: serde::Serialize>(
        batch: &mut fjall::OwnedWriteBatch,
        ks: &Keyspace,
        key: Vec<u8>,
        value: &T,
    ) {
        match serde_json::to_vec(value) {
            Ok(bytes) => batch.insert(ks, key, bytes),
            Err(e) => tracing::error!(error = %e, "record failed to encode; not written"),
        }
    }

    fn add_group(&self, batch: &mut fjall::OwnedWriteBatch, w: &GroupWrite) {
        let gid = w.group_id.as_str();
        let ks = &self.ks;
        if let Some(record) = &w.record {
            Self::put_json(batch, &ks.groups, gid.as_bytes().to_vec(), record);
        }
        for m in &w.members_add {
            batch.insert(&ks.group_members, pair_key(gid, m), b"".as_slice());
        }
        for m in &w.members_remove {
            batch.remove(&ks.group_members, pair_key(gid, m));
        }
        for r in &w.requests_remove {
            batch.remove(&ks.binding_requests, pair_key(gid, r));
        }
        for r in &w.requests_put {
            Self::put_json(batch, &ks.binding_requests, pair_key(gid, &r.request_id), r);
        }
        for b in &w.bindings_put {
            Self::put_json(
                batch,
                &ks.bindings_by_group,
                pair_key(gid, &b.community_id),
                b,
            );
            Self::put_json(
                batch,
                &ks.bindings_by_community,
                pair_key(&b.community_id, gid),
                b,
            );
        }
        for cid in &w.bindings_remove {
            batch.remove(&ks.bindings_by_group, pair_key(gid, cid));
            batch.remove(&ks.bindings_by_community, pair_key(cid, gid));
        }
        for m in &w.messages {
            Self::put_json(
                batch,
                &ks.messages,
                feed_key(gid, m.created_ms, &m.message_id),
                m,
            );
        }
        for e in &w.events {
            batch.insert(
                &ks.group_events,
                event_key(gid, e.seq),
                e.frame.as_bytes().as_ref(),
            );
        }
    }

    fn add_community(&self, batch: &mut fjall::OwnedWriteBatch, w: &CommunityWrite) {
        let cid = w.community_id.as_str();
        let ks = &self.ks;
        if let Some(record) = &w.record {
            Self::put_json(batch, &ks.communities, cid.as_bytes().to_vec(), record);
        }
        if let Some(hash) = &w.server_key_hash {
            let (selector, value) = hash_entry(hash, cid);
            batch.insert(&ks.server_keys, selector, value);
        }
        for m in &w.members_add {
            batch.insert(&ks.community_members, pair_key(cid, m), b"".as_slice());
        }
        for d in &w.dynamics {
            Self::put_json(
                batch,
                &ks.dynamics,
                feed_key(cid, d.created_ms, &d.dynamic_id),
                d,
            );
        }
    }
}

/// `Result<(), StoreError>` is not `Clone`; every waiter of a group gets its own copy.
trait CloneErr {
    fn clone_err(&self) -> Result<(), StoreError>;
}

impl CloneErr for Result<(), StoreError> {
    fn clone_err(&self) -> Result<(), StoreError> {
        match self {
            Ok(()) => Ok(()),
            Err(e) => Err(StoreError::Backend(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance() {
        let dir = tempfile::tempdir().expect("tempdir");
        chorus_actors::store::conformance::run_all(dir.path(), |path| async move {
            Arc::new(FjallStore::open(&path).expect("open fjall store"))
        })
        .await;
    }

    #[test]
    fn event_keys_sort_numerically() {
        assert!(event_key("a", 255) < event_key("a", 256));
        assert_eq!(seq_of(&event_key("a", 300)), Some(300));
        // An account id that is a prefix of another never shares its key range.
        assert!(!event_key("ab", 1).starts_with(&id_prefix("a")));
    }
}
