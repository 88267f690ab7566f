//! IM groups: create/read, membership, group chat (live fan-out to every device of every
//! member, paged history), the group's own event counter, the group event log, and bad input.

use crate::support::groups::*;
use crate::support::*;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn create_and_read_group() {
    let srv = Server::start();
    let a = new_acct(&srv, "Ann").await;
    let b = new_acct(&srv, "Bob").await;

    // the name is trimmed
    let gid = create_group(&srv, &a, "  Book club \n").await;
    let g = get_group(&srv, &a, &gid).await;
    assert_eq!(
        g,
        json!({"group_id": gid, "name": "Book club", "owner": a.id,
               "members": [a.id], "bindings": []})
    );

    // two groups get different ids
    let gid2 = create_group(&srv, &a, "Second").await;
    assert_ne!(gid, gid2);

    // 128 characters (multi-byte) is fine, 129 is not
    let long: String = "é".repeat(128);
    let gid3 = create_group(&srv, &a, &long).await;
    assert_eq!(get_group(&srv, &a, &gid3).await["name"], json!(long));
    let too_long: String = "x".repeat(129);
    post(&srv, "/v1/groups", a.tok(), &json!({"name": too_long}))
        .await
        .expect_error(400, "invalid_input");
    // 128 chars after trimming is fine
    let padded = format!("   {}   ", "y".repeat(128));
    let gid4 = create_group(&srv, &a, &padded).await;
    assert_eq!(
        get_group(&srv, &a, &gid4).await["name"],
        json!("y".repeat(128))
    );

    // empty / whitespace-only names
    for bad in ["", "   ", "\n\t "] {
        post(&srv, "/v1/groups", a.tok(), &json!({"name": bad}))
            .await
            .expect_error(400, "invalid_input");
    }

    // non-member: 403; unknown group: 404; no token: 401
    get(&srv, &format!("/v1/groups/{gid}"), b.tok())
        .await
        .expect_error(403, "forbidden");
    get(&srv, "/v1/groups/00000000000000000000000000000000", a.tok())
        .await
        .expect_error(404, "not_found");
    get(&srv, "/v1/groups/nope", a.tok())
        .await
        .expect_error(404, "not_found");
    get(&srv, &format!("/v1/groups/{gid}"), None)
        .await
        .expect_error(401, "unauthorized");
    get(&srv, &format!("/v1/groups/{gid}"), Some("bogus-token"))
        .await
        .expect_error(401, "unauthorized");
    post(&srv, "/v1/groups", None, &json!({"name": "x"}))
        .await
        .expect_error(401, "unauthorized");
    assert_healthy(&srv).await;
}

#[tokio::test]
async fn create_group_bad_json_stores_nothing() {
    let srv = Server::start();
    let a = new_acct(&srv, "Ann").await;
    let cases: Vec<(&str, &str)> = vec![
        ("{\"name\": ", "truncated"),
        ("not json", "garbage"),
        ("{}", "missing name"),
        ("{\"name\": 5}", "number name"),
        ("{\"name\": null}", "null name"),
        ("{\"name\": [\"a\"]}", "array name"),
        ("\"name\"", "string body"),
    ];
    for (body, what) in cases {
        let r = send_raw(
            &srv,
            Method::POST,
            "/v1/groups",
            a.tok(),
            body.to_string(),
            Some("application/json"),
        )
        .await;
        assert_eq!(r.status.as_u16(), 400, "{what}: {}", r.text);
        assert_error_shape(&r.body, "bad_json", &r.text);
    }
    // also without a body at all
    post_empty(&srv, "/v1/groups", a.tok())
        .await
        .expect_error(400, "bad_json");
    assert_healthy(&srv).await;
}

