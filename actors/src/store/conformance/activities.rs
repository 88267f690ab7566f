//! Checks of activities and their releases: an activity and its releases land together (or,
//! with a write rejected for its claim, not at all), idempotency keys find an activity, the
//! outbox holds the releases still to make, and an account's feed pages newest first. The
//! releaser recovers from the outbox after a restart.

use crate::error::StoreError;
use crate::model::{ActivityRecord, Claim, FeedPos, ReleaseRecord, ReleaseStatus};
use crate::store::{SubscriberStore, SubscriberWrite};

use super::{Fixture, activity, event, link, record};

/// Activities, idempotency keys, releases and the outbox: final releases leave it.
pub async fn activities_and_outbox<F: Fixture>(fx: &F) {
    let store = fx.open().await;
    let mut w = SubscriberWrite::new("p1");
    w.record = Some(record("p1", "Ann"));
    store.commit(w).await.expect("account");

    // An activity and its releases land together.
    let a1 = activity("act1", "p1", 100, Some("key-1"));
    let mut w = SubscriberWrite::new("p1");
    w.activities.push(a1.clone());
    w.outbox = vec![
        ReleaseRecord::new(&a1, &link("la")),
        ReleaseRecord::new(&a1, &link("lb")),
    ];
    w.events.push(event(1));
    store.commit(w).await.expect("post");
    assert_eq!(
        store.load_activity("act1").await.expect("load"),
        Some(a1.clone())
    );
    assert_eq!(
        store
            .find_activity_by_key("p1", "key-1")
            .await
            .expect("find"),
        Some(a1.clone()),
        "an idempotency key finds its activity"
    );
    assert!(
        store
            .find_activity_by_key("p2", "key-1")
            .await
            .expect("find")
            .is_none(),
        "idempotency keys are per account"
    );
    let ds = store.list_releases("act1").await.expect("list");
    assert_eq!(ds.len(), 2, "one release per link");
    assert!(ds.iter().all(|d| d.status == ReleaseStatus::Pending));
    let mut pending = store.pending_releases().await.expect("pending");
    pending.sort_by(|a, b| a.link.link_id.cmp(&b.link.link_id));
    assert_eq!(pending, ds, "new releases are in the outbox");

    // Final releases leave the outbox; retrying ones stay, updated.
    let mut done = ds[0].clone();
    done.status = ReleaseStatus::Delivered;
    done.attempts = 1;
    let mut again = ds[1].clone();
    again.status = ReleaseStatus::Retrying;
    again.attempts = 1;
    again.last_error = Some("HTTP 500".into());
    again.next_attempt_ms = 5000;
    let mut w = SubscriberWrite::new("p1");
    w.outbox = vec![done.clone(), again.clone()];
    store.commit(w).await.expect("status");
    assert_eq!(
        store.pending_releases().await.expect("pending"),
        vec![again.clone()]
    );
    assert_eq!(
        store.list_releases("act1").await.expect("list"),
        vec![done.clone(), again.clone()]
    );
    let mut failed = again;
    failed.status = ReleaseStatus::Failed;
    let mut w = SubscriberWrite::new("p1");
    w.outbox = vec![failed];
    store.commit(w).await.expect("status");
    assert!(store.pending_releases().await.expect("pending").is_empty());

    // The feed pages newest first.
    for (i, ms) in [(2u64, 200u64), (3, 300), (4, 300)] {
        let a = activity(&format!("act{i}"), "p1", ms, None);
        let mut w = SubscriberWrite::new("p1");
        if i == 2 {
            w.outbox.push(ReleaseRecord::new(&a, &link("lb")));
        }
        w.activities.push(a);
        store.commit(w).await.expect("post");
    }
    let ids = |v: Vec<ActivityRecord>| v.into_iter().map(|a| a.activity_id).collect::<Vec<_>>();
    let first = store.list_activities("p1", None, 2).await.expect("page");
    assert_eq!(ids(first), ["act4", "act3"]);
    let pos = FeedPos {
        ms: 300,
        id: "act3".into(),
    };
    let rest = store
        .list_activities("p1", Some(&pos), 10)
        .await
        .expect("page");
    assert_eq!(ids(rest), ["act2", "act1"]);
    assert!(
        store
            .list_activities("p10", None, 10)
            .await
            .expect("page")
            .is_empty(),
        "another account's feed (sharing a prefix) is empty"
    );
    store.close().await.expect("close");
}

/// A write rejected for its claim leaves no activity or release behind.
pub async fn activity_claim_conflict_stores_nothing<F: Fixture>(fx: &F) {
    let store = fx.open().await;
    let mut holder = SubscriberWrite::new("k1");
    holder.claims.push(Claim::email("x@example.com"));
    store.commit(holder).await.expect("claim");
    // A write rejected for its claim must not leave its activity or releases behind.
    let a = activity("act-x", "k2", 1, Some("kx"));
    let mut w = SubscriberWrite::new("k2");
    w.claims.push(Claim::email("x@example.com"));
    w.outbox.push(ReleaseRecord::new(&a, &link("lx")));
    w.activities.push(a);
    assert!(matches!(
        store.commit(w).await,
        Err(StoreError::ClaimTaken(_))
    ));
    assert!(store.load_activity("act-x").await.expect("load").is_none());
    assert!(
        store
            .find_activity_by_key("k2", "kx")
            .await
            .expect("find")
            .is_none()
    );
    assert!(store.list_releases("act-x").await.expect("list").is_empty());
    store.close().await.expect("close");
}
