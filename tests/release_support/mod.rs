//! Receivers for the release tests: real HTTP servers (actix-web, each on its own thread
//! with its own actix system) standing in for webhook endpoints and Mastodon instances, and
//! the aiosmtpd sink of `tests/support/smtp_sink.py` standing in for an SMTP relay.
//!
//! A [`Receiver`] records every request (arrival time, headers, raw body), checks the webhook
//! signature over the exact bytes it got, and answers from a [`Script`].
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::common::{Acct, Resp, Server, client, get, post};

/// One answer of a receiver.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 `{"ok":true}`.
    Ok,
    /// This status with a short text body.
    Status(u16),
    /// 429 with `Retry-After: <secs>`.
    Status429(u64),
    /// 503 with `Retry-After: <secs>`.
    Status503(u64),
    /// Sleep this long, then 200.
    Hang(Duration),
}

/// What a receiver answers to its n-th request (0-based).
#[derive(Debug, Clone)]
pub enum Script {
    /// The same reply to every request.
    Always(Reply),
    /// These replies in order, then 200 forever.
    Seq(Vec<Reply>),
}

impl Script {
    fn reply(&self, n: usize) -> Reply {
        match self {
            Script::Always(r) => r.clone(),
            Script::Seq(v) => v.get(n).cloned().unwrap_or(Reply::Ok),
        }
    }
}

/// One request as the receiver got it.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub method: String,
    /// Path and query, e.g. `/hook` or `/api/v1/statuses`.
    pub path: String,
    /// Header names lower-cased; a repeated header keeps its values joined by ", ".
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// `Chorus-Signature` is `v1=` + hex HMAC-SHA256(secret, `Chorus-Timestamp` + "." + body).
    pub sig_ok: bool,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    #[track_caller]
    pub fn h(&self, name: &str) -> &str {
        self.header(name)
            .unwrap_or_else(|| panic!("request has no {name} header: {:?}", self.headers))
    }

    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "request body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn idempotency_key(&self) -> String {
        self.h("idempotency-key").to_string()
    }
}

struct State {
    script: Script,
    secret: Option<String>,
    log: Mutex<Vec<Received>>,
}

/// An HTTP server on 127.0.0.1:<os-chosen port>, stopped when dropped.
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<State>,
    handle: actix_web::dev::ServerHandle,
}

/// hex HMAC-SHA256(secret, timestamp + "." + body).
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

