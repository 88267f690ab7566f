//! Durability: acknowledged writes survive SIGKILL, a graceful restart, and
//! actor passivation (--idle-timeout-secs); concurrent writes are all kept.

use std::time::Duration;

use crate::support::*;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "durable-secret-0xC0FFEE";

/// Whatever text frames a socket already received, until it ends (or 5 s pass), but
/// `presence.changed`.
async fn drain_frames(ws: &mut Ws) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                // Presence is ephemeral: it is in no log to compare with.
                if v["type"] != "presence.changed" {
                    out.push(v);
                }
            }
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) | Err(_) => break,
            Ok(Some(Ok(_))) => {}
        }
    }
    out
}

async fn replay_all(s: &Server, a: &Acct) -> (Value, Vec<Value>) {
    let (mut ws, hello) = ws_connect(s, a).await;
    let n = hello_seq(&hello) as usize;
    send_json(&mut ws, &json!({"type": "resume", "since": 0})).await;
    let evs = collect_events(&mut ws, n).await;
    expect_no_event(&mut ws, Duration::from_millis(300)).await;
    (hello, evs)
}

fn link_body(handle: &str) -> Value {
    json!({"platform": "webhook", "handle": handle,
           "config": {"url": "http://127.0.0.1:9/durable", "secret": SECRET}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let mut s = Server::start();
    let (a_id, a_token) = register(
        &s,
        "Durable A",
        Some("durable-a@example.com"),
        Some("+15550400001"),
    )
    .await;
    let a = Acct {
        id: a_id,
        token: a_token,
    };
    let b = new_acct_with(&s, "Durable B", Some("durable-b@example.com"), None).await;
    let session = login(&s, "durable-a@example.com", PASSWORD)
        .await
        .expect(200)["token"]
        .as_str()
        .unwrap()
        .to_string();
    let (mut wa, _) = ws_connect(&s, &a).await;
    let (mut wb, _) = ws_connect(&s, &b).await;

    let v1 = patch(
        &s,
        "/v1/me/profile",
        a.tok(),
        &json!({"city": "Bergen", "mood": "x"}),
    )
    .await
    .expect(200)["profile_version"]
        .clone();
    let link_id = post(&s, "/v1/me/platforms", a.tok(), &link_body("Durable-Hook"))
        .await
        .expect(201)["link_id"]
        .as_str()
        .unwrap()
        .to_string();
    post(&s, "/v1/friends/requests", a.tok(), &json!({"to": b.id}))
        .await
        .expect(201);
    post_empty(
        &s,
        &format!("/v1/friends/requests/{}/accept", a.id),
        b.tok(),
    )
    .await
    .expect(200);
    let r = patch(
        &s,
        "/v1/me/profile",
        a.tok(),
        &json!({"mood": null, "song": "fa"}),
    )
    .await;
    let v2 = r.expect(200)["profile_version"].clone();
    // SIGKILL right after the last acknowledged write
    s.kill();

    let live_a = drain_frames(&mut wa).await;
    let live_b = drain_frames(&mut wb).await;
    drop(wa);
    drop(wb);

    s.restart();
    assert_healthy(&s).await;

    // login with the same password, by email, phone and id
    for l in ["durable-a@example.com", "+15550400001", a.id.as_str()] {
        let r = login(&s, l, PASSWORD).await;
        assert_eq!(r.expect(200)["account_id"], json!(a.id), "login {l}");
    }
    login(&s, &b.id, PASSWORD).await.expect(200);

    // both old tokens still work; profile, version and links are intact
    for t in [a.token.as_str(), session.as_str()] {
        let r = get(&s, "/v1/me", Some(t)).await;
        assert!(!r.text.contains(SECRET), "secret leaked: {}", r.text);
        let m = r.expect(200);
        assert_eq!(m["account_id"], json!(a.id));
        assert_eq!(
            m["profile"],
            json!({"display_name": "Durable A", "email": "durable-a@example.com",
                   "phone": "+15550400001", "city": "Bergen", "song": "fa"})
        );
        assert_eq!(m["profile_version"], v2);
        assert_eq!(m["platforms"].as_array().map(|p| p.len()), Some(1), "{m}");
        assert_eq!(m["platforms"][0]["link_id"], json!(link_id));
    }
    let r = get(&s, "/v1/me/platforms", a.tok()).await;
    assert_eq!(
        r.expect(200)["items"],
        json!([{"link_id": link_id, "platform": "webhook", "handle": "Durable-Hook",
                 "status": "active"}])
    );
    // uniqueness constraints are still enforced
    post(&s, "/v1/me/platforms", b.tok(), &link_body("durable-hook"))
        .await
        .expect_error(409, "handle_taken");
    post(
        &s,
        "/v1/accounts",
        None,
        &json!({"password": PASSWORD, "profile": {"display_name": "Copy", "email": "durable-a@example.com"}}),
    )
    .await
    .expect_error(409, "email_taken");

    // friendship
    assert_eq!(friend_ids(&s, &a).await, vec![b.id.clone()]);
    assert_eq!(friend_ids(&s, &b).await, vec![a.id.clone()]);
    post(&s, "/v1/friends/requests", b.tok(), &json!({"to": a.id}))
        .await
        .expect_error(409, "already_friends");

    // events: resume since 0 replays them all
    let (ha, ev_a) = replay_all(&s, &a).await;
    assert_eq!(hello_seq(&ha), 3, "A's events: {ev_a:?}");
    assert_eq!(
        ev_a,
        vec![
            json!({"type": "profile.updated", "seq": 1,
                   "data": {"account_id": a.id, "profile_version": v1,
                            "changes": {"city": "Bergen", "mood": "x"}}}),
            json!({"type": "friend.added", "seq": 2, "data": {"account_id": b.id}}),
            json!({"type": "profile.updated", "seq": 3,
                   "data": {"account_id": a.id, "profile_version": v2,
                            "changes": {"mood": null, "song": "fa"}}}),
        ]
    );
    let (hb, ev_b) = replay_all(&s, &b).await;
    assert_eq!(hello_seq(&hb), 3, "B's events: {ev_b:?}");
    assert_eq!(ev_b[0]["type"], "friend.requested");
    assert_eq!(ev_b[0]["seq"], json!(1));
    assert_eq!(ev_b[0]["data"]["account_id"], json!(a.id));
    assert_eq!(ev_b[0]["data"]["profile"]["display_name"], "Durable A");
    assert_eq!(
        ev_b[1],
        json!({"type": "friend.added", "seq": 2, "data": {"account_id": a.id}})
    );
    assert_eq!(
        ev_b[2],
        json!({"type": "profile.updated", "seq": 3,
               "data": {"account_id": a.id, "profile_version": v2,
                        "changes": {"mood": null, "song": "fa"}}})
    );
    // whatever was pushed live before the crash is identical to the replay
    for (live, replay) in [(&live_a, &ev_a), (&live_b, &ev_b)] {
        for ev in live.iter().filter(|e| e["type"] != "hello") {
            let seq = ev["seq"].as_u64().unwrap() as usize;
            assert!(
                seq >= 1 && seq <= replay.len(),
                "live event {ev} missing from replay"
            );
            assert_eq!(ev, &replay[seq - 1], "live and replayed event differ");
        }
    }

    // numbering continues after the restart
    let (mut wa, _) = ws_connect(&s, &a).await;
    patch(&s, "/v1/me/profile", b.tok(), &json!({"after": "restart"}))
        .await
        .expect(200);
    let ev = expect_event(&mut wa, "profile.updated").await;
    assert_eq!(ev["seq"], json!(4));
    assert_eq!(ev["data"]["account_id"], json!(b.id));
}

#[tokio::test]
async fn state_survives_graceful_restart() {
    let mut s = Server::start();
    let a = new_acct_with(&s, "Graceful", Some("graceful@example.com"), None).await;
    let b = new_acct(&s, "Pending").await;
    post(&s, "/v1/friends/requests", b.tok(), &json!({"to": a.id}))
        .await
        .expect(201);
    let v = patch(&s, "/v1/me/profile", a.tok(), &json!({"bio": "hi"}))
        .await
        .expect(200)["profile_version"]
        .clone();

    let status = s.terminate();
    assert!(status.success(), "SIGTERM exit status: {status:?}");
    s.restart();

    let m = me(&s, &a).await;
    assert_eq!(
        m["profile"],
        json!({"display_name": "Graceful", "email": "graceful@example.com", "bio": "hi"})
    );
    assert_eq!(m["profile_version"], v);
    let inc = get(&s, "/v1/friends/requests", a.tok()).await;
    assert_eq!(item_ids(inc.expect(200)), vec![b.id.clone()]);
    post_empty(
        &s,
        &format!("/v1/friends/requests/{}/accept", b.id),
        a.tok(),
    )
    .await
    .expect(200);
    assert_eq!(friend_ids(&s, &b).await, vec![a.id.clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_passivation() {
    let s = Server::start_with(&["--idle-timeout-secs", "1"]);
    let a = new_acct_with(
        &s,
        "Sleeper",
        Some("sleeper@example.com"),
        Some("+15550400002"),
    )
    .await;
    let b = new_acct(&s, "Waker").await;
    let c = new_acct(&s, "Asker").await;
    make_friends(&s, &b, &a).await; // A: friend.requested(1), friend.added(2)
    let v = patch(&s, "/v1/me/profile", a.tok(), &json!({"dream": "sheep"}))
        .await
        .expect(200)["profile_version"]
        .clone(); // A: profile.updated(3)
    let link_id = post(&s, "/v1/me/platforms", a.tok(), &link_body("Sleeper-Hook"))
        .await
        .expect(201)["link_id"]
        .as_str()
        .unwrap()
        .to_string();
    post(&s, "/v1/friends/requests", c.tok(), &json!({"to": a.id}))
        .await
        .expect(201); // A: 4

    tokio::time::sleep(Duration::from_secs(3)).await;

    let m = me(&s, &a).await;
    assert_eq!(
        m["profile"],
        json!({"display_name": "Sleeper", "email": "sleeper@example.com",
               "phone": "+15550400002", "dream": "sheep"})
    );
    assert_eq!(m["profile_version"], v);
    let r = get(&s, "/v1/me/platforms", a.tok()).await;
    assert_eq!(
        r.expect(200)["items"],
        json!([{"link_id": link_id, "platform": "webhook", "handle": "Sleeper-Hook",
                 "status": "active"}])
    );
    assert_eq!(friend_ids(&s, &a).await, vec![b.id.clone()]);
    assert_eq!(friend_ids(&s, &b).await, vec![a.id.clone()]);
    let inc = get(&s, "/v1/friends/requests", a.tok()).await;
    assert_eq!(item_ids(inc.expect(200)), vec![c.id.clone()]);
    let r = login(&s, "sleeper@example.com", PASSWORD).await;
    assert_eq!(r.expect(200)["account_id"], json!(a.id));
    // constraints still hold
    post(&s, "/v1/friends/requests", b.tok(), &json!({"to": a.id}))
        .await
        .expect_error(409, "already_friends");
    post(&s, "/v1/friends/requests", c.tok(), &json!({"to": a.id}))
        .await
        .expect_error(409, "already_requested");
    post(&s, "/v1/me/platforms", b.tok(), &link_body("sleeper-hook"))
        .await
        .expect_error(409, "handle_taken");

    let (h, evs) = replay_all(&s, &a).await;
    assert_eq!(hello_seq(&h), 4);
    let types: Vec<&str> = evs.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        vec![
            "friend.requested",
            "friend.added",
            "profile.updated",
            "friend.requested"
        ]
    );
    let seqs: Vec<u64> = evs.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4]);

    // idle again, then a new event continues the numbering
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (mut wa, h) = ws_connect(&s, &a).await;
    assert_eq!(hello_seq(&h), 4);
    let vb = patch(&s, "/v1/me/profile", b.tok(), &json!({"alarm": "7am"}))
        .await
        .expect(200)["profile_version"]
        .clone();
    let ev = expect_event(&mut wa, "profile.updated").await;
    assert_eq!(
        ev,
        json!({"type": "profile.updated", "seq": 5,
               "data": {"account_id": b.id, "profile_version": vb, "changes": {"alarm": "7am"}}})
    );
    drop(wa);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_h, evs) = replay_all(&s, &a).await;
    assert_eq!(evs.len(), 5);
    assert_eq!(evs[4], ev);
}

/// Many concurrent writes: every one is acknowledged, produces exactly one event
/// with gap-free seqs, and survives a SIGKILL.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_are_all_kept() {
    const N: usize = 20;
    let mut s = Server::start();
    let a = new_acct(&s, "Busy").await;
    let f = new_acct(&s, "Watcher").await;
    make_friends(&s, &a, &f).await;
    let (mut wf, hf) = ws_connect(&s, &f).await;
    let start = hello_seq(&hf);

    let mut tasks = Vec::new();
    for i in 0..N {
        let url = s.url("/v1/me/profile");
        let token = a.token.clone();
        tasks.push(tokio::spawn(async move {
            let r = client()
                .patch(url)
                .bearer_auth(token)
                .json(&json!({format!("k{i}"): format!("v{i}")}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
            let body: Value = r.json().await.unwrap();
            body["profile_version"].as_u64().unwrap()
        }));
    }
    // concurrent friend requests to A from other accounts
    let mut senders = Vec::new();
    for i in 0..5 {
        senders.push(new_acct(&s, &format!("S{i}")).await);
    }
    let mut req_tasks = Vec::new();
    for snd in &senders {
        let url = s.url("/v1/friends/requests");
        let token = snd.token.clone();
        let to = a.id.clone();
        req_tasks.push(tokio::spawn(async move {
            let r = client()
                .post(url)
                .bearer_auth(token)
                .json(&json!({"to": to}))
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        }));
    }
    let mut versions = Vec::new();
    for t in tasks {
        versions.push(t.await.unwrap());
    }
    for t in req_tasks {
        assert_eq!(t.await.unwrap(), 201);
    }
    let mut sorted = versions.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        N,
        "profile versions must be distinct: {versions:?}"
    );

    let evs = collect_events(&mut wf, N).await;
    let seqs: Vec<u64> = evs.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (start + 1..=start + N as u64).collect::<Vec<_>>());
    let mut ev_versions: Vec<u64> = evs
        .iter()
        .map(|e| e["data"]["profile_version"].as_u64().unwrap())
        .collect();
    ev_versions.sort();
    assert_eq!(ev_versions, sorted);

    s.kill();
    drop(wf);
    s.restart();
    let m = me(&s, &a).await;
    let profile = m["profile"].as_object().unwrap();
    for i in 0..N {
        assert_eq!(
            profile.get(&format!("k{i}")),
            Some(&json!(format!("v{i}"))),
            "k{i} lost"
        );
    }
    assert_eq!(m["profile_version"].as_u64(), sorted.last().copied());
    let inc = get(&s, "/v1/friends/requests", a.tok()).await;
    let mut got = item_ids(inc.expect(200));
    got.sort();
    let mut want: Vec<String> = senders.iter().map(|x| x.id.clone()).collect();
    want.sort();
    assert_eq!(got, want);
}

