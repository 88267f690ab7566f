//! Shared harness for the black-box integration tests: spawns the real `chorus`
//! binary on a temporary data directory and talks to it over HTTP and WebSocket.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub const PASSWORD: &str = "correct horse battery";
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(5);

/// A running (or stopped) server process bound to a temporary data directory.
pub struct Server {
    pub addr: String,
    pub data_dir: TempDir,
    extra_args: Vec<String>,
    child: Option<Child>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Start a server with the standard test flags.
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// Start a server with the standard test flags plus `extra` arguments.
    pub fn start_with(extra: &[&str]) -> Server {
        let data_dir = tempfile::tempdir().expect("create temp data dir");
        let mut server = Server {
            addr: String::new(),
            data_dir,
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
            log: Arc::new(Mutex::new(Vec::new())),
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "server already running");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chorus"));
        cmd.arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .arg("--password-hash-memory-kib")
            .arg("256")
            .arg("--password-hash-iterations")
            .arg("1")
            .args(&self.extra_args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn chorus binary");
        let stdout = child.stdout.take().expect("child stdout");
        let stderr = child.stderr.take().expect("child stderr");

        let (tx, rx) = mpsc::channel::<String>();
        let log = self.log.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut sent = false;
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                        if !sent && let Some(addr) = parse_listen_addr(&line) {
                            let _ = tx.send(addr);
                            sent = true;
                        }
                        push_log(&log, line);
                    }
                }
            }
        });
        let log = self.log.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                        push_log(&log, format!("[stderr] {line}"));
                    }
                }
            }
            // drain anything left (should not happen after EOF)
            let mut rest = Vec::new();
            let _ = reader.read_to_end(&mut rest);
        });

        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(addr) => {
                    self.addr = addr;
                    break;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        panic!(
                            "chorus exited with {status} before listening; output:\n{}",
                            self.log_text()
                        );
                    }
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        panic!(
                            "chorus did not print `listening on http://` within 30 s; output:\n{}",
                            self.log_text()
                        );
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = child.kill();
                    let status = child.wait();
                    panic!(
                        "chorus closed stdout before listening ({status:?}); output:\n{}",
                        self.log_text()
                    );
                }
            }
        }
        self.child = Some(child);
    }

    pub fn log_text(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/ws", self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url(), path)
    }

    /// SIGKILL the process (no chance to flush anything).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Send SIGTERM without waiting.
    pub fn sigterm(&self) {
        let child = self.child.as_ref().expect("server is not running");
        let pid = child.id() as libc::pid_t;
        // SAFETY: plain kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill(SIGTERM) failed");
    }

    /// Wait (up to `timeout`) for the process to exit; returns its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("server is not running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "server did not exit within {timeout:?}; output:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM the process and wait (up to 20 s) for it to exit; returns its status.
    pub fn terminate(&mut self) -> ExitStatus {
        self.sigterm();
        self.wait_exit(Duration::from_secs(20))
    }

    /// Start the server again on the same data directory (kills it first if running).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- chorus output (last lines) ----\n{}", self.log_text());
        }
    }
}

fn push_log(log: &Arc<Mutex<Vec<String>>>, line: String) {
    if let Ok(mut l) = log.lock() {
        l.push(line);
        if l.len() > 400 {
            l.drain(0..200);
        }
    }
}

fn parse_listen_addr(line: &str) -> Option<String> {
    let idx = line.find("listening on http://")?;
    let rest = &line[idx + "listening on http://".len()..];
    let addr: String = rest.split_whitespace().next()?.to_string();
    // strip ANSI escapes or trailing punctuation if any
    let addr: String = addr
        .chars()
        .take_while(|c| {
            c.is_ascii_alphanumeric() || *c == '.' || *c == ':' || *c == '[' || *c == ']'
        })
        .collect();
    let addr = addr.trim_end_matches('/').to_string();
    if addr.is_empty() { None } else { Some(addr) }
}

