//! Proving identifiers (issue 15): codes by email with `--smtp-url` (profile email and email
//! links: short-lived, attempts bounded, resends paced), an email link that releases nothing
//! until proven, and Mastodon links verified with the instance when they are made.

use std::time::Duration;

use serde_json::json;

use crate::support::release::{
    Receiver, Script, SmtpSink, ask_code, link_email, link_webhook, mastodon_instance, post_text,
    prove,
};
use crate::support::*;

/// A server with `--smtp-url` to `sink` (and `extra`), and Ann, whose profile has an email.
async fn with_smtp(sink: &SmtpSink, extra: &[&str]) -> (Server, Acct) {
    let url = sink.url();
    let mut args = vec!["--smtp-url", url.as_str()];
    args.extend_from_slice(extra);
    let s = Server::start_with(&args);
    let a = new_acct_with(&s, "Ann", Some("ann@example.com"), Some("+15550500001")).await;
    (s, a)
}

async fn verify(s: &Server, a: &Acct, path: &str, code: &str) -> Resp {
    post(
        s,
        &format!("{path}/verify"),
        a.tok(),
        &json!({"code": code}),
    )
    .await
}

/// A code that is not `code`.
fn other_than(code: &str) -> String {
    let n: u32 = code.parse().unwrap();
    format!("{:06}", (n + 1) % 1_000_000)
}

#[tokio::test]
async fn a_profile_email_is_proven_by_its_code() {
    let Some(sink) = SmtpSink::start(&[]) else {
        return;
    };
    let (s, a) = with_smtp(&sink, &[]).await;
    assert_eq!(me(&s, &a).await["unverified"], json!(["email"]));
    // No code yet.
    verify(&s, &a, "/v1/me/email", "123456")
        .await
        .expect_error(409, "code_expired");

    let r = post(&s, "/v1/me/email/code", a.tok(), &json!({})).await;
    assert_eq!(
        r.expect(202),
        &json!({"sent_to": "ann@example.com", "expires_in_secs": 600})
    );
    let msgs = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(msgs[0]["rcpt_tos"], json!(["ann@example.com"]));
    let code = msgs[0]["subject"]
        .as_str()
        .unwrap()
        .strip_prefix("Your Chorus code: ")
        .unwrap()
        .to_owned();
    // Resending at once is paced.
    let again = post(&s, "/v1/me/email/code", a.tok(), &json!({})).await;
    again.expect_error(429, "rate_limited");
    let wait: u64 = again.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    // A malformed code costs no attempt; a wrong one does.
    for bad in ["12345", "1234567", "12345a", ""] {
        verify(&s, &a, "/v1/me/email", bad)
            .await
            .expect_error(400, "invalid_input");
    }
    post(&s, "/v1/me/email/verify", a.tok(), &json!({}))
        .await
        .expect_error(400, "bad_json");
    let wrong = verify(&s, &a, "/v1/me/email", &other_than(&code)).await;
    wrong.expect_error(400, "invalid_code");
    assert!(wrong.text.contains("4 attempt"), "{}", wrong.text);
    assert_eq!(me(&s, &a).await["unverified"], json!(["email"]));

    let ok = verify(&s, &a, "/v1/me/email", &code).await;
    assert_eq!(ok.expect(200), &json!({"verified": true}));
    // Confirming again (a lost answer) succeeds; asking for a code now is a conflict.
    verify(&s, &a, "/v1/me/email", &code).await.expect(200);
    assert_eq!(me(&s, &a).await["unverified"], json!([]));
    post(&s, "/v1/me/email/code", a.tok(), &json!({}))
        .await
        .expect_error(409, "already_verified");

    // A new address must be proven again.
    patch(
        &s,
        "/v1/me/profile",
        a.tok(),
        &json!({"email": "ann@elsewhere.example"}),
    )
    .await
    .expect(200);
    assert_eq!(me(&s, &a).await["unverified"], json!(["email"]));
    patch(&s, "/v1/me/profile", a.tok(), &json!({"email": null}))
        .await
        .expect(200);
    post(&s, "/v1/me/email/code", a.tok(), &json!({}))
        .await
        .expect_error(409, "not_verifiable");
    // Phones are taken as registered: there is no SMS gateway to prove them.
    post(&s, "/v1/me/phone/code", a.tok(), &json!({}))
        .await
        .expect_error(409, "not_verifiable");
    assert_healthy(&s).await;
}

