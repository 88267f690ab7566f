//! Event-log retention (issue 15, item 6, `--log-retention-days`): events older than the
//! horizon leave account and group logs; a `resume` from before the horizon answers the
//! error frame `resync_required` and the connection goes on live; `GET
//! /v1/groups/{gid}/events?after=N` from before it answers 409 `resync_required`, and without
//! `after` it starts at the oldest event kept.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::groups::{create_group, post_message};
use crate::support::*;

/// About 2.6 s: the shortest the setting allows is one second's worth.
const RETENTION_DAYS: &str = "0.00003";

/// How long a test waits for a sweep (and the CQL store's TTL) to take an event.
const TRIM_WAIT: Duration = Duration::from_secs(30);

async fn set_status(s: &Server, a: &Acct, status: &str) {
    patch(s, "/v1/me/profile", a.tok(), &json!({"status": status}))
        .await
        .expect(200);
}

/// Resumes from `since` on a new connection; answers the first frame after it.
async fn resume_answer(s: &Server, a: &Acct, since: u64) -> (Ws, Value) {
    let (mut ws, _) = ws_connect(s, a).await;
    send_json(&mut ws, &json!({"type": "resume", "since": since})).await;
    let first = next_non_pong(&mut ws, EVENT_TIMEOUT).await;
    (ws, first)
}

#[tokio::test]
async fn a_resume_from_before_the_horizon_answers_resync_required() {
    let s = Server::start_with(&["--log-retention-days", RETENTION_DAYS]);
    let a = new_acct(&s, "Ann").await;
    for status in ["one", "two", "three"] {
        set_status(&s, &a, status).await;
    }
    // Events 1 and 2 go once the horizon passes them (the embedded store keeps a log's
    // newest event, the CQL store's TTL takes it too).
    let started = Instant::now();
    let (mut ws, first) = loop {
        let (ws, first) = resume_answer(&s, &a, 1).await;
        if first["type"] == "error" || started.elapsed() > TRIM_WAIT {
            break (ws, first);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(first["type"], "error", "not trimmed in time: {first}");
    assert_eq!(first["error"]["code"], "resync_required", "{first}");
    assert!(
        first["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    // The connection stays, live.
    ping_pong(&mut ws).await;
    set_status(&s, &a, "four").await;
    let live = next_non_pong(&mut ws, EVENT_TIMEOUT).await;
    assert_eq!(
        (live["type"].as_str(), live["seq"].as_u64()),
        (Some("profile.updated"), Some(4))
    );
    // A reader that saw event 3 missed nothing: 4 replays.
    let (_ws, first) = resume_answer(&s, &a, 3).await;
    assert_eq!(first["seq"], 4, "{first}");
    // From the head: nothing to replay, nothing missed.
    let (mut ws, _) = ws_connect(&s, &a).await;
    send_json(&mut ws, &json!({"type": "resume", "since": 4})).await;
    ping_pong(&mut ws).await;
    assert_healthy(&s).await;
}

#[tokio::test]
async fn group_events_from_before_the_horizon_answer_resync_required() {
    let s = Server::start_with(&["--log-retention-days", RETENTION_DAYS]);
    let owner = new_acct(&s, "Owner").await;
    let gid = create_group(&s, &owner, "Hikers").await;
    for text in ["one", "two", "three"] {
        post_message(&s, &owner, &gid, text).await;
    }
    let path = format!("/v1/groups/{gid}/events");
    let started = Instant::now();
    let r = loop {
        let r = get(&s, &format!("{path}?after=1"), owner.tok()).await;
        if r.status != 200 || started.elapsed() > TRIM_WAIT {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    r.expect_error(409, "resync_required");
    let seqs = |v: &Value| -> Vec<u64> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["group_seq"].as_u64().unwrap())
            .collect()
    };
    get(&s, &format!("{path}?after=0"), owner.tok())
        .await
        .expect_error(409, "resync_required");
    // The chat history is not an event log: it stays whole.
    let history = get(&s, &format!("/v1/groups/{gid}/messages"), owner.tok()).await;
    assert_eq!(
        history.expect(200)["items"].as_array().map(Vec::len),
        Some(3)
    );
    // The log goes on numbering after its head.
    post_message(&s, &owner, &gid, "four").await;
    let r = get(&s, &format!("{path}?after=3"), owner.tok()).await;
    assert_eq!(seqs(r.expect(200)), vec![4]);
    // Without `after`: from the oldest event kept, where a reader starts again (the
    // embedded store keeps a log's newest event, 3; the CQL store's TTL took it).
    let r = get(&s, &path, owner.tok()).await;
    let kept = seqs(r.expect(200));
    assert!(kept == vec![3, 4] || kept == vec![4], "{kept:?}");
}

#[tokio::test]
async fn without_retention_nothing_is_trimmed() {
    let s = Server::start_with(&["--log-retention-days", "0"]);
    let a = new_acct(&s, "Ann").await;
    set_status(&s, &a, "one").await;
    set_status(&s, &a, "two").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (mut ws, first) = resume_answer(&s, &a, 0).await;
    assert_eq!(first["seq"], 1, "{first}");
    assert_eq!(next_non_pong(&mut ws, EVENT_TIMEOUT).await["seq"], 2);
}
