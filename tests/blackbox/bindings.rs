//! Communities and the binding handshake: server-key auth, community members and dynamics,
//! binding requests (live and resumed), approve / reject / expiry / revoke, live
//! `group.dynamic` fan-out, the merged dynamics feed, group seq across mixed events, and a
//! SIGKILL right after an approval.

use std::time::Duration;

use crate::support::groups::*;
use crate::support::*;
use reqwest::Method;
use serde_json::{Value, json};

const WEEK_MS: u64 = 7 * 24 * 3600 * 1000;

/// `group.dynamic` data minus `group_id` = a feed item.
fn feed_item(frame: &Value) -> Value {
    let mut d = frame["data"].clone();
    d.as_object_mut().unwrap().remove("group_id");
    d
}

fn feed_ids(b: &Value) -> Vec<String> {
    b["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {b}"))
        .iter()
        .map(|i| i["dynamic_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn handshake_end_to_end() {
    let srv = Server::start();
    let owner = new_acct(&srv, "Owner").await;
    let member = new_acct(&srv, "Member").await;
    let outsider = new_acct(&srv, "Outsider").await;
    let admin = new_acct(&srv, "Community admin").await;
    let poster = new_acct(&srv, "Poster").await;

    let gid = create_group(&srv, &owner, "Runners chat").await;
    add_member(&srv, &owner, &gid, &member).await;

    let (mut o1, oh) = ws_connect(&srv, &owner).await;
    let (mut m1, _) = ws_connect(&srv, &member).await;
    let (mut m2, _) = ws_connect_query(&srv, &member).await;
    let (mut x1, _) = ws_connect(&srv, &outsider).await;
    assert_eq!(hello_seq(&oh), 0);

    let c = create_community(&srv, &admin, "Runners").await;
    community_add_member(&srv, &c, &poster).await;
    // a dynamic from before the binding never shows in the group
    let d0 = post_dynamic(&srv, &c, &poster, "run", "before binding").await;

    // 1. the community asks
    let t0 = now_ms();
    let rid = request_binding(&srv, &c, &gid, Some("please bind us")).await;
    let ev = expect_account_event(&mut o1, "binding.requested", 1).await;
    let data = ev["data"].clone();
    assert_eq!(data["request_id"], rid);
    assert_eq!(data["group_id"], gid);
    assert_eq!(data["community_id"], c.id);
    assert_eq!(data["community_name"], "Runners");
    assert_eq!(data["note"], "please bind us");
    assert_time_between(&data, t0);
    let expires = data["expires_ms"].as_u64().expect("expires_ms integer");
    assert_eq!(
        expires - created_ms(&data),
        WEEK_MS,
        "default TTL is 7 days: {data}"
    );
    assert_eq!(
        data.as_object().unwrap().len(),
        7,
        "binding.requested fields: {data}"
    );
    // only the owner hears about it
    expect_no_event(&mut m1, QUIET).await;
    expect_no_event(&mut m2, Duration::from_millis(50)).await;
    expect_no_event(&mut x1, Duration::from_millis(50)).await;

    // 2. the owner's pending list shows the same object
    assert_eq!(
        pending(&srv, &owner, &gid).await,
        json!({"items": [data], "next": null})
    );

    // 3. nobody but the owner may list, approve or reject
    let list_path = format!("/v1/groups/{gid}/binding-requests");
    get(&srv, &list_path, member.tok())
        .await
        .expect_error(403, "forbidden");
    get(&srv, &list_path, outsider.tok())
        .await
        .expect_error(403, "forbidden");
    approve(&srv, &member, &gid, &rid)
        .await
        .expect_error(403, "forbidden");
    approve(&srv, &outsider, &gid, &rid)
        .await
        .expect_error(403, "forbidden");
    reject(&srv, &member, &gid, &rid)
        .await
        .expect_error(403, "forbidden");
    approve(&srv, &owner, &gid, "00000000000000000000000000000000")
        .await
        .expect_error(404, "not_found");
    // still pending, nothing bound
    assert_eq!(pending(&srv, &owner, &gid).await["items"], json!([data]));
    assert_eq!(get_group(&srv, &member, &gid).await["bindings"], json!([]));

    // 4. the owner approves: every device of every member gets binding.approved
    approve_ok(&srv, &owner, &gid, &rid).await;
    let mut approved = Vec::new();
    for ws in [&mut o1, &mut m1, &mut m2] {
        let v = expect_group_event(ws, "binding.approved", &gid, 1).await;
        assert_eq!(
            v["data"],
            json!({"group_id": gid, "community_id": c.id,
                   "community_name": "Runners", "request_id": rid})
        );
        approved.push(v);
    }
    expect_no_event(&mut x1, QUIET).await;
    // approving again (a retry after a lost answer) answers the same, and nobody hears of it
    // twice
    approve_ok(&srv, &owner, &gid, &rid).await;
    approve(&srv, &member, &gid, &rid)
        .await
        .expect_error(403, "forbidden");
    expect_no_event(&mut o1, QUIET).await;
    assert_eq!(
        get_group(&srv, &member, &gid).await["bindings"],
        json!([c.id])
    );
    assert_eq!(
        pending(&srv, &owner, &gid).await,
        json!({"items": [], "next": null})
    );

    // 5. a new dynamic reaches all of them live
    let t1 = now_ms();
    let d1 = post_dynamic(&srv, &c, &poster, "run", "5k in 25:00").await;
    let mut dyn_frames = Vec::new();
    for ws in [&mut o1, &mut m1, &mut m2] {
        let v = expect_group_event(ws, "group.dynamic", &gid, 2).await;
        let d = &v["data"];
        assert_eq!(d["community_id"], c.id);
        assert_eq!(d["dynamic_id"], d1);
        assert_eq!(d["account_id"], poster.id);
        assert_eq!(d["kind"], "run");
        assert_eq!(d["text"], "5k in 25:00");
        assert_time_between(d, t1);
        assert_eq!(d.as_object().unwrap().len(), 7, "group.dynamic fields: {v}");
        dyn_frames.push(v);
    }
    assert_eq!(dyn_frames[0], dyn_frames[1]);
    assert_eq!(dyn_frames[1], dyn_frames[2]);
    expect_no_event(&mut x1, QUIET).await;

    // 6. history: the feed holds d1 only (d0 predates the approval)
    let f = feed(&srv, &member, &gid, "").await;
    assert_eq!(
        f,
        json!({"items": [feed_item(&dyn_frames[0])], "next": null})
    );
    assert!(!feed_ids(&f).contains(&d0));
    assert_eq!(feed(&srv, &owner, &gid, "").await, f);
    get(&srv, &format!("/v1/groups/{gid}/dynamics"), outsider.tok())
        .await
        .expect_error(403, "forbidden");
    // the group event log holds both group events in order
    assert_eq!(
        group_events(&srv, &member, &gid, "?after=0").await["items"],
        json!([approved[0], dyn_frames[0]])
    );

    // 7. revoke: a member may not, the owner may
    revoke_as(&srv, member.tok(), &gid, &c.id)
        .await
        .expect_error(403, "forbidden");
    revoke_as(&srv, owner.tok(), &gid, &c.id).await.expect(204);
    for ws in [&mut o1, &mut m1, &mut m2] {
        let v = expect_group_event(ws, "binding.revoked", &gid, 3).await;
        assert_eq!(
            v["data"],
            json!({"group_id": gid, "community_id": c.id, "by": "owner"})
        );
    }
    assert_eq!(get_group(&srv, &owner, &gid).await["bindings"], json!([]));

    // 8. nothing more arrives, and the community's dynamics leave the feed
    let d2 = post_dynamic(&srv, &c, &poster, "run", "after revoke").await;
    assert!(!d2.is_empty());
    expect_no_event(&mut o1, QUIET).await;
    expect_no_event(&mut m1, Duration::from_millis(50)).await;
    expect_no_event(&mut m2, Duration::from_millis(50)).await;
    expect_no_event(&mut x1, Duration::from_millis(50)).await;
    assert_eq!(
        feed(&srv, &member, &gid, "").await,
        json!({"items": [], "next": null})
    );
    revoke_as(&srv, owner.tok(), &gid, &c.id)
        .await
        .expect_error(404, "not_found");
    assert_healthy(&srv).await;
}

#[tokio::test]
async fn reject_then_request_again() {
    let srv = Server::start();
    let owner = new_acct(&srv, "Owner").await;
    let member = new_acct(&srv, "Member").await;
    let admin = new_acct(&srv, "Admin").await;
    let gid = create_group(&srv, &owner, "G").await;
    add_member(&srv, &owner, &gid, &member).await;
    let c = create_community(&srv, &admin, "Chess club").await;
    let (mut o1, _) = ws_connect(&srv, &owner).await;
    let (mut o2, _) = ws_connect(&srv, &owner).await;
    let (mut m1, _) = ws_connect(&srv, &member).await;

    let rid = request_binding(&srv, &c, &gid, None).await;
    for ws in [&mut o1, &mut o2] {
        let v = expect_account_event(ws, "binding.requested", 1).await;
        assert_eq!(v["data"]["request_id"], rid);
        assert_eq!(v["data"]["community_name"], "Chess club");
    }

    reject(&srv, &member, &gid, &rid)
        .await
        .expect_error(403, "forbidden");
    reject(&srv, &admin, &gid, &rid)
        .await
        .expect_error(403, "forbidden");
    reject(&srv, &owner, &gid, "00000000000000000000000000000000")
        .await
        .expect_error(404, "not_found");
    assert_eq!(
        pending(&srv, &owner, &gid).await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let r = reject(&srv, &owner, &gid, &rid).await;
    assert_eq!(
        r.expect(200),
        &json!({"group_id": gid, "request_id": rid, "status": "rejected"})
    );
    for ws in [&mut o1, &mut o2] {
        let v = expect_account_event(ws, "binding.rejected", 2).await;
        assert_eq!(
            v["data"],
            json!({"group_id": gid, "community_id": c.id, "request_id": rid})
        );
    }
    expect_no_event(&mut m1, QUIET).await;
    assert_eq!(
        pending(&srv, &owner, &gid).await,
        json!({"items": [], "next": null})
    );
    assert_eq!(get_group(&srv, &owner, &gid).await["bindings"], json!([]));

    // the community may ask again, and that one can be approved
    let rid2 = request_binding(&srv, &c, &gid, Some("second try")).await;
    assert_ne!(rid, rid2);
    let v = expect_account_event(&mut o1, "binding.requested", 3).await;
    assert_eq!(v["data"]["request_id"], rid2);
    assert_eq!(v["data"]["note"], "second try");
    expect_account_event(&mut o2, "binding.requested", 3).await;
    approve_ok(&srv, &owner, &gid, &rid2).await;
    for ws in [&mut o1, &mut o2, &mut m1] {
        expect_group_event(ws, "binding.approved", &gid, 1).await;
    }
    assert_eq!(
        get_group(&srv, &owner, &gid).await["bindings"],
        json!([c.id])
    );
    assert_healthy(&srv).await;
}

#[tokio::test]
async fn duplicate_and_conflicting_requests() {
    let srv = Server::start();
    let owner = new_acct(&srv, "Owner").await;
    let admin = new_acct(&srv, "Admin").await;
    let gid = create_group(&srv, &owner, "G").await;
    let gid2 = create_group(&srv, &owner, "G2").await;
    let c1 = create_community(&srv, &admin, "One").await;
    let c2 = create_community(&srv, &admin, "Two").await;
    let path1 = format!("/v1/communities/{}/binding-requests", c1.id);
    let (mut o1, _) = ws_connect(&srv, &owner).await;

    let rid = request_binding(&srv, &c1, &gid, Some("hi")).await;
    expect_account_event(&mut o1, "binding.requested", 1).await;
    // the same pair again while pending
    post(&srv, &path1, c1.key(), &json!({"group_id": gid}))
        .await
        .expect_error(409, "already_requested");
    post(
        &srv,
        &path1,
        c1.key(),
        &json!({"group_id": gid, "note": "again"}),
    )
    .await
    .expect_error(409, "already_requested");
    // another community may ask the same group at the same time, and c1 another group
    let rid_c2 = request_binding(&srv, &c2, &gid, None).await;
    expect_account_event(&mut o1, "binding.requested", 2).await;
    let rid_g2 = request_binding(&srv, &c1, &gid2, None).await;
    expect_account_event(&mut o1, "binding.requested", 3).await;
    let listed: Vec<String> = pending(&srv, &owner, &gid).await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| s(i, "request_id"))
        .collect();
    assert_eq!(listed.len(), 2, "two pending requests for gid: {listed:?}");
    assert!(listed.contains(&rid) && listed.contains(&rid_c2));

    // a request of another group cannot be approved through this group
    let r = approve(&srv, &owner, &gid, &rid_g2).await;
    r.expect_error(404, "not_found");

    // bound: asking again is already_bound
    approve_ok(&srv, &owner, &gid, &rid).await;
    expect_group_event(&mut o1, "binding.approved", &gid, 1).await;
    post(&srv, &path1, c1.key(), &json!({"group_id": gid}))
        .await
        .expect_error(409, "already_bound");

    // unknown group
    post(
        &srv,
        &path1,
        c1.key(),
        &json!({"group_id": "00000000000000000000000000000000"}),
    )
    .await
    .expect_error(404, "not_found");

    // note length: 512 characters is fine, 513 is not (and stores nothing)
    let gid3 = create_group(&srv, &owner, "G3").await;
    post(
        &srv,
        &path1,
        c1.key(),
        &json!({"group_id": gid3, "note": "n".repeat(513)}),
    )
    .await
    .expect_error(400, "invalid_input");
    assert_eq!(pending(&srv, &owner, &gid3).await["items"], json!([]));
    let rid3 = request_binding(&srv, &c1, &gid3, Some(&"ü".repeat(512))).await;
    let v = expect_account_event(&mut o1, "binding.requested", 4).await;
    assert_eq!(v["data"]["request_id"], rid3);
    assert_eq!(v["data"]["note"], json!("ü".repeat(512)));

    // bad JSON: missing / wrong types / malformed; nothing stored
    let gid4 = create_group(&srv, &owner, "G4").await;
    for bad in [
        json!({}),
        json!({"note": "x"}),
        json!({"group_id": 5}),
        json!({"group_id": null}),
        json!({"group_id": gid4, "note": 5}),
        json!({"group_id": gid4, "note": ["x"]}),
        json!("x"),
    ] {
        let r = post(&srv, &path1, c1.key(), &bad).await;
        assert_eq!(r.status.as_u16(), 400, "{bad}: {}", r.text);
        assert_error_shape(&r.body, "bad_json", &r.text);
    }
    send_raw(
        &srv,
        Method::POST,
        &path1,
        c1.key(),
        format!("{{\"group_id\": \"{gid4}\""),
        Some("application/json"),
    )
    .await
    .expect_error(400, "bad_json");
    assert_eq!(pending(&srv, &owner, &gid4).await["items"], json!([]));
    expect_no_event(&mut o1, QUIET).await;
    // and the pair is still free to ask
    request_binding(&srv, &c1, &gid4, None).await;
    expect_account_event(&mut o1, "binding.requested", 5).await;
    assert_healthy(&srv).await;
}

#[tokio::test]
async fn server_key_authentication() {
    let srv = Server::start();
    let owner = new_acct(&srv, "Owner").await;
    let member = new_acct(&srv, "Member").await;
    let outsider = new_acct(&srv, "Outsider").await;
    let poster = new_acct(&srv, "Poster").await;
    let gid = create_group(&srv, &owner, "G").await;
    add_member(&srv, &owner, &gid, &member).await;
    let c1 = create_community(&srv, &owner, "One").await;
    let c2 = create_community(&srv, &outsider, "Two").await;
    assert_ne!(c1.id, c2.id);
    assert_ne!(c1.key, c2.key);
    let (mut o1, _) = ws_connect(&srv, &owner).await;

    let calls: Vec<(String, Value)> = vec![
        (
            format!("/v1/communities/{}/members", c1.id),
            json!({"account_id": poster.id}),
        ),
        (
            format!("/v1/communities/{}/dynamics", c1.id),
            json!({"account_id": poster.id, "kind": "k", "text": "t"}),
        ),
        (
            format!("/v1/communities/{}/binding-requests", c1.id),
            json!({"group_id": gid}),
        ),
    ];
    for (path, body) in &calls {
        post(&srv, path, None, body)
            .await
            .expect_error(401, "unauthorized");
        post(&srv, path, Some("not-a-key"), body)
            .await
            .expect_error(401, "unauthorized");
        // a client token is not a server key, not even the community creator's
        post(&srv, path, owner.tok(), body)
            .await
            .expect_error(401, "unauthorized");
        // the key of another community
        post(&srv, path, c2.key(), body)
            .await
            .expect_error(403, "forbidden");
    }
    // nothing was stored: poster is no member of c1, no request is pending
    post(
        &srv,
        &format!("/v1/communities/{}/dynamics", c1.id),
        c1.key(),
        &json!({"account_id": poster.id, "kind": "k", "text": "t"}),
    )
    .await
    .expect_error(403, "forbidden");
    assert_eq!(pending(&srv, &owner, &gid).await["items"], json!([]));
    expect_no_event(&mut o1, QUIET).await;

    // a server key is not a client token
    get(&srv, "/v1/me", c1.key())
        .await
        .expect_error(401, "unauthorized");
    post(&srv, "/v1/communities", c1.key(), &json!({"name": "x"}))
        .await
        .expect_error(401, "unauthorized");
    post(&srv, "/v1/communities", None, &json!({"name": "x"}))
        .await
        .expect_error(401, "unauthorized");
    get(&srv, &format!("/v1/groups/{gid}/dynamics"), c1.key())
        .await
        .expect_error(401, "unauthorized");

    // revoke authorisation
    // m1 connects first: group events are pushed asynchronously, so a device that
    // attaches just after an approval may still receive it.
    let (mut m1, _) = ws_connect(&srv, &member).await;
    bind(&srv, &c1, &owner, &gid).await;
    expect_account_event(&mut o1, "binding.requested", 1).await;
    expect_group_event(&mut o1, "binding.approved", &gid, 1).await;
    expect_group_event(&mut m1, "binding.approved", &gid, 1).await;
    revoke_as(&srv, member.tok(), &gid, &c1.id)
        .await
        .expect_error(403, "forbidden");
    revoke_as(&srv, c2.key(), &gid, &c1.id)
        .await
        .expect_error(403, "forbidden");
    revoke_as(&srv, None, &gid, &c1.id)
        .await
        .expect_error(401, "unauthorized");
    revoke_as(&srv, Some("not-a-key"), &gid, &c1.id)
        .await
        .expect_error(401, "unauthorized");
    // not bound: 404 (c2 with its own key, and the owner)
    revoke_as(&srv, c2.key(), &gid, &c2.id)
        .await
        .expect_error(404, "not_found");
    revoke_as(&srv, owner.tok(), &gid, &c2.id)
        .await
        .expect_error(404, "not_found");
    assert_eq!(
        get_group(&srv, &owner, &gid).await["bindings"],
        json!([c1.id])
    );
    expect_no_event(&mut m1, QUIET).await;

    // the bound community's own key revokes
    revoke_as(&srv, c1.key(), &gid, &c1.id).await.expect(204);
    for ws in [&mut o1, &mut m1] {
        let v = expect_group_event(ws, "binding.revoked", &gid, 2).await;
        assert_eq!(
            v["data"],
            json!({"group_id": gid, "community_id": c1.id, "by": "community"})
        );
    }
    assert_eq!(get_group(&srv, &owner, &gid).await["bindings"], json!([]));
    revoke_as(&srv, c1.key(), &gid, &c1.id)
        .await
        .expect_error(404, "not_found");
    assert_healthy(&srv).await;
}

#[tokio::test]
async fn community_create_and_member_input() {
    let srv = Server::start();
    let a = new_acct(&srv, "Admin").await;
    let c = create_community(&srv, &a, "Club").await;
    let c_b = create_community(&srv, &a, "Club").await;
    assert_ne!(c.id, c_b.id, "each community gets its own id");
    assert_ne!(c.key, c_b.key, "each community gets its own key");
    for bad in [
        json!({}),
        json!({"name": 5}),
        json!({"name": null}),
        json!("Club"),
    ] {
        let r = post(&srv, "/v1/communities", a.tok(), &bad).await;
        assert_eq!(r.status.as_u16(), 400, "{bad}: {}", r.text);
        assert_error_shape(&r.body, "bad_json", &r.text);
    }
    send_raw(
        &srv,
        Method::POST,
        "/v1/communities",
        a.tok(),
        "{\"name\"",
        Some("application/json"),
    )
    .await
    .expect_error(400, "bad_json");

    let mpath = format!("/v1/communities/{}/members", c.id);
    post(
        &srv,
        &mpath,
        c.key(),
        &json!({"account_id": "00000000000000000000000000000000"}),
    )
    .await
    .expect_error(404, "not_found");
    for bad in [
        json!({}),
        json!({"account_id": 1}),
        json!({"account_id": null}),
    ] {
        let r = post(&srv, &mpath, c.key(), &bad).await;
        assert_eq!(r.status.as_u16(), 400, "{bad}: {}", r.text);
        assert_error_shape(&r.body, "bad_json", &r.text);
    }
    community_add_member(&srv, &c, &a).await;
    // adding again stays 204
    community_add_member(&srv, &c, &a).await;
    post_dynamic(&srv, &c, &a, "hello", "member now").await;
    assert_healthy(&srv).await;
}

#[tokio::test]
async fn dynamic_validation_and_membership() {
    let srv = Server::start();
    let owner = new_acct(&srv, "Owner").await;
    let poster = new_acct(&srv, "Poster").await;
    let stranger = new_acct(&srv, "Stranger").await;
    let gid = create_group(&srv, &owner, "G").await;
    let c = create_community(&srv, &owner, "Club").await;
    let other = create_community(&srv, &owner, "Other").await;
    community_add_member(&srv, &c, &poster).await;
    community_add_member(&srv, &other, &stranger).await;
    bind(&srv, &c, &owner, &gid).await;
    let (mut o1, _) = ws_connect(&srv, &owner).await;
    let dpath = format!("/v1/communities/{}/dynamics", c.id);

    // not a member of this community (a member of another one is no better)
    post(
        &srv,
        &dpath,
        c.key(),
        &json!({"account_id": stranger.id, "kind": "run", "text": "hi"}),
    )
    .await
    .expect_error(403, "forbidden");
    post(
        &srv,
        &dpath,
        c.key(),
        &json!({"account_id": owner.id, "kind": "run", "text": "hi"}),
    )
    .await
    .expect_error(403, "forbidden");

    // rule violations
    let long_kind = "k".repeat(33);
    let bad_kinds = [
        "",
        "Run",
        "run now",
        long_kind.as_str(),
        "ru/n",
        "bär",
        "run!",
        "RUN",
    ];
    for kind in bad_kinds {
        let r = post(
            &srv,
            &dpath,
            c.key(),
            &json!({"account_id": poster.id, "kind": kind, "text": "hi"}),
        )
        .await;
        assert_eq!(r.status.as_u16(), 400, "kind {kind:?}: {}", r.text);
        assert_error_shape(&r.body, "invalid_input", &r.text);
    }
    for text in [String::new(), "   ".into(), "\n\t".into(), "t".repeat(4097)] {
        let r = post(
            &srv,
            &dpath,
            c.key(),
            &json!({"account_id": poster.id, "kind": "run", "text": text}),
        )
        .await;
        assert_eq!(
            r.status.as_u16(),
            400,
            "text len {}: {}",
            text.len(),
            r.text
        );
        assert_error_shape(&r.body, "invalid_input", &r.text);
    }
    // shape violations
    for bad in [
        json!({"kind": "run", "text": "hi"}),
        json!({"account_id": poster.id, "text": "hi"}),
        json!({"account_id": poster.id, "kind": "run"}),
        json!({"account_id": poster.id, "kind": 1, "text": "hi"}),
        json!({"account_id": poster.id, "kind": "run", "text": 1}),
        json!({"account_id": 1, "kind": "run", "text": "hi"}),
        json!({"account_id": poster.id, "kind": null, "text": "hi"}),
        json!("run"),
    ] {
        let r = post(&srv, &dpath, c.key(), &bad).await;
        assert_eq!(r.status.as_u16(), 400, "{bad}: {}", r.text);
        assert_error_shape(&r.body, "bad_json", &r.text);
    }
    send_raw(
        &srv,
        Method::POST,
        &dpath,
        c.key(),
        "{\"account_id\": \"x\", \"kind\": ",
        Some("application/json"),
    )
    .await
    .expect_error(400, "bad_json");

    // nothing stored, nothing pushed
    expect_no_event(&mut o1, QUIET).await;
    assert_eq!(
        feed(&srv, &owner, &gid, "").await,
        json!({"items": [], "next": null})
    );
    assert_eq!(
        group_events(&srv, &owner, &gid, "?after=1").await["items"],
        json!([])
    );
    assert_healthy(&srv).await;

    // the limits themselves are fine
    let max_kind = "z".repeat(32);
    let max_text = "é".repeat(4096);
    let ok = [
        ("a", "x"),
        (max_kind.as_str(), max_text.as_str()),
        ("post.v1_x-y09", "  spaced  "),
    ];
    let mut ids = Vec::new();
    for (i, (kind, text)) in ok.iter().enumerate() {
        let id = post_dynamic(&srv, &c, &poster, kind, text).await;
        let v = expect_group_event(&mut o1, "group.dynamic", &gid, 2 + i as u64).await;
        assert_eq!(v["data"]["dynamic_id"], id);
        assert_eq!(v["data"]["kind"], json!(kind));
        assert_eq!(v["data"]["text"], json!(text));
        ids.push(id);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    ids.reverse();
    assert_eq!(feed_ids(&feed(&srv, &owner, &gid, "").await), ids);
    // the other community's dynamics never show up here
    post_dynamic(&srv, &other, &stranger, "run", "not bound").await;
    expect_no_event(&mut o1, QUIET).await;
    assert_eq!(feed_ids(&feed(&srv, &owner, &gid, "").await), ids);
    assert_healthy(&srv).await;
}

#[tokio::test]
async fn expired_request_cannot_be_approved() {
    let srv = Server::start_with(&["--binding-request-ttl-secs", "1"]);
    let owner = new_acct(&srv, "Owner").await;
    let admin = new_acct(&srv, "Admin").await;
    let gid = create_group(&srv, &owner, "G").await;
    let c = create_community(&srv, &admin, "Club").await;
    let (mut o1, _) = ws_connect(&srv, &owner).await;

    let rid = request_binding(&srv, &c, &gid, None).await;
    let v = expect_account_event(&mut o1, "binding.requested", 1).await;
    let d = &v["data"];
    assert_eq!(
        d["expires_ms"].as_u64().expect("expires_ms") - created_ms(d),
        1000,
        "TTL of 1 s: {v}"
    );
    assert_eq!(
        pending(&srv, &owner, &gid).await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // the pending pair blocks a second request before expiry
    post(
        &srv,
        &format!("/v1/communities/{}/binding-requests", c.id),
        c.key(),
        &json!({"group_id": gid}),
    )
    .await
    .expect_error(409, "already_requested");

    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        pending(&srv, &owner, &gid).await,
        json!({"items": [], "next": null})
    );
    approve(&srv, &owner, &gid, &rid)
        .await
        .expect_error(409, "request_expired");
    assert_eq!(get_group(&srv, &owner, &gid).await["bindings"], json!([]));
    expect_no_event(&mut o1, QUIET).await;

    // after expiry the community may ask again, and a fresh request can be approved
    let rid2 = request_binding(&srv, &c, &gid, Some("again")).await;
    assert_ne!(rid, rid2);
    let v = expect_account_event(&mut o1, "binding.requested", 2).await;
    assert_eq!(v["data"]["request_id"], rid2);
    approve_ok(&srv, &owner, &gid, &rid2).await;
    expect_group_event(&mut o1, "binding.approved", &gid, 1).await;
    assert_eq!(
        get_group(&srv, &owner, &gid).await["bindings"],
        json!([c.id])
    );
    assert_healthy(&srv).await;
}

#[tokio::test]
async fn offline_owner_catches_up_with_resume() {
    let srv = Server::start();
    let owner = new_acct(&srv, "Owner").await;
    let admin = new_acct(&srv, "Admin").await;
    let gid = create_group(&srv, &owner, "G").await;
    let c = create_community(&srv, &admin, "Club").await;

    // the owner is offline
    let t0 = now_ms();
    let rid = request_binding(&srv, &c, &gid, Some("while you were away")).await;

    let (mut o1, hello) = ws_connect(&srv, &owner).await;
    assert_eq!(
        hello_seq(&hello),
        1,
        "the request is the owner's first account event"
    );
    expect_no_event(&mut o1, Duration::from_millis(200)).await;
    send_json(&mut o1, &json!({"type": "resume", "since": 0})).await;
    let v = expect_account_event(&mut o1, "binding.requested", 1).await;
    let d = &v["data"];
    assert_eq!(d["request_id"], rid);
    assert_eq!(d["group_id"], gid);
    assert_eq!(d["community_id"], c.id);
    assert_eq!(d["community_name"], "Club");
    assert_eq!(d["note"], "while you were away");
    assert_time_between(d, t0);
    assert_eq!(
        pending(&srv, &owner, &gid).await,
        json!({"items": [d], "next": null})
    );
    // resume is followed by live events
    let c2 = create_community(&srv, &admin, "Club two").await;
    let rid2 = request_binding(&srv, &c2, &gid, None).await;
    let v = expect_account_event(&mut o1, "binding.requested", 2).await;
    assert_eq!(v["data"]["request_id"], rid2);

    // a second device resuming from 1 gets only the newer one
    let (mut o2, hello) = ws_connect(&srv, &owner).await;
    assert_eq!(hello_seq(&hello), 2);
    send_json(&mut o2, &json!({"type": "resume", "since": 1})).await;
    let v = expect_account_event(&mut o2, "binding.requested", 2).await;
    assert_eq!(v["data"]["request_id"], rid2);
    expect_no_event(&mut o2, QUIET).await;
    assert_healthy(&srv).await;
}

#[tokio::test]
async fn one_community_bound_to_two_groups() {
    let srv = Server::start();
    let o1 = new_acct(&srv, "Owner one").await;
    let o2 = new_acct(&srv, "Owner two").await;
    let shared = new_acct(&srv, "Shared").await;
    let poster = new_acct(&srv, "Poster").await;
    let g1 = create_group(&srv, &o1, "G1").await;
    let g2 = create_group(&srv, &o2, "G2").await;
    add_member(&srv, &o1, &g1, &shared).await;
    add_member(&srv, &o2, &g2, &shared).await;
    let c = create_community(&srv, &poster, "Club").await;
    community_add_member(&srv, &c, &poster).await;
    bind(&srv, &c, &o1, &g1).await;
    bind(&srv, &c, &o2, &g2).await;

    let (mut w1, _) = ws_connect(&srv, &o1).await;
    let (mut w2, _) = ws_connect(&srv, &o2).await;
    let (mut ws, _) = ws_connect(&srv, &shared).await;
    let (mut wp, _) = ws_connect(&srv, &poster).await;

    let id = post_dynamic(&srv, &c, &poster, "news", "to both").await;
    let f1 = expect_group_event(&mut w1, "group.dynamic", &g1, 2).await;
    let f2 = expect_group_event(&mut w2, "group.dynamic", &g2, 2).await;
    assert_eq!(f1["data"]["dynamic_id"], id);
    assert_eq!(f2["data"]["dynamic_id"], id);
    assert_eq!(
        feed_item(&f1),
        feed_item(&f2),
        "same dynamic in both frames"
    );
    // the shared member gets one frame per group
    let a = next_non_pong(&mut ws, EVENT_TIMEOUT).await;
    let b = next_non_pong(&mut ws, EVENT_TIMEOUT).await;
    let mut got = vec![a, b];
    got.sort_by_key(|v| v["data"]["group_id"] != json!(g1));
    assert_eq!(got, vec![f1.clone(), f2.clone()]);
    expect_no_event(&mut ws, QUIET).await;
    // the poster is in no group: nothing
    expect_no_event(&mut wp, Duration::from_millis(50)).await;

    assert_eq!(
        feed(&srv, &o1, &g1, "").await["items"],
        json!([feed_item(&f1)])
    );
    assert_eq!(
        feed(&srv, &shared, &g2, "").await["items"],
        json!([feed_item(&f2)])
    );
    assert_eq!(
        get_group(&srv, &shared, &g1).await["bindings"],
        json!([c.id])
    );

    // revoking one binding leaves the other
    revoke_as(&srv, o1.tok(), &g1, &c.id).await.expect(204);
    expect_group_event(&mut w1, "binding.revoked", &g1, 3).await;
    let r = expect_group_event(&mut ws, "binding.revoked", &g1, 3).await;
    assert_eq!(r["data"]["by"], "owner");
    let id2 = post_dynamic(&srv, &c, &poster, "news", "only g2").await;
    let f = expect_group_event(&mut w2, "group.dynamic", &g2, 3).await;
    assert_eq!(f["data"]["dynamic_id"], id2);
    let f = expect_group_event(&mut ws, "group.dynamic", &g2, 3).await;
    assert_eq!(f["data"]["dynamic_id"], id2);
    expect_no_event(&mut w1, QUIET).await;
    expect_no_event(&mut ws, Duration::from_millis(50)).await;
    assert_eq!(feed(&srv, &o1, &g1, "").await["items"], json!([]));
    assert_eq!(feed_ids(&feed(&srv, &o2, &g2, "").await), vec![id2, id]);
    assert_healthy(&srv).await;
}

#[tokio::test]
async fn feed_merges_communities_and_pages() {
    let srv = Server::start();
    let owner = new_acct(&srv, "Owner").await;
    let member = new_acct(&srv, "Member").await;
    let outsider = new_acct(&srv, "Outsider").await;
    let p1 = new_acct(&srv, "P1").await;
    let p2 = new_acct(&srv, "P2").await;
    let gid = create_group(&srv, &owner, "G").await;
    add_member(&srv, &owner, &gid, &member).await;
    let c1 = create_community(&srv, &owner, "C1").await;
    let c2 = create_community(&srv, &owner, "C2").await;
    community_add_member(&srv, &c1, &p1).await;
    community_add_member(&srv, &c2, &p2).await;
    community_add_member(&srv, &c2, &p1).await;
    let (mut mw, _) = ws_connect(&srv, &member).await;

    bind(&srv, &c1, &owner, &gid).await;
    expect_group_event(&mut mw, "binding.approved", &gid, 1).await;
    // c2 is not bound yet: this one must never appear
    let early = post_dynamic(&srv, &c2, &p2, "early", "before c2 approval").await;
    tokio::time::sleep(Duration::from_millis(3)).await;
    bind(&srv, &c2, &owner, &gid).await;
    expect_group_event(&mut mw, "binding.approved", &gid, 2).await;
    assert_eq!(
        get_group(&srv, &owner, &gid).await["bindings"],
        json!(sorted(&[&c1.id, &c2.id]))
    );

    let plan: Vec<(&Community, &Acct)> = vec![
        (&c1, &p1),
        (&c2, &p2),
        (&c1, &p1),
        (&c2, &p1),
        (&c2, &p2),
        (&c1, &p1),
        (&c2, &p2),
    ];
    let mut frames = Vec::new();
    for (i, (c, p)) in plan.iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(3)).await;
        let id = post_dynamic(&srv, c, p, "post", &format!("dynamic {i}")).await;
        let v = expect_group_event(&mut mw, "group.dynamic", &gid, 3 + i as u64).await;
        assert_eq!(v["data"]["dynamic_id"], id);
        assert_eq!(v["data"]["community_id"], json!(c.id));
        assert_eq!(v["data"]["account_id"], json!(p.id));
        frames.push(v);
    }
    let expected: Vec<Value> = frames.iter().rev().map(feed_item).collect();
    let path = format!("/v1/groups/{gid}/dynamics");
    for limit in [1, 2, 3, 7, 50] {
        let all = walk_pages(&srv, &member, &path, limit).await;
        assert_eq!(all, expected, "feed with limit {limit}");
    }
    let early_in_feed = walk_pages(&srv, &owner, &path, 50)
        .await
        .iter()
        .any(|i| i["dynamic_id"] == json!(early));
    assert!(
        !early_in_feed,
        "a dynamic from before the approval is in the feed"
    );

    // access and bad limits
    get(&srv, &path, outsider.tok())
        .await
        .expect_error(403, "forbidden");
    get(&srv, &path, None)
        .await
        .expect_error(401, "unauthorized");
    get(
        &srv,
        "/v1/groups/00000000000000000000000000000000/dynamics",
        owner.tok(),
    )
    .await
    .expect_error(404, "not_found");
    for q in ["?limit=0", "?limit=201", "?limit=x"] {
        get(&srv, &format!("{path}{q}"), member.tok())
            .await
            .expect_error(400, "invalid_input");
    }

    // revoke c1: its dynamics leave the feed, c2's stay
    revoke_as(&srv, c1.key(), &gid, &c1.id).await.expect(204);
    expect_group_event(&mut mw, "binding.revoked", &gid, 10).await;
    let rest: Vec<Value> = expected
        .iter()
        .filter(|i| i["community_id"] == json!(c2.id))
        .cloned()
        .collect();
    assert_eq!(rest.len(), 4);
    assert_eq!(walk_pages(&srv, &member, &path, 3).await, rest);
    // c1 goes silent, c2 still arrives
    post_dynamic(&srv, &c1, &p1, "post", "silent").await;
    expect_no_event(&mut mw, QUIET).await;
    let id = post_dynamic(&srv, &c2, &p1, "post", "still here").await;
    let v = expect_group_event(&mut mw, "group.dynamic", &gid, 11).await;
    assert_eq!(v["data"]["dynamic_id"], id);
    assert_healthy(&srv).await;
}

