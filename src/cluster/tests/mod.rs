//! Cluster mode's core: the membership state machine on its own (with made-up instants,
//! `table.rs`), then nodes over a real nats-server (`chorus_testkit::NatsServer`; skipped
//! without one unless CI requires it). Each node runs on its own thread and runtime, like a process of
//! its own: pausing that thread stops everything of the node (its heartbeats, its NATS
//! connection's I/O) the way SIGSTOP does, and ending it drops its connection the way
//! `kill -9` does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use chorus_actors::place::{ActorKind, Owner, Route, Serve};
use chorus_actors::store::OwnerStore;
use chorus_actors::{Error, StoreError};
use chorus_testkit::NatsServer;
use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use super::membership::{Phase, Timing};
use super::*;

mod table;

const TIMING: Timing = Timing {
    heartbeat: Duration::from_millis(100),
    dead_after: Duration::from_millis(500),
};

/// The store's side of ownership: each claim moves the epoch one up (as the CQL store's
/// does), shared by every node of a test.
#[derive(Default)]
struct Epochs {
    epochs: Mutex<HashMap<(ActorKind, String), u64>>,
    claims: AtomicUsize,
}

#[async_trait]
impl OwnerStore for Epochs {
    async fn claim_owner(&self, kind: ActorKind, id: &str) -> Result<u64, StoreError> {
        self.claims.fetch_add(1, Ordering::SeqCst);
        // A round trip: claims that overlap really overlap.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut epochs = self.epochs.lock().expect("lock");
        let epoch = epochs.entry((kind, id.to_owned())).or_insert(0);
        *epoch += 1;
        Ok(*epoch)
    }
}

enum Control {
    /// Blocks the node's thread (its whole runtime) for this long, then says when it woke.
    Pause(Duration, oneshot::Sender<Instant>),
}

/// A node on a thread and runtime of its own.
struct Node {
    cluster: Cluster,
    control: Option<mpsc::UnboundedSender<Control>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn settings(nats: &NatsServer, timing: Timing) -> ClusterSettings {
    ClusterSettings {
        nats_urls: vec![nats.url().to_owned()],
        node_id: None,
        heartbeat: timing.heartbeat,
        dead_after: timing.dead_after,
        request_timeout: Duration::from_millis(1000),
    }
}

/// Answers `<node>:<route name>:<body>`.
fn echo(node: &str) -> Serve {
    let node = node.to_owned();
    Arc::new(
        move |route: Route, body: Bytes| -> BoxFuture<'static, Bytes> {
            let answer = format!("{node}:{}:{}", route.name, String::from_utf8_lossy(&body));
            Box::pin(async move { Bytes::from(answer) })
        },
    )
}

impl Node {
    fn start(settings: &ClusterSettings, id: &str, store: &Arc<Epochs>) -> Node {
        let (started, cluster) = std::sync::mpsc::channel();
        let (control, mut commands) = mpsc::unbounded_channel();
        let (settings, id, store) = (settings.clone(), id.to_owned(), store.clone());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let addr: SocketAddr = "127.0.0.1:1".parse().expect("addr");
                let owners: Arc<dyn OwnerStore> = store;
                let cluster =
                    Cluster::start(&settings, id.clone(), "chorus_core_test", addr, owners)
                        .await
                        .expect("cluster starts");
                cluster.set_serve(echo(&id));
                started.send(cluster).expect("test waits");
                while let Some(command) = commands.recv().await {
                    match command {
                        Control::Pause(how_long, woke) => {
                            std::thread::sleep(how_long);
                            let _ = woke.send(Instant::now());
                        }
                    }
                }
                // Dropped here with its runtime and every task of it: like kill -9.
            });
        });
        Node {
            cluster: cluster.recv().expect("node started"),
            control: Some(control),
            thread: Some(thread),
        }
    }

    fn pause(&self, how_long: Duration) -> oneshot::Receiver<Instant> {
        let (woke, resumed) = oneshot::channel();
        if let Some(control) = &self.control {
            control
                .send(Control::Pause(how_long, woke))
                .expect("node alive");
        }
        resumed
    }

    /// Stops the node without a word to the others (its connection just drops).
    fn kill(&mut self) {
        self.control.take();
        if let Some(thread) = self.thread.take() {
            thread.join().expect("node thread");
        }
    }

    fn owner_ids(&self) -> Vec<String> {
        self.cluster
            .membership()
            .view()
            .owners
            .iter()
            .map(|m| m.node.clone())
            .collect()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `check` every 20 ms until it holds, for at most 20 s.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "not within 20 s: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn three_nodes(nats: &NatsServer, timing: Timing) -> (Vec<Node>, Arc<Epochs>) {
    let store = Arc::new(Epochs::default());
    let settings = settings(nats, timing);
    let nodes: Vec<Node> = ["n0", "n1", "n2"]
        .iter()
        .map(|id| Node::start(&settings, id, &store))
        .collect();
    eventually("every node sees all three", || {
        nodes.iter().all(|n| n.owner_ids() == ["n0", "n1", "n2"])
    })
    .await;
    (nodes, store)
}

