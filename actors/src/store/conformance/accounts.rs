//! Checks of an account's write: its record, its claims (exclusive, atomic with the rest of
//! the write, given up only by the holder), its edges and tokens, and many accounts written at
//! once. The rules an account actor relies on to hold its own state and no one else's.

use crate::error::StoreError;
use crate::model::Claim;
use crate::store::{
    Edge, EdgeChange, EdgeKind, SubscriberSnapshot, SubscriberStore, SubscriberWrite, TokenOwner,
    TokenSelector,
};

use super::{Fixture, event, record};

/// An unknown account loads as `None`; a committed record reads back as written.
pub async fn create_and_load<F: Fixture>(fx: &F) {
    let store = fx.open().await;
    assert!(
        store.load_account("c1").await.expect("load").is_none(),
        "unknown account loads as None"
    );
    assert!(store.load_subscriber("c1").await.expect("load").is_none());
    let mut w = SubscriberWrite::new("c1");
    w.record = Some(record("c1", "Ann"));
    w.events.push(event(1));
    store.commit(w).await.expect("commit");
    let rec = store
        .load_account("c1")
        .await
        .expect("load")
        .expect("record present");
    assert_eq!(rec, record("c1", "Ann"), "record reads back as written");
    let snap = store
        .load_subscriber("c1")
        .await
        .expect("load")
        .expect("snapshot present");
    assert_eq!(snap.last_seq, 1, "last_seq is the newest event");
    assert!(snap.edges.is_empty());
    store.close().await.expect("close");
}

/// A claim held by another account rejects the whole write: nothing of it lands.
pub async fn claims_are_exclusive_and_atomic<F: Fixture>(fx: &F) {
    let store = fx.open().await;
    let email = Claim::email("x@example.com");
    let mut w = SubscriberWrite::new("k1");
    w.record = Some(record("k1", "One"));
    w.claims.push(email.clone());
    store.commit(w).await.expect("first claim");
    assert_eq!(
        store.find_claim(&email).await.expect("find").as_deref(),
        Some("k1")
    );

    // Re-claiming one's own claim is fine.
    let mut again = SubscriberWrite::new("k1");
    again.claims.push(email.clone());
    store.commit(again).await.expect("own claim again");

    // Another account: rejected, and nothing else of that write lands.
    let mut w2 = SubscriberWrite::new("k2");
    w2.record = Some(record("k2", "Two"));
    w2.claims.push(Claim::phone("+15550100000"));
    w2.claims.push(email.clone());
    w2.events.push(event(1));
    match store.commit(w2).await {
        Err(StoreError::ClaimTaken(key)) => assert_eq!(key, email.0),
        other => panic!("a taken claim must reject the write, got {other:?}"),
    }
    assert!(
        store.load_account("k2").await.expect("load").is_none(),
        "rejected write stored a record"
    );
    assert!(
        store
            .find_claim(&Claim::phone("+15550100000"))
            .await
            .expect("find")
            .is_none(),
        "rejected write took a claim"
    );
    assert!(
        store
            .read_events("k2", 0, 10)
            .await
            .expect("read")
            .is_empty()
    );
    store.close().await.expect("close");
}

/// Only the holder can give a claim up; a given-up claim can be taken again.
pub async fn claims_release<F: Fixture>(fx: &F) {
    let store = fx.open().await;
    let claim = Claim::handle("webhook", "Hook-1");
    let mut w = SubscriberWrite::new("r1");
    w.claims.push(claim.clone());
    store.commit(w).await.expect("claim");
    // A release by someone else is ignored.
    let mut other = SubscriberWrite::new("r2");
    other.unclaims.push(claim.clone());
    store.commit(other).await.expect("foreign release");
    assert_eq!(
        store.find_claim(&claim).await.expect("find").as_deref(),
        Some("r1")
    );
    let mut mine = SubscriberWrite::new("r1");
    mine.unclaims.push(claim.clone());
    store.commit(mine).await.expect("release");
    assert!(store.find_claim(&claim).await.expect("find").is_none());
    let mut w2 = SubscriberWrite::new("r2");
    w2.claims.push(claim.clone());
    store.commit(w2).await.expect("released claim can be taken");
    store.close().await.expect("close");
}