#[tokio::test]
async fn group_seq_rises_by_one_across_mixed_events() {
    let srv = Server::start();
    let owner = new_acct(&srv, "Owner").await;
    let member = new_acct(&srv, "Member").await;
    let friend = new_acct(&srv, "Friend").await;
    let poster = new_acct(&srv, "Poster").await;
    let gid = create_group(&srv, &owner, "Mixed").await;
    add_member(&srv, &owner, &gid, &member).await;
    let c = create_community(&srv, &poster, "Club").await;
    community_add_member(&srv, &c, &poster).await;
    let (mut ow, _) = ws_connect(&srv, &owner).await;
    let (mut mw, _) = ws_connect(&srv, &member).await;
    let mut member_frames = Vec::new();

    // group 1: message
    post_message(&srv, &owner, &gid, "one").await;
    expect_group_event(&mut ow, "group.message", &gid, 1).await;
    member_frames.push(expect_group_event(&mut mw, "group.message", &gid, 1).await);
    // account 1: binding.requested (owner only)
    let rid = request_binding(&srv, &c, &gid, None).await;
    expect_account_event(&mut ow, "binding.requested", 1).await;
    // group 2: binding.approved
    approve_ok(&srv, &owner, &gid, &rid).await;
    expect_group_event(&mut ow, "binding.approved", &gid, 2).await;
    member_frames.push(expect_group_event(&mut mw, "binding.approved", &gid, 2).await);
    // account 2: friend.requested
    post(
        &srv,
        "/v1/friends/requests",
        friend.tok(),
        &json!({"to": owner.id}),
    )
    .await
    .expect(201);
    let v = expect_account_event(&mut ow, "friend.requested", 2).await;
    assert_eq!(v["data"]["account_id"], friend.id);
    // group 3: dynamic
    post_dynamic(&srv, &c, &poster, "k", "dyn").await;
    expect_group_event(&mut ow, "group.dynamic", &gid, 3).await;
    member_frames.push(expect_group_event(&mut mw, "group.dynamic", &gid, 3).await);
    // group 4: message by the member
    post_message(&srv, &member, &gid, "four").await;
    expect_group_event(&mut ow, "group.message", &gid, 4).await;
    member_frames.push(expect_group_event(&mut mw, "group.message", &gid, 4).await);
    // group 5: revoked by the community
    revoke_as(&srv, c.key(), &gid, &c.id).await.expect(204);
    let v = expect_group_event(&mut ow, "binding.revoked", &gid, 5).await;
    assert_eq!(v["data"]["by"], "community");
    member_frames.push(expect_group_event(&mut mw, "binding.revoked", &gid, 5).await);
    // account 3 and 4: requested again, rejected
    let rid2 = request_binding(&srv, &c, &gid, None).await;
    expect_account_event(&mut ow, "binding.requested", 3).await;
    let r = reject(&srv, &owner, &gid, &rid2).await;
    assert_eq!(
        r.expect(200),
        &json!({"group_id": gid, "request_id": rid2, "status": "rejected"})
    );
    expect_account_event(&mut ow, "binding.rejected", 4).await;
    // group 6: message
    post_message(&srv, &owner, &gid, "six").await;
    expect_group_event(&mut ow, "group.message", &gid, 6).await;
    member_frames.push(expect_group_event(&mut mw, "group.message", &gid, 6).await);
    // the member saw no account events at all
    expect_no_event(&mut mw, QUIET).await;

    // the group log replays exactly what the members saw
    assert_eq!(
        group_events(&srv, &member, &gid, "?after=0").await["items"],
        json!(member_frames)
    );
    assert_eq!(
        group_events(&srv, &owner, &gid, "?after=4").await["items"],
        json!(member_frames[4..].to_vec())
    );
    assert_eq!(
        group_events(&srv, &owner, &gid, "?after=1&limit=2").await["items"],
        json!(member_frames[1..3].to_vec())
    );
    // account seqs: the owner is at 4, the member at 0
    let (_o2, h) = ws_connect(&srv, &owner).await;
    assert_eq!(hello_seq(&h), 4);
    let (_m2, h) = ws_connect(&srv, &member).await;
    assert_eq!(hello_seq(&h), 0);
    assert_healthy(&srv).await;
}

