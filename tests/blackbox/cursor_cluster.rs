//! One cursor in cluster mode (issue 16 item 1): group events reach a node over NATS, so a
//! device that comes back on another node, or whose node lost NATS messages (1013, issue
//! 14's known gap), reads the group events it missed from the store with `resume`'s
//! `groups`. CQL store and nats-server only (`support::cluster`); skipped otherwise.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::cluster::TestCluster;
use crate::support::groups::*;
use crate::support::*;

/// A device left node 1 having seen the group up to 3; the group went on (and its own log
/// too); it comes back on node 2 and resumes with its two cursors: everything it missed,
/// then live, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_device_resumes_its_groups_on_another_node() {
    let Some(cluster) = TestCluster::start(3).await else {
        return;
    };
    let (n0, n1, n2) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let owner = new_acct(n0, "Owner").await;
    let member = new_acct(n1, "Member").await;
    let gid = create_group(n0, &owner, "Roaming").await;
    add_member(n2, &owner, &gid, &member).await;

    let (mut ws, hello) = ws_connect(n1, &member).await;
    assert_eq!(hello["groups"], json!({ &gid: 0 }), "{hello}");
    for k in 0..3 {
        post_message(n2, &owner, &gid, &format!("seen {k}")).await;
    }
    expect_group_run(&mut ws, &gid, 0, 3).await;
    drop(ws);

    for k in 0..4 {
        post_message(n0, &owner, &gid, &format!("missed {k}")).await;
    }
    post(
        n2,
        "/v1/friends/requests",
        owner.tok(),
        &json!({"to": member.id}),
    )
    .await
    .expect(201);

    let (mut ws, hello) = ws_connect(n2, &member).await;
    assert_eq!(hello["seq"], 1, "{hello}");
    assert_eq!(hello["groups"], json!({ &gid: 7 }), "{hello}");
    send_json(
        &mut ws,
        &json!({"type": "resume", "since": 0, "groups": { &gid: 3 }}),
    )
    .await;
    expect_account_event(&mut ws, "friend.requested", 1).await;
    expect_group_run(&mut ws, &gid, 3, 7).await;
    post_message(n1, &owner, &gid, "live").await;
    expect_group_run(&mut ws, &gid, 7, 8).await;
    expect_no_event(&mut ws, Duration::from_millis(300)).await;
}

/// Posts until the server takes it (nodes may refuse for a moment while NATS comes back).
async fn post_until_taken(srv: &Server, who: &Acct, gid: &str, text: &str) {
    let started = Instant::now();
    loop {
        let r = try_post_message(srv, who, gid, text).await;
        if r.status == 201 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "a post was not taken within 30 s: {} {:?}",
            r.status,
            r.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The group_seqs of `gid` a device reads until its connection ends (1013: its node lost
/// NATS messages) or nothing comes for `quiet`.
async fn read_until_closed(ws: &mut Ws, gid: &str, quiet: Duration) -> (Vec<u64>, Option<u16>) {
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout(quiet, ws.next()).await {
            Err(_) | Ok(None) | Ok(Some(Err(_))) => return (seen, None),
            Ok(Some(Ok(Message::Close(c)))) => return (seen, c.map(|f| u16::from(f.code))),
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("JSON");
                if v["group_id"] == gid {
                    seen.push(v["group_seq"].as_u64().expect("group_seq"));
                }
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Issue 14's known gap: group events published while a node's NATS connection is down
/// never reach its devices live; the node tells them to resume (1013). With `resume`'s
/// `groups` they now get those events back from the store, in order, with the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_events_lost_on_a_nats_reconnect_are_recovered_by_resume() {
    let Some(mut cluster) = TestCluster::start(2).await else {
        return;
    };
    let owner = new_acct(cluster.node(0), "Owner").await;
    let member = new_acct(cluster.node(1), "Member").await;
    let gid = create_group(cluster.node(0), &owner, "Lossy").await;
    add_member(cluster.node(0), &owner, &gid, &member).await;
    // Posted through the group's owner, so that a post needs no NATS round trip.
    let r = get(cluster.node(0), &format!("/v1/cluster/owner/g/{gid}"), None).await;
    let via: usize = s(r.expect(200), "node")
        .trim_start_matches('n')
        .parse()
        .expect("node index");
    // The member's device is on the other node: group events reach it over NATS.
    let there = 1 - via;
    let (mut ws, _) = ws_connect(cluster.node(there), &member).await;
    for k in 0..3 {
        post_until_taken(cluster.node(via), &owner, &gid, &format!("before {k}")).await;
    }
    expect_group_run(&mut ws, &gid, 0, 3).await;

    cluster.nats.restart();
    let total = 3 + 5;
    for k in 0..5 {
        post_until_taken(cluster.node(via), &owner, &gid, &format!("during {k}")).await;
    }
    let (seen, closed) = read_until_closed(&mut ws, &gid, Duration::from_secs(10)).await;
    println!("seen live after the NATS restart: {seen:?}, closed: {closed:?}");
    let live: BTreeSet<u64> = seen.iter().copied().collect();
    assert_eq!(live.len(), seen.len(), "no group event twice: {seen:?}");

    // The device comes back (on the same node) and resumes from the last group_seq it saw
    // with none missing before it (events published after NATS came back may have arrived
    // past a hole).
    let mut cursor = 3;
    for &seq in &seen {
        if seq != cursor + 1 {
            break;
        }
        cursor = seq;
    }
    let (mut ws, hello) = ws_connect(cluster.node(there), &member).await;
    assert_eq!(hello["groups"], json!({ &gid: total }), "{hello}");
    send_json(
        &mut ws,
        &json!({"type": "resume", "since": hello_seq(&hello), "groups": { &gid: cursor }}),
    )
    .await;
    expect_group_run(&mut ws, &gid, cursor, total).await;
    post_until_taken(cluster.node(via), &owner, &gid, "after").await;
    expect_group_run(&mut ws, &gid, total, total + 1).await;
}
