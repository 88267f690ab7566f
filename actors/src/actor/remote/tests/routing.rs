//! Asks across nodes: answered as if local (results and every kind of error), a node that is
//! not the owner, fencing, shedding on a view change, attaching a device on another node.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::fake::{Node, cluster};
use crate::actor::place::ActorKind;
use crate::error::{Error, StoreError};
use crate::model::{AccountRecord, Profile, now_ms};
use crate::push::{Outlet, Pushed, StoredEvent};
use crate::store::{SubscriberStore, SubscriberWrite};

pub(super) fn record(id: &str) -> AccountRecord {
    let mut profile = Profile::new();
    profile.insert("display_name".into(), id.to_owned());
    AccountRecord {
        account_id: id.to_owned(),
        password_hash: "x".into(),
        profile,
        profile_version: 0,
        created_ms: now_ms(),
        proofs: Default::default(),
    }
}

pub(super) async fn accounts(node: &Node, ids: &[&str]) {
    for id in ids {
        node.chorus
            .create_account(record(id), [id.len() as u8; 32])
            .await
            .unwrap();
    }
}

fn name(to: &str) -> BTreeMap<String, Option<String>> {
    BTreeMap::from([("display_name".to_owned(), Some(to.to_owned()))])
}

/// Polls `done` for up to 5 s.
pub(super) async fn until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..100 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

fn same(remote: Error, local: Error) {
    assert_eq!(remote.to_wire(), local.to_wire(), "{remote} / {local}");
}

#[actix_rt::test]
async fn a_remote_actor_answers_as_if_local() {
    let (store, net, nodes) = cluster(2);
    accounts(&nodes[0], &["alice", "bob"]).await;
    net.place(ActorKind::Account, "alice", 1);
    net.place(ActorKind::Account, "bob", 1);
    let far = nodes[0].chorus.me("alice").await.unwrap();
    assert!(nodes[0].place.forwards() >= 1 && nodes[1].place.served() >= 1);
    let near = nodes[1].chorus.me("alice").await.unwrap();
    assert_eq!(
        serde_json::to_value(&far).unwrap(),
        serde_json::to_value(&near).unwrap()
    );
    // A write through the owner, under the owner's epoch (the store refuses any other).
    let version = nodes[0]
        .chorus
        .update_profile("alice", name("Alicia"))
        .await
        .unwrap();
    assert_eq!(version, 1);
    assert_eq!(store.epoch(ActorKind::Account, "alice"), Some(1));
    assert!(
        !nodes[0]
            .chorus
            .directory()
            .is_live(ActorKind::Account, "alice")
    );
    assert!(
        nodes[1]
            .chorus
            .directory()
            .is_live(ActorKind::Account, "alice")
    );

    // Each kind of error, as the owner answers it locally.
    let too_many: BTreeMap<String, Option<String>> = (0..40)
        .map(|i| (format!("f{i}"), Some("v".into())))
        .collect();
    let (a, b) = (
        nodes[0].chorus.update_profile("alice", too_many.clone()),
        nodes[1].chorus.update_profile("alice", too_many),
    );
    same(a.await.unwrap_err(), b.await.unwrap_err());
    net.place(ActorKind::Account, "nobody", 1);
    let e = nodes[0].chorus.me("nobody").await.unwrap_err();
    assert!(matches!(e, Error::NotFound("account")), "{e}");
    same(e, nodes[1].chorus.me("nobody").await.unwrap_err());
    let group = nodes[0]
        .chorus
        .create_group("alice", "g".into())
        .await
        .unwrap();
    net.place(ActorKind::Group, &group, 1);
    let e = nodes[0].chorus.group("bob", &group).await.unwrap_err();
    assert!(matches!(e, Error::Forbidden(_)), "{e}");
    same(e, nodes[1].chorus.group("bob", &group).await.unwrap_err());
    let e = nodes[0]
        .chorus
        .remove_group_member("alice", &group, "alice".into())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Conflict {
                code: "owner_cannot_leave",
                ..
            }
        ),
        "{e}"
    );
    nodes[0]
        .chorus
        .request_friend("bob", "alice")
        .await
        .unwrap();
    let e = nodes[0]
        .chorus
        .request_friend("bob", "alice")
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Conflict {
                code: "already_requested",
                ..
            }
        ),
        "{e}"
    );
    // Results of other shapes: a tuple with a step, a view, a bool.
    nodes[0].chorus.accept_friend("alice", "bob").await.unwrap();
    let posted = nodes[0]
        .chorus
        .post_activity("alice", "hi".into(), Some("k".into()))
        .await
        .unwrap();
    assert_eq!(posted.friends_told, 1);
    let view = nodes[0].chorus.group("alice", &group).await.unwrap();
    assert_eq!(view.members, ["alice"]);
    // The owner gone: unavailable, as a timeout would be.
    net.unplug(1);
    let e = nodes[0].chorus.me("alice").await.unwrap_err();
    assert!(matches!(e, Error::Unavailable(_)), "{e}");
}

