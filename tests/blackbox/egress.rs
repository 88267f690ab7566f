//! The egress policy (docs/api.md, "Platform accounts"): links and releases go to public
//! addresses only, Mastodon over https, and a release's `last_error` says the status or one
//! fixed reason, never what the destination answered.
//!
//! The servers here run without `--allow-private-destinations` ([`Server::start_strict`])
//! where the policy itself is under test.

use std::time::Duration;

use crate::support::release::*;
use crate::support::*;
use serde_json::{Value, json};

/// The `last_error` of an attempt without an HTTP answer (src/connectors/http.rs).
const NO_ANSWER: &str = "no answer (could not connect, or timed out)";
/// The `last_error` of a destination the policy refuses when connecting.
const NOT_ALLOWED: &str = "destination not allowed: not a public address";

async fn link_raw(s: &Server, a: &Acct, body: &Value) -> Resp {
    post(s, "/v1/me/platforms", a.tok(), body).await
}

#[tokio::test]
async fn links_to_private_destinations_are_refused() {
    let s = Server::start_strict(&[]);
    let a = new_acct(&s, "Ssrf Tester").await;
    for url in [
        "http://127.0.0.1:9001/hook",
        "http://localhost:9001/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://[::ffff:127.0.0.1]:9001/",
        "http://10.0.0.5/hook",
        "http://172.16.1.1/hook",
        "http://192.168.0.10/hook",
        "http://100.64.0.1/hook",
        "http://0.0.0.0:9001/",
        "http://224.0.0.1/",
        "http://[fd00::1]/",
        "http://[fe80::1]/",
        // 127.0.0.1 spelt as one number, and in hex.
        "http://2130706433:9001/",
        "http://0x7f000001:9001/",
    ] {
        let r = link_raw(
            &s,
            &a,
            &json!({"platform": "webhook", "handle": "ssrf", "config": {"url": url, "secret": "s"}}),
        )
        .await;
        assert_eq!(r.status.as_u16(), 400, "{url}: {}", r.text);
        assert_error_shape(&r.body, "invalid_input", &format!("{url}: {}", r.text));
        assert!(
            r.body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("config.url must point at a public address")),
            "{url}: {}",
            r.text
        );
    }
    for (base_url, why) in [
        ("https://127.0.0.1:8443", "public address"),
        ("https://[::1]", "public address"),
        // A public address, but plain http: the token would travel in the clear.
        ("http://8.8.8.8", "https URL"),
    ] {
        let r = link_raw(
            &s,
            &a,
            &json!({"platform": "mastodon", "handle": "@ann@m.example",
                    "config": {"base_url": base_url, "access_token": "tok"}}),
        )
        .await;
        assert_eq!(r.status.as_u16(), 400, "{base_url}: {}", r.text);
        assert_error_shape(&r.body, "invalid_input", &r.text);
        assert!(r.text.contains(why), "{base_url}: {}", r.text);
    }
    // Nothing was stored: no link, no handle taken.
    let r = get(&s, "/v1/me/platforms", a.tok()).await;
    assert_eq!(r.expect(200)["items"], json!([]));
    assert_healthy(&s).await;
    // A public address is taken (nothing is posted, so nothing goes to it).
    let r = link_raw(
        &s,
        &a,
        &json!({"platform": "webhook", "handle": "ssrf", "config": {"url": "https://8.8.8.8/hook", "secret": "s"}}),
    )
    .await;
    r.expect(201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_destination_is_refused_again_when_a_release_connects() {
    // Linked while the policy was off; the server restarts with it on: the release is
    // refused as it connects (as one to a name that now resolves to 127.0.0.1 would be),
    // fails for good, and the receiver never hears of it.
    let mut f = ReleaseFixture::start(&FAST_RETRY).await;
    let hook = f.webhook("was-allowed", Script::Always(Reply::ok())).await;
    f.s.set_allow_private(false);
    f.s.restart();
    let id = f.post("not for loopback").await;
    let items = f.wait_final(&id).await;
    let item = release_of(&items, &hook.link);
    assert_eq!(item["status"], "failed", "{items:?}");
    assert_eq!(item["attempts"], 1, "{items:?}");
    assert_eq!(item["last_error"], NOT_ALLOWED, "{items:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hook.rx.count(), 0, "a refused destination got a request");
    assert_healthy(&f.s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_error_shows_the_status_never_the_answer() {
    let mut f = ReleaseFixture::start(&[
        "--release-backoff-base-ms",
        "60000",
        "--release-timeout-ms",
        "500",
    ])
    .await;
    let leaky = f
        .webhook(
            "leaky",
            Script::Always(Reply::status(500).body("db password is hunter2; stack trace")),
        )
        .await;
    let picky = f
        .webhook(
            "picky",
            Script::Always(Reply::status(403).body("{\"internal\":\"admin-only\"}")),
        )
        .await;
    let sleepy = f
        .webhook(
            "sleepy",
            Script::Always(Reply::hang(Duration::from_secs(5))),
        )
        .await;
    // A port nothing listens on: refused at once, where the hang above times out. Both
    // read the same, so the difference cannot map ports.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook", l.local_addr().unwrap())
    };
    let refused = link_webhook(&f.s, &f.a, "closed", &closed, "s").await;

    let id = f.post("what do you say?").await;
    let items = wait_releases(&f.s, &f.a, &id, RELEASE_WAIT, |items| {
        items.len() == 4 && items.iter().all(|i| i["attempts"] == 1)
    })
    .await;
    let error_of = |link: &str| release_of(&items, link)["last_error"].clone();
    assert_eq!(error_of(&leaky.link), "HTTP 500", "{items:?}");
    assert_eq!(release_of(&items, &leaky.link)["status"], "retrying");
    assert_eq!(error_of(&picky.link), "HTTP 403", "{items:?}");
    assert_eq!(release_of(&items, &picky.link)["status"], "failed");
    assert_eq!(error_of(&sleepy.link), NO_ANSWER, "{items:?}");
    assert_eq!(error_of(&refused), NO_ANSWER, "{items:?}");
    let text = serde_json::to_string(&items).unwrap();
    for leaked in [
        "hunter2",
        "stack trace",
        "admin-only",
        "connection refused",
        "timed out after",
    ] {
        assert!(
            !text.contains(leaked),
            "{leaked:?} reached the author: {text}"
        );
    }
}
