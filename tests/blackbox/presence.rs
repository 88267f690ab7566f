//! Presence (issue 16 item 2, contract revision 2): `presence.changed` to friends and to the
//! members of the account's groups when its first device connects or its last one leaves,
//! debounced, never stored; `GET /v1/groups/{gid}/presence`; `online` in `GET /v1/friends`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::groups::*;
use crate::support::*;

/// Short enough for tests to see offline soon, long enough to tell a flap from a leave.
const DEBOUNCE_MS: &str = "300";

fn server() -> Server {
    Server::start_with(&["--presence-debounce-ms", DEBOUNCE_MS])
}

/// The next `presence.changed` on `ws` (any other frame in between fails the test).
async fn next_presence(ws: &mut Ws) -> Value {
    let v = next_frame(ws, EVENT_TIMEOUT).await;
    check_presence_shape(&v);
    v["data"].clone()
}

/// No `presence.changed` (nor anything else) on `ws` for `dur`.
async fn quiet(ws: &mut Ws, dur: Duration) {
    if let Ok(v) = tokio::time::timeout(dur, next_frame(ws, dur + Duration::from_secs(1))).await {
        panic!("expected silence, got {v}");
    }
}

async fn friend_entry(s: &Server, who: &Acct, friend: &Acct) -> Value {
    let list = get(s, "/v1/friends", who.tok()).await;
    list.expect(200)["items"]
        .as_array()
        .and_then(|items| items.iter().find(|f| f["account_id"] == friend.id.as_str()))
        .cloned()
        .unwrap_or_else(|| panic!("{} is no friend of {}", friend.id, who.id))
}

#[tokio::test]
async fn friends_hear_the_first_device_come_and_the_last_one_go() {
    let s = server();
    let (ann, bob) = (new_acct(&s, "Ann").await, new_acct(&s, "Bob").await);
    make_friends(&s, &ann, &bob).await;
    let (mut bob_ws, _) = ws_connect(&s, &bob).await;
    let entry = friend_entry(&s, &bob, &ann).await;
    assert_eq!(
        (&entry["online"], &entry["devices"]),
        (&json!(false), &json!(0))
    );

    let (mut phone, _) = ws_connect(&s, &ann).await;
    let seen = next_presence(&mut bob_ws).await;
    assert_eq!(
        seen,
        json!({"account_id": ann.id, "online": true, "devices": 1})
    );

    // A second device: still online, nobody is told again.
    let (laptop, _) = ws_connect(&s, &ann).await;
    quiet(&mut bob_ws, Duration::from_millis(800)).await;
    let entry = friend_entry(&s, &bob, &ann).await;
    assert_eq!(
        (&entry["online"], &entry["devices"]),
        (&json!(true), &json!(2))
    );

    // One of two leaves: still online.
    drop(laptop);
    quiet(&mut bob_ws, Duration::from_millis(800)).await;
    // The last one leaves: offline, once the debounce has passed.
    phone.close(None).await.expect("close");
    let seen = next_presence(&mut bob_ws).await;
    assert_eq!(
        seen,
        json!({"account_id": ann.id, "online": false, "devices": 0})
    );
    let entry = friend_entry(&s, &bob, &ann).await;
    assert_eq!(
        (&entry["online"], &entry["devices"]),
        (&json!(false), &json!(0))
    );
    // Friend lists carry presence; other lists do not.
    let requests = get(&s, "/v1/friends/requests", bob.tok()).await;
    assert!(!requests.text.contains("\"online\""), "{}", requests.text);
}

#[tokio::test]
async fn a_flapping_device_stays_quiet() {
    let s = Server::start_with(&["--presence-debounce-ms", "1500"]);
    let (ann, bob) = (new_acct(&s, "Ann").await, new_acct(&s, "Bob").await);
    make_friends(&s, &ann, &bob).await;
    let (mut bob_ws, _) = ws_connect(&s, &bob).await;
    let (ws, _) = ws_connect(&s, &ann).await;
    assert_eq!(next_presence(&mut bob_ws).await["online"], json!(true));
    let mut ws = Some(ws);
    for _ in 0..5 {
        drop(ws.take());
        tokio::time::sleep(Duration::from_millis(50)).await;
        ws = Some(ws_connect(&s, &ann).await.0);
    }
    // Five drops, each back within the debounce: never announced offline.
    quiet(&mut bob_ws, Duration::from_millis(2500)).await;
    assert_eq!(friend_entry(&s, &bob, &ann).await["online"], json!(true));
    drop(ws);
    assert_eq!(next_presence(&mut bob_ws).await["online"], json!(false));
}

#[tokio::test]
async fn presence_is_in_no_log() {
    let s = server();
    let (ann, bob) = (new_acct(&s, "Ann").await, new_acct(&s, "Bob").await);
    make_friends(&s, &ann, &bob).await;
    let (mut bob_ws, hello) = ws_connect(&s, &bob).await;
    let seq = hello_seq(&hello);
    let (ann_ws, _) = ws_connect(&s, &ann).await;
    next_presence(&mut bob_ws).await;
    drop(ann_ws);
    next_presence(&mut bob_ws).await;
    // Bob's log did not move, and a resume from the start replays no presence.
    let (mut again, hello) = ws_connect(&s, &bob).await;
    assert_eq!(hello_seq(&hello), seq, "presence takes no seq: {hello}");
    send_json(&mut again, &json!({"type": "resume", "since": 0})).await;
    for _ in 0..seq {
        let v = next_frame(&mut again, EVENT_TIMEOUT).await;
        assert_ne!(v["type"], "presence.changed", "replayed: {v}");
    }
    quiet(&mut again, Duration::from_millis(500)).await;
}