#[tokio::test]
async fn membership_rules() {
    let srv = Server::start();
    let owner = new_acct(&srv, "Owner").await;
    let b = new_acct(&srv, "Bee").await;
    let c = new_acct(&srv, "Cee").await;
    let d = new_acct(&srv, "Dee").await;
    let gid = create_group(&srv, &owner, "Team").await;
    let members_path = format!("/v1/groups/{gid}/members");

    add_member(&srv, &owner, &gid, &b).await;
    add_member(&srv, &owner, &gid, &c).await;
    let g = get_group(&srv, &b, &gid).await;
    assert_eq!(
        g,
        json!({"group_id": gid, "name": "Team", "owner": owner.id,
               "members": sorted(&[&owner.id, &b.id, &c.id]), "bindings": []})
    );
    // members see the same thing
    assert_eq!(get_group(&srv, &c, &gid).await, g);

    // adding again is idempotent
    add_member(&srv, &owner, &gid, &b).await;
    add_member(&srv, &owner, &gid, &owner).await;
    assert_eq!(get_group(&srv, &owner, &gid).await, g);

    // only the owner adds: a member and an outsider get 403, nothing changes
    post(&srv, &members_path, b.tok(), &json!({"account_id": d.id}))
        .await
        .expect_error(403, "forbidden");
    post(&srv, &members_path, d.tok(), &json!({"account_id": d.id}))
        .await
        .expect_error(403, "forbidden");
    // unknown account: 404
    post(
        &srv,
        &members_path,
        owner.tok(),
        &json!({"account_id": "00000000000000000000000000000000"}),
    )
    .await
    .expect_error(404, "not_found");
    // unknown group: 404
    post(
        &srv,
        "/v1/groups/00000000000000000000000000000000/members",
        owner.tok(),
        &json!({"account_id": d.id}),
    )
    .await
    .expect_error(404, "not_found");
    // bad JSON
    post(&srv, &members_path, owner.tok(), &json!({}))
        .await
        .expect_error(400, "bad_json");
    post(&srv, &members_path, owner.tok(), &json!({"account_id": 7}))
        .await
        .expect_error(400, "bad_json");
    send_raw(
        &srv,
        Method::POST,
        &members_path,
        owner.tok(),
        "{\"account_id\":",
        Some("application/json"),
    )
    .await
    .expect_error(400, "bad_json");
    assert_eq!(get_group(&srv, &owner, &gid).await, g);
    get(&srv, &format!("/v1/groups/{gid}"), d.tok())
        .await
        .expect_error(403, "forbidden");

    // removal: a member may not remove another member
    remove_member(&srv, &gid, &c, &b)
        .await
        .expect_error(403, "forbidden");
    // an outsider may not remove anyone
    remove_member(&srv, &gid, &c, &d)
        .await
        .expect_error(403, "forbidden");
    // the owner cannot leave
    remove_member(&srv, &gid, &owner, &owner)
        .await
        .expect_error(409, "owner_cannot_leave");
    // removing a non-member: 404
    remove_member(&srv, &gid, &d, &owner)
        .await
        .expect_error(404, "not_found");
    assert_eq!(get_group(&srv, &owner, &gid).await, g);

    // a member leaves by itself
    remove_member(&srv, &gid, &b, &b).await.expect(204);
    // the owner removes another
    remove_member(&srv, &gid, &c, &owner).await.expect(204);
    assert_eq!(
        get_group(&srv, &owner, &gid).await["members"],
        json!([owner.id])
    );
    // former members are outsiders now
    get(&srv, &format!("/v1/groups/{gid}"), b.tok())
        .await
        .expect_error(403, "forbidden");
    post(
        &srv,
        &format!("/v1/groups/{gid}/messages"),
        c.tok(),
        &json!({"text": "still here?"}),
    )
    .await
    .expect_error(403, "forbidden");
    // removing again: 404
    remove_member(&srv, &gid, &b, &owner)
        .await
        .expect_error(404, "not_found");
    // and can be re-added
    add_member(&srv, &owner, &gid, &b).await;
    assert_eq!(
        get_group(&srv, &b, &gid).await["members"],
        json!(sorted(&[&owner.id, &b.id]))
    );
    assert_healthy(&srv).await;
}

