//! Requests to an actor's owner over NATS request/reply (docs/cluster.md).
//!
//! The caller ([`Forwarder::forward`]) sends the domain's encoded message to
//! `<prefix>.node.<owner>`; the route travels in headers, the body is the domain's bytes and
//! goes through untouched:
//!
//! | header | value |
//! |---|---|
//! | `Chorus-Actor` | `<kind token>/<id>`, e.g. `g/0123…` |
//! | `Chorus-Msg` | the route's name (the message type, or a node-level call) |
//! | `Chorus-Deadline` | unix ms after which the caller no longer waits |
//! | `Chorus-From` | the calling node (logs) |
//!
//! Each node has one subscription on its own subject ([`RequestServer`]); each request runs
//! on its own task through the domain's [`Serve`], and its answer (whatever the domain
//! encoded, its errors included) is the reply. A reply that carries `Chorus-Error` is the
//! *transport's* failure on the receiving side (not running yet, too busy, an answer too
//! large for NATS), never the actor's.
//!
//! Errors the caller sees: no answer within `--cluster-request-timeout-ms`, nobody listening
//! on the owner's subject (it died: NATS answers "no responders" at once), or NATS down are
//! all [`Error::Unavailable`], which the HTTP layer answers 503 `unavailable` with
//! `Retry-After: 1`: by then the view has usually moved on and the retry reaches the new
//! owner. A body over NATS's max payload (1 MiB by default) is refused before sending.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::membership::unix_ms;

use async_nats::{Client, HeaderMap, Message, RequestErrorKind};
use bytes::Bytes;
use chorus_actors::Error;
use chorus_actors::place::{ActorKind, Route, Serve};
use futures_util::StreamExt;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

pub const HEADER_ACTOR: &str = "Chorus-Actor";
pub const HEADER_MSG: &str = "Chorus-Msg";
pub const HEADER_DEADLINE: &str = "Chorus-Deadline";
pub const HEADER_FROM: &str = "Chorus-From";
/// On a reply: the receiving node could not run the request; the value is a code
/// ([`UNAVAILABLE`] or [`REFUSED`]), the body says why.
pub const HEADER_ERROR: &str = "Chorus-Error";
/// Try again soon (the node is starting, busy or stopping).
pub const UNAVAILABLE: &str = "unavailable";
/// Trying again will not help (a malformed request, an answer over NATS's max payload).
pub const REFUSED: &str = "refused";

/// Requests one node runs at once; past it, a request is answered unavailable at once
/// rather than queued without bound.
pub const MAX_IN_FLIGHT: usize = 4096;

/// Room kept for the headers within NATS's max payload.
const HEADER_ROOM: usize = 1024;

/// NATS's max payload when the server has not said (its default, 1 MiB).
const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;

/// The owner's subject: `<prefix>.node.<node>`.
pub fn node_subject(prefix: &str, node: &str) -> String {
    format!("{prefix}.node.{node}")
}

/// The calling side: sends a route's body to a node and waits for its answer.
#[derive(Clone)]
pub struct Forwarder {
    client: Client,
    prefix: String,
    me: String,
    timeout: Duration,
}

impl Forwarder {
    pub(crate) fn new(client: Client, prefix: &str, me: &str, timeout: Duration) -> Forwarder {
        Forwarder {
            client,
            prefix: prefix.to_owned(),
            me: me.to_owned(),
            timeout,
        }
    }

