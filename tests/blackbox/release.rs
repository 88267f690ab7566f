//! Activities and their release to linked platforms, end to end: the real server posts to
//! real HTTP receivers (webhook, Mastodon) and a real SMTP sink, and the tests check what
//! arrived there, what the releases endpoint says and which `release.status` events the
//! author's devices got.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::release::*;
use crate::support::*;

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Feed of `account` as seen by `viewer`.
async fn feed(s: &Server, viewer: &Acct, account: &str, query: &str) -> Resp {
    get(
        s,
        &format!("/v1/accounts/{account}/activities{query}"),
        viewer.tok(),
    )
    .await
}

fn feed_ids(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {body}"))
        .iter()
        .map(|i| i["activity_id"].as_str().expect("activity_id").to_string())
        .collect()
}

// ---------------------------------------------------------------------------
// 1. Posting, fan-out of activity.posted, the feed
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_reaches_friends_and_own_devices_and_the_feed() {
    let s = Server::start();
    let a = new_acct(&s, "Ann Author").await;
    let b = new_acct(&s, "Ben Friend").await;
    let d = new_acct(&s, "Dee Friend").await;
    let c = new_acct(&s, "Cal Stranger").await;
    make_friends(&s, &a, &b).await;
    make_friends(&s, &d, &a).await;

    // nothing yet
    let empty = feed(&s, &a, &a.id, "").await;
    assert_eq!(empty.expect(200), &json!({"items": [], "next": null}));

    let (mut wa, _) = ws_connect(&s, &a).await;
    let (mut wa2, _) = ws_connect(&s, &a).await;
    let (mut wb, _) = ws_connect(&s, &b).await;
    let (mut wd, _) = ws_connect(&s, &d).await;
    let (mut wc, _) = ws_connect(&s, &c).await;

    let text = "Hello, \"friends\" — ünïcödé ✓\nsecond line";
    let r = post_text(&s, &a, text).await;
    let id = activity_id(&r);
    assert_eq!(r["releases"], json!([]), "no links, no releases: {r}");
    let created = r["created_ms"].as_u64().unwrap();
    let want = json!({"activity_id": id, "account_id": a.id, "text": text, "created_ms": created});

    for ws in [&mut wa, &mut wa2, &mut wb, &mut wd] {
        let ev = expect_event(ws, "activity.posted").await;
        assert_eq!(ev["data"], want, "activity.posted data");
    }
    expect_no_event(&mut wc, Duration::from_millis(500)).await;
    expect_no_event(&mut wb, Duration::from_millis(50)).await;
    expect_no_event(&mut wa, Duration::from_millis(50)).await;

    // the author's log holds it too: a fresh device replaying everything sees it
    let (mut wa3, _) = ws_connect(&s, &a).await;
    send_json(&mut wa3, &json!({"type": "resume", "since": 0})).await;
    loop {
        let v = next_non_pong(&mut wa3, EVENT_TIMEOUT).await;
        if v["type"] == "activity.posted" {
            assert_eq!(v["data"], want);
            break;
        }
    }

    // the feed: self and friends, not strangers
    for viewer in [&a, &b, &d] {
        let f = feed(&s, viewer, &a.id, "").await;
        assert_eq!(
            f.expect(200),
            &json!({"items": [want.clone()], "next": null}),
            "feed as seen by {}",
            viewer.id
        );
    }
    feed(&s, &c, &a.id, "").await.expect_error(403, "forbidden");
    feed(&s, &a, "0123456789abcdef0123456789abcdef", "")
        .await
        .expect_error(404, "not_found");
    // the stranger's own (empty) feed is fine for itself, forbidden to a
    assert_eq!(
        feed(&s, &c, &c.id, "").await.expect(200)["items"],
        json!([])
    );
    feed(&s, &a, &c.id, "").await.expect_error(403, "forbidden");

    // paging: 4 more posts, newest first in pages of 2
    let mut ids = vec![id.clone()];
    for i in 2..=5 {
        tokio::time::sleep(Duration::from_millis(3)).await;
        ids.push(activity_id(&post_text(&s, &a, &format!("post {i}")).await));
    }
    ids.reverse(); // newest first
    let mut got = Vec::new();
    let mut query = "?limit=2".to_string();
    let mut pages = 0;
    loop {
        let page = feed(&s, &b, &a.id, &query).await.expect(200).clone();
        let page_ids = feed_ids(&page);
        assert!(page_ids.len() <= 2, "page over limit: {page}");
        got.extend(page_ids);
        pages += 1;
        assert!(pages <= 3, "too many pages");
        match page["next"].as_str() {
            Some(next) => query = format!("?limit=2&before={next}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(got, ids, "pages newest first, each post once");
    // created_ms never rises going down the feed
    let all = feed(&s, &a, &a.id, "?limit=200").await.expect(200).clone();
    let times: Vec<u64> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["created_ms"].as_u64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    assert_eq!(all["next"], Value::Null);
}

// ---------------------------------------------------------------------------
// 2. Bad input stores and sends nothing
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_rejected_and_stores_nothing() {
    let mut f = ReleaseFixture::start(&FAST_RETRY).await;
    let hook = f.webhook("ann-hook", Script::Always(Reply::ok())).await;
    let (s, a, rx) = (&f.s, &f.a, &hook.rx);
    let b = new_acct(s, "Ben Friend").await;
    let c = new_acct(s, "Cal Stranger").await;
    make_friends(s, a, &b).await;
    let mut wa = f.device().await;
    let (mut wb, _) = ws_connect(s, &b).await;

    async fn nothing_stored(s: &Server, a: &Acct, what: &str) {
        let f = feed(s, a, &a.id, "").await;
        assert_eq!(
            f.expect(200),
            &json!({"items": [], "next": null}),
            "something was stored after {what}"
        );
        assert_healthy(s).await;
    }

    let bad_json: Vec<(&str, Value)> = vec![
        ("array body", json!([{"text": "hi"}])),
        ("string body", json!("hi")),
        ("null body", Value::Null),
        ("number body", json!(42)),
        ("text missing", json!({})),
        ("text missing, key given", json!({"idempotency_key": "k"})),
        ("text a number", json!({"text": 5})),
        ("text null", json!({"text": null})),
        ("text an object", json!({"text": {"t": "hi"}})),
        ("key a number", json!({"text": "hi", "idempotency_key": 7})),
        (
            "key an array",
            json!({"text": "hi", "idempotency_key": ["k"]}),
        ),
    ];
    for (what, body) in &bad_json {
        let r = post(s, "/v1/me/activities", a.tok(), body).await;
        assert_eq!(r.status.as_u16(), 400, "{what}: {}", r.text);
        r.expect_error(400, "bad_json");
        nothing_stored(s, a, what).await;
    }
    for (what, raw) in [
        ("truncated JSON", "{\"text\": \"hi\""),
        ("empty body", ""),
        ("not JSON", "text=hi"),
    ] {
        let r = send_raw(
            s,
            Method::POST,
            "/v1/me/activities",
            a.tok(),
            raw.to_string(),
            Some("application/json"),
        )
        .await;
        assert_eq!(r.status.as_u16(), 400, "{what}: {}", r.text);
        r.expect_error(400, "bad_json");
        nothing_stored(s, a, what).await;
    }

    let invalid: Vec<(&str, Value)> = vec![
        ("empty text", json!({"text": ""})),
        ("blank text", json!({"text": "  \t\n  "})),
        ("text of 5001 chars", json!({"text": "x".repeat(5001)})),
        (
            "text of 5001 two-byte chars",
            json!({"text": "é".repeat(5001)}),
        ),
        ("empty key", json!({"text": "hi", "idempotency_key": ""})),
        (
            "key of 129 chars",
            json!({"text": "hi", "idempotency_key": "k".repeat(129)}),
        ),
        (
            "key with a newline",
            json!({"text": "hi", "idempotency_key": "line\nbreak"}),
        ),
        (
            "key with a control char",
            json!({"text": "hi", "idempotency_key": "a\u{7}b"}),
        ),
    ];
    for (what, body) in &invalid {
        let r = post(s, "/v1/me/activities", a.tok(), body).await;
        assert_eq!(r.status.as_u16(), 400, "{what}: {}", r.text);
        r.expect_error(400, "invalid_input");
        nothing_stored(s, a, what).await;
    }

    // no / unknown token
    post(s, "/v1/me/activities", None, &json!({"text": "hi"}))
        .await
        .expect_error(401, "unauthorized");
    post(
        s,
        "/v1/me/activities",
        Some("not-a-real-token-not-a-real-token-not-a-rea"),
        &json!({"text": "hi"}),
    )
    .await
    .expect_error(401, "unauthorized");
    nothing_stored(s, a, "unauthenticated posts").await;
    get(s, &format!("/v1/accounts/{}/activities", a.id), None)
        .await
        .expect_error(401, "unauthorized");

    // feed paging parameters
    feed(s, a, &a.id, "?limit=0")
        .await
        .expect_error(400, "invalid_input");
    feed(s, a, &a.id, "?limit=201")
        .await
        .expect_error(400, "invalid_input");
    feed(s, a, &a.id, "?before=%%%garbage")
        .await
        .expect_error(400, "invalid_input");

    // releases of an unknown activity
    get(
        s,
        "/v1/activities/0123456789abcdef0123456789abcdef/releases",
        a.tok(),
    )
    .await
    .expect_error(404, "not_found");
    nothing_stored(s, a, "unknown releases").await;

    // nothing reached anyone
    expect_no_event(&mut wa, Duration::from_millis(400)).await;
    expect_no_event(&mut wb, Duration::from_millis(50)).await;
    assert_eq!(rx.count(), 0, "a rejected post was released");

    // the limit is 5000 characters, not bytes
    let long = "é".repeat(5000);
    let r = post_text(s, a, &long).await;
    let id = activity_id(&r);
    let got = rx.wait_for(1, RELEASE_WAIT).await;
    assert_eq!(got[0].json()["text"], json!(long));
    assert_eq!(
        expect_event(&mut wb, "activity.posted").await["data"]["text"],
        json!(long)
    );

    // someone else's releases: forbidden to a friend and to a stranger, and no token is 401
    get(s, &format!("/v1/activities/{id}/releases"), b.tok())
        .await
        .expect_error(403, "forbidden");
    get(s, &format!("/v1/activities/{id}/releases"), c.tok())
        .await
        .expect_error(403, "forbidden");
    get(s, &format!("/v1/activities/{id}/releases"), None)
        .await
        .expect_error(401, "unauthorized");
    let items = f.wait_final(&id).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["status"], "delivered");
    assert_eq!(feed_ids(feed(s, a, &a.id, "").await.expect(200)), vec![id]);
    assert_eq!(rx.count(), 1);
    assert_healthy(s).await;
}

// ---------------------------------------------------------------------------
// 3. Two webhooks, both released, signed
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_webhooks_are_released_signed() {
    let mut f = ReleaseFixture::start_as("Ada Author", &FAST_RETRY).await;
    let blog = f
        .webhook_at("ada-blog", "/hooks/a?x=1", Script::Always(Reply::ok()))
        .await;
    let news = f
        .webhook_at("ada-news", "/b", Script::Always(Reply::status(204)))
        .await;
    let (s, a) = (&f.s, &f.a);
    let (la, ra, lb, rb) = (&blog.link, &blog.rx, &news.link, &news.rx);
    assert_ne!(la, lb);
    let mut wa = f.device().await;

    let text = "Release \"day\" — ünïcödé ✓\n<b>&amp;</b>";
    let before = now_secs();
    let r = post_text(s, a, text).await;
    let id = activity_id(&r);
    let created = r["created_ms"].as_u64().unwrap();
    let mut rel: Vec<Value> = r["releases"].as_array().unwrap().clone();
    rel.sort_by_key(|x| x["link_id"].as_str().unwrap().to_string());
    let mut want_rel = vec![
        json!({"link_id": la, "platform": "webhook", "status": "pending"}),
        json!({"link_id": lb, "platform": "webhook", "status": "pending"}),
    ];
    want_rel.sort_by_key(|x| x["link_id"].as_str().unwrap().to_string());
    assert_eq!(rel, want_rel, "201 releases");

    let got_a = ra.wait_for(1, RELEASE_WAIT).await;
    let got_b = rb.wait_for(1, RELEASE_WAIT).await;
    for (got, link_id, handle, secret, other_secret, path) in [
        (
            &got_a,
            la,
            "ada-blog",
            blog.secret,
            news.secret,
            "/hooks/a?x=1",
        ),
        (&got_b, lb, "ada-news", news.secret, blog.secret, "/b"),
    ] {
        let req = &got[0];
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, path);
        assert!(req.sig_ok, "bad signature: {:?}", req.headers);
        let ts = req.h("chorus-timestamp");
        let ts_num: u64 = ts.parse().expect("Chorus-Timestamp is unix seconds");
        assert!(
            ts_num + 5 >= before && ts_num <= now_secs() + 5,
            "Chorus-Timestamp {ts} far from now"
        );
        // signed with this link's secret, not the other one's
        assert_ne!(
            req.h("chorus-signature"),
            format!("v1={}", sign(other_secret, ts, &req.body))
        );
        assert_eq!(
            req.h("chorus-signature"),
            format!("v1={}", sign(secret, ts, &req.body))
        );
        assert!(
            req.h("content-type").starts_with("application/json"),
            "{:?}",
            req.headers
        );
        assert_eq!(req.h("chorus-attempt"), "1");
        assert!(!req.idempotency_key().is_empty());
        assert_eq!(
            req.json(),
            json!({"type": "activity.posted", "activity_id": id, "account_id": a.id,
                   "author_name": "Ada Author", "text": text, "created_ms": created,
                   "link_id": link_id, "handle": handle}),
            "webhook body"
        );
    }
    assert_ne!(
        got_a[0].idempotency_key(),
        got_b[0].idempotency_key(),
        "two links of one activity share an Idempotency-Key"
    );

    let posted = expect_event(&mut wa, "activity.posted").await;
    assert_eq!(posted["data"]["activity_id"], json!(id));
    let events = release_events(&mut wa, 2).await;
    for link_id in [la, lb] {
        assert_eq!(
            events_of(&events, link_id),
            vec![
                json!({"activity_id": id, "link_id": link_id, "platform": "webhook",
                        "status": "delivered", "attempts": 1})
            ],
            "release.status of {link_id}"
        );
    }
    let items = f.wait_final(&id).await;
    assert_eq!(items.len(), 2, "{items:?}");
    for link_id in [la, lb] {
        assert_eq!(
            release_of(&items, link_id),
            &json!({"activity_id": id, "link_id": link_id, "platform": "webhook",
                    "status": "delivered", "attempts": 1})
        );
    }
    expect_no_event(&mut wa, Duration::from_millis(300)).await;
    assert_eq!(ra.count(), 1);
    assert_eq!(rb.count(), 1);

    // a second activity gets keys of its own
    let id2 = activity_id(&post_text(s, a, "second").await);
    let got_a = ra.wait_for(2, RELEASE_WAIT).await;
    assert_eq!(got_a[1].json()["activity_id"], json!(id2));
    assert_ne!(got_a[0].idempotency_key(), got_a[1].idempotency_key());
}

// ---------------------------------------------------------------------------
// 4. A 500 is retried with the same key; the other platform is not disturbed
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_error_is_retried_with_the_same_key() {
    let mut f = ReleaseFixture::start(&FAST_RETRY).await;
    let flaky = f
        .webhook("flaky", Script::Seq(vec![Reply::status(500)]))
        .await;
    let steady = f.webhook("steady", Script::Always(Reply::ok())).await;
    let (la, ra, lb, rb) = (&flaky.link, &flaky.rx, &steady.link, &steady.rx);
    let mut wa = f.device().await;

    let id = f.post("retry me").await;
    expect_event(&mut wa, "activity.posted").await;
    let events = release_events(&mut wa, 3).await;

    let ea = events_of(&events, la);
    assert_eq!(ea.len(), 2, "{events:?}");
    assert_eq!(ea[0]["status"], "retrying", "{ea:?}");
    assert_eq!(ea[0]["attempts"], 1);
    assert_eq!(ea[0]["activity_id"], json!(id));
    assert_eq!(ea[0]["platform"], "webhook");
    assert!(
        ea[0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("500")),
        "last_error should mention the 500: {}",
        ea[0]
    );
    assert!(
        ea[0]["next_attempt_ms"].is_u64(),
        "retrying carries next_attempt_ms: {}",
        ea[0]
    );
    assert_eq!(
        ea[1],
        json!({"activity_id": id, "link_id": la, "platform": "webhook",
               "status": "delivered", "attempts": 2})
    );
    assert_eq!(
        events_of(&events, lb),
        vec![
            json!({"activity_id": id, "link_id": lb, "platform": "webhook",
                    "status": "delivered", "attempts": 1})
        ]
    );

    let got = ra.wait_for(2, RELEASE_WAIT).await;
    assert_eq!(got.len(), 2);
    assert_same_key_and_body(&got);
    assert!(got.iter().all(|r| r.sig_ok));
    assert_eq!(got[0].h("chorus-attempt"), "1");
    assert_eq!(got[1].h("chorus-attempt"), "2");
    // backoff base 100 ms, jitter ±20 %: the retry waited
    let gap = got[1].at - got[0].at;
    assert!(
        gap >= Duration::from_millis(75),
        "retried after only {gap:?}"
    );
    assert_eq!(rb.count(), 1, "the healthy platform got a repeat");
    assert_ne!(got[0].idempotency_key(), rb.requests()[0].idempotency_key());

    let items = f.wait_final(&id).await;
    assert_eq!(release_of(&items, la)["status"], "delivered");
    assert_eq!(release_of(&items, la)["attempts"], 2);
    assert!(
        release_of(&items, la).get("next_attempt_ms").is_none(),
        "next_attempt_ms only while retrying: {items:?}"
    );
    assert_eq!(release_of(&items, lb)["attempts"], 1);
    expect_no_event(&mut wa, Duration::from_millis(300)).await;
}

// ---------------------------------------------------------------------------
// 5. A platform that does not answer in time is retried
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_is_retried() {
    let mut f = ReleaseFixture::start(&[
        "--release-backoff-base-ms",
        "100",
        "--release-timeout-ms",
        "500",
    ])
    .await;
    let sleepy = f
        .webhook(
            "sleepy",
            Script::Seq(vec![Reply::hang(Duration::from_secs(3))]),
        )
        .await;
    let (la, rx) = (&sleepy.link, &sleepy.rx);
    let mut wa = f.device().await;

    let id = f.post("are you there?").await;
    expect_event(&mut wa, "activity.posted").await;
    let ev = release_events(&mut wa, 2).await;
    assert_eq!(ev[0]["link_id"], json!(la));
    assert_eq!(ev[0]["status"], "retrying", "{ev:?}");
    assert_eq!(ev[0]["attempts"], 1);
    // The fixed reason of every attempt without an answer (a timeout reads as a refused
    // connection does: docs/api.md, "Delivery rules").
    assert_eq!(
        ev[0]["last_error"], "no answer (could not connect, or timed out)",
        "{}",
        ev[0]
    );
    assert_eq!(ev[1]["status"], "delivered", "{ev:?}");
    assert_eq!(ev[1]["attempts"], 2);
    let got = rx.wait_for(2, RELEASE_WAIT).await;
    assert_same_key_and_body(&got);
    // the first attempt was cut off at the 500 ms bound, then the backoff ran
    let gap = got[1].at - got[0].at;
    assert!(
        gap >= Duration::from_millis(500),
        "retried after only {gap:?}"
    );
    let items = f.wait_final(&id).await;
    assert_eq!(items[0]["status"], "delivered");
    assert_eq!(items[0]["attempts"], 2);
}

// ---------------------------------------------------------------------------
// 6. A 4xx fails at once
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_error_fails_at_once() {
    let mut f = ReleaseFixture::start(&FAST_RETRY).await;
    let strict = f
        .webhook("strict", Script::Always(Reply::status(400)))
        .await;
    let (la, rx) = (&strict.link, &strict.rx);
    let mut wa = f.device().await;

    let id = f.post("rejected").await;
    expect_event(&mut wa, "activity.posted").await;
    let ev = release_events(&mut wa, 1).await;
    assert_eq!(ev[0]["link_id"], json!(la));
    assert_eq!(ev[0]["status"], "failed", "{ev:?}");
    assert_eq!(ev[0]["attempts"], 1);
    assert!(
        ev[0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("400")),
        "{}",
        ev[0]
    );
    assert!(ev[0].get("next_attempt_ms").is_none(), "{}", ev[0]);
    // a long look: nothing more is tried
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(rx.count(), 1, "a 400 was retried");
    expect_no_event(&mut wa, Duration::from_millis(100)).await;
    let items = f.releases(&id).await;
    assert_eq!(items[0]["status"], "failed");
    assert_eq!(items[0]["attempts"], 1);
}

// ---------------------------------------------------------------------------
// 7. 429 + Retry-After is honoured
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured() {
    let mut f = ReleaseFixture::start(&FAST_RETRY).await;
    let busy = f
        .webhook("busy", Script::Seq(vec![Reply::retry_after(429, 2)]))
        .await;
    let rx = &busy.rx;
    let mut wa = f.device().await;

    let id = f.post("not so fast").await;
    expect_event(&mut wa, "activity.posted").await;
    let ev = release_events(&mut wa, 1).await;
    assert_eq!(ev[0]["status"], "retrying", "{ev:?}");
    assert!(
        ev[0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("429")),
        "{}",
        ev[0]
    );
    let got = rx.wait_for(2, RELEASE_WAIT).await;
    let gap = got[1].at - got[0].at;
    // base backoff is 100 ms (at most 120 ms): only Retry-After explains a 2 s wait
    assert!(
        gap >= Duration::from_millis(1800),
        "Retry-After: 2 ignored, retried after {gap:?}"
    );
    assert_same_key_and_body(&got);
    let ev = release_events(&mut wa, 1).await;
    assert_eq!(ev[0]["status"], "delivered");
    assert_eq!(ev[0]["attempts"], 2);
    assert_eq!(f.wait_final(&id).await[0]["status"], "delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_on_503_is_honoured() {
    let mut f = ReleaseFixture::start(&FAST_RETRY).await;
    let maint = f
        .webhook("maint", Script::Seq(vec![Reply::retry_after(503, 1)]))
        .await;
    let rx = &maint.rx;
    let id = f.post("down for maintenance").await;
    let got = rx.wait_for(2, RELEASE_WAIT).await;
    let gap = got[1].at - got[0].at;
    assert!(
        gap >= Duration::from_millis(900),
        "503 Retry-After: 1 ignored, retried after {gap:?}"
    );
    assert_same_key_and_body(&got);
    let items = f.wait_final(&id).await;
    assert_eq!(items[0]["status"], "delivered");
    assert_eq!(items[0]["attempts"], 2);
}

// ---------------------------------------------------------------------------
// 8. Giving up after --release-max-attempts
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gives_up_after_max_attempts() {
    let mut f = ReleaseFixture::start(&[
        "--release-backoff-base-ms",
        "100",
        "--release-max-attempts",
        "3",
    ])
    .await;
    let broken = f
        .webhook("broken", Script::Always(Reply::status(500)))
        .await;
    let (la, rx) = (&broken.link, &broken.rx);
    let mut wa = f.device().await;

    let id = f.post("doomed").await;
    expect_event(&mut wa, "activity.posted").await;
    let ev = release_events(&mut wa, 3).await;
    let statuses: Vec<(&str, u64)> = ev
        .iter()
        .map(|e| {
            (
                e["status"].as_str().unwrap(),
                e["attempts"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        vec![("retrying", 1), ("retrying", 2), ("failed", 3)],
        "{ev:?}"
    );
    assert!(ev.iter().all(|e| e["link_id"] == *la));
    let last = ev[2]["last_error"].as_str().unwrap_or_default();
    assert!(last.contains("gave up"), "last_error: {last:?}");
    assert!(ev[2].get("next_attempt_ms").is_none(), "{}", ev[2]);

    // the next backoff would be ~400 ms: wait longer than that
    tokio::time::sleep(Duration::from_secs(1)).await;
    let got = rx.requests();
    assert_eq!(got.len(), 3, "wanted exactly 3 attempts");
    assert_same_key_and_body(&got);
    let attempts: Vec<&str> = got.iter().map(|r| r.h("chorus-attempt")).collect();
    assert_eq!(attempts, ["1", "2", "3"]);
    let items = f.releases(&id).await;
    assert_eq!(items[0]["status"], "failed");
    assert_eq!(items[0]["attempts"], 3);
    assert!(
        items[0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("gave up")),
        "{items:?}"
    );
    expect_no_event(&mut wa, Duration::from_millis(100)).await;
}

// ---------------------------------------------------------------------------
// 9. Idempotent posting
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_post_with_a_key_releases_once() {
    let mut f = ReleaseFixture::start(&FAST_RETRY).await;
    let b = new_acct(&f.s, "Ben Friend").await;
    make_friends(&f.s, &f.a, &b).await;
    let once = f.webhook("once", Script::Always(Reply::ok())).await;
    let (s, a, la, rx) = (&f.s, &f.a, &once.link, &once.rx);
    let mut wa = f.device().await;
    let (mut wb, _) = ws_connect(s, &b).await;

    let body = json!({"text": "exactly once", "idempotency_key": "client-key-1"});
    let (r1, h1) = post_activity_raw(s, a, &body).await;
    let first = r1.expect(201).clone();
    assert!(
        h1.get("idempotent-replayed").is_none(),
        "the first post is no replay: {h1:?}"
    );
    let id = activity_id(&first);
    // at once (while the release may be pending), and again after it is done
    let (r2, h2) = post_activity_raw(s, a, &body).await;
    let second = r2.expect(201).clone();
    assert_eq!(
        h2.get("idempotent-replayed").map(|v| v.to_str().unwrap()),
        Some("true")
    );
    assert_eq!(second["activity_id"], json!(id));
    assert_eq!(second["created_ms"], first["created_ms"]);
    assert_eq!(second["releases"][0]["link_id"], json!(la));

    rx.wait_for(1, RELEASE_WAIT).await;
    f.wait_final(&id).await;
    let (r3, h3) = post_activity_raw(s, a, &body).await;
    assert_eq!(r3.expect(201)["activity_id"], json!(id));
    assert_eq!(
        h3.get("idempotent-replayed").map(|v| v.to_str().unwrap()),
        Some("true")
    );

    // concurrent repeats: all the same activity
    let futs: Vec<_> = (0..5).map(|_| post_activity_raw(s, a, &body)).collect();
    for (r, h) in futures_util::future::join_all(futs).await {
        assert_eq!(r.expect(201)["activity_id"], json!(id));
        assert!(h.get("idempotent-replayed").is_some());
    }

    // same key, other text
    let (r, _) = post_activity_raw(
        s,
        a,
        &json!({"text": "something else", "idempotency_key": "client-key-1"}),
    )
    .await;
    r.expect_error(409, "idempotency_key_reused");

    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(rx.count(), 1, "a replayed post was released again");
    let ev = expect_event(&mut wb, "activity.posted").await;
    assert_eq!(ev["data"]["activity_id"], json!(id));
    expect_no_event(&mut wb, Duration::from_millis(200)).await;
    expect_event(&mut wa, "activity.posted").await;
    let st = release_events(&mut wa, 1).await;
    assert_eq!(st[0]["status"], "delivered");
    expect_no_event(&mut wa, Duration::from_millis(200)).await;
    assert_eq!(
        feed_ids(feed(s, a, &a.id, "").await.expect(200)),
        vec![id.clone()]
    );

    // a new key is a new post; the same key of another account is that account's own
    let (r, h) = post_activity_raw(
        s,
        a,
        &json!({"text": "exactly once", "idempotency_key": "client-key-2"}),
    )
    .await;
    assert!(h.get("idempotent-replayed").is_none());
    let id2 = activity_id(r.expect(201));
    assert_ne!(id2, id);
    let (r, h) = post_activity_raw(s, &b, &body).await;
    assert!(
        h.get("idempotent-replayed").is_none(),
        "another account's key replayed a post: {}",
        r.text
    );
    let idb = activity_id(r.expect(201));
    assert_ne!(idb, id);
    let got = rx.wait_for(2, RELEASE_WAIT).await;
    assert_eq!(got[1].json()["activity_id"], json!(id2));

    // racing first posts with one fresh key: one activity, posted and released once
    let race = json!({"text": "racing", "idempotency_key": "race-key"});
    let futs: Vec<_> = (0..5).map(|_| post_activity_raw(s, a, &race)).collect();
    let answers = futures_util::future::join_all(futs).await;
    let ids: HashSet<String> = answers
        .iter()
        .map(|(r, _)| activity_id(r.expect(201)))
        .collect();
    assert_eq!(ids.len(), 1, "racing posts with one key made {ids:?}");
    let fresh = answers
        .iter()
        .filter(|(_, h)| h.get("idempotent-replayed").is_none())
        .count();
    assert_eq!(fresh, 1, "exactly one of the racing posts is not a replay");
    let race_id = ids.into_iter().next().unwrap();
    rx.wait_for(3, RELEASE_WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let released: Vec<String> = rx
        .requests()
        .iter()
        .map(|r| r.json()["activity_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(released.len(), 3, "{released:?}");
    assert_eq!(released[2], race_id);
}

// ---------------------------------------------------------------------------
// 10. A slow platform does not hold up the others
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_platform_does_not_delay_others() {
    let mut f = ReleaseFixture::start(&[
        "--release-backoff-base-ms",
        "100",
        "--release-timeout-ms",
        "8000",
    ])
    .await;
    let slow = f
        .webhook("slow", Script::Always(Reply::hang(Duration::from_secs(5))))
        .await;
    let fast = f.webhook("fast", Script::Always(Reply::ok())).await;
    let (s, a, ls, lf) = (&f.s, &f.a, &slow.link, &fast.link);
    let (slow, fast) = (&slow.rx, &fast.rx);

    let posted_at = Instant::now();
    let id = activity_id(&post_text(s, a, "race").await);
    let items = wait_releases(s, a, &id, RELEASE_WAIT, |items| {
        items
            .iter()
            .any(|i| i["link_id"] == *lf && i["status"] != "pending")
    })
    .await;
    assert_eq!(release_of(&items, lf)["status"], "delivered", "{items:?}");
    assert_eq!(
        release_of(&items, ls)["status"],
        "pending",
        "the slow platform should still be in its first attempt: {items:?}"
    );
    assert_eq!(release_of(&items, ls)["attempts"], 0);
    // the slow attempt had started (they ran side by side) and is still hanging
    slow.wait_for(1, Duration::from_secs(2)).await;

    let items = wait_final(s, a, &id, Duration::from_secs(10)).await;
    assert_eq!(release_of(&items, ls)["status"], "delivered");
    assert_eq!(release_of(&items, ls)["attempts"], 1);
    assert!(
        posted_at.elapsed() >= Duration::from_secs(5),
        "the slow one answered after 5 s"
    );
    assert_eq!(slow.count(), 1);
    assert_eq!(fast.count(), 1);
}

// ---------------------------------------------------------------------------
// 11. Mastodon, and bad link configs
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mastodon_status_is_posted() {
    let f = ReleaseFixture::start(&FAST_RETRY).await;
    // Linking asks the instance whose account the token is (verify_credentials) first.
    let social = f
        .mastodon(
            "@ann@127.0.0.1",
            "/social/",
            "tok_ABC-123",
            Script::ByPath(mastodon_instance),
        )
        .await;
    let check = &social.rx.wait_for(1, RELEASE_WAIT).await[0];
    assert_eq!(
        (check.method.as_str(), check.path.as_str()),
        ("GET", "/social/api/v1/accounts/verify_credentials")
    );
    assert_eq!(check.h("authorization"), "Bearer tok_ABC-123");
    let (s, a, lm, rx) = (&f.s, &f.a, &social.link, &social.rx);
    let mut wa = f.device().await;

    let text = "Toot \"toot\" — ünïcödé";
    let r = post_text(s, a, text).await;
    let id = activity_id(&r);
    assert_eq!(
        r["releases"],
        json!([{"link_id": lm, "platform": "mastodon", "status": "pending"}])
    );
    let got = rx.wait_for(2, RELEASE_WAIT).await;
    let req = &got[1];
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/social/api/v1/statuses");
    assert_eq!(req.h("authorization"), "Bearer tok_ABC-123");
    assert!(!req.idempotency_key().is_empty());
    assert!(req.h("content-type").starts_with("application/json"));
    assert_eq!(req.json(), json!({"status": text}));

    expect_event(&mut wa, "activity.posted").await;
    let ev = release_events(&mut wa, 1).await;
    assert_eq!(
        ev[0],
        json!({"activity_id": id, "link_id": lm, "platform": "mastodon",
               "status": "delivered", "attempts": 1})
    );
    let items = f.wait_final(&id).await;
    assert_eq!(items[0]["status"], "delivered");
    assert_eq!(items[0]["platform"], "mastodon");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_link_configs_are_rejected() {
    let s = Server::start();
    let a = new_acct(&s, "Ann Author").await;
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "webhook ftp url",
            json!({"platform": "webhook", "handle": "h1",
                   "config": {"url": "ftp://127.0.0.1/x", "secret": "s"}}),
            "invalid_input",
        ),
        (
            "webhook without url",
            json!({"platform": "webhook", "handle": "h2", "config": {"secret": "s"}}),
            "invalid_input",
        ),
        (
            "webhook without secret",
            json!({"platform": "webhook", "handle": "h3",
                   "config": {"url": "http://127.0.0.1:9/x"}}),
            "invalid_input",
        ),
        (
            "webhook with an empty secret",
            json!({"platform": "webhook", "handle": "h4",
                   "config": {"url": "http://127.0.0.1:9/x", "secret": ""}}),
            "invalid_input",
        ),
        (
            "mastodon without access_token",
            json!({"platform": "mastodon", "handle": "h5",
                   "config": {"base_url": "https://social.example"}}),
            "invalid_input",
        ),
        (
            "mastodon without base_url",
            json!({"platform": "mastodon", "handle": "h6",
                   "config": {"access_token": "t"}}),
            "invalid_input",
        ),
        (
            "mastodon with a non-http base_url",
            json!({"platform": "mastodon", "handle": "h7",
                   "config": {"base_url": "gopher://social.example", "access_token": "t"}}),
            "invalid_input",
        ),
        (
            "email without --smtp-url",
            json!({"platform": "email", "handle": "bob@example.com", "config": {}}),
            "unknown_platform",
        ),
        (
            "a platform nobody has",
            json!({"platform": "myspace", "handle": "tom", "config": {}}),
            "unknown_platform",
        ),
    ];
    for (what, body, code) in &cases {
        let r = post(&s, "/v1/me/platforms", a.tok(), body).await;
        assert_eq!(r.status.as_u16(), 400, "{what}: {}", r.text);
        r.expect_error(400, code);
    }
    let l = get(&s, "/v1/me/platforms", a.tok()).await;
    assert_eq!(
        l.expect(200)["items"],
        json!([]),
        "a rejected link was stored"
    );
    assert_healthy(&s).await;

    // with SMTP configured, email is a platform and its handle must be an address
    // (nothing connects to the relay when linking)
    let s = Server::start_with(&["--smtp-url", "smtp://127.0.0.1:9"]);
    let a = new_acct(&s, "Ann Author").await;
    for bad in ["bob", "bob@", "@example.com", "Bob <bob@example.com>"] {
        let r = post(
            &s,
            "/v1/me/platforms",
            a.tok(),
            &json!({"platform": "email", "handle": bad, "config": {}}),
        )
        .await;
        assert_eq!(r.status.as_u16(), 400, "email handle {bad:?}: {}", r.text);
        r.expect_error(400, "invalid_input");
    }
    let l = get(&s, "/v1/me/platforms", a.tok()).await;
    assert_eq!(l.expect(200)["items"], json!([]));
    link_email(&s, &a, "bob@example.com").await;
}

// ---------------------------------------------------------------------------
// 12. Email through a real SMTP server
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_is_sent_through_smtp() {
    let Some(sink) = SmtpSink::start(&[]) else {
        return;
    };
    let f = ReleaseFixture::with_smtp("Edna Mail", &sink).await;
    let (s, a) = (&f.s, &f.a);
    let le = f.email("bob@example.com", &sink).await;
    let mut wa = f.device().await;

    let text = "Hello by mail — ünïcödé ✉\nsecond line";
    let r = post_text(s, a, text).await;
    let id = activity_id(&r);
    assert_eq!(
        r["releases"],
        json!([{"link_id": le, "platform": "email", "status": "pending"}])
    );
    // The first message was the link's code.
    let msgs = sink.wait_for(2, RELEASE_WAIT).await;
    let m = &msgs[1];
    assert_eq!(m["rcpt_tos"], json!(["bob@example.com"]), "{m}");
    assert_eq!(m["subject"], "Edna Mail posted on Chorus", "{m}");
    let data = m["data"].as_str().unwrap();
    let mid = message_id_line(data).unwrap_or_else(|| panic!("no Message-ID: {data}"));
    assert!(
        mid.contains(&id) && mid.contains("@chorus>") && mid.contains('<'),
        "Message-ID should be <key@chorus> with the activity id: {mid}"
    );
    let body = m["text"].as_str().unwrap_or_default();
    assert_eq!(
        body.trim_end().replace("\r\n", "\n"),
        format!("{text}\n\n— Edna Mail via Chorus"),
        "email body"
    );

    expect_event(&mut wa, "activity.posted").await;
    let ev = release_events(&mut wa, 1).await;
    assert_eq!(
        ev[0],
        json!({"activity_id": id, "link_id": le, "platform": "email",
               "status": "delivered", "attempts": 1})
    );
    let items = f.wait_final(&id).await;
    assert_eq!(items[0]["status"], "delivered");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.messages().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_transient_failure_is_retried_permanent_fails() {
    // The link's code goes through; the release's first attempt is refused.
    let Some(flaky) = SmtpSink::start(&["--fail-first", "1", "--spare-codes"]) else {
        return;
    };
    let f = ReleaseFixture::with_smtp("Edna Mail", &flaky).await;
    let le = f.email("bob@example.com", &flaky).await;
    let mut wa = f.device().await;
    let id = f.post("second time lucky").await;
    expect_event(&mut wa, "activity.posted").await;
    let ev = release_events(&mut wa, 2).await;
    assert_eq!(ev[0]["link_id"], json!(le));
    assert_eq!(ev[0]["status"], "retrying", "{ev:?}");
    assert!(
        ev[0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("451")),
        "{}",
        ev[0]
    );
    assert_eq!(ev[1]["status"], "delivered", "{ev:?}");
    assert_eq!(ev[1]["attempts"], 2);
    let msgs = flaky.wait_for(2, RELEASE_WAIT).await;
    assert!(message_id_line(msgs[1]["data"].as_str().unwrap()).is_some_and(|l| l.contains(&id)));
    drop(f);

    let Some(rejecting) = SmtpSink::start(&["--reject", "--spare-codes"]) else {
        return;
    };
    let f = ReleaseFixture::with_smtp("Edna Mail", &rejecting).await;
    f.email("nobody@example.com", &rejecting).await;
    let id = f.post("to nobody").await;
    let items = f.wait_final(&id).await;
    assert_eq!(items[0]["status"], "failed", "{items:?}");
    assert_eq!(items[0]["attempts"], 1, "a 550 is not retried: {items:?}");
    assert!(
        items[0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("550")),
        "{items:?}"
    );
}

// ---------------------------------------------------------------------------
// Unlinking a platform ends its waiting releases
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlinking_a_platform_fails_its_waiting_releases() {
    // Long backoff: after the first 500 the release waits ~2 s, long enough to unlink.
    let mut f = ReleaseFixture::start(&["--release-backoff-base-ms", "2000"]).await;
    let going = f
        .webhook("going-away", Script::Always(Reply::status(500)))
        .await;
    let staying = f.webhook("staying", Script::Always(Reply::ok())).await;
    let (s, a, gone, kept, rx) = (&f.s, &f.a, &going.link, &staying.link, &going.rx);
    let mut wa = f.device().await;

    let id = f.post("last words").await;
    expect_event(&mut wa, "activity.posted").await;
    let first = release_events(&mut wa, 2).await;
    assert_eq!(
        events_of(&first, gone)[0]["status"],
        "retrying",
        "{first:?}"
    );
    assert_eq!(
        events_of(&first, kept)[0]["status"],
        "delivered",
        "{first:?}"
    );

    delete(s, &format!("/v1/me/platforms/{gone}"), a.tok())
        .await
        .expect(204);
    let ev = release_events(&mut wa, 1).await;
    assert_eq!(ev[0]["link_id"], gone.as_str());
    assert_eq!(ev[0]["status"], "failed");
    assert_eq!(ev[0]["last_error"], "platform unlinked");

    // The retry would have come after ~2 s: nothing more reaches the unlinked platform.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(rx.count(), 1, "an unlinked platform got another attempt");
    let items = f.releases(&id).await;
    assert_eq!(release_of(&items, gone)["status"], "failed");
    assert_eq!(release_of(&items, kept)["status"], "delivered");
    expect_no_event(&mut wa, Duration::from_millis(100)).await;
}

// ---------------------------------------------------------------------------
// One dark server cannot take every release slot
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dark_server_cannot_take_every_slot() {
    // 4 slots in all, at most 2 per destination host. Five accounts link the same hanging
    // server (another host than the healthy one: 127.0.0.2); without the per-destination cap
    // their first attempts would hold all 4 slots for the whole timeout and the healthy
    // platform would wait behind them.
    let mut f = ReleaseFixture::start_as(
        "Bea Healthy",
        &[
            "--release-concurrency",
            "4",
            "--release-per-destination",
            "2",
            "--release-timeout-ms",
            "8000",
        ],
    )
    .await;
    let dark = Receiver::start_at(
        [127, 0, 0, 2].into(),
        Script::Always(Reply::hang(Duration::from_secs(7))),
        None,
    );
    let mut posts = Vec::new();
    for i in 0..5 {
        let a = new_acct(&f.s, &format!("Dark {i}")).await;
        let url = dark.url(&format!("/u{i}"));
        link_webhook(&f.s, &a, &format!("dark-{i}"), &url, "whsec_dark").await;
        posts.push((activity_id(&post_text(&f.s, &a, "into the void").await), a));
    }
    let healthy = f.webhook("healthy", Script::Always(Reply::ok())).await;
    let (s, b, lb) = (&f.s, &f.a, &healthy.link);
    let id = f.post("hello").await;

    // Released while the dark server still holds its attempts (they hang for 7 s).
    let items = wait_releases(s, b, &id, Duration::from_secs(5), |items| {
        items.iter().any(|i| i["status"] == "delivered")
    })
    .await;
    assert_eq!(release_of(&items, lb)["status"], "delivered");
    // The cap held: the dark server never had more than 2 attempts at once.
    assert!(
        dark.count() <= 2,
        "dark server got {} attempts",
        dark.count()
    );
    let (first, a0) = &posts[0];
    let pending = releases(s, a0, first).await;
    assert!(
        pending.iter().all(|i| i["status"] == "pending"),
        "{pending:?}"
    );
}
