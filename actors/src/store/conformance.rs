#![allow(clippy::expect_used, clippy::unwrap_used)] // a test suite: a broken rule must panic
//! Generic checks of [`SubscriberStore`] semantics. Each check panics with a message naming
//! the rule it found broken.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use crate::error::StoreError;
use crate::event::{EventType, encode_event};
use crate::model::{AccountRecord, Claim, Profile};
use crate::store::{Edge, EdgeChange, EdgeKind, SubscriberStore, SubscriberWrite};

fn record(id: &str, name: &str) -> AccountRecord {
    let mut profile = Profile::new();
    profile.insert("display_name".into(), name.into());
    AccountRecord {
        account_id: id.into(),
        password_hash: "$argon2id$test".into(),
        profile,
        profile_version: 1,
        created_ms: 1,
    }
}

fn event(seq: u64) -> crate::event::StoredEvent {
    encode_event(EventType::FRIEND_ADDED, seq, &serde_json::json!({"n": seq}))
}

/// Runs every check. `open(dir)` opens a store over `dir`; it is called twice for the
/// durability check, after the first store was closed.
pub async fn run_all<S, F, Fut>(dir: &Path, open: F)
where
    S: SubscriberStore,
    F: Fn(std::path::PathBuf) -> Fut,
    Fut: Future<Output = Arc<S>>,
{
    let store = open(dir.join("main")).await;
    create_and_load(&*store).await;
    claims_are_exclusive_and_atomic(&*store).await;
    claims_release(&*store).await;
    edges_put_and_delete(&*store).await;
    tokens_resolve(&*store).await;
    events_page_in_order(&*store).await;
    concurrent_commits_all_land(store.clone()).await;
    store.close().await.expect("close");
    drop(store);
    durable_across_reopen(dir, &open).await;
}

async fn create_and_load<S: SubscriberStore + ?Sized>(store: &S) {
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
}

async fn claims_are_exclusive_and_atomic<S: SubscriberStore + ?Sized>(store: &S) {
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
}

async fn claims_release<S: SubscriberStore + ?Sized>(store: &S) {
    let claim = Claim::handle("webhook", "Hook-1");
    let mut w = SubscriberWrite::new("r1");
    w.claims.push(claim.clone());
    store.commit(w).await.expect("claim");
    // A release by someone else is ignored.
    let mut other = SubscriberWrite::new("r2");
    other.releases.push(claim.clone());
    store.commit(other).await.expect("foreign release");
    assert_eq!(
        store.find_claim(&claim).await.expect("find").as_deref(),
        Some("r1")
    );
    let mut mine = SubscriberWrite::new("r1");
    mine.releases.push(claim.clone());
    store.commit(mine).await.expect("release");
    assert!(store.find_claim(&claim).await.expect("find").is_none());
    let mut w2 = SubscriberWrite::new("r2");
    w2.claims.push(claim.clone());
    store.commit(w2).await.expect("released claim can be taken");
}

async fn edges_put_and_delete<S: SubscriberStore + ?Sized>(store: &S) {
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
}

async fn tokens_resolve<S: SubscriberStore + ?Sized>(store: &S) {
    let hash = [7u8; 32];
    assert!(store.find_token(&hash).await.expect("find").is_none());
    let mut w = SubscriberWrite::new("t1");
    w.tokens.push(hash);
    store.commit(w).await.expect("token");
    assert_eq!(
        store.find_token(&hash).await.expect("find").as_deref(),
        Some("t1")
    );
    assert!(store.find_token(&[8u8; 32]).await.expect("find").is_none());
}

async fn events_page_in_order<S: SubscriberStore + ?Sized>(store: &S) {
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
}

async fn concurrent_commits_all_land<S: SubscriberStore>(store: Arc<S>) {
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
}

async fn durable_across_reopen<S, F, Fut>(dir: &Path, open: &F)
where
    S: SubscriberStore,
    F: Fn(std::path::PathBuf) -> Fut,
    Fut: Future<Output = Arc<S>>,
{
    let store = open(dir.join("main")).await;
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
        store.find_token(&[7u8; 32]).await.expect("find").as_deref(),
        Some("t1")
    );
    assert_eq!(
        store.read_events("v1", 0, 1000).await.expect("read").len(),
        300
    );
    assert_eq!(
        store
            .find_claim(&Claim::email("x@example.com"))
            .await
            .expect("find")
            .as_deref(),
        Some("k1")
    );
    store.close().await.expect("close");
}
