//! The fan-out seam: how group events and account events leave the actors for the threads
//! that own the sockets.
//!
//! Every I/O thread opens one [`Lane`] (a bounded queue) when it starts. A group event is one
//! [`Job::Group`] per lane, carrying the shared frame and a snapshot of the member list: the
//! thread walks the members, finds those with a socket on it (a lookup by the precomputed
//! [`Member::key`]), appends the frame to each socket's buffer and flushes each socket once
//! per pass. So the cost of a group event on the actor's side is one `try_send` per thread,
//! whatever the group's size; nothing per recipient is allocated, locked or reference
//! counted. An account event goes to the lane of the thread owning each device
//! ([`Job::Account`], sent by that device's [`Outlet`](super::Outlet)).
//!
//! Bounded end to end: the lanes are bounded queues, and the recipients of group events
//! handed over but not yet written to their sockets are counted against a budget. Publishing
//! endpoints ask [`Fanout::busy`] before they store anything and answer 503 `unavailable`
//! with `Retry-After` while the budget is spent, so overload pushes back on publishers
//! instead of growing latency and memory. In cluster mode the relay feeds the same lanes
//! with group events from other nodes ([`super::relay`]), each with the group's members
//! online on this node.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use bytestring::ByteString;
use tokio::sync::{mpsc, oneshot};

use super::event::StoredEvent;

/// Partitions of a large member list: a membership change copies one partition, not the
/// whole list.
pub const PARTITIONS: usize = 64;

/// Members a list holds in one partition before it splits into [`PARTITIONS`]: a small
/// list (most groups, and a group's members online on one node in cluster mode) costs one
/// allocation instead of 64, and copying it on a change is as cheap as copying a partition.
pub const SPLIT_AT: usize = 256;

/// Jobs one lane holds before it sheds. Group events are one job per lane and kept far below
/// this by the budget; account events are one job per device, and a profile change to 5,000
/// friends with two devices each is 10,000 of them at once, so a lane holds several such
/// bursts (a job is about 60 bytes, and tokio allocates the queue as it fills). A device
/// whose account event finds its lane full is closed with 1013 and resumes.
pub const LANE_CAPACITY: usize = 64 * 1024;

/// A member of a group as the I/O threads see it.
#[derive(Debug, Clone)]
pub struct Member {
    /// [`member_key`] of `id`, computed once when the member is added.
    pub key: u64,
    pub id: Arc<str>,
}

/// One partition of a member list.
pub type Partition = Arc<Vec<Member>>;

/// A snapshot of a group's member list, shared by every job of every event until the
/// membership changes.
pub type Members = Arc<Vec<Partition>>;

/// The key an account is found by on an I/O thread: SipHash with fixed keys, so it is the
/// same in every thread and for the whole process.
pub fn member_key(account: &str) -> u64 {
    let mut h = DefaultHasher::new();
    account.hash(&mut h);
    h.finish()
}

/// A group's member list, kept by the group actor (and in cluster mode, for the group's
/// members online on this node, by the relay): the partitions, and the snapshot handed to
/// the lanes (rebuilt on the first event after a change).
#[derive(Debug, Clone)]
pub struct MemberList {
    parts: Vec<Partition>,
    snapshot: Option<Members>,
    len: usize,
}

impl MemberList {
    pub fn new(members: impl IntoIterator<Item = Arc<str>>) -> Self {
        let members: Vec<Member> = members
            .into_iter()
            .map(|id| Member {
                key: member_key(&id),
                id,
            })
            .collect();
        let len = members.len();
        MemberList {
            parts: partition(members, if len > SPLIT_AT { PARTITIONS } else { 1 }),
            snapshot: None,
            len,
        }
    }

    fn part_of(&mut self, key: u64) -> &mut Partition {
        let n = self.parts.len() as u64;
        &mut self.parts[(key % n) as usize]
    }

    /// Adds `id` (the caller knows it is not in the list yet).
    pub fn insert(&mut self, id: Arc<str>) {
        let key = member_key(&id);
        Arc::make_mut(self.part_of(key)).push(Member { key, id });
        self.len += 1;
        self.snapshot = None;
        if self.len > SPLIT_AT && self.parts.len() < PARTITIONS {
            let all = self.parts.iter().flat_map(|p| p.iter().cloned()).collect();
            self.parts = partition(all, PARTITIONS);
        }
    }

