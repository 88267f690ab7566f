//! The ambiguous write end to end, on the CQL store only: the local CQL node is paused
//! (SIGSTOP, `chorus_testkit::cql_node`) while the server writes to a log, so the write times
//! out (`--scylla-timeout-ms`) and the client gets a 5xx, though what the server sent may still
//! land when the node resumes. Whatever lands, the log must stay whole: no seq twice, seqs
//! rising, the next acknowledged write present exactly once and never overwritten, the timed-out
//! one present once (its batch landed late, at its own seq) or not at all (only its seq
//! reservation landed: a gap). Checked on a group's log (`/events` and a member's device) and
//! an account's (`resume` and its device). docs/scylla.md, "The seq fence".
//!
//! The node is paused under the write, not under the request's token lookup (a store read
//! too, which would fail first): the client holds back the last byte of the body until the
//! server has authenticated the request ([`paused_mid_request`]).
//!
//! Skipped (one "skipped: ..." line) unless the run is on the CQL store
//! (`CHORUS_TEST_STORE=scylla`) and the node's pid file is found (`$CQL_NODE_DIR/node.pid`,
//! default `<repo>/.cql-node/node.pid`). The node is paused for at most [`PAUSE_LIMIT`]: the
//! other tests of the run only wait, their servers' timeouts being longer.
//!
//! **The write after the pause may fail too, and is retried.** The timed-out write is
//! answered 5xx while the node is paused; when it resumes, the write's seq reservation (a
//! Paxos round on the log's head) may still be completing. The actor reloads its head from the
//! store after a failed write; a reload that reads the head just before that reservation
//! commits leaves the actor one seq behind, and its next write is refused by the fence ("log
//! moved", 500 `storage_error`, nothing stored) and reloads again. A node just woken with a
//! backlog may also time out once more. So the client does what a client does with a 5xx:
//! it tries again, each attempt with a text of its own (a failed attempt may land late too),
//! a few times; one must be acknowledged within [`ATTEMPTS`].

use std::future::Future;
use std::time::Duration;

use chorus_testkit::cql_node::{Paused, node_pid};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::{Mutex, MutexGuard};

use crate::support::groups::{add_member, create_group, post_message};
use crate::support::store::on_cql_store;
use crate::support::*;

/// The server's CQL request timeout.
const TIMEOUT_MS: &str = "500";
/// The longest the node stays paused: the paused request's answer must come before.
const PAUSE_LIMIT: Duration = Duration::from_millis(1500);
/// How long the server gets to authenticate a request before the node is paused under it.
const AUTHENTICATED: Duration = Duration::from_millis(300);
/// Attempts at the write after the pause.
const ATTEMPTS: usize = 5;

/// The tests of this module, one at a time: a test's servers time out quickly, so the other
/// test's pause would fail their requests.
static ALONE: Mutex<()> = Mutex::const_new(());

/// A server of this module's (its CQL requests time out after [`TIMEOUT_MS`]), the local
/// node's pid and this module's turn; `None`, said in one line, when the test is skipped.
async fn fenced_server() -> Option<(Server, String, MutexGuard<'static, ()>)> {
    if !on_cql_store() {
        println!("skipped: not on the CQL store (CHORUS_TEST_STORE=scylla)");
        return None;
    }
    let Some(pid) = node_pid() else {
        println!("skipped: no local CQL node pid file (scripts/cql-node, CQL_NODE_DIR)");
        return None;
    };
    let turn = ALONE.lock().await;
    let server = Server::start_with(&["--scylla-timeout-ms", TIMEOUT_MS]);
    Some((server, pid, turn))
}

