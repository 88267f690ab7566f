//! Panics (issue 13): a panic in request handling answers 500 `internal` in the contract's
//! shape, never a dropped connection, and leaves no dead thread or actor behind. The panics
//! are injected at the fault points `CHORUS_FAULTS` arms (`chorus_actors::faults`):
//! `handler_panic` in the HTTP handler of `GET /v1/me`, `actor_panic` in the account actor's
//! handler of the message that route sends. One worker thread and one actor thread
//! (`--workers 1`), so "the thread survived" is "the next request works".

use serde_json::json;

use crate::support::*;

fn armed(point: &str) -> Server {
    Server::start_with_env(&["--workers", "1"], &[("CHORUS_FAULTS", point)])
}

/// `GET /v1/me` answers 500 `internal` in the contract's shape.
async fn me_fails(s: &Server, a: &Acct) {
    get(s, "/v1/me", a.tok())
        .await
        .expect_error(500, "internal");
}

/// `a`'s actor answers other messages, and its state is what the store holds.
async fn account_works(s: &Server, a: &Acct, bio: &str) {
    let r = patch(s, "/v1/me/profile", a.tok(), &json!({"bio": bio})).await;
    let version = r.expect(200)["profile_version"].clone();
    let view = get(s, &format!("/v1/accounts/{}", a.id), a.tok()).await;
    let view = view.expect(200);
    assert_eq!(view["profile"]["bio"], json!(bio));
    assert_eq!(view["profile_version"], version);
}

#[tokio::test]
async fn a_panicking_handler_answers_500_and_the_server_stays_whole() {
    let s = armed("handler_panic");
    let a = new_acct(&s, "Ann").await;
    for _ in 0..3 {
        me_fails(&s, &a).await;
    }
    assert_healthy(&s).await;
    account_works(&s, &a, "still here").await;
    let b = new_acct(&s, "Bob").await;
    account_works(&s, &b, "me too").await;
    assert!(
        s.log_text().contains("request handler panicked"),
        "the panic is logged"
    );
}

#[tokio::test]
async fn a_panicking_actor_answers_500_and_is_activated_afresh() {
    let s = armed("actor_panic");
    let a = new_acct(&s, "Ann").await;
    let b = new_acct(&s, "Bob").await;
    account_works(&s, &a, "before").await;
    for round in 0..3 {
        me_fails(&s, &a).await;
        // The same account (a fresh actor, from the store) and another one on the same,
        // only, actor thread answer the next request.
        account_works(&s, &a, &format!("after {round}")).await;
        account_works(&s, &b, &format!("bob {round}")).await;
    }
    // Friends across the two actors still work end to end.
    make_friends(&s, &a, &b).await;
    assert_eq!(friend_ids(&s, &a).await, vec![b.id.clone()]);
    assert_healthy(&s).await;
    assert!(
        s.log_text().contains("actor died handling a message"),
        "the actor's death is logged"
    );
}