async fn handle(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let at = Instant::now();
    let mut headers: HashMap<String, String> = HashMap::new();
    for (k, v) in req.headers() {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        headers
            .entry(k.as_str().to_ascii_lowercase())
            .and_modify(|old| {
                old.push_str(", ");
                old.push_str(&v);
            })
            .or_insert(v);
    }
    let sig_ok = match (
        &state.secret,
        headers.get("chorus-timestamp"),
        headers.get("chorus-signature"),
    ) {
        (Some(secret), Some(ts), Some(sig)) => *sig == format!("v1={}", sign(secret, ts, &body)),
        _ => false,
    };
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let n = {
        let mut log = state.log.lock().unwrap();
        log.push(Received {
            at,
            method: req.method().as_str().to_string(),
            path,
            headers,
            body: body.to_vec(),
            sig_ok,
        });
        log.len() - 1
    };
    match state.script.reply(n) {
        Reply::Ok => HttpResponse::Ok()
            .content_type("application/json")
            .body(r#"{"ok":true}"#),
        Reply::Status(code) => {
            let status = actix_web::http::StatusCode::from_u16(code).expect("status code");
            HttpResponse::build(status).body(format!("scripted {code}"))
        }
        Reply::Status429(secs) => HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", secs.to_string()))
            .body("slow down"),
        Reply::Status503(secs) => HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", secs.to_string()))
            .body("maintenance"),
        Reply::Hang(d) => {
            actix_web::rt::time::sleep(d).await;
            HttpResponse::Ok()
                .content_type("application/json")
                .body(r#"{"ok":true,"slow":true}"#)
        }
    }
}

impl Receiver {
    /// A receiver answering by `script`; `secret` is the webhook secret its signatures are
    /// checked with (None: `sig_ok` is always false, e.g. for Mastodon).
    pub fn start(script: Script, secret: Option<&str>) -> Receiver {
        let state = Arc::new(State {
            script,
            secret: secret.map(str::to_string),
            log: Mutex::new(Vec::new()),
        });
        let data = web::Data::from(state.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let system = actix_web::rt::System::new();
            system.block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .app_data(web::PayloadConfig::new(1 << 20))
                        .default_service(web::to(handle))
                })
                .workers(1)
                .disable_signals()
                .shutdown_timeout(0)
                .bind(("127.0.0.1", 0))
                .expect("bind receiver");
                let addr = server.addrs()[0];
                let running = server.run();
                tx.send((addr, running.handle()))
                    .expect("send receiver addr");
                let _ = running.await;
            });
        });
        let (addr, handle) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("receiver did not start");
        Receiver {
            addr,
            state,
            handle,
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Everything received so far, in arrival order.
    pub fn requests(&self) -> Vec<Received> {
        self.state.log.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.state.log.lock().unwrap().len()
    }

    /// Waits until at least `n` requests have arrived; panics after `timeout`.
    #[track_caller]
    pub fn wait_for(&self, n: usize, timeout: Duration) -> impl Future<Output = Vec<Received>> {
        let caller = std::panic::Location::caller();
        async move {
            let deadline = Instant::now() + timeout;
            loop {
                let got = self.requests();
                if got.len() >= n {
                    return got;
                }
                if Instant::now() > deadline {
                    panic!(
                        "{caller}: receiver got {} request(s) within {timeout:?}, wanted {n}: {:?}",
                        got.len(),
                        got.iter()
                            .map(|r| (r.path.clone(), String::from_utf8_lossy(&r.body)))
                            .collect::<Vec<_>>()
                    );
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // `stop` sends the command at once; the returned future only waits for completion.
        drop(self.handle.stop(false));
    }
}

// ---------------------------------------------------------------------------
// SMTP sink
// ---------------------------------------------------------------------------

/// `python3 tests/support/smtp_sink.py`: a real SMTP server (aiosmtpd). Every accepted
/// message is one JSON object `{"mail_from", "rcpt_tos", "data", "subject", "text"}`.
pub struct SmtpSink {
    pub port: u16,
    messages: Arc<Mutex<Vec<Value>>>,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl SmtpSink {
    /// `None` (after printing `skipped: aiosmtpd not installed`) when aiosmtpd is missing,
    /// unless `CHORUS_REQUIRE_SMTP_SINK` is set, in which case it panics.
    pub fn start(args: &[&str]) -> Option<SmtpSink> {
        let importable = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !importable {
            if std::env::var_os("CHORUS_REQUIRE_SMTP_SINK").is_some() {
                panic!(
                    "CHORUS_REQUIRE_SMTP_SINK is set but `python3 -c 'import aiosmtpd'` fails: \
                     pip install aiosmtpd"
                );
            }
            println!("skipped: aiosmtpd not installed");
            return None;
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn smtp_sink.py");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("sink stdout");
        let messages = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink_messages = messages.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(port) = line.strip_prefix("READY ") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(port.trim().parse::<u16>().expect("sink port"));
                    }
                    continue;
                }
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => sink_messages.lock().unwrap().push(v),
                    Err(e) => eprintln!("smtp_sink printed a non-JSON line ({e}): {line}"),
                }
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(15)) {
            Ok(port) => port,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("smtp_sink.py did not print READY <port>: {e}");
            }
        };
        Some(SmtpSink {
            port,
            messages,
            child,
            stdin,
        })
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn messages(&self) -> Vec<Value> {
        self.messages.lock().unwrap().clone()
    }

    /// Waits until at least `n` messages have arrived; panics after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.messages();
            if got.len() >= n {
                return got;
            }
            if Instant::now() > deadline {
                panic!(
                    "smtp sink got {} message(s) within {timeout:?}, wanted {n}: {got:?}",
                    got.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        // Closing stdin makes the sink exit; kill it in case it does not.
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.flush();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
pub async fn release_events(ws: &mut crate::common::Ws, n: usize, timeout: Duration) -> Vec<Value> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let v = crate::common::next_non_pong(ws, timeout).await;
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
