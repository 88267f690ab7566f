//! The durability check: everything a commit acknowledged (records, claims, tokens, logs,
//! groups and the groups of each member, feeds, the outbox) is still there after a close and a reopen, since an actor
//! passivates and a server restarts on the strength of that acknowledgement.

use crate::model::{Claim, ReleaseRecord, ReleaseStatus};
use crate::store::{
    CommunityStore, CommunityWrite, GroupStore, GroupWrite, SubscriberStore, SubscriberWrite,
};

use super::{Fixture, activity, dynamic, event, group_record, link, record};

/// Everything acknowledged is still there after a close and a reopen.
pub async fn durable_across_reopen<F: Fixture>(fx: &F) {
    let store = fx.open().await;
    let mut w = SubscriberWrite::new("c1");
    w.record = Some(record("c1", "Ann"));
    w.claims.push(Claim::email("x@example.com"));
    w.grant_token([7u8; 32], 5);
    w.events = (1..=300).map(event).collect();
    let (a1, a2) = (
        activity("act1", "c1", 100, None),
        activity("act2", "c1", 200, None),
    );
    let mut done = ReleaseRecord::new(&a1, &link("la"));
    done.status = ReleaseStatus::Delivered;
    w.outbox = vec![done, ReleaseRecord::new(&a2, &link("lb"))];
    w.activities = vec![a1, a2];
    store.commit(w).await.expect("account");
    let mut g = GroupWrite::new("g1");
    g.record = Some(group_record("g1"));
    g.members_add = vec!["owner".into(), "m1".into()];
    store.commit_group(g).await.expect("group");
    let mut c = CommunityWrite::new("c1");
    c.dynamics = (0..10u64).map(|n| dynamic("c1", n)).collect();
    store.commit_community(c).await.expect("community");
    store.close().await.expect("close");
    drop(store);

    let store = fx.open().await;
    assert_eq!(
        store
            .load_account("c1")
            .await
            .expect("load")
            .map(|r| r.profile_version),
        Some(1),
        "records survive a reopen"
    );
    assert_eq!(
        store
            .find_token(&[7u8; 32])
            .await
            .expect("find")
            .map(|t| (t.account, t.issued_ms)),
        Some(("c1".to_owned(), 5))
    );
    assert_eq!(
        store.read_events("c1", 0, 1000).await.expect("read").len(),
        300
    );
    assert_eq!(
        store
            .find_claim(&Claim::email("x@example.com"))
            .await
            .expect("find")
            .as_deref(),
        Some("c1")
    );
    assert!(
        store.load_group("g1").await.expect("load").is_some(),
        "groups survive a reopen"
    );
    assert_eq!(
        store.groups_of("m1").await.expect("groups_of"),
        ["g1"],
        "the account -> groups index survives a reopen"
    );
    assert_eq!(
        store
            .list_dynamics("c1", 0, None, 100)
            .await
            .expect("list")
            .len(),
        10
    );
    // The outbox survives: what was pending before the reopen is pending after it.
    let pending: Vec<(String, String)> = store
        .pending_releases()
        .await
        .expect("pending")
        .into_iter()
        .map(|d| (d.activity_id, d.link.link_id))
        .collect();
    assert_eq!(
        pending,
        vec![("act2".to_owned(), "lb".to_owned())],
        "pending releases survive a reopen"
    );
    assert!(
        store.load_activity("act1").await.expect("load").is_some(),
        "activities survive a reopen"
    );
    store.close().await.expect("close");
}
