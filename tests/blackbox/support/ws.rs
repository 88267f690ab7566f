//! WebSocket devices of the server under test: connect (header or query token), the hello
//! frame, reading events with timeouts, expecting silence, and how a connection closed.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::accounts::Acct;
use super::server::Server;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a test waits for one event.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connect with `Authorization: Bearer`, read and check the hello frame.
/// Returns the stream and the hello frame.
pub async fn ws_connect(server: &Server, account: &Acct) -> (Ws, Value) {
    let mut req = server.ws_url().into_client_request().expect("ws request");
    req.headers_mut().insert(
        "Authorization",
        HeaderValue::from_str(&format!("Bearer {}", account.token)).expect("header"),
    );
    connect_as(req, account).await
}

/// Connect with `?token=`, read and check the hello frame.
pub async fn ws_connect_query(server: &Server, account: &Acct) -> (Ws, Value) {
    let url = format!("{}?token={}", server.ws_url(), account.token);
    connect_as(url.into_client_request().expect("ws request"), account).await
}

/// Connects (within 10 s) and checks that the first frame greets `account`.
async fn connect_as(req: Request, account: &Acct) -> (Ws, Value) {
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

#[track_caller]
pub fn check_hello(hello: &Value, account_id: &str) {
    assert_eq!(hello["type"], "hello", "first frame must be hello: {hello}");
    assert_eq!(hello["account_id"], account_id, "hello account_id: {hello}");
    assert!(
        hello["seq"].is_u64(),
        "hello.seq must be a non-negative integer: {hello}"
    );
    let groups = hello["groups"]
        .as_object()
        .unwrap_or_else(|| panic!("hello.groups must be an object: {hello}"));
    assert!(
        groups.values().all(Value::is_u64),
        "hello.groups maps group ids to group_seqs: {hello}"
    );
}

/// The `group_seq` of `gid` in a hello frame (panics if the group is not listed).
pub fn hello_group_seq(hello: &Value, gid: &str) -> u64 {
    hello["groups"][gid]
        .as_u64()
        .unwrap_or_else(|| panic!("hello lists no group {gid}: {hello}"))
}

/// Checks an event's shape (contract revision 2): a group event carries `group_id` and
/// `group_seq` and no `seq`; an account event carries `seq` and no `group_seq`.
#[track_caller]
pub fn check_event_shape(v: &Value) {
    assert!(v["type"].is_string(), "event without type: {v}");
    assert!(v["data"].is_object(), "event without data object: {v}");
    if v.get("group_id").is_some() {
        assert!(v["group_id"].is_string(), "group_id is a string: {v}");
        assert!(
            v["group_seq"].is_u64(),
            "group event without group_seq: {v}"
        );
        assert!(v.get("seq").is_none(), "a group event carries no seq: {v}");
    } else {
        assert!(v["seq"].is_u64(), "event without integer seq: {v}");
        assert!(
            v.get("group_seq").is_none(),
            "an account event has no group_seq: {v}"
        );
    }
}

/// The number of an event in its log: `group_seq` for a group event, `seq` otherwise.
#[track_caller]
pub fn log_seq(v: &Value) -> u64 {
    v.get("group_seq")
        .or_else(|| v.get("seq"))
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("event without seq or group_seq: {v}"))
}

pub fn hello_seq(hello: &Value) -> u64 {
    hello["seq"].as_u64().expect("hello seq")
}

/// The next text frame as JSON, skipping ping/pong control frames and `presence.changed`
/// (ephemeral, and sent whenever a friend or fellow member comes or goes: only the presence
/// tests read it, with [`next_frame`]). Panics on timeout, close or error.
pub async fn next_event(ws: &mut Ws, timeout: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let v = next_frame(ws, left.max(Duration::from_millis(1))).await;
        if v["type"] == "presence.changed" {
            check_presence_shape(&v);
            continue;
        }
        return v;
    }
}

/// `presence.changed` (contract revision 2): `{"type","data":{"account_id","online",
/// "devices"}}`, in no log, so with neither `seq` nor `group_seq`.
#[track_caller]
pub fn check_presence_shape(v: &Value) {
    assert_eq!(v["type"], "presence.changed", "{v}");
    assert!(
        v["data"]["account_id"].is_string(),
        "presence without account_id: {v}"
    );
    assert!(
        v["data"]["online"].is_boolean(),
        "presence without online: {v}"
    );
    assert!(
        v["data"]["devices"].is_u64(),
        "presence without devices: {v}"
    );
    assert_eq!(
        v["data"]["online"].as_bool(),
        Some(v["data"]["devices"].as_u64() > Some(0)),
        "online exactly when devices > 0: {v}"
    );
    assert!(
        v.get("seq").is_none() && v.get("group_seq").is_none() && v.get("group_id").is_none(),
        "presence is in no log: {v}"
    );
}

/// The next text frame as JSON, whatever it is (ping/pong control frames skipped).
/// Panics on timeout, close or error.
pub async fn next_frame(ws: &mut Ws, timeout: Duration) -> Value {
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

/// How a `presence.changed` frame begins (the server writes its fields in this order).
const PRESENCE_PREFIX: &str = r#"{"type":"presence.changed""#;

/// Assert no text frame arrives within `dur` (`presence.changed` aside, as [`next_event`]).
pub async fn expect_no_event(ws: &mut Ws, dur: Duration) {
    let deadline = tokio::time::Instant::now() + dur;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return,
            Ok(None) => panic!("WebSocket stream ended while expecting silence"),
            Ok(Some(Err(e))) => panic!("WebSocket error while expecting silence: {e}"),
            Ok(Some(Ok(Message::Text(t)))) if !t.as_str().starts_with(PRESENCE_PREFIX) => {
                panic!("expected no event, got {t}")
            }
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
        check_event_shape(&v);
        out.push(v);
    }
    out
}

/// Expect the next event to be `type` and return it.
pub async fn expect_event(ws: &mut Ws, ty: &str) -> Value {
    let v = next_non_pong(ws, EVENT_TIMEOUT).await;
    assert_eq!(v["type"], ty, "expected a {ty} event, got {v}");
    check_event_shape(&v);
    v
}
