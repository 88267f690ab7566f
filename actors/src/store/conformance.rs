#![allow(clippy::expect_used, clippy::unwrap_used)] // a test suite: a broken rule must panic
//! Generic checks of [`SubscriberStore`] semantics. Each check panics with a message naming
//! the rule it found broken.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use crate::error::StoreError;
use crate::model::{AccountRecord, Claim, LinkRecord, Profile};
use crate::model::{
    ActivityRecord, ReleaseRecord as DeliveryRecord, ReleaseStatus as DeliveryStatus,
};
use crate::model::{
    Binding, BindingRequest, CommunityRecord, DynamicRecord, FeedPos, GroupRecord, MessageRecord,
};
use crate::push::event::{EventType, encode_event};
use crate::store::{
    CommunityWrite, Edge, EdgeChange, EdgeKind, GroupWrite, Store, SubscriberStore, SubscriberWrite,
};

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
    S: Store,
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
    groups_round_trip(&*store).await;
    bindings_are_two_sided(&*store).await;
    feeds_page_newest_first(&*store).await;
    server_keys_resolve(&*store).await;
    activities_and_outbox(&*store).await;
    activity_claim_conflict_stores_nothing(&*store).await;
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

fn group_record(id: &str) -> GroupRecord {
    GroupRecord {
        group_id: id.into(),
        name: "Hikers".into(),
        owner: "owner".into(),
        created_ms: 5,
    }
}

async fn groups_round_trip<S: Store + ?Sized>(store: &S) {
    assert!(store.load_group("g1").await.expect("load").is_none());
    let mut w = GroupWrite::new("g1");
    w.record = Some(group_record("g1"));
    w.members_add = vec!["owner".into(), "m1".into(), "m2".into()];
    w.requests_put.push(BindingRequest {
        request_id: "r1".into(),
        group_id: "g1".into(),
        community_id: "c1".into(),
        community_name: "Club".into(),
        note: Some("hi".into()),
        created_ms: 1,
        expires_ms: 100,
    });
    w.events = (1..=3)
        .map(|n| crate::event::group_frame(EventType::GROUP_MESSAGE, "g1", n, "{}"))
        .collect();
    store.commit_group(w).await.expect("commit group");
    let mut rm = GroupWrite::new("g1");
    rm.members_remove.push("m2".into());
    rm.requests_remove.push("r1".into());
    store.commit_group(rm).await.expect("remove");
    let snap = store
        .load_group("g1")
        .await
        .expect("load")
        .expect("present");
    assert_eq!(snap.record, group_record("g1"));
    let mut members = snap.members.clone();
    members.sort();
    assert_eq!(
        members,
        vec!["m1".to_string(), "owner".to_string()],
        "members add and remove"
    );
    assert!(snap.requests.is_empty(), "removed request is gone");
    assert_eq!(snap.last_seq, 3, "group log position");
    let events = store.read_group_events("g1", 1, 10).await.expect("read");
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 3]);
}

async fn bindings_are_two_sided<S: Store + ?Sized>(store: &S) {
    let mut c = CommunityWrite::new("c1");
    c.record = Some(CommunityRecord {
        community_id: "c1".into(),
        name: "Club".into(),
        creator: "owner".into(),
        created_ms: 1,
    });
    c.members_add = vec!["a1".into(), "a2".into()];
    store.commit_community(c).await.expect("community");
    let binding = Binding {
        group_id: "g1".into(),
        community_id: "c1".into(),
        since_ms: 50,
    };
    let mut w = GroupWrite::new("g1");
    w.bindings_put.push(binding.clone());
    store.commit_group(w).await.expect("bind");
    let group = store.load_group("g1").await.expect("load").expect("group");
    let community = store
        .load_community("c1")
        .await
        .expect("load")
        .expect("community");
    assert_eq!(
        group.bindings,
        vec![binding.clone()],
        "group side sees the binding"
    );
    assert_eq!(
        community.bindings,
        vec![binding],
        "community side sees the same binding"
    );
    assert_eq!(community.members.len(), 2);
    let mut un = GroupWrite::new("g1");
    un.bindings_remove.push("c1".into());
    store.commit_group(un).await.expect("unbind");
    assert!(
        store
            .load_group("g1")
            .await
            .expect("load")
            .expect("g")
            .bindings
            .is_empty()
    );
    assert!(
        store
            .load_community("c1")
            .await
            .expect("load")
            .expect("c")
            .bindings
            .is_empty(),
        "removing a binding removes both sides"
    );
}

async fn feeds_page_newest_first<S: Store + ?Sized>(store: &S) {
    let mut c = CommunityWrite::new("c1");
    for n in 0..10u64 {
        c.dynamics.push(DynamicRecord {
            dynamic_id: format!("d{n}"),
            community_id: "c1".into(),
            account_id: "a1".into(),
            kind: "post".into(),
            text: format!("t{n}"),
            created_ms: 100 + n * 10,
        });
    }
    store.commit_community(c).await.expect("dynamics");
    let page = store.list_dynamics("c1", 0, None, 4).await.expect("list");
    let ids: Vec<_> = page.iter().map(|d| d.dynamic_id.as_str()).collect();
    assert_eq!(ids, ["d9", "d8", "d7", "d6"], "newest first");
    let before = FeedPos {
        ms: 160,
        id: "d6".into(),
    };
    let next = store
        .list_dynamics("c1", 0, Some(&before), 3)
        .await
        .expect("list");
    let ids: Vec<_> = next.iter().map(|d| d.dynamic_id.as_str()).collect();
    assert_eq!(ids, ["d5", "d4", "d3"], "strictly before the cursor");
    let since = store
        .list_dynamics("c1", 170, None, 100)
        .await
        .expect("list");
    assert_eq!(since.len(), 3, "only at or after since_ms");
    let mut g = GroupWrite::new("g1");
    for n in 0..3u64 {
        g.messages.push(MessageRecord {
            message_id: format!("m{n}"),
            group_id: "g1".into(),
            account_id: "owner".into(),
            text: "hey".into(),
            created_ms: 1000 + n,
        });
    }
    store.commit_group(g).await.expect("messages");
    let msgs = store.list_messages("g1", None, 10).await.expect("list");
    assert_eq!(msgs.first().map(|m| m.message_id.as_str()), Some("m2"));
    assert_eq!(msgs.len(), 3);
    assert!(
        store
            .list_messages("g2", None, 10)
            .await
            .expect("list")
            .is_empty()
    );
}

