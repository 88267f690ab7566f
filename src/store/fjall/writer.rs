//! The single writer thread: owns the order of all writes. It takes the writes waiting in its
//! queue (up to 1,024 writes or 4,096 keys past the first), checks their uniqueness claims against the database and against each other,
//! commits them as one fjall batch, `fdatasync`s the journal once, and only then answers each
//! caller: group commit, so a thousand concurrent writers cost one sync, and nothing is
//! acknowledged before it is on disk.

use std::collections::HashMap;
use std::sync::mpsc;

use chorus_actors::StoreError;
use fjall::{Database, OwnedWriteBatch, PersistMode};
use tokio::sync::oneshot;

use super::backend;
use super::encode::{ClaimChanges, EncodedWrite, Op};
use super::keys::Keyspaces;

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
    pub(super) db: Database,
    pub(super) ks: Keyspaces,
}

impl Writer {
    /// Runs until the queue closes or a [`Job::Close`] arrives.
    pub(super) fn run(self, rx: mpsc::Receiver<Job>) {
        while let Ok(first) = rx.recv() {
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
                let result = self.db.persist(PersistMode::SyncAll).map_err(backend);
                tracing::info!("embedded store flushed and closed");
                let _ = done.send(result);
                return;
            }
        }
    }

    /// Commits every queued write whose claims hold as one batch, with one sync; a write whose
    /// claim is taken is answered with [`StoreError::ClaimTaken`] and left out.
    fn commit_batch(&self, writes: Vec<(Box<EncodedWrite>, Reply)>) {
        if writes.is_empty() {
            return;
        }
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
        let mut owners = ClaimOwners::new();
        let mut accepted = Vec::with_capacity(writes.len());
        for (write, done) in writes {
            let EncodedWrite { claims, ops } = *write;
            if let Some(claims) = &claims {
                match self.check_claims(claims, &mut owners) {
                    Ok(released) => self.add_claims(&mut batch, claims, &released),
                    Err(e) => {
                        let _ = done.send(Err(e));
                        continue;
                    }
                }
            }
            for op in ops {
                match op {
                    Op::Put(ks, key, value) => batch.insert(&ks, key, value),
                    Op::Remove(ks, key) => batch.remove(&ks, key),
                }
            }
            accepted.push(done);
        }
        let result = batch.commit().map_err(backend);
        if let Err(e) = &result {
            tracing::error!(error = %e, writes = accepted.len(), "batched commit failed");
        }
        for done in accepted {
            let _ = done.send(result.clone_err());
        }
    }

    fn owner(&self, owners: &ClaimOwners, key: &str) -> Result<Option<String>, StoreError> {
        if let Some(owner) = owners.get(key) {
            return Ok(owner.clone());
        }
        Ok(self
            .ks
            .claims
            .get(key.as_bytes())
            .map_err(backend)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Checks every claim of a write; if all hold, records its claims and releases in
    /// `owners` and answers the claims it really releases (those its account holds).
    fn check_claims(
        &self,
        c: &ClaimChanges,
        owners: &mut ClaimOwners,
    ) -> Result<Vec<String>, StoreError> {
        for claim in &c.take {
            match self.owner(owners, &claim.0)? {
                Some(owner) if owner != c.account => {
                    return Err(StoreError::ClaimTaken(claim.0.clone()));
                }
                _ => {}
            }
        }
        let mut released = Vec::new();
        for claim in &c.give_up {
            if self.owner(owners, &claim.0)?.as_deref() == Some(c.account.as_str()) {
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
    fn add_claims(&self, batch: &mut OwnedWriteBatch, c: &ClaimChanges, released: &[String]) {
        for key in released {
            batch.remove(&self.ks.claims, key.as_bytes());
        }
        for claim in &c.take {
            batch.insert(&self.ks.claims, claim.0.as_bytes(), c.account.as_bytes());
        }
    }
}

/// `Result<(), StoreError>` is not `Clone`; every waiter of a batch gets its own copy.
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
