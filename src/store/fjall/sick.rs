//! A full or failing disk. After one failed journal write or sync, fjall refuses every later
//! write of that database (it is "poisoned": what the failed sync left on disk is unknown),
//! and a failed flush or compaction (a full disk) poisons it too. It cannot be un-poisoned;
//! it can be reopened, which recovers from the journal exactly as a restart does (a torn
//! last batch is cut off; everything synced before is kept).
//!
//! So the writer, on a failed commit, falls sick: `/readyz` fails, every write is answered at
//! once with [`StoreError::Unavailable`] (503), reads go on from the open keyspaces. Backing
//! off (1 s doubling to 30 s), it probes the disk: a 1 MiB file written and synced in the
//! data directory. Once a probe succeeds it drops the poisoned database, reopens it (reads
//! answer 503 for those milliseconds) and takes writes again (should the reopen itself fail, reads too answer 503 until one
//! succeeds). A write answered 503 was not
//! acknowledged; its batch may or may not be in the journal after the reopen (as after a
//! crash), whole or not at all.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chorus_actors::StoreError;
use chorus_actors::backoff::Backoff;
use chorus_actors::faults::{self, Point};
use fjall::Database;

use super::keys::Keyspaces;
use super::writer::Writer;

/// First wait before probing a sick disk; doubles up to [`PROBE_CAP`].
const PROBE_FIRST: Duration = Duration::from_secs(1);
/// Longest wait between two probes.
const PROBE_CAP: Duration = Duration::from_secs(30);
/// What a probe writes and syncs: room for a few batches, so a disk with a few bytes free
/// does not flap between sick and well with every write.
const PROBE_BYTES: usize = 1 << 20;
/// The probe file, in the data directory (removed after each probe).
const PROBE_FILE: &str = ".chorus-disk-probe";
/// How long a reopen waits for reads still running on the old database to let go of it.
const REOPEN_WAIT: Duration = Duration::from_secs(5);

/// The writer's state while the disk refuses writes.
pub(super) struct Sick {
    /// The error that made it sick (said by `/readyz` and in each refusal).
    reason: String,
    backoff: Backoff,
    /// When to probe the disk next.
    pub(super) next_try: Instant,
}

/// The injected disk failure ([`Point::STORE_WRITE_ERROR`]): while the point is armed and
/// its file exists in the data directory, every commit and probe fails as an I/O error.
pub(super) fn injected_failure(dir: &Path) -> Option<std::io::Error> {
    let point = Point::STORE_WRITE_ERROR;
    (faults::armed(point) && dir.join(point.0).exists())
        .then(|| std::io::Error::other(format!("fault injected at {}: I/O error", point.0)))
}

/// Writes and syncs [`PROBE_BYTES`] in `dir`, then removes the file.
fn probe(dir: &Path) -> std::io::Result<()> {
    if let Some(e) = injected_failure(dir) {
        return Err(e);
    }
    let path = dir.join(PROBE_FILE);
    let written = std::fs::File::create(&path).and_then(|mut file| {
        file.write_all(&vec![0u8; PROBE_BYTES])?;
        file.sync_all()
    });
    let removed = std::fs::remove_file(&path);
    written.and(removed)
}

impl Writer {
    /// A commit failed with `error`: refuse writes until the disk recovers.
    pub(super) fn fall_sick(&mut self, error: String) {
        let mut backoff = Backoff::new(PROBE_FIRST, PROBE_CAP);
        let (wait, _) = backoff.failed();
        tracing::error!(
            error = %error,
            "the store refuses writes until its disk recovers (full or failing?); reads go on, \
             /readyz fails, the disk is probed every {}-{} s",
            PROBE_FIRST.as_secs(),
            PROBE_CAP.as_secs()
        );
        self.shared.health.refusing(error.clone());
        self.sick = Some(Sick {
            reason: error,
            backoff,
            next_try: Instant::now() + wait,
        });
    }

    /// What a write is answered while the store is sick.
    pub(super) fn refusal(&self) -> StoreError {
        let reason = self
            .sick
            .as_ref()
            .map_or("the database is not open", |s| s.reason.as_str());
        StoreError::Unavailable(format!("the store refuses writes: {reason}"))
    }

    /// Probes the disk and, if it takes a synced write again, reopens the database.
    pub(super) fn try_recover(&mut self) {
        let outcome = probe(&self.shared.dir)
            .map_err(|e| format!("disk probe: {e}"))
            .and_then(|()| self.reopen());
        let Some(sick) = &mut self.sick else {
            return;
        };
        match outcome {
            Ok(()) => {
                tracing::warn!(
                    was = %sick.reason,
                    "the disk takes writes again; database reopened, the store takes writes"
                );
                self.sick = None;
                self.shared.health.writable();
            }
            Err(e) => {
                let (wait, _) = sick.backoff.failed();
                sick.next_try = Instant::now() + wait;
                tracing::debug!(error = %e, retry_in_s = wait.as_secs(), "store still sick");
            }
        }
    }

    /// Drops the poisoned database and opens it again (journal recovery, as at start-up).
    fn reopen(&mut self) -> Result<(), String> {
        // New reads wait for the new keyspaces (they answer 503 meanwhile); reads in flight
        // finish on the old ones, which hold the database's lock file until they end.
        self.shared.set_current(None);
        self.engine = None;
        let deadline = Instant::now() + REOPEN_WAIT;
        let db = loop {
            match Database::builder(&self.shared.dir).open() {
                Ok(db) => break db,
                Err(fjall::Error::Locked) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(format!("reopening the database: {e}")),
            }
        };
        let ks = Arc::new(Keyspaces::open(&db).map_err(|e| format!("reopening keyspaces: {e}"))?);
        self.shared.set_current(Some(ks.clone()));
        self.engine = Some((db, ks));
        Ok(())
    }
}
