//! The WebSocket hot path's metrics: per frame, per event and per `write` only a plain
//! thread-local add (the shard is one per thread, so nothing is shared); the thread hands the
//! sums to the recorder once per pass of its lane ([`flush`]), and records each group
//! event's fan-out latency then, once its frames are written. Until [`bind`] (no recorder:
//! tests, benchmarks) the sums are dropped at each flush.

use std::cell::{Cell, RefCell};
use std::sync::OnceLock;
use std::time::Instant;

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

use super::{
    EVENTS_PUSHED, EVENTS_REPLAYED, FANOUT_DURATION, WS_CONNECTIONS, WS_FRAMES, WS_WRITES,
    WS_WRITTEN_BYTES,
};

/// The recorder's handles, taken once.
struct Handles {
    group_events: Counter,
    account_events: Counter,
    replayed: Counter,
    frames: Counter,
    writes: Counter,
    bytes: Counter,
    fanout: Histogram,
    connections: Gauge,
}

static HANDLES: OnceLock<Handles> = OnceLock::new();

/// What one thread counted since its last flush.
struct Tally {
    group_events: Cell<u64>,
    account_events: Cell<u64>,
    replayed: Cell<u64>,
    frames: Cell<u64>,
    writes: Cell<u64>,
    bytes: Cell<u64>,
    /// When each group event of this pass was handed to the lanes.
    sent: RefCell<Vec<Instant>>,
}

thread_local! {
    static TALLY: Tally = const {
        Tally {
            group_events: Cell::new(0),
            account_events: Cell::new(0),
            replayed: Cell::new(0),
            frames: Cell::new(0),
            writes: Cell::new(0),
            bytes: Cell::new(0),
            sent: RefCell::new(Vec::new()),
        }
    };
}

/// Takes the handles from the recorder just installed.
pub(super) fn bind() {
    let _ = HANDLES.set(Handles {
        group_events: counter!(EVENTS_PUSHED, "kind" => "group"),
        account_events: counter!(EVENTS_PUSHED, "kind" => "account"),
        replayed: counter!(EVENTS_REPLAYED),
        frames: counter!(WS_FRAMES),
        writes: counter!(WS_WRITES),
        bytes: counter!(WS_WRITTEN_BYTES),
        fanout: histogram!(FANOUT_DURATION),
        connections: gauge!(WS_CONNECTIONS),
    });
}

fn add(cell: impl FnOnce(&Tally) -> &Cell<u64>, n: u64) {
    TALLY.with(|t| {
        let c = cell(t);
        c.set(c.get() + n);
    });
}

/// A group event was queued to a socket.
pub fn group_event() {
    add(|t| &t.group_events, 1);
}

/// This thread has queued a group event, handed to the lanes at `sent`, to its sockets: its
/// latency is recorded at the next [`flush`], once they are written.
pub fn fanned_out(sent: Instant) {
    TALLY.with(|t| t.sent.borrow_mut().push(sent));
}

/// An event of an account's log was queued to its device.
pub fn account_event() {
    add(|t| &t.account_events, 1);
}

/// An event was sent again by `resume`.
pub fn replayed() {
    add(|t| &t.replayed, 1);
    add(|t| &t.frames, 1);
}

/// A frame was queued to a socket.
pub fn frame() {
    add(|t| &t.frames, 1);
}

/// A `write` call took `bytes`.
pub fn wrote(bytes: usize) {
    TALLY.with(|t| {
        t.writes.set(t.writes.get() + 1);
        t.bytes.set(t.bytes.get() + bytes as u64);
    });
}

/// A WebSocket connection opened on this node.
pub fn connected() {
    if let Some(h) = HANDLES.get() {
        h.connections.increment(1.0);
    }
}

/// A WebSocket connection closed on this node.
pub fn disconnected() {
    if let Some(h) = HANDLES.get() {
        h.connections.decrement(1.0);
    }
}

/// Hands what this thread counted to the recorder (after a pass has written its sockets).
pub fn flush() {
    TALLY.with(|t| {
        let handles = HANDLES.get();
        for (cell, handle) in [
            (&t.group_events, handles.map(|h| &h.group_events)),
            (&t.account_events, handles.map(|h| &h.account_events)),
            (&t.replayed, handles.map(|h| &h.replayed)),
            (&t.frames, handles.map(|h| &h.frames)),
            (&t.writes, handles.map(|h| &h.writes)),
            (&t.bytes, handles.map(|h| &h.bytes)),
        ] {
            let n = cell.replace(0);
            if n > 0
                && let Some(handle) = handle
            {
                handle.increment(n);
            }
        }
        let mut sent = t.sent.borrow_mut();
        if !sent.is_empty() {
            if let Some(h) = handles {
                let now = Instant::now();
                for at in sent.iter() {
                    h.fanout.record(now.duration_since(*at).as_secs_f64());
                }
            }
            sent.clear();
        }
    });
}
