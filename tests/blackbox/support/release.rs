//! Activities and their releases as the tests drive them: posting, the releases endpoint,
//! waiting for final states and `release.status` events, and [`ReleaseFixture`], the setup
//! the release tests share (a server with release settings, an author, links to receivers).

use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use serde_json::{Value, json};

pub use super::receivers::*;
pub use super::smtp::*;

use super::accounts::{Acct, new_acct};
use super::http::{Resp, get, post};
use super::server::Server;
use super::ws::{Ws, next_non_pong, ws_connect};

/// How long a test waits for a release it expects (a bound on waiting, not a requirement on
/// speed; long enough for a restart too).
pub const RELEASE_WAIT: Duration = Duration::from_secs(10);
/// A backoff base short enough that a retry comes within a test's patience.
pub const FAST_RETRY: [&str; 2] = ["--release-backoff-base-ms", "100"];
/// The webhook secrets a fixture links with, in order: each link signs with its own.
const SECRETS: [&str; 3] = [
    "whsec_alpha_0123456789",
    "whsec_bravo_9876543210",
    "whsec_charlie_0246813579",
];

/// A platform linked to the fixture's author, and the receiver standing in for it.
pub struct Linked {
    pub link: String,
    pub rx: Receiver,
    /// The webhook secret (empty for Mastodon).
    pub secret: &'static str,
}

/// The setup a release test starts from: a server with the given flags and its author
/// ("Ann Author" unless named), to whom the test links receivers and devices.
pub struct ReleaseFixture {
    pub s: Server,
    pub a: Acct,
    webhooks: usize,
}

impl ReleaseFixture {
    pub async fn start(args: &[&str]) -> ReleaseFixture {
        ReleaseFixture::start_as("Ann Author", args).await
    }

    pub async fn start_as(author: &str, args: &[&str]) -> ReleaseFixture {
        let s = Server::start_with(args);
        let a = new_acct(&s, author).await;
        ReleaseFixture { s, a, webhooks: 0 }
    }

    /// Fast retries, and email goes to `sink`.
    pub async fn with_smtp(author: &str, sink: &SmtpSink) -> ReleaseFixture {
        let url = sink.url();
        ReleaseFixture::start_as(author, &[FAST_RETRY[0], FAST_RETRY[1], "--smtp-url", &url]).await
    }

    /// A receiver answering by `script`, linked as the webhook `handle` at its `/hook`.
    pub async fn webhook(&mut self, handle: &str, script: Script) -> Linked {
        self.webhook_at(handle, "/hook", script).await
    }

    /// A receiver answering by `script`, linked as the webhook `handle` at its `path`.
    pub async fn webhook_at(&mut self, handle: &str, path: &str, script: Script) -> Linked {
        let secret = SECRETS[self.webhooks % SECRETS.len()];
        self.webhooks += 1;
        let rx = Receiver::start(script, Some(secret));
        let link = link_webhook(&self.s, &self.a, handle, &rx.url(path), secret).await;
        Linked { link, rx, secret }
    }

    /// A receiver answering by `script`, linked as the Mastodon account `handle` with the
    /// instance at its `path`.
    pub async fn mastodon(&self, handle: &str, path: &str, token: &str, script: Script) -> Linked {
        let rx = Receiver::start(script, None);
        let link = link_mastodon(&self.s, &self.a, handle, &rx.url(path), token).await;
        Linked {
            link,
            rx,
            secret: "",
        }
    }

    /// Links the email address `to` and proves it with the code `sink` got; the server
    /// needs `--smtp-url` ([`Self::with_smtp`]).
    pub async fn email(&self, to: &str, sink: &SmtpSink) -> String {
        link_proven_email(&self.s, &self.a, to, sink).await
    }

    /// A device of the author, past its hello.
    pub async fn device(&self) -> Ws {
        ws_connect(&self.s, &self.a).await.0
    }

    /// Posts `text` as the author (201 expected); the activity id.
    pub async fn post(&self, text: &str) -> String {
        activity_id(&post_text(&self.s, &self.a, text).await)
    }

    /// The author's releases of `id`.
    pub async fn releases(&self, id: &str) -> Vec<Value> {
        releases(&self.s, &self.a, id).await
    }

    /// Waits (up to [`RELEASE_WAIT`]) until every release of `id` is final.
    pub async fn wait_final(&self, id: &str) -> Vec<Value> {
        wait_final(&self.s, &self.a, id, RELEASE_WAIT).await
    }
}

/// POST /v1/me/activities with `body`, whatever the answer; the answer and its headers.
pub async fn post_activity_raw(s: &Server, a: &Acct, body: &Value) -> (Resp, HeaderMap) {
    let r = post(s, "/v1/me/activities", a.tok(), body).await;
    let headers = r.headers.clone();
    (r, headers)
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

/// The data of the next `n` events on `ws`, each of which must be `release.status`; each
/// waits up to [`RELEASE_WAIT`].
pub async fn release_events(ws: &mut Ws, n: usize) -> Vec<Value> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let v = next_non_pong(ws, RELEASE_WAIT).await;
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