/// `method path` with `body`, the node paused while the request is under way: the headers
/// and the body's first byte go first, and once the server had [`AUTHENTICATED`] to look the
/// token up (a store read: paused, it would fail there, before the write), the node is
/// paused and the rest of the body sent. The answer must come within [`PAUSE_LIMIT`] (the
/// node is resumed then, answer or not) and be the contract's 5xx.
async fn paused_mid_request(
    pid: &str,
    s: &Server,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> Resp {
    let body = serde_json::to_vec(body).unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(2);
    tx.send(Ok(body[..1].to_vec())).await.unwrap();
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let mut request = client()
        .request(method, s.url(path))
        .header("Content-Type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks));
    if let Some(t) = token {
        request = request.header("Authorization", format!("Bearer {t}"));
    }
    let answer = tokio::spawn(finish(request));
    tokio::time::sleep(AUTHENTICATED).await;

    let paused = Paused::node(pid);
    tx.send(Ok(body[1..].to_vec())).await.unwrap();
    drop(tx);
    let answer = tokio::time::timeout(PAUSE_LIMIT, answer).await;
    drop(paused);
    let answer = answer
        .unwrap_or_else(|_| {
            panic!(
                "no answer within {PAUSE_LIMIT:?} with the node paused (timeout {TIMEOUT_MS} ms)"
            )
        })
        .expect("the request task");
    assert_server_fault(&answer);
    answer
}

/// A 500 `storage_error` or 503 `unavailable`, in the contract's error shape.
#[track_caller]
fn assert_server_fault(r: &Resp) {
    match r.status.as_u16() {
        500 => r.expect_error(500, "storage_error"),
        503 => r.expect_error(503, "unavailable"),
        other => panic!("wanted a 5xx of the store, got {other}: {}", r.text),
    }
}

/// Attempt `i` (0, 1, …) of a write until one is acknowledged with `status`: its number and
/// body. Every failure must be the contract's 5xx.
async fn until_acknowledged<F, Fut>(status: u16, mut attempt: F) -> (usize, Value)
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Resp>,
{
    for i in 0..ATTEMPTS {
        let r = attempt(i).await;
        if r.status.as_u16() == status {
            return (i, r.body);
        }
        assert_server_fault(&r);
        println!("attempt {i} after the pause: {} {}", r.status, r.text);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no write acknowledged in {ATTEMPTS} attempts after the node resumed");
}

/// The text frames a device received until (and with) the one `last` picks; then nothing
/// more for a moment.
async fn frames_until(ws: &mut Ws, last: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        let frame = next_non_pong(ws, EVENT_TIMEOUT).await;
        let done = last(&frame);
        frames.push(frame);
        if done {
            expect_no_event(ws, Duration::from_millis(300)).await;
            return frames;
        }
    }
}

/// Every stored event of the group, paging `/events` by `after`.
async fn group_log(s: &Server, who: &Acct, gid: &str) -> Vec<Value> {
    let mut events: Vec<Value> = Vec::new();
    loop {
        let after = events.last().map_or(0, log_seq);
        let path = format!("/v1/groups/{gid}/events?after={after}&limit=100");
        let page = get(s, &path, who.tok()).await.expect(200)["items"]
            .as_array()
            .unwrap_or_else(|| panic!("no items array from {path}"))
            .clone();
        if page.is_empty() {
            return events;
        }
        events.extend(page);
    }
}

/// The log's seqs rise strictly (so none is there twice); `key` of its events, in order.
#[track_caller]
fn rising(events: &[Value], key: impl Fn(&Value) -> String) -> Vec<String> {
    let seqs: Vec<u64> = events.iter().map(log_seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "seqs must rise, none twice: {seqs:?}"
    );
    events.iter().map(key).collect()
}

/// [`rising`] for a log, shown as `(seq, key)` pairs (with `--nocapture`): which outcome of
/// the timed-out write this run saw.
#[track_caller]
fn shown(what: &str, log: &[Value], key: impl Fn(&Value) -> String) -> Vec<String> {
    let keys = rising(log, key);
    let seqs = log.iter().map(log_seq);
    println!(
        "{what} after the pause: {:?}",
        seqs.zip(&keys).collect::<Vec<_>>()
    );
    keys
}

/// `keys` (a log's, in order) start with `before` and end with the acknowledged write, hold
/// the timed-out write at most once, each failed attempt at most once, and nothing else.
#[track_caller]
fn check_keys(keys: &[String], before: &str, paused: &str, attempts: &[String]) {
    let (acknowledged, failed) = attempts.split_last().unwrap();
    let count = |k: &str| keys.iter().filter(|x| *x == k).count();
    assert_eq!(keys.first().map(String::as_str), Some(before), "{keys:?}");
    assert_eq!(count(before), 1, "{keys:?}");
    assert_eq!(keys.last(), Some(acknowledged), "{keys:?}");
    assert_eq!(count(acknowledged), 1, "{keys:?}");
    for k in failed.iter().map(String::as_str).chain([paused]) {
        assert!(count(k) <= 1, "{k} twice: {keys:?}");
    }
    let known = |k: &String| k == before || k == paused || attempts.contains(k);
    assert!(keys.iter().all(known), "an event nobody wrote: {keys:?}");
}

/// Every frame a device got is the stored event of its seq, exactly as stored.
#[track_caller]
fn pushed_as_stored(frames: &[Value], log: &[Value]) {
    for frame in frames {
        assert!(
            log.iter().any(|e| e == frame),
            "pushed but not stored so: {frame}\nlog: {log:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_message_that_times_out_never_overwrites_nor_is_overwritten() {
    let Some((s, pid, _turn)) = fenced_server().await else {
        return;
    };
    let owner = new_acct(&s, "Fence Owner").await;
    let member = new_acct(&s, "Fence Member").await;
    let gid = create_group(&s, &owner, "Fenced").await;
    add_member(&s, &owner, &gid, &member).await;
    let (mut device, _) = ws_connect(&s, &member).await;
    let messages = format!("/v1/groups/{gid}/messages");
    post_message(&s, &owner, &gid, "before").await;

    let paused = json!({"text": "paused"});
    paused_mid_request(&pid, &s, Method::POST, &messages, owner.tok(), &paused).await;
    let attempt = |i: usize| format!("after #{i}");
    let (acknowledged, body) = until_acknowledged(201, |i| {
        let text = json!({"text": attempt(i)});
        let (s, messages, owner) = (&s, &messages, &owner);
        async move { post(s, messages, owner.tok(), &text).await }
    })
    .await;
    let message_id = body["message_id"].as_str().unwrap().to_string();

    let text = |e: &Value| e["data"]["text"].as_str().unwrap().to_string();
    let attempts: Vec<String> = (0..=acknowledged).map(attempt).collect();
    let log = group_log(&s, &owner, &gid).await;
    let texts = shown("group log", &log, text);
    check_keys(&texts, "before", "paused", &attempts);
    assert_eq!(log.last().unwrap()["data"]["message_id"], json!(message_id));
    assert!(
        log.iter()
            .all(|e| e["type"] == "group.message" && e["group_id"] == gid)
    );

    let frames = frames_until(&mut device, |f| f["data"]["message_id"] == message_id).await;
    let pushed = rising(&frames, text);
    assert_eq!(pushed.iter().filter(|t| *t == "before").count(), 1);
    pushed_as_stored(&frames, &log);

    // The history is written in the same batch as the event: the same messages, each once.
    let history = get(&s, &format!("{messages}?limit=200"), owner.tok()).await;
    let mut in_history: Vec<String> = history.expect(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect();
    in_history.reverse();
    assert_eq!(
        in_history, texts,
        "the history and the log hold the same messages"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_patch_that_times_out_never_overwrites_nor_is_overwritten() {
    let Some((s, pid, _turn)) = fenced_server().await else {
        return;
    };
    let a = new_acct(&s, "Fence Account").await;
    let (mut device, _) = ws_connect(&s, &a).await;
    let city = |c: &str| json!({"city": c});
    patch(&s, "/v1/me/profile", a.tok(), &city("before"))
        .await
        .expect(200);

    let profile = "/v1/me/profile";
    paused_mid_request(&pid, &s, Method::PATCH, profile, a.tok(), &city("paused")).await;
    let attempt = |i: usize| format!("after #{i}");
    let (acknowledged, body) = until_acknowledged(200, |i| {
        let change = city(&attempt(i));
        let (s, a) = (&s, &a);
        async move { patch(s, "/v1/me/profile", a.tok(), &change).await }
    })
    .await;
    let attempts: Vec<String> = (0..=acknowledged).map(attempt).collect();

    // The acknowledged patch is the profile now: a late one did not overwrite it.
    let m = me(&s, &a).await;
    assert_eq!(m["profile"]["city"], json!(attempts[acknowledged]), "{m}");
    assert_eq!(m["profile_version"], body["profile_version"], "{m}");

    // The log, replayed to a new device from the start up to the newest seq.
    let (mut replay, hello) = ws_connect(&s, &a).await;
    let newest = hello_seq(&hello);
    send_json(&mut replay, &json!({"type": "resume", "since": 0})).await;
    let log = frames_until(&mut replay, |f| f["seq"] == json!(newest)).await;
    let changed = |e: &Value| e["data"]["changes"]["city"].as_str().unwrap().to_string();
    assert!(
        log.iter().all(|e| e["type"] == "profile.updated"),
        "{log:?}"
    );
    let cities = shown("account log", &log, changed);
    check_keys(&cities, "before", "paused", &attempts);

    let frames = frames_until(&mut device, |f| {
        f["data"]["changes"]["city"] == json!(attempts[acknowledged])
    })
    .await;
    rising(&frames, changed);
    pushed_as_stored(&frames, &log);
}