#[tokio::test]
async fn binding_survives_sigkill_right_after_approval() {
    let mut srv = Server::start();
    let owner = new_acct(&srv, "Owner").await;
    let member = new_acct(&srv, "Member").await;
    let poster = new_acct(&srv, "Poster").await;
    let gid = create_group(&srv, &owner, "Durable").await;
    add_member(&srv, &owner, &gid, &member).await;
    let c = create_community(&srv, &poster, "Club").await;
    community_add_member(&srv, &c, &poster).await;
    let rid = request_binding(&srv, &c, &gid, None).await;
    approve_ok(&srv, &owner, &gid, &rid).await;
    srv.kill();

    srv.restart();
    let g = get_group(&srv, &member, &gid).await;
    assert_eq!(
        g["bindings"],
        json!([c.id]),
        "binding lost in the crash: {g}"
    );
    assert_eq!(pending(&srv, &owner, &gid).await["items"], json!([]));
    let (mut mw, _) = ws_connect(&srv, &member).await;
    let id = post_dynamic(&srv, &c, &poster, "run", "after restart").await;
    let v = expect_group_event(&mut mw, "group.dynamic", &gid, 2).await;
    assert_eq!(v["data"]["dynamic_id"], id);
    assert_eq!(v["data"]["community_id"], c.id);
    assert_eq!(v["data"]["text"], "after restart");
    assert_eq!(
        feed(&srv, &member, &gid, "").await,
        json!({"items": [feed_item(&v)], "next": null})
    );
    // the approval's event survived too
    let e = group_events(&srv, &member, &gid, "?after=0").await;
    let types: Vec<&str> = e["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, vec!["binding.approved", "group.dynamic"]);
    // the community can still revoke with its key
    revoke_as(&srv, c.key(), &gid, &c.id).await.expect(204);
    expect_group_event(&mut mw, "binding.revoked", &gid, 3).await;
    assert_healthy(&srv).await;
}

/// A JSON array is the wrong JSON type for these bodies (they are objects): 400 bad_json,
/// and nothing is stored (serde would otherwise read `["x"]` as a struct by position).
#[tokio::test]
async fn array_bodies_are_bad_json_and_store_nothing() {
    let srv = Server::start();
    let owner = new_acct(&srv, "Owner").await;
    let poster = new_acct(&srv, "Poster").await;
    let gid = create_group(&srv, &owner, "G").await;
    let c = create_community(&srv, &owner, "Club").await;
    community_add_member(&srv, &c, &poster).await;
    let (mut o1, _) = ws_connect(&srv, &owner).await;

    let cases: Vec<(String, Option<&str>, Value)> = vec![
        ("/v1/communities".into(), owner.tok(), json!(["Club two"])),
        (
            format!("/v1/communities/{}/binding-requests", c.id),
            c.key(),
            json!([gid, "note"]),
        ),
        (
            format!("/v1/communities/{}/members", c.id),
            c.key(),
            json!([owner.id]),
        ),
    ];
    for (path, key, body) in &cases {
        let r = post(&srv, path, *key, body).await;
        assert_eq!(r.status.as_u16(), 400, "POST {path} {body}: {}", r.text);
        assert_error_shape(&r.body, "bad_json", &r.text);
    }
    // nothing stored: no pending request, no event, owner still not a community member
    assert_eq!(pending(&srv, &owner, &gid).await["items"], json!([]));
    post(
        &srv,
        &format!("/v1/communities/{}/dynamics", c.id),
        c.key(),
        &json!({"account_id": owner.id, "kind": "k", "text": "t"}),
    )
    .await
    .expect_error(403, "forbidden");
    expect_no_event(&mut o1, QUIET).await;

    // dynamics too (after binding, so a stored one would show)
    bind(&srv, &c, &owner, &gid).await;
    expect_account_event(&mut o1, "binding.requested", 1).await;
    expect_group_event(&mut o1, "binding.approved", &gid, 1).await;
    let r = post(
        &srv,
        &format!("/v1/communities/{}/dynamics", c.id),
        c.key(),
        &json!([poster.id, "run", "array body"]),
    )
    .await;
    assert_eq!(r.status.as_u16(), 400, "array dynamic: {}", r.text);
    assert_error_shape(&r.body, "bad_json", &r.text);
    expect_no_event(&mut o1, QUIET).await;
    assert_eq!(feed(&srv, &owner, &gid, "").await["items"], json!([]));
    assert_healthy(&srv).await;
}
