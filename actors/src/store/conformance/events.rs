//! Checks of an account's event log: frames page oldest first, byte for byte, without gaps,
//! past seq 255 (keys ordered as numbers, not text); appends to many logs in one call (a
//! fan-out to friends). Devices catch up on missed events from it.

use crate::store::{LogAppend, SubscriberStore, SubscriberWrite};

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

/// Appends to many logs in one call: each continues its own log, each result answers its own
/// append, in order; the heads (`last_seqs`, `load_subscriber`) count them; a write of the
/// account's own goes on after them; all of it survives a close and a reopen.
pub async fn appends_to_many_logs<F: Fixture>(fx: &F) {
    let store = fx.open().await;
    let mut w = SubscriberWrite::new("m1");
    w.record = Some(record("m1", "Ann"));
    w.events = (1..=3).map(event).collect();
    store.commit(w).await.expect("m1");
    let mut w = SubscriberWrite::new("m2");
    w.record = Some(record("m2", "Bob"));
    store.commit(w).await.expect("m2");
    let ids = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    assert_eq!(
        store
            .last_seqs(&ids(&["m1", "m2", "nobody"]))
            .await
            .expect("heads"),
        vec![3, 0, 0],
        "a log's head, 0 for a log without events"
    );
    assert!(store.append_events(Vec::new()).await.is_empty());

    let results = store
        .append_events(vec![
            LogAppend {
                account: "m1".into(),
                events: vec![event(4)],
                epoch: None,
            },
            LogAppend {
                account: "m2".into(),
                events: vec![event(1), event(2)],
                epoch: None,
            },
        ])
        .await;
    assert_eq!(results.len(), 2, "one result per append");
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(
        store.read_events("m1", 0, 10).await.expect("read m1"),
        (1..=4).map(event).collect::<Vec<_>>()
    );
    assert_eq!(
        store.read_events("m2", 0, 10).await.expect("read m2"),
        vec![event(1), event(2)]
    );
    assert_eq!(
        store.last_seqs(&ids(&["m2", "m1"])).await.expect("heads"),
        vec![2, 4],
        "heads in the order asked"
    );
    let snap = store
        .load_subscriber("m2")
        .await
        .expect("load")
        .expect("m2");
    assert_eq!(snap.last_seq, 2, "the snapshot's head counts the appends");
    let mut w = SubscriberWrite::new("m2");
    w.events.push(event(3));
    store
        .commit(w)
        .await
        .expect("the account's own write after the appends");

    // More accounts than any engine handles at once, answered in order.
    let many: Vec<String> = (0..300).map(|n| format!("n{n}")).collect();
    let results = store
        .append_events(
            many.iter()
                .map(|id| LogAppend {
                    account: id.clone(),
                    events: vec![event(1)],
                    epoch: None,
                })
                .collect(),
        )
        .await;
    assert_eq!(results.len(), many.len());
    assert!(results.iter().all(Result::is_ok));
    assert!(
        store
            .last_seqs(&many)
            .await
            .expect("heads")
            .iter()
            .all(|&s| s == 1)
    );

    store.close().await.expect("close");
    drop(store);
    let store = fx.open().await;
    assert_eq!(
        store.read_events("m2", 0, 10).await.expect("read m2"),
        (1..=3).map(event).collect::<Vec<_>>(),
        "appends are durable"
    );
    assert_eq!(
        store.read_events("n299", 0, 10).await.expect("read n299"),
        vec![event(1)]
    );
    store.close().await.expect("close");
}