fn key(i: usize) -> String {
    format!("{i:032x}")
}

/// The first key `node` owns.
fn owned_by(nodes: &[Node], node: usize) -> String {
    let placement = nodes[node].cluster.placement();
    (0..)
        .map(key)
        .find(|k| placement.owner(ActorKind::Group, k) == Owner::Local)
        .expect("some key")
}

#[tokio::test]
async fn three_nodes_agree_on_every_owner_and_forward_to_it() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let (nodes, _) = three_nodes(&nats, TIMING).await;
    for node in &nodes {
        assert_eq!(node.cluster.not_ready(), None);
        assert_eq!(node.cluster.status().phase, Phase::Member);
    }
    let placements: Vec<_> = nodes.iter().map(|n| n.cluster.placement()).collect();
    let mut per_node = [0; 3];
    for i in 0..300 {
        let id = key(i);
        let answers: Vec<Owner> = placements
            .iter()
            .map(|p| p.owner(ActorKind::Account, &id))
            .collect();
        let local: Vec<usize> = (0..3).filter(|&n| answers[n] == Owner::Local).collect();
        assert_eq!(local.len(), 1, "{id}: {answers:?}");
        let owner = format!("n{}", local[0]);
        for answer in &answers {
            assert!(
                *answer == Owner::Local || *answer == Owner::Remote(owner.clone()),
                "{id}: {answers:?}"
            );
        }
        per_node[local[0]] += 1;
    }
    assert!(per_node.iter().all(|&n| n > 50), "{per_node:?}");
    // A forward runs on the owner and carries its answer back.
    let id = owned_by(&nodes, 1);
    let route = Route {
        kind: ActorKind::Group,
        id: id.clone(),
        name: "PostMessage".to_owned(),
    };
    let Owner::Remote(owner) = placements[0].owner(ActorKind::Group, &id) else {
        panic!("n1's key is remote on n0");
    };
    let answer = placements[0]
        .forward(&owner, route.clone(), Bytes::from_static(b"hello"))
        .await
        .expect("forwarded");
    assert_eq!(&answer[..], b"n1:PostMessage:hello");
    // Bodies NATS cannot carry are refused before they leave.
    let big = Bytes::from(vec![b'x'; 2 * 1024 * 1024]);
    let err = placements[0]
        .forward("n1", route, big)
        .await
        .expect_err("too large");
    assert!(matches!(err, Error::Internal(_)), "{err}");
    let status = nodes[0].cluster.status();
    assert_eq!(status.nodes.len(), 3);
    assert!(
        status.nats.out_msgs > 0 && status.nats.in_msgs > 0,
        "{status:?}"
    );
}

