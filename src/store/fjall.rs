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

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, mpsc};
use std::thread::JoinHandle;

use async_trait::async_trait;
use bytestring::ByteString;
use chorus_actors::StoreError;
use chorus_actors::event::StoredEvent;
use chorus_actors::model::{AccountId, AccountRecord, Claim};
use chorus_actors::store::{
    Edge, EdgeChange, EdgeKind, SubscriberSnapshot, SubscriberStore, SubscriberWrite,
};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;

/// Most writes one group commit takes from the queue.
const MAX_GROUP: usize = 1024;

struct Keyspaces {
    accounts: Keyspace,
    edges: Keyspace,
    claims: Keyspace,
    tokens: Keyspace,
    events: Keyspace,
}

/// Where the writer answers one write.
type Reply = oneshot::Sender<Result<(), StoreError>>;

enum Job {
    Write(
        Box<SubscriberWrite>,
        oneshot::Sender<Result<(), StoreError>>,
    ),
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
        };
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            db: db.clone(),
            ks: Keyspaces {
                accounts: ks.accounts.clone(),
                edges: ks.edges.clone(),
                claims: ks.claims.clone(),
                tokens: ks.tokens.clone(),
                events: ks.events.clone(),
            },
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

    fn decode_record(key: &str, bytes: &[u8]) -> Result<AccountRecord, StoreError> {
        serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
            key: key.to_owned(),
            reason: e.to_string(),
        })
    }
}

#[async_trait]
impl SubscriberStore for FjallStore {
    async fn commit(&self, write: SubscriberWrite) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Job::Write(Box::new(write), tx))?;
        rx.await
            .map_err(|_| backend("store writer dropped the write"))?
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
        let last_seq = match self.ks.events.prefix(&prefix).next_back() {
            Some(item) => seq_of(&item.key().map_err(backend)?).unwrap_or(0),
            None => 0,
        };
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
        let (selector, verifier) = hash.split_at(16);
        let Some(value) = self.ks.tokens.get(selector).map_err(backend)? else {
            return Ok(None);
        };
        let (stored, account) = value.split_at(16.min(value.len()));
        if bool::from(stored.ct_eq(verifier)) {
            Ok(Some(String::from_utf8_lossy(account).into_owned()))
        } else {
            Ok(None)
        }
    }

    async fn read_events(
        &self,
        id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let start = event_key(id, after.saturating_add(1));
        let end = event_key(id, u64::MAX);
        let mut out = Vec::new();
        for item in self.ks.events.range(start..=end).take(limit) {
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
            let mut writes = Vec::with_capacity(jobs.len());
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
    fn commit_group(&self, writes: Vec<(Box<SubscriberWrite>, Reply)>) {
        if writes.is_empty() {
            return;
        }
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
        // Claim owners as this batch leaves them, so two writes in one group see each other.
        let mut claims: HashMap<String, Option<String>> = HashMap::new();
        let mut accepted = Vec::with_capacity(writes.len());
        for (write, done) in writes {
            match self.check_claims(&write, &mut claims) {
                Ok(released) => {
                    self.add_to_batch(&mut batch, &write, &released);
                    accepted.push(done);
                }
                Err(e) => {
                    let _ = done.send(Err(e));
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
            let (selector, verifier) = hash.split_at(16);
            let mut value = verifier.to_vec();
            value.extend_from_slice(id.as_bytes());
            batch.insert(&self.ks.tokens, selector, value);
        }
        for event in &write.events {
            batch.insert(
                &self.ks.events,
                event_key(id, event.seq),
                event.frame.as_bytes().as_ref(),
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
