//! Release across crashes: deliveries that were not final when the server was SIGKILLed
//! carry on after a restart, with the same `Idempotency-Key` and the same body, and the
//! delivered ones are not sent again.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::json;

use crate::support::release::*;

const SECRET_A: &str = "whsec_alpha_0123456789";
const SECRET_B: &str = "whsec_bravo_9876543210";
const DELIVERY: Duration = Duration::from_secs(10);

/// Requests grouped by the activity in their body.
fn by_activity(got: &[Received]) -> BTreeMap<String, Vec<Received>> {
    let mut map: BTreeMap<String, Vec<Received>> = BTreeMap::new();
    for r in got {
        let id = r.json()["activity_id"].as_str().unwrap().to_string();
        map.entry(id).or_default().push(r.clone());
    }
    map
}

/// Waits until `rx` has seen at least one request for each of `ids`.
async fn wait_activities(rx: &Receiver, ids: &[String], timeout: Duration) -> Vec<Received> {
    let deadline = Instant::now() + timeout;
    loop {
        let got = rx.requests();
        let seen = by_activity(&got);
        if ids.iter().all(|id| seen.contains_key(id)) {
            return got;
        }
        if Instant::now() > deadline {
            panic!(
                "receiver saw activities {:?} within {timeout:?}, wanted {ids:?}",
                seen.keys().collect::<Vec<_>>()
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_deliveries_survive_sigkill() {
    let mut s = Server::start_with(&["--release-backoff-base-ms", "100"]);
    // The first answers are slow, so the server dies before it has recorded any delivery
    // (whether or not a request already went out).
    let slow = Script::Seq(vec![Reply::hang(Duration::from_millis(400)); 3]);
    let ra = Receiver::start(slow.clone(), Some(SECRET_A));
    let rb = Receiver::start(slow, Some(SECRET_B));
    let a = new_acct(&s, "Ann Author").await;
    let la = link_webhook(&s, &a, "alpha", &ra.url("/hook"), SECRET_A).await;
    let lb = link_webhook(&s, &a, "bravo", &rb.url("/hook"), SECRET_B).await;

    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(activity_id(&post_text(&s, &a, &format!("crash {i}")).await));
    }
    // right after the last 201
    s.kill();
    s.restart();

    // wait until every delivery is done, then look at everything the receivers got
    for id in &ids {
        let items = wait_final(&s, &a, id, DELIVERY).await;
        assert_eq!(items.len(), 2, "{items:?}");
        for link_id in [&la, &lb] {
            assert_eq!(
                release_of(&items, link_id)["status"],
                "delivered",
                "{items:?}"
            );
        }
    }

    let mut all_keys = HashSet::new();
    for (rx, link_id) in [(&ra, &la), (&rb, &lb)] {
        let got = wait_activities(rx, &ids, DELIVERY).await;
        for (id, reqs) in by_activity(&got) {
            assert!(ids.contains(&id), "unknown activity {id} delivered");
            let keys: HashSet<String> = reqs.iter().map(Received::idempotency_key).collect();
            assert_eq!(
                keys.len(),
                1,
                "activity {id} reached link {link_id} with several keys: {keys:?}"
            );
            for r in &reqs {
                assert_eq!(r.body, reqs[0].body, "activity {id}: bodies differ");
                assert!(r.sig_ok, "bad signature after restart");
                assert_eq!(r.json()["link_id"], json!(link_id));
            }
            assert!(all_keys.insert(keys.into_iter().next().unwrap()));
        }
    }

    // delivered ones are not sent again after another crash
    let (na, nb) = (ra.count(), rb.count());
    s.kill();
    s.restart();
    assert_healthy(&s).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        (ra.count(), rb.count()),
        (na, nb),
        "delivered releases were sent again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempt_cut_by_a_crash_is_repeated_with_the_same_key() {
    let mut s = Server::start_with(&[
        "--release-backoff-base-ms",
        "100",
        "--release-timeout-ms",
        "20000",
    ]);
    // The first request hangs (the server dies while waiting for it); later ones succeed.
    let rx = Receiver::start(
        Script::Seq(vec![Reply::hang(Duration::from_secs(30))]),
        Some(SECRET_A),
    );
    let a = new_acct(&s, "Ann Author").await;
    let la = link_webhook(&s, &a, "alpha", &rx.url("/hook"), SECRET_A).await;
    let id = activity_id(&post_text(&s, &a, "in flight").await);
    rx.wait_for(1, DELIVERY).await;
    assert_eq!(releases(&s, &a, &id).await[0]["status"], "pending");
    s.kill();
    s.restart();

    let got = rx.wait_for(2, DELIVERY).await;
    let keys: HashSet<String> = got.iter().map(Received::idempotency_key).collect();
    assert_eq!(keys.len(), 1, "the repeat carries another key: {keys:?}");
    assert_eq!(got[0].body, got[1].body);
    assert!(got[1].sig_ok);
    let items = wait_final(&s, &a, &id, DELIVERY).await;
    let item = release_of(&items, &la);
    assert_eq!(item["status"], "delivered", "{items:?}");
    assert!(item["attempts"].as_u64().unwrap() >= 1, "{items:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrying_delivery_survives_sigkill() {
    let mut s = Server::start_with(&["--release-backoff-base-ms", "3000"]);
    let rx = Receiver::start(Script::Seq(vec![Reply::status(500)]), Some(SECRET_A));
    let a = new_acct(&s, "Ann Author").await;
    let la = link_webhook(&s, &a, "alpha", &rx.url("/hook"), SECRET_A).await;
    let (mut wa, _) = ws_connect(&s, &a).await;

    let id = activity_id(&post_text(&s, &a, "try again later").await);
    expect_event(&mut wa, "activity.posted").await;
    let ev = release_events(&mut wa, 1, DELIVERY).await;
    assert_eq!(ev[0]["link_id"], json!(la));
    assert_eq!(ev[0]["status"], "retrying", "{ev:?}");
    assert_eq!(ev[0]["attempts"], 1);
    drop(wa);
    s.kill();
    s.restart();

    let items = wait_final(&s, &a, &id, DELIVERY).await;
    assert_eq!(
        items,
        vec![
            json!({"activity_id": id, "link_id": la, "platform": "webhook",
                    "status": "delivered", "attempts": 2})
        ]
    );
    let got = rx.requests();
    assert_eq!(got.len(), 2, "wanted the failed attempt and one retry");
    let keys: HashSet<String> = got.iter().map(Received::idempotency_key).collect();
    assert_eq!(keys.len(), 1, "the retry after the restart has another key");
    assert_eq!(got[0].body, got[1].body);
    assert_eq!(got[0].h("chorus-attempt"), "1");
    assert_eq!(got[1].h("chorus-attempt"), "2");
    // the restart kept the backoff (3 s, -20 % at most) instead of retrying at once
    let gap = got[1].at - got[0].at;
    assert!(
        gap >= Duration::from_millis(2400),
        "retried after only {gap:?}"
    );
    // the author's log has the whole story
    let (mut wa, _) = ws_connect(&s, &a).await;
    send_json(&mut wa, &json!({"type": "resume", "since": 0})).await;
    let mut statuses = Vec::new();
    while statuses.len() < 2 {
        let v = next_non_pong(&mut wa, EVENT_TIMEOUT).await;
        if v["type"] == "release.status" {
            statuses.push(v["data"]["status"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(statuses, ["retrying", "delivered"]);
}

/// An unlink that is durable but whose deliveries were not yet recorded as failed when the
/// server died (the attempt was still running): after the restart the delivery is failed,
/// not retried to the platform the user removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlink_then_crash_does_not_resume_the_delivery() {
    let mut s = Server::start_with(&["--release-timeout-ms", "20000"]);
    let rx = Receiver::start(Script::Always(Reply::hang(Duration::from_secs(30))), None);
    let a = new_acct(&s, "Ann Author").await;
    let link = link_webhook(&s, &a, "soon-gone", &rx.url("/hook"), SECRET_A).await;
    let id = activity_id(&post_text(&s, &a, "one last post").await);
    rx.wait_for(1, DELIVERY).await; // the attempt is running (the receiver hangs)

    delete(&s, &format!("/v1/me/platforms/{link}"), a.tok())
        .await
        .expect(204);
    s.kill();
    s.restart();

    let items = wait_final(&s, &a, &id, DELIVERY).await;
    assert_eq!(items[0]["status"], "failed", "{items:?}");
    assert_eq!(items[0]["last_error"], "platform unlinked");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rx.count(), 1, "the unlinked platform got another attempt");
}