#[tokio::test]
async fn a_killed_node_answers_unavailable_at_once_then_its_keys_move() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let (mut nodes, _) = three_nodes(&nats, TIMING).await;
    let id = owned_by(&nodes, 2);
    let n0 = nodes[0].cluster.placement();
    let route = Route {
        kind: ActorKind::Group,
        id: id.clone(),
        name: "Get".to_owned(),
    };
    let mut changes = n0.changes();
    nodes[2].kill();
    // Until n0 drops n2 it still routes there. Once the server has noticed the closed
    // connection nobody listens, and NATS says so at once (not after the request timeout);
    // before, a request may still go to it and time out. Either is unavailable.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let err = n0
            .forward("n2", route.clone(), Bytes::new())
            .await
            .expect_err("n2 is gone");
        let Error::Unavailable(message) = &err else {
            panic!("{err}")
        };
        if message.contains("not listening") {
            break;
        }
        assert!(Instant::now() < deadline, "{err}");
    }
    eventually("n0 drops n2", || nodes[0].owner_ids() == ["n0", "n1"]).await;
    assert!(
        changes.has_changed().expect("sender alive"),
        "the version moved"
    );
    changes.borrow_and_update();
    let owner = n0.owner(ActorKind::Group, &id);
    assert_ne!(owner, Owner::Remote("n2".to_owned()));
    let n1 = nodes[1].cluster.placement();
    eventually("n1 drops n2", || nodes[1].owner_ids() == ["n0", "n1"]).await;
    let on_n1 = n1.owner(ActorKind::Group, &id);
    assert!(
        (owner == Owner::Local && on_n1 == Owner::Remote("n0".into()))
            || (owner == Owner::Remote("n1".into()) && on_n1 == Owner::Local),
        "n0 says {owner:?}, n1 says {on_n1:?}"
    );
}

#[tokio::test]
async fn a_node_that_leaves_is_dropped_at_once() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    // Dead-after far longer than the wait below: only the leave message can drop it.
    let slow = Timing {
        heartbeat: Duration::from_millis(100),
        dead_after: Duration::from_secs(60),
    };
    let (nodes, _) = three_nodes(&nats, slow).await;
    nodes[1].cluster.shutdown().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while nodes[0].owner_ids() != ["n0", "n2"] {
        assert!(Instant::now() < deadline, "the leave message was not heard");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn epochs_are_claimed_once_kept_and_dropped_when_the_actor_moves() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let (mut nodes, store) = three_nodes(&nats, TIMING).await;
    let mine = owned_by(&nodes, 0);
    let theirs = owned_by(&nodes, 1);
    let n0 = nodes[0].cluster.placement();
    // Concurrent first uses share one claim.
    let (a, b) = tokio::join!(
        n0.epoch(ActorKind::Group, &mine),
        n0.epoch(ActorKind::Group, &mine)
    );
    assert_eq!((a.expect("a"), b.expect("b")), (Some(1), Some(1)));
    assert_eq!(store.claims.load(Ordering::SeqCst), 1);
    assert_eq!(
        n0.epoch(ActorKind::Group, &mine).await.expect("cached"),
        Some(1)
    );
    assert_eq!(store.claims.load(Ordering::SeqCst), 1);
    // After a refused write: claimed again, one epoch up.
    n0.forget(ActorKind::Group, &mine);
    assert_eq!(
        n0.epoch(ActorKind::Group, &mine).await.expect("again"),
        Some(2)
    );
    // Never claimed for an actor another node owns: that would fence its owner.
    let err = n0
        .epoch(ActorKind::Group, &theirs)
        .await
        .expect_err("not owned here");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert_eq!(store.claims.load(Ordering::SeqCst), 2);
    // n1 dies: its key may come to n0; the claim made then is a new one.
    let n1 = nodes[1].cluster.placement();
    assert_eq!(
        n1.epoch(ActorKind::Group, &theirs).await.expect("n1"),
        Some(1)
    );
    nodes[1].kill();
    eventually("n0 drops n1", || nodes[0].owner_ids() == ["n0", "n2"]).await;
    if n0.owner(ActorKind::Group, &theirs) == Owner::Local {
        assert_eq!(
            n0.epoch(ActorKind::Group, &theirs).await.expect("n0"),
            Some(2)
        );
    }
    assert!(nodes[0].cluster.status().claims >= 1);
}