    /// Sends `body` for `route` to `node` and answers the bytes its [`Serve`] returned.
    pub async fn forward(&self, node: &str, route: Route, body: Bytes) -> Result<Bytes, Error> {
        let what = describe(&route);
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err(Error::Unavailable(format!(
                "{what} for node {node}: NATS is not connected"
            )));
        }
        let max = match self.client.max_payload() {
            0 => DEFAULT_MAX_PAYLOAD,
            n => n,
        };
        if body.len() + HEADER_ROOM > max {
            return Err(Error::Internal(format!(
                "{what} is {} bytes, more than a request between nodes may carry ({} bytes: \
                 NATS's max payload less room for headers)",
                body.len(),
                max - HEADER_ROOM.min(max)
            )));
        }
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_ACTOR, format!("{}/{}", route.kind.token(), route.id));
        headers.insert(HEADER_MSG, route.name.as_str());
        headers.insert(
            HEADER_DEADLINE,
            (unix_ms() + millis(self.timeout)).to_string(),
        );
        headers.insert(HEADER_FROM, self.me.as_str());
        let request = async_nats::Request::new()
            .headers(headers)
            .payload(body)
            .timeout(Some(self.timeout));
        let subject = node_subject(&self.prefix, node);
        // The client's own timeout starts once the request is queued; queueing itself waits
        // while the client is backed up, so the whole call gets a bound too.
        let sent = tokio::time::timeout(
            self.timeout + Duration::from_millis(100),
            self.client.send_request(subject, request),
        )
        .await;
        let reply = match sent {
            Err(_) => return Err(timed_out(node, &what, self.timeout)),
            Ok(Err(e)) => return Err(request_error(e.kind(), node, &what, self.timeout, &e)),
            Ok(Ok(reply)) => reply,
        };
        answer(node, &what, reply)
    }
}

fn timed_out(node: &str, what: &str, timeout: Duration) -> Error {
    Error::Unavailable(format!(
        "node {node} did not answer {what} within {} ms",
        timeout.as_millis()
    ))
}

/// What a failed request means to the caller.
pub(crate) fn request_error(
    kind: RequestErrorKind,
    node: &str,
    what: &str,
    timeout: Duration,
    detail: &dyn std::fmt::Display,
) -> Error {
    match kind {
        RequestErrorKind::TimedOut => timed_out(node, what, timeout),
        RequestErrorKind::NoResponders => Error::Unavailable(format!(
            "node {node} is not listening for {what} (it stopped or left)"
        )),
        RequestErrorKind::MaxPayloadExceeded | RequestErrorKind::InvalidSubject => {
            Error::Internal(format!("{what} cannot be sent to node {node}: {detail}"))
        }
        RequestErrorKind::Other => {
            Error::Unavailable(format!("{what} to node {node} failed: {detail}"))
        }
    }
}

/// The domain's bytes, or the receiving node's transport failure.
fn answer(node: &str, what: &str, reply: Message) -> Result<Bytes, Error> {
    let failure = reply
        .headers
        .as_ref()
        .and_then(|h| h.get(HEADER_ERROR))
        .map(|v| v.as_str().to_owned());
    match failure {
        None => Ok(reply.payload),
        Some(code) => {
            let why = String::from_utf8_lossy(&reply.payload);
            let message = format!("node {node} could not run {what}: {why}");
            Err(if code == UNAVAILABLE {
                Error::Unavailable(message)
            } else {
                Error::Internal(message)
            })
        }
    }
}

fn describe(route: &Route) -> String {
    format!("{} for {}/{}", route.name, route.kind.token(), route.id)
}

/// The receiving side: one subscription on this node's subject, each request on its own
/// task, run by the domain's [`Serve`] once it is set.
/// Dropped without [`RequestServer::stop`], its task ends at once.
pub struct RequestServer {
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Drop for RequestServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl RequestServer {
    /// Subscribes to `<prefix>.node.<me>` (registered with the server when this returns)
    /// and serves requests with whatever `serve` holds by then.
    pub(crate) async fn start(
        client: Client,
        prefix: &str,
        me: &str,
        serve: Arc<OnceLock<Serve>>,
    ) -> Result<RequestServer, async_nats::SubscribeError> {
        let mut requests = client.subscribe(node_subject(prefix, me)).await?;
        if let Err(e) = client.flush().await {
            tracing::warn!(error = %e, "NATS flush after subscribing to requests");
        }
        let (stop, mut stopped) = watch::channel(false);
        let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let task = tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    m = requests.next() => m,
                    _ = stopped.changed() => None,
                };
                let Some(message) = message else { break };
                let Some(reply) = message.reply.clone() else {
                    tracing::debug!(subject = %message.subject, "request without a reply subject ignored");
                    continue;
                };
                let client = client.clone();
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    refuse(&client, reply, UNAVAILABLE, "too many requests in flight").await;
                    continue;
                };
                let serve = serve.get().cloned();
                tokio::spawn(async move {
                    let _slot = slot;
                    handle(&client, message, reply, serve).await;
                });
            }
            // New requests go nowhere (the caller gets "no responders" at once, and tries the
            // new owner); those running finish, for as long as a caller would wait.
            if let Err(e) = requests.unsubscribe().await {
                tracing::debug!(error = %e, "unsubscribing from requests");
            }
            let all = u32::try_from(MAX_IN_FLIGHT).unwrap_or(u32::MAX);
            let _ = tokio::time::timeout(Duration::from_secs(5), slots.acquire_many(all)).await;
        });
        Ok(RequestServer {
            stop,
            task: Some(task),
        })
    }

    /// Stops taking requests and waits (a bounded while) for those running.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

