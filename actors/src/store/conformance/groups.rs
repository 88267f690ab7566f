//! Checks of groups: a group's members, requests and log; the groups of an account (the
//! index written with membership); bindings seen from both the group and the community; the feeds (a community's dynamics, a group's messages) paging newest
//! first. The state a group actor and the fan-out read back.

use crate::model::{Binding, BindingRequest, CommunityRecord, FeedPos, MessageRecord};
use crate::push::event::EventType;
use crate::store::{CommunityStore, CommunityWrite, GroupStore, GroupWrite, SubscriberStore};

use super::{Fixture, dynamic, group_record};

/// A group, its members, requests and log (and its head, `last_group_seqs`) read back after
/// adds and removes.
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
    assert_eq!(
        store
            .last_group_seqs(&["g1".into(), "nope".into(), "g1".into()])
            .await
            .expect("heads"),
        vec![3, 0, 3],
        "group heads, in order, 0 for a log with no event"
    );
    assert!(
        store
            .last_group_seqs(&[])
            .await
            .expect("no heads")
            .is_empty(),
        "no group, no read"
    );
    store.close().await.expect("close");
}

/// The groups of an account (`groups_of`) follow membership: a member added to a group is
/// found there, one removed is not, and other accounts are not affected.
pub async fn groups_of_follows_membership<F: Fixture>(fx: &F) {
    let store = fx.open().await;
    assert!(
        store.groups_of("m1").await.expect("groups_of").is_empty(),
        "an account in no group"
    );
    for gid in ["g1", "g2", "g3"] {
        let mut w = GroupWrite::new(gid);
        w.record = Some(group_record(gid));
        w.members_add = vec!["owner".into(), "m1".into()];
        store.commit_group(w).await.expect("create group");
    }
    let mut w = GroupWrite::new("g4");
    w.record = Some(group_record("g4"));
    w.members_add = vec!["owner".into()];
    store.commit_group(w).await.expect("create group");
    let sorted = |mut ids: Vec<String>| {
        ids.sort();
        ids
    };
    assert_eq!(
        sorted(store.groups_of("m1").await.expect("groups_of")),
        ["g1", "g2", "g3"],
        "every group the account was added to, and no other"
    );
    assert_eq!(
        sorted(store.groups_of("owner").await.expect("groups_of")),
        ["g1", "g2", "g3", "g4"]
    );
    // Removed; added and removed again in later writes: gone; removed and added again: back.
    for (gid, joins) in [
        ("g2", false),
        ("g4", true),
        ("g4", false),
        ("g3", false),
        ("g3", true),
    ] {
        let mut w = GroupWrite::new(gid);
        if joins {
            w.members_add.push("m1".into());
        } else {
            w.members_remove.push("m1".into());
        }
        store.commit_group(w).await.expect("membership change");
    }
    assert_eq!(
        sorted(store.groups_of("m1").await.expect("groups_of")),
        ["g1", "g3"],
        "a removed member is no longer in the group's index entry"
    );
    assert_eq!(
        sorted(store.groups_of("owner").await.expect("groups_of")),
        ["g1", "g2", "g3", "g4"],
        "other members are not affected"
    );
    assert!(
        store.groups_of("m").await.expect("groups_of").is_empty(),
        "an account id that is a prefix of another shares none of its groups"
    );
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
        request_id: None,
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