// ---------------------------------------------------------------------------
// HTTP helpers
// ---------------------------------------------------------------------------

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("reqwest client")
}

/// A response: status and parsed JSON body (Value::Null when empty), plus raw text.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: StatusCode,
    pub body: Value,
    pub text: String,
}

impl Resp {
    /// Assert the status is `status` and return the body.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text
        );
        &self.body
    }

    /// Assert this is an error response with the given status and code, in the
    /// `{"error":{"code","message"}}` shape.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status (wanted error {code}); body: {}",
            self.text
        );
        assert_error_shape(&self.body, code, &self.text);
    }
}

#[track_caller]
pub fn assert_error_shape(body: &Value, code: &str, text: &str) {
    let obj = body
        .as_object()
        .unwrap_or_else(|| panic!("error body is not a JSON object: {text:?}"));
    let err = obj
        .get("error")
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("error body has no `error` object: {text}"));
    assert_eq!(
        err.get("code").and_then(Value::as_str),
        Some(code),
        "wrong error code; body: {text}"
    );
    let msg = err
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("error has no string `message`: {text}"));
    assert!(!msg.is_empty(), "error message is empty: {text}");
}

pub async fn send(
    server: &Server,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Resp {
    let mut req = client().request(method, server.url(path));
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    finish(req).await
}

/// Send raw bytes as the body, with an optional Content-Type header.
pub async fn send_raw(
    server: &Server,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: impl Into<reqwest::Body>,
    content_type: Option<&str>,
) -> Resp {
    let mut req = client().request(method, server.url(path)).body(body);
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    if let Some(ct) = content_type {
        req = req.header("Content-Type", ct);
    }
    finish(req).await
}

pub async fn finish(req: reqwest::RequestBuilder) -> Resp {
    let resp = req.send().await.expect("HTTP request failed");
    let status = resp.status();
    let text = resp.text().await.expect("read response body");
    let body = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::Null)
    };
    Resp { status, body, text }
}

pub async fn get(server: &Server, path: &str, token: Option<&str>) -> Resp {
    send(server, Method::GET, path, token, None).await
}

pub async fn post(server: &Server, path: &str, token: Option<&str>, body: &Value) -> Resp {
    send(server, Method::POST, path, token, Some(body)).await
}

pub async fn post_empty(server: &Server, path: &str, token: Option<&str>) -> Resp {
    send(server, Method::POST, path, token, None).await
}

pub async fn patch(server: &Server, path: &str, token: Option<&str>, body: &Value) -> Resp {
    send(server, Method::PATCH, path, token, Some(body)).await
}

pub async fn delete(server: &Server, path: &str, token: Option<&str>) -> Resp {
    send(server, Method::DELETE, path, token, None).await
}

/// `/healthz` must answer 200 `{"status":"ok"}`.
pub async fn assert_healthy(server: &Server) {
    let r = get(server, "/healthz", None).await;
    assert_eq!(r.status.as_u16(), 200, "healthz status; body {}", r.text);
    assert_eq!(r.body, json!({"status": "ok"}), "healthz body");
}

// ---------------------------------------------------------------------------
// Domain helpers
// ---------------------------------------------------------------------------

/// An account: id and a valid token.
#[derive(Debug, Clone)]
pub struct Acct {
    pub id: String,
    pub token: String,
}

impl Acct {
    pub fn tok(&self) -> Option<&str> {
        Some(self.token.as_str())
    }
}

/// Create an account with `PASSWORD`; returns (account_id, token).
pub async fn register(
    server: &Server,
    display_name: &str,
    email: Option<&str>,
    phone: Option<&str>,
) -> (String, String) {
    let mut profile = json!({ "display_name": display_name });
    if let Some(e) = email {
        profile["email"] = json!(e);
    }
    if let Some(p) = phone {
        profile["phone"] = json!(p);
    }
    register_profile(server, profile).await
}

