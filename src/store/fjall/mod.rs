//! The embedded store: fjall (an LSM keyspace engine) under `--data-dir`.
//!
//! A write is encoded on the caller's side (`encode.rs`: a record that fails to encode fails
//! that write, and nothing of it is queued), then queued for the one writer thread
//! (`writer.rs`), which commits everything waiting as one batch with one `fdatasync` (group
//! commit) and only then acknowledges each write: nothing is acknowledged before it is on
//! disk. Reads (`reads.rs`) go straight to the keyspaces. The keyspaces and their keys are in
//! `keys.rs`; the storage traits are implemented in `traits.rs`.

mod encode;
mod keys;
mod reads;
mod traits;
mod writer;

use std::path::Path;
use std::sync::{Mutex, mpsc};
use std::thread::JoinHandle;

use chorus_actors::StoreError;
use fjall::Database;
use tokio::sync::oneshot;

use self::encode::EncodedWrite;
use self::keys::Keyspaces;
use self::writer::{Job, Writer};

/// The embedded [`Store`](chorus_actors::store::Store).
pub struct FjallStore {
    ks: Keyspaces,
    queue: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl FjallStore {
    /// Opens (or creates) the store under `dir` and starts its writer thread.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(backend)?;
        let db = Database::builder(dir).open().map_err(backend)?;
        let ks = Keyspaces::open(&db)?;
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

    /// Queues an encoded write and waits until it is on disk (or refused). A write with a key
    /// the engine would assert on is refused here whole, before the writer sees any of it.
    async fn submit(&self, write: EncodedWrite) -> Result<(), StoreError> {
        write.check_keys(&self.ks)?;
        let (tx, rx) = oneshot::channel();
        self.send(Job::Write(Box::new(write), tx))?;
        rx.await
            .map_err(|_| backend("store writer dropped the write"))?
    }

    /// Stops taking writes, lets the writer finish what is queued and sync, and joins it.
    async fn close_writer(&self) -> Result<(), StoreError> {
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

#[cfg(test)]
mod tests;