#[actix_rt::test]
async fn a_node_that_is_not_the_owner_is_asked_again_then_unavailable() {
    let (_store, net, nodes) = cluster(2);
    accounts(&nodes[0], &["alice"]).await;
    net.place(ActorKind::Account, "alice", 1);
    // n1 thinks n0 owns it; n0 thinks n1 does.
    nodes[1].place.view(ActorKind::Account, "alice", Some(0));
    let e = nodes[0].chorus.me("alice").await.unwrap_err();
    assert!(matches!(e, Error::Unavailable(_)), "{e}");
    assert_eq!(nodes[0].place.forwards(), 3, "the first try and two more");
    assert!(
        !nodes[1]
            .chorus
            .directory()
            .is_live(ActorKind::Account, "alice")
    );
    // Views agree again during the retries: answered.
    let place = nodes[0].place.clone();
    actix::spawn(async move {
        tokio::time::sleep(Duration::from_millis(30)).await;
        place.view(ActorKind::Account, "alice", Some(0));
    });
    nodes[0].chorus.me("alice").await.unwrap();
    assert!(
        nodes[0]
            .chorus
            .directory()
            .is_live(ActorKind::Account, "alice")
    );
}

#[actix_rt::test]
async fn a_fenced_write_stops_the_actor_and_the_next_message_claims_again() {
    let (store, _net, nodes) = cluster(1);
    accounts(&nodes[0], &["alice"]).await;
    let chorus = &nodes[0].chorus;
    chorus.update_profile("alice", name("A1")).await.unwrap();
    assert_eq!(store.epoch(ActorKind::Account, "alice"), Some(1));
    // Another node takes the account over and writes.
    let theirs = store.claim(ActorKind::Account, "alice");
    let mut other = record("alice");
    other.profile_version = 2;
    other.profile.insert("display_name".into(), "Other".into());
    let mut write = SubscriberWrite::new("alice");
    write.record = Some(other);
    write.epoch = Some(theirs);
    store.commit(write).await.unwrap();
    // This node's next write is refused; its actor stops and its epoch is forgotten.
    let e = chorus
        .update_profile("alice", name("A3"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Storage(StoreError::Fenced {
                epoch: 1,
                now: 2,
                ..
            })
        ),
        "{e}"
    );
    assert!(nodes[0].place.forgot(ActorKind::Account, "alice"));
    until("the fenced actor stopped", || {
        !chorus.directory().is_live(ActorKind::Account, "alice")
    })
    .await;
    // The next message claims again and loads what the other node wrote.
    let me = chorus.me("alice").await.unwrap();
    assert_eq!(me.profile["display_name"], "Other");
    assert_eq!(store.epoch(ActorKind::Account, "alice"), Some(3));
    assert_eq!(chorus.update_profile("alice", name("A4")).await.unwrap(), 3);
}

#[actix_rt::test]
async fn a_view_change_sheds_the_actors_that_moved_away() {
    let (store, net, nodes) = cluster(2);
    accounts(&nodes[0], &["alice", "bob"]).await;
    net.place(ActorKind::Account, "alice", 0);
    net.place(ActorKind::Account, "bob", 0);
    nodes[0].chorus.me("alice").await.unwrap();
    nodes[0].chorus.me("bob").await.unwrap();
    net.place(ActorKind::Account, "alice", 1);
    net.bump();
    let dir = nodes[0].chorus.directory();
    until("alice is shed", || {
        !dir.is_live(ActorKind::Account, "alice")
    })
    .await;
    assert!(nodes[0].place.forgot(ActorKind::Account, "alice"));
    assert!(dir.is_live(ActorKind::Account, "bob"), "bob stays");
    assert!(!nodes[0].place.forgot(ActorKind::Account, "bob"));
    // Later asks go to the new owner, which claims it.
    let version = nodes[0]
        .chorus
        .update_profile("alice", name("Moved"))
        .await
        .unwrap();
    assert_eq!(version, 1);
    assert_eq!(store.epoch(ActorKind::Account, "alice"), Some(2));
    assert!(
        nodes[1]
            .chorus
            .directory()
            .is_live(ActorKind::Account, "alice")
    );
}

struct Device;

impl Outlet for Device {
    fn id(&self) -> u64 {
        7
    }
    fn push(&self, _event: &StoredEvent) -> Pushed {
        Pushed::Queued
    }
}

#[actix_rt::test]
async fn a_device_attaches_where_it_connects_at_the_owners_head() {
    let (_store, net, nodes) = cluster(2);
    accounts(&nodes[0], &["alice"]).await;
    net.place(ActorKind::Account, "alice", 1);
    nodes[1]
        .chorus
        .update_profile("alice", name("a"))
        .await
        .unwrap();
    nodes[1]
        .chorus
        .update_profile("alice", name("b"))
        .await
        .unwrap();
    let seq = nodes[0]
        .chorus
        .attach("alice", Arc::new(Device))
        .await
        .unwrap();
    assert_eq!(seq, 2);
    let relay = &nodes[0].relay;
    assert_eq!(relay.interest.load(Ordering::SeqCst), 1);
    assert_eq!(nodes[0].chorus.directory().env().hub.online("alice"), 1);
    nodes[0].chorus.detach("alice", 7).await.unwrap();
    assert_eq!(relay.released.load(Ordering::SeqCst), 1);
    assert_eq!(nodes[0].chorus.directory().env().hub.online("alice"), 0);
    // No such account: nothing stays attached.
    net.place(ActorKind::Account, "nobody", 1);
    let e = nodes[0].chorus.attach("nobody", Arc::new(Device)).await;
    assert!(matches!(e, Err(Error::NotFound("account"))));
    assert_eq!(relay.released.load(Ordering::SeqCst), 2);
    assert_eq!(nodes[0].chorus.directory().env().hub.online("nobody"), 0);
}
