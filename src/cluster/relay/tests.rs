//! The relay against a real nats-server: two relays on one server stand for two nodes.

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::{ConnectOptions, Event};
use chorus_actors::push::event::{EventType, group_frame};
use chorus_actors::push::{Fanout, Hub, Job, Outlet, Pushed, Relay, StoredEvent};
use chorus_testkit::NatsServer;
use tokio::sync::mpsc;

use super::{ClusterRelay, RelayStats};
use crate::cluster::interest::{GroupsOf, LINGER};

const PREFIX: &str = "chorus.test";
const WAIT: Duration = Duration::from_secs(10);

/// Messages into and out of the server so far.
fn messages(nats: &NatsServer) -> u64 {
    let v = nats.varz();
    v.in_msgs + v.out_msgs
}

/// Subscriptions the server holds now.
fn subscriptions(nats: &NatsServer) -> u64 {
    nats.varz().subscriptions
}

/// A device that records the `seq`s pushed to it and the times it was told to resume.
#[derive(Default)]
struct Device {
    id: u64,
    seqs: Mutex<Vec<u64>>,
    resumes: AtomicUsize,
}

impl Outlet for Device {
    fn id(&self) -> u64 {
        self.id
    }
    fn push(&self, event: &StoredEvent) -> Pushed {
        self.seqs.lock().expect("seqs").push(event.seq);
        Pushed::Queued
    }
    fn resume(&self) {
        self.resumes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Device {
    fn seqs(&self) -> Vec<u64> {
        self.seqs.lock().expect("seqs").clone()
    }
    fn resumes(&self) -> usize {
        self.resumes.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// One node: its relay, hub, and the one lane of its fan-out.
struct Node {
    relay: Arc<ClusterRelay>,
    hub: Arc<Hub>,
    lane: mpsc::Receiver<Job>,
    groups: Arc<Mutex<HashMap<String, Vec<String>>>>,
    _fanout: Arc<Fanout>,
}

impl Node {
    async fn start(nats: &NatsServer) -> Node {
        let client = ConnectOptions::new()
            .no_echo()
            .connect(nats.url())
            .await
            .expect("connect");
        let groups: Arc<Mutex<HashMap<String, Vec<String>>>> = Arc::default();
        let table = groups.clone();
        let groups_of: GroupsOf = Arc::new(move |account: &str| {
            let found = table
                .lock()
                .expect("groups")
                .get(account)
                .cloned()
                .unwrap_or_default();
            Box::pin(async move { Ok(found) })
        });
        let relay = ClusterRelay::start_with(client.clone(), PREFIX.into(), "test-node", groups_of);
        let hub = Arc::new(Hub::default());
        let fanout = Arc::new(Fanout::new(1 << 20));
        let (_, lane) = fanout.open_lane();
        relay.bind(hub.clone(), fanout.clone());
        Node {
            relay,
            hub,
            lane,
            groups,
            _fanout: fanout,
        }
    }

    fn member_of(&self, account: &str, groups: &[&str]) {
        self.groups.lock().expect("groups").insert(
            account.to_owned(),
            groups.iter().map(|g| g.to_string()).collect(),
        );
    }

    /// Waits for the next group job on the lane: its frame and member ids.
    async fn next_group_job(&mut self) -> (String, Vec<String>) {
        match tokio::time::timeout(WAIT, self.lane.recv()).await {
            Ok(Some(Job::Group { members, event, .. })) => (
                event.frame.to_string(),
                members
                    .iter()
                    .flat_map(|p| p.iter())
                    .map(|m| m.id.to_string())
                    .collect(),
            ),
            _ => panic!("a group job within {WAIT:?}"),
        }
    }

    /// No job arrives for a while.
    async fn lane_stays_empty(&mut self) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(self.lane.try_recv().is_err(), "no further job");
    }

    fn stats(&self) -> RelayStats {
        self.relay.stats()
    }
}

/// A nats-server and `N` nodes on it; `None` (the test is skipped) without a server.
async fn cluster<const N: usize>() -> Option<(NatsServer, [Node; N])> {
    let nats = NatsServer::start()?;
    let mut nodes = Vec::with_capacity(N);
    for _ in 0..N {
        nodes.push(Node::start(&nats).await);
    }
    Some((nats, nodes.try_into().ok()?))
}

/// A device with id `id`.
fn device(id: u64) -> Arc<Device> {
    Arc::new(Device {
        id,
        ..Device::default()
    })
}

/// Polls `check` until it holds or [`WAIT`] passes.
async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn event(group: &str, seq: u64) -> StoredEvent {
    group_frame(EventType::GROUP_MESSAGE, group, seq, r#"{"text":"hi"}"#)
}

fn accounts(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:04}")).collect()
}

/// Sends `events` events of `group` from `from` and answers the NATS messages they cost,
/// checking that `to` hands each to its lane once, with its `members` local members.
async fn group_round(
    nats: &NatsServer,
    from: &Node,
    to: &mut Node,
    group: &str,
    members: usize,
    events: u64,
) -> u64 {
    let before = messages(nats);
    for seq in 1..=events {
        from.relay.group_event(group, &event(group, seq));
    }
    for seq in 1..=events {
        let (frame, ids) = to.next_group_job().await;
        assert_eq!(frame, &*event(group, seq).frame, "in order, as published");
        assert_eq!(ids.len(), members, "the group's local members on the node");
    }
    to.lane_stays_empty().await;
    messages(nats) - before
}

#[tokio::test]
async fn a_group_event_crosses_once_whatever_the_group_size() {
    let Some((nats, [a, mut b])) = cluster().await else {
        return;
    };
    let small = accounts("s", 3);
    let large = accounts("l", 300);
    for account in &small {
        b.member_of(account, &["g3"]);
        b.relay.interest(account).await.expect("interest");
    }
    for account in &large {
        b.member_of(account, &["g300"]);
        b.relay.interest(account).await.expect("interest");
    }
    let events = 20;
    let small_cost = group_round(&nats, &a, &mut b, "g3", 3, events).await;
    let large_cost = group_round(&nats, &a, &mut b, "g300", 300, events).await;
    assert_eq!(
        small_cost, large_cost,
        "NATS messages per event do not depend on the group's size"
    );
    assert_eq!(small_cost, 2 * events, "one in and one out per event");
    assert_eq!(a.stats().group_events_published, 2 * events);
    assert_eq!(b.stats().inbound_group_events, 2 * events);
    assert_eq!(a.stats().shed, 0);
}

#[tokio::test]
async fn account_events_arrive_in_seq_order() {
    let Some((_nats, [a, b])) = cluster().await else {
        return;
    };
    let device = device(1);
    b.hub.attach("acct", device.clone());
    b.relay.interest("acct").await.expect("interest");
    let all: Vec<StoredEvent> = (1..=500)
        .map(|seq| StoredEvent {
            seq,
            frame: format!(r#"{{"type":"profile.updated","seq":{seq},"data":{{}}}}"#).into(),
        })
        .collect();
    for batch in all.chunks(7) {
        a.relay.account_events("acct", batch);
    }
    a.relay.account_events("someone-else", &all[..3]);
    until("500 account events", || async {
        device.seqs().len() >= 500
    })
    .await;
    assert_eq!(device.seqs(), (1..=500).collect::<Vec<_>>());
    assert_eq!(a.stats().account_events_published, 503);
    assert_eq!(b.stats().inbound_account_events, 500);
}

#[tokio::test]
async fn interest_is_counted_and_unsubscribed_after_the_delay() {
    let Some((nats, [b])) = cluster().await else {
        return;
    };
    b.member_of("x", &["g1", "g2"]);
    // The first interest also makes the client's one inbox subscription (for confirming).
    b.relay.interest("warm-up").await.expect("interest");
    let base = subscriptions(&nats);
    b.relay.interest("x").await.expect("interest");
    b.relay.interest("x").await.expect("second device");
    assert_eq!(subscriptions(&nats), base + 3, "a.x, g.g1, g.g2 once");
    assert_eq!(b.stats().subscribes, 1 + 3);

    b.relay.release("x");
    tokio::time::sleep(LINGER + Duration::from_millis(500)).await;
    assert_eq!(subscriptions(&nats), base + 3, "one device is left");

    b.relay.release("x");
    tokio::time::sleep(LINGER / 2).await;
    assert_eq!(subscriptions(&nats), base + 3, "kept during the delay");
    until("the subscriptions to go", || async {
        subscriptions(&nats) == base
    })
    .await;
    until("the readers to stop", || async {
        b.stats().subscriptions == 1
    })
    .await;

    // Back within the delay: the subscriptions stay, with no new SUB.
    b.relay.interest("x").await.expect("interest");
    b.relay.release("x");
    tokio::time::sleep(LINGER / 4).await;
    b.relay.interest("x").await.expect("back at once");
    tokio::time::sleep(LINGER + Duration::from_millis(500)).await;
    assert_eq!(subscriptions(&nats), base + 3);
    assert_eq!(
        b.stats().subscribes,
        1 + 3 + 3,
        "three SUBs per time the account came"
    );
    assert_eq!(b.stats().subscriptions, 1 + 3);
}

#[tokio::test]
async fn a_membership_control_message_adds_and_removes_a_group() {
    let Some((_nats, [a, mut b])) = cluster().await else {
        return;
    };
    b.relay.interest("x").await.expect("interest");
    let registry = b.relay.interest_registry().clone();

    a.relay.membership("x", "g", true);
    until("x to be g's local member on b", || async {
        registry.local_members("g").await == 1
    })
    .await;
    registry.confirm().await.expect("b's SUB registered");
    a.relay.group_event("g", &event("g", 1));
    let (_, ids) = b.next_group_job().await;
    assert_eq!(ids, vec!["x".to_owned()]);

    a.relay.membership("x", "g", false);
    until("x to leave g on b", || async {
        registry.local_members("g").await == 0
    })
    .await;
    registry.confirm().await.expect("b's UNSUB registered");
    a.relay.group_event("g", &event("g", 2));
    b.lane_stays_empty().await;
    assert_eq!(b.stats().inbound_control, 2);

    // An account offline on b: a control message for it changes nothing there.
    a.relay.membership("y", "h", true);
    until("the control message", || async {
        b.stats().inbound_control == 2 && a.stats().membership_published == 3
    })
    .await;
    assert_eq!(registry.local_members("h").await, 0);

    // The group's own node applies the change to its registry too (no echo from NATS).
    a.relay.interest("z").await.expect("interest");
    a.relay.membership("z", "k", true);
    let local = a.relay.interest_registry().clone();
    until("z to be k's local member on a", || async {
        local.local_members("k").await == 1
    })
    .await;
}

#[tokio::test]
async fn lost_messages_make_every_device_resume() {
    let Some((_nats, [b])) = cluster().await else {
        return;
    };
    let devices = [device(1), device(2)];
    b.hub.attach("x", devices[0].clone());
    b.hub.attach("y", devices[1].clone());
    b.relay.on_event(&Event::Connected);
    b.relay.on_event(&Event::Disconnected);
    assert!(devices.iter().all(|d| d.resumes() == 0), "not while down");
    b.relay.on_event(&Event::Connected);
    assert!(devices.iter().all(|d| d.resumes() == 1), "once back");
    b.relay.on_event(&Event::Connected);
    b.relay.on_event(&Event::SlowConsumer(7));
    assert!(devices.iter().all(|d| d.resumes() == 2));
    assert_eq!(b.stats().resumes, 2);
}

#[tokio::test]
async fn an_interest_its_caller_gave_up_on_is_released() {
    let Some((_nats, [b])) = cluster().await else {
        return;
    };
    b.member_of("x", &["g1"]);
    b.relay.interest("warm-up").await.expect("interest");
    let base = b.stats().subscriptions;
    drop(b.relay.interest("x"));
    until("the abandoned interest to subscribe", || async {
        b.stats().subscribes == base + 2
    })
    .await;
    until("its subscriptions to go", || async {
        b.stats().subscriptions == base
    })
    .await;
}
