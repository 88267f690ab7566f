//! The single writer thread: owns the order of all writes. It takes the writes waiting in its
//! queue (up to 1,024 writes or 4,096 keys past the first), checks their uniqueness claims
//! against the database and against each other, commits them as one fjall batch,
//! `fdatasync`s the journal once, and only then answers each caller: group commit, so a
//! thousand concurrent writers cost one sync, and nothing is acknowledged before it is on
//! disk. A failed commit makes the store sick (`sick.rs`): until the disk recovers, every
//! write is answered at once with [`StoreError::Unavailable`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use chorus_actors::StoreError;
use fjall::{Database, OwnedWriteBatch, PersistMode};
use tokio::sync::oneshot;

use super::Shared;
use super::backend;
use super::encode::{ClaimChanges, EncodedWrite, Op};
use super::keys::Keyspaces;
use super::sick::{Sick, injected_failure};

/// Most writes one batch takes from the queue.
const MAX_BATCH_WRITES: usize = 1024;

/// Most keys one batch takes from the queue, past its first write: a batch is answered only
/// when all of it is in, so under a backlog of large writes (a fan-out's appends to 1,024
/// friends each) batches stay a few milliseconds long instead of taking everything queued.
const MAX_BATCH_OPS: usize = 4096;

/// Where the writer answers one write.
pub(super) type Reply = oneshot::Sender<Result<(), StoreError>>;

/// What the queue carries.
pub(super) enum Job {
    Write(Box<EncodedWrite>, Reply),
    /// Answered once everything queued before it is written and the journal is synced.
    Close(Reply),
}

impl Job {
    /// How many keys it writes.
    fn ops(&self) -> usize {
        match self {
            Job::Write(write, _) => write.ops.len(),
            Job::Close(_) => 0,
        }
    }
}

/// Claim owners as the batch being built leaves them (`None`: released), so two writes in
/// one batch see each other's claims.
type ClaimOwners = HashMap<String, Option<String>>;

pub(super) struct Writer {
    /// The database and its keyspaces; `None` only while a reopen has failed (then `sick`).
    pub(super) engine: Option<(Database, Arc<Keyspaces>)>,
    pub(super) shared: Arc<Shared>,
    /// While the disk refuses writes: why, and when to try it again.
    pub(super) sick: Option<Sick>,
}

impl Writer {
    pub(super) fn new(db: Database, ks: Arc<Keyspaces>, shared: Arc<Shared>) -> Self {
        Writer {
            engine: Some((db, ks)),
            shared,
            sick: None,
        }
    }

