//! An in-process cluster: a [`Placement`] whose nodes are [`Chorus`] domains of one process
//! over one [`MemStore`], a forward being a call of the owner's [`Serve`]. Owners are set by
//! the test (per actor, and per node where views should differ); the rest are spread by a
//! hash.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use tokio::sync::watch;

use super::mem_store::MemStore;
use crate::actor::place::{ActorKind, NodeId, Owner, Placement, Route, Serve};
use crate::error::{Error, StoreError};
use crate::push::StoredEvent;
use crate::push::relay::Relay;
use crate::{ActorConfig, Chorus, Seams};

type Key = (ActorKind, String);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What every node shares: who owns what, and how to reach each node.
pub struct Net {
    nodes: Vec<NodeId>,
    owners: Mutex<HashMap<Key, NodeId>>,
    serves: Mutex<HashMap<NodeId, Serve>>,
    view: watch::Sender<u64>,
}

impl Net {
    /// Makes `node` the owner of `kind`/`id` in every node's view.
    pub fn place(&self, kind: ActorKind, id: &str, node: usize) {
        lock(&self.owners).insert((kind, id.to_owned()), self.nodes[node].clone());
    }

    /// Takes `node` off the network: a forward to it gets no answer.
    pub fn unplug(&self, node: usize) {
        lock(&self.serves).remove(&self.nodes[node]);
    }

    /// Announces a new view: every node sheds what it no longer owns.
    pub fn bump(&self) {
        self.view.send_modify(|v| *v += 1);
    }

    fn owner(&self, kind: ActorKind, id: &str) -> NodeId {
        if let Some(node) = lock(&self.owners).get(&(kind, id.to_owned())) {
            return node.clone();
        }
        let hash = id
            .bytes()
            .fold(kind as usize, |h, b| h.wrapping_mul(31) + b as usize);
        self.nodes[hash % self.nodes.len()].clone()
    }
}

/// One node's placement.
pub struct Fake {
    me: NodeId,
    net: Arc<Net>,
    store: Arc<MemStore>,
    epochs: Mutex<HashMap<Key, u64>>,
    /// This node's own view where it differs from the net's.
    views: Mutex<HashMap<Key, NodeId>>,
    pub forwards: AtomicUsize,
    pub served: Arc<AtomicUsize>,
    pub forgotten: Mutex<Vec<Key>>,
}

impl Fake {
    /// This node sees `node` as the owner of `kind`/`id` (`None`: as the net says).
    pub fn view(&self, kind: ActorKind, id: &str, node: Option<usize>) {
        let key = (kind, id.to_owned());
        match node {
            Some(n) => lock(&self.views).insert(key, self.net.nodes[n].clone()),
            None => lock(&self.views).remove(&key),
        };
    }

    pub fn forwards(&self) -> usize {
        self.forwards.load(Ordering::SeqCst)
    }

    pub fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }

    pub fn forgot(&self, kind: ActorKind, id: &str) -> bool {
        lock(&self.forgotten).contains(&(kind, id.to_owned()))
    }
}

impl Placement for Fake {
    fn owner(&self, kind: ActorKind, id: &str) -> Owner {
        let node = lock(&self.views)
            .get(&(kind, id.to_owned()))
            .cloned()
            .unwrap_or_else(|| self.net.owner(kind, id));
        if node == self.me {
            Owner::Local
        } else {
            Owner::Remote(node)
        }
    }

    fn forward(
        &self,
        node: &str,
        route: Route,
        body: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, Error>> {
        self.forwards.fetch_add(1, Ordering::SeqCst);
        let serve = lock(&self.net.serves).get(node).cloned();
        let node = node.to_owned();
        Box::pin(async move {
            match serve {
                Some(serve) => Ok(serve(route, body).await),
                None => Err(Error::Unavailable(format!("node {node} did not answer"))),
            }
        })
    }

    fn epoch(
        &self,
        kind: ActorKind,
        id: &str,
    ) -> BoxFuture<'static, Result<Option<u64>, StoreError>> {
        // Claimed at once, under the cache's lock: one claim per node and actor.
        let epoch = *lock(&self.epochs)
            .entry((kind, id.to_owned()))
            .or_insert_with(|| self.store.claim(kind, id));
        Box::pin(async move { Ok(Some(epoch)) })
    }

    fn forget(&self, kind: ActorKind, id: &str) {
        let key = (kind, id.to_owned());
        lock(&self.epochs).remove(&key);
        lock(&self.forgotten).push(key);
    }

    fn clustered(&self) -> bool {
        true
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.net.view.subscribe()
    }
}

/// A relay that only counts (the cluster tests need no delivery across nodes).
#[derive(Default)]
pub struct Counting {
    pub interest: AtomicUsize,
    pub released: AtomicUsize,
}

impl Relay for Counting {
    fn account_events(&self, _account: &str, _events: &[StoredEvent]) {}
    fn group_event(&self, _group: &str, _event: &StoredEvent) {}
    fn membership(&self, _account: &str, _group: &str, _member: bool) {}
    fn interest(&self, _account: &str) -> BoxFuture<'static, Result<(), Error>> {
        self.interest.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    }
    fn release(&self, _account: &str) {
        self.released.fetch_add(1, Ordering::SeqCst);
    }
}

/// One node of the test cluster.
pub struct Node {
    pub chorus: Chorus,
    pub place: Arc<Fake>,
    pub relay: Arc<Counting>,
}

/// `n` nodes over one store (inside a running actix system).
pub fn cluster(n: usize) -> (Arc<MemStore>, Arc<Net>, Vec<Node>) {
    let store = Arc::new(MemStore::default());
    let net = Arc::new(Net {
        nodes: (0..n).map(|i| format!("n{i}")).collect(),
        owners: Mutex::default(),
        serves: Mutex::default(),
        view: watch::channel(0).0,
    });
    let nodes = (0..n)
        .map(|i| {
            let place = Arc::new(Fake {
                me: format!("n{i}"),
                net: net.clone(),
                store: store.clone(),
                epochs: Mutex::default(),
                views: Mutex::default(),
                forwards: AtomicUsize::new(0),
                served: Arc::default(),
                forgotten: Mutex::default(),
            });
            let relay = Arc::new(Counting::default());
            let config = ActorConfig {
                idle_timeout: Duration::from_secs(60),
                arbiters: 1,
                ..ActorConfig::default()
            };
            let seams = Seams {
                placement: place.clone(),
                relay: relay.clone(),
            };
            let chorus = Chorus::with_seams(store.clone(), config, seams);
            let serve = chorus.serve();
            let served = place.served.clone();
            let counted: Serve = Arc::new(move |route, body| {
                served.fetch_add(1, Ordering::SeqCst);
                serve(route, body)
            });
            lock(&net.serves).insert(format!("n{i}"), counted);
            Node {
                chorus,
                place,
                relay,
            }
        })
        .collect();
    (store, net, nodes)
}
