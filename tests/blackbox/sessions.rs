//! Tokens (issue 15, item 6): a cap per account (a login past it drops the oldest token), an
//! expiry (`--token-ttl-secs`; an expired token is 401 `unauthorized` on HTTP and at the
//! WebSocket handshake) and `DELETE /v1/sessions/current` to log out (204; the token is then
//! 401 everywhere, and a WebSocket it opened is closed with 1008 at its next heartbeat).

use std::time::Duration;

use serde_json::json;

use crate::support::*;

async fn me_status(s: &Server, token: &str) -> u16 {
    get(s, "/v1/me", Some(token)).await.status.as_u16()
}

async fn log_in(s: &Server, a: &Acct) -> String {
    let r = login(s, &a.id, PASSWORD).await;
    r.expect(200)["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_login_past_the_cap_drops_the_oldest_token() {
    let s = Server::start_with(&["--max-tokens-per-account", "2"]);
    let a = new_acct(&s, "Ann").await;
    let second = log_in(&s, &a).await;
    assert_eq!(me_status(&s, &a.token).await, 200);
    let third = log_in(&s, &a).await;
    get(&s, "/v1/me", a.tok())
        .await
        .expect_error(401, "unauthorized");
    assert_eq!(me_status(&s, &second).await, 200);
    assert_eq!(me_status(&s, &third).await, 200);
    // The dropped token is refused at the WebSocket handshake too.
    get(&s, "/v1/ws", a.tok())
        .await
        .expect_error(401, "unauthorized");
    assert_healthy(&s).await;
}

#[tokio::test]
async fn a_token_expires_after_its_ttl() {
    let s = Server::start_with(&["--token-ttl-secs", "2"]);
    let a = new_acct(&s, "Ann").await;
    assert_eq!(me_status(&s, &a.token).await, 200);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    get(&s, "/v1/me", a.tok())
        .await
        .expect_error(401, "unauthorized");
    get(&s, "/v1/ws", a.tok())
        .await
        .expect_error(401, "unauthorized");
    // A new login works, for its own TTL.
    let fresh = log_in(&s, &a).await;
    assert_eq!(me_status(&s, &fresh).await, 200);
}

#[tokio::test]
async fn logout_ends_the_token_and_closes_its_websockets() {
    let s = Server::start();
    let a = new_acct(&s, "Ann").await;
    let other = Acct {
        id: a.id.clone(),
        token: log_in(&s, &a).await,
    };
    let (mut ws, _) = ws_connect(&s, &a).await;
    let (mut kept, _) = ws_connect(&s, &other).await;
    let r = delete(&s, "/v1/sessions/current", a.tok()).await;
    assert_eq!(r.status, 204, "{}", r.text);
    get(&s, "/v1/me", a.tok())
        .await
        .expect_error(401, "unauthorized");
    delete(&s, "/v1/sessions/current", a.tok())
        .await
        .expect_error(401, "unauthorized");
    delete(&s, "/v1/sessions/current", None)
        .await
        .expect_error(401, "unauthorized");
    // The account's other token is untouched.
    assert_eq!(me_status(&s, &other.token).await, 200);
    // The logged-out token's socket closes at its next heartbeat (every 30 s); the other
    // token's stays.
    let closed = wait_close(&mut ws, Duration::from_secs(45)).await;
    assert_eq!(closed, Closed::Code(Some(1008)));
    ping_pong(&mut kept).await;
    let r = patch(
        &s,
        "/v1/me/profile",
        other.tok(),
        &json!({"status": "here"}),
    )
    .await;
    r.expect(200);
    assert_eq!(
        next_non_pong(&mut kept, EVENT_TIMEOUT).await["type"],
        "profile.updated"
    );
}
