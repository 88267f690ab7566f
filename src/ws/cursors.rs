//! Where a connection stands in each group it tracks: the cursor that lets a shard send each
//! group event once to a device, across `hello`, a replay and live frames.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use nohash_hasher::NoHashHasher;

type IntMap<V> = HashMap<u64, V, BuildHasherDefault<NoHashHasher<u64>>>;

/// The highest `group_seq` sent to a connection, per group, for the groups whose head its
/// `hello` listed or that it resumed: a group event at or below it is not sent (again),
/// which makes hello-then-live and replay-then-live free of duplicates. Keyed by the
/// group's member key (computed once per event, not per socket); the id is kept to tell two
/// groups with the same key apart (that second group is then simply not tracked).
#[derive(Default)]
pub struct Cursors(IntMap<(Arc<str>, u64)>);

impl Cursors {
    /// Whether event `seq` of `group` (member key `key`) is still to be sent; if so, the
    /// group's cursor (when it is tracked) moves to it. `seq` 0 (unknown) always is.
    pub fn advance(&mut self, key: u64, group: &str, seq: u64) -> bool {
        let Some(cursor) = self.0.get_mut(&key).filter(|(id, _)| **id == *group) else {
            return true;
        };
        if seq == 0 {
            return true;
        }
        if seq <= cursor.1 {
            return false;
        }
        cursor.1 = seq;
        true
    }

    /// Sets the cursor of `group`, tracking it from now on (unless another group holds its
    /// key).
    pub fn set(&mut self, group: &str, seq: u64) {
        let key = chorus_actors::push::fanout::member_key(group);
        match self.0.get_mut(&key) {
            Some((id, at)) if **id == *group => *at = seq,
            Some(_) => {}
            None => {
                self.0.insert(key, (Arc::from(group), seq));
            }
        }
    }

    /// The cursor of `group`, if it is tracked.
    pub fn get(&self, group: &str) -> Option<u64> {
        let key = chorus_actors::push::fanout::member_key(group);
        self.0
            .get(&key)
            .filter(|(id, _)| **id == *group)
            .map(|(_, at)| *at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chorus_actors::push::fanout::member_key;

    #[test]
    fn a_tracked_group_is_sent_each_event_once_and_others_pass() {
        let mut c = Cursors::default();
        let (g, h) = ("g1", "g2");
        // Not tracked: everything passes.
        assert!(c.advance(member_key(g), g, 1));
        c.set(g, 5);
        assert_eq!(c.get(g), Some(5));
        assert!(!c.advance(member_key(g), g, 4));
        assert!(!c.advance(member_key(g), g, 5));
        assert!(c.advance(member_key(g), g, 6));
        assert!(!c.advance(member_key(g), g, 6), "sent once");
        assert_eq!(c.get(g), Some(6));
        // Unknown numbers (an old node's relay) always pass.
        assert!(c.advance(member_key(g), g, 0));
        // Another group with the same key is not taken for the tracked one.
        assert!(c.advance(member_key(g), h, 3));
        assert_eq!(c.get(h), None);
    }
}
