//! WebSocket: auth, hello, ping/pong, error frames, seq numbering, several devices,
//! resume, size limit (1009), invalid UTF-8 (1007), slow readers (1013), SIGTERM (1001).

use std::time::Duration;

use crate::support::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::{self, Message};

async fn connect_status(req: tungstenite::handshake::client::Request) -> u16 {
    match tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(req),
    )
    .await
    .expect("ws connect timed out")
    {
        Ok(_) => panic!("WebSocket upgrade succeeded but should have been refused"),
        Err(tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("expected an HTTP error response, got {e}"),
    }
}

#[tokio::test]
async fn hello_by_header_and_by_query_token() {
    let s = Server::start();
    let a = new_acct(&s, "Hello").await;
    let (mut w1, h1) = ws_connect(&s, &a).await;
    assert_eq!(
        h1,
        json!({"type": "hello", "account_id": a.id, "seq": 0, "groups": {}})
    );
    let (mut w2, h2) = ws_connect_query(&s, &a).await;
    assert_eq!(
        h2,
        json!({"type": "hello", "account_id": a.id, "seq": 0, "groups": {}})
    );
    ping_pong(&mut w1).await;
    ping_pong(&mut w2).await;
    // a token from a later login works too
    let r = login(&s, &a.id, PASSWORD).await;
    let t2 = r.expect(200)["token"].as_str().unwrap().to_string();
    let a2 = Acct {
        id: a.id.clone(),
        token: t2,
    };
    let (_w3, h3) = ws_connect(&s, &a2).await;
    assert_eq!(hello_seq(&h3), 0);
}

#[tokio::test]
async fn bad_token_is_refused_before_upgrade() {
    let s = Server::start();
    let a = new_acct(&s, "Real").await;

    let req = s.ws_url().into_client_request().unwrap();
    assert_eq!(connect_status(req).await, 401, "no token");

    let mut req = s.ws_url().into_client_request().unwrap();
    req.headers_mut().insert(
        "Authorization",
        HeaderValue::from_static("Bearer not-a-token"),
    );
    assert_eq!(connect_status(req).await, 401, "bad header token");

    let req = format!("{}?token=not-a-token", s.ws_url())
        .into_client_request()
        .unwrap();
    assert_eq!(connect_status(req).await, 401, "bad query token");

    // plain HTTP GET without upgrade and without token: 401 with the error shape
    let r = get(&s, "/v1/ws", None).await;
    r.expect_error(401, "unauthorized");

    // the real token still connects
    let (_ws, _) = ws_connect(&s, &a).await;
    assert_healthy(&s).await;
}

#[tokio::test]
async fn an_upgrade_anywhere_but_v1_ws_is_not_found() {
    let s = Server::start();
    let a = new_acct(&s, "Lost").await;
    for path in ["/v1/wss", "/", "/v1/ws/extra"] {
        let url = format!("ws://{}{path}?token={}", s.addr, a.token);
        assert_eq!(
            connect_status(url.into_client_request().unwrap()).await,
            404,
            "{path}"
        );
    }
    // the real path still upgrades, and plain HTTP is served as before
    let (_ws, _) = ws_connect(&s, &a).await;
    assert_healthy(&s).await;
}

#[tokio::test]
async fn ping_and_error_frames_keep_the_connection() {
    let s = Server::start();
    let a = new_acct(&s, "Pinger").await;
    let (mut ws, _) = ws_connect(&s, &a).await;

    ping_pong(&mut ws).await;

    for bad in ["this is not json", "{\"type\":", "[1,2,3", ""] {
        ws.send(Message::text(bad)).await.unwrap();
        let v = next_event(&mut ws, EVENT_TIMEOUT).await;
        assert_eq!(v["type"], "error", "frame {bad:?} -> {v}");
        assert_eq!(v["error"]["code"], "bad_frame", "frame {bad:?} -> {v}");
        assert!(v["error"]["message"].is_string(), "{v}");
        ping_pong(&mut ws).await;
    }

    send_json(&mut ws, &json!({"type": "dance"})).await;
    let v = next_event(&mut ws, EVENT_TIMEOUT).await;
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["code"], "unknown_type", "{v}");
    assert!(v["error"]["message"].is_string(), "{v}");
    ping_pong(&mut ws).await;

    // events still arrive after the errors
    let b = new_acct(&s, "Requester").await;
    post(&s, "/v1/friends/requests", b.tok(), &json!({"to": a.id}))
        .await
        .expect(201);
    let ev = expect_event(&mut ws, "friend.requested").await;
    assert_eq!(ev["seq"], json!(1));
    assert_eq!(ev["data"]["account_id"], json!(b.id));
}

