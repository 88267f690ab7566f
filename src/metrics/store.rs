//! The stores' metrics: how long a change set waits for its commit, and how large the batches
//! written are, for both engines (label `store`: `fjall`, `scylla`).

use std::time::Instant;

use metrics::histogram;

use super::{STORE_BATCH_ROWS, STORE_BATCH_WRITES, STORE_COMMIT_DURATION};

/// Records, when dropped, the time since it was made as one commit's latency: one line at
/// the top of a commit records it on every way out.
pub struct CommitTimer {
    store: &'static str,
    started: Instant,
}

impl CommitTimer {
    pub fn new(store: &'static str) -> Self {
        CommitTimer {
            store,
            started: Instant::now(),
        }
    }
}

impl Drop for CommitTimer {
    fn drop(&mut self) {
        histogram!(STORE_COMMIT_DURATION, "store" => self.store)
            .record(self.started.elapsed().as_secs_f64());
    }
}

/// One batch of `rows` keys or rows written; for the embedded store's group commit, of
/// `writes` change sets.
pub fn store_batch(store: &'static str, rows: usize, writes: Option<usize>) {
    histogram!(STORE_BATCH_ROWS, "store" => store).record(rows as f64);
    if let Some(writes) = writes {
        histogram!(STORE_BATCH_WRITES, "store" => store).record(writes as f64);
    }
}
