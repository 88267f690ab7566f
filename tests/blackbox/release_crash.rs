//! Release across crashes: releases that were not final when the server was SIGKILLed
//! carry on after a restart, with the same `Idempotency-Key` and the same body, and the
//! delivered ones are not sent again.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::release::*;
use crate::support::*;

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
async fn pending_releases_survive_sigkill() {
    let mut f = ReleaseFixture::start(&FAST_RETRY).await;
    // The first answers are slow, so the server dies before it has recorded any release
    // (whether or not a request already went out).
    let slow = Script::Seq(vec![Reply::hang(Duration::from_millis(400)); 3]);
    let alpha = f.webhook("alpha", slow.clone()).await;
    let bravo = f.webhook("bravo", slow).await;
    let (la, ra, lb, rb) = (&alpha.link, &alpha.rx, &bravo.link, &bravo.rx);

    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(f.post(&format!("crash {i}")).await);
    }
    // right after the last 201
    f.s.kill();
    f.s.restart();

    // wait until every release is final, then look at everything the receivers got
    for id in &ids {
        let items = f.wait_final(id).await;
        assert_eq!(items.len(), 2, "{items:?}");
        for link_id in [la, lb] {
            assert_eq!(
                release_of(&items, link_id)["status"],
                "delivered",
                "{items:?}"
            );
        }
    }

    let mut all_keys = HashSet::new();
    for (rx, link_id) in [(ra, la), (rb, lb)] {
        let got = wait_activities(rx, &ids, RELEASE_WAIT).await;
        for (id, reqs) in by_activity(&got) {
            assert!(ids.contains(&id), "unknown activity {id} released");
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
    f.s.kill();
    f.s.restart();
    assert_healthy(&f.s).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        (ra.count(), rb.count()),
        (na, nb),
        "delivered releases were sent again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempt_cut_by_a_crash_is_repeated_with_the_same_key() {
    let mut f = ReleaseFixture::start(&[
        "--release-backoff-base-ms",
        "100",
        "--release-timeout-ms",
        "20000",
    ])
    .await;
    // The first request hangs (the server dies while waiting for it); later ones succeed.
    let alpha = f
        .webhook(
            "alpha",
            Script::Seq(vec![Reply::hang(Duration::from_secs(30))]),
        )
        .await;
    let (la, rx) = (&alpha.link, &alpha.rx);
    let id = f.post("in flight").await;
    rx.wait_for(1, RELEASE_WAIT).await;
    assert_eq!(f.releases(&id).await[0]["status"], "pending");
    f.s.kill();
    f.s.restart();

    let got = rx.wait_for(2, RELEASE_WAIT).await;
    let keys: HashSet<String> = got.iter().map(Received::idempotency_key).collect();
    assert_eq!(keys.len(), 1, "the repeat carries another key: {keys:?}");
    assert_eq!(got[0].body, got[1].body);
    assert!(got[1].sig_ok);
    let items = f.wait_final(&id).await;
    let item = release_of(&items, la);
    assert_eq!(item["status"], "delivered", "{items:?}");
    assert!(item["attempts"].as_u64().unwrap() >= 1, "{items:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrying_release_survives_sigkill() {
    let mut f = ReleaseFixture::start(&["--release-backoff-base-ms", "3000"]).await;
    let alpha = f
        .webhook("alpha", Script::Seq(vec![Reply::status(500)]))
        .await;
    let (la, rx) = (&alpha.link, &alpha.rx);
    let mut wa = f.device().await;

    let id = f.post("try again later").await;
    expect_event(&mut wa, "activity.posted").await;
    let ev = release_events(&mut wa, 1).await;
    assert_eq!(ev[0]["link_id"], json!(la));
    assert_eq!(ev[0]["status"], "retrying", "{ev:?}");
    assert_eq!(ev[0]["attempts"], 1);
    drop(wa);
    f.s.kill();
    f.s.restart();

    let items = f.wait_final(&id).await;
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
    let mut wa = f.device().await;
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

/// An unlink that is durable but whose releases were not yet recorded as failed when the
/// server died (the attempt was still running): after the restart the release is failed,
/// not retried to the platform the user removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlink_then_crash_does_not_resume_the_release() {
    let mut f = ReleaseFixture::start(&["--release-timeout-ms", "20000"]).await;
    let soon_gone = f
        .webhook(
            "soon-gone",
            Script::Always(Reply::hang(Duration::from_secs(30))),
        )
        .await;
    let (link, rx) = (&soon_gone.link, &soon_gone.rx);
    let id = f.post("one last post").await;
    rx.wait_for(1, RELEASE_WAIT).await; // the attempt is running (the receiver hangs)

    delete(&f.s, &format!("/v1/me/platforms/{link}"), f.a.tok())
        .await
        .expect(204);
    f.s.kill();
    f.s.restart();

    let items = f.wait_final(&id).await;
    assert_eq!(items[0]["status"], "failed", "{items:?}");
    assert_eq!(items[0]["last_error"], "platform unlinked");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rx.count(), 1, "the unlinked platform got another attempt");
}