pub async fn register_profile(server: &Server, profile: Value) -> (String, String) {
    let r = post(
        server,
        "/v1/accounts",
        None,
        &json!({ "password": PASSWORD, "profile": profile }),
    )
    .await;
    let body = r.expect(201);
    let id = body["account_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no account_id in {}", r.text))
        .to_string();
    let token = body["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {}", r.text))
        .to_string();
    assert!(!id.is_empty() && !token.is_empty());
    (id, token)
}

pub async fn new_acct(server: &Server, display_name: &str) -> Acct {
    let (id, token) = register(server, display_name, None, None).await;
    Acct { id, token }
}

pub async fn new_acct_with(
    server: &Server,
    display_name: &str,
    email: Option<&str>,
    phone: Option<&str>,
) -> Acct {
    let (id, token) = register(server, display_name, email, phone).await;
    Acct { id, token }
}

pub async fn login(server: &Server, login: &str, password: &str) -> Resp {
    post(
        server,
        "/v1/sessions",
        None,
        &json!({ "login": login, "password": password }),
    )
    .await
}

/// A sends a friend request to B, B accepts.
pub async fn make_friends(server: &Server, a: &Acct, b: &Acct) {
    let r = post(
        server,
        "/v1/friends/requests",
        a.tok(),
        &json!({ "to": b.id }),
    )
    .await;
    assert_eq!(r.expect(201), &json!({"status": "pending"}));
    let r = post_empty(
        server,
        &format!("/v1/friends/requests/{}/accept", a.id),
        b.tok(),
    )
    .await;
    assert_eq!(r.expect(200), &json!({"account_id": a.id}));
}

pub async fn me(server: &Server, a: &Acct) -> Value {
    get(server, "/v1/me", a.tok()).await.expect(200).clone()
}

/// Ids of `items` in a list response.
pub fn item_ids(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items array in {body}"))
        .iter()
        .map(|i| {
            i["account_id"]
                .as_str()
                .or_else(|| i["link_id"].as_str())
                .unwrap_or_else(|| panic!("item without id: {i}"))
                .to_string()
        })
        .collect()
}

pub async fn friend_ids(server: &Server, a: &Acct) -> Vec<String> {
    let r = get(server, "/v1/friends", a.tok()).await;
    item_ids(r.expect(200))
}

// ---------------------------------------------------------------------------
// WebSocket helpers
// ---------------------------------------------------------------------------

/// Connect with `Authorization: Bearer`, read and check the hello frame.
/// Returns the stream and the hello frame.
pub async fn ws_connect(server: &Server, account: &Acct) -> (Ws, Value) {
    let mut req = server.ws_url().into_client_request().expect("ws request");
    req.headers_mut().insert(
        "Authorization",
        HeaderValue::from_str(&format!("Bearer {}", account.token)).expect("header"),
    );
    let (mut ws, _resp) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(req),
    )
    .await
    .expect("ws connect timed out")
    .expect("ws connect failed");
    let hello = next_event(&mut ws, EVENT_TIMEOUT).await;
    check_hello(&hello, &account.id);
    (ws, hello)
}

/// Connect with `?token=`, read and check the hello frame.
pub async fn ws_connect_query(server: &Server, account: &Acct) -> (Ws, Value) {
    let url = format!("{}?token={}", server.ws_url(), account.token);
    let (mut ws, _resp) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(url),
    )
    .await
    .expect("ws connect timed out")
    .expect("ws connect failed");
    let hello = next_event(&mut ws, EVENT_TIMEOUT).await;
    check_hello(&hello, &account.id);
    (ws, hello)
}

#[track_caller]
pub fn check_hello(hello: &Value, account_id: &str) {
    assert_eq!(hello["type"], "hello", "first frame must be hello: {hello}");
    assert_eq!(hello["account_id"], account_id, "hello account_id: {hello}");
    assert!(
        hello["seq"].is_u64(),
        "hello.seq must be a non-negative integer: {hello}"
    );
}

pub fn hello_seq(hello: &Value) -> u64 {
    hello["seq"].as_u64().expect("hello seq")
}

