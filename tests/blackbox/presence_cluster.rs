//! Presence across nodes (issue 16 item 2): an account's devices on any node count, each
//! change is announced once whichever node owns the account, the lists answer the same on
//! every node, and a node that dies takes its devices with it. CQL store and nats-server
//! only (`support::cluster`); skipped otherwise.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::cluster::TestCluster;
use crate::support::groups::*;
use crate::support::*;

async fn next_presence(ws: &mut Ws) -> Value {
    let v = next_frame(ws, Duration::from_secs(10)).await;
    check_presence_shape(&v);
    v["data"].clone()
}

/// `who`'s entry in `viewer`'s friend list, as `node` answers it.
async fn friend_state(node: &Server, viewer: &Acct, who: &Acct) -> (Value, Value) {
    let list = get(node, "/v1/friends", viewer.tok()).await;
    let items = list.expect(200)["items"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let entry = items
        .into_iter()
        .find(|f| f["account_id"] == who.id.as_str())
        .expect("a friend");
    (entry["online"].clone(), entry["devices"].clone())
}

/// Waits until every node's friend list shows `who` with `devices` devices.
async fn until_every_node_shows(
    cluster: &TestCluster,
    n: usize,
    viewer: &Acct,
    who: &Acct,
    devices: u64,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    for i in 0..n {
        loop {
            let (online, count) = friend_state(cluster.node(i), viewer, who).await;
            if count == json!(devices) && online == json!(devices > 0) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {i} shows {online}/{count}, not {devices}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn presence_counts_devices_on_every_node_and_is_told_once() {
    let Some(mut cluster) =
        TestCluster::start_with_args(3, &["--presence-debounce-ms", "300"]).await
    else {
        return;
    };
    let (n0, n1, n2) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let ann = new_acct(n0, "Ann").await;
    let bob = new_acct(n1, "Bob").await;
    make_friends(n2, &ann, &bob).await;
    let gid = create_group(n0, &bob, "Rope team").await;
    add_member(n1, &bob, &gid, &ann).await;

    // Bob listens on node 0, then on node 2 too. His own coming reached his group, and so
    // his first device: read past it. His second device changes nothing anyone is told.
    let (mut bob_a, _) = ws_connect(n0, &bob).await;
    let own = next_presence(&mut bob_a).await;
    assert_eq!(
        own,
        json!({"account_id": bob.id, "online": true, "devices": 1})
    );
    let (mut bob_b, _) = ws_connect(n2, &bob).await;

    // Ann's phone on node 1: each of Bob's devices hears it twice at most (as a friend and
    // as a fellow member), as online with one device.
    let (phone, _) = ws_connect(n1, &ann).await;
    for ws in [&mut bob_a, &mut bob_b] {
        let seen = next_presence(ws).await;
        assert_eq!(
            seen,
            json!({"account_id": ann.id, "online": true, "devices": 1})
        );
    }
    until_every_node_shows(&cluster, 3, &bob, &ann, 1).await;

    // Her laptop on node 2: two devices on two nodes, nobody told again.
    let (laptop, _) = ws_connect(n2, &ann).await;
    until_every_node_shows(&cluster, 3, &bob, &ann, 2).await;
    let listed = get(n0, &format!("/v1/groups/{gid}/presence"), bob.tok()).await;
    let listed = listed.expect(200)["items"].clone();
    assert!(
        listed.as_array().is_some_and(|m| m
            .iter()
            .any(|m| m == &json!({"account_id": ann.id, "devices": 2}))),
        "{listed}"
    );

    // The phone leaves: one device left, still online.
    drop(phone);
    until_every_node_shows(&cluster, 3, &bob, &ann, 1).await;
    // Node 2 dies with the laptop still connected: the other nodes forget its devices, so
    // Ann is offline everywhere, and Bob's device on node 0 is told (by whichever node
    // owns Ann now).
    cluster.kill(2);
    drop((laptop, bob_b));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let seen = next_presence(&mut bob_a).await;
        if seen["account_id"] == json!(ann.id) && seen["online"] == json!(false) {
            assert_eq!(seen["devices"], json!(0));
            break;
        }
        assert!(Instant::now() < deadline, "Ann never announced offline");
    }
    until_every_node_shows(&cluster, 2, &bob, &ann, 0).await;
}