/// Deletions and the very first write of an account are acknowledged writes too.
#[tokio::test]
async fn deletions_and_fresh_accounts_survive_sigkill() {
    let mut s = Server::start();
    let a = new_acct_with(
        &s,
        "Deleter",
        Some("deleter@example.com"),
        Some("+15550400003"),
    )
    .await;
    let b = new_acct(&s, "Ex").await;
    make_friends(&s, &a, &b).await;
    let link_id = post(&s, "/v1/me/platforms", a.tok(), &link_body("Gone-Hook"))
        .await
        .expect(201)["link_id"]
        .as_str()
        .unwrap()
        .to_string();
    delete(&s, &format!("/v1/me/platforms/{link_id}"), a.tok())
        .await
        .expect(204);
    delete(&s, &format!("/v1/friends/{}", b.id), a.tok())
        .await
        .expect(204);
    let v = patch(&s, "/v1/me/profile", a.tok(), &json!({"phone": null}))
        .await
        .expect(200)["profile_version"]
        .clone();
    // a brand-new account is the very last acknowledged write
    let (c_id, c_token) = register(&s, "Newborn", Some("newborn@example.com"), None).await;
    s.kill();
    s.restart();

    let r = login(&s, "newborn@example.com", PASSWORD).await;
    assert_eq!(r.expect(200)["account_id"], json!(c_id));
    let r = get(&s, "/v1/me", Some(&c_token)).await;
    assert_eq!(
        r.expect(200)["profile"],
        json!({"display_name": "Newborn", "email": "newborn@example.com"})
    );

    let m = me(&s, &a).await;
    assert_eq!(
        m["profile"],
        json!({"display_name": "Deleter", "email": "deleter@example.com"})
    );
    assert_eq!(m["profile_version"], v);
    assert_eq!(m["platforms"], json!([]));
    let r = get(&s, "/v1/me/platforms", a.tok()).await;
    assert_eq!(r.expect(200)["items"], json!([]));
    assert_eq!(friend_ids(&s, &a).await, Vec::<String>::new());
    assert_eq!(friend_ids(&s, &b).await, Vec::<String>::new());
    login(&s, "+15550400003", PASSWORD)
        .await
        .expect_error(401, "invalid_credentials");
    // the freed handle and phone can be taken by someone else
    post(&s, "/v1/me/platforms", b.tok(), &link_body("gone-hook"))
        .await
        .expect(201);
    register(&s, "Phone heir", None, Some("+15550400003")).await;
    // and friend.removed is in both event logs
    let (_, evs) = replay_all(&s, &b).await;
    let types: Vec<&str> = evs.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        vec!["friend.requested", "friend.added", "friend.removed"]
    );
}
