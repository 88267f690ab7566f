//! The connection table and the fan-out workers: the one seam through which events reach
//! devices. A later multi-node transport replaces what sits behind [`Hub`] (publish once per
//! node, deliver locally); no actor assumes its recipients live in this process beyond it.
//!
//! Group fan-out never runs on the group actor. The actor keeps its members split into
//! [`PARTITIONS`] lists by a stable hash of the account id and hands each non-empty list, with
//! the shared frame, to the worker `partition % workers`. A member is always in the same
//! partition, so the same worker delivers all of a group's events to it, in order; the cost
//! per recipient is one table lookup and one `try_send` of a reference-counted buffer.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, mpsc};

use bytestring::ByteString;
use dashmap::DashMap;

use crate::event::{Outlet, StoredEvent};

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

/// Online devices per account.
#[derive(Default)]
pub struct Hub {
    devices: DashMap<String, Vec<Arc<dyn Outlet>>>,
}

impl Hub {
    pub fn attach(&self, account: &str, outlet: Arc<dyn Outlet>) {
        self.devices
            .entry(account.to_owned())
            .or_default()
            .push(outlet);
    }

    pub fn detach(&self, account: &str, outlet_id: u64) {
        if let dashmap::Entry::Occupied(mut entry) = self.devices.entry(account.to_owned()) {
            entry.get_mut().retain(|o| o.id() != outlet_id);
            if entry.get().is_empty() {
                entry.remove();
            }
        }
    }

    /// How many devices of `account` are connected here.
    pub fn online(&self, account: &str) -> usize {
        self.devices.get(account).map_or(0, |d| d.len())
    }

    /// Accounts with at least one device.
    pub fn accounts_online(&self) -> usize {
        self.devices.len()
    }

    /// Delivers events of the account's own log to all its devices.
    pub fn deliver(&self, account: &str, events: &[StoredEvent]) {
        if let Some(devices) = self.devices.get(account) {
            for device in devices.iter() {
                for event in events {
                    device.deliver(event);
                }
            }
        }
    }

    /// Delivers one shared frame to all devices of `account`.
    pub fn deliver_shared(&self, account: &str, frame: &ByteString) {
        if let Some(devices) = self.devices.get(account) {
            for device in devices.iter() {
                device.deliver_shared(frame);
            }
        }
    }
}

enum Job {
    /// The partitions of one group event this worker owns.
    Deliver {
        parts: Vec<Partition>,
        frame: ByteString,
    },
    /// Answered once every job queued before it is done.
    Barrier(mpsc::Sender<()>),
}

/// The pool of delivery workers (plain threads: delivery is non-blocking CPU work).
pub struct Fanout {
    workers: Vec<mpsc::Sender<Job>>,
}

impl Fanout {
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
                                Job::Deliver { parts, frame } => {
                                    for member in parts.iter().flat_map(|p| p.iter()) {
                                        hub.deliver_shared(member, &frame);
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
            let job = Job::Deliver {
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

/// Splits `members` into [`PARTITIONS`] lists by [`partition_of`].
pub fn partition(members: impl IntoIterator<Item = Arc<str>>) -> Vec<Partition> {
    let mut parts: Vec<Vec<Arc<str>>> = vec![Vec::new(); PARTITIONS];
    for m in members {
        parts[partition_of(&m)].push(m);
    }
    parts.into_iter().map(Arc::new).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::event::Delivery;

    struct Recorder {
        id: u64,
        seen: Mutex<Vec<String>>,
    }

    impl Outlet for Recorder {
        fn id(&self) -> u64 {
            self.id
        }
        fn deliver(&self, event: &StoredEvent) -> Delivery {
            self.deliver_shared(&event.frame)
        }
        fn deliver_shared(&self, frame: &ByteString) -> Delivery {
            if let Ok(mut seen) = self.seen.lock() {
                seen.push(frame.to_string());
            }
            Delivery::Queued
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
