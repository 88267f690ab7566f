//! One I/O thread's sockets and its lane: where frames meet sockets.
//!
//! Each HTTP worker thread owns the WebSocket connections it accepted (a socket never moves
//! between threads) and one [`Shard`]: a table of those connections, an index from member
//! key to connection, and a task that drains the thread's fan-out lane. A pass takes every job
//! waiting (up to [`MAX_PASS`]): a group event walks the member list once, appends the shared
//! frame to the outbound buffer of each local socket of a member, and marks it dirty; then
//! every dirty socket is flushed with one `write` of everything it has piled up. Nothing is
//! allocated, locked or reference counted per recipient: the frame is copied into buffers
//! that are reused.
//!
//! A socket that cannot take all its bytes is *blocked*: its session task waits for it to be
//! writable (and drops it when it stays blocked past the write timeout) while the shard keeps
//! appending. A socket whose queued frames pass the mailbox limit is *too slow*: it gets no
//! more frames, and its session closes it with 1013 after what is queued (bounded by the same
//! timeout).

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use actix_rt::net::TcpStream;
use chorus_actors::push::event::EPHEMERAL_SEQ;
use chorus_actors::push::{Fanout, Job, Lane, Members, Shared, StoredEvent};
use nohash_hasher::NoHashHasher;
use slab::Slab;
use tokio::sync::{Notify, mpsc};

use super::cursors::Cursors;
use super::frames::{Header, Opcode, put_frame};

/// Jobs taken in one pass before the dirty sockets are flushed.
pub const MAX_PASS: usize = 256;

/// Outbound buffers larger than this are let go once empty, so a burst does not pin memory.
const KEEP_CAPACITY: usize = 16 * 1024;

/// Written bytes kept at the front of a blocked socket's buffer before it is compacted
/// (once they are also more than half of it).
const COMPACT_AFTER: usize = 64 * 1024;

/// Group member lists whose local connections a shard remembers.
const CACHED_GROUPS: usize = 64;

type IntMap<V> = HashMap<u64, V, BuildHasherDefault<NoHashHasher<u64>>>;

/// The limits a shard enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Frames queued to one socket, not yet written, before it is too slow.
    pub mailbox: usize,
}

/// What a live frame waiting in a connection is (while it has not had `hello` or replays).
enum Held {
    Account(StoredEvent),
    Shared(Shared),
}

/// Why a connection is to be closed, decided by the shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// More frames queued than the mailbox holds: close 1013.
    TooSlow,
    /// A write failed: the peer is gone.
    Broken,
}

/// One connection as its shard sees it.
pub struct Conn {
    id: u64,
    account: Arc<str>,
    key: u64,
    stream: Rc<TcpStream>,
    out: Vec<u8>,
    /// Bytes at the front of `out` already written (a partial write leaves the rest where it
    /// is instead of moving it).
    sent: usize,
    /// Frames in `out` (or partly written) since it was last empty.
    queued: usize,
    /// The highest account `seq` written (or announced in `hello`): older account events
    /// are dropped, which makes replay-then-live free of duplicates.
    last_sent: u64,
    /// The highest account `seq` this connection knows of.
    latest: u64,
    /// Per group, the highest `group_seq` sent (None while no group is tracked).
    cursors: Option<Box<Cursors>>,
    /// Live frames waiting while `hello` is not out yet or a replay runs.
    held: Option<Vec<Held>>,
    dirty: bool,
    /// Since when `out` has waited for the socket to take it.
    blocked: Option<Instant>,
    verdict: Option<Verdict>,
    /// No frames are queued any more: the session is closing.
    closing: bool,
    /// Wakes the session: the socket blocked, or a verdict fell.
    wake: Rc<Notify>,
}

impl Conn {
    /// Queues a whole frame, or holds it while the connection is not live.
    fn queue_shared(&mut self, header: &Header, event: &Shared, limits: &Limits) -> bool {
        if self.closing {
            return false;
        }
        if self.held.is_some() {
            return self.hold(Held::Shared(event.clone()), limits);
        }
        // An ephemeral event (presence) is in no log: no cursor to check or move.
        if event.seq != EPHEMERAL_SEQ && !self.advance(event.key, &event.group, event.seq) {
            return false;
        }
        self.out.extend_from_slice(header.as_bytes());
        self.out.extend_from_slice(event.frame.as_bytes());
        crate::metrics::push::group_event();
        self.counted(limits)
    }