#[tokio::test]
async fn a_codes_attempts_are_bounded_across_a_restart() {
    let Some(sink) = SmtpSink::start(&[]) else {
        return;
    };
    let (mut s, a) = with_smtp(&sink, &[]).await;
    // Five wrong codes spend a code, across a restart too; then even the right one is refused.
    let code = ask_code(&s, &a, "/v1/me/email", &sink, "ann@example.com").await;
    for left in [4, 3] {
        let r = verify(&s, &a, "/v1/me/email", &other_than(&code)).await;
        r.expect_error(400, "invalid_code");
        assert!(r.text.contains(&format!("{left} attempt")), "{}", r.text);
    }
    s.restart();
    for _ in 0..3 {
        verify(&s, &a, "/v1/me/email", &other_than(&code))
            .await
            .expect_error(400, "invalid_code");
    }
    verify(&s, &a, "/v1/me/email", &code)
        .await
        .expect_error(409, "code_expired");
    assert_eq!(me(&s, &a).await["unverified"], json!(["email"]));
}

#[tokio::test]
async fn a_code_expires() {
    let Some(sink) = SmtpSink::start(&[]) else {
        return;
    };
    let (s, a) = with_smtp(
        &sink,
        &["--verify-code-ttl-secs", "1", "--verify-resend-secs", "1"],
    )
    .await;
    let code = ask_code(&s, &a, "/v1/me/email", &sink, "ann@example.com").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    verify(&s, &a, "/v1/me/email", &code)
        .await
        .expect_error(409, "code_expired");
    // A fresh one, used in time, works.
    let code = ask_code(&s, &a, "/v1/me/email", &sink, "ann@example.com").await;
    verify(&s, &a, "/v1/me/email", &code).await.expect(200);
    assert_eq!(me(&s, &a).await["unverified"], json!([]));
}

/// Each code brings its attempts, so codes per identifier are bounded per day too: past
/// `--verify-codes-per-day` the next waits out the 24 h window (429, nothing sent), and
/// the code already sent still works.
#[tokio::test]
async fn codes_per_identifier_are_bounded_per_day() {
    let Some(sink) = SmtpSink::start(&[]) else {
        return;
    };
    let (s, a) = with_smtp(
        &sink,
        &["--verify-resend-secs", "1", "--verify-codes-per-day", "2"],
    )
    .await;
    ask_code(&s, &a, "/v1/me/email", &sink, "ann@example.com").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let code = ask_code(&s, &a, "/v1/me/email", &sink, "ann@example.com").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let third = post(&s, "/v1/me/email/code", a.tok(), &json!({})).await;
    third.expect_error(429, "rate_limited");
    let wait: u64 = third.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (86_000..=86_400).contains(&wait),
        "Retry-After {wait}: the rest of the day"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.messages().len(), 2, "nothing sent past the budget");
    verify(&s, &a, "/v1/me/email", &code).await.expect(200);
    assert_eq!(me(&s, &a).await["unverified"], json!([]));
}

