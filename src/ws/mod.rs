//! The WebSocket session of one device: `GET /v1/ws`.
//!
//! actix-http hands every request with `Upgrade: websocket` to [`upgrade`] together with its
//! socket. After the token check and the `101` answer the socket belongs to this module, on
//! the worker thread that accepted it: actix-http's 8 KiB read and write buffers are let go,
//! and an idle connection holds no buffer at all. Two parts serve it:
//! - the thread's [`shard::Shard`] writes every live frame: group events from the fan-out
//!   lane, account events from the device's [`WsOutlet`], many frames per `write`;
//! - the connection's [`session::Session`] reads client frames (`resume`, `ping`, errors),
//!   pings, replays ([`resume`]), and waits on the socket when it blocks.
//!
//! A device that stops reading is closed with 1013 once more frames than the mailbox holds
//! wait for it, and its TCP connection is dropped when the close frame cannot go out within
//! the write timeout; the device resumes later from its cursors: its account's `seq` and
//! each group's `group_seq` (its `hello` lists the account's groups and their heads).
//! `resume` replays the account's log, then each listed group's, while live frames wait;
//! account events at or below the last `seq` sent, and events of a tracked group at or below
//! the last `group_seq` sent, are dropped, so replay-then-live has no gap and no duplicate.

mod cursors;
pub mod frames;
mod resume;
mod session;
pub mod shard;

use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_codec::{Framed, FramedParts};
use actix_http::body::{BodySize, MessageBody};
use actix_http::{ConnectionType, Method, Request, Response, h1};
use actix_rt::net::TcpStream;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use chorus_actors::GroupHeads;
use chorus_actors::push::{Job, Lane, Outlet, Pushed, StoredEvent};
use futures_util::SinkExt;
use serde_json::json;
use tokio::sync::Notify;

use self::frames::FrameReader;
use self::session::Session;
use self::shard::{Limits, Shard};
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::http::auth::ws_account;

/// The one path that upgrades.
pub const PATH: &str = "/v1/ws";

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// The push end of a connection, held in the hub: account events go to the lane of the
/// thread that owns the socket.
pub struct WsOutlet {
    id: u64,
    lane: Lane,
    /// Raised when the lane was full: the device missed an event and must resume.
    too_slow: Arc<Notify>,
}

impl Outlet for WsOutlet {
    fn id(&self) -> u64 {
        self.id
    }

    fn push(&self, event: &StoredEvent) -> Pushed {
        let job = Job::Account {
            device: self.id,
            event: event.clone(),
        };
        match self.lane.try_send(job) {
            Ok(()) => Pushed::Queued,
            Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                self.too_slow.notify_one();
                Pushed::Gone
            }
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => Pushed::Gone,
        }
    }

    /// Cluster mode lost events between nodes: the too-slow path (1013, then `resume`).
    fn resume(&self) {
        self.too_slow.notify_one();
    }
}

/// `GET /v1/ws` without `Upgrade: websocket`: the token is checked first (401), then the
/// request is refused as not a handshake (400).
#[utoipa::path(get, path = "/v1/ws", tag = "websocket", operation_id = "websocket",
    params(("token" = Option<String>, Query, description = "The client token, for clients that cannot set `Authorization`.")),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol (with `Upgrade: websocket`); frames in docs/api.md."),
        (status = 400, description = "`invalid_input`: not a WebSocket handshake.", body = crate::error::ErrorBody),
    ))]