    /// Removes `id` if present.
    pub fn remove(&mut self, id: &str) {
        let part = self.part_of(member_key(id));
        let before = part.len();
        Arc::make_mut(part).retain(|m| &*m.id != id);
        let removed = before - part.len();
        self.len -= removed;
        self.snapshot = None;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The list as lanes get it: one `Arc` for every event until the next change.
    pub fn snapshot(&mut self) -> Members {
        self.snapshot
            .get_or_insert_with(|| Arc::new(self.parts.clone()))
            .clone()
    }
}

/// `members` spread over `n` partitions by key.
fn partition(members: Vec<Member>, n: usize) -> Vec<Partition> {
    let mut parts: Vec<Vec<Member>> = vec![Vec::new(); n];
    for member in members {
        parts[(member.key % n as u64) as usize].push(member);
    }
    parts.into_iter().map(Arc::new).collect()
}

/// A group event as the lanes carry it: the shared frame, and which group and number it is,
/// so that a device that resumed the group (or was told its head in `hello`) is sent each
/// event of it once ([`Shared::seq`] above the device's cursor for the group).
#[derive(Debug, Clone)]
pub struct Shared {
    /// [`member_key`] of `group`: how a connection finds its cursor for the group.
    pub key: u64,
    pub group: Arc<str>,
    /// The event's `group_seq`; 0 when not known (then it is never taken for one sent).
    pub seq: u64,
    /// The frame `{"type","group_id","group_seq","data"}`, shared by every device.
    pub frame: ByteString,
}

impl Shared {
    pub fn new(group: &str, seq: u64, frame: ByteString) -> Self {
        Shared {
            key: member_key(group),
            group: Arc::from(group),
            seq,
            frame,
        }
    }
}

/// What an I/O thread is asked to do.
pub enum Job {
    /// Write `event`'s frame to every socket of every member in `members` that this thread
    /// owns.
    Group {
        members: Members,
        event: Shared,
        /// Returns the event's recipients to the budget once every lane is done with it.
        permit: Arc<Permit>,
    },
    /// Write an event of the account's own log to the device `device` of this thread.
    Account { device: u64, event: StoredEvent },
    /// Answered once every job queued before it is done (graceful shutdown).
    Barrier(oneshot::Sender<()>),
}

/// The sending end of one I/O thread's queue.
pub type Lane = mpsc::Sender<Job>;

/// Recipients of group events in flight, counted against a budget.
#[derive(Debug)]
struct Budget {
    pending: AtomicUsize,
    max: usize,
}

/// A group event's share of the budget, returned when dropped (by the last lane).
#[derive(Debug)]
pub struct Permit {
    budget: Arc<Budget>,
    recipients: usize,
    /// When the event was handed to the lanes (the start of its fan-out latency).
    sent: Instant,
}

impl Permit {
    /// When the event was handed to the lanes.
    pub fn sent(&self) -> Instant {
        self.sent
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.budget
            .pending
            .fetch_sub(self.recipients, Ordering::AcqRel);
    }
}

/// The lanes of every I/O thread of this process, and the budget.
pub struct Fanout {
    lanes: RwLock<Vec<Lane>>,
    budget: Arc<Budget>,
}

impl Fanout {
    /// A fan-out with no lanes yet, holding at most about `budget` recipients of group
    /// events in flight before [`Fanout::busy`] says so.
    pub fn new(budget: usize) -> Self {
        Fanout {
            lanes: RwLock::new(Vec::new()),
            budget: Arc::new(Budget {
                pending: AtomicUsize::new(0),
                max: budget.max(1),
            }),
        }
    }

    /// Opens a lane for a new I/O thread: from now on every group event reaches it too.
    /// Answers its sending end too (the thread's devices send their account events there).
    pub fn open_lane(&self) -> (Lane, mpsc::Receiver<Job>) {
        let (tx, rx) = mpsc::channel(LANE_CAPACITY);
        if let Ok(mut lanes) = self.lanes.write() {
            lanes.push(tx.clone());
        }
        (tx, rx)
    }

    /// Whether the budget is spent: publishers are told to come back later.
    pub fn busy(&self) -> bool {
        self.budget.pending.load(Ordering::Acquire) >= self.budget.max
    }

    /// Recipients of group events handed over and not yet written to their sockets.
    pub fn pending(&self) -> usize {
        self.budget.pending.load(Ordering::Acquire)
    }

    /// Hands a group event to every lane and returns at once. A lane that is full (the
    /// budget makes this rare) sheds the event for that thread's devices, which read it back
    /// from the group's history; it is logged.
    pub fn send(&self, members: &Members, recipients: usize, event: &Shared) {
        let Ok(lanes) = self.lanes.read() else {
            return;
        };
        if lanes.is_empty() || recipients == 0 {
            return;
        }
        self.budget.pending.fetch_add(recipients, Ordering::AcqRel);
        let permit = Arc::new(Permit {
            budget: self.budget.clone(),
            recipients,
            sent: Instant::now(),
        });
        for lane in lanes.iter() {
            let job = Job::Group {
                members: members.clone(),
                event: event.clone(),
                permit: permit.clone(),
            };
            if let Err(e) = lane.try_send(job) {
                tracing::warn!(error = %e, "an I/O thread's lane is full: group event shed there");
                crate::metrics::lane_shed();
            }
        }
    }

