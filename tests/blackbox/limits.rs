//! Abuse limits at the edge: account creation and contact uploads per client address (429
//! `rate_limited` with `Retry-After`, nothing stored), the cap on password hashes running at
//! once (503 `unavailable` with `Retry-After`), login limits keyed on the normalised login,
//! IPv6 clients bucketed per /64 behind a trusted proxy, `X-Forwarded-For` ignored without
//! one, and, on a cluster, one bucket per login over every node.
//!
//! The server listens on 127.0.0.1 only, so other client addresses (IPv6 ones included) come
//! in through `X-Forwarded-For` from a proxy trusted with `--trusted-proxies 127.0.0.0/8`.

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::support::cluster::TestCluster;
use crate::support::*;

/// `path` with `body` (and a bearer `token`), as forwarded for `xff` when given.
async fn post_via(
    s: &Server,
    path: &str,
    token: Option<&str>,
    body: &Value,
    xff: Option<&str>,
) -> Resp {
    let mut req = client().post(s.url(path)).json(body);
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    if let Some(xff) = xff {
        req = req.header("X-Forwarded-For", xff);
    }
    finish(req).await
}

fn new_account(name: &str, email: &str) -> Value {
    json!({"password": PASSWORD, "profile": {"display_name": name, "email": email}})
}

async fn create_via(s: &Server, email: &str, xff: Option<&str>) -> Resp {
    post_via(s, "/v1/accounts", None, &new_account("Flood", email), xff).await
}

/// A 429 `rate_limited` with a `Retry-After` of whole seconds, at least 1.
#[track_caller]
fn expect_limited(r: &Resp) {
    r.expect_error(429, "rate_limited");
    expect_retry_after(r);
}

#[track_caller]
fn expect_retry_after(r: &Resp) -> u64 {
    let secs: u64 = r
        .headers
        .get("retry-after")
        .unwrap_or_else(|| panic!("no Retry-After on {} {}", r.status, r.text))
        .to_str()
        .expect("ASCII")
        .parse()
        .expect("whole seconds");
    assert!(secs >= 1, "Retry-After {secs}");
    secs
}

#[tokio::test]
async fn an_account_creation_flood_from_one_address_is_refused_and_stores_nothing() {
    let s = Server::start_with(&[
        "--account-creations-per-hour",
        "1",
        "--account-creation-burst",
        "3",
        "--trusted-proxies",
        "127.0.0.0/8",
    ]);
    for i in 0..3 {
        create_via(&s, &format!("ok{i}@example.com"), None)
            .await
            .expect(201);
    }
    for i in 0..5 {
        let r = create_via(&s, &format!("flood{i}@example.com"), None).await;
        expect_limited(&r);
    }
    // Nothing was stored: no login, and the email is free for somebody else.
    login(&s, "flood0@example.com", PASSWORD)
        .await
        .expect_error(401, "invalid_credentials");
    create_via(&s, "flood0@example.com", Some("203.0.113.7"))
        .await
        .expect(201);
    login(&s, "flood0@example.com", PASSWORD).await.expect(200);
    assert_healthy(&s).await;
}

#[tokio::test]
async fn contact_uploads_are_limited_per_address_and_a_refused_one_matches_nothing() {
    let s = Server::start_with(&[
        "--contact-uploads-per-hour",
        "1",
        "--contact-upload-burst",
        "2",
        "--trusted-proxies",
        "127.0.0.0/8",
    ]);
    let ann = new_acct_with(&s, "Ann", None, Some("+15550400001")).await;
    let bob = new_acct(&s, "Bob").await;
    let upload = |phone: &str| json!({"contacts": [{"kind": "phone", "value": phone}]});
    for _ in 0..2 {
        let r = post_via(
            &s,
            "/v1/me/contacts",
            bob.tok(),
            &upload("+15550499999"),
            None,
        )
        .await;
        assert_eq!(r.expect(200)["matched"], json!([]));
    }
    let r = post_via(
        &s,
        "/v1/me/contacts",
        bob.tok(),
        &upload("+15550400001"),
        None,
    )
    .await;
    expect_limited(&r);
    // The refused upload matched nobody: no suggestion for Bob.
    let suggestions = get(&s, "/v1/friends/suggestions", bob.tok()).await;
    assert_eq!(item_ids(suggestions.expect(200)), Vec::<String>::new());
    // From another address the same upload goes through.
    let r = post_via(
        &s,
        "/v1/me/contacts",
        bob.tok(),
        &upload("+15550400001"),
        Some("198.51.100.20"),
    )
    .await;
    assert_eq!(r.expect(200)["matched"], json!([ann.id]));
    assert_healthy(&s).await;
}