    /// Whether group event `seq` of `group` is still to be sent (see [`Cursors`]).
    fn advance(&mut self, key: u64, group: &str, seq: u64) -> bool {
        self.cursors
            .as_mut()
            .is_none_or(|c| c.advance(key, group, seq))
    }

    fn set_cursor(&mut self, group: &str, seq: u64) {
        self.cursors
            .get_or_insert_with(Box::default)
            .set(group, seq);
    }

    fn cursor(&self, group: &str) -> Option<u64> {
        self.cursors.as_ref()?.get(group)
    }

    /// Queues an event of the account's log unless it was sent already (an ephemeral one,
    /// in no log, always).
    fn queue_account(&mut self, event: StoredEvent, limits: &Limits) -> bool {
        if self.closing {
            return false;
        }
        self.latest = self.latest.max(event.seq);
        if self.held.is_some() {
            return self.hold(Held::Account(event), limits);
        }
        if event.seq != EPHEMERAL_SEQ {
            if event.seq <= self.last_sent {
                return false;
            }
            self.last_sent = event.seq;
        }
        put_frame(&mut self.out, Opcode::Text, event.frame.as_bytes());
        crate::metrics::push::account_event();
        self.counted(limits)
    }

    /// Keeps a live frame until the connection goes live; more than the mailbox holds makes
    /// it too slow. Answers false (nothing to write yet).
    fn hold(&mut self, item: Held, limits: &Limits) -> bool {
        if let Some(held) = self.held.as_mut() {
            held.push(item);
            if held.len() > limits.mailbox {
                self.condemn(Verdict::TooSlow);
            }
        }
        false
    }

    /// Counts a frame queued; answers true (something to write).
    fn counted(&mut self, limits: &Limits) -> bool {
        crate::metrics::push::frame();
        self.queued += 1;
        if self.queued > limits.mailbox {
            self.condemn(Verdict::TooSlow);
        }
        true
    }

    /// Marks the connection for the shard's flush; true if it was not marked yet.
    fn mark_dirty(&mut self) -> bool {
        !std::mem::replace(&mut self.dirty, true)
    }

    fn condemn(&mut self, verdict: Verdict) {
        if self.verdict.is_none() {
            self.verdict = Some(verdict);
            self.closing = true;
            self.held = None;
            self.wake.notify_one();
        }
    }

    /// Writes as much of `out` as the socket takes now. Answers whether all of it went.
    fn write_out(&mut self) -> bool {
        let mut written = self.sent;
        while written < self.out.len() {
            match self.stream.try_write(&self.out[written..]) {
                Ok(0) => {
                    self.condemn(Verdict::Broken);
                    break;
                }
                Ok(n) => {
                    crate::metrics::push::wrote(n);
                    written += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.condemn(Verdict::Broken);
                    break;
                }
            }
        }
        if written == self.out.len() {
            self.out.clear();
            self.sent = 0;
            self.queued = 0;
            if self.out.capacity() > KEEP_CAPACITY {
                self.out = Vec::new();
            }
            self.blocked = None;
            true
        } else {
            self.sent = written;
            if written > COMPACT_AFTER && written * 2 > self.out.len() {
                self.out.drain(..written);
                self.sent = 0;
            }
            if self.blocked.is_none() {
                self.blocked = Some(Instant::now());
                self.wake.notify_one();
            }
            false
        }
    }
}

/// The sockets here of the accounts with one member key.
#[derive(Default)]
struct Sockets {
    slots: Vec<usize>,
    /// Two accounts here share the key (a 64-bit hash collision): compare ids too.
    mixed: bool,
}

/// The local connections of one group's member list, valid while neither changes.
struct Local {
    /// Held so that the pointer compared stays this list's.
    members: Members,
    generation: u64,
    slots: Vec<usize>,
}

