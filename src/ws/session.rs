//! The session of one device after the upgrade: a task on the thread that owns the socket.
//!
//! It reads client frames (`resume`, `ping`, errors), sends heartbeats, runs replays, and
//! waits for the socket when it blocks; live frames are written by the shard, not here. Every
//! wait is one `select!`, so shutdown, the heartbeat and a too-slow verdict are seen whatever
//! else the session waits on, and nothing it does blocks the loop: a replay's page read is one
//! more branch of it. A socket that stays blocked past the write timeout is dropped, and so is
//! a closing one that does not take its close frame in that time.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use actix_http::ws::CloseCode;
use actix_rt::net::TcpStream;
use chorus_actors::ResumeGroups;
use chorus_actors::model::caps::RESYNC_REQUIRED;
use chorus_actors::model::limits::MAX_EVENTS_PAGE;
use chorus_actors::push::StoredEvent;
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::frames::{FrameReader, Incoming, Opcode, ReadError, close_payload};
use super::resume::{self, Next, Progress, Replay, Resuming};
use super::shard::{Conn, Shard, Verdict};
use crate::http::AppState;

/// Bytes read off a socket at a time (on the stack, so an idle session holds none).
const READ_CHUNK: usize = 8 * 1024;

/// The longest closing handshake while the server shuts down (its grace period is 5 s).
const SHUTDOWN_CLOSE: std::time::Duration = std::time::Duration::from_secs(2);

/// A check of the session's token under way: does it still authenticate the account?
type TokenCheck = Pin<Box<dyn Future<Output = crate::error::Result<bool>>>>;

/// How a session ends.
enum End {
    /// Send a close frame, then drop the connection.
    Close(CloseCode, &'static str),
    /// The peer is gone, or the socket failed: drop it now.
    Gone,
}

/// The session of one connection.
pub struct Session {
    pub id: u64,
    pub account: Arc<str>,
    /// The SHA-256 of the token the handshake carried: checked again at every heartbeat, so
    /// a token that expires or is logged out closes its WebSockets (1008) within one
    /// heartbeat, on whichever node they are.
    pub token: [u8; 32],
    pub state: AppState,
    pub shard: Rc<Shard>,
    pub slot: usize,
    pub stream: Rc<TcpStream>,
    pub wake: Rc<Notify>,
    /// Raised from other threads when the device's outlet could not queue an account event.
    pub too_slow: Arc<Notify>,
    pub reader: FrameReader,
}

impl Session {
    /// Runs the session until it ends, then detaches the device, closes and forgets the
    /// connection.
    pub async fn run(mut self) {
        let end = self.serve().await;
        // The device is leaving: it takes no more events, and its account's presence need
        // not wait for the closing handshake (which waits up to the write timeout for a peer
        // that keeps its side open).
        if let Err(e) = self.state.chorus.detach(&self.account, self.id).await {
            tracing::debug!(account = %self.account, error = %e, "detach after disconnect");
        }
        let clean = match end {
            End::Close(code, why) => {
                crate::metrics::ws_closed(Some(code.into()));
                tracing::debug!(account = %self.account, connection = self.id, ?code, why, "closing device");
                let payload = close_payload(code.into(), why);
                self.with(|c| c.close(&payload));
                self.close_handshake().await
            }
            End::Gone => {
                crate::metrics::ws_closed(None);
                false
            }
        };
        self.shard.unregister(self.slot);
        if !clean {
            // A peer that is gone or does not read: reset the connection, so neither its
            // unsent bytes nor the socket outlive the session.
            if let Err(e) = self.stream.set_zero_linger() {
                tracing::debug!(error = %e, "SO_LINGER not set");
            }
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Conn) -> R) -> Option<R> {
        self.shard.with(self.slot, f)
    }

