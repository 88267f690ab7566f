//! Cross-cutting conventions: /healthz, error shape, 401 on every authenticated
//! route, 404 for unknown routes, body size limit, Content-Type leniency, login
//! rate limiting.

use crate::support::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn healthz_answers_ok() {
    let s = Server::start();
    let r = get(&s, "/healthz", None).await;
    assert_eq!(r.status.as_u16(), 200);
    assert_eq!(r.body, json!({"status": "ok"}));
}

#[tokio::test]
async fn unknown_routes_are_404_with_error_shape() {
    let s = Server::start();
    let a = new_acct(&s, "Router").await;
    get(&s, "/nope", None).await.expect_error(404, "not_found");
    get(&s, "/v1/nope", a.tok())
        .await
        .expect_error(404, "not_found");
    post(&s, "/v1/does/not/exist", a.tok(), &json!({}))
        .await
        .expect_error(404, "not_found");
    assert_healthy(&s).await;
}

/// Every /v1 route except POST /v1/accounts and POST /v1/sessions needs a token.
#[tokio::test]
async fn every_authenticated_route_requires_a_token() {
    let s = Server::start();
    let a = new_acct(&s, "Owner").await;
    let b = new_acct(&s, "Other").await;
    let link = post(
        &s,
        "/v1/me/platforms",
        a.tok(),
        &json!({"platform": "webhook", "handle": "owner-hook",
                "config": {"url": "http://127.0.0.1:9/hook", "secret": "s3cret-value"}}),
    )
    .await;
    let link_id = link.expect(201)["link_id"].as_str().unwrap().to_string();
    let before = me(&s, &a).await;

    let routes: Vec<(Method, String, Option<serde_json::Value>)> = vec![
        (Method::GET, "/v1/me".into(), None),
        (
            Method::PATCH,
            "/v1/me/profile".into(),
            Some(json!({"city": "X"})),
        ),
        (Method::GET, format!("/v1/accounts/{}", a.id), None),
        (Method::GET, "/v1/me/platforms".into(), None),
        (
            Method::POST,
            "/v1/me/platforms".into(),
            Some(json!({"platform": "webhook", "handle": "h2",
                        "config": {"url": "http://127.0.0.1:9/x", "secret": "s"}})),
        ),
        (Method::DELETE, format!("/v1/me/platforms/{link_id}"), None),
        (
            Method::POST,
            "/v1/friends/requests".into(),
            Some(json!({"to": b.id})),
        ),
        (Method::GET, "/v1/friends/requests".into(), None),
        (
            Method::POST,
            format!("/v1/friends/requests/{}/accept", b.id),
            None,
        ),
        (Method::DELETE, format!("/v1/friends/{}", b.id), None),
        (Method::GET, "/v1/friends".into(), None),
        (Method::GET, "/v1/friends/suggestions".into(), None),
        (
            Method::POST,
            "/v1/me/contacts".into(),
            Some(json!({"contacts": [{"kind": "email", "value": "x@example.com"}]})),
        ),
    ];
    for (method, path, body) in &routes {
        for token in [None, Some("not-a-valid-token"), Some("")] {
            let r = send(&s, method.clone(), path, token, body.as_ref()).await;
            assert_eq!(
                r.status.as_u16(),
                401,
                "{method} {path} with token {token:?}: {}",
                r.text
            );
            assert_error_shape(
                &r.body,
                "unauthorized",
                &format!("{method} {path}: {}", r.text),
            );
        }
        // a token without the Bearer scheme is not accepted either
        let mut req = client().request(method.clone(), s.url(path));
        req = req.header("Authorization", a.token.clone());
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = finish(req).await;
        assert_eq!(
            r.status.as_u16(),
            401,
            "{method} {path} without Bearer: {}",
            r.text
        );
        assert_error_shape(&r.body, "unauthorized", &r.text);
    }
    // nothing was changed by the unauthorised calls
    assert_eq!(me(&s, &a).await, before);
    let r = get(&s, "/v1/me/platforms", a.tok()).await;
    assert_eq!(item_ids(r.expect(200)), vec![link_id]);
    let r = get(&s, "/v1/friends/requests", b.tok()).await;
    assert_eq!(r.expect(200)["items"], json!([]));
    assert_healthy(&s).await;
}

