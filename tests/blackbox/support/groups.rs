//! Helpers for the IM group / community / binding tests (used with `mod common;` and
//! `mod group_support;` side by side in the test crate).

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

/// Window used to assert that an event does NOT arrive.
pub const QUIET: Duration = Duration::from_millis(500);

/// A community: id and its server key.
#[derive(Debug, Clone)]
pub struct Community {
    pub id: String,
    pub key: String,
}

impl Community {
    pub fn key(&self) -> Option<&str> {
        Some(self.key.as_str())
    }
}

#[track_caller]
pub fn s(v: &Value, field: &str) -> String {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no string `{field}` in {v}"))
        .to_string()
}

/// `POST /v1/groups` → group id.
pub async fn create_group(srv: &Server, owner: &Acct, name: &str) -> String {
    let r = post(srv, "/v1/groups", owner.tok(), &json!({ "name": name })).await;
    let b = r.expect(201);
    let gid = s(b, "group_id");
    assert!(!gid.is_empty());
    assert_eq!(
        b.as_object().unwrap().len(),
        1,
        "create group answers only group_id: {b}"
    );
    gid
}

pub async fn add_member(srv: &Server, owner: &Acct, gid: &str, who: &Acct) {
    let r = post(
        srv,
        &format!("/v1/groups/{gid}/members"),
        owner.tok(),
        &json!({ "account_id": who.id }),
    )
    .await;
    r.expect(204);
}

/// `DELETE /v1/groups/{gid}/members/{member}` as `by` (leaving, when `by` is `member`).
pub async fn remove_member(srv: &Server, gid: &str, member: &Acct, by: &Acct) -> Resp {
    delete(
        srv,
        &format!("/v1/groups/{gid}/members/{}", member.id),
        by.tok(),
    )
    .await
}

pub async fn get_group(srv: &Server, who: &Acct, gid: &str) -> Value {
    get(srv, &format!("/v1/groups/{gid}"), who.tok())
        .await
        .expect(200)
        .clone()
}