async fn server_keys_resolve<S: Store + ?Sized>(store: &S) {
    let hash = [9u8; 32];
    let mut c = CommunityWrite::new("c2");
    c.record = Some(CommunityRecord {
        community_id: "c2".into(),
        name: "Keyed".into(),
        creator: "owner".into(),
        created_ms: 1,
    });
    c.server_key_hash = Some(hash);
    store.commit_community(c).await.expect("keyed community");
    assert_eq!(
        store.find_server_key(&hash).await.expect("find").as_deref(),
        Some("c2")
    );
    let mut near = hash;
    near[31] = 0;
    assert!(
        store.find_server_key(&near).await.expect("find").is_none(),
        "verifier half checked"
    );
}

async fn durable_across_reopen<S, F, Fut>(dir: &Path, open: &F)
where
    S: Store,
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
    assert!(
        store.load_group("g1").await.expect("load").is_some(),
        "groups survive a reopen"
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
        .pending_deliveries()
        .await
        .expect("pending")
        .into_iter()
        .map(|d| (d.activity_id, d.link.link_id))
        .collect();
    assert_eq!(
        pending,
        vec![("act2".to_owned(), "lb".to_owned())],
        "pending deliveries survive a reopen"
    );
    assert!(
        store.load_activity("act1").await.expect("load").is_some(),
        "activities survive a reopen"
    );
    store.close().await.expect("close");
}

fn link(id: &str) -> LinkRecord {
    LinkRecord {
        link_id: id.into(),
        platform: "webhook".into(),
        handle: format!("h-{id}"),
        config: serde_json::json!({"url": "http://127.0.0.1:1/", "secret": "s"}),
        created_ms: 1,
    }
}

fn activity(id: &str, author: &str, ms: u64, key: Option<&str>) -> ActivityRecord {
    ActivityRecord {
        activity_id: id.into(),
        account_id: author.into(),
        author_name: "Ann".into(),
        text: format!("post {id}"),
        created_ms: ms,
        idempotency_key: key.map(str::to_owned),
    }
}

async fn activities_and_outbox<S: Store + ?Sized>(store: &S) {
    let mut w = SubscriberWrite::new("p1");
    w.record = Some(record("p1", "Ann"));
    store.commit(w).await.expect("account");

    // An activity and its deliveries land together.
    let a1 = activity("act1", "p1", 100, Some("key-1"));
    let mut w = SubscriberWrite::new("p1");
    w.activities.push(a1.clone());
    w.deliveries = vec![
        DeliveryRecord::new(&a1, &link("la")),
        DeliveryRecord::new(&a1, &link("lb")),
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
    let ds = store.list_deliveries("act1").await.expect("list");
    assert_eq!(ds.len(), 2, "one delivery per link");
    assert!(ds.iter().all(|d| d.status == DeliveryStatus::Pending));
    let mut pending = store.pending_deliveries().await.expect("pending");
    pending.sort_by(|a, b| a.link.link_id.cmp(&b.link.link_id));
    assert_eq!(pending, ds, "new deliveries are in the outbox");

    // Final deliveries leave the outbox; retrying ones stay, updated.
    let mut done = ds[0].clone();
    done.status = DeliveryStatus::Delivered;
    done.attempts = 1;
    let mut again = ds[1].clone();
    again.status = DeliveryStatus::Retrying;
    again.attempts = 1;
    again.last_error = Some("HTTP 500".into());
    again.next_attempt_ms = 5000;
    let mut w = SubscriberWrite::new("p1");
    w.deliveries = vec![done.clone(), again.clone()];
    store.commit(w).await.expect("status");
    assert_eq!(
        store.pending_deliveries().await.expect("pending"),
        vec![again.clone()]
    );
    assert_eq!(
        store.list_deliveries("act1").await.expect("list"),
        vec![done.clone(), again.clone()]
    );
    let mut failed = again;
    failed.status = DeliveryStatus::Failed;
    let mut w = SubscriberWrite::new("p1");
    w.deliveries = vec![failed];
    store.commit(w).await.expect("status");
    assert!(
        store
            .pending_deliveries()
            .await
            .expect("pending")
            .is_empty()
    );

    // The feed pages newest first.
    for (i, ms) in [(2u64, 200u64), (3, 300), (4, 300)] {
        let a = activity(&format!("act{i}"), "p1", ms, None);
        let mut w = SubscriberWrite::new("p1");
        if i == 2 {
            w.deliveries.push(DeliveryRecord::new(&a, &link("lb")));
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
}

async fn activity_claim_conflict_stores_nothing<S: Store + ?Sized>(store: &S) {
    // A write rejected for its claim must not leave its activity or deliveries behind.
    let a = activity("act-x", "k2", 1, Some("kx"));
    let mut w = SubscriberWrite::new("k2");
    w.claims.push(Claim::email("x@example.com"));
    w.deliveries.push(DeliveryRecord::new(&a, &link("lx")));
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
    assert!(
        store
            .list_deliveries("act-x")
            .await
            .expect("list")
            .is_empty()
    );
}
