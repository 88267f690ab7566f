//! Friends: requests, accept, delete, lists (with pagination), contacts matching
//! and suggestions, and the events each of them produces.

use std::time::Duration;

use crate::support::*;
use reqwest::Method;
use serde_json::{Value, json};

async fn request(s: &Server, from: &Acct, to: &str) -> Resp {
    post(s, "/v1/friends/requests", from.tok(), &json!({"to": to})).await
}

async fn accept(s: &Server, who: &Acct, from: &str) -> Resp {
    post_empty(s, &format!("/v1/friends/requests/{from}/accept"), who.tok()).await
}

async fn incoming(s: &Server, a: &Acct) -> Value {
    get(s, "/v1/friends/requests", a.tok())
        .await
        .expect(200)
        .clone()
}

async fn suggestions(s: &Server, a: &Acct) -> Vec<String> {
    let r = get(s, "/v1/friends/suggestions", a.tok()).await;
    item_ids(r.expect(200))
}

async fn contacts(s: &Server, a: &Acct, list: Value) -> Resp {
    post(s, "/v1/me/contacts", a.tok(), &json!({"contacts": list})).await
}

fn matched(r: &Resp) -> Vec<String> {
    let mut v: Vec<String> = r.expect(200)["matched"]
        .as_array()
        .unwrap_or_else(|| panic!("no matched array: {}", r.text))
        .iter()
        .map(|x| x.as_str().expect("matched id string").to_string())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn request_and_accept() {
    let s = Server::start();
    let a = new_acct_with(&s, "Alice", Some("alice@example.com"), Some("+15550200001")).await;
    let b = new_acct_with(&s, "Bob", Some("bob@example.com"), None).await;
    let (mut wa, ha) = ws_connect(&s, &a).await;
    let (mut wb, hb) = ws_connect(&s, &b).await;
    assert_eq!(hello_seq(&ha), 0);
    assert_eq!(hello_seq(&hb), 0);

    let r = request(&s, &a, &b.id).await;
    assert_eq!(r.expect(201), &json!({"status": "pending"}));

    let ev = expect_event(&mut wb, "friend.requested").await;
    assert_eq!(ev["seq"], json!(1));
    // not friends yet: the requester's email/phone are not shown
    assert_eq!(
        ev["data"],
        json!({"account_id": a.id, "profile": {"display_name": "Alice"}})
    );

    // B's incoming list shows A; A's incoming list is empty
    let inc = incoming(&s, &b).await;
    let items = inc["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{inc}");
    assert_eq!(items[0]["account_id"], json!(a.id));
    assert_eq!(items[0]["profile"], json!({"display_name": "Alice"}));
    assert!(items[0]["profile_version"].is_u64(), "{inc}");
    assert_eq!(inc["next"], Value::Null);
    assert_eq!(incoming(&s, &a).await["items"], json!([]));

    // duplicate pending request
    request(&s, &a, &b.id)
        .await
        .expect_error(409, "already_requested");
    assert_eq!(incoming(&s, &b).await["items"].as_array().unwrap().len(), 1);

    // not friends yet
    assert_eq!(friend_ids(&s, &a).await, Vec::<String>::new());
    assert_eq!(friend_ids(&s, &b).await, Vec::<String>::new());

    let r = accept(&s, &b, &a.id).await;
    assert_eq!(r.expect(200), &json!({"account_id": a.id}));

    let ea = expect_event(&mut wa, "friend.added").await;
    assert_eq!(ea["data"]["account_id"], json!(b.id));
    let eb = expect_event(&mut wb, "friend.added").await;
    assert_eq!(eb["data"]["account_id"], json!(a.id));
    assert_eq!(eb["seq"], json!(2));

    // lists: friends see each other's email/phone, and whether they are online (each has
    // one device here)
    let fa = get(&s, "/v1/friends", a.tok()).await.expect(200).clone();
    let bv = me(&s, &b).await["profile_version"].clone();
    assert_eq!(
        fa["items"],
        json!([{"account_id": b.id,
                "profile": {"display_name": "Bob", "email": "bob@example.com"},
                "profile_version": bv, "online": true, "devices": 1}])
    );
    assert_eq!(fa["next"], Value::Null);
    let fb = get(&s, "/v1/friends", b.tok()).await.expect(200).clone();
    let av = me(&s, &a).await["profile_version"].clone();
    assert_eq!(
        fb["items"],
        json!([{"account_id": a.id,
                "profile": {"display_name": "Alice", "email": "alice@example.com", "phone": "+15550200001"},
                "profile_version": av, "online": true, "devices": 1}])
    );
    // the request is gone
    assert_eq!(incoming(&s, &b).await["items"], json!([]));

    // already friends, both directions
    request(&s, &a, &b.id)
        .await
        .expect_error(409, "already_friends");
    request(&s, &b, &a.id)
        .await
        .expect_error(409, "already_friends");
    // accepting again (a retry after a lost answer) succeeds and changes nothing
    accept(&s, &b, &a.id).await.expect(200);
    assert_eq!(friend_ids(&s, &a).await, vec![b.id.clone()]);
    assert_eq!(friend_ids(&s, &b).await, vec![a.id.clone()]);
    // accepting a request nobody made is still 404
    let c = new_acct(&s, "Carol").await;
    accept(&s, &b, &c.id).await.expect_error(404, "not_found");
}

#[tokio::test]
async fn crossing_request_makes_friends_at_once() {
    let s = Server::start();
    let a = new_acct(&s, "A").await;
    let b = new_acct(&s, "B").await;
    let (mut wa, _) = ws_connect(&s, &a).await;
    let (mut wb, _) = ws_connect(&s, &b).await;

    assert_eq!(
        request(&s, &b, &a.id).await.expect(201),
        &json!({"status": "pending"})
    );
    let ev = expect_event(&mut wa, "friend.requested").await;
    assert_eq!(ev["data"]["account_id"], json!(b.id));

    // A requests B while B's request to A is pending: friends at once
    assert_eq!(
        request(&s, &a, &b.id).await.expect(201),
        &json!({"status": "friends"})
    );
    let ea = expect_event(&mut wa, "friend.added").await;
    assert_eq!(ea["data"]["account_id"], json!(b.id));
    let eb = expect_event(&mut wb, "friend.added").await;
    assert_eq!(eb["data"]["account_id"], json!(a.id));

    assert_eq!(friend_ids(&s, &a).await, vec![b.id.clone()]);
    assert_eq!(friend_ids(&s, &b).await, vec![a.id.clone()]);
    assert_eq!(incoming(&s, &a).await["items"], json!([]));
    assert_eq!(incoming(&s, &b).await["items"], json!([]));
}

#[tokio::test]
async fn bad_friend_requests() {
    let s = Server::start();
    let a = new_acct(&s, "A").await;
    let b = new_acct(&s, "B").await;

    request(&s, &a, &a.id)
        .await
        .expect_error(400, "invalid_input");
    request(&s, &a, "no-such-account")
        .await
        .expect_error(404, "not_found");
    post(&s, "/v1/friends/requests", a.tok(), &json!({}))
        .await
        .expect_error(400, "bad_json");
    post(&s, "/v1/friends/requests", a.tok(), &json!({"to": 42}))
        .await
        .expect_error(400, "bad_json");
    send_raw(
        &s,
        Method::POST,
        "/v1/friends/requests",
        a.tok(),
        "{\"to\":",
        Some("application/json"),
    )
    .await
    .expect_error(400, "bad_json");
    assert_healthy(&s).await;

    // nothing was stored
    assert_eq!(incoming(&s, &a).await["items"], json!([]));
    assert_eq!(incoming(&s, &b).await["items"], json!([]));
    assert_eq!(friend_ids(&s, &a).await, Vec::<String>::new());

    // accept without any request / from unknown ids
    accept(&s, &a, &b.id).await.expect_error(404, "not_found");
    accept(&s, &a, "no-such-account")
        .await
        .expect_error(404, "not_found");
    // delete a non-friend / unknown id
    delete(&s, &format!("/v1/friends/{}", b.id), a.tok())
        .await
        .expect_error(404, "not_found");
    delete(&s, "/v1/friends/no-such-account", a.tok())
        .await
        .expect_error(404, "not_found");
    assert_eq!(friend_ids(&s, &a).await, Vec::<String>::new());
    assert_eq!(friend_ids(&s, &b).await, Vec::<String>::new());
}

#[tokio::test]
async fn cannot_accept_a_request_sent_to_someone_else() {
    let s = Server::start();
    let a = new_acct(&s, "A").await;
    let b = new_acct(&s, "B").await;
    let c = new_acct(&s, "C").await;
    request(&s, &a, &b.id).await.expect(201);

    accept(&s, &c, &a.id).await.expect_error(404, "not_found");
    // the sender cannot accept its own request either
    accept(&s, &a, &b.id).await.expect_error(404, "not_found");

    assert_eq!(friend_ids(&s, &a).await, Vec::<String>::new());
    assert_eq!(friend_ids(&s, &c).await, Vec::<String>::new());
    assert_eq!(item_ids(&incoming(&s, &b).await), vec![a.id.clone()]);
    // B can still accept it
    accept(&s, &b, &a.id).await.expect(200);
    assert_eq!(friend_ids(&s, &a).await, vec![b.id.clone()]);
}

#[tokio::test]
async fn delete_a_friend() {
    let s = Server::start();
    let a = new_acct(&s, "A").await;
    let b = new_acct(&s, "B").await;
    make_friends(&s, &a, &b).await;
    let (mut wa, ha) = ws_connect(&s, &a).await;
    let (mut wb, hb) = ws_connect(&s, &b).await;

    let r = delete(&s, &format!("/v1/friends/{}", b.id), a.tok()).await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.text);
    let ea = expect_event(&mut wa, "friend.removed").await;
    assert_eq!(ea["data"]["account_id"], json!(b.id));
    assert_eq!(ea["seq"].as_u64().unwrap(), hello_seq(&ha) + 1);
    let eb = expect_event(&mut wb, "friend.removed").await;
    assert_eq!(eb["data"]["account_id"], json!(a.id));
    assert_eq!(eb["seq"].as_u64().unwrap(), hello_seq(&hb) + 1);

    assert_eq!(friend_ids(&s, &a).await, Vec::<String>::new());
    assert_eq!(friend_ids(&s, &b).await, Vec::<String>::new());
    // deleting again is 404, from either side
    delete(&s, &format!("/v1/friends/{}", b.id), a.tok())
        .await
        .expect_error(404, "not_found");
    delete(&s, &format!("/v1/friends/{}", a.id), b.tok())
        .await
        .expect_error(404, "not_found");

    // an ex-friend no longer gets profile updates; the author's own device does
    let r = patch(&s, "/v1/me/profile", a.tok(), &json!({"after": "breakup"})).await;
    r.expect(200);
    let own = expect_event(&mut wa, "profile.updated").await;
    assert_eq!(own["data"]["account_id"], json!(a.id));
    expect_no_event(&mut wb, Duration::from_millis(500)).await;

    // they can become friends again
    assert_eq!(
        request(&s, &b, &a.id).await.expect(201),
        &json!({"status": "pending"})
    );
    let ev = expect_event(&mut wa, "friend.requested").await;
    assert_eq!(ev["data"]["account_id"], json!(b.id));
}

