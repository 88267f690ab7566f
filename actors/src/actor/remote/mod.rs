//! Messages to actors another node owns (cluster mode, [`super::place`]).
//!
//! Every actor message a caller may send to an actor on another node implements [`Routed`]:
//! serde, and a stable name. The directory's `ask*` ([`route`]) sends a message for an actor
//! this node does not own to its owner through [`Placement::forward`], as JSON under its
//! [`Route`]; the owner's [`serve`] looks the route up in the one registry (`registry.rs`,
//! built by a macro from the list of messages), runs the message through the same local ask
//! as a message from its own node, and answers the result, an error included, as JSON
//! ([`Reply`]). The caller decodes it and answers as if the actor were local. So nothing
//! above the directory knows where an actor lives.
//!
//! Views of the cluster differ for a moment after a change: an owner that is not the owner
//! (any more) answers [`Reply::NotOwner`], and the caller looks again after
//! [`NOT_OWNER_WAIT`], at most [`MAX_HOPS`] times, then answers [`Error::Unavailable`] (503
//! with `Retry-After`). A message that holds something local (a device's outlet) is never
//! routed: attaching a device happens where the device is (`crate::ops::accounts`).
//!
//! Node-level calls, besides actor messages: [`notify`] (a fan-out's appends to the logs of
//! accounts another node owns) and [`EXISTS`] (is there such an actor; activate it).

pub mod notify;
mod registry;

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::directory::{Directory, WeakDirectory};
use super::env::Env;
use super::place::{ActorKind, Owner, Route, Serve};
use crate::error::{Error, Result, WireError};

#[cfg(test)]
mod tests;

/// An actor message that may be sent to the actor's owner on another node.
pub trait Routed: Serialize + DeserializeOwned + Clone + Send + 'static {
    /// Its name on the wire, unique among the messages of one kind of actor (the route
    /// carries the kind).
    const NAME: &'static str;
}

/// How long a caller waits before it looks for the owner again, when the node it asked was
/// not (or no longer) the owner.
pub const NOT_OWNER_WAIT: Duration = Duration::from_millis(100);

/// How many times it looks again before answering [`Error::Unavailable`].
pub const MAX_HOPS: usize = 2;

/// The node-level route that answers whether an actor exists (and activates it).
pub const EXISTS: &str = "exists";

/// An answer as it crosses back: the actor's result, or "not the owner here".
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply<R> {
    Ok(R),
    Err(WireError),
    /// The node asked does not own the actor: look for the owner again.
    NotOwner,
}

/// `value` as JSON.
fn encode<T: Serialize>(value: &T) -> Result<Bytes> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| Error::Internal(format!("a message to another node failed to encode: {e}")))
}

/// The bytes of an actor's answer, its error included.
fn reply<R: Serialize>(answer: Result<R>) -> Bytes {
    let reply = match answer {
        Ok(value) => Reply::Ok(value),
        Err(e) => Reply::Err(e.to_wire()),
    };
    encode(&reply).unwrap_or_else(|e| {
        tracing::error!(error = %e, "an answer to another node failed to encode");
        Bytes::from_static(br#"{"err":{"error":"internal","message":"answer not encodable"}}"#)
    })
}

/// The bytes of [`Reply::NotOwner`] (the same for every answer type).
fn not_owner() -> Bytes {
    Bytes::from_static(br#""not_owner""#)
}

/// An answer from another node.
fn decode<R: DeserializeOwned>(bytes: &[u8]) -> Result<Reply<R>> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::Internal(format!("an answer from another node did not decode: {e}")))
}

/// Sends `msg` (named `name`) to `kind`/`id` wherever it lives: here through `local`, which
/// gives the message back if this node turns out not to own the actor, or to its owner.
/// Another node's answer comes back decoded, as if the actor were local.
pub(super) async fn route<M, R, F, Fut>(
    env: &Env,
    kind: ActorKind,
    id: &str,
    name: &'static str,
    msg: M,
    local: F,
) -> Result<R>
where
    M: Serialize,
    R: DeserializeOwned,
    F: Fn(M) -> Fut,
    Fut: Future<Output = std::result::Result<Result<R>, M>>,
{
    let mut msg = msg;
    let mut body: Option<Bytes> = None;
    for hop in 0..=MAX_HOPS {
        if hop > 0 {
            tokio::time::sleep(NOT_OWNER_WAIT).await;
        }
        let node = match env.placement.owner(kind, id) {
            Owner::Local => match local(msg).await {
                Ok(answer) => return answer,
                Err(back) => {
                    msg = back;
                    continue;
                }
            },
            Owner::Remote(node) => node,
        };
        let body = match &body {
            Some(body) => body.clone(),
            None => body.insert(encode(&msg)?).clone(),
        };
        let route = Route {
            kind,
            id: id.to_owned(),
            name: name.to_owned(),
        };
        match decode::<R>(&env.placement.forward(&node, route, body).await?)? {
            Reply::Ok(answer) => return Ok(answer),
            Reply::Err(e) => return Err(Error::from_wire(e)),
            Reply::NotOwner => {
                tracing::debug!(%kind, %id, %node, msg = name, "asked a node that is not the owner");
            }
        }
    }
    Err(Error::Unavailable(format!(
        "{kind}/{id} has no owner that takes it now"
    )))
}

/// The receiving side of [`crate::place::Placement::forward`] for `directory`
/// ([`crate::Chorus::serve`]); unavailable once the domain is gone.
pub fn server(directory: WeakDirectory) -> Serve {
    std::sync::Arc::new(move |route, body| match directory.upgrade() {
        Some(directory) => serve(directory, route, body),
        None => {
            let gone = Error::Unavailable("this node is shutting down".into());
            Box::pin(std::future::ready(reply::<()>(Err(gone))))
        }
    })
}

/// Runs a message another node forwarded here and answers the result's bytes.
pub fn serve(directory: Directory, route: Route, body: Bytes) -> BoxFuture<'static, Bytes> {
    match route.name.as_str() {
        notify::NAME => Box::pin(async move { notify::serve(directory.env(), body).await }),
        EXISTS => Box::pin(async move {
            match directory.exists_here(route.kind, &route.id).await {
                Ok(answer) => reply(answer),
                Err(()) => not_owner(),
            }
        }),
        _ => registry::dispatch(directory, route, body).unwrap_or_else(|route| {
            tracing::error!(kind = %route.kind, msg = %route.name,
                "another node sent a message this node does not know");
            let unknown = Error::Internal(format!("no message {}/{}", route.kind, route.name));
            Box::pin(std::future::ready(reply::<()>(Err(unknown))))
        }),
    }
}

/// One forwarded actor message: decoded, run through the local ask `here`, its answer
/// encoded ([`Reply::NotOwner`] if this node does not own the actor).
async fn serve_one<M, R, F, Fut>(directory: Directory, id: String, body: Bytes, here: F) -> Bytes
where
    M: DeserializeOwned,
    R: Serialize,
    F: FnOnce(Directory, String, M) -> Fut,
    Fut: Future<Output = std::result::Result<Result<R>, M>>,
{
    let msg: M = match serde_json::from_slice(&body) {
        Ok(msg) => msg,
        Err(e) => {
            let e = Error::Internal(format!("a message from another node did not decode: {e}"));
            return reply::<R>(Err(e));
        }
    };
    match here(directory, id, msg).await {
        Ok(answer) => reply(answer),
        Err(_) => not_owner(),
    }
}
