//! Profile changes reaching many friends at once (one store write for all of them): changes by
//! several accounts with friends in common, at the same time as those friends change their
//! own profiles, leave every account's log whole. Each event is there once, `seq`s run 1, 2,
//! 3, … with no gap, devices get them live in that order, and `resume` replays the same.

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::support::*;

/// Profile changes each author makes, and each friend makes of its own.
const AUTHOR_CHANGES: usize = 5;
const OWN_CHANGES: usize = 2;

/// `changes` profile changes of `who`, one after the other.
async fn change_profile(s: &Server, who: &Acct, changes: usize) {
    for n in 0..changes {
        patch(
            s,
            "/v1/me/profile",
            who.tok(),
            &json!({ "status": format!("{n}") }),
        )
        .await
        .expect(200);
    }
}

/// The account's whole log, read on a new device with `resume` from 0; its `seq`s must run
/// from 1 to the hello's with no gap.
async fn whole_log(s: &Server, who: &Acct) -> Vec<Value> {
    let (mut ws, hello) = ws_connect(s, who).await;
    let last = hello_seq(&hello);
    send_json(&mut ws, &json!({"type": "resume", "since": 0})).await;
    let log = collect_events(&mut ws, last as usize).await;
    let seqs: Vec<u64> = log.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=last).collect::<Vec<_>>(),
        "{}'s log has no gap",
        who.id
    );
    log
}

/// How many `profile.updated` events of `author` the log holds, and whether their versions
/// rise.
fn updates_by(log: &[Value], author: &str) -> (usize, bool) {
    let versions: Vec<u64> = log
        .iter()
        .filter(|e| e["type"] == "profile.updated" && e["data"]["account_id"] == author)
        .map(|e| e["data"]["profile_version"].as_u64().unwrap())
        .collect();
    (versions.len(), versions.windows(2).all(|w| w[0] < w[1]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_fan_outs_keep_every_log_whole() {
    let s = Server::start();
    let mut authors = Vec::new();
    for n in 0..3 {
        authors.push(new_acct(&s, &format!("Author {n}")).await);
    }
    let mut friends = Vec::new();
    for n in 0..6 {
        friends.push(new_acct(&s, &format!("Friend {n}")).await);
    }
    for a in &authors {
        for f in &friends {
            make_friends(&s, a, f).await;
        }
    }
    let mut devices = Vec::new();
    for f in &friends {
        devices.push(ws_connect(&s, f).await);
    }

    // Every author and every friend changes its profile at once: each friend's log takes
    // the authors' fan-outs while the friend writes its own events, and each author's log the
    // friends' fan-outs while the author writes its own.
    let authors_change = authors
        .iter()
        .map(|a| change_profile(&s, a, AUTHOR_CHANGES));
    let friends_change = friends.iter().map(|f| change_profile(&s, f, OWN_CHANGES));
    join_all(authors_change.chain(friends_change)).await;

    let per_friend = authors.len() * AUTHOR_CHANGES + OWN_CHANGES;
    for (f, (ws, hello)) in friends.iter().zip(devices.iter_mut()) {
        let live = collect_events(ws, per_friend).await;
        let seqs: Vec<u64> = live.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        let first = hello_seq(hello) + 1;
        assert_eq!(
            seqs,
            (first..first + per_friend as u64).collect::<Vec<_>>(),
            "{} got every event live, once, in order",
            f.id
        );
        expect_no_event(ws, std::time::Duration::from_millis(200)).await;
        let log = whole_log(&s, f).await;
        assert_eq!(
            &log[log.len() - per_friend..],
            &live[..],
            "resume replays the live frames"
        );
        for a in &authors {
            assert_eq!(updates_by(&log, &a.id), (AUTHOR_CHANGES, true), "{}", f.id);
        }
        assert_eq!(updates_by(&log, &f.id), (OWN_CHANGES, true));
    }
    for a in &authors {
        let log = whole_log(&s, a).await;
        assert_eq!(updates_by(&log, &a.id), (AUTHOR_CHANGES, true));
        for f in &friends {
            assert_eq!(updates_by(&log, &f.id), (OWN_CHANGES, true), "{}", a.id);
        }
    }
}
