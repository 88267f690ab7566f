//! What a cluster changes beyond routing: an account's log is appended to by its owner only
//! (a fan-out's remote part goes to the owners, which recheck under their heads), steps are
//! recovered and swept by their owner, releases carried by their author's owner.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use super::fake::cluster;
use super::routing::{accounts, until};
use crate::actor::logs::{Notice, notify_each};
use crate::actor::place::ActorKind;
use crate::model::step::RECHECK_AFTER_MS;
use crate::model::{
    ActivityRecord, LinkRecord, ReleaseRecord, ReleaseStatus, Step, StepRecord, now_ms,
};
use crate::push::event::EventType;
use crate::release::{AttemptOutcome, Connector, Outgoing, ReleaseConfig};
use crate::store::{Edge, EdgeChange, EdgeKind, StepStore, SubscriberStore, SubscriberWrite};

fn notice(data: &str, recheck: bool, created_ms: u64) -> Notice<'_> {
    Notice {
        kind: EventType::PROFILE_UPDATED,
        data,
        recheck,
        created_ms,
    }
}

async fn befriend(store: &dyn SubscriberStore, a: &str, b: &str) {
    for (me, other) in [(a, b), (b, a)] {
        let mut write = SubscriberWrite::new(me);
        write.edges.push(EdgeChange::Put(Edge {
            kind: EdgeKind::Friend,
            other: other.to_owned(),
            value: now_ms().to_be_bytes().to_vec(),
        }));
        store.commit(write).await.unwrap();
    }
}

const FRIENDS: [&str; 6] = ["f0", "f1", "f2", "f3", "f4", "f5"];