/// The next text frame as JSON, skipping ping/pong control frames.
/// Panics on timeout, close or error.
pub async fn next_event(ws: &mut Ws, timeout: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => panic!("timed out after {timeout:?} waiting for a WebSocket event"),
            Ok(None) => panic!("WebSocket stream ended while waiting for an event"),
            Ok(Some(Err(e))) => panic!("WebSocket error while waiting for an event: {e}"),
            Ok(Some(Ok(m))) => m,
        };
        match msg {
            Message::Text(t) => {
                return serde_json::from_str(t.as_str())
                    .unwrap_or_else(|e| panic!("server sent non-JSON text frame {t:?}: {e}"));
            }
            Message::Ping(_) | Message::Pong(_) => continue,
            Message::Close(c) => panic!("WebSocket closed while waiting for an event: {c:?}"),
            Message::Binary(b) => panic!("unexpected binary frame ({} bytes)", b.len()),
            Message::Frame(_) => continue,
        }
    }
}

/// Next event that is not a `pong` reply.
pub async fn next_non_pong(ws: &mut Ws, timeout: Duration) -> Value {
    loop {
        let v = next_event(ws, timeout).await;
        if v["type"] != "pong" {
            return v;
        }
    }
}

/// Assert no text frame arrives within `dur`.
pub async fn expect_no_event(ws: &mut Ws, dur: Duration) {
    let deadline = tokio::time::Instant::now() + dur;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return,
            Ok(None) => panic!("WebSocket stream ended while expecting silence"),
            Ok(Some(Err(e))) => panic!("WebSocket error while expecting silence: {e}"),
            Ok(Some(Ok(Message::Text(t)))) => panic!("expected no event, got {t}"),
            Ok(Some(Ok(Message::Close(c)))) => panic!("expected no event, got close {c:?}"),
            Ok(Some(Ok(_))) => continue,
        }
    }
}

pub async fn send_json(ws: &mut Ws, v: &Value) {
    ws.send(Message::text(v.to_string()))
        .await
        .expect("send ws frame");
}

/// Send a ping frame and expect `{"type":"pong"}` as the next text frame.
pub async fn ping_pong(ws: &mut Ws) {
    send_json(ws, &json!({"type": "ping"})).await;
    let v = next_event(ws, EVENT_TIMEOUT).await;
    assert_eq!(v["type"], "pong", "expected pong, got {v}");
}

/// How the connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Closed {
    /// A Close frame with this code (None: close frame without a code).
    Code(Option<u16>),
    /// The stream ended or errored without a Close frame.
    Ended(String),
}

/// Read (discarding text frames) until the connection closes; panics on timeout.
pub async fn wait_close(ws: &mut Ws, timeout: Duration) -> Closed {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => panic!("timed out after {timeout:?} waiting for the WebSocket to close"),
            Ok(None) => return Closed::Ended("stream ended".into()),
            Ok(Some(Err(e))) => return Closed::Ended(e.to_string()),
            Ok(Some(Ok(Message::Close(c)))) => {
                return Closed::Code(c.map(|f| u16::from(f.code)));
            }
            Ok(Some(Ok(_))) => continue,
        }
    }
}

/// Collect `n` events (skipping pongs), asserting each has the expected shape.
pub async fn collect_events(ws: &mut Ws, n: usize) -> Vec<Value> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let v = next_non_pong(ws, EVENT_TIMEOUT).await;
        assert!(v["seq"].is_u64(), "event without integer seq: {v}");
        assert!(v["type"].is_string(), "event without type: {v}");
        assert!(v["data"].is_object(), "event without data object: {v}");
        out.push(v);
    }
    out
}

/// Expect the next event to be `type` and return it.
pub async fn expect_event(ws: &mut Ws, ty: &str) -> Value {
    let v = next_non_pong(ws, EVENT_TIMEOUT).await;
    assert_eq!(v["type"], ty, "expected a {ty} event, got {v}");
    assert!(v["seq"].is_u64(), "event without integer seq: {v}");
    assert!(v["data"].is_object(), "event without data object: {v}");
    v
}