/// Events for one account: friend.requested, friend.added, profile.updated (friend),
/// profile.updated (self), friend.removed -> seq 1..5 exactly.
#[tokio::test]
async fn seq_rises_by_one_per_event() {
    let s = Server::start();
    let a = new_acct(&s, "Counter").await;
    let b = new_acct(&s, "Peer").await;
    let (mut ws, hello) = ws_connect(&s, &a).await;
    assert_eq!(hello_seq(&hello), 0);

    post(&s, "/v1/friends/requests", b.tok(), &json!({"to": a.id}))
        .await
        .expect(201);
    let e1 = expect_event(&mut ws, "friend.requested").await;
    post_empty(
        &s,
        &format!("/v1/friends/requests/{}/accept", b.id),
        a.tok(),
    )
    .await
    .expect(200);
    let e2 = expect_event(&mut ws, "friend.added").await;
    let vb = patch(&s, "/v1/me/profile", b.tok(), &json!({"song": "la"}))
        .await
        .expect(200)["profile_version"]
        .clone();
    let e3 = expect_event(&mut ws, "profile.updated").await;
    let va = patch(&s, "/v1/me/profile", a.tok(), &json!({"song": "do"}))
        .await
        .expect(200)["profile_version"]
        .clone();
    let e4 = expect_event(&mut ws, "profile.updated").await;
    delete(&s, &format!("/v1/friends/{}", a.id), b.tok())
        .await
        .expect(204);
    let e5 = expect_event(&mut ws, "friend.removed").await;

    let seqs: Vec<u64> = [&e1, &e2, &e3, &e4, &e5]
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    assert_eq!(e1["data"]["account_id"], json!(b.id));
    assert_eq!(e2["data"], json!({"account_id": b.id}));
    assert_eq!(
        e3["data"],
        json!({"account_id": b.id, "profile_version": vb, "changes": {"song": "la"}})
    );
    assert_eq!(
        e4["data"],
        json!({"account_id": a.id, "profile_version": va, "changes": {"song": "do"}})
    );
    assert_eq!(e5["data"], json!({"account_id": b.id}));

    // a new connection reports the latest seq
    let (_w2, h2) = ws_connect(&s, &a).await;
    assert_eq!(hello_seq(&h2), 5);
}

#[tokio::test]
async fn every_device_receives_the_event() {
    let s = Server::start();
    let a = new_acct(&s, "Multi").await;
    let b = new_acct(&s, "Sender").await;
    let (mut d1, _) = ws_connect(&s, &a).await;
    let (mut d2, _) = ws_connect_query(&s, &a).await;
    let (mut d3, _) = ws_connect(&s, &a).await;

    post(&s, "/v1/friends/requests", b.tok(), &json!({"to": a.id}))
        .await
        .expect(201);
    let e1 = expect_event(&mut d1, "friend.requested").await;
    let e2 = expect_event(&mut d2, "friend.requested").await;
    let e3 = expect_event(&mut d3, "friend.requested").await;
    assert_eq!(e1, e2);
    assert_eq!(e1, e3);
    assert_eq!(e1["seq"], json!(1));

    // closing one device does not affect the others
    d3.close(None).await.ok();
    drop(d3);
    post_empty(
        &s,
        &format!("/v1/friends/requests/{}/accept", b.id),
        a.tok(),
    )
    .await
    .expect(200);
    let e1 = expect_event(&mut d1, "friend.added").await;
    let e2 = expect_event(&mut d2, "friend.added").await;
    assert_eq!(e1, e2);
    assert_eq!(e1["seq"], json!(2));
    assert_eq!(e1["data"], json!({"account_id": b.id}));
}

