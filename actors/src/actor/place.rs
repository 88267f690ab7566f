//! Where an actor lives: on this node, or on another node of a cluster.
//!
//! On one node ([`SingleNode`]) every actor is local and writes carry no epoch. In cluster
//! mode (the server's `cluster` module) each account, group and community actor is live on
//! exactly one node at a time, chosen by [`Placement::owner`]; a message for an actor owned
//! elsewhere is forwarded to its owner ([`Placement::forward`]) and answered as if it were
//! local. A node that takes an actor over first claims it in the store, which gives it a new
//! **epoch**; every later write of that actor names the epoch, and the store refuses a write
//! whose epoch is no longer the newest ([`crate::error::StoreError::Fenced`]). So two nodes
//! never both write one actor's log, even when one of them was paused past its lease and
//! still believes it owns the actor (docs/cluster.md).
//!
//! The domain crate knows only this trait; NATS, membership and hashing live in the server.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use tokio::sync::watch;

use crate::error::{Error, StoreError};

/// The kinds of actor that have an owner. Also the store's name for the log row that holds
/// an actor's epoch (`a:`, `g:`, `c:` keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ActorKind {
    Account,
    Group,
    Community,
}

impl ActorKind {
    /// A one-letter token, used in log keys and on the wire between nodes.
    pub fn token(self) -> &'static str {
        match self {
            ActorKind::Account => "a",
            ActorKind::Group => "g",
            ActorKind::Community => "c",
        }
    }

    /// The inverse of [`ActorKind::token`].
    pub fn from_token(token: &str) -> Option<Self> {
        [ActorKind::Account, ActorKind::Group, ActorKind::Community]
            .into_iter()
            .find(|k| k.token() == token)
    }
}

impl fmt::Display for ActorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token())
    }
}

/// A node's name in the cluster (a NATS subject token: `[A-Za-z0-9_-]`).
pub type NodeId = String;

/// Who owns an actor right now, as this node sees the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// This node: activate it here.
    Local,
    /// Another node: forward to it.
    Remote(NodeId),
}

/// What a forwarded message is addressed to. `name` picks the handler on the receiving side
/// (a message type's name, or a node-level call such as a batch of account notifications);
/// the body is that message as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub kind: ActorKind,
    pub id: String,
    pub name: String,
}

/// The receiving side of [`Placement::forward`]: runs a forwarded message on this node and
/// answers its encoded result, an error included (the domain encodes and decodes both
/// sides; the transport only carries bytes). Built by the domain ([`crate::Chorus`]) and
/// handed to the cluster once the domain runs.
pub type Serve = Arc<dyn Fn(Route, Bytes) -> BoxFuture<'static, Bytes> + Send + Sync>;

/// Where actors live, and how to reach the ones that live elsewhere.
pub trait Placement: Send + Sync + 'static {
    /// Who owns `kind`/`id` now.
    fn owner(&self, kind: ActorKind, id: &str) -> Owner;

    /// Sends `body` for `route` to `node` and waits for its answer (the bytes its [`Serve`]
    /// returned). No answer in time, or no node listening, is [`Error::Unavailable`]; any
    /// other `Err` is the transport's, never the actor's (those are in the bytes).
    fn forward(
        &self,
        node: &str,
        route: Route,
        body: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, Error>>;

    /// The epoch this node holds for `kind`/`id`, claiming it in the store on first use
    /// (then cached until [`Placement::forget`]). `None` on a single node: writes carry no
    /// epoch there.
    fn epoch(
        &self,
        kind: ActorKind,
        id: &str,
    ) -> BoxFuture<'static, Result<Option<u64>, StoreError>>;

    /// A write with this node's epoch was refused (fenced), or the actor moved away: the
    /// next use claims again.
    fn forget(&self, kind: ActorKind, id: &str);

    /// True when other nodes may exist (cluster mode).
    fn clustered(&self) -> bool;

    /// The version of the cluster's view, which changes whenever a node joins or leaves (or
    /// this node finds it was presumed dead): actors this node no longer owns are let go,
    /// and outboxes are looked at again. Never changes on a single node.
    fn changes(&self) -> watch::Receiver<u64>;
}

/// One node: every actor is local, nothing is claimed or forwarded.
#[derive(Debug, Default, Clone, Copy)]
pub struct SingleNode;

impl Placement for SingleNode {
    fn owner(&self, _kind: ActorKind, _id: &str) -> Owner {
        Owner::Local
    }

    fn forward(
        &self,
        node: &str,
        route: Route,
        _body: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, Error>> {
        let message = format!(
            "no node {node} to forward {}/{} to on a single node",
            route.kind, route.id
        );
        Box::pin(async move { Err(Error::Internal(message)) })
    }

    fn epoch(
        &self,
        _kind: ActorKind,
        _id: &str,
    ) -> BoxFuture<'static, Result<Option<u64>, StoreError>> {
        Box::pin(async { Ok(None) })
    }

    fn forget(&self, _kind: ActorKind, _id: &str) {}

    fn clustered(&self) -> bool {
        false
    }

    fn changes(&self) -> watch::Receiver<u64> {
        // The sender goes at once: the view of one node never changes.
        watch::channel(0).1
    }
}