/// Every edge kind is put and deleted; edges never leak across ids sharing a prefix.
pub async fn edges_put_and_delete<F: Fixture>(fx: &F) {
    let store = fx.open().await;
    let mut w = SubscriberWrite::new("e1");
    w.record = Some(record("e1", "Edge"));
    for kind in EdgeKind::ALL {
        w.edges.push(EdgeChange::Put(Edge {
            kind,
            other: format!("o-{}", kind.tag() as char),
            value: vec![kind.tag()],
        }));
    }
    store.commit(w).await.expect("edges");
    let snap = store
        .load_subscriber("e1")
        .await
        .expect("load")
        .expect("present");
    assert_eq!(
        snap.edges.len(),
        EdgeKind::ALL.len(),
        "every edge kind reads back"
    );
    for kind in EdgeKind::ALL {
        assert!(
            snap.edges
                .iter()
                .any(|e| e.kind == kind && e.value == vec![kind.tag()])
        );
    }
    let mut del = SubscriberWrite::new("e1");
    del.edges.push(EdgeChange::Delete {
        kind: EdgeKind::Friend,
        other: "o-f".into(),
    });
    store.commit(del).await.expect("delete");
    let snap = store
        .load_subscriber("e1")
        .await
        .expect("load")
        .expect("present");
    assert!(
        !snap.edges.iter().any(|e| e.kind == EdgeKind::Friend),
        "deleted edge is gone"
    );
    // Edges of one account never show up under another whose id shares a prefix.
    let mut w = SubscriberWrite::new("e");
    w.record = Some(record("e", "Prefix"));
    store.commit(w).await.expect("prefix account");
    let snap = store
        .load_subscriber("e")
        .await
        .expect("load")
        .expect("present");
    assert!(
        snap.edges.is_empty(),
        "edges leaked across accounts sharing a prefix"
    );
    store.close().await.expect("close");
}

/// A token hash resolves to its account and issue time, its edge is in the account's
/// snapshot, and a revoked token resolves to nothing, edge and index entry both gone.
pub async fn tokens_resolve<F: Fixture>(fx: &F) {
    let store = fx.open().await;
    let hash = [7u8; 32];
    assert!(store.find_token(&hash).await.expect("find").is_none());
    let mut w = SubscriberWrite::new("t1");
    w.record = Some(record("t1", "Tia"));
    w.grant_token(hash, 1234);
    store.commit(w).await.expect("token");
    assert_eq!(
        store.find_token(&hash).await.expect("find"),
        Some(TokenOwner {
            account: "t1".into(),
            issued_ms: 1234
        })
    );
    assert!(store.find_token(&[8u8; 32]).await.expect("find").is_none());
    let edges = |snap: SubscriberSnapshot| -> Vec<Edge> {
        snap.edges
            .into_iter()
            .filter(|e| e.kind == EdgeKind::Token)
            .collect()
    };
    let snap = store
        .load_subscriber("t1")
        .await
        .expect("load")
        .expect("t1");
    assert_eq!(
        edges(snap),
        vec![Edge {
            kind: EdgeKind::Token,
            other: TokenSelector::of(&hash).to_hex(),
            value: 1234u64.to_be_bytes().to_vec(),
        }]
    );
    let mut w = SubscriberWrite::new("t1");
    w.revoke_token(TokenSelector::of(&hash));
    store.commit(w).await.expect("revoke");
    assert!(store.find_token(&hash).await.expect("find").is_none());
    let snap = store
        .load_subscriber("t1")
        .await
        .expect("load")
        .expect("t1");
    assert!(edges(snap).is_empty());
    store.close().await.expect("close");
}

/// Concurrent writes all land, and of two racing claims exactly one wins.
pub async fn concurrent_commits_all_land<F: Fixture>(fx: &F) {
    let store = fx.open().await;
    let mut tasks = Vec::new();
    for i in 0..64u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("p{i}");
            let mut w = SubscriberWrite::new(&id);
            w.record = Some(record(&id, "Concurrent"));
            w.events.push(event(1));
            store.commit(w).await
        }));
    }
    // Two writers racing for one claim: exactly one wins.
    let race = Claim::email("race@example.com");
    let mut racers = Vec::new();
    for id in ["race-a", "race-b"] {
        let store = store.clone();
        let race = race.clone();
        racers.push(tokio::spawn(async move {
            let mut w = SubscriberWrite::new(id);
            w.claims.push(race);
            store.commit(w).await.is_ok()
        }));
    }
    for t in tasks {
        t.await.expect("join").expect("concurrent commit");
    }
    let mut wins = 0;
    for r in racers {
        if r.await.expect("join") {
            wins += 1;
        }
    }
    assert_eq!(wins, 1, "exactly one of two racing claims wins");
    for i in 0..64u64 {
        assert!(
            store
                .load_account(&format!("p{i}"))
                .await
                .expect("load")
                .is_some()
        );
    }
    store.close().await.expect("close");
}