    async fn serve(&mut self) -> End {
        let config = self.state.config.clone();
        let mut shutdown = self.state.shutdown.clone();
        if *shutdown.borrow() {
            return End::Close(CloseCode::Away, "server shutting down");
        }
        let mut heartbeat = tokio::time::interval(config.ws_heartbeat);
        heartbeat.tick().await;
        let mut last_heard = Instant::now();
        let mut replay: Option<Resuming> = None;
        let mut token_check: Option<TokenCheck> = None;
        loop {
            let Some((verdict, blocked)) = self.with(|c| (c.verdict(), c.blocked_since())) else {
                return End::Gone;
            };
            match verdict {
                Some(Verdict::TooSlow) => {
                    return End::Close(CloseCode::Again, "too slow: resume to catch up");
                }
                Some(Verdict::Broken) => return End::Gone,
                None => {}
            }
            if let Some(since) = blocked
                && since.elapsed() > config.ws_write_timeout
            {
                tracing::debug!(account = %self.account, connection = self.id, "write timed out");
                return End::Gone;
            }
            if blocked.is_none()
                && let Some(r) = replay.as_mut().filter(|r| r.wants_page())
            {
                r.read_next(&self.state.chorus, &self.account);
            }
            let step = tokio::select! {
                biased;
                _ = shutdown.changed() => Some(End::Close(CloseCode::Away, "server shutting down")),
                _ = self.wake.notified() => None,
                _ = self.too_slow.notified() => Some(End::Close(CloseCode::Again, "too slow: resume to catch up")),
                ready = self.stream.writable(), if blocked.is_some() => match ready {
                    Ok(()) => {
                        self.with(|c| c.unblock());
                        None
                    }
                    Err(_) => Some(End::Gone),
                },
                _ = sleep_past(blocked, config.ws_write_timeout), if blocked.is_some() => None,
                progress = resume::poll(&mut replay) => self.on_progress(&mut replay, progress),
                valid = poll_check(&mut token_check) => {
                    token_check = None;
                    match valid {
                        Ok(false) => Some(End::Close(CloseCode::Policy, "token expired or revoked")),
                        Ok(true) => None,
                        Err(e) => {
                            // The store did not answer: keep the session, ask again next time.
                            tracing::debug!(account = %self.account, error = %e, "token check failed");
                            None
                        }
                    }
                }
                ready = self.stream.readable() => match ready {
                    Ok(()) => {
                        let (step, heard) = self.on_readable(&mut replay);
                        if heard {
                            last_heard = Instant::now();
                        }
                        step
                    }
                    Err(_) => Some(End::Gone),
                },
                _ = heartbeat.tick() => {
                    if last_heard.elapsed() > config.ws_client_timeout {
                        Some(End::Close(CloseCode::Away, "no frame from client in time"))
                    } else {
                        self.control(Opcode::Ping, b"");
                        if token_check.is_none() {
                            token_check = Some(self.check_token());
                        }
                        None
                    }
                }
            };
            if let Some(end) = step {
                return end;
            }
        }
    }

    /// Whether the session's token still authenticates its account.
    fn check_token(&self) -> TokenCheck {
        let (state, account, token) = (self.state.clone(), self.account.clone(), self.token);
        Box::pin(
            async move { crate::http::auth::token_still_valid(&state, &account, &token).await },
        )
    }

    /// The closing handshake: writes what is left (the close frame last), then waits for
    /// the peer to end the connection, all within the write timeout (at most
    /// [`SHUTDOWN_CLOSE`] while the server shuts down). Answers whether the peer took part.
    async fn close_handshake(&mut self) -> bool {
        let mut wait = self.state.config.ws_write_timeout;
        if *self.state.shutdown.borrow() {
            wait = wait.min(SHUTDOWN_CLOSE);
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let Some((drained, broken)) =
                self.with(|c| (c.unblock(), c.verdict() == Some(Verdict::Broken)))
            else {
                return false;
            };
            if broken {
                return false;
            }
            if drained {
                break;
            }
            match tokio::time::timeout_at(deadline, self.stream.writable()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return false,
            }
        }
        // Read (and drop) until the peer closes its side.
        loop {
            match tokio::time::timeout_at(deadline, self.stream.readable()).await {
                Ok(Ok(())) => match discard_read(&self.stream) {
                    Ok(0) => return true,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return false,
                },
                Ok(Err(_)) | Err(_) => return false,
            }
        }
    }

