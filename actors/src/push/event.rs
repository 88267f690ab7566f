//! Events as clients receive them, and the seam through which they are pushed.
//!
//! An event is encoded to its wire frame exactly once, into a [`ByteString`] (reference
//! counted), and that same buffer is stored in the event log and queued to every device.
//! A push goes through [`Outlet`] only, so a later cross-node transport is one more
//! implementation, not a change to the actors.

use bytestring::ByteString;
use serde::Serialize;

/// One event of an account's log, as stored and as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Position in the account's log: 1, 2, 3, ... with no gaps.
    pub seq: u64,
    /// The complete text frame: `{"type","seq","data"}` for an account's event,
    /// `{"type","group_id","group_seq","data"}` for a group's (whose number `seq` is then).
    pub frame: ByteString,
}

/// Event types of the contract. A `&'static str` newtype keeps the wire names in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventType(pub &'static str);

impl EventType {
    pub const FRIEND_REQUESTED: Self = Self("friend.requested");
    pub const FRIEND_ADDED: Self = Self("friend.added");
    pub const FRIEND_REMOVED: Self = Self("friend.removed");
    pub const PROFILE_UPDATED: Self = Self("profile.updated");
    pub const ACTIVITY_POSTED: Self = Self("activity.posted");
    pub const RELEASE_STATUS: Self = Self("release.status");
    pub const GROUP_MESSAGE: Self = Self("group.message");
    pub const GROUP_DYNAMIC: Self = Self("group.dynamic");
    pub const BINDING_REQUESTED: Self = Self("binding.requested");
    pub const BINDING_APPROVED: Self = Self("binding.approved");
    pub const BINDING_REJECTED: Self = Self("binding.rejected");
    pub const BINDING_REVOKED: Self = Self("binding.revoked");
    /// Ephemeral ([`ephemeral_frame`]): never stored, so not among [`EventType::ALL`].
    pub const PRESENCE_CHANGED: Self = Self("presence.changed");

    /// Every event name a log holds, for [`EventType::named`].
    pub const ALL: [Self; 12] = [
        Self::FRIEND_REQUESTED,
        Self::FRIEND_ADDED,
        Self::FRIEND_REMOVED,
        Self::PROFILE_UPDATED,
        Self::ACTIVITY_POSTED,
        Self::RELEASE_STATUS,
        Self::GROUP_MESSAGE,
        Self::GROUP_DYNAMIC,
        Self::BINDING_REQUESTED,
        Self::BINDING_APPROVED,
        Self::BINDING_REJECTED,
        Self::BINDING_REVOKED,
    ];

    /// The event called `name` (as a stored step names it), if there is one.
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.0 == name)
    }
}

/// Serialises an event's `data` once, for [`frame_with_data`] to reuse for every recipient.
pub fn encode_data<D: Serialize>(data: &D) -> std::sync::Arc<str> {
    serde_json::to_string(data)
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "event data failed to encode");
            "null".to_owned()
        })
        .into()
}