#[actix_rt::test]
async fn a_fan_out_appends_once_to_each_recipient_under_its_owner() {
    let (store, net, nodes) = cluster(2);
    accounts(&nodes[0], &["alice"]).await;
    accounts(&nodes[0], &FRIENDS).await;
    net.place(ActorKind::Account, "alice", 0);
    for (i, f) in FRIENDS.iter().enumerate() {
        net.place(ActorKind::Account, f, i % 2);
        befriend(&*store, "alice", f).await;
    }
    let changes = [("display_name".to_owned(), Some("Al".to_owned()))].into();
    nodes[0]
        .chorus
        .update_profile("alice", changes)
        .await
        .unwrap();
    for f in FRIENDS {
        let events = store.events(f);
        assert_eq!(events.len(), 1, "{f}: {events:?}");
        assert_eq!(events[0].seq, 1);
        assert!(events[0].frame.contains("profile.updated"));
        // The store takes an append only under the owner's epoch: claimed once, by it.
        assert_eq!(store.epoch(ActorKind::Account, f), Some(1), "{f}");
    }
    assert!(nodes[1].place.served() >= 1, "n1's friends went to n1");

    // A rerun (from either node) finds every recipient told.
    let to: Vec<String> = FRIENDS.iter().map(|f| f.to_string()).collect();
    let data = store.events("f0")[0].frame.to_string();
    let data = &data[data.find(r#""data":"#).unwrap() + 7..data.len() - 1];
    for node in &nodes {
        let env = node.chorus.directory().env();
        assert!(
            notify_each(env, &to, notice(data, true, now_ms()))
                .await
                .is_empty()
        );
    }
    assert!(FRIENDS.iter().all(|f| store.events(f).len() == 1));

    // Two first runs at once, late enough that a sweep could have run too: each recipient
    // is told once, the second run finding the event under the head on the owner.
    let late = now_ms() - RECHECK_AFTER_MS - 1;
    let (env0, env1) = (
        nodes[0].chorus.directory().env(),
        nodes[1].chorus.directory().env(),
    );
    let (a, b) = futures_util::join!(
        notify_each(env0, &to, notice(r#"{"n":2}"#, false, late)),
        notify_each(env1, &to, notice(r#"{"n":2}"#, false, late)),
    );
    assert!(a.is_empty() && b.is_empty());
    for f in FRIENDS {
        let events = store.events(f);
        assert_eq!(events.len(), 2, "{f}: {events:?}");
        assert_eq!(events[1].seq, 2);
    }
}

#[actix_rt::test]
async fn a_recipient_that_moved_is_sent_on_and_a_failed_one_answered() {
    let (store, net, nodes) = cluster(2);
    accounts(&nodes[0], &FRIENDS).await;
    for f in FRIENDS {
        net.place(ActorKind::Account, f, 1);
    }
    // f1 moved to n0: n1 knows, n0 learns it only a moment later, so n1 sends it back.
    nodes[1].place.view(ActorKind::Account, "f1", Some(0));
    let to: Vec<String> = FRIENDS.iter().map(|f| f.to_string()).collect();
    let env0 = nodes[0].chorus.directory().env();
    let slow = {
        let place = nodes[0].place.clone();
        actix::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            place.view(ActorKind::Account, "f1", Some(0));
        })
    };
    let failed = notify_each(env0, &to, notice("1", false, now_ms())).await;
    slow.await.unwrap();
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(
        nodes[1].place.served(),
        1,
        "one call for all of n1's recipients"
    );
    assert_eq!(
        store.epoch(ActorKind::Account, "f1"),
        Some(1),
        "appended by n0"
    );
    assert!(FRIENDS.iter().all(|f| store.events(f).len() == 1));
    store
        .fail_appends
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let mut failed = notify_each(env0, &to, notice("2", false, now_ms())).await;
    failed.sort();
    assert_eq!(failed, to, "every failure answered, local and remote");
}

fn step(to: &str) -> StepRecord {
    let mut record = StepRecord::new(Step::Notify {
        to: vec![to.to_owned()],
        event: EventType::PROFILE_UPDATED.0.to_owned(),
        data: format!(r#"{{"to":"{to}"}}"#),
    });
    record.attempts = 1;
    record
}

#[actix_rt::test]
async fn steps_are_recovered_and_swept_by_their_owner_only() {
    let (store, net, nodes) = cluster(2);
    accounts(&nodes[0], &["r0", "r1", "r2"]).await;
    let (s0, s1, s2) = (step("r0"), step("r1"), step("r2"));
    for (s, node) in [(&s0, 0), (&s1, 1), (&s2, 1)] {
        net.place(ActorKind::Account, &s.step_id, node);
        store
            .settle_step(&s.step_id, Some(s.clone()))
            .await
            .unwrap();
    }
    assert_eq!(nodes[0].chorus.recover_steps().await.unwrap(), 1);
    assert_eq!(store.events("r0").len(), 1);
    // The finished step's removal is not waited for.
    for _ in 0..100 {
        if store.pending_steps(10).await.unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left: Vec<String> = store
        .pending_steps(10)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.step_id)
        .collect();
    assert_eq!(left.len(), 2);
    assert!(left.contains(&s1.step_id) && left.contains(&s2.step_id));
    assert!(store.events("r1").is_empty());
    // s2 moves to n0: its sweeper runs it at once, not a minute later.
    nodes[0].chorus.drive_steps();
    net.place(ActorKind::Account, &s2.step_id, 0);
    net.bump();
    until("n0 swept s2", || store.events("r2").len() == 1).await;
    assert!(store.events("r1").is_empty(), "s1 is still n1's");
    assert_eq!(nodes[1].chorus.recover_steps().await.unwrap(), 1);
    assert_eq!(store.events("r1").len(), 1);
}

/// A platform that takes everything, and says whose releases it got.
#[derive(Default)]
struct Platform(Mutex<Vec<String>>);

#[async_trait]
impl Connector for Platform {
    async fn attempt(&self, out: &Outgoing) -> AttemptOutcome {
        self.0.lock().unwrap().push(out.activity.account_id.clone());
        AttemptOutcome::Delivered
    }
}

async fn pending_release(store: &dyn SubscriberStore, author: &str) {
    let link = LinkRecord {
        link_id: format!("l-{author}"),
        platform: "webhook".into(),
        handle: author.to_owned(),
        config: serde_json::Value::Null,
        secret: None,
        created_ms: now_ms(),
        proof: Default::default(),
    };
    let activity = ActivityRecord {
        activity_id: format!("act-{author}"),
        account_id: author.to_owned(),
        author_name: author.to_owned(),
        text: "hi".into(),
        created_ms: now_ms(),
        idempotency_key: None,
    };
    let mut write = SubscriberWrite::new(author);
    write.edges.push(EdgeChange::Put(Edge {
        kind: EdgeKind::Link,
        other: link.link_id.clone(),
        value: serde_json::to_vec(&link).unwrap(),
    }));
    write.outbox.push(ReleaseRecord::new(&activity, &link));
    write.activities.push(activity);
    store.commit(write).await.unwrap();
}

#[actix_rt::test]
async fn releases_are_carried_by_their_authors_owner() {
    let (store, net, nodes) = cluster(2);
    accounts(&nodes[0], &["a0", "a1"]).await;
    net.place(ActorKind::Account, "a0", 0);
    net.place(ActorKind::Account, "a1", 1);
    pending_release(&*store, "a0").await;
    pending_release(&*store, "a1").await;
    let platform = Arc::new(Platform::default());
    let recovered = nodes[0]
        .chorus
        .start_releaser(platform.clone(), ReleaseConfig::default())
        .await
        .unwrap();
    assert_eq!(recovered, 1, "only a0's");
    let delivered = |id: &str| {
        let store = store.clone();
        let id = id.to_owned();
        async move {
            store.list_releases(&format!("act-{id}")).await.unwrap()[0].status
                == ReleaseStatus::Delivered
        }
    };
    for _ in 0..100 {
        if delivered("a0").await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(delivered("a0").await);
    assert_eq!(*platform.0.lock().unwrap(), ["a0"]);
    // a1 moves to n0: its releaser takes the release on and records it through a1's actor,
    // now on n0.
    net.place(ActorKind::Account, "a1", 0);
    net.bump();
    for _ in 0..100 {
        if delivered("a1").await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(delivered("a1").await);
    assert_eq!(*platform.0.lock().unwrap(), ["a0", "a1"]);
    assert!(
        nodes[0]
            .chorus
            .directory()
            .is_live(ActorKind::Account, "a1")
    );
}
