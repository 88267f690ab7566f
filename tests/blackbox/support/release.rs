//! Helpers for the release tests; the peers a release goes to (recording HTTP receivers,
//! the aiosmtpd sink) come from `chorus_testkit`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub use chorus_testkit::{Received, Receiver, Reply, Script, SmtpSink, sign};

use crate::support::{Acct, Resp, Server, client, get, post};

// ---------------------------------------------------------------------------
// Chorus API helpers for activities and releases
// ---------------------------------------------------------------------------

/// Links a webhook to `a`'s account; returns the link id.
pub async fn link_webhook(s: &Server, a: &Acct, handle: &str, url: &str, secret: &str) -> String {
    link(
        s,
        a,
        &json!({"platform": "webhook", "handle": handle,
                "config": {"url": url, "secret": secret}}),
    )
    .await
}

/// Links a Mastodon account; returns the link id.
pub async fn link_mastodon(
    s: &Server,
    a: &Acct,
    handle: &str,
    base_url: &str,
    token: &str,
) -> String {
    link(
        s,
        a,
        &json!({"platform": "mastodon", "handle": handle,
                "config": {"base_url": base_url, "access_token": token}}),
    )
    .await
}

/// POST /v1/me/platforms, expecting 201; returns the link id.
#[track_caller]
pub fn link<'a>(s: &'a Server, a: &'a Acct, body: &'a Value) -> impl Future<Output = String> + 'a {
    let caller = std::panic::Location::caller();
    async move {
        let r = post(s, "/v1/me/platforms", a.tok(), body).await;
        assert_eq!(r.status.as_u16(), 201, "{caller}: link {body}: {}", r.text);
        r.body["link_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no link_id in {}", r.text))
            .to_string()
    }
}

/// POST /v1/me/activities with `body`; the response and its headers.
pub async fn post_activity_raw(
    s: &Server,
    a: &Acct,
    body: &Value,
) -> (Resp, reqwest::header::HeaderMap) {
    let req = client()
        .post(s.url("/v1/me/activities"))
        .header("Authorization", format!("Bearer {}", a.token))
        .json(body);
    let resp = req.send().await.expect("HTTP request failed");
    let headers = resp.headers().clone();
    let status = resp.status();
    let text = resp.text().await.expect("read response body");
    let parsed = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::Null)
    };
    (
        Resp {
            status,
            body: parsed,
            text,
        },
        headers,
    )
}

/// Posts `text` (201 expected); returns the answer body.
pub async fn post_text(s: &Server, a: &Acct, text: &str) -> Value {
    let r = post(s, "/v1/me/activities", a.tok(), &json!({"text": text})).await;
    let body = r.expect(201).clone();
    assert!(
        body["activity_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "no activity_id: {body}"
    );
    assert!(body["created_ms"].is_u64(), "no created_ms: {body}");
    assert!(body["releases"].is_array(), "no releases: {body}");
    body
}

pub fn activity_id(body: &Value) -> String {
    body["activity_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no activity_id in {body}"))
        .to_string()
}

/// GET /v1/activities/{id}/releases as `a` (200 expected): the items.
pub async fn releases(s: &Server, a: &Acct, id: &str) -> Vec<Value> {
    let r = get(s, &format!("/v1/activities/{id}/releases"), a.tok()).await;
    let body = r.expect(200);
    assert_eq!(body["next"], Value::Null, "releases next: {}", r.text);
    body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {}", r.text))
        .clone()
}

/// The item of `link_id` among release items.
#[track_caller]
pub fn release_of<'v>(items: &'v [Value], link_id: &str) -> &'v Value {
    let found: Vec<&Value> = items.iter().filter(|i| i["link_id"] == link_id).collect();
    assert_eq!(found.len(), 1, "want one release of {link_id} in {items:?}");
    found[0]
}

/// Polls the releases endpoint until `done(items)`; panics after `timeout`.
pub async fn wait_releases(
    s: &Server,
    a: &Acct,
    id: &str,
    timeout: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let items = releases(s, a, id).await;
        if done(&items) {
            return items;
        }
        if Instant::now() > deadline {
            panic!("releases of {id} did not reach the wanted state within {timeout:?}: {items:?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until every release of `id` is `delivered` or `failed`.
pub async fn wait_final(s: &Server, a: &Acct, id: &str, timeout: Duration) -> Vec<Value> {
    wait_releases(s, a, id, timeout, |items| {
        !items.is_empty()
            && items
                .iter()
                .all(|i| i["status"] == "delivered" || i["status"] == "failed")
    })
    .await
}

/// The next `n` events on `ws`, each of which must be `release.status`; each waits up to
/// `timeout`.
pub async fn release_events(
    ws: &mut crate::support::Ws,
    n: usize,
    timeout: Duration,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let v = crate::support::next_non_pong(ws, timeout).await;
        assert_eq!(
            v["type"], "release.status",
            "expected release.status, got {v}"
        );
        assert!(v["seq"].is_u64(), "event without seq: {v}");
        assert!(v["data"].is_object(), "event without data: {v}");
        out.push(v["data"].clone());
    }
    out
}

/// The events of `link_id` among release.status data, in order.
pub fn events_of(events: &[Value], link_id: &str) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["link_id"] == link_id)
        .cloned()
        .collect()
}