/// The table of one thread.
#[derive(Default)]
struct Table {
    conns: Slab<Conn>,
    /// Connection id -> slot.
    by_id: IntMap<usize>,
    /// Member key -> that account's sockets here.
    by_key: IntMap<Sockets>,
    dirty: Vec<usize>,
    /// Bumped whenever a connection comes or goes: it invalidates `locals`.
    generation: u64,
    /// Recently used member lists and their local connections, newest last.
    locals: Vec<Local>,
}

impl Table {
    /// The slots here of the members in `members`, from the cache or by walking the list.
    fn local_slots(&mut self, members: &Members) -> usize {
        if let Some(at) = self
            .locals
            .iter()
            .position(|l| Arc::ptr_eq(&l.members, members) && l.generation == self.generation)
        {
            return at;
        }
        self.locals
            .retain(|l| l.generation == self.generation && !Arc::ptr_eq(&l.members, members));
        if self.locals.len() >= CACHED_GROUPS {
            self.locals.remove(0);
        }
        let mut slots = Vec::new();
        if !self.by_key.is_empty() {
            for member in members.iter().flat_map(|part| part.iter()) {
                let Some(here) = self.by_key.get(&member.key) else {
                    continue;
                };
                for &slot in &here.slots {
                    if !here.mixed
                        || self
                            .conns
                            .get(slot)
                            .is_some_and(|c| *c.account == *member.id)
                    {
                        slots.push(slot);
                    }
                }
            }
        }
        self.locals.push(Local {
            members: members.clone(),
            generation: self.generation,
            slots,
        });
        self.locals.len() - 1
    }
}

/// One I/O thread's sockets and lane.
pub struct Shard {
    table: RefCell<Table>,
    fanout: Arc<Fanout>,
    /// The sending end of this thread's own lane, for the connections' outlets.
    lane: Lane,
    limits: Limits,
}

thread_local! {
    static HERE: RefCell<Option<Rc<Shard>>> = const { RefCell::new(None) };
}

impl Shard {
    /// This thread's shard for `fanout`, opened (with its lane and drain task) on first use.
    /// Must be called on an actix/tokio runtime thread.
    pub fn here(fanout: &Arc<Fanout>, limits: Limits) -> Rc<Shard> {
        HERE.with(|here| {
            let mut here = here.borrow_mut();
            if let Some(shard) = here.as_ref().filter(|s| Arc::ptr_eq(&s.fanout, fanout)) {
                return shard.clone();
            }
            let (shard, jobs) = Shard::open(fanout, limits);
            actix_rt::spawn(shard.clone().drain(jobs));
            *here = Some(shard.clone());
            shard
        })
    }

    /// A shard with its lane, not yet draining it (benchmarks drive [`Shard::pass`] by hand).
    pub fn open(fanout: &Arc<Fanout>, limits: Limits) -> (Rc<Shard>, mpsc::Receiver<Job>) {
        let (lane, jobs) = fanout.open_lane();
        let shard = Rc::new(Shard {
            table: RefCell::new(Table::default()),
            fanout: fanout.clone(),
            lane,
            limits,
        });
        (shard, jobs)
    }

    /// The lane of this thread (the outlets of its connections send account events there).
    pub fn lane(&self) -> &Lane {
        &self.lane
    }

    async fn drain(self: Rc<Self>, mut jobs: mpsc::Receiver<Job>) {
        while let Some(job) = jobs.recv().await {
            self.pass(job, &mut jobs);
            // The thread also serves HTTP requests and its sessions: let them run between
            // passes, however busy the lane is.
            tokio::task::yield_now().await;
        }
    }

    /// Takes `first` and up to [`MAX_PASS`] waiting jobs, then flushes every dirty socket.
    pub fn pass(&self, first: Job, jobs: &mut mpsc::Receiver<Job>) {
        let mut barriers = Vec::new();
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(job) = next {
            match job {
                Job::Group {
                    members,
                    event,
                    permit,
                } => {
                    self.on_group(&members, &event);
                    crate::metrics::push::fanned_out(permit.sent());
                }
                Job::Account { device, event } => self.on_account(device, event),
                Job::Barrier(done) => barriers.push(done),
            }
            taken += 1;
            next = if taken < MAX_PASS {
                jobs.try_recv().ok()
            } else {
                None
            };
        }
        self.flush();
        crate::metrics::push::flush();
        for done in barriers {
            let _ = done.send(());
        }
    }

