//! Checks of keys over the engine's limit: the embedded engine asserts (a panic) on a key
//! over 65,535 bytes and a cluster refuses one, so an engine must refuse it itself, as
//! [`StoreError::KeyTooLong`], before any of the write is stored or the request sent. The edge
//! bounds every client input far below this (`model::limits`); this is the defence behind it.

use crate::StoreError;
use crate::model::{Claim, FeedPos};
use crate::store::{
    EdgeChange, EdgeKind, GroupStore, GroupWrite, SubscriberStore, SubscriberWrite,
};

use super::{Fixture, event, group_record, record};

/// Asserts `result` is the engine's refusal of an over-long key.
#[track_caller]
fn refused<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::KeyTooLong { len, max, .. }) => assert!(len > max, "{what}: {len}"),
        other => panic!("{what}: a key over the engine's limit must be refused, got {other:?}"),
    }
}

/// The reproduction of issue 13 at the store: a claim of 22,000 × "İ" lower-cased (66 KB).
/// The write is refused whole (its record, its other claim, its event), reads of such keys
/// are refused alike, and the store goes on taking writes.
pub async fn keys_over_the_engine_limit_are_refused<F: Fixture>(fx: &F) {
    let store = fx.open().await;
    let huge = Claim::handle("webhook", &"İ".repeat(22_000));
    assert!(huge.0.len() > usize::from(u16::MAX));
    let fine = Claim::email("k1@example.com");
    let mut write = SubscriberWrite::new("k1");
    write.record = Some(record("k1", "Ann"));
    write.claims.push(fine.clone());
    write.claims.push(huge.clone());
    write.events.push(event(1));
    refused(store.commit(write).await, "a write with an over-long claim");
    assert!(store.load_account("k1").await.expect("load").is_none());
    assert!(store.find_claim(&fine).await.expect("find").is_none());
    assert!(
        store
            .read_events("k1", 0, 10)
            .await
            .expect("read")
            .is_empty()
    );

    let mut edge = SubscriberWrite::new("k1");
    edge.record = Some(record("k1", "Ann"));
    edge.edges.push(EdgeChange::Delete {
        kind: EdgeKind::Friend,
        other: "b".repeat(70_000),
    });
    refused(store.commit(edge).await, "a write with an over-long edge");
    let mut group = GroupWrite::new("g1");
    group.record = Some(group_record("g1"));
    group.members_add.push("m".repeat(70_000));
    refused(
        store.commit_group(group).await,
        "a group write with an over-long member",
    );
    assert!(store.load_group("g1").await.expect("load").is_none());

    let long_id = "a".repeat(70_000);
    refused(store.find_claim(&huge).await, "reading an over-long claim");
    refused(
        store.load_subscriber(&long_id).await,
        "loading an over-long id",
    );
    refused(
        store.read_events(&long_id, 0, 10).await,
        "reading an over-long log",
    );
    refused(
        store.load_group(&long_id).await,
        "loading an over-long group",
    );
    let before = FeedPos {
        ms: 1,
        id: long_id.clone(),
    };
    refused(
        store.list_messages("g1", Some(&before), 10).await,
        "paging before an over-long id",
    );

    let mut later = SubscriberWrite::new("k2");
    later.record = Some(record("k2", "Bob"));
    later.claims.push(fine.clone());
    store.commit(later).await.expect("a later write lands");
    assert_eq!(
        store.find_claim(&fine).await.expect("find").as_deref(),
        Some("k2")
    );
}