#[tokio::test]
async fn json_is_accepted_whatever_the_content_type() {
    let s = Server::start();
    let body = json!({"password": PASSWORD, "profile": {"display_name": "CT", "email": "ct1@example.com"}});
    let r = send_raw(
        &s,
        Method::POST,
        "/v1/accounts",
        None,
        body.to_string(),
        Some("text/plain"),
    )
    .await;
    let id1 = r.expect(201)["account_id"].as_str().unwrap().to_string();

    let body = json!({"password": PASSWORD, "profile": {"display_name": "CT2", "email": "ct2@example.com"}});
    let r = send_raw(
        &s,
        Method::POST,
        "/v1/accounts",
        None,
        body.to_string(),
        None,
    )
    .await;
    r.expect(201);

    let body = json!({"password": PASSWORD, "profile": {"display_name": "CT3"}});
    let r = send_raw(
        &s,
        Method::POST,
        "/v1/accounts",
        None,
        body.to_string(),
        Some("application/x-www-form-urlencoded"),
    )
    .await;
    r.expect(201);

    let r = send_raw(
        &s,
        Method::POST,
        "/v1/sessions",
        None,
        json!({"login": "ct1@example.com", "password": PASSWORD}).to_string(),
        Some("text/plain"),
    )
    .await;
    assert_eq!(r.expect(200)["account_id"], json!(id1));
    let token = r.body["token"].as_str().unwrap().to_string();

    let r = send_raw(
        &s,
        Method::PATCH,
        "/v1/me/profile",
        Some(&token),
        json!({"city": "Rome"}).to_string(),
        None,
    )
    .await;
    r.expect(200);
    let r = get(&s, "/v1/me", Some(&token)).await;
    assert_eq!(r.expect(200)["profile"]["city"], "Rome");
}

#[tokio::test]
async fn default_body_limit_is_64_kib() {
    let s = Server::start();
    // a body just over 64 KiB
    let big = json!({"password": PASSWORD,
                     "profile": {"display_name": "Big", "email": "big@example.com",
                                 "pad": "x".repeat(70 * 1024)}});
    let r = post(&s, "/v1/accounts", None, &big).await;
    r.expect_error(413, "body_too_large");
    assert_healthy(&s).await;
    login(&s, "big@example.com", PASSWORD)
        .await
        .expect_error(401, "invalid_credentials");

    let a = new_acct(&s, "Patcher").await;
    let before = me(&s, &a).await;
    let r = patch(
        &s,
        "/v1/me/profile",
        a.tok(),
        &json!({"pad": "y".repeat(66 * 1024)}),
    )
    .await;
    r.expect_error(413, "body_too_large");
    assert_eq!(me(&s, &a).await, before);

    // a body comfortably under the limit (~40 KiB) with valid content is fine
    let mut fields = serde_json::Map::new();
    for i in 0..30 {
        fields.insert(format!("f{i}"), json!("z".repeat(1000)));
    }
    patch(
        &s,
        "/v1/me/profile",
        a.tok(),
        &serde_json::Value::Object(fields),
    )
    .await
    .expect(200);
}

#[tokio::test]
async fn body_limit_flag_is_honoured() {
    let s = Server::start_with(&["--body-limit", "1024"]);
    let ok = json!({"password": PASSWORD, "profile": {"display_name": "Small"}});
    post(&s, "/v1/accounts", None, &ok).await.expect(201);

    let big = json!({"password": PASSWORD,
                     "profile": {"display_name": "Big", "email": "big2@example.com",
                                 "bio": "x".repeat(1000), "bio2": "y".repeat(500)}});
    assert!(big.to_string().len() > 1024);
    post(&s, "/v1/accounts", None, &big)
        .await
        .expect_error(413, "body_too_large");
    login(&s, "big2@example.com", PASSWORD)
        .await
        .expect_error(401, "invalid_credentials");
    assert_healthy(&s).await;
}

#[tokio::test]
async fn login_attempts_are_rate_limited_per_account() {
    let s = Server::start_with(&[
        "--login-attempts-per-account",
        "3",
        "--login-attempts-per-address",
        "1000",
    ]);
    let (id, _) = register(&s, "Target", Some("target@example.com"), None).await;
    let (other, _) = register(&s, "Bystander", Some("bystander@example.com"), None).await;
    for i in 0..3 {
        let r = login(&s, &id, "wrong password").await;
        assert_eq!(r.status.as_u16(), 401, "attempt {i}: {}", r.text);
        assert_error_shape(&r.body, "invalid_credentials", &r.text);
    }
    let r = login(&s, &id, "wrong password").await;
    r.expect_error(429, "rate_limited");
    // even the right password is refused while limited
    let r = login(&s, &id, PASSWORD).await;
    r.expect_error(429, "rate_limited");
    // another account is not affected
    let r = login(&s, "bystander@example.com", PASSWORD).await;
    assert_eq!(r.expect(200)["account_id"], json!(other));
    assert_healthy(&s).await;
}

#[tokio::test]
async fn login_attempts_are_rate_limited_per_address() {
    let s = Server::start_with(&[
        "--login-attempts-per-account",
        "1000",
        "--login-attempts-per-address",
        "4",
    ]);
    let (id, _) = register(&s, "Someone", Some("someone@example.com"), None).await;
    for i in 0..4 {
        let r = login(&s, &format!("ghost{i}@example.com"), "whatever1").await;
        assert_eq!(r.status.as_u16(), 401, "attempt {i}: {}", r.text);
        assert_error_shape(&r.body, "invalid_credentials", &r.text);
    }
    login(&s, "ghost9@example.com", "whatever1")
        .await
        .expect_error(429, "rate_limited");
    login(&s, &id, PASSWORD)
        .await
        .expect_error(429, "rate_limited");
    // other routes still answer
    assert_healthy(&s).await;
}
