#![allow(clippy::expect_used, clippy::unwrap_used)] // a test suite: a broken rule must panic
//! Generic checks of the storage traits' semantics, for every engine. Each check panics with a
//! message naming the rule it found broken.
//!
//! An engine runs the suite with [`conformance_tests!`](crate::conformance_tests), which
//! expands to one `#[tokio::test]` per check, so one broken rule does not hide the others. Every
//! check gets a [`Fixture`] of its own (a fresh, empty store: its own directory or keyspace), so
//! the checks are independent of each other and of their order, and run in parallel.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::FutureExt;

use crate::error::StoreError;
use crate::model::{AccountRecord, Claim, LinkRecord, Profile};
use crate::model::{ActivityRecord, ReleaseRecord, ReleaseStatus};
use crate::model::{
    Binding, BindingRequest, CommunityRecord, DynamicRecord, FeedPos, GroupRecord, MessageRecord,
};
use crate::push::event::{EventType, encode_event};
use crate::store::{
    CommunityStore, CommunityWrite, Edge, EdgeChange, EdgeKind, GroupStore, GroupWrite, Store,
    SubscriberStore, SubscriberWrite,
};

/// One check's engine: a fresh, empty store of its own.
#[async_trait]
pub trait Fixture: Send + Sync + Sized + 'static {
    /// The engine's store.
    type Store: Store;

    /// Opens the store over this fixture's data. Called again after a close, by the
    /// durability check, and must then find everything written before.
    async fn open(&self) -> Arc<Self::Store>;

    /// Removes what the fixture made (a keyspace); run whether the check passed or not.
    async fn teardown(self) {}
}

/// One `#[tokio::test]` per check of this suite, in a module `$name`, each on a fixture of its
/// own from `$fixture`: an expression (evaluated once per test, in the module's scope through
/// `use super::*`) giving a future of `Option<impl Fixture>`; `None` means the engine is not
/// available, and the test returns after the fixture has said so. The calling crate needs
/// `tokio` (with `macros` and `rt-multi-thread`).
///
/// ```text
/// chorus_actors::conformance_tests!(conformance, fixture());
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($name:ident, $fixture:expr) => {
        $crate::conformance_tests!(@module $name, $fixture;
            create_and_load,
            claims_are_exclusive_and_atomic,
            claims_release,
            edges_put_and_delete,
            tokens_resolve,
            events_page_in_order,
            concurrent_commits_all_land,
            groups_round_trip,
            bindings_are_two_sided,
            feeds_page_newest_first,
            server_keys_resolve,
            activities_and_outbox,
            activity_claim_conflict_stores_nothing,
            durable_across_reopen,
            ambiguous_write_is_neither_lost_nor_overwritten,
        );
    };
    (@module $name:ident, $fixture:expr; $($check:ident),* $(,)?) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let Some(fixture) = $fixture.await else {
                        return;
                    };
                    let outcome = $crate::store::conformance::catch(
                        $crate::store::conformance::$check(&fixture),
                    )
                    .await;
                    $crate::store::conformance::Fixture::teardown(fixture).await;
                    if let Err(panic) = outcome {
                        ::std::panic::resume_unwind(panic);
                    }
                }
            )*
        }
    };
}

/// Runs a check, catching its panic so the fixture is torn down before the test fails.
#[doc(hidden)]
pub async fn catch(check: impl Future<Output = ()>) -> Result<(), Box<dyn Any + Send>> {
    AssertUnwindSafe(check).catch_unwind().await
}

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

fn event(seq: u64) -> crate::push::event::StoredEvent {
    encode_event(EventType::FRIEND_ADDED, seq, &serde_json::json!({"n": seq}))
}

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

/// A token hash resolves to its account; another hash resolves to nothing.
pub async fn tokens_resolve<F: Fixture>(fx: &F) {
    let store = fx.open().await;
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
    store.close().await.expect("close");
}

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

/// Dynamic `d<n>` of community `cid`, created at `100 + 10 n` ms.
fn dynamic(cid: &str, n: u64) -> DynamicRecord {
    DynamicRecord {
        dynamic_id: format!("d{n}"),
        community_id: cid.into(),
        account_id: "a1".into(),
        kind: "post".into(),
        text: format!("t{n}"),
        created_ms: 100 + n * 10,
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

/// A group, its members, requests and log read back after adds and removes.
pub async fn groups_round_trip<F: Fixture>(fx: &F) {
    let store = fx.open().await;
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
        .map(|n| crate::push::event::group_frame(EventType::GROUP_MESSAGE, "g1", n, "{}"))
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
    store.close().await.expect("close");
}

/// A binding is seen, and removed, from both the group and the community.
pub async fn bindings_are_two_sided<F: Fixture>(fx: &F) {
    let store = fx.open().await;
    let mut g = GroupWrite::new("g1");
    g.record = Some(group_record("g1"));
    store.commit_group(g).await.expect("group");
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
    store.close().await.expect("close");
}

/// Dynamics and messages page newest first, before a cursor, since a time.
pub async fn feeds_page_newest_first<F: Fixture>(fx: &F) {
    let store = fx.open().await;
    let mut c = CommunityWrite::new("c1");
    c.dynamics = (0..10u64).map(|n| dynamic("c1", n)).collect();
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
    store.close().await.expect("close");
}

/// A server key resolves to its community; the verifier half is checked.
pub async fn server_keys_resolve<F: Fixture>(fx: &F) {
    let store = fx.open().await;
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

/// Activities, idempotency keys, deliveries and the outbox: final deliveries leave it.
pub async fn activities_and_outbox<F: Fixture>(fx: &F) {
    let store = fx.open().await;
    let mut w = SubscriberWrite::new("p1");
    w.record = Some(record("p1", "Ann"));
    store.commit(w).await.expect("account");

    // An activity and its deliveries land together.
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
    assert_eq!(ds.len(), 2, "one delivery per link");
    assert!(ds.iter().all(|d| d.status == ReleaseStatus::Pending));
    let mut pending = store.pending_releases().await.expect("pending");
    pending.sort_by(|a, b| a.link.link_id.cmp(&b.link.link_id));
    assert_eq!(pending, ds, "new releases are in the outbox");

    // Final deliveries leave the outbox; retrying ones stay, updated.
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

/// A write rejected for its claim leaves no activity or delivery behind.
pub async fn activity_claim_conflict_stores_nothing<F: Fixture>(fx: &F) {
    let store = fx.open().await;
    let mut holder = SubscriberWrite::new("k1");
    holder.claims.push(Claim::email("x@example.com"));
    store.commit(holder).await.expect("claim");
    // A write rejected for its claim must not leave its activity or deliveries behind.
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

/// Everything acknowledged is still there after a close and a reopen.
pub async fn durable_across_reopen<F: Fixture>(fx: &F) {
    let store = fx.open().await;
    let mut w = SubscriberWrite::new("c1");
    w.record = Some(record("c1", "Ann"));
    w.claims.push(Claim::email("x@example.com"));
    w.tokens.push([7u8; 32]);
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
        store.find_token(&[7u8; 32]).await.expect("find").as_deref(),
        Some("c1")
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
