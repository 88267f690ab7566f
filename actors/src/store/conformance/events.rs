//! Checks of an account's event log: frames page oldest first, byte for byte, without gaps,
//! past seq 255 (keys ordered as numbers, not text). Devices catch up on missed events from it.

use crate::store::{SubscriberStore, SubscriberWrite};

use super::{Fixture, event, record};

/// Events page oldest first, byte for byte, with no gaps, across seq 255/256.
pub async fn events_page_in_order<F: Fixture>(fx: &F) {
    let store = fx.open().await;
    let mut w = SubscriberWrite::new("v1");
    w.record = Some(record("v1", "Events"));
    w.events = (1..=300).map(event).collect();
    store.commit(w).await.expect("events");
    let page = store.read_events("v1", 0, 100).await.expect("read");
    assert_eq!(page.len(), 100);
    assert_eq!(page[0], event(1), "frames read back byte for byte");
    assert!(
        page.windows(2).all(|p| p[1].seq == p[0].seq + 1),
        "oldest first, no gaps"
    );
    let tail = store.read_events("v1", 250, 100).await.expect("read");
    assert_eq!(tail.first().map(|e| e.seq), Some(251));
    assert_eq!(tail.len(), 50);
    assert!(
        store
            .read_events("v1", 300, 10)
            .await
            .expect("read")
            .is_empty()
    );
    // seq 256 and above must order after 255 (big-endian keys, not text).
    let snap = store
        .load_subscriber("v1")
        .await
        .expect("load")
        .expect("present");
    assert_eq!(snap.last_seq, 300);
    store.close().await.expect("close");
}