#[tokio::test]
async fn group_members_hear_it_and_can_list_who_is_online() {
    let s = server();
    let owner = new_acct(&s, "Owner").await;
    let (ann, bob) = (new_acct(&s, "Ann").await, new_acct(&s, "Bob").await);
    let gid = create_group(&s, &owner, "Climbers").await;
    add_member(&s, &owner, &gid, &ann).await;
    add_member(&s, &owner, &gid, &bob).await;
    let path = format!("/v1/groups/{gid}/presence");
    assert_eq!(
        get(&s, &path, owner.tok()).await.expect(200),
        &json!({"items": [], "next": null})
    );

    let (mut owner_ws, _) = ws_connect(&s, &owner).await;
    let (mut ann_ws, _) = ws_connect(&s, &ann).await;
    // Every member hears each member come, itself included (it is a member of the group).
    let mut seen = vec![
        next_presence(&mut owner_ws).await,
        next_presence(&mut owner_ws).await,
    ];
    seen.sort_by_key(|v| v["account_id"].to_string());
    let mut want = vec![
        json!({"account_id": owner.id, "online": true, "devices": 1}),
        json!({"account_id": ann.id, "online": true, "devices": 1}),
    ];
    want.sort_by_key(|v| v["account_id"].to_string());
    assert_eq!(seen, want);
    assert_eq!(
        next_presence(&mut ann_ws).await["account_id"],
        json!(ann.id)
    );

    let (_bob_ws, _) = ws_connect(&s, &bob).await;
    let (_bob_ws2, _) = ws_connect(&s, &bob).await;
    let page = get(&s, &path, ann.tok()).await;
    let mut online: Vec<(String, u64)> = page.expect(200)["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|m| (s_of(m), m["devices"].as_u64().expect("devices")))
        .collect();
    online.sort();
    let mut want = vec![
        (owner.id.clone(), 1),
        (ann.id.clone(), 1),
        (bob.id.clone(), 2),
    ];
    want.sort();
    assert_eq!(online, want);
    // Pages follow the list convention.
    let first = get(&s, &format!("{path}?limit=2"), ann.tok()).await;
    let first = first.expect(200).clone();
    assert_eq!(first["items"].as_array().map(Vec::len), Some(2));
    let next = first["next"].as_str().expect("a next cursor").to_owned();
    let rest = get(&s, &format!("{path}?limit=2&before={next}"), ann.tok()).await;
    assert_eq!(rest.expect(200)["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(rest.expect(200)["next"], Value::Null);
}

fn s_of(member: &Value) -> String {
    member["account_id"]
        .as_str()
        .expect("account_id")
        .to_owned()
}

#[tokio::test]
async fn group_presence_is_for_members_and_checks_its_input() {
    let s = server();
    let owner = new_acct(&s, "Owner").await;
    let stranger = new_acct(&s, "Stranger").await;
    let gid = create_group(&s, &owner, "Private").await;
    get(&s, &format!("/v1/groups/{gid}/presence"), stranger.tok())
        .await
        .expect_error(403, "forbidden");
    get(&s, &format!("/v1/groups/{gid}/presence"), None)
        .await
        .expect_error(401, "unauthorized");
    get(&s, "/v1/groups/no-such-group/presence", owner.tok())
        .await
        .expect_error(404, "not_found");
    for bad in ["limit=0", "limit=x", "before=nonsense"] {
        get(&s, &format!("/v1/groups/{gid}/presence?{bad}"), owner.tok())
            .await
            .expect_error(400, "invalid_input");
    }
    assert_healthy(&s).await;
}

#[tokio::test]
async fn groups_over_the_presence_limit_are_not_told() {
    let s = Server::start_with(&[
        "--presence-debounce-ms",
        DEBOUNCE_MS,
        "--presence-max-group",
        "2",
    ]);
    let owner = new_acct(&s, "Owner").await;
    let (ann, bob) = (new_acct(&s, "Ann").await, new_acct(&s, "Bob").await);
    let gid = create_group(&s, &owner, "Big").await;
    add_member(&s, &owner, &gid, &ann).await;
    let (mut owner_ws, _) = ws_connect(&s, &owner).await;
    next_presence(&mut owner_ws).await; // its own, in a group of two
    add_member(&s, &owner, &gid, &bob).await;
    let (_ann_ws, _) = ws_connect(&s, &ann).await;
    quiet(&mut owner_ws, Duration::from_millis(800)).await;
    // The list still answers.
    let page = get(&s, &format!("/v1/groups/{gid}/presence"), owner.tok()).await;
    assert_eq!(page.expect(200)["items"].as_array().map(Vec::len), Some(2));
}
