//! The WebSocket session of one device: `GET /v1/ws`.
//!
//! Each connection is a task with a bounded mailbox ([`WsOutlet`]). The account's actor
//! pushes event frames into it with `try_send` and never waits; if the mailbox is full the
//! device is too slow, and it is closed with 1013 (it catches up later with `resume`). The
//! task is the only writer to the socket, so frames leave in `seq` order: it drops any live
//! event at or below the last `seq` it sent, which is what makes `resume` (replay from the
//! store, then live) free of gaps and duplicates.
//!
//! Why actix-ws rather than the older actix-web-actors: its `Session` writes through a bounded
//! channel into the response body, so socket back-pressure reaches this task instead of
//! piling up in an unbounded actor buffer where a slow reader could not be detected.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, ProtocolError, Session};
use bytestring::ByteString;
use chorus_actors::event::{Delivery, Outlet, StoredEvent};
use chorus_actors::messages::{Attach, Detach, ReadEvents};
use chorus_actors::subscriber::MAX_EVENTS_PAGE;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

use crate::auth::bearer;
use crate::error::{Error, Result};
use crate::http::AppState;

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// How long a close frame may wait for room in a backed-up socket.
const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// What waits in a device's mailbox.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// An event of the account's own log (deduplicated by `seq` against `resume`).
    Account(StoredEvent),
    /// A group event frame, shared with every other member's devices.
    Shared(ByteString),
}

/// The delivery end of a connection, held in the hub.
pub struct WsOutlet {
    id: u64,
    mailbox: mpsc::Sender<Outbound>,
    /// Woken when the mailbox overflowed: the session closes with 1013.
    too_slow: Arc<Notify>,
}

impl Outlet for WsOutlet {
    fn id(&self) -> u64 {
        self.id
    }

    fn deliver(&self, event: &StoredEvent) -> Delivery {
        self.push(Outbound::Account(event.clone()))
    }

    fn deliver_shared(&self, frame: &ByteString) -> Delivery {
        self.push(Outbound::Shared(frame.clone()))
    }
}

impl WsOutlet {
    /// A new outlet with a mailbox of `capacity` frames. Answers the receiving end and the
    /// signal raised when the mailbox overflows.
    pub fn new(capacity: usize) -> (Arc<Self>, mpsc::Receiver<Outbound>, Arc<Notify>) {
        let (tx, rx) = mpsc::channel(capacity);
        let too_slow = Arc::new(Notify::new());
        let outlet = Arc::new(WsOutlet {
            id: NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed),
            mailbox: tx,
            too_slow: too_slow.clone(),
        });
        (outlet, rx, too_slow)
    }

    /// Never blocks: a full mailbox means the device is too slow, and it is told to go.
    fn push(&self, item: Outbound) -> Delivery {
        match self.mailbox.try_send(item) {
            Ok(()) => Delivery::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.too_slow.notify_one();
                Delivery::Gone
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Delivery::Gone,
        }
    }
}

/// Upgrades after checking the token (401 before the upgrade otherwise).
pub async fn connect(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    let token = bearer(&req, true).ok_or(Error::Unauthorized)?;
    let account = state.authenticate(&token).await?;
    let (response, session, stream) = actix_ws::handle(&req, body)
        .map_err(|e| Error::invalid(format!("not a WebSocket handshake: {e}")))?;
    let max_frame = state.config.ws_max_frame;
    let stream = stream
        .max_frame_size(max_frame)
        .aggregate_continuations()
        .max_continuation_size(max_frame);

    let (outlet, rx, too_slow) = WsOutlet::new(state.config.ws_mailbox);
    let id = outlet.id;
    let seq = state.registry.ask(&account, Attach { outlet }).await?;
    tracing::debug!(%account, connection = id, seq, "device connected");
    let conn = Connection {
        id,
        too_slow,
        account,
        state: state.get_ref().clone(),
        session,
        last_sent: seq,
        latest: seq,
    };
    actix_web::rt::spawn(conn.run(stream, rx));
    Ok(response)
}

struct Connection {
    id: u64,
    /// Notified by the outlet when the mailbox overflowed.
    too_slow: Arc<Notify>,
    account: String,
    state: AppState,
    session: Session,
    /// The highest `seq` written to this device.
    last_sent: u64,
    /// The highest `seq` this connection knows exists.
    latest: u64,
}

/// How a session ends.
enum End {
    Close(CloseCode, &'static str),
    /// The peer is gone or closed first; nothing more to send.
    Gone,
}

impl Connection {
    async fn run(
        mut self,
        mut stream: actix_ws::AggregatedMessageStream,
        mut mailbox: mpsc::Receiver<Outbound>,
    ) {
        let hello = json!({"type": "hello", "account_id": self.account, "seq": self.last_sent});
        let mut end = self.write(hello.to_string().into()).await;
        let too_slow = self.too_slow.clone();
        let mut shutdown = self.state.shutdown.clone();
        let mut heartbeat = tokio::time::interval(self.state.config.ws_heartbeat);
        heartbeat.tick().await;
        let mut last_heard = Instant::now();
        while end.is_none() {
            end = tokio::select! {
                biased;
                _ = too_slow.notified() => Some(End::Close(CloseCode::Again, "too slow: resume to catch up")),
                _ = shutdown.changed() => Some(End::Close(CloseCode::Away, "server shutting down")),
                frame = stream.recv() => {
                    last_heard = Instant::now();
                    self.on_frame(frame).await
                }
                item = mailbox.recv() => match item {
                    Some(Outbound::Account(event)) => self.send_event(&event).await,
                    Some(Outbound::Shared(frame)) => self.write(frame).await,
                    None => Some(End::Gone),
                },
                _ = heartbeat.tick() => {
                    if last_heard.elapsed() > self.state.config.ws_client_timeout {
                        Some(End::Close(CloseCode::Away, "no frame from client in time"))
                    } else {
                        self.ping().await
                    }
                }
            };
        }
        if let Some(End::Close(code, why)) = end {
            tracing::debug!(account = %self.account, connection = self.id, ?code, why, "closing device");
            let close = self.session.clone().close(Some(CloseReason {
                code,
                description: Some(why.to_owned()),
            }));
            // A peer that reads nothing cannot take a close frame either; give up on it.
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, close).await;
        }
        if let Err(e) = self
            .state
            .registry
            .ask(&self.account, Detach { outlet_id: self.id })
            .await
        {
            tracing::debug!(account = %self.account, error = %e, "detach after disconnect");
        }
    }