    fn control(&self, opcode: Opcode, payload: &[u8]) {
        let limits = *self.shard.limits();
        self.with(|c| c.control(opcode, payload, &limits));
    }

    fn send_text(&self, text: &str) {
        self.control(Opcode::Text, text.as_bytes());
    }

    fn send_error(&self, code: &str, message: &str) {
        let frame = json!({"type": "error", "error": {"code": code, "message": message}});
        self.send_text(&frame.to_string());
    }

    /// An error frame about one group of a `resume`: it names the group.
    fn send_group_error(&self, group: &str, code: &str, message: &str) {
        let frame = json!({"type": "error", "group_id": group,
            "error": {"code": code, "message": message}});
        self.send_text(&frame.to_string());
    }

    /// Reads what the socket has and handles every complete message. Answers how the
    /// session ends, if it does, and whether anything was heard.
    fn on_readable(&mut self, replay: &mut Option<Resuming>) -> (Option<End>, bool) {
        let mut chunk = [0u8; READ_CHUNK];
        match self.stream.try_read(&mut chunk) {
            Ok(0) => return (Some(End::Gone), false),
            Ok(n) => self.reader.feed(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return (None, false),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return (None, false),
            Err(_) => return (Some(End::Gone), false),
        }
        while let Some(message) = self.reader.next_message() {
            if let Some(end) = self.on_message(message, replay) {
                return (Some(end), true);
            }
        }
        (None, true)
    }

    fn on_message(
        &mut self,
        message: Result<Incoming, ReadError>,
        replay: &mut Option<Resuming>,
    ) -> Option<End> {
        match message {
            Err(ReadError::TooLarge) => Some(End::Close(CloseCode::Size, "frame too large")),
            Err(ReadError::InvalidUtf8) => Some(End::Close(
                CloseCode::Invalid,
                "text frame is not valid UTF-8",
            )),
            Err(ReadError::Protocol(e)) => {
                tracing::debug!(account = %self.account, error = %e, "protocol error");
                Some(End::Close(CloseCode::Protocol, "protocol error"))
            }
            Ok(Incoming::Ping(bytes)) => {
                self.control(Opcode::Pong, &bytes);
                None
            }
            Ok(Incoming::Pong) => None,
            Ok(Incoming::Close) => Some(End::Close(CloseCode::Normal, "bye")),
            Ok(Incoming::Binary) => {
                self.send_error("bad_frame", "frames are JSON text");
                None
            }
            Ok(Incoming::Text(text)) => {
                self.on_text(&text, replay);
                None
            }
        }
    }

    fn on_text(&self, text: &str, replay: &mut Option<Resuming>) {
        let Ok(Value::Object(frame)) = serde_json::from_str::<Value>(text) else {
            return self.send_error("bad_frame", "a client frame is a JSON object");
        };
        match frame.get("type").and_then(Value::as_str) {
            Some("ping") => self.send_text(r#"{"type":"pong"}"#),
            // A resume replaces one under way.
            Some("resume") => match resume::parse(&frame) {
                Ok(request) => {
                    let since = request.since;
                    let next = Resuming::start(request, &self.state.chorus, &self.account);
                    // Live frames wait from now on, so that none is sent before the replay
                    // of what precedes it.
                    match next {
                        Resuming::Replaying(_) => self.with(|c| c.begin_replay(since, &[])),
                        Resuming::Checking { .. } => self.with(|c| c.hold_live()),
                    };
                    *replay = Some(next);
                }
                Err(refused) => self.send_error(refused.code, &refused.message),
            },
            Some(other) => {
                let msg = format!("unknown frame type {other:?}; known: resume, ping");
                self.send_error("unknown_type", &msg);
            }
            None => self.send_error("bad_frame", "a client frame needs a string \"type\""),
        }
    }

    /// A step of a resume came: its groups checked, or a page.
    fn on_progress(&self, replay: &mut Option<Resuming>, progress: Progress) -> Option<End> {
        match progress {
            Progress::Checked(since, checked) => self.on_checked(replay, since, checked),
            Progress::Page(page) => self.on_page(replay, page),
        }
        None
    }

    /// The groups of a resume were checked: the replay starts, or it is refused.
    fn on_checked(
        &self,
        replay: &mut Option<Resuming>,
        since: u64,
        checked: chorus_actors::Result<ResumeGroups>,
    ) {
        match checked {
            Ok(ResumeGroups::Replay(starts)) => {
                let groups: Vec<(&str, u64, u64)> = starts
                    .iter()
                    .map(|s| (s.group_id.as_str(), s.after, s.head))
                    .collect();
                self.with(|c| c.begin_replay(since, &groups));
                *replay = Some(Resuming::Replaying(Replay::new(since, starts)));
            }
            Ok(ResumeGroups::NotMember(group)) => {
                // A resume this one replaced may have held live frames: let them go.
                self.with(|c| c.go_live(self.shard.limits()));
                *replay = None;
                self.send_group_error(
                    &group,
                    "forbidden",
                    "resume names a group this account is not a member of; nothing was replayed",
                );
            }
            Err(e) => {
                tracing::warn!(account = %self.account, error = %e, "resume check failed");
                self.with(|c| c.go_live(self.shard.limits()));
                *replay = None;
                self.send_error("unavailable", "history could not be read; retry");
            }
        }
    }

    /// A page of the replay came: write it; after a short page the next log follows, and
    /// after the last one the held live frames.
    fn on_page(
        &self,
        resuming: &mut Option<Resuming>,
        page: chorus_actors::Result<Vec<StoredEvent>>,
    ) {
        let limits = *self.shard.limits();
        let Some(Resuming::Replaying(replay)) = resuming.as_mut() else {
            return;
        };
        let next = match page {
            Ok(page) => {
                let full = page.len() == MAX_EVENTS_PAGE;
                let group = replay.group().map(|(g, _)| g.to_owned());
                let mut after = 0;
                self.with(|c| {
                    for event in page {
                        after = event.seq;
                        match &group {
                            Some(group) => c.replayed_group(group, event),
                            None => c.replayed(event),
                        }
                    }
                });
                replay.paged(after, full)
            }
            Err(e @ chorus_actors::Error::Conflict { .. }) => {
                // Events after the cursor are gone (retention): the device reloads that
                // state; the connection goes on live from the hello's seq (the account) or
                // the group's head.
                match replay.group() {
                    Some((group, head)) => {
                        self.with(|c| c.skip_group(group, head));
                        self.send_group_error(group, RESYNC_REQUIRED, &e.to_string());
                    }
                    None => self.send_error(RESYNC_REQUIRED, &e.to_string()),
                }
                replay.next_log()
            }
            Err(e) => {
                tracing::warn!(account = %self.account, error = %e, "resume failed");
                self.send_error("unavailable", "history could not be read; retry");
                Next::Done
            }
        };
        if let Next::Done = next {
            self.with(|c| c.go_live(&limits));
            *resuming = None;
        }
    }
}

/// Reads and drops what the socket has. A plain function, so the buffer lives on the stack
/// only for the call, never in a session's future.
fn discard_read(stream: &TcpStream) -> std::io::Result<usize> {
    let mut chunk = [0u8; READ_CHUNK];
    stream.try_read(&mut chunk)
}

/// The token check under way, or never.
async fn poll_check(check: &mut Option<TokenCheck>) -> crate::error::Result<bool> {
    match check.as_mut() {
        Some(check) => check.await,
        None => std::future::pending().await,
    }
}

/// Sleeps until the write timeout of a socket blocked since `since` has passed.
async fn sleep_past(since: Option<Instant>, timeout: std::time::Duration) {
    if let Some(since) = since {
        tokio::time::sleep_until((since + timeout).into()).await;
    }
}
