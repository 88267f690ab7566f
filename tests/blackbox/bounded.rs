//! Bounded keys (issue 13): every id, cursor, handle, contact value and login a client sends
//! is checked at the edge against the server's own id shape and length limits, measured after
//! lower-casing, whatever `--body-limit` says. Bad input answers 400 `invalid_input` (or the
//! contract's 404 for an id that names nothing), nothing is stored, and the server stays up.

use serde_json::{Value, json};

use crate::support::groups::{create_community, create_group};
use crate::support::*;

/// The reproduction: 22,000 × "İ" is 44 KB as sent (under the 64 KiB body limit) and 66 KB
/// lower-cased, over the embedded engine's 65,535-byte key assertion.
fn turkish_i() -> String {
    "İ".repeat(22_000)
}

fn platform_contact(value: &str) -> Value {
    json!({"contacts": [{"kind": "platform", "platform": "webhook", "value": value}]})
}

/// `POST /v1/me/contacts` with `body` answers 400 `invalid_input`.
async fn contacts_refused(s: &Server, a: &Acct, body: &Value) {
    post(s, "/v1/me/contacts", a.tok(), body)
        .await
        .expect_error(400, "invalid_input");
}

/// The server answers, and `a`'s account is as it was (the follow-up request works).
async fn still_whole(s: &Server, a: &Acct) {
    assert_healthy(s).await;
    let me = me(s, a).await;
    assert_eq!(me["account_id"], json!(a.id));
    let r = get(s, "/v1/friends/suggestions", a.tok()).await;
    assert_eq!(r.expect(200)["items"], json!([]), "nothing was stored");
}

#[tokio::test]
async fn contacts_over_the_engine_key_limit_answer_400_and_the_server_stays_whole() {
    let s = Server::start();
    let a = new_acct(&s, "Ann").await;
    let body = platform_contact(&turkish_i());
    assert!(body.to_string().len() < 64 * 1024, "under the body limit");
    // The issue saw six requests panic six times; each now answers, the same way.
    for _ in 0..6 {
        contacts_refused(&s, &a, &body).await;
    }
    still_whole(&s, &a).await;
    // A contact within the limits still matches as before.
    let b = new_acct(&s, "Bob").await;
    let r = post(
        &s,
        "/v1/me/contacts",
        b.tok(),
        &json!({"contacts": [{"kind": "email", "value": "NoOne@Example.com"}]}),
    )
    .await;
    assert_eq!(r.expect(200), &json!({"matched": []}));
}

#[tokio::test]
async fn a_raised_body_limit_opens_no_path_to_an_engine_key() {
    let s = Server::start_with(&["--body-limit", "8388608"]);
    let a = new_acct(&s, "Ann").await;
    contacts_refused(&s, &a, &platform_contact(&turkish_i())).await;
    let long = "x".repeat(200_000);
    contacts_refused(&s, &a, &platform_contact(&long)).await;
    for kind in ["email", "phone"] {
        let body = json!({"contacts": [{"kind": kind, "value": long}]});
        contacts_refused(&s, &a, &body).await;
    }
    // A handle, a login and a profile email of the same size.
    let link = json!({"platform": "webhook", "handle": long,
                      "config": {"url": "https://hooks.example/x", "secret": "s"}});
    post(&s, "/v1/me/platforms", a.tok(), &link)
        .await
        .expect_error(400, "invalid_input");
    login(&s, &long, PASSWORD)
        .await
        .expect_error(400, "invalid_input");
    let email = format!("{long}@example.com");
    patch(&s, "/v1/me/profile", a.tok(), &json!({"email": email}))
        .await
        .expect_error(400, "invalid_input");
    // Ids in bodies name nothing: the contract's 404.
    post(&s, "/v1/friends/requests", a.tok(), &json!({"to": long}))
        .await
        .expect_error(404, "not_found");
    still_whole(&s, &a).await;
    assert_eq!(me(&s, &a).await["platforms"], json!([]));
}

#[tokio::test]
async fn handles_are_measured_after_lower_casing() {
    let s = Server::start();
    let a = new_acct(&s, "Ann").await;
    let config = json!({"url": "https://hooks.example/x", "secret": "s"});
    // 100 characters as sent, 200 once lower-cased: over the 128 limit.
    let handle = "İ".repeat(100);
    let link = json!({"platform": "webhook", "handle": handle, "config": config});
    post(&s, "/v1/me/platforms", a.tok(), &link)
        .await
        .expect_error(400, "invalid_input");
    contacts_refused(&s, &a, &platform_contact(&handle)).await;
    // At the limit it links, and a contact of it matches.
    let handle = "é".repeat(128);
    let link = json!({"platform": "webhook", "handle": handle, "config": config});
    post(&s, "/v1/me/platforms", a.tok(), &link)
        .await
        .expect(201);
    let b = new_acct(&s, "Bob").await;
    let r = post(&s, "/v1/me/contacts", b.tok(), &platform_contact(&handle)).await;
    assert_eq!(r.expect(200), &json!({"matched": [a.id]}));
}

