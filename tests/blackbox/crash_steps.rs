//! Durable cross-actor steps (`chorus_actors::ops::steps`): an operation's first write holds
//! the step that is left, so a process killed between the two (a fault point that dies as
//! `kill -9` would: `CHORUS_FAULTS`) converges after the restart, each side once. The
//! request that was cut gets no answer; everything it started happens anyway.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::groups::*;
use crate::support::*;

/// Sends a request the server dies in the middle of: no answer comes back.
async fn cut_short(s: &Server, method: Method, path: &str, token: Option<&str>, body: Value) {
    let mut req = client().request(method, s.url(path)).json(&body);
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let outcome = req.send().await;
    assert!(
        outcome.is_err(),
        "the server answered although it should have died: {outcome:?}"
    );
}

/// Waits for the armed server to die, starts it again on the same data, unarmed, and waits
/// until `/readyz` answers 200: start-up recovery, the steps' included, is over, so every step
/// the crash left is done by then.
async fn restart_unarmed(s: &mut Server) {
    let status = s.wait_exit(Duration::from_secs(10));
    assert!(
        !status.success(),
        "the fault point ended the process: {status}"
    );
    // The output is read on threads of their own: give them a moment to catch up.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !s.log_text().contains("fault injected") {
        assert!(Instant::now() < deadline, "it died at the fault point");
        std::thread::sleep(Duration::from_millis(20));
    }
    s.set_faults(None);
    s.restart();
    eventually("the restarted server is ready", || async {
        get(s, "/readyz", None).await.status.as_u16() == 200
    })
    .await;
}

/// Restarts `s` with `points` armed.
fn restart_armed(s: &mut Server, points: &str) {
    s.set_faults(Some(points));
    s.restart();
}

/// Every event of `a`'s log, read back with `resume` from 0.
async fn account_log(s: &Server, a: &Acct) -> Vec<Value> {
    let (mut ws, hello) = ws_connect(s, a).await;
    let n = hello_seq(&hello);
    if n == 0 {
        return Vec::new();
    }
    send_json(&mut ws, &json!({"type": "resume", "since": 0})).await;
    let events = collect_events(&mut ws, n as usize).await;
    let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>(), "no gap and no repeat");
    events
}

/// The events of `a`'s log of type `ty`.
async fn events_of(s: &Server, a: &Acct, ty: &str) -> Vec<Value> {
    account_log(s, a)
        .await
        .into_iter()
        .filter(|e| e["type"] == ty)
        .collect()
}

/// Polls `check` (every 100 ms, up to 20 s) until it holds.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "never converged: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_accepted_request_makes_both_sides_friends_after_a_crash_between_them() {
    let mut s = Server::start();
    let a = new_acct(&s, "Ann").await;
    let b = new_acct(&s, "Bob").await;
    post(&s, "/v1/friends/requests", a.tok(), &json!({"to": b.id}))
        .await
        .expect(201);
    restart_armed(&mut s, "after_first_step");
    let path = format!("/v1/friends/requests/{}/accept", a.id);
    cut_short(&s, Method::POST, &path, b.tok(), json!({})).await;
    restart_unarmed(&mut s).await;

    assert_eq!(friend_ids(&s, &a).await, vec![b.id.clone()]);
    assert_eq!(friend_ids(&s, &b).await, vec![a.id.clone()]);
    let added_a = events_of(&s, &a, "friend.added").await;
    let added_b = events_of(&s, &b, "friend.added").await;
    assert_eq!(added_a.len(), 1, "Ann is told once: {added_a:?}");
    assert_eq!(added_a[0]["data"], json!({"account_id": b.id}));
    assert_eq!(added_b.len(), 1, "Bob is told once: {added_b:?}");
    assert_eq!(added_b[0]["data"], json!({"account_id": a.id}));
    // The client that lost its answer retries: 200, and nothing changes.
    post_empty(&s, &path, b.tok()).await.expect(200);
    post(&s, "/v1/friends/requests", a.tok(), &json!({"to": b.id}))
        .await
        .expect_error(409, "already_friends");
    assert_eq!(events_of(&s, &a, "friend.added").await.len(), 1);
}

#[tokio::test]
async fn an_ended_friendship_ends_on_both_sides_after_a_crash_between_them() {
    let mut s = Server::start();
    let a = new_acct(&s, "Ann").await;
    let b = new_acct(&s, "Bob").await;
    make_friends(&s, &a, &b).await;
    restart_armed(&mut s, "after_first_step");
    let path = format!("/v1/friends/{}", b.id);
    cut_short(&s, Method::DELETE, &path, a.tok(), json!({})).await;
    restart_unarmed(&mut s).await;

    assert!(friend_ids(&s, &a).await.is_empty());
    assert!(friend_ids(&s, &b).await.is_empty());
    for (who, other) in [(&a, &b), (&b, &a)] {
        let removed = events_of(&s, who, "friend.removed").await;
        assert_eq!(removed.len(), 1, "{} is told once: {removed:?}", who.id);
        assert_eq!(removed[0]["data"], json!({"account_id": other.id}));
    }
}