#[tokio::test]
async fn an_email_link_releases_nothing_until_proven() {
    let Some(sink) = SmtpSink::start(&[]) else {
        return;
    };
    let (s, a) = with_smtp(&sink, &[]).await;
    let link = link_email(&s, &a, "news@example.com").await;
    let hook = link_webhook(&s, &a, "ann-hook", "http://127.0.0.1:9/h", "sekrit").await;
    let items = get(&s, "/v1/me/platforms", a.tok())
        .await
        .expect(200)
        .clone();
    let status = |id: &str| {
        items["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["link_id"] == id)
            .map(|i| i["status"].clone())
    };
    assert_eq!(status(&link), Some(json!("unverified")));
    assert_eq!(status(&hook), Some(json!("active")));
    // Posting releases to the webhook only, and mails nobody.
    let posted = post_text(&s, &a, "not to the unproven address").await;
    let releases = posted["releases"].as_array().unwrap();
    assert_eq!(releases.len(), 1, "{posted}");
    assert_eq!(releases[0]["link_id"], json!(hook));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sink.messages().is_empty(), "{:?}", sink.messages());

    // Only an email link takes a code; an unknown link is 404.
    post(
        &s,
        &format!("/v1/me/platforms/{hook}/code"),
        a.tok(),
        &json!({}),
    )
    .await
    .expect_error(409, "not_verifiable");
    post(
        &s,
        "/v1/me/platforms/0123456789abcdef0123456789abcdef/code",
        a.tok(),
        &json!({}),
    )
    .await
    .expect_error(404, "not_found");
    verify(&s, &a, &format!("/v1/me/platforms/{link}"), "000000")
        .await
        .expect_error(409, "code_expired");

    prove(
        &s,
        &a,
        &format!("/v1/me/platforms/{link}"),
        &sink,
        "news@example.com",
    )
    .await;
    let l = get(&s, "/v1/me", a.tok()).await.expect(200).clone();
    assert!(
        l["platforms"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["status"] == "active"),
        "{l}"
    );
    let posted = post_text(&s, &a, "now to the address too").await;
    assert_eq!(posted["releases"].as_array().unwrap().len(), 2, "{posted}");
    let msgs = sink.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(msgs[1]["rcpt_tos"], json!(["news@example.com"]));
    assert_eq!(msgs[1]["subject"], "Ann posted on Chorus");
}

#[tokio::test]
async fn an_unsent_code_can_be_asked_for_again_at_once() {
    // The relay refuses the first message: 503, and the code is not held against the pace.
    let Some(sink) = SmtpSink::start(&["--fail-first", "1"]) else {
        return;
    };
    let (s, a) = with_smtp(&sink, &[]).await;
    let r = post(&s, "/v1/me/email/code", a.tok(), &json!({})).await;
    r.expect_error(503, "unavailable");
    assert!(r.headers.contains_key("retry-after"));
    let code = ask_code(&s, &a, "/v1/me/email", &sink, "ann@example.com").await;
    verify(&s, &a, "/v1/me/email", &code).await.expect(200);
}

#[tokio::test]
async fn a_mastodon_link_must_be_the_tokens_account() {
    let s = Server::start();
    let a = new_acct(&s, "Ann").await;
    let instance = Receiver::start(Script::ByPath(mastodon_instance), None);
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}/", l.local_addr().unwrap().port())
    };
    let link = |handle: &str, base_url: String| {
        json!({"platform": "mastodon", "handle": handle,
               "config": {"base_url": base_url, "access_token": "tok"}})
    };
    for (what, body) in [
        (
            "another account's handle",
            link("@bob@127.0.0.1", instance.url("/")),
        ),
        (
            "another instance's host",
            link("@ann@mastodon.social", instance.url("/")),
        ),
        ("a bare username", link("ann", instance.url("/"))),
        (
            "a refused token",
            link("@ann@127.0.0.1", instance.url("/revoked/")),
        ),
        (
            "an instance that does not answer",
            link("@ann@127.0.0.1", dead.clone()),
        ),
        (
            "an answer that is no account",
            link("@ann@127.0.0.1", instance.url("/not-mastodon/")),
        ),
    ] {
        let r = post(&s, "/v1/me/platforms", a.tok(), &body).await;
        assert_eq!(r.status.as_u16(), 400, "{what}: {}", r.text);
        r.expect_error(400, "invalid_input");
        assert!(
            !r.text.contains("The access token is invalid"),
            "{what}: the instance's words echoed: {}",
            r.text
        );
    }
    assert_eq!(
        get(&s, "/v1/me/platforms", a.tok()).await.expect(200)["items"],
        json!([])
    );
    // The right account, with or without the port, links; the handle is then taken.
    let port = instance
        .url("/")
        .split(':')
        .nth(2)
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    post(
        &s,
        "/v1/me/platforms",
        a.tok(),
        &link("@Ann@127.0.0.1", instance.url("/")),
    )
    .await
    .expect(201);
    post(
        &s,
        "/v1/me/platforms",
        a.tok(),
        &link(&format!("ann@127.0.0.1:{port}"), instance.url("/")),
    )
    .await
    .expect(201);
    let b = new_acct(&s, "Bob").await;
    post(
        &s,
        "/v1/me/platforms",
        b.tok(),
        &link("ann@127.0.0.1", instance.url("/")),
    )
    .await
    .expect_error(409, "handle_taken");
    assert_healthy(&s).await;
}