#[tokio::test]
async fn past_the_password_hash_cap_creation_answers_503_at_once_and_stores_nothing() {
    // One hash at a time, each slow enough that concurrent ones overlap.
    let s = Server::start_with(&[
        "--password-hash-concurrency",
        "1",
        "--password-hash-memory-kib",
        "4096",
        "--password-hash-iterations",
        "2",
    ]);
    let mut refused = Vec::new();
    for round in 0..5 {
        let emails: Vec<String> = (0..6)
            .map(|i| format!("r{round}n{i}@example.com"))
            .collect();
        let answers = join_all(emails.iter().map(|e| create_via(&s, e, None))).await;
        for (email, r) in emails.iter().zip(&answers) {
            match r.status.as_u16() {
                201 => {}
                503 => {
                    r.expect_error(503, "unavailable");
                    assert_eq!(expect_retry_after(r), 1);
                    refused.push(email.clone());
                }
                other => panic!("{email}: {other} {}", r.text),
            }
        }
        assert!(
            answers.iter().any(|r| r.status.as_u16() == 201),
            "one hash runs at a time, so one of each round gets through"
        );
        if !refused.is_empty() {
            break;
        }
    }
    assert!(
        !refused.is_empty(),
        "six creations at once never met the cap of one"
    );
    for email in &refused {
        login(&s, email, PASSWORD)
            .await
            .expect_error(401, "invalid_credentials");
        // Nothing was claimed: the same email can be registered now.
        create_via(&s, email, None).await.expect(201);
    }
    assert_healthy(&s).await;
}

#[tokio::test]
async fn every_spelling_of_a_login_counts_against_one_bucket() {
    let s = Server::start_with(&[
        "--login-attempts-per-account",
        "3",
        "--login-attempts-per-address",
        "1000",
    ]);
    let ann = new_acct_with(&s, "Ann", Some("ann@example.com"), Some("+1 555 010 0000")).await;
    for variant in [" ann@example.com", "ANN@example.com", "ann@EXAMPLE.com "] {
        login(&s, variant, "wrong password")
            .await
            .expect_error(401, "invalid_credentials");
    }
    expect_limited(&login(&s, "ann@example.com", PASSWORD).await);
    for variant in ["+1 555-010 0000", "+15550100000", "+1 (555) 010 0000"] {
        login(&s, variant, "wrong password")
            .await
            .expect_error(401, "invalid_credentials");
    }
    expect_limited(&login(&s, "+1.555.010.0000", PASSWORD).await);
    // The account id is a login of its own, with a bucket of its own.
    assert_eq!(
        login(&s, &ann.id, PASSWORD).await.expect(200)["account_id"],
        json!(ann.id)
    );
}

#[tokio::test]
async fn ipv6_clients_behind_a_trusted_proxy_are_bucketed_per_64() {
    let s = Server::start_with(&[
        "--account-creations-per-hour",
        "1",
        "--account-creation-burst",
        "2",
        "--trusted-proxies",
        "127.0.0.0/8",
    ]);
    let mut n = 0;
    let mut create = |xff: Option<&'static str>| {
        n += 1;
        let email = format!("v6-{n}@example.com");
        let s = &s;
        async move { create_via(s, &email, xff).await }
    };
    create(Some("2001:db8:1:2::1")).await.expect(201);
    create(Some("2001:db8:1:2::ffff")).await.expect(201);
    // A third address of the same /64, directly or through one more trusted hop.
    expect_limited(&create(Some("2001:db8:1:2:abcd::9")).await);
    expect_limited(&create(Some("2001:db8:1:2::2, 127.0.0.9")).await);
    // What the client wrote left of its own address is never read.
    expect_limited(&create(Some("192.0.2.99, 2001:db8:1:2::3")).await);
    // Another /64 has a bucket of its own, and so has the proxy itself.
    create(Some("2001:db8:1:3::1")).await.expect(201);
    create(None).await.expect(201);
    // A mapped IPv4 address is that IPv4 address.
    create(Some("::ffff:192.0.2.1")).await.expect(201);
    create(Some("192.0.2.1")).await.expect(201);
    expect_limited(&create(Some("::ffff:192.0.2.1")).await);
}

#[tokio::test]
async fn x_forwarded_for_is_ignored_without_trusted_proxies() {
    let s = Server::start_with(&[
        "--account-creations-per-hour",
        "1",
        "--account-creation-burst",
        "2",
    ]);
    create_via(&s, "x1@example.com", Some("203.0.113.1"))
        .await
        .expect(201);
    create_via(&s, "x2@example.com", Some("203.0.113.2"))
        .await
        .expect(201);
    expect_limited(&create_via(&s, "x3@example.com", Some("203.0.113.3")).await);
    expect_limited(&create_via(&s, "x4@example.com", Some("2001:db8::1")).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn login_attempts_spread_over_the_nodes_of_a_cluster_share_one_bucket() {
    let Some(cluster) = TestCluster::start_with_args(
        3,
        &[
            "--login-attempts-per-account",
            "3",
            "--login-attempts-per-address",
            "1000",
        ],
    )
    .await
    else {
        return;
    };
    new_acct_with(cluster.node(0), "Ann", Some("ann@example.com"), None).await;
    // One wrong attempt on each node, each spelt differently: three in all, the quota.
    for (i, variant) in ["ann@example.com", " ANN@example.com", "ann@Example.com "]
        .into_iter()
        .enumerate()
    {
        login(cluster.node(i), variant, "wrong password")
            .await
            .expect_error(401, "invalid_credentials");
    }
    // Each node would still allow two more of its own; the shared bucket is empty.
    for i in 0..3 {
        expect_limited(&login(cluster.node(i), "ann@example.com", PASSWORD).await);
    }
    // Another login is untouched, on every node.
    new_acct_with(cluster.node(1), "Bob", Some("bob@example.com"), None).await;
    for i in 0..3 {
        login(cluster.node(i), "bob@example.com", PASSWORD)
            .await
            .expect(200);
    }
}