pub async fn not_upgraded(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse> {
    ws_account(&state, req.head()).await?;
    Err(Error::invalid(
        "not a WebSocket handshake: Upgrade: websocket is missing",
    ))
}

/// Every request actix-http sees with `Upgrade: websocket` (or `CONNECT`) comes here with its
/// socket. Only `GET /v1/ws` upgrades; the rest get the contract's error and the connection
/// is closed.
pub async fn upgrade(state: AppState, req: Request, framed: Framed<TcpStream, h1::Codec>) {
    // Everything the handshake held (the request, actix-http's buffers) is freed before the
    // session starts: only what `Session` holds lives as long as the connection.
    if let Some(session) = open(state, req, framed).await {
        session.run().await;
    }
}

/// The handshake: checks, `101`, registration with the shard and the account.
async fn open(
    state: AppState,
    req: Request,
    mut framed: Framed<TcpStream, h1::Codec>,
) -> Option<Session> {
    if req.path() != PATH || req.method() != Method::GET {
        let unrouted = Error::Domain(chorus_actors::Error::NotFound("route"));
        refuse(&mut framed, unrouted).await;
        return None;
    }
    let (account, token) = match ws_account(&state, req.head()).await {
        Ok(found) => found,
        Err(e) => {
            refuse(&mut framed, e).await;
            return None;
        }
    };
    let accept = match actix_http::ws::handshake(req.head()) {
        Ok(mut accept) => accept.finish().drop_body(),
        Err(e) => {
            let e = Error::invalid(format!("not a WebSocket handshake: {e}"));
            refuse(&mut framed, e).await;
            return None;
        }
    };
    if let Err(e) = framed.send((accept, BodySize::None).into()).await {
        tracing::debug!(error = %e, "WebSocket handshake not sent");
        return None;
    }
    drop(req);
    let FramedParts { io, read_buf, .. } = framed.into_parts();
    let stream = Rc::new(io);
    let limits = Limits {
        mailbox: state.config.ws_mailbox,
    };
    let shard = Shard::here(state.chorus.fanout(), limits);
    let id = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
    let account: Arc<str> = Arc::from(account);
    let wake = Rc::new(Notify::new());
    let slot = shard.register(id, account.clone(), stream.clone(), wake.clone());
    let too_slow = Arc::new(Notify::new());
    let outlet = Arc::new(WsOutlet {
        id,
        lane: shard.lane().clone(),
        too_slow: too_slow.clone(),
    });
    let seq = match state.chorus.attach(&account, outlet).await {
        Ok(seq) => seq,
        Err(e) => {
            tracing::warn!(%account, error = %e, "device not attached");
            shard.unregister(slot);
            return None;
        }
    };
    let groups = match state.chorus.group_heads(&account).await {
        Ok(groups) => groups,
        Err(e) => {
            tracing::warn!(%account, error = %e, "device not attached: its groups were not read");
            shard.unregister(slot);
            if let Err(e) = state.chorus.detach(&account, id).await {
                tracing::debug!(%account, error = %e, "detach after a failed hello");
            }
            return None;
        }
    };
    tracing::debug!(%account, connection = id, seq, "device connected");
    let hello = hello_frame(&account, seq, &groups);
    shard.with(slot, |c| c.hello(&hello, seq, &groups.heads, &limits));
    let mut reader = FrameReader::new(state.config.ws_max_frame);
    reader.feed(&read_buf);
    Some(Session {
        id,
        account,
        token,
        state,
        shard,
        slot,
        stream,
        wake,
        too_slow,
        reader,
    })
}

/// `{"type":"hello","account_id","seq","groups":{"GID":group_seq,...}}`, and
/// `"groups_more":true` when the account is in more groups than a hello lists
/// ([`chorus_actors::model::limits::MAX_CURSOR_GROUPS`]).
fn hello_frame(account: &str, seq: u64, groups: &GroupHeads) -> String {
    let heads: serde_json::Map<String, serde_json::Value> = groups
        .heads
        .iter()
        .map(|(gid, head)| (gid.clone(), json!(head)))
        .collect();
    let mut hello = json!({"type": "hello", "account_id": account, "seq": seq, "groups": heads});
    if groups.more {
        hello["groups_more"] = json!(true);
    }
    hello.to_string()
}

/// Answers `error` in the contract's shape and closes the connection.
async fn refuse(framed: &mut Framed<TcpStream, h1::Codec>, error: Error) {
    let response: Response<_> = error.error_response().into();
    let (mut head, body) = response.into_parts();
    let body = body.try_into_bytes().unwrap_or_default();
    head.head_mut().set_connection_type(ConnectionType::Close);
    let head = head.drop_body();
    let size = BodySize::Sized(body.len() as u64);
    let sent = async {
        framed.feed((head, size).into()).await?;
        framed.feed(h1::Message::Chunk(Some(body))).await?;
        framed.send(h1::Message::Chunk(None)).await
    };
    if let Err(e) = sent.await {
        tracing::debug!(error = %e, "refusal not sent");
    }
}