#[tokio::test]
async fn a_paused_node_comes_back_under_a_new_incarnation_and_owns_nothing_meanwhile() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let (nodes, store) = three_nodes(&nats, TIMING).await;
    let id = owned_by(&nodes, 1);
    let n1 = nodes[1].cluster.placement();
    assert_eq!(
        n1.epoch(ActorKind::Group, &id).await.expect("claimed"),
        Some(1)
    );
    let before = nodes[1].cluster.status();
    let mut changes = n1.changes();
    changes.borrow_and_update();
    let resumed = nodes[1].pause(TIMING.dead_after * 3);
    eventually("n0 and n2 drop the paused n1", || {
        nodes[0].owner_ids() == ["n0", "n2"] && nodes[2].owner_ids() == ["n0", "n2"]
    })
    .await;
    // The others serve its actors meanwhile (and claim them: its epoch is fenced).
    let n0 = nodes[0].cluster.placement();
    let now_owner = match n0.owner(ActorKind::Group, &id) {
        Owner::Local => 0,
        Owner::Remote(n) => {
            assert_eq!(n, "n2");
            2
        }
    };
    let takeover = nodes[now_owner].cluster.placement();
    assert_eq!(
        takeover
            .epoch(ActorKind::Group, &id)
            .await
            .expect("takeover"),
        Some(2)
    );
    let woke = resumed.await.expect("n1 resumed");
    // From the moment it runs again until it is a member again, never local.
    let mut saw_joining = false;
    loop {
        // Asked before the status: while the status (read after) still shows the node
        // joining, or in its old life, the answer was given then.
        let owner = n1.owner(ActorKind::Group, &id);
        let status = nodes[1].cluster.status();
        if status.incarnation != before.incarnation && status.phase == Phase::Member {
            break;
        }
        assert_ne!(
            owner,
            Owner::Local,
            "the paused node served an actor as local while the others may own it: {status:?}"
        );
        saw_joining |= status.phase == Phase::Joining;
        assert!(
            woke.elapsed() < Duration::from_secs(20),
            "n1 never rejoined: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(saw_joining);
    assert!(
        woke.elapsed() >= TIMING.rejoin(),
        "rejoined after {:?}, before dead-after + 2 heartbeats",
        woke.elapsed()
    );
    let after = nodes[1].cluster.status();
    assert!(after.incarnation > before.incarnation);
    assert!(after.view_version > before.view_version);
    assert!(changes.has_changed().expect("sender alive"));
    eventually("all three agree again", || {
        nodes.iter().all(|n| n.owner_ids() == ["n0", "n1", "n2"])
    })
    .await;
    // Its cache went with its old life: the actor is claimed afresh (one past the takeover).
    if n1.owner(ActorKind::Group, &id) == Owner::Local {
        assert_eq!(
            n1.epoch(ActorKind::Group, &id).await.expect("reclaimed"),
            Some(3)
        );
    }
    assert!(store.claims.load(Ordering::SeqCst) >= 2);
}

#[tokio::test]
async fn without_nats_a_node_is_not_ready_and_serves_nothing_locally() {
    let Some(mut nats) = NatsServer::start() else {
        return;
    };
    let store = Arc::new(Epochs::default());
    let node = Node::start(&settings(&nats, TIMING), "solo", &store);
    assert!(node.cluster.not_ready().is_some(), "joining at first");
    eventually("solo becomes a member", || {
        node.cluster.not_ready().is_none()
    })
    .await;
    let placement = node.cluster.placement();
    assert_eq!(placement.owner(ActorKind::Account, &key(1)), Owner::Local);
    nats.stop();
    eventually("the disconnection is seen", || {
        node.cluster
            .not_ready()
            .is_some_and(|why| why.contains("NATS is not connected"))
    })
    .await;
    let owner = placement.owner(ActorKind::Account, &key(1));
    assert_eq!(
        owner,
        Owner::Remote("solo".to_owned()),
        "the 'no view' answer"
    );
    let route = Route {
        kind: ActorKind::Account,
        id: key(1),
        name: "Get".to_owned(),
    };
    let err = placement
        .forward("solo", route, Bytes::new())
        .await
        .expect_err("no view");
    assert!(matches!(err, Error::Unavailable(_)), "{err}");
    nats.restart();
    eventually("ready again after reconnecting", || {
        node.cluster.not_ready().is_none()
    })
    .await;
    assert_eq!(placement.owner(ActorKind::Account, &key(1)), Owner::Local);
}