#[tokio::test]
async fn offline_device_catches_up_with_resume() {
    let s = Server::start();
    let a = new_acct(&s, "Traveller").await;
    let b = new_acct(&s, "Friend").await;
    make_friends(&s, &b, &a).await; // a: friend.requested(1), friend.added(2)

    let (mut ws, hello) = ws_connect(&s, &a).await;
    assert_eq!(hello_seq(&hello), 2);
    patch(&s, "/v1/me/profile", b.tok(), &json!({"k": "1"}))
        .await
        .expect(200);
    let seen = expect_event(&mut ws, "profile.updated").await;
    assert_eq!(seen["seq"], json!(3));
    ws.close(None).await.ok();
    drop(ws);

    // while offline: three events
    let v4 = patch(&s, "/v1/me/profile", b.tok(), &json!({"k": "2"}))
        .await
        .expect(200)["profile_version"]
        .clone();
    let v5 = patch(&s, "/v1/me/profile", a.tok(), &json!({"mine": "x"}))
        .await
        .expect(200)["profile_version"]
        .clone();
    delete(&s, &format!("/v1/friends/{}", a.id), b.tok())
        .await
        .expect(204);

    let (mut ws, hello) = ws_connect(&s, &a).await;
    assert_eq!(hello_seq(&hello), 6);
    // without resume nothing old is pushed
    expect_no_event(&mut ws, Duration::from_millis(300)).await;

    send_json(&mut ws, &json!({"type": "resume", "since": 3})).await;
    let missed = collect_events(&mut ws, 3).await;
    assert_eq!(
        missed,
        vec![
            json!({"type": "profile.updated", "seq": 4,
                   "data": {"account_id": b.id, "profile_version": v4, "changes": {"k": "2"}}}),
            json!({"type": "profile.updated", "seq": 5,
                   "data": {"account_id": a.id, "profile_version": v5, "changes": {"mine": "x"}}}),
            json!({"type": "friend.removed", "seq": 6, "data": {"account_id": b.id}}),
        ]
    );
    expect_no_event(&mut ws, Duration::from_millis(300)).await;

    // then live
    post(&s, "/v1/friends/requests", b.tok(), &json!({"to": a.id}))
        .await
        .expect(201);
    let live = expect_event(&mut ws, "friend.requested").await;
    assert_eq!(live["seq"], json!(7));
    assert_eq!(live["data"]["account_id"], json!(b.id));

    // resume since 0 on another device replays everything in order, identical to the live frames
    let (mut ws2, h2) = ws_connect(&s, &a).await;
    assert_eq!(hello_seq(&h2), 7);
    send_json(&mut ws2, &json!({"type": "resume", "since": 0})).await;
    let all = collect_events(&mut ws2, 7).await;
    let seqs: Vec<u64> = all.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6, 7]);
    let types: Vec<&str> = all.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        vec![
            "friend.requested",
            "friend.added",
            "profile.updated",
            "profile.updated",
            "profile.updated",
            "friend.removed",
            "friend.requested"
        ]
    );
    assert_eq!(all[2], seen);
    assert_eq!(&all[3..6], &missed[..]);
    assert_eq!(all[6], live);
    expect_no_event(&mut ws2, Duration::from_millis(300)).await;

    // resume since the latest seq replays nothing
    send_json(&mut ws, &json!({"type": "resume", "since": 7})).await;
    expect_no_event(&mut ws, Duration::from_millis(300)).await;
    ping_pong(&mut ws).await;
}