#[tokio::test]
async fn a_profile_change_reaches_every_friend_once_after_a_crash_mid_fan_out() {
    let mut s = Server::start();
    let a = new_acct(&s, "Ann").await;
    let mut friends = Vec::new();
    for name in ["Bob", "Cid", "Dee"] {
        let f = new_acct(&s, name).await;
        make_friends(&s, &a, &f).await;
        friends.push(f);
    }
    restart_armed(&mut s, "mid_step");
    let body = json!({"display_name": "Ann B."});
    cut_short(&s, Method::PATCH, "/v1/me/profile", a.tok(), body).await;
    restart_unarmed(&mut s).await;

    assert_eq!(
        me(&s, &a).await["profile_version"],
        2,
        "the change was durable"
    );
    // Ready means the recovery is over: every friend has it now, once.
    for f in &friends {
        let updates = events_of(&s, f, "profile.updated").await;
        assert_eq!(updates.len(), 1, "{} is told once: {updates:?}", f.id);
        assert_eq!(updates[0]["data"]["profile_version"], 2);
        assert_eq!(updates[0]["data"]["account_id"], json!(a.id));
    }
}

#[tokio::test]
async fn a_posted_activity_reaches_the_friends_after_a_crash_before_it_did() {
    let mut s = Server::start();
    let a = new_acct(&s, "Ann").await;
    let b = new_acct(&s, "Bob").await;
    make_friends(&s, &a, &b).await;
    restart_armed(&mut s, "after_first_step");
    let body = json!({"text": "ran 5k"});
    cut_short(&s, Method::POST, "/v1/me/activities", a.tok(), body).await;
    restart_unarmed(&mut s).await;

    let posted = events_of(&s, &b, "activity.posted").await;
    assert_eq!(posted.len(), 1, "{posted:?}");
    assert_eq!(posted[0]["data"]["text"], "ran 5k");
    let feed = get(&s, &format!("/v1/accounts/{}/activities", a.id), b.tok()).await;
    assert_eq!(feed.expect(200)["items"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_binding_request_reaches_the_owner_after_a_crash_before_it_did() {
    let mut s = Server::start();
    let owner = new_acct(&s, "Olga").await;
    let gid = create_group(&s, &owner, "Runners").await;
    let c = create_community(&s, &owner, "Club").await;
    restart_armed(&mut s, "after_first_step");
    let path = format!("/v1/communities/{}/binding-requests", c.id);
    cut_short(&s, Method::POST, &path, c.key(), json!({"group_id": gid})).await;
    restart_unarmed(&mut s).await;

    let told = events_of(&s, &owner, "binding.requested").await;
    assert_eq!(told.len(), 1, "{told:?}");
    let items = pending(&s, &owner, &gid).await["items"].clone();
    assert_eq!(items.as_array().map(Vec::len), Some(1));
    assert_eq!(told[0]["data"]["request_id"], items[0]["request_id"]);
}

#[tokio::test]
async fn a_dynamic_reaches_every_bound_group_once_after_a_crash_mid_step() {
    let mut s = Server::start();
    let owner = new_acct(&s, "Olga").await;
    let poster = new_acct(&s, "Pia").await;
    let c = create_community(&s, &owner, "Club").await;
    community_add_member(&s, &c, &poster).await;
    let groups = [
        create_group(&s, &owner, "One").await,
        create_group(&s, &owner, "Two").await,
        create_group(&s, &owner, "Three").await,
    ];
    for gid in &groups {
        bind(&s, &c, &owner, gid).await;
    }
    restart_armed(&mut s, "mid_step");
    let path = format!("/v1/communities/{}/dynamics", c.id);
    let body = json!({"account_id": poster.id, "kind": "run", "text": "10k today"});
    cut_short(&s, Method::POST, &path, c.key(), body).await;
    restart_unarmed(&mut s).await;

    let dynamics_of = |gid: String| {
        let (s, owner) = (&s, &owner);
        async move {
            let events = group_events(s, owner, &gid, "").await;
            events["items"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|e| e["type"] == "group.dynamic")
                .collect::<Vec<Value>>()
        }
    };
    for gid in &groups {
        let got = dynamics_of(gid.clone()).await;
        assert_eq!(got.len(), 1, "group {gid} has it once: {got:?}");
        assert_eq!(got[0]["data"]["text"], "10k today");
    }
}

#[tokio::test]
async fn a_step_whose_first_run_fails_is_carried_out_by_the_sweeper() {
    let mut s = Server::start();
    let a = new_acct(&s, "Ann").await;
    let b = new_acct(&s, "Bob").await;
    let c = new_acct(&s, "Cid").await;
    make_friends(&s, &a, &b).await;
    post(&s, "/v1/friends/requests", c.tok(), &json!({"to": a.id}))
        .await
        .expect(201);
    restart_armed(&mut s, "step_fails");
    // Each answers 2xx: the first write and its step are durable, the rest only failed.
    patch(
        &s,
        "/v1/me/profile",
        a.tok(),
        &json!({"display_name": "Ann B."}),
    )
    .await
    .expect(200);
    post_empty(
        &s,
        &format!("/v1/friends/requests/{}/accept", c.id),
        a.tok(),
    )
    .await
    .expect(200);
    // The first run failed (the log says so; asserted below): only the sweeper, 1 s later,
    // can carry the step out. Nothing is asserted on the moment before it does, which a
    // slow store can take longer than.
    eventually(
        "the sweeper tells the friend and makes the other side",
        || async {
            events_of(&s, &b, "profile.updated").await.len() == 1
                && friend_ids(&s, &c).await == vec![a.id.clone()]
        },
    )
    .await;
    assert!(
        s.log_text()
            .contains("fault injected: the step's first run fails")
    );
    assert_eq!(events_of(&s, &c, "friend.added").await.len(), 1);
}
