//! Caps on growth from other people's input (issue 15, item 6): pending friend requests
//! (with a decline), contact matches, members per group, pending binding requests per group
//! (paged). Each cap answers 409 `limit_reached` in the error shape, stores nothing, and the
//! server stays up. Tokens are in `sessions.rs`, log retention in `retention.rs`.

use serde_json::{Value, json};

use crate::support::groups::{add_member, create_community, create_group, request_binding, sorted};
use crate::support::*;

async fn ask(s: &Server, from: &Acct, to: &Acct) -> Resp {
    post(s, "/v1/friends/requests", from.tok(), &json!({"to": to.id})).await
}

async fn incoming(s: &Server, a: &Acct) -> Vec<String> {
    let mut ids = item_ids(get(s, "/v1/friends/requests", a.tok()).await.expect(200));
    ids.sort();
    ids
}

#[tokio::test]
async fn pending_friend_requests_are_capped_and_a_request_can_be_declined() {
    let s = Server::start_with(&["--max-friend-requests", "2"]);
    let t = new_acct(&s, "Target").await;
    let (a, b, c) = (
        new_acct(&s, "A").await,
        new_acct(&s, "B").await,
        new_acct(&s, "C").await,
    );
    ask(&s, &a, &t).await.expect(201);
    ask(&s, &b, &t).await.expect(201);
    ask(&s, &c, &t).await.expect_error(409, "limit_reached");
    assert_eq!(
        incoming(&s, &t).await,
        sorted(&[&a.id, &b.id]),
        "nothing stored"
    );

    // Declining makes room; the requester is not told, and may ask again.
    let path = format!("/v1/friends/requests/{}", a.id);
    assert_eq!(delete(&s, &path, t.tok()).await.status, 204);
    delete(&s, &path, t.tok())
        .await
        .expect_error(404, "not_found");
    delete(&s, "/v1/friends/requests/nothing-like-an-id", t.tok())
        .await
        .expect_error(404, "not_found");
    delete(&s, &path, None)
        .await
        .expect_error(401, "unauthorized");
    assert_eq!(incoming(&s, &t).await, vec![b.id.clone()]);
    post_empty(&s, &format!("{path}/accept"), t.tok())
        .await
        .expect_error(404, "not_found");
    ask(&s, &c, &t).await.expect(201);
    ask(&s, &a, &t).await.expect_error(409, "limit_reached");
    // Accepting frees a place too.
    post_empty(
        &s,
        &format!("/v1/friends/requests/{}/accept", b.id),
        t.tok(),
    )
    .await
    .expect(200);
    ask(&s, &a, &t).await.expect(201);
    assert_eq!(incoming(&s, &t).await, sorted(&[&a.id, &c.id]));
    assert_healthy(&s).await;
}

async fn upload(s: &Server, a: &Acct, emails: &[&str]) -> Resp {
    let contacts: Vec<Value> = emails
        .iter()
        .map(|e| json!({"kind": "email", "value": e}))
        .collect();
    post(
        s,
        "/v1/me/contacts",
        a.tok(),
        &json!({"contacts": contacts}),
    )
    .await
}

#[tokio::test]
async fn contact_matches_per_account_are_capped() {
    let s = Server::start_with(&["--max-contact-matches", "2"]);
    let a = new_acct(&s, "Uploader").await;
    for who in ["b", "c", "d"] {
        new_acct_with(&s, who, Some(&format!("{who}@example.com")), None).await;
    }
    let all = ["b@example.com", "c@example.com", "d@example.com"];
    upload(&s, &a, &all)
        .await
        .expect_error(409, "limit_reached");
    let suggestions = get(&s, "/v1/friends/suggestions", a.tok()).await;
    assert_eq!(
        suggestions.expect(200)["items"],
        json!([]),
        "nothing stored"
    );
    upload(&s, &a, &all[..2]).await.expect(200);
    // The same matches again store nothing new, so they fit.
    upload(&s, &a, &all[..2]).await.expect(200);
    upload(&s, &a, &all[2..])
        .await
        .expect_error(409, "limit_reached");
    let suggestions = get(&s, "/v1/friends/suggestions", a.tok()).await;
    assert_eq!(item_ids(suggestions.expect(200)).len(), 2);
    assert_healthy(&s).await;
}

#[tokio::test]
async fn a_full_group_refuses_members() {
    let s = Server::start_with(&["--max-group-members", "2"]);
    let owner = new_acct(&s, "Owner").await;
    let (m1, m2) = (new_acct(&s, "M1").await, new_acct(&s, "M2").await);
    let gid = create_group(&s, &owner, "Small").await;
    add_member(&s, &owner, &gid, &m1).await;
    let path = format!("/v1/groups/{gid}/members");
    post(&s, &path, owner.tok(), &json!({"account_id": m2.id}))
        .await
        .expect_error(409, "limit_reached");
    // Adding a member again is still 204: it changes nothing.
    let again = post(&s, &path, owner.tok(), &json!({"account_id": m1.id})).await;
    assert_eq!(again.status, 204);
    let view = get(&s, &format!("/v1/groups/{gid}"), owner.tok()).await;
    assert_eq!(
        view.expect(200)["members"].as_array().map(Vec::len),
        Some(2)
    );
    // A member leaving makes room.
    let left = delete(&s, &format!("{path}/{}", m1.id), m1.tok()).await;
    assert_eq!(left.status, 204);
    add_member(&s, &owner, &gid, &m2).await;
    assert_healthy(&s).await;
}

#[tokio::test]
async fn pending_binding_requests_are_capped_and_listed_in_pages() {
    let s = Server::start_with(&["--max-binding-requests", "3"]);
    let owner = new_acct(&s, "Owner").await;
    let gid = create_group(&s, &owner, "Hikers").await;
    let mut rids = Vec::new();
    for n in 0..4 {
        let c = create_community(&s, &owner, &format!("Club {n}")).await;
        if n < 3 {
            rids.push(request_binding(&s, &c, &gid, None).await);
        } else {
            post(
                &s,
                &format!("/v1/communities/{}/binding-requests", c.id),
                c.key(),
                &json!({"group_id": gid}),
            )
            .await
            .expect_error(409, "limit_reached");
        }
    }
    let path = format!("/v1/groups/{gid}/binding-requests");
    let whole = get(&s, &path, owner.tok()).await;
    let whole = whole.expect(200);
    assert_eq!(whole["next"], Value::Null, "one page without a limit");
    let newest_first: Vec<String> = whole["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["request_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(newest_first.len(), 3);
    let paged = crate::support::groups::walk_pages(&s, &owner, &path, 2).await;
    let paged: Vec<String> = paged
        .iter()
        .map(|r| r["request_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(paged, newest_first, "pages walk the same list");
    get(&s, &format!("{path}?before=bogus"), owner.tok())
        .await
        .expect_error(400, "invalid_input");
    get(&s, &format!("{path}?limit=0"), owner.tok())
        .await
        .expect_error(400, "invalid_input");
    // Rejecting one makes room for another community.
    let reject = format!("{path}/{}/reject", rids[0]);
    post_empty(&s, &reject, owner.tok()).await.expect(200);
    let c = create_community(&s, &owner, "Late club").await;
    request_binding(&s, &c, &gid, None).await;
    assert_healthy(&s).await;
}