/// A resume sent while events keep arriving: after the replay starts, every seq
/// from 1 to the last one arrives exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resume_during_live_traffic_has_no_gaps_or_duplicates() {
    const N: u64 = 40;
    let s = Server::start();
    let a = new_acct(&s, "Reader").await;
    let b = new_acct(&s, "Chatty").await;
    make_friends(&s, &b, &a).await; // a: 1, 2
    for i in 0..5 {
        patch(
            &s,
            "/v1/me/profile",
            b.tok(),
            &json!({"n": format!("pre{i}")}),
        )
        .await
        .expect(200);
    } // a: 3..=7
    let (mut ws, hello) = ws_connect(&s, &a).await;
    let base = hello_seq(&hello);
    assert_eq!(base, 7);

    let url = s.url("/v1/me/profile");
    let token = b.token.clone();
    let writer = tokio::spawn(async move {
        for i in 0..N {
            let r = client()
                .patch(&url)
                .bearer_auth(&token)
                .json(&json!({"n": format!("live{i}")}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
        }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    send_json(&mut ws, &json!({"type": "resume", "since": 0})).await;

    let last = base + N;
    let mut after_replay_start: Vec<u64> = Vec::new();
    let mut started = false;
    while after_replay_start.last().copied() != Some(last) {
        let v = next_non_pong(&mut ws, Duration::from_secs(10)).await;
        let seq = v["seq"]
            .as_u64()
            .unwrap_or_else(|| panic!("event without seq: {v}"));
        if !started && seq == 1 {
            started = true;
        }
        if started {
            after_replay_start.push(seq);
        }
        assert!(
            after_replay_start.len() as u64 <= last,
            "too many events: {after_replay_start:?}"
        );
    }
    writer.await.unwrap();
    assert_eq!(after_replay_start, (1..=last).collect::<Vec<_>>());
    expect_no_event(&mut ws, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn frame_over_default_limit_closes_1009() {
    let s = Server::start();
    let a = new_acct(&s, "Big").await;
    let (mut ws, _) = ws_connect(&s, &a).await;
    let payload = format!("{{\"type\":\"ping\",\"pad\":\"{}\"}}", "x".repeat(70_000));
    ws.send(Message::text(payload)).await.unwrap();
    assert_eq!(
        wait_close(&mut ws, Duration::from_secs(10)).await,
        Closed::Code(Some(1009))
    );
    assert_healthy(&s).await;
    // the account can connect again
    let (mut ws, _) = ws_connect(&s, &a).await;
    ping_pong(&mut ws).await;
}

#[tokio::test]
async fn frame_just_under_default_limit_is_processed() {
    let s = Server::start();
    let a = new_acct(&s, "Almost").await;
    let (mut ws, _) = ws_connect(&s, &a).await;
    ws.send(Message::text("q".repeat(60_000))).await.unwrap();
    let v = next_event(&mut ws, EVENT_TIMEOUT).await;
    assert_eq!(v["error"]["code"], "bad_frame", "{v}");
    ping_pong(&mut ws).await;
}

#[tokio::test]
async fn ws_max_frame_flag_is_honoured() {
    let s = Server::start_with(&["--ws-max-frame", "1024"]);
    let a = new_acct(&s, "Small").await;
    let (mut ws, _) = ws_connect(&s, &a).await;
    // under the limit: processed normally (malformed, so an error frame)
    ws.send(Message::text("y".repeat(900))).await.unwrap();
    let v = next_event(&mut ws, EVENT_TIMEOUT).await;
    assert_eq!(v["error"]["code"], "bad_frame", "{v}");
    ping_pong(&mut ws).await;
    // over the limit: closed with 1009
    ws.send(Message::text("z".repeat(2000))).await.unwrap();
    assert_eq!(
        wait_close(&mut ws, Duration::from_secs(10)).await,
        Closed::Code(Some(1009))
    );
    assert_healthy(&s).await;
}

#[tokio::test]
async fn invalid_utf8_closes_1007() {
    let s = Server::start();
    let a = new_acct(&s, "Bytes").await;
    let (mut ws, _) = ws_connect(&s, &a).await;
    let frame = Frame::message(
        vec![0x7b_u8, 0xff, 0xfe, 0xc3, 0x28, 0x7d],
        OpCode::Data(Data::Text),
        true,
    );
    ws.send(Message::Frame(frame)).await.unwrap();
    assert_eq!(
        wait_close(&mut ws, Duration::from_secs(10)).await,
        Closed::Code(Some(1007))
    );
    assert_healthy(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_reader_is_disconnected_with_1013() {
    const PATCHES: usize = 400;
    let s = Server::start_with(&["--ws-mailbox", "8"]);
    let slow = new_acct(&s, "Slow").await;
    let fast = new_acct(&s, "Fast").await;
    let writer = new_acct(&s, "Writer").await;
    make_friends(&s, &writer, &slow).await;
    make_friends(&s, &writer, &fast).await;

    let (slow_ws, slow_hello) = ws_connect(&s, &slow).await;
    let (mut fast_ws, fast_hello) = ws_connect(&s, &fast).await;
    let fast_start = hello_seq(&fast_hello);

    // the fast reader drains its events concurrently
    let fast_task = tokio::spawn(async move {
        let mut seqs = Vec::with_capacity(PATCHES);
        while seqs.len() < PATCHES {
            let v = next_event(&mut fast_ws, Duration::from_secs(30)).await;
            assert_eq!(v["type"], "profile.updated", "{v}");
            seqs.push(v["seq"].as_u64().unwrap());
        }
        seqs
    });

    // `slow_ws` is never polled while the writer produces megabytes of events
    for i in 0..PATCHES {
        let mut fields = serde_json::Map::new();
        for f in 0..30 {
            fields.insert(format!("f{f}"), json!(format!("{i:05}{}", "w".repeat(995))));
        }
        let r = patch(&s, "/v1/me/profile", writer.tok(), &Value::Object(fields)).await;
        assert_eq!(r.status.as_u16(), 200, "patch {i}: {}", r.text);
    }
    // the server still serves others
    assert_healthy(&s).await;
    me(&s, &writer).await;

    let fast_seqs = tokio::time::timeout(Duration::from_secs(60), fast_task)
        .await
        .expect("fast reader did not get all events")
        .expect("fast reader task panicked");
    let want: Vec<u64> = (fast_start + 1..=fast_start + PATCHES as u64).collect();
    assert_eq!(fast_seqs, want, "fast reader must get every event in order");

    // now the slow client reads: it must find its connection closed (1013) or ended
    let mut slow_ws = slow_ws;
    let mut received = 0usize;
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(30), slow_ws.next()).await {
            Err(_) => {
                panic!("slow client was never disconnected (read {received} events, then silence)")
            }
            Ok(None) => break Closed::Ended("stream ended".into()),
            Ok(Some(Err(e))) => break Closed::Ended(e.to_string()),
            Ok(Some(Ok(Message::Close(c)))) => break Closed::Code(c.map(|f| u16::from(f.code))),
            Ok(Some(Ok(Message::Text(_)))) => received += 1,
            Ok(Some(Ok(_))) => {}
        }
    };
    eprintln!("slow client: {closed:?} after {received} events");
    match &closed {
        Closed::Code(Some(1013)) | Closed::Ended(_) => {}
        other => panic!("slow client closed with {other:?}, wanted 1013"),
    }
    assert!(
        received < PATCHES,
        "slow client got all {received} events; it was never cut off"
    );

    // it catches up with resume
    let (mut ws, hello) = ws_connect(&s, &slow).await;
    assert_eq!(hello_seq(&hello), hello_seq(&slow_hello) + PATCHES as u64);
    let since = hello_seq(&hello) - 3;
    send_json(&mut ws, &json!({"type": "resume", "since": since})).await;
    let evs = collect_events(&mut ws, 3).await;
    let seqs: Vec<u64> = evs.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![since + 1, since + 2, since + 3]);
    assert_eq!(
        evs[2]["data"]["changes"]["f0"],
        json!(format!("{:05}{}", PATCHES - 1, "w".repeat(995)))
    );
    assert_healthy(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_sockets_with_1001_and_exits_0() {
    let mut s = Server::start();
    let a = new_acct(&s, "Bye").await;
    let b = new_acct(&s, "Bye2").await;
    let (mut w1, _) = ws_connect(&s, &a).await;
    let (mut w2, _) = ws_connect(&s, &b).await;
    ping_pong(&mut w1).await;

    s.sigterm();
    let (c1, c2) = tokio::join!(
        wait_close(&mut w1, Duration::from_secs(15)),
        wait_close(&mut w2, Duration::from_secs(15))
    );
    drop(w1);
    drop(w2);
    let status = tokio::task::block_in_place(|| s.wait_exit(Duration::from_secs(20)));
    assert_eq!(c1, Closed::Code(Some(1001)));
    assert_eq!(c2, Closed::Code(Some(1001)));
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
    assert_eq!(status.code(), Some(0));
}