    /// A group event: the frame goes to each local socket of a member. The local sockets of
    /// a member list are found once and remembered until the list or the table changes, so
    /// an event to a group costs a walk of its local sockets, not of all its members.
    fn on_group(&self, members: &Members, event: &Shared) {
        let mut table = self.table.borrow_mut();
        if table.conns.is_empty() {
            return;
        }
        let at = table.local_slots(members);
        let Table {
            conns,
            dirty,
            locals,
            ..
        } = &mut *table;
        let header = Header::new(Opcode::Text, event.frame.len());
        for &slot in &locals[at].slots {
            if let Some(conn) = conns.get_mut(slot)
                && conn.queue_shared(&header, event, &self.limits)
                && conn.mark_dirty()
            {
                dirty.push(slot);
            }
        }
    }

    fn on_account(&self, device: u64, event: StoredEvent) {
        let mut table = self.table.borrow_mut();
        let Table {
            conns,
            by_id,
            dirty,
            ..
        } = &mut *table;
        if let Some(&slot) = by_id.get(&device)
            && let Some(conn) = conns.get_mut(slot)
            && conn.queue_account(event, &self.limits)
            && conn.mark_dirty()
        {
            dirty.push(slot);
        }
    }

    /// Writes out every dirty socket that is not blocked (a blocked one is its session's).
    fn flush(&self) {
        let mut table = self.table.borrow_mut();
        let Table { conns, dirty, .. } = &mut *table;
        for slot in dirty.drain(..) {
            if let Some(conn) = conns.get_mut(slot) {
                conn.dirty = false;
                if conn.blocked.is_none() {
                    conn.write_out();
                }
            }
        }
    }

    /// Registers a connection of `account`. It holds live frames until [`Shard::hello`].
    pub fn register(
        &self,
        id: u64,
        account: Arc<str>,
        stream: Rc<TcpStream>,
        wake: Rc<Notify>,
    ) -> usize {
        let key = chorus_actors::push::fanout::member_key(&account);
        let mut table = self.table.borrow_mut();
        let slot = table.conns.insert(Conn {
            id,
            account,
            key,
            stream,
            out: Vec::new(),
            sent: 0,
            queued: 0,
            last_sent: 0,
            latest: 0,
            cursors: None,
            held: Some(Vec::new()),
            dirty: false,
            blocked: None,
            verdict: None,
            closing: false,
            wake,
        });
        table.by_id.insert(id, slot);
        table.generation += 1;
        crate::metrics::push::connected();
        let Table { conns, by_key, .. } = &mut *table;
        let here = by_key.entry(key).or_default();
        if let Some(&other) = here.slots.first()
            && conns
                .get(other)
                .is_some_and(|c| c.account != conns[slot].account)
        {
            here.mixed = true;
        }
        here.slots.push(slot);
        slot
    }

    /// Forgets a connection.
    pub fn unregister(&self, slot: usize) {
        let mut table = self.table.borrow_mut();
        if !table.conns.contains(slot) {
            return;
        }
        let conn = table.conns.remove(slot);
        crate::metrics::push::disconnected();
        table.by_id.remove(&conn.id);
        table.generation += 1;
        if let Some(here) = table.by_key.get_mut(&conn.key) {
            here.slots.retain(|s| *s != slot);
            if here.slots.is_empty() {
                table.by_key.remove(&conn.key);
            }
        }
    }

    /// Runs `f` on the connection in `slot`, then writes out what it queued (unless the
    /// socket is blocked).
    pub fn with<R>(&self, slot: usize, f: impl FnOnce(&mut Conn) -> R) -> Option<R> {
        let mut table = self.table.borrow_mut();
        let conn = table.conns.get_mut(slot)?;
        let result = f(conn);
        if conn.out.len() > conn.sent && conn.blocked.is_none() {
            conn.write_out();
        }
        crate::metrics::push::flush();
        Some(result)
    }
}