    /// Waits until every job handed to any lane before this call is done (at shutdown,
    /// before the sessions close).
    pub async fn flush(&self) {
        let waits: Vec<_> = match self.lanes.read() {
            Ok(lanes) => lanes
                .iter()
                .filter_map(|lane| {
                    let (tx, rx) = oneshot::channel();
                    lane.try_send(Job::Barrier(tx)).ok().map(|()| rx)
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        for wait in waits {
            let _ = wait.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_list_keeps_count_and_snapshot_follows_changes() {
        let mut list = MemberList::new((0..100).map(|i| Arc::from(format!("m{i}"))));
        assert_eq!(list.len(), 100);
        let before = list.snapshot();
        assert!(
            Arc::ptr_eq(&before, &list.snapshot()),
            "no change, same snapshot"
        );
        list.remove("m3");
        list.remove("nobody");
        list.insert(Arc::from("new"));
        assert_eq!(list.len(), 100);
        let after = list.snapshot();
        let ids: Vec<&str> = after
            .iter()
            .flat_map(|p| p.iter())
            .map(|m| &*m.id)
            .collect();
        assert!(ids.contains(&"new") && !ids.contains(&"m3"));
        let old: usize = before.iter().map(|p| p.len()).sum();
        assert_eq!(old, 100, "a snapshot taken before is not changed");
    }

    #[test]
    fn a_small_list_is_one_partition_and_splits_as_it_grows() {
        let mut list = MemberList::new((0..3).map(|i| Arc::from(format!("m{i}"))));
        assert_eq!(list.snapshot().len(), 1);
        for i in 3..=SPLIT_AT {
            list.insert(Arc::from(format!("m{i}")));
        }
        assert_eq!(list.len(), SPLIT_AT + 1);
        let split = list.snapshot();
        assert_eq!(split.len(), PARTITIONS);
        assert_eq!(split.iter().map(|p| p.len()).sum::<usize>(), SPLIT_AT + 1);
        list.remove("m7");
        list.remove("m7");
        assert_eq!(list.len(), SPLIT_AT);
        let ids: Vec<String> = list
            .snapshot()
            .iter()
            .flat_map(|p| p.iter())
            .map(|m| m.id.to_string())
            .collect();
        assert!(!ids.contains(&"m7".to_owned()) && ids.contains(&"m8".to_owned()));
        let large = MemberList::new((0..=SPLIT_AT).map(|i| Arc::from(format!("m{i}"))));
        assert_eq!(large.parts.len(), PARTITIONS);
    }

    #[tokio::test]
    async fn every_lane_gets_the_event_and_the_budget_comes_back() {
        let fanout = Fanout::new(10);
        let (_, mut a) = fanout.open_lane();
        let (_, mut b) = fanout.open_lane();
        let mut list = MemberList::new((0..10).map(|i| Arc::from(format!("m{i}"))));
        assert!(!fanout.busy());
        let event = Shared::new("g", 1, ByteString::from("f"));
        fanout.send(&list.snapshot(), list.len(), &event);
        assert!(
            fanout.busy(),
            "ten recipients in flight fill a budget of ten"
        );
        let ja = a.recv().await;
        let jb = b.recv().await;
        for job in [&ja, &jb] {
            assert!(
                matches!(job, Some(Job::Group { event, .. }) if event.frame == "f" && event.seq == 1)
            );
        }
        drop(ja);
        assert!(fanout.busy(), "one lane still holds the event");
        drop(jb);
        assert!(!fanout.busy());
        assert_eq!(fanout.pending(), 0);
    }

    #[tokio::test]
    async fn flush_waits_for_every_lane_to_reach_its_barrier() {
        let fanout = std::sync::Arc::new(Fanout::new(10));
        let (_, mut lane) = fanout.open_lane();
        let waiting = tokio::spawn({
            let fanout = fanout.clone();
            async move { fanout.flush().await }
        });
        tokio::task::yield_now().await;
        assert!(
            !waiting.is_finished(),
            "nobody has answered the barrier yet"
        );
        match lane.recv().await {
            Some(Job::Barrier(done)) => {
                let _ = done.send(());
            }
            _ => panic!("a barrier job"),
        }
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("flush returns once answered")
            .expect("flush task");
    }
}
