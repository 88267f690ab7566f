//! The outbox of cross-actor steps: a step is stored with the write that starts its
//! operation (whichever actor's write that is), listed oldest first, replaced by what is left
//! of it, removed once done, and still there after a reopen.

use crate::model::{Step, StepRecord};
use crate::store::{
    CommunityStore, CommunityWrite, GroupStore, GroupWrite, StepStore, SubscriberStore,
    SubscriberWrite,
};

use super::{Fixture, dynamic, event, group_record, record};

fn notify(to: &[&str]) -> Step {
    Step::Notify {
        to: to.iter().map(|s| s.to_string()).collect(),
        event: "profile.updated".into(),
        data: r#"{"account_id":"a1","profile_version":2}"#.into(),
    }
}

/// Steps written by each kind of write, settled one by one.
pub async fn steps_ride_with_their_first_write<F: Fixture>(fx: &F) {
    let store = fx.open().await;
    assert!(store.pending_steps(100).await.expect("empty").is_empty());

    let first = StepRecord::new(Step::NotifyFriends {
        account: "a1".into(),
        event: "profile.updated".into(),
        data: r#"{"account_id":"a1","profile_version":2}"#.into(),
    });
    let mut w = SubscriberWrite::new("a1");
    w.record = Some(record("a1", "Ann"));
    w.events = vec![event(1)];
    w.steps = vec![first.clone()];
    store.commit(w).await.expect("account write with a step");

    let mut second = StepRecord::new(Step::BecomeFriends {
        account: "b1".into(),
        with: "a1".into(),
    });
    // Make the order certain whatever the clock did.
    second.step_id = format!("{}z", &first.step_id[..31]);
    let mut g = GroupWrite::new("g1");
    g.record = Some(group_record("g1"));
    g.steps = vec![second.clone()];
    store
        .commit_group(g)
        .await
        .expect("group write with a step");

    let mut third = StepRecord::new(Step::PushDynamic {
        dynamic: dynamic("c1", 1),
        groups: vec!["g1".into(), "g2".into()],
    });
    third.step_id = format!("{}zz", &first.step_id[..30]);
    let mut c = CommunityWrite::new("c1");
    c.steps = vec![third.clone()];
    store
        .commit_community(c)
        .await
        .expect("community write with a step");

    assert_eq!(
        store.pending_steps(100).await.expect("list"),
        vec![first.clone(), second.clone(), third.clone()],
        "oldest first, as written"
    );
    assert_eq!(
        store.pending_steps(2).await.expect("list"),
        vec![first.clone(), second.clone()],
        "at most the limit, oldest first"
    );

    // Part done: what is left replaces it.
    let rest = first.rest(notify(&["b3"]));
    store
        .settle_step(&first.step_id, Some(rest.clone()))
        .await
        .expect("settle part");
    store
        .settle_step(&second.step_id, None)
        .await
        .expect("settle done");
    // Settling what is not there is harmless.
    store
        .settle_step("0000000000000nothing0000000000000", None)
        .await
        .expect("settle unknown");
    store.close().await.expect("close");
    drop(store);

    let store = fx.open().await;
    assert_eq!(
        store.pending_steps(100).await.expect("list after reopen"),
        vec![rest, third.clone()]
    );
    store
        .settle_step(&first.step_id, None)
        .await
        .expect("settle");
    store
        .settle_step(&third.step_id, None)
        .await
        .expect("settle");
    assert!(store.pending_steps(100).await.expect("list").is_empty());
}

/// A write whose claim is taken stores none of its steps.
pub async fn a_refused_write_stores_no_step<F: Fixture>(fx: &F) {
    let store = fx.open().await;
    let mut w = SubscriberWrite::new("a1");
    w.record = Some(record("a1", "Ann"));
    w.claims
        .push(crate::model::Claim::email("taken@example.com"));
    store.commit(w).await.expect("first holder");
    let mut w = SubscriberWrite::new("a2");
    w.record = Some(record("a2", "Bob"));
    w.claims
        .push(crate::model::Claim::email("taken@example.com"));
    w.steps = vec![StepRecord::new(notify(&["a1"]))];
    assert!(store.commit(w).await.is_err(), "the claim is held by a1");
    assert!(store.pending_steps(100).await.expect("list").is_empty());
}