impl Conn {
    /// Writes `hello` (the account's log at `seq`, each listed group's at its head) and lets
    /// held frames through: from then on, only events after those are sent.
    pub fn hello(&mut self, hello: &str, seq: u64, groups: &[(String, u64)], limits: &Limits) {
        put_frame(&mut self.out, Opcode::Text, hello.as_bytes());
        crate::metrics::push::frame();
        self.last_sent = seq;
        self.latest = self.latest.max(seq);
        for (group, head) in groups {
            self.set_cursor(group, *head);
        }
        self.go_live(limits);
    }

    /// A replay begins: live frames wait, account events after `since` are sent again, and
    /// so are the events of each group in `groups` after the device's cursor for it (capped
    /// at what the connection has seen of the group, or at its head: a cursor past the head
    /// must not hide the events to come).
    pub fn begin_replay(&mut self, since: u64, groups: &[(&str, u64, u64)]) {
        if self.closing {
            return;
        }
        self.last_sent = since.min(self.latest);
        for &(group, after, head) in groups {
            let known = self.cursor(group).map_or(head, |at| at.max(head));
            self.set_cursor(group, after.min(known));
        }
        self.held.get_or_insert_with(Vec::new);
    }

    /// Live frames wait (a `resume` is being checked); [`Conn::begin_replay`] or
    /// [`Conn::go_live`] follows.
    pub fn hold_live(&mut self) {
        if !self.closing {
            self.held.get_or_insert_with(Vec::new);
        }
    }

    /// One replayed event of the account's log.
    pub fn replayed(&mut self, event: StoredEvent) {
        self.latest = self.latest.max(event.seq);
        if !self.closing && event.seq > self.last_sent {
            self.last_sent = event.seq;
            put_frame(&mut self.out, Opcode::Text, event.frame.as_bytes());
            crate::metrics::push::replayed();
        }
    }

    /// One replayed event of `group`'s log.
    pub fn replayed_group(&mut self, group: &str, event: StoredEvent) {
        let key = chorus_actors::push::fanout::member_key(group);
        if !self.closing && self.advance(key, group, event.seq) {
            put_frame(&mut self.out, Opcode::Text, event.frame.as_bytes());
        }
    }

    /// The replay of `group` could not be made (`resync_required`): the device goes on
    /// live from the group's `head`, as the account's log goes on from `hello`'s `seq`.
    pub fn skip_group(&mut self, group: &str, head: u64) {
        let at = self.cursor(group).map_or(head, |at| at.max(head));
        self.set_cursor(group, at);
    }

    /// The replay is over (or `hello` is out): held frames follow, in order.
    pub fn go_live(&mut self, limits: &Limits) {
        let Some(held) = self.held.take() else {
            return;
        };
        for item in held {
            match item {
                Held::Account(event) => {
                    self.queue_account(event, limits);
                }
                Held::Shared(event) => {
                    let header = Header::new(Opcode::Text, event.frame.len());
                    self.queue_shared(&header, &event, limits);
                }
            }
        }
    }

    /// Queues a frame of the session's own (pong, error, ping).
    pub fn control(&mut self, opcode: Opcode, payload: &[u8], limits: &Limits) {
        if self.closing {
            return;
        }
        put_frame(&mut self.out, opcode, payload);
        self.counted(limits);
    }

    /// Stops queueing and appends the close frame after what is queued.
    pub fn close(&mut self, payload: &[u8]) {
        if !std::mem::replace(&mut self.closing, true) {
            self.held = None;
            put_frame(&mut self.out, Opcode::Close, payload);
            crate::metrics::push::frame();
        }
    }

    /// The shard's verdict on this connection, if any.
    pub fn verdict(&self) -> Option<Verdict> {
        self.verdict
    }

    /// Since when the socket has refused bytes, if it does.
    pub fn blocked_since(&self) -> Option<Instant> {
        self.blocked
    }

    /// The socket is writable again: write what waits. Answers whether all of it went.
    pub fn unblock(&mut self) -> bool {
        self.blocked = None;
        self.write_out()
    }

    /// Whether the connection is replaying (or waiting for `hello`).
    pub fn holding(&self) -> bool {
        self.held.is_some()
    }
}

impl Shard {
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
}