    /// Writes one text frame. The write waits while the socket is backed up, but not past
    /// the mailbox overflowing (1013) or the client timeout: a reader that stopped reading
    /// cannot hold this task forever.
    async fn write(&mut self, text: ByteString) -> Option<End> {
        let too_slow = self.too_slow.clone();
        tokio::select! {
            written = self.session.text(text) => written.err().map(|_| End::Gone),
            _ = too_slow.notified() => Some(End::Close(CloseCode::Again, "too slow: resume to catch up")),
            _ = tokio::time::sleep(self.state.config.ws_client_timeout) => Some(End::Gone),
        }
    }

    async fn ping(&mut self) -> Option<End> {
        let ping = self.session.ping(b"");
        match tokio::time::timeout(self.state.config.ws_client_timeout, ping).await {
            Ok(Ok(())) => None,
            _ => Some(End::Gone),
        }
    }

    async fn send_event(&mut self, event: &StoredEvent) -> Option<End> {
        if event.seq <= self.last_sent {
            return None;
        }
        if let Some(end) = self.write(event.frame.clone()).await {
            return Some(end);
        }
        self.last_sent = event.seq;
        self.latest = self.latest.max(event.seq);
        None
    }

    async fn send_json(&mut self, value: Value) -> Option<End> {
        self.write(value.to_string().into()).await
    }

    async fn send_error(&mut self, code: &str, message: String) -> Option<End> {
        self.send_json(json!({"type": "error", "error": {"code": code, "message": message}}))
            .await
    }

    async fn on_frame(
        &mut self,
        frame: Option<Result<AggregatedMessage, ProtocolError>>,
    ) -> Option<End> {
        match frame {
            None => Some(End::Gone),
            Some(Err(ProtocolError::Overflow)) => {
                Some(End::Close(CloseCode::Size, "frame too large"))
            }
            Some(Err(ProtocolError::Io(e))) if e.kind() == std::io::ErrorKind::InvalidData => Some(
                End::Close(CloseCode::Invalid, "text frame is not valid UTF-8"),
            ),
            Some(Err(ProtocolError::Io(e)))
                if e.to_string().contains("maximum continuation size") =>
            {
                Some(End::Close(CloseCode::Size, "message too large"))
            }
            Some(Err(e)) => {
                tracing::debug!(account = %self.account, error = %e, "protocol error");
                Some(End::Close(CloseCode::Protocol, "protocol error"))
            }
            Some(Ok(AggregatedMessage::Ping(bytes))) => {
                let pong = self.session.pong(&bytes);
                match tokio::time::timeout(self.state.config.ws_client_timeout, pong).await {
                    Ok(Ok(())) => None,
                    _ => Some(End::Gone),
                }
            }
            Some(Ok(AggregatedMessage::Pong(_))) => None,
            Some(Ok(AggregatedMessage::Close(_))) => Some(End::Close(CloseCode::Normal, "bye")),
            Some(Ok(AggregatedMessage::Binary(_))) => {
                self.send_error("bad_frame", "frames are JSON text".into())
                    .await
            }
            Some(Ok(AggregatedMessage::Text(text))) => self.on_text(&text).await,
        }
    }

    async fn on_text(&mut self, text: &str) -> Option<End> {
        let Ok(Value::Object(frame)) = serde_json::from_str::<Value>(text) else {
            return self
                .send_error("bad_frame", "a client frame is a JSON object".into())
                .await;
        };
        match frame.get("type").and_then(Value::as_str) {
            Some("ping") => self.send_json(json!({"type": "pong"})).await,
            Some("resume") => match frame.get("since").and_then(Value::as_u64) {
                Some(since) => self.resume(since).await,
                None => {
                    self.send_error(
                        "bad_frame",
                        "resume needs \"since\": a non-negative integer".into(),
                    )
                    .await
                }
            },
            Some(other) => {
                let msg = format!("unknown frame type {other:?}; known: resume, ping");
                self.send_error("unknown_type", msg).await
            }
            None => {
                self.send_error("bad_frame", "a client frame needs a string \"type\"".into())
                    .await
            }
        }
    }

    /// Replays stored events after `since`, page by page, then lets live events through.
    async fn resume(&mut self, since: u64) -> Option<End> {
        self.last_sent = since.min(self.latest);
        loop {
            let page = self
                .state
                .registry
                .ask(
                    &self.account,
                    ReadEvents {
                        after: self.last_sent,
                        limit: MAX_EVENTS_PAGE,
                    },
                )
                .await;
            let page = match page {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(account = %self.account, error = %e, "resume failed");
                    return self
                        .send_error("unavailable", "history could not be read; retry".into())
                        .await;
                }
            };
            let full = page.len() == MAX_EVENTS_PAGE;
            for event in &page {
                if let Some(end) = self.send_event(event).await {
                    return Some(end);
                }
            }
            if !full {
                return None;
            }
        }
    }
}