#[tokio::test]
async fn emails_phones_and_logins_over_their_limits_answer_400() {
    let s = Server::start();
    let a = new_acct_with(&s, "Ann", Some("ann@example.com"), None).await;
    let email = format!("{}@example.com", "a".repeat(300));
    let phone = format!("+1{}", "5".repeat(300));
    for (kind, value) in [("email", &email), ("phone", &phone)] {
        let body = json!({"contacts": [{"kind": kind, "value": value}]});
        contacts_refused(&s, &a, &body).await;
        patch(&s, "/v1/me/profile", a.tok(), &json!({kind: value}))
            .await
            .expect_error(400, "invalid_input");
    }
    // A malformed value within the limit still simply matches nobody.
    let body = json!({"contacts": [{"kind": "phone", "value": "not a number"}]});
    let r = post(&s, "/v1/me/contacts", a.tok(), &body).await;
    assert_eq!(r.expect(200), &json!({"matched": []}));
    login(&s, &"a".repeat(257), PASSWORD)
        .await
        .expect_error(400, "invalid_input");
    login(&s, "ann@example.com", PASSWORD).await.expect(200);
}

#[tokio::test]
async fn ids_of_another_shape_are_not_found() {
    let s = Server::start();
    let a = new_acct(&s, "Ann").await;
    let gid = create_group(&s, &a, "Hikers").await;
    let c = create_community(&s, &a, "Trail club").await;
    let long = "a".repeat(10_000);
    let bad_ids = ["nope", &a.id.to_uppercase(), &long];
    for id in bad_ids {
        for (path, method) in [
            (format!("/v1/accounts/{id}"), "GET"),
            (format!("/v1/accounts/{id}/activities"), "GET"),
            (format!("/v1/activities/{id}/releases"), "GET"),
            (format!("/v1/groups/{id}"), "GET"),
            (format!("/v1/groups/{id}/messages"), "GET"),
            (format!("/v1/groups/{id}/events"), "GET"),
            (format!("/v1/groups/{id}/dynamics"), "GET"),
            (format!("/v1/friends/{id}"), "DELETE"),
            (format!("/v1/me/platforms/{id}"), "DELETE"),
            (format!("/v1/friends/requests/{id}/accept"), "POST"),
            (
                format!("/v1/groups/{gid}/binding-requests/{id}/approve"),
                "POST",
            ),
            (format!("/v1/groups/{gid}/bindings/{id}"), "DELETE"),
        ] {
            let r = match method {
                "GET" => get(&s, &path, a.tok()).await,
                "DELETE" => delete(&s, &path, a.tok()).await,
                _ => post_empty(&s, &path, a.tok()).await,
            };
            assert_eq!(
                r.status.as_u16(),
                404,
                "{method} {}…: {}",
                &path[..40.min(path.len())],
                r.text
            );
            assert_error_shape(&r.body, "not_found", &r.text);
        }
        for (path, token, body) in [
            (
                "/v1/friends/requests".to_owned(),
                a.tok(),
                json!({"to": id}),
            ),
            (
                format!("/v1/groups/{gid}/members"),
                a.tok(),
                json!({"account_id": id}),
            ),
            (
                format!("/v1/communities/{}/members", c.id),
                c.key(),
                json!({"account_id": id}),
            ),
            (
                format!("/v1/communities/{}/binding-requests", c.id),
                c.key(),
                json!({"group_id": id}),
            ),
        ] {
            post(&s, &path, token, &body)
                .await
                .expect_error(404, "not_found");
        }
        // Not a member, as the contract says for any account that is not one.
        let dynamic = json!({"account_id": id, "kind": "post", "text": "hi"});
        post(
            &s,
            &format!("/v1/communities/{}/dynamics", c.id),
            c.key(),
            &dynamic,
        )
        .await
        .expect_error(403, "forbidden");
    }
    still_whole(&s, &a).await;
}

#[tokio::test]
async fn cursors_of_another_shape_answer_400() {
    let s = Server::start();
    let a = new_acct(&s, "Ann").await;
    let gid = create_group(&s, &a, "Hikers").await;
    let long = format!("12.{}", "a".repeat(10_000));
    let other_shape = format!("12.{}", a.id.to_uppercase());
    for cursor in ["12.nope", long.as_str(), other_shape.as_str(), "x.y"] {
        for path in [
            "/v1/friends".to_owned(),
            "/v1/friends/requests".to_owned(),
            "/v1/friends/suggestions".to_owned(),
            format!("/v1/accounts/{}/activities", a.id),
            format!("/v1/groups/{gid}/messages"),
            format!("/v1/groups/{gid}/dynamics"),
        ] {
            let r = get(&s, &format!("{path}?before={cursor}"), a.tok()).await;
            assert_eq!(r.status.as_u16(), 400, "{path}: {}", r.text);
            assert_error_shape(&r.body, "invalid_input", &r.text);
        }
    }
    // A cursor of the server's shape still pages.
    let cursor = format!("{}.{}", u64::MAX, a.id);
    get(&s, &format!("/v1/friends?before={cursor}"), a.tok())
        .await
        .expect(200);
    still_whole(&s, &a).await;
}
