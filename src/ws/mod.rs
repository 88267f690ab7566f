//! The WebSocket session of one device: `GET /v1/ws`.
//!
//! A connection is two halves. The response body (`body::MailboxBody`) owns the socket's
//! write side: it drains the device's bounded mailbox ([`WsOutlet`], fed by the account actor
//! and the fan-out workers with `try_send`) and a control channel, and encodes everything
//! waiting into one buffer per write. The reader task (`Connection`) owns the read side:
//! client frames (`resume`, `ping`, errors), heartbeats, the slow-reader and shutdown
//! signals; it speaks to the body through the control channel only.
//!
//! A full mailbox means the device stopped reading: the outlet raises `too_slow` and the
//! reader task closes the connection with 1013; the device resumes later from its `seq`.
//! `resume` replays the account's log from the store through the control channel while live
//! events wait in the mailbox; the body drops any account event at or below the last `seq`
//! it sent, so replay-then-live has no gap and no duplicate.

mod body;
mod reader;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use actix_http::body::{BodyStream, MessageBody};
use actix_http::ws::{CloseCode, CloseReason};
use actix_web::{HttpRequest, HttpResponse, web};
use bytestring::ByteString;
use chorus_actors::model::limits::MAX_EVENTS_PAGE;
use chorus_actors::push::{Outlet, Pushed, StoredEvent};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

use self::body::{Control, MailboxBody};
use self::reader::{FrameReader, Incoming, ReadError};
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::http::auth::ws_account;

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// Frames the reader task may queue for the body before it waits.
const CONTROL_CAPACITY: usize = 64;

/// What waits in a device's mailbox.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// An event of the account's own log (deduplicated by `seq` against `resume`).
    Account(StoredEvent),
    /// A group event frame, shared with every other member's devices.
    Shared(ByteString),
}

/// The push end of a connection, held in the hub.
pub struct WsOutlet {
    id: u64,
    mailbox: mpsc::Sender<Outbound>,
    /// Raised when the mailbox overflowed: the session closes with 1013.
    too_slow: Arc<Notify>,
}

impl Outlet for WsOutlet {
    fn id(&self) -> u64 {
        self.id
    }

    fn push(&self, event: &StoredEvent) -> Pushed {
        self.queue(Outbound::Account(event.clone()))
    }

    fn push_shared(&self, frame: &ByteString) -> Pushed {
        self.queue(Outbound::Shared(frame.clone()))
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
    fn queue(&self, item: Outbound) -> Pushed {
        match self.mailbox.try_send(item) {
            Ok(()) => Pushed::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.too_slow.notify_one();
                Pushed::Gone
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Pushed::Gone,
        }
    }
}

/// Upgrades after checking the token (401 before the upgrade otherwise).
pub async fn connect(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    let account = ws_account(&state, &req).await?;
    let mut handshake = actix_http::ws::handshake(req.head())
        .map_err(|e| Error::invalid(format!("not a WebSocket handshake: {e}")))?;
    let (outlet, mailbox, too_slow) = WsOutlet::new(state.config.ws_mailbox);
    let id = outlet.id;
    let seq = state.chorus.attach(&account, outlet).await?;
    tracing::debug!(%account, connection = id, seq, "device connected");
    let hello = json!({"type": "hello", "account_id": account, "seq": seq}).to_string();
    let (control, control_rx) = mpsc::channel(CONTROL_CAPACITY);
    let body = MailboxBody::new(&hello, seq, control_rx, mailbox);
    let conn = Connection {
        id,
        account,
        state: state.get_ref().clone(),
        control,
        too_slow,
    };
    let reader = FrameReader::new(payload, state.config.ws_max_frame);
    actix_web::rt::spawn(conn.run(reader));
    let response = handshake
        .message_body(BodyStream::new(body).boxed())
        .map_err(|e| Error::Internal(format!("WebSocket response: {e}")))?;
    Ok(response.into())
}

/// The reader half of a connection.
struct Connection {
    id: u64,
    account: String,
    state: AppState,
    control: mpsc::Sender<Control>,
    too_slow: Arc<Notify>,
}

/// How a session ends.
enum End {
    Close(CloseCode, &'static str),
    /// The peer is gone, or closed first.
    Gone,
}

impl Connection {
    async fn run(self, mut reader: FrameReader) {
        let mut shutdown = self.state.shutdown.clone();
        let mut heartbeat = tokio::time::interval(self.state.config.ws_heartbeat);
        heartbeat.tick().await;
        let mut last_heard = Instant::now();
        let end = loop {
            let step = tokio::select! {
                biased;
                _ = self.too_slow.notified() => Some(End::Close(CloseCode::Again, "too slow: resume to catch up")),
                _ = shutdown.changed() => Some(End::Close(CloseCode::Away, "server shutting down")),
                incoming = reader.next() => {
                    last_heard = Instant::now();
                    self.on_incoming(incoming).await
                }
                _ = heartbeat.tick() => {
                    if last_heard.elapsed() > self.state.config.ws_client_timeout {
                        Some(End::Close(CloseCode::Away, "no frame from client in time"))
                    } else {
                        self.send(Control::Ping).await
                    }
                }
            };
            if let Some(end) = step {
                break end;
            }
        };
        if let End::Close(code, why) = end {
            tracing::debug!(account = %self.account, connection = self.id, ?code, why, "closing device");
            // If the body has no room the device is not reading; dropping the control
            // channel below ends the body anyway.
            let _ = self.control.try_send(Control::Close(CloseReason {
                code,
                description: Some(why.to_owned()),
            }));
        }
        if let Err(e) = self.state.chorus.detach(&self.account, self.id).await {
            tracing::debug!(account = %self.account, error = %e, "detach after disconnect");
        }
    }

