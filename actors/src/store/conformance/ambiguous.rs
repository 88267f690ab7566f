//! The ambiguous-write check: a write may land although its writer was told it failed (a
//! timeout on a cluster). A retry of it must store nothing twice, and the writer, reloading,
//! must go on from the stored head, so no event is lost or overwritten, on either log.

use crate::push::event::{EventType, encode_event};
use crate::store::{GroupStore, GroupWrite, SubscriberStore, SubscriberWrite};

use super::{Fixture, group_record, record};

/// Event `seq` of an account's log, told apart by `tag`.
fn tagged(seq: u64, tag: &str) -> crate::push::event::StoredEvent {
    encode_event(
        EventType::FRIEND_ADDED,
        seq,
        &serde_json::json!({"n": seq, "tag": tag}),
    )
}

/// A write whose caller was told it failed may still land (a timeout on a cluster: the
/// "ambiguous write"); simulated here by a write that lands and whose answer the writer does
/// not trust. The writer then must not reuse its seqs from memory: it reloads, and goes on
/// from the stored head. A repeat of the same write (a retry) is answered as applied and
/// stores nothing twice; the next write takes the seq after it; neither is lost or
/// overwritten. Holds on both logs, an account's and a group's.
pub async fn ambiguous_write_is_neither_lost_nor_overwritten<F: Fixture>(fx: &F) {
    let store = fx.open().await;

    // An account's log.
    let mut w = SubscriberWrite::new("s1");
    w.record = Some(record("s1", "Ann"));
    w.events.push(tagged(1, "first"));
    store.commit(w).await.expect("first write");
    let ambiguous = || {
        let mut w = SubscriberWrite::new("s1");
        w.events.push(tagged(2, "ambiguous"));
        w
    };
    store.commit(ambiguous()).await.expect("the write lands");
    store
        .commit(ambiguous())
        .await
        .expect("a repeat of a write that landed is answered as applied");
    let snap = store
        .load_subscriber("s1")
        .await
        .expect("reload")
        .expect("account present");
    assert_eq!(
        snap.last_seq, 2,
        "the reloaded head counts the write that landed"
    );
    let mut next = SubscriberWrite::new("s1");
    next.events.push(tagged(snap.last_seq + 1, "next"));
    store.commit(next).await.expect("the next write");
    assert_eq!(
        store.read_events("s1", 0, 10).await.expect("read"),
        vec![
            tagged(1, "first"),
            tagged(2, "ambiguous"),
            tagged(3, "next")
        ],
        "every write's event once, at its own seq"
    );

    // A group's log, the same way.
    let frame = |seq: u64, tag: &str| {
        crate::push::event::group_frame(
            EventType::GROUP_MESSAGE,
            "g1",
            seq,
            &format!("{{\"tag\":\"{tag}\"}}"),
        )
    };
    let mut g = GroupWrite::new("g1");
    g.record = Some(group_record("g1"));
    g.events.push(frame(1, "created"));
    store.commit_group(g).await.expect("group");
    let ambiguous = || {
        let mut g = GroupWrite::new("g1");
        g.events = vec![frame(2, "ambiguous"), frame(3, "ambiguous too")];
        g
    };
    store
        .commit_group(ambiguous())
        .await
        .expect("the write lands");
    store
        .commit_group(ambiguous())
        .await
        .expect("a repeat of a write that landed is answered as applied");
    let snap = store
        .load_group("g1")
        .await
        .expect("reload")
        .expect("group present");
    assert_eq!(snap.last_seq, 3);
    let mut next = GroupWrite::new("g1");
    next.events.push(frame(snap.last_seq + 1, "next"));
    store.commit_group(next).await.expect("the next write");
    assert_eq!(
        store.read_group_events("g1", 0, 10).await.expect("read"),
        vec![
            frame(1, "created"),
            frame(2, "ambiguous"),
            frame(3, "ambiguous too"),
            frame(4, "next"),
        ]
    );
    store.close().await.expect("close");
}