/// Writes `{"type", ["group_id",] <counter>, "data"}` around data already encoded: one copy
/// of the data, never a re-serialisation.
fn frame(kind: EventType, group_id: Option<&str>, seq: u64, data: &str) -> StoredEvent {
    let mut text = String::with_capacity(data.len() + kind.0.len() + 64);
    text.push_str(r#"{"type":""#);
    text.push_str(kind.0);
    match group_id {
        Some(group_id) => {
            text.push_str(r#"","group_id":""#);
            text.push_str(group_id);
            text.push_str(r#"","group_seq":"#);
        }
        None => text.push_str(r#"","seq":"#),
    }
    text.push_str(&seq.to_string());
    text.push_str(r#","data":"#);
    text.push_str(data);
    text.push('}');
    StoredEvent {
        seq,
        frame: ByteString::from(text),
    }
}

/// The number an ephemeral event carries in place of a log's: logs count from 1, so no
/// stored event has it. A device's session sends such an event to whoever is live, whatever
/// its cursors (`presence.changed`: never stored, never replayed).
pub const EPHEMERAL_SEQ: u64 = 0;

/// Builds an ephemeral event `{"type","data"}` (no `seq`, no `group_seq`: it is in no log),
/// numbered [`EPHEMERAL_SEQ`] for the push path.
pub fn ephemeral_frame(kind: EventType, data: &str) -> StoredEvent {
    let mut text = String::with_capacity(data.len() + kind.0.len() + 24);
    text.push_str(r#"{"type":""#);
    text.push_str(kind.0);
    text.push_str(r#"","data":"#);
    text.push_str(data);
    text.push('}');
    StoredEvent {
        seq: EPHEMERAL_SEQ,
        frame: ByteString::from(text),
    }
}

/// Builds `{"type","seq","data"}` around data already encoded by [`encode_data`]: one copy
/// per recipient account (whose `seq` differs), never a re-serialisation.
pub fn frame_with_data(kind: EventType, seq: u64, data: &str) -> StoredEvent {
    frame(kind, None, seq, data)
}

/// Builds a group event frame `{"type","group_id","group_seq","data"}`: encoded once per
/// group event and shared, byte for byte, by every member's every device. `group_seq`
/// counts the group's events; the frame has no `seq`, which belongs to the account's log
/// alone (contract revision 2).
pub fn group_frame(kind: EventType, group_id: &str, seq: u64, data: &str) -> StoredEvent {
    frame(kind, Some(group_id), seq, data)
}

/// A group event as read back from the group's log, in the current shape. Versions before
/// contract revision 2 stored group frames as `{"type","group_id","seq","data"}`: such a
/// frame is rewritten on read to `{"type","group_id","group_seq","data"}` (only its header
/// changes; `data` is copied as it is). A frame already in the current shape is returned
/// untouched, without a copy. The header is the one [`group_frame`] writes, so it is matched
/// exactly: the event's type, then `group_id` and the event's own number.
pub fn current_group_frame(group_id: &str, event: StoredEvent) -> StoredEvent {
    match legacy_header_len(&event.frame, group_id, event.seq) {
        Some(at) => {
            let (head, rest) = (&event.frame[..at], &event.frame[at..]);
            let head = head.strip_suffix(r#""seq":"#).unwrap_or(head);
            let mut text = String::with_capacity(event.frame.len() + 6);
            text.push_str(head);
            text.push_str(r#""group_seq":"#);
            text.push_str(rest);
            StoredEvent {
                seq: event.seq,
                frame: ByteString::from(text),
            }
        }
        None => event,
    }
}

/// In a frame of the old shape, the length of its header up to and including `"seq":`
/// (where the number starts); `None` for any other frame.
fn legacy_header_len(frame: &str, group_id: &str, seq: u64) -> Option<usize> {
    let rest = frame.strip_prefix(r#"{"type":""#)?;
    let kind_len = rest.find('"')?;
    EventType::named(&rest[..kind_len])?;
    let rest = rest[kind_len..].strip_prefix(r#"","group_id":""#)?;
    let rest = rest.strip_prefix(group_id)?;
    let rest = rest.strip_prefix(r#"","seq":"#)?;
    let digits = seq.to_string();
    rest.strip_prefix(digits.as_str())?
        .strip_prefix(r#","data":"#)?;
    Some(frame.len() - rest.len())
}

/// Encodes `{"type","seq","data"}` in one step. Only the storage conformance suite builds
/// events this way; the actors encode `data` once and frame it per recipient.
#[cfg(any(test, feature = "conformance"))]
pub fn encode_event<D: Serialize>(kind: EventType, seq: u64, data: &D) -> StoredEvent {
    frame_with_data(kind, seq, &encode_data(data))
}

/// What became of one push to a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued for the device; it will be written in order.
    Queued,
    /// The device is gone, or was too slow and has been told to go (close 1013): forget it.
    Gone,
}

/// A device (connection) that events of one account's own log are pushed to. Group events
/// do not pass here: they reach the device's I/O thread through the fan-out lanes.
///
/// `push` must never block or await: it is called from inside the account's actor for
/// every device. Implementations queue into a bounded queue and, when it is full, close the
/// connection with 1013 and answer [`Pushed::Gone`]; the device catches up with `resume`.
pub trait Outlet: Send + Sync + 'static {
    /// A process-unique id of this connection, used to detach it.
    fn id(&self) -> u64;
    /// Queues one event of the account's own log (the device drops any `seq` it has sent).
    fn push(&self, event: &StoredEvent) -> Pushed;
    /// Events meant for this device may have been lost on the way (cluster mode: the NATS
    /// connection dropped, or a subscription overflowed): tell it to catch up, as a full
    /// queue does (close 1013, the device resumes from its `seq`). Nothing by default.
    fn resume(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_has_type_seq_data() {
        let data = encode_data(&serde_json::json!({"account_id": "x"}));
        let ev = frame_with_data(EventType::FRIEND_ADDED, 7, &data);
        let v: serde_json::Value = serde_json::from_str(&ev.frame).unwrap_or_default();
        assert_eq!(v["type"], "friend.added");
        assert_eq!(v["seq"], 7);
        assert_eq!(v["data"]["account_id"], "x");
        let g = group_frame(EventType::GROUP_MESSAGE, "g1", 3, &data);
        let v: serde_json::Value = serde_json::from_str(&g.frame).unwrap_or_default();
        assert_eq!(v["group_id"], "g1");
        assert_eq!(v["group_seq"], 3);
        assert!(v.get("seq").is_none(), "a group frame has no seq: {v}");
        assert_eq!(v["data"]["account_id"], "x");
    }

    #[test]
    fn a_group_frame_of_the_old_shape_is_rewritten_on_read() {
        let old = StoredEvent {
            seq: 12,
            frame: ByteString::from_static(
                r#"{"type":"group.message","group_id":"g1","seq":12,"data":{"text":"\"seq\":12"}}"#,
            ),
        };
        let new = current_group_frame("g1", old);
        assert_eq!(new.seq, 12);
        assert_eq!(
            &*new.frame,
            r#"{"type":"group.message","group_id":"g1","group_seq":12,"data":{"text":"\"seq\":12"}}"#
        );
        // Already current: the same buffer comes back.
        let current = group_frame(EventType::BINDING_APPROVED, "g1", 4, "{}");
        let again = current_group_frame("g1", current.clone());
        assert_eq!(again, current);
        assert_eq!(again.frame.as_ptr(), current.frame.as_ptr());
        // Only the exact old header is rewritten: another group, another number, an
        // account event, an unknown type.
        for (gid, frame) in [
            (
                "g2",
                r#"{"type":"group.message","group_id":"g1","seq":12,"data":{}}"#,
            ),
            (
                "g1",
                r#"{"type":"group.message","group_id":"g1","seq":13,"data":{}}"#,
            ),
            ("g1", r#"{"type":"friend.added","seq":12,"data":{}}"#),
            (
                "g1",
                r#"{"type":"nope","group_id":"g1","seq":12,"data":{}}"#,
            ),
        ] {
            let event = StoredEvent {
                seq: 12,
                frame: ByteString::from(frame),
            };
            assert_eq!(current_group_frame(gid, event.clone()), event, "{frame}");
        }
    }
}