    /// Runs until the queue closes or a [`Job::Close`] arrives.
    pub(super) fn run(mut self, rx: flume::Receiver<Job>) {
        loop {
            if self
                .sick
                .as_ref()
                .is_some_and(|s| Instant::now() >= s.next_try)
            {
                self.try_recover();
            }
            let received = match &self.sick {
                None => rx.recv().map_err(|_| ()),
                Some(sick) => match rx.recv_deadline(sick.next_try) {
                    Err(flume::RecvTimeoutError::Timeout) => continue,
                    other => other.map_err(|_| ()),
                },
            };
            let Ok(first) = received else {
                return;
            };
            let mut ops = first.ops();
            let mut jobs = vec![first];
            while jobs.len() < MAX_BATCH_WRITES && ops < MAX_BATCH_OPS {
                match rx.try_recv() {
                    Ok(job) => {
                        ops += job.ops();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
            crate::metrics::store_batch("fjall", ops, Some(jobs.len()));
            let mut writes = Vec::with_capacity(jobs.len());
            let mut close = None;
            for job in jobs {
                match job {
                    Job::Write(w, done) => writes.push((w, done)),
                    Job::Close(done) => close = Some(done),
                }
            }
            self.commit_batch(writes);
            if let Some(done) = close {
                let _ = done.send(self.close());
                return;
            }
        }
    }

    /// The last sync before the process ends. With the disk refusing writes there is
    /// nothing to sync: every write acknowledged was synced before its answer.
    fn close(&self) -> Result<(), StoreError> {
        match (&self.engine, &self.sick) {
            (Some((db, _)), None) => {
                let result = db.persist(PersistMode::SyncAll).map_err(backend);
                tracing::info!("embedded store flushed and closed");
                result
            }
            _ => {
                tracing::warn!(
                    "embedded store closed while refusing writes; every acknowledged write \
                     was synced before it was acknowledged"
                );
                Ok(())
            }
        }
    }

    /// Commits every queued write whose claims hold as one batch, with one sync; a write whose
    /// claim is taken is answered with [`StoreError::ClaimTaken`] and left out. While the
    /// disk refuses writes, every write is answered [`StoreError::Unavailable`] at once.
    fn commit_batch(&mut self, writes: Vec<(Box<EncodedWrite>, Reply)>) {
        if writes.is_empty() {
            return;
        }
        let (db, ks) = match (&self.engine, &self.sick) {
            (Some((db, ks)), None) => (db.clone(), ks.clone()),
            _ => {
                for (_, done) in writes {
                    let _ = done.send(Err(self.refusal()));
                }
                return;
            }
        };
        let mut batch = db.batch().durability(Some(PersistMode::SyncData));
        let mut owners = ClaimOwners::new();
        let mut accepted = Vec::with_capacity(writes.len());
        for (write, done) in writes {
            let EncodedWrite { claims, ops } = *write;
            if let Some(claims) = &claims {
                match check_claims(&ks, claims, &mut owners) {
                    Ok(released) => add_claims(&ks, &mut batch, claims, &released),
                    Err(e) => {
                        let _ = done.send(Err(e));
                        continue;
                    }
                }
            }
            for op in ops {
                match op {
                    Op::Put(id, key, value) => batch.insert(ks.get(id), key, value),
                    Op::Remove(id, key) => batch.remove(ks.get(id), key),
                }
            }
            accepted.push(done);
        }
        let result = match injected_failure(&self.shared.dir) {
            Some(e) => Err(fjall::Error::Io(e)),
            None => batch.commit(),
        };
        match result {
            Ok(()) => {
                for done in accepted {
                    let _ = done.send(Ok(()));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, writes = accepted.len(), "batched commit failed");
                self.fall_sick(e.to_string());
                for done in accepted {
                    let _ = done.send(Err(self.refusal()));
                }
            }
        }
    }
}

/// The owner of claim `key`: as this batch leaves it, or as stored.
fn owner(ks: &Keyspaces, owners: &ClaimOwners, key: &str) -> Result<Option<String>, StoreError> {
    if let Some(owner) = owners.get(key) {
        return Ok(owner.clone());
    }
    Ok(ks
        .claims
        .get(key.as_bytes())
        .map_err(backend)?
        .map(|v| String::from_utf8_lossy(&v).into_owned()))
}

/// Checks every claim of a write; if all hold, records its claims and releases in `owners`
/// and answers the claims it really releases (those its account holds).
fn check_claims(
    ks: &Keyspaces,
    c: &ClaimChanges,
    owners: &mut ClaimOwners,
) -> Result<Vec<String>, StoreError> {
    for claim in &c.take {
        match owner(ks, owners, &claim.0)? {
            Some(owner) if owner != c.account => {
                return Err(StoreError::ClaimTaken(claim.0.clone()));
            }
            _ => {}
        }
    }
    let mut released = Vec::new();
    for claim in &c.give_up {
        if owner(ks, owners, &claim.0)?.as_deref() == Some(c.account.as_str()) {
            released.push(claim.0.clone());
        }
    }
    for key in &released {
        owners.insert(key.clone(), None);
    }
    for claim in &c.take {
        owners.insert(claim.0.clone(), Some(c.account.clone()));
    }
    Ok(released)
}

/// The claims `check_claims` let through: releases first, then claims, in the order the
/// owners map applied them.
fn add_claims(ks: &Keyspaces, batch: &mut OwnedWriteBatch, c: &ClaimChanges, released: &[String]) {
    for key in released {
        batch.remove(&ks.claims, key.as_bytes());
    }
    for claim in &c.take {
        batch.insert(&ks.claims, claim.0.as_bytes(), c.account.as_bytes());
    }
}