#[tokio::test]
async fn group_chat_reaches_every_device_of_every_member() {
    let srv = Server::start();
    let a = new_acct(&srv, "Ann").await;
    let b = new_acct(&srv, "Bob").await;
    let outsider = new_acct(&srv, "Out").await;
    let gid = create_group(&srv, &a, "Chat").await;
    add_member(&srv, &a, &gid, &b).await;

    let (mut a1, _) = ws_connect(&srv, &a).await;
    let (mut a2, _) = ws_connect_query(&srv, &a).await;
    let (mut b1, _) = ws_connect(&srv, &b).await;
    let (mut x1, _) = ws_connect(&srv, &outsider).await;

    let t0 = now_ms();
    let m1 = post_message(&srv, &a, &gid, "hello group").await;
    let mut frames = Vec::new();
    for ws in [&mut a1, &mut a2, &mut b1] {
        let v = expect_group_event(ws, "group.message", &gid, 1).await;
        let d = &v["data"];
        assert_eq!(
            d.as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .len(),
            5,
            "group.message data has exactly 5 fields: {v}"
        );
        assert_eq!(d["message_id"], m1);
        assert_eq!(d["account_id"], a.id);
        assert_eq!(d["text"], "hello group");
        assert_time_between(d, t0);
        frames.push(v);
    }
    assert_eq!(frames[0], frames[1], "both devices get the same frame");
    assert_eq!(frames[0], frames[2], "every member gets the same frame");

    let m2 = post_message(&srv, &b, &gid, "hi ann ✓").await;
    for ws in [&mut a1, &mut a2, &mut b1] {
        let v = expect_group_event(ws, "group.message", &gid, 2).await;
        assert_eq!(v["data"]["message_id"], m2);
        assert_eq!(v["data"]["account_id"], b.id);
        assert_eq!(v["data"]["text"], "hi ann ✓");
    }
    expect_no_event(&mut x1, QUIET).await;

    // a member added while online gets later messages without reconnecting
    add_member(&srv, &a, &gid, &outsider).await;
    let m3 = post_message(&srv, &outsider, &gid, "joined").await;
    for ws in [&mut a1, &mut a2, &mut b1, &mut x1] {
        let v = expect_group_event(ws, "group.message", &gid, 3).await;
        assert_eq!(v["data"]["message_id"], m3);
        assert_eq!(v["data"]["account_id"], outsider.id);
    }

    // a removed member gets nothing more
    remove_member(&srv, &gid, &b, &b).await.expect(204);
    let m4 = post_message(&srv, &a, &gid, "after bob left").await;
    for ws in [&mut a1, &mut a2, &mut x1] {
        let v = expect_group_event(ws, "group.message", &gid, 4).await;
        assert_eq!(v["data"]["message_id"], m4);
    }
    expect_no_event(&mut b1, QUIET).await;

    // group events do not disturb the account's own seq: the next account event of Ann
    // has account seq 1 and a later hello still reports the account seq
    let r = post(&srv, "/v1/friends/requests", b.tok(), &json!({"to": a.id})).await;
    r.expect(201);
    for ws in [&mut a1, &mut a2] {
        let v = expect_account_event(ws, "friend.requested", 1).await;
        assert_eq!(v["data"]["account_id"], b.id);
    }
    let (_a3, h) = ws_connect(&srv, &a).await;
    assert_eq!(
        hello_seq(&h),
        1,
        "hello seq counts account events only: {h}"
    );

    // history, newest first
    let h = history(&srv, &a, &gid, "").await;
    let ids: Vec<&str> = h["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![m4.as_str(), &m3, &m2, &m1]);
    assert_eq!(h["next"], Value::Null);
    // the stored item equals the live data
    assert_eq!(h["items"][3], frames[0]["data"]);
    assert_healthy(&srv).await;
}

#[tokio::test]
async fn message_history_paging_and_access() {
    let srv = Server::start();
    let a = new_acct(&srv, "Ann").await;
    let b = new_acct(&srv, "Bob").await;
    let outsider = new_acct(&srv, "Out").await;
    let gid = create_group(&srv, &a, "Paged").await;
    add_member(&srv, &a, &gid, &b).await;
    let other_gid = create_group(&srv, &b, "Other").await;
    post_message(&srv, &b, &other_gid, "elsewhere").await;

    let mut sent = Vec::new();
    for i in 0..7 {
        let who = if i % 2 == 0 { &a } else { &b };
        let text = format!("message {i}");
        let id = post_message(&srv, who, &gid, &text).await;
        sent.push((id, who.id.clone(), text));
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }

    let path = format!("/v1/groups/{gid}/messages");
    let all = walk_pages(&srv, &b, &path, 3).await;
    assert_eq!(all.len(), 7, "all 7 messages across pages: {all:?}");
    let expected: Vec<(String, String, String)> = sent.iter().rev().cloned().collect();
    let mut last_ms = u64::MAX;
    for (item, (id, acct, text)) in all.iter().zip(expected.iter()) {
        assert_eq!(item["message_id"], json!(id));
        assert_eq!(item["group_id"], json!(gid));
        assert_eq!(item["account_id"], json!(acct));
        assert_eq!(item["text"], json!(text));
        let t = created_ms(item);
        assert!(t <= last_ms, "newest first by created_ms: {all:?}");
        last_ms = t;
        assert_eq!(item.as_object().unwrap().len(), 5, "item fields: {item}");
    }
    // limit 1 walks the same sequence
    assert_eq!(walk_pages(&srv, &a, &path, 1).await, all);
    // a big limit returns everything in one page with next null
    let h = history(&srv, &a, &gid, "?limit=200").await;
    assert_eq!(h["items"].as_array().unwrap(), &all);
    assert_eq!(h["next"], Value::Null);
    // first page of 2 then continue from its cursor
    let p1 = history(&srv, &a, &gid, "?limit=2").await;
    assert_eq!(p1["items"].as_array().unwrap(), &all[0..2].to_vec());
    let cur = p1["next"].as_str().expect("next cursor").to_string();
    let p2 = history(&srv, &a, &gid, &format!("?limit=2&before={cur}")).await;
    assert_eq!(p2["items"].as_array().unwrap(), &all[2..4].to_vec());

    // bad limits
    for q in ["?limit=0", "?limit=201", "?limit=abc", "?limit=-1"] {
        get(&srv, &format!("{path}{q}"), a.tok())
            .await
            .expect_error(400, "invalid_input");
    }

    // non-members cannot read or post; unknown group 404
    get(&srv, &path, outsider.tok())
        .await
        .expect_error(403, "forbidden");
    post(&srv, &path, outsider.tok(), &json!({"text": "let me in"}))
        .await
        .expect_error(403, "forbidden");
    get(
        &srv,
        "/v1/groups/00000000000000000000000000000000/messages",
        a.tok(),
    )
    .await
    .expect_error(404, "not_found");
    get(&srv, &path, None)
        .await
        .expect_error(401, "unauthorized");
    // the outsider's attempt stored nothing
    assert_eq!(walk_pages(&srv, &a, &path, 50).await, all);
    assert_healthy(&srv).await;
}

#[tokio::test]
async fn message_validation_stores_nothing() {
    let srv = Server::start();
    let a = new_acct(&srv, "Ann").await;
    let b = new_acct(&srv, "Bob").await;
    let gid = create_group(&srv, &a, "Strict").await;
    add_member(&srv, &a, &gid, &b).await;
    let (mut bws, _) = ws_connect(&srv, &b).await;
    let path = format!("/v1/groups/{gid}/messages");

    // rule violations: invalid_input
    for bad in [
        json!({"text": ""}),
        json!({"text": "   "}),
        json!({"text": "\n\t \r\n"}),
        json!({"text": "x".repeat(4097)}),
        json!({"text": "é".repeat(4097)}),
    ] {
        let r = post(&srv, &path, a.tok(), &bad).await;
        assert_eq!(r.status.as_u16(), 400, "{bad}: {}", r.text);
        assert_error_shape(&r.body, "invalid_input", &r.text);
    }
    // shape violations: bad_json
    for bad in [
        json!({}),
        json!({"text": 5}),
        json!({"text": null}),
        json!({"text": ["hi"]}),
        json!({"txt": "hi"}),
        json!("hi"),
    ] {
        let r = post(&srv, &path, a.tok(), &bad).await;
        assert_eq!(r.status.as_u16(), 400, "{bad}: {}", r.text);
        assert_error_shape(&r.body, "bad_json", &r.text);
    }
    for raw in ["{\"text\": \"unterminated", "{text: 'hi'}", ""] {
        let r = send_raw(
            &srv,
            Method::POST,
            &path,
            a.tok(),
            raw.to_string(),
            Some("application/json"),
        )
        .await;
        assert_eq!(r.status.as_u16(), 400, "{raw:?}: {}", r.text);
        assert_error_shape(&r.body, "bad_json", &r.text);
    }
    // nothing was stored and nothing was pushed
    let h = history(&srv, &a, &gid, "").await;
    assert_eq!(h, json!({"items": [], "next": null}));
    assert_eq!(
        group_events(&srv, &a, &gid, "?after=0").await["items"],
        json!([])
    );
    expect_no_event(&mut bws, QUIET).await;
    assert_healthy(&srv).await;

    // the limits themselves are fine (characters, not bytes); text is kept as sent
    let max = "é".repeat(4096);
    let m1 = post_message(&srv, &a, &gid, &max).await;
    let v = expect_group_event(&mut bws, "group.message", &gid, 1).await;
    assert_eq!(v["data"]["text"], json!(max));
    let m2 = post_message(&srv, &a, &gid, "  padded  ").await;
    let v = expect_group_event(&mut bws, "group.message", &gid, 2).await;
    assert_eq!(v["data"]["text"], json!("  padded  "));
    let h = history(&srv, &a, &gid, "").await;
    let ids: Vec<&str> = h["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![m2.as_str(), m1.as_str()]);
    assert_healthy(&srv).await;
}

#[tokio::test]
async fn group_seq_is_per_group_and_event_log_reads_back() {
    let srv = Server::start();
    let a = new_acct(&srv, "Ann").await;
    let b = new_acct(&srv, "Bob").await;
    let g1 = create_group(&srv, &a, "One").await;
    let g2 = create_group(&srv, &a, "Two").await;
    add_member(&srv, &a, &g1, &b).await;
    let (mut aws, _) = ws_connect(&srv, &a).await;

    // interleave messages in two groups: each group counts on its own
    let mut live1 = Vec::new();
    let mut live2 = Vec::new();
    for i in 0..3u64 {
        post_message(&srv, &a, &g1, &format!("g1 {i}")).await;
        live1.push(expect_group_event(&mut aws, "group.message", &g1, i + 1).await);
        // Bob is not in g2
        post(
            &srv,
            &format!("/v1/groups/{g2}/messages"),
            b.tok(),
            &json!({"text": "nope"}),
        )
        .await
        .expect_error(403, "forbidden");
        post_message(&srv, &a, &g2, &format!("g2 {i}")).await;
        live2.push(expect_group_event(&mut aws, "group.message", &g2, i + 1).await);
    }

    // the event log returns the stored frames, oldest first, seq > after
    let e = group_events(&srv, &a, &g1, "?after=0").await;
    assert_eq!(e["items"], json!(live1));
    let e = group_events(&srv, &b, &g1, "?after=1").await;
    assert_eq!(e["items"], json!(live1[1..].to_vec()));
    let e = group_events(&srv, &a, &g1, "?after=0&limit=2").await;
    assert_eq!(e["items"], json!(live1[..2].to_vec()));
    let e = group_events(&srv, &a, &g1, "?after=3").await;
    assert_eq!(e["items"], json!([]));
    let e = group_events(&srv, &a, &g2, "?after=2").await;
    assert_eq!(e["items"], json!(live2[2..].to_vec()));
    // members only
    get(&srv, &format!("/v1/groups/{g2}/events?after=0"), b.tok())
        .await
        .expect_error(403, "forbidden");
    assert_healthy(&srv).await;
}

/// A JSON array is the wrong JSON type for these bodies (they are objects): 400 bad_json,
/// and nothing is stored (serde would otherwise read `["x"]` as a struct by position).
#[tokio::test]
async fn array_bodies_are_bad_json_and_store_nothing() {
    let srv = Server::start();
    let a = new_acct(&srv, "Ann").await;
    let b = new_acct(&srv, "Bob").await;
    let gid = create_group(&srv, &a, "G").await;
    let (mut aws, _) = ws_connect(&srv, &a).await;

    let r = post(&srv, "/v1/groups", a.tok(), &json!(["Array group"])).await;
    assert_eq!(r.status.as_u16(), 400, "array group body: {}", r.text);
    assert_error_shape(&r.body, "bad_json", &r.text);

    let r = post(
        &srv,
        &format!("/v1/groups/{gid}/members"),
        a.tok(),
        &json!([b.id]),
    )
    .await;
    assert_eq!(r.status.as_u16(), 400, "array member body: {}", r.text);
    assert_error_shape(&r.body, "bad_json", &r.text);
    assert_eq!(get_group(&srv, &a, &gid).await["members"], json!([a.id]));

    let r = post(
        &srv,
        &format!("/v1/groups/{gid}/messages"),
        a.tok(),
        &json!(["array message"]),
    )
    .await;
    assert_eq!(r.status.as_u16(), 400, "array message body: {}", r.text);
    assert_error_shape(&r.body, "bad_json", &r.text);
    assert_eq!(
        history(&srv, &a, &gid, "").await,
        json!({"items": [], "next": null})
    );
    expect_no_event(&mut aws, QUIET).await;
    assert_healthy(&srv).await;
}
