//! Platform accounts linked to the communication account.

use crate::support::*;
use reqwest::Method;
use serde_json::{Value, json};

const SECRET: &str = "hunter2-very-secret-value-42";

fn webhook(handle: &str) -> Value {
    json!({"platform": "webhook", "handle": handle,
           "config": {"url": "http://127.0.0.1:9/hook", "secret": SECRET}})
}

async fn link(s: &Server, a: &Acct, body: &Value) -> Resp {
    post(s, "/v1/me/platforms", a.tok(), body).await
}

async fn list(s: &Server, a: &Acct) -> Value {
    let r = get(s, "/v1/me/platforms", a.tok()).await;
    assert!(
        !r.text.contains(SECRET),
        "secret echoed by GET /v1/me/platforms: {}",
        r.text
    );
    assert!(!r.text.contains("\"config\""), "config echoed: {}", r.text);
    r.expect(200).clone()
}

#[tokio::test]
async fn link_list_and_delete_a_webhook() {
    let s = Server::start();
    let a = new_acct(&s, "Linker").await;
    assert_eq!(list(&s, &a).await["items"], json!([]));

    let r = link(&s, &a, &webhook("linker-hook")).await;
    let body = r.expect(201);
    let link_id = body["link_id"].as_str().expect("link_id").to_string();
    assert!(!link_id.is_empty());
    assert!(
        !r.text.contains(SECRET),
        "secret echoed on create: {}",
        r.text
    );

    let r2 = link(
        &s,
        &a,
        &json!({"platform": "webhook", "handle": "second",
                "config": {"url": "https://example.com/in", "secret": SECRET}}),
    )
    .await;
    let link2 = r2.expect(201)["link_id"].as_str().unwrap().to_string();
    assert_ne!(link_id, link2);

    let l = list(&s, &a).await;
    let mut items = l["items"].as_array().unwrap().clone();
    items.sort_by_key(|i| i["handle"].as_str().unwrap().to_string());
    assert_eq!(
        items,
        vec![
            json!({"link_id": link_id, "platform": "webhook", "handle": "linker-hook",
                   "status": "active"}),
            json!({"link_id": link2, "platform": "webhook", "handle": "second",
                   "status": "active"}),
        ]
    );

    // GET /v1/me lists the links too, without secrets
    let r = get(&s, "/v1/me", a.tok()).await;
    assert!(
        !r.text.contains(SECRET),
        "secret echoed by GET /v1/me: {}",
        r.text
    );
    let platforms = r.expect(200)["platforms"]
        .as_array()
        .expect("platforms array")
        .clone();
    assert_eq!(platforms.len(), 2, "{}", r.text);
    let mut ids: Vec<String> = platforms
        .iter()
        .map(|p| p["link_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    let mut want = vec![link_id.clone(), link2.clone()];
    want.sort();
    assert_eq!(ids, want);

    let r = delete(&s, &format!("/v1/me/platforms/{link_id}"), a.tok()).await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.text);
    assert_eq!(
        list(&s, &a).await["items"],
        json!([{"link_id": link2, "platform": "webhook", "handle": "second",
                 "status": "active"}])
    );
    // deleting again is 404
    delete(&s, &format!("/v1/me/platforms/{link_id}"), a.tok())
        .await
        .expect_error(404, "not_found");
    delete(&s, "/v1/me/platforms/no-such-link", a.tok())
        .await
        .expect_error(404, "not_found");
}

#[tokio::test]
async fn unknown_platform_is_rejected() {
    let s = Server::start();
    let a = new_acct(&s, "P").await;
    for p in ["smoke-signal", "telegram"] {
        let r = link(
            &s,
            &a,
            &json!({"platform": p, "handle": "x", "config": {"url": "http://127.0.0.1:9/", "secret": "s"}}),
        )
        .await;
        assert_eq!(r.status.as_u16(), 400, "platform {p:?}: {}", r.text);
        assert_error_shape(&r.body, "unknown_platform", &r.text);
    }
    assert_eq!(list(&s, &a).await["items"], json!([]));
    assert_healthy(&s).await;
}

#[tokio::test]
async fn invalid_webhook_configs_are_rejected() {
    let s = Server::start();
    let a = new_acct(&s, "Cfg").await;
    let configs: Vec<(&str, Value)> = vec![
        ("no url", json!({"secret": "s"})),
        ("empty url", json!({"url": "", "secret": "s"})),
        (
            "ftp url",
            json!({"url": "ftp://example.com/x", "secret": "s"}),
        ),
        ("not a url", json!({"url": "just words", "secret": "s"})),
        ("url is a number", json!({"url": 5, "secret": "s"})),
        ("no secret", json!({"url": "http://127.0.0.1:9/x"})),
        (
            "empty secret",
            json!({"url": "http://127.0.0.1:9/x", "secret": ""}),
        ),
        (
            "secret is a number",
            json!({"url": "http://127.0.0.1:9/x", "secret": 12}),
        ),
        ("empty config", json!({})),
    ];
    for (what, cfg) in configs {
        let r = link(
            &s,
            &a,
            &json!({"platform": "webhook", "handle": "cfg-hook", "config": cfg}),
        )
        .await;
        assert_eq!(r.status.as_u16(), 400, "{what}: {}", r.text);
        assert_error_shape(&r.body, "invalid_input", &format!("{what}: {}", r.text));
        assert_eq!(
            list(&s, &a).await["items"],
            json!([]),
            "{what}: something was stored"
        );
    }
    assert_healthy(&s).await;
    // the handle was never taken
    link(&s, &a, &webhook("cfg-hook")).await.expect(201);
}

#[tokio::test]
async fn malformed_link_bodies_are_bad_json() {
    let s = Server::start();
    let a = new_acct(&s, "Bj").await;
    let bodies: Vec<(&str, String)> = vec![
        ("truncated", "{\"platform\": \"webhook\"".into()),
        ("missing handle", json!({"platform": "webhook", "config": {"url": "http://a/", "secret": "s"}}).to_string()),
        ("missing platform", json!({"handle": "h", "config": {"url": "http://a/", "secret": "s"}}).to_string()),
        ("platform is a number", json!({"platform": 1, "handle": "h", "config": {"url": "http://a/", "secret": "s"}}).to_string()),
        ("handle is a number", json!({"platform": "webhook", "handle": 1, "config": {"url": "http://a/", "secret": "s"}}).to_string()),
        ("array", "[]".into()),
    ];
    for (what, body) in bodies {
        let r = send_raw(
            &s,
            Method::POST,
            "/v1/me/platforms",
            a.tok(),
            body,
            Some("application/json"),
        )
        .await;
        assert_eq!(r.status.as_u16(), 400, "{what}: {}", r.text);
        assert_error_shape(&r.body, "bad_json", &format!("{what}: {}", r.text));
    }
    assert_eq!(list(&s, &a).await["items"], json!([]));
    assert_healthy(&s).await;
}

#[tokio::test]
async fn a_handle_belongs_to_one_link() {
    let s = Server::start();
    let a = new_acct(&s, "Holder").await;
    let b = new_acct(&s, "Taker").await;
    let r = link(&s, &a, &webhook("Shared-Hook")).await;
    let la = r.expect(201)["link_id"].as_str().unwrap().to_string();

    // another account, same handle
    link(&s, &b, &webhook("Shared-Hook"))
        .await
        .expect_error(409, "handle_taken");
    // another account, same handle in other case (webhook handles compare lower-cased)
    link(&s, &b, &webhook("shared-hook"))
        .await
        .expect_error(409, "handle_taken");
    // the same account again
    link(&s, &a, &webhook("Shared-Hook"))
        .await
        .expect_error(409, "handle_taken");
    link(&s, &a, &webhook("SHARED-HOOK"))
        .await
        .expect_error(409, "handle_taken");

    assert_eq!(list(&s, &b).await["items"], json!([]));
    assert_eq!(item_ids(&list(&s, &a).await), vec![la.clone()]);

    // after A unlinks it, B can take the handle
    delete(&s, &format!("/v1/me/platforms/{la}"), a.tok())
        .await
        .expect(204);
    let r = link(&s, &b, &webhook("shared-hook")).await;
    let lb = r.expect(201)["link_id"].as_str().unwrap().to_string();
    assert_eq!(
        list(&s, &b).await["items"],
        json!([{"link_id": lb, "platform": "webhook", "handle": "shared-hook",
                 "status": "active"}])
    );
}

#[tokio::test]
async fn another_accounts_link_cannot_be_deleted() {
    let s = Server::start();
    let a = new_acct(&s, "Victim").await;
    let b = new_acct(&s, "Intruder").await;
    let la = link(&s, &a, &webhook("victim-hook")).await.expect(201)["link_id"]
        .as_str()
        .unwrap()
        .to_string();

    delete(&s, &format!("/v1/me/platforms/{la}"), b.tok())
        .await
        .expect_error(404, "not_found");
    assert_eq!(
        list(&s, &a).await["items"],
        json!([{"link_id": la, "platform": "webhook", "handle": "victim-hook",
                 "status": "active"}])
    );
    // still held: B cannot take it
    link(&s, &b, &webhook("victim-hook"))
        .await
        .expect_error(409, "handle_taken");
}

/// An account links at most 32 platform accounts: the 33rd is 400 and stores nothing, and
/// unlinking one makes room again.
#[tokio::test]
async fn an_account_links_at_most_32_platform_accounts() {
    let s = Server::start();
    let a = new_acct(&s, "Ann").await;
    let mut first = None;
    for n in 0..32 {
        let r = link(&s, &a, &webhook(&format!("hook-{n}"))).await;
        let id = r.expect(201)["link_id"].as_str().unwrap().to_owned();
        first.get_or_insert(id);
    }
    let r = link(&s, &a, &webhook("hook-32")).await;
    r.expect_error(400, "invalid_input");
    assert!(r.text.contains("at most 32"), "{}", r.text);
    assert_eq!(list(&s, &a).await["items"].as_array().unwrap().len(), 32);
    let first = first.unwrap();
    delete(&s, &format!("/v1/me/platforms/{first}"), a.tok())
        .await
        .expect(204);
    link(&s, &a, &webhook("hook-32")).await.expect(201);
    assert_eq!(list(&s, &a).await["items"].as_array().unwrap().len(), 32);
}