pub fn sorted(ids: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// `POST /v1/groups/{gid}/messages` → message id.
pub async fn post_message(srv: &Server, who: &Acct, gid: &str, text: &str) -> String {
    let r = try_post_message(srv, who, gid, text).await;
    s(r.expect(201), "message_id")
}

/// `POST /v1/groups/{gid}/messages`, whatever it answers.
pub async fn try_post_message(srv: &Server, who: &Acct, gid: &str, text: &str) -> Resp {
    post(
        srv,
        &format!("/v1/groups/{gid}/messages"),
        who.tok(),
        &json!({ "text": text }),
    )
    .await
}

/// Reads group events of `gid` from `ws` until `group_seq` `last`: they must run from
/// `after + 1` to `last`, once each, in the contract's shape, with no other frame among
/// them. Answers them.
pub async fn expect_group_run(ws: &mut Ws, gid: &str, after: u64, last: u64) -> Vec<Value> {
    let mut got = Vec::new();
    for want in after + 1..=last {
        let v = next_non_pong(ws, EVENT_TIMEOUT).await;
        check_event_shape(&v);
        assert_eq!(v["group_id"], gid, "a frame of group {gid}: {v}");
        assert_eq!(v["group_seq"], want, "group events in order, once: {v}");
        got.push(v);
    }
    got
}

/// `POST /v1/communities` (client token).
pub async fn create_community(srv: &Server, creator: &Acct, name: &str) -> Community {
    let r = post(
        srv,
        "/v1/communities",
        creator.tok(),
        &json!({ "name": name }),
    )
    .await;
    let b = r.expect(201);
    let c = Community {
        id: s(b, "community_id"),
        key: s(b, "server_key"),
    };
    assert!(!c.id.is_empty() && !c.key.is_empty());
    c
}

/// `POST /v1/communities/{cid}/members` with the community's key.
pub async fn community_add_member(srv: &Server, c: &Community, who: &Acct) {
    let r = post(
        srv,
        &format!("/v1/communities/{}/members", c.id),
        c.key(),
        &json!({ "account_id": who.id }),
    )
    .await;
    r.expect(204);
}

/// `POST /v1/communities/{cid}/dynamics` → dynamic id.
pub async fn post_dynamic(
    srv: &Server,
    c: &Community,
    who: &Acct,
    kind: &str,
    text: &str,
) -> String {
    let r = post(
        srv,
        &format!("/v1/communities/{}/dynamics", c.id),
        c.key(),
        &json!({ "account_id": who.id, "kind": kind, "text": text }),
    )
    .await;
    s(r.expect(201), "dynamic_id")
}

/// `POST /v1/communities/{cid}/binding-requests` → request id.
pub async fn request_binding(srv: &Server, c: &Community, gid: &str, note: Option<&str>) -> String {
    let mut body = json!({ "group_id": gid });
    if let Some(n) = note {
        body["note"] = json!(n);
    }
    let r = post(
        srv,
        &format!("/v1/communities/{}/binding-requests", c.id),
        c.key(),
        &body,
    )
    .await;
    s(r.expect(201), "request_id")
}

pub async fn approve(srv: &Server, who: &Acct, gid: &str, rid: &str) -> crate::support::Resp {
    post_empty(
        srv,
        &format!("/v1/groups/{gid}/binding-requests/{rid}/approve"),
        who.tok(),
    )
    .await
}

pub async fn reject(srv: &Server, who: &Acct, gid: &str, rid: &str) -> crate::support::Resp {
    post_empty(
        srv,
        &format!("/v1/groups/{gid}/binding-requests/{rid}/reject"),
        who.tok(),
    )
    .await
}

/// Approve and check the exact 200 answer.
pub async fn approve_ok(srv: &Server, owner: &Acct, gid: &str, rid: &str) {
    let r = approve(srv, owner, gid, rid).await;
    assert_eq!(
        r.expect(200),
        &json!({"group_id": gid, "request_id": rid, "status": "approved"})
    );
}

/// Full handshake without looking at events: request + approve.
pub async fn bind(srv: &Server, c: &Community, owner: &Acct, gid: &str) -> String {
    let rid = request_binding(srv, c, gid, None).await;
    approve_ok(srv, owner, gid, &rid).await;
    rid
}

pub async fn revoke_as(
    srv: &Server,
    token: Option<&str>,
    gid: &str,
    cid: &str,
) -> crate::support::Resp {
    send(
        srv,
        Method::DELETE,
        &format!("/v1/groups/{gid}/bindings/{cid}"),
        token,
        None,
    )
    .await
}

pub async fn pending(srv: &Server, owner: &Acct, gid: &str) -> Value {
    get(
        srv,
        &format!("/v1/groups/{gid}/binding-requests"),
        owner.tok(),
    )
    .await
    .expect(200)
    .clone()
}

pub async fn feed(srv: &Server, who: &Acct, gid: &str, query: &str) -> Value {
    get(srv, &format!("/v1/groups/{gid}/dynamics{query}"), who.tok())
        .await
        .expect(200)
        .clone()
}

pub async fn history(srv: &Server, who: &Acct, gid: &str, query: &str) -> Value {
    get(srv, &format!("/v1/groups/{gid}/messages{query}"), who.tok())
        .await
        .expect(200)
        .clone()
}

pub async fn group_events(srv: &Server, who: &Acct, gid: &str, query: &str) -> Value {
    get(srv, &format!("/v1/groups/{gid}/events{query}"), who.tok())
        .await
        .expect(200)
        .clone()
}

/// Walk a list endpoint with `limit` until `next` is null; returns all items in order.
/// Checks every non-final page is full and the last page has `next: null`.
pub async fn walk_pages(srv: &Server, who: &Acct, path: &str, limit: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let mut url = format!("{path}?limit={limit}");
        if let Some(c) = &cursor {
            url.push_str(&format!("&before={c}"));
        }
        let r = get(srv, &url, who.tok()).await;
        let b = r.expect(200);
        let items = b["items"]
            .as_array()
            .unwrap_or_else(|| panic!("no items array: {b}"));
        assert!(items.len() <= limit, "page larger than limit {limit}: {b}");
        out.extend(items.iter().cloned());
        match &b["next"] {
            Value::Null => return out,
            Value::String(c) => {
                assert!(!items.is_empty(), "empty page with a non-null next: {b}");
                assert_eq!(items.len(), limit, "short page with a non-null next: {b}");
                cursor = Some(c.clone());
            }
            other => panic!("next must be a string or null, got {other} in {b}"),
        }
    }
    panic!("paging of {path} did not end after 100 pages");
}

/// Next frame (skipping pongs) must be the group event `ty` of group `gid` with group
/// seq `seq`; returns it.
pub async fn expect_group_event(ws: &mut Ws, ty: &str, gid: &str, seq: u64) -> Value {
    let v = next_non_pong(ws, EVENT_TIMEOUT).await;
    assert_eq!(v["type"], ty, "expected group event {ty}, got {v}");
    assert_eq!(v["group_seq"], json!(seq), "group_seq of {ty}: {v}");
    assert!(v.get("seq").is_none(), "a group event carries no seq: {v}");
    assert_eq!(v["data"]["group_id"], gid, "data.group_id of {ty}: {v}");
    assert_eq!(v["group_id"], gid, "top-level group_id of {ty}: {v}");
    v
}

/// Next frame (skipping pongs) must be the account event `ty` with account seq `seq`.
pub async fn expect_account_event(ws: &mut Ws, ty: &str, seq: u64) -> Value {
    let v = next_non_pong(ws, EVENT_TIMEOUT).await;
    assert_eq!(v["type"], ty, "expected account event {ty}, got {v}");
    assert_eq!(v["seq"], json!(seq), "account seq of {ty}: {v}");
    assert!(
        v.get("group_seq").is_none(),
        "an account event has no group_seq: {v}"
    );
    assert!(v["data"].is_object(), "event without data: {v}");
    v
}

#[track_caller]
pub fn created_ms(v: &Value) -> u64 {
    v["created_ms"]
        .as_u64()
        .unwrap_or_else(|| panic!("created_ms is not a non-negative integer: {v}"))
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Assert `created_ms` is a plausible wall-clock time between `lo` and now (+1 s slack).
#[track_caller]
pub fn assert_time_between(v: &Value, lo: u64) {
    let t = created_ms(v);
    let hi = now_ms() + 1000;
    assert!(
        t + 1000 >= lo && t <= hi,
        "created_ms {t} outside [{lo}, {hi}]: {v}"
    );
}