#[tokio::test]
async fn friend_list_pagination_newest_first() {
    let s = Server::start();
    let a = new_acct(&s, "Hub").await;
    let mut friends = Vec::new();
    for name in ["F1", "F2", "F3"] {
        let f = new_acct(&s, name).await;
        make_friends(&s, &a, &f).await;
        friends.push(f);
        // keep creation times apart so "newest first" is unambiguous
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all = get(&s, "/v1/friends", a.tok()).await.expect(200).clone();
    assert_eq!(
        item_ids(&all),
        vec![
            friends[2].id.clone(),
            friends[1].id.clone(),
            friends[0].id.clone()
        ],
        "friends must be listed newest first"
    );
    assert_eq!(all["next"], Value::Null);

    let p1 = get(&s, "/v1/friends?limit=2", a.tok())
        .await
        .expect(200)
        .clone();
    assert_eq!(
        item_ids(&p1),
        vec![friends[2].id.clone(), friends[1].id.clone()]
    );
    let cursor = p1["next"]
        .as_str()
        .expect("next cursor after a full page")
        .to_string();
    let p2 = get(&s, &format!("/v1/friends?limit=2&before={cursor}"), a.tok())
        .await
        .expect(200)
        .clone();
    assert_eq!(item_ids(&p2), vec![friends[0].id.clone()]);
    assert_eq!(p2["next"], Value::Null);

    let p = get(&s, "/v1/friends?limit=200", a.tok())
        .await
        .expect(200)
        .clone();
    assert_eq!(item_ids(&p).len(), 3);

    for bad in ["0", "201", "abc", "-1", "1.5"] {
        let r = get(&s, &format!("/v1/friends?limit={bad}"), a.tok()).await;
        assert_eq!(r.status.as_u16(), 400, "limit={bad}: {}", r.text);
        assert_error_shape(
            &r.body,
            "invalid_input",
            &format!("limit={bad}: {}", r.text),
        );
    }
    let r = get(&s, "/v1/friends/requests?limit=0", a.tok()).await;
    r.expect_error(400, "invalid_input");
    assert_healthy(&s).await;
}

#[tokio::test]
async fn incoming_requests_pagination() {
    let s = Server::start();
    let a = new_acct(&s, "Popular").await;
    let mut senders = Vec::new();
    for name in ["S1", "S2", "S3"] {
        let f = new_acct(&s, name).await;
        request(&s, &f, &a.id).await.expect(201);
        senders.push(f);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let p1 = get(&s, "/v1/friends/requests?limit=2", a.tok())
        .await
        .expect(200)
        .clone();
    assert_eq!(
        item_ids(&p1),
        vec![senders[2].id.clone(), senders[1].id.clone()]
    );
    let cursor = p1["next"].as_str().expect("next cursor").to_string();
    let p2 = get(
        &s,
        &format!("/v1/friends/requests?limit=2&before={cursor}"),
        a.tok(),
    )
    .await
    .expect(200)
    .clone();
    assert_eq!(item_ids(&p2), vec![senders[0].id.clone()]);
    assert_eq!(p2["next"], Value::Null);
}

#[tokio::test]
async fn contacts_mutual_match_makes_friends() {
    let s = Server::start();
    let a = new_acct_with(&s, "Amy", Some("amy@example.com"), Some("+15550300001")).await;
    let b = new_acct_with(
        &s,
        "Bart",
        Some("bart@example.com"),
        Some("+1 (555) 030-0002"),
    )
    .await;
    let (mut wa, _) = ws_connect(&s, &a).await;
    let (mut wb, _) = ws_connect(&s, &b).await;

    // A uploads B's phone in another spelling, plus an unknown contact
    let r = contacts(
        &s,
        &a,
        json!([{"kind": "phone", "value": "+15550300002"},
               {"kind": "email", "value": "stranger@example.com"}]),
    )
    .await;
    assert_eq!(matched(&r), vec![b.id.clone()]);
    // one-sided: a suggestion for A, not friends
    assert_eq!(suggestions(&s, &a).await, vec![b.id.clone()]);
    assert_eq!(suggestions(&s, &b).await, Vec::<String>::new());
    assert_eq!(friend_ids(&s, &a).await, Vec::<String>::new());
    expect_no_event(&mut wa, Duration::from_millis(300)).await;

    // B uploads A's email in upper case: mutual match, friends at once
    let r = contacts(
        &s,
        &b,
        json!([{"kind": "email", "value": "AMY@Example.COM"}]),
    )
    .await;
    assert_eq!(matched(&r), vec![a.id.clone()]);
    let ea = expect_event(&mut wa, "friend.added").await;
    assert_eq!(ea["data"]["account_id"], json!(b.id));
    let eb = expect_event(&mut wb, "friend.added").await;
    assert_eq!(eb["data"]["account_id"], json!(a.id));
    assert_eq!(friend_ids(&s, &a).await, vec![b.id.clone()]);
    assert_eq!(friend_ids(&s, &b).await, vec![a.id.clone()]);
}

#[tokio::test]
async fn contacts_match_platform_handles() {
    let s = Server::start();
    let c = new_acct_with(&s, "Cleo", Some("cleo@example.com"), None).await;
    let d = new_acct_with(&s, "Dan", Some("dan@example.com"), None).await;
    post(
        &s,
        "/v1/me/platforms",
        c.tok(),
        &json!({"platform": "webhook", "handle": "Cleo-Hook",
                "config": {"url": "http://127.0.0.1:9/c", "secret": "sekrit"}}),
    )
    .await
    .expect(201);

    let r = contacts(
        &s,
        &d,
        json!([{"kind": "platform", "platform": "webhook", "value": "cleo-hook"}]),
    )
    .await;
    assert_eq!(matched(&r), vec![c.id.clone()]);
    assert_eq!(suggestions(&s, &d).await, vec![c.id.clone()]);
    assert_eq!(friend_ids(&s, &d).await, Vec::<String>::new());

    // A webhook handle is its owner's own label: matched both ways, C and D are still only
    // suggestions to each other (issue 15; tests/blackbox/identities.rs has the rest).
    let (mut wc, _) = ws_connect(&s, &c).await;
    let r = contacts(
        &s,
        &c,
        json!([{"kind": "email", "value": "dan@example.com"}]),
    )
    .await;
    assert_eq!(matched(&r), vec![d.id.clone()]);
    expect_no_event(&mut wc, Duration::from_millis(300)).await;
    assert_eq!(friend_ids(&s, &c).await, Vec::<String>::new());
    assert_eq!(suggestions(&s, &c).await, vec![d.id.clone()]);
}

#[tokio::test]
async fn contacts_without_matches() {
    let s = Server::start();
    let a = new_acct_with(&s, "Lonely", Some("lonely@example.com"), None).await;
    let _b = new_acct_with(&s, "Other", Some("other@example.com"), Some("+15550300009")).await;
    let r = contacts(
        &s,
        &a,
        json!([{"kind": "email", "value": "nobody@example.com"},
               {"kind": "phone", "value": "+15550300008"},
               {"kind": "platform", "platform": "webhook", "value": "no-such-hook"}]),
    )
    .await;
    assert_eq!(matched(&r), Vec::<String>::new());
    let r = contacts(&s, &a, json!([])).await;
    assert_eq!(matched(&r), Vec::<String>::new());
    assert_eq!(suggestions(&s, &a).await, Vec::<String>::new());
}

#[tokio::test]
async fn bad_contact_uploads() {
    let s = Server::start();
    let a = new_acct(&s, "Uploader").await;
    let b = new_acct_with(&s, "Target", Some("target@example.com"), None).await;

    // unknown kind: invalid_input, and the valid entry in the same upload is not stored
    let r = contacts(
        &s,
        &a,
        json!([{"kind": "email", "value": "target@example.com"},
               {"kind": "fax", "value": "12345"}]),
    )
    .await;
    r.expect_error(400, "invalid_input");
    assert_eq!(suggestions(&s, &a).await, Vec::<String>::new());

    let bad: Vec<(&str, Value)> = vec![
        ("missing contacts", json!({})),
        (
            "contacts not an array",
            json!({"contacts": "target@example.com"}),
        ),
        (
            "entry without value",
            json!({"contacts": [{"kind": "email"}]}),
        ),
        (
            "value is a number",
            json!({"contacts": [{"kind": "phone", "value": 15550100}]}),
        ),
    ];
    for (what, body) in bad {
        let r = post(&s, "/v1/me/contacts", a.tok(), &body).await;
        assert_eq!(r.status.as_u16(), 400, "{what}: {}", r.text);
        assert_error_shape(&r.body, "bad_json", &format!("{what}: {}", r.text));
    }
    assert_healthy(&s).await;
    assert_eq!(suggestions(&s, &a).await, Vec::<String>::new());
    // a later valid upload still works
    let r = contacts(
        &s,
        &a,
        json!([{"kind": "email", "value": "target@example.com"}]),
    )
    .await;
    assert_eq!(matched(&r), vec![b.id.clone()]);
}

#[tokio::test]
async fn profile_updates_reach_friends_and_own_devices_only() {
    let s = Server::start();
    let a = new_acct(&s, "Author").await;
    let f = new_acct(&s, "Friend").await;
    let x = new_acct(&s, "Stranger").await;
    make_friends(&s, &a, &f).await;
    patch(&s, "/v1/me/profile", a.tok(), &json!({"mood": "ok"}))
        .await
        .expect(200);

    let (mut wa, ha) = ws_connect(&s, &a).await;
    let (mut wf, hf) = ws_connect(&s, &f).await;
    let (mut wx, _) = ws_connect(&s, &x).await;

    let r = patch(
        &s,
        "/v1/me/profile",
        a.tok(),
        &json!({"mood": null, "city": "Kyiv"}),
    )
    .await;
    let version = r.expect(200)["profile_version"].clone();

    for (ws, hello) in [(&mut wa, &ha), (&mut wf, &hf)] {
        let ev = expect_event(ws, "profile.updated").await;
        assert_eq!(ev["seq"].as_u64().unwrap(), hello_seq(hello) + 1, "{ev}");
        assert_eq!(
            ev["data"],
            json!({"account_id": a.id, "profile_version": version,
                   "changes": {"mood": null, "city": "Kyiv"}})
        );
    }
    expect_no_event(&mut wx, Duration::from_millis(500)).await;

    // the friend list reflects the new profile
    let fl = get(&s, "/v1/friends", f.tok()).await.expect(200).clone();
    assert_eq!(
        fl["items"][0]["profile"],
        json!({"display_name": "Author", "city": "Kyiv"})
    );
    assert_eq!(fl["items"][0]["profile_version"], version);
}

#[tokio::test]
async fn contacts_normalise_uploaded_phones_and_emails() {
    let s = Server::start();
    let a = new_acct_with(
        &s,
        "Pia",
        Some("Pia.Mixed@Example.com"),
        Some("+447700900123"),
    )
    .await;
    let b = new_acct_with(&s, "Quin", Some("quin@example.com"), None).await;
    let c = new_acct(&s, "Uploader").await;

    // formatted phone matches the E.164 one
    let r = contacts(
        &s,
        &c,
        json!([{"kind": "phone", "value": "+44 (7700) 900-123"}]),
    )
    .await;
    assert_eq!(matched(&r), vec![a.id.clone()]);
    // lower-cased upload matches a mixed-case registered email
    let r = contacts(
        &s,
        &b,
        json!([{"kind": "email", "value": "pia.mixed@example.com"}]),
    )
    .await;
    assert_eq!(matched(&r), vec![a.id.clone()]);
    let mut sug = suggestions(&s, &c).await;
    sug.sort();
    assert_eq!(sug, vec![a.id.clone()]);
    // one-sided matches only
    assert_eq!(friend_ids(&s, &a).await, Vec::<String>::new());
}
