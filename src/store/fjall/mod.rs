//! The embedded store: fjall (an LSM keyspace engine) under `--data-dir`.
//!
//! A write is encoded on the caller's side (`encode.rs`: a record that fails to encode fails
//! that write, and nothing of it is queued), then queued for the one writer thread
//! (`writer.rs`), which commits everything waiting as one batch with one `fdatasync` (group
//! commit) and only then acknowledges each write: nothing is acknowledged before it is on
//! disk. The queue is bounded ([`QUEUE_BOUND`]); a caller finding it full waits (async) for
//! room. Reads (`reads.rs`) go straight to the keyspaces; those that can walk more than
//! [`INLINE_READ_KEYS`] keys (snapshots, long logs and pages, scans) run on tokio's blocking
//! pool ([`FjallStore::read`]), not on the async or actor thread that asked. The keyspaces and their keys are in `keys.rs`; the storage
//! traits are implemented in `traits.rs`; a database of an earlier version is brought up to
//! date when it is opened (`upgrade.rs`).
//!
//! A full or failing disk (`sick.rs`): after one failed commit fjall refuses every later
//! write until it is reopened. The writer then answers every write at once with
//! [`StoreError::Unavailable`] (503 for clients) and marks the store's [`StoreHealth`]
//! (`/readyz` fails); reads go on. Backing off, it probes the disk and, once a probe write
//! syncs, reopens the database, which recovers exactly as a restart would, and takes writes
//! again.

mod encode;
mod keys;
mod reads;
mod retention;
mod sick;
mod traits;
mod upgrade;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use chorus_actors::StoreError;
use fjall::Database;
use tokio::sync::oneshot;

use self::encode::EncodedWrite;
use self::keys::Keyspaces;
use self::writer::{Job, Writer};
use crate::health::StoreHealth;

/// Most writes waiting for the writer: two full batches. Past it a caller waits for room (it
/// is async, so no thread is held): a full queue means the disk is slower than the writes,
/// and refusing would fail writes the disk takes within milliseconds. A sick disk never fills
/// it: the writer then answers every write at once.
pub const QUEUE_BOUND: usize = 2048;

/// Most keys a read walks on the caller's (async or actor) thread; a read that may walk
/// more runs on the blocking pool. Below it the hand-off costs more than the read: measured
/// with `cargo bench --bench store_reads`, a page of 10 events takes 4 µs in place and
/// 30 µs through the pool; a log of 1,000 events takes 0.3 ms, time an actor thread should
/// spend on other actors.
pub const INLINE_READ_KEYS: usize = 32;

/// The embedded [`Store`](chorus_actors::store::Store).
pub struct FjallStore {
    shared: Arc<Shared>,
    queue: Mutex<Option<flume::Sender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// With log retention, the time bucket of the marks writes leave (`retention.rs`).
    mark_every: Option<u64>,
}

/// What the store's handle and its writer thread share.
struct Shared {
    dir: PathBuf,
    /// The keyspaces open now; `None` only while the writer reopens the database.
    current: RwLock<Option<Arc<Keyspaces>>>,
    /// Whether the store takes writes (read by `/readyz`).
    health: StoreHealth,
}

impl Shared {
    fn set_current(&self, ks: Option<Arc<Keyspaces>>) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = ks;
    }
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl FjallStore {
    /// Opens (or creates) the store under `dir` and starts its writer thread.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(backend)?;
        let db = Database::builder(dir).open().map_err(backend)?;
        let ks = Arc::new(Keyspaces::open(&db)?);
        upgrade::bring_up_to_date(&db, &ks)?;
        let shared = Arc::new(Shared {
            dir: dir.to_owned(),
            current: RwLock::new(Some(ks.clone())),
            health: StoreHealth::default(),
        });
        let (tx, rx) = flume::bounded(QUEUE_BOUND);
        let writer = Writer::new(db, ks, shared.clone());
        let handle = std::thread::Builder::new()
            .name("chorus-store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(backend)?;
        Ok(FjallStore {
            shared,
            queue: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
            mark_every: None,
        })
    }

    /// Keeps events for `retention` (`None`: for ever): writes that append events mark the
    /// logs they touch, and [`SubscriberStore::trim_logs`](chorus_actors::store::SubscriberStore::trim_logs)
    /// removes what the marks say is older than the horizon (`retention.rs`).
    pub fn with_log_retention(mut self, retention: Option<Duration>) -> Self {
        self.mark_every = retention.map(retention::mark_every);
        self
    }

    /// Whether the store takes writes, for `/readyz`.
    pub fn health(&self) -> StoreHealth {
        self.shared.health.clone()
    }

    /// The keyspaces open now.
    fn keyspaces(&self) -> Result<Arc<Keyspaces>, StoreError> {
        self.shared
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| StoreError::Unavailable("the store is reopening its database".into()))
    }

    /// Runs a read of up to `keys` keys: on the caller's thread when that is at most
    /// [`INLINE_READ_KEYS`], else on the blocking pool ([`FjallStore::read`]).
    async fn read_up_to<T, F>(&self, keys: usize, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Keyspaces) -> Result<T, StoreError> + Send + 'static,
    {
        if keys <= INLINE_READ_KEYS {
            return read(&*self.keyspaces()?);
        }
        self.read(read).await
    }

    /// Runs a read that can be large on tokio's blocking pool, so it holds no async or actor
    /// thread while it walks the keyspaces.
    async fn read<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Keyspaces) -> Result<T, StoreError> + Send + 'static,
    {
        let ks = self.keyspaces()?;
        tokio::task::spawn_blocking(move || read(&ks))
            .await
            .map_err(|e| backend(format!("store read task: {e}")))?
    }

    async fn send(&self, job: Job) -> Result<(), StoreError> {
        let tx = self
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| backend("store is closed"))?;
        tx.send_async(job)
            .await
            .map_err(|_| backend("store writer has stopped"))
    }

    /// Queues an encoded write and waits until it is on disk (or refused). A write with a key
    /// the engine would assert on is refused here whole, before the writer sees any of it.
    async fn submit(&self, mut write: EncodedWrite) -> Result<(), StoreError> {
        let _timer = crate::metrics::CommitTimer::new("fjall");
        if let Some(every) = self.mark_every {
            write.mark_logs(chorus_actors::model::now_ms(), every);
        }
        write.check_keys(&*self.keyspaces()?)?;
        let (tx, rx) = oneshot::channel();
        self.send(Job::Write(Box::new(write), tx)).await?;
        rx.await
            .map_err(|_| backend("store writer dropped the write"))?
    }

    /// Stops taking writes, lets the writer finish what is queued and sync, and joins it.
    async fn close_writer(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        let sent = self.send(Job::Close(tx)).await;
        // Later writes find the queue gone.
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
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
