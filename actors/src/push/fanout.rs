//! The fan-out workers: group events reach members' devices from here, never from the group
//! actor.
//!
//! The actor keeps its members split into [`PARTITIONS`] lists by a stable hash of the
//! account id and hands each non-empty list, with the shared frame, to the worker
//! `partition % workers`. A member is always in the same partition, so the same worker pushes
//! all of a group's events to it, in order; the cost per recipient is one table lookup and one
//! `try_send` of a reference-counted buffer.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, mpsc};

use bytestring::ByteString;

use super::hub::Hub;

/// Partitions of a group's member list.
pub const PARTITIONS: usize = 64;

/// A member list partition, shared with the workers (copy-on-write in the group actor).
pub type Partition = Arc<Vec<Arc<str>>>;

/// The partition an account falls in: SipHash with fixed keys, stable for the process.
pub fn partition_of(account: &str) -> usize {
    let mut h = DefaultHasher::new();
    account.hash(&mut h);
    (h.finish() % PARTITIONS as u64) as usize
}

/// Splits `members` into [`PARTITIONS`] lists by [`partition_of`].
pub fn partition(members: impl IntoIterator<Item = Arc<str>>) -> Vec<Partition> {
    let mut parts: Vec<Vec<Arc<str>>> = vec![Vec::new(); PARTITIONS];
    for m in members {
        parts[partition_of(&m)].push(m);
    }
    parts.into_iter().map(Arc::new).collect()
}

enum Job {
    /// The partitions of one group event this worker owns.
    Push {
        parts: Vec<Partition>,
        frame: ByteString,
    },
    /// Answered once every job queued before it is done.
    Barrier(mpsc::Sender<()>),
}

/// The pool of fan-out workers (plain threads: a push is non-blocking CPU work).
pub struct Fanout {
    workers: Vec<mpsc::Sender<Job>>,
}

impl Fanout {
    /// Starts `workers` threads pushing to the devices in `hub`.
    pub fn new(hub: Arc<Hub>, workers: usize) -> Self {
        let workers = (0..workers.max(1))
            .filter_map(|i| {
                let (tx, rx) = mpsc::channel::<Job>();
                let hub = hub.clone();
                std::thread::Builder::new()
                    .name(format!("chorus-fanout-{i}"))
                    .spawn(move || {
                        while let Ok(job) = rx.recv() {
                            match job {
                                Job::Push { parts, frame } => {
                                    for member in parts.iter().flat_map(|p| p.iter()) {
                                        hub.push_shared(member, &frame);
                                    }
                                }
                                Job::Barrier(done) => {
                                    let _ = done.send(());
                                }
                            }
                        }
                    })
                    .map_err(|e| tracing::error!(error = %e, "fan-out worker did not start"))
                    .ok()
                    .map(|_| tx)
            })
            .collect();
        Fanout { workers }
    }

    /// Hands `frame` for every member in `partitions` to the workers and returns at once:
    /// one job per worker, so the caller wakes each worker once.
    pub fn send(&self, partitions: &[Partition], frame: &ByteString) {
        let n = self.workers.len();
        if n == 0 {
            return;
        }
        let mut jobs: Vec<Vec<Partition>> = vec![Vec::new(); n];
        for (index, members) in partitions.iter().enumerate() {
            if !members.is_empty() {
                jobs[index % n].push(members.clone());
            }
        }
        for (worker, parts) in self.workers.iter().zip(jobs) {
            if parts.is_empty() {
                continue;
            }
            let job = Job::Push {
                parts,
                frame: frame.clone(),
            };
            if worker.send(job).is_err() {
                tracing::error!("fan-out worker is gone; frame dropped");
            }
        }
    }
}

impl Fanout {
    /// Blocks until every frame handed over before this call has been queued to its devices
    /// (benchmarks; graceful shutdown).
    pub fn flush(&self) {
        let (tx, rx) = mpsc::channel();
        let sent = self
            .workers
            .iter()
            .filter(|w| w.send(Job::Barrier(tx.clone())).is_ok())
            .count();
        drop(tx);
        for _ in 0..sent {
            if rx.recv().is_err() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::push::event::{Outlet, Pushed, StoredEvent};

    struct Recorder {
        id: u64,
        seen: Mutex<Vec<String>>,
    }

    impl Outlet for Recorder {
        fn id(&self) -> u64 {
            self.id
        }
        fn push(&self, event: &StoredEvent) -> Pushed {
            self.push_shared(&event.frame)
        }
        fn push_shared(&self, frame: &ByteString) -> Pushed {
            if let Ok(mut seen) = self.seen.lock() {
                seen.push(frame.to_string());
            }
            Pushed::Queued
        }
    }

    #[test]
    fn every_member_gets_every_frame_in_order() {
        static IDS: AtomicU64 = AtomicU64::new(1);
        let hub = Arc::new(Hub::default());
        let members: Vec<Arc<str>> = (0..500).map(|i| Arc::from(format!("m{i}"))).collect();
        let mut recorders = Vec::new();
        for m in &members {
            let r = Arc::new(Recorder {
                id: IDS.fetch_add(1, Ordering::Relaxed),
                seen: Mutex::new(Vec::new()),
            });
            hub.attach(m, r.clone());
            recorders.push(r);
        }
        let fanout = Fanout::new(hub.clone(), 3);
        let parts = partition(members.iter().cloned());
        for n in 0..20 {
            fanout.send(&parts, &ByteString::from(format!("f{n}")));
        }
        let want: Vec<String> = (0..20).map(|n| format!("f{n}")).collect();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        for r in &recorders {
            loop {
                let seen = r.seen.lock().map(|s| s.clone()).unwrap_or_default();
                if seen.len() == want.len() {
                    assert_eq!(seen, want, "frames arrive once each, in order");
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "fan-out did not finish"
                );
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        hub.detach("m0", recorders[0].id);
        assert_eq!(hub.online("m0"), 0);
    }
}