    /// Queues a frame for the body; a body that is gone ends the session.
    async fn send(&self, control: Control) -> Option<End> {
        self.control.send(control).await.err().map(|_| End::Gone)
    }

    async fn send_error(&self, code: &str, message: String) -> Option<End> {
        let frame = json!({"type": "error", "error": {"code": code, "message": message}});
        self.send(Control::Text(frame.to_string().into())).await
    }

    async fn on_incoming(&self, incoming: Option<Result<Incoming, ReadError>>) -> Option<End> {
        match incoming {
            None => Some(End::Gone),
            Some(Err(ReadError::TooLarge)) => Some(End::Close(CloseCode::Size, "frame too large")),
            Some(Err(ReadError::InvalidUtf8)) => Some(End::Close(
                CloseCode::Invalid,
                "text frame is not valid UTF-8",
            )),
            Some(Err(ReadError::Protocol(e))) => {
                tracing::debug!(account = %self.account, error = %e, "protocol error");
                Some(End::Close(CloseCode::Protocol, "protocol error"))
            }
            Some(Ok(Incoming::Ping(bytes))) => self.send(Control::Pong(bytes)).await,
            Some(Ok(Incoming::Pong)) => None,
            Some(Ok(Incoming::Close)) => Some(End::Close(CloseCode::Normal, "bye")),
            Some(Ok(Incoming::Binary)) => {
                self.send_error("bad_frame", "frames are JSON text".into())
                    .await
            }
            Some(Ok(Incoming::Text(text))) => self.on_text(&text).await,
        }
    }

    async fn on_text(&self, text: &str) -> Option<End> {
        let Ok(Value::Object(frame)) = serde_json::from_str::<Value>(text) else {
            return self
                .send_error("bad_frame", "a client frame is a JSON object".into())
                .await;
        };
        match frame.get("type").and_then(Value::as_str) {
            Some("ping") => self.send(Control::Text(r#"{"type":"pong"}"#.into())).await,
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

    /// Replays stored events after `since`, page by page, while live events wait.
    async fn resume(&self, since: u64) -> Option<End> {
        if let Some(end) = self.send(Control::BeginReplay { since }).await {
            return Some(end);
        }
        let mut after = since;
        loop {
            let page = self.state.chorus.read_events(&self.account, after).await;
            let page = match page {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(account = %self.account, error = %e, "resume failed");
                    if let Some(end) = self.send(Control::EndReplay).await {
                        return Some(end);
                    }
                    return self
                        .send_error("unavailable", "history could not be read; retry".into())
                        .await;
                }
            };
            let full = page.len() == MAX_EVENTS_PAGE;
            for event in page {
                after = event.seq;
                if let Some(end) = self.send(Control::Replayed(event)).await {
                    return Some(end);
                }
            }
            if !full {
                return self.send(Control::EndReplay).await;
            }
        }
    }
}