async fn handle(
    client: &Client,
    message: Message,
    reply: async_nats::Subject,
    serve: Option<Serve>,
) {
    let headers = message.headers.as_ref();
    let header = |name: &str| headers.and_then(|h| h.get(name)).map(|v| v.as_str());
    if let Some(deadline) = header(HEADER_DEADLINE).and_then(|d| d.parse::<u64>().ok())
        && unix_ms() > deadline
    {
        // The caller has given up: running it now would only do work nobody waits for.
        tracing::debug!(from = ?header(HEADER_FROM), "request past its deadline dropped");
        return;
    }
    let route = header(HEADER_ACTOR)
        .and_then(|actor| actor.split_once('/'))
        .and_then(|(kind, id)| Some((ActorKind::from_token(kind)?, id)))
        .zip(header(HEADER_MSG))
        .map(|((kind, id), name)| Route {
            kind,
            id: id.to_owned(),
            name: name.to_owned(),
        });
    let Some(route) = route else {
        refuse(
            client,
            reply,
            REFUSED,
            "malformed request: no route headers",
        )
        .await;
        return;
    };
    let Some(serve) = serve else {
        refuse(client, reply, UNAVAILABLE, "this node is still starting").await;
        return;
    };
    let what = describe(&route);
    let answer = serve(route, message.payload).await;
    if let Err(e) = client.publish(reply.clone(), answer).await {
        tracing::warn!(error = %e, "{what}: answer not sent");
        if e.kind() == async_nats::PublishErrorKind::MaxPayloadExceeded {
            refuse(
                client,
                reply,
                REFUSED,
                &format!("the answer to {what} is too large for NATS"),
            )
            .await;
        }
    }
}

/// Answers a request with a transport failure (`code`, `why`).
async fn refuse(client: &Client, reply: async_nats::Subject, code: &str, why: &str) {
    let mut headers = HeaderMap::new();
    headers.insert(HEADER_ERROR, code);
    let body = Bytes::from(why.to_owned());
    if let Err(e) = client.publish_with_headers(reply, headers, body).await {
        tracing::debug!(error = %e, "refusal not sent");
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(e: &Error) -> &'static str {
        match e {
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internal",
            _ => "other",
        }
    }

    #[test]
    fn timeouts_and_missing_owners_are_unavailable() {
        let t = Duration::from_millis(2000);
        for (kind, expected) in [
            (RequestErrorKind::TimedOut, "unavailable"),
            (RequestErrorKind::NoResponders, "unavailable"),
            (RequestErrorKind::Other, "unavailable"),
            (RequestErrorKind::MaxPayloadExceeded, "internal"),
            (RequestErrorKind::InvalidSubject, "internal"),
        ] {
            let e = request_error(kind, "n1", "X for g/1", t, &"detail");
            assert_eq!(code(&e), expected, "{kind:?}: {e}");
        }
        let e = request_error(RequestErrorKind::TimedOut, "n1", "X for g/1", t, &"");
        assert!(e.to_string().contains("2000 ms"), "{e}");
    }
}
