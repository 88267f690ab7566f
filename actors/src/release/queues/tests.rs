//! The scheduler step by step: round-robin order, the caps per account, link and host, the
//! bounds on what is held, and (by random runs) that no release is ever stranded.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::model::{LinkRecord, ReleaseStatus};

/// Caps high enough not to matter unless a test lowers them.
fn config() -> ReleaseConfig {
    ReleaseConfig {
        max_in_flight: 1000,
        max_in_flight_per_account: 1000,
        max_in_flight_per_link: 1000,
        max_in_flight_per_destination: 1000,
        max_held: 10_000,
        max_held_per_account: 10_000,
        ..ReleaseConfig::default()
    }
}

/// The release of activity `activity` by `account` to `link`, due at `due`.
fn release(account: &str, activity: &str, link: &str, due: u64) -> ReleaseRecord {
    let activity = ActivityRecord {
        activity_id: activity.into(),
        account_id: account.into(),
        author_name: account.into(),
        text: "hi".into(),
        created_ms: due,
        idempotency_key: None,
    };
    let link = LinkRecord {
        link_id: link.into(),
        platform: "webhook".into(),
        handle: link.into(),
        config: serde_json::Value::Null,
        secret: None,
        proof: Default::default(),
        created_ms: 0,
    };
    ReleaseRecord::new(&activity, &link)
}

fn activity_of(r: &ReleaseRecord) -> Arc<ActivityRecord> {
    Arc::new(ActivityRecord {
        activity_id: r.activity_id.clone(),
        account_id: r.account_id.clone(),
        author_name: r.account_id.clone(),
        text: "hi".into(),
        created_ms: r.next_attempt_ms,
        idempotency_key: None,
    })
}

/// Offers `account`'s activity `n` to `link` at host `host`, due at `n` (activities come
/// in the order they were posted).
fn add(q: &mut Queues, account: &str, n: usize, link: &str, host: &str) -> Admitted {
    add_due(q, account, n, link, host, n as u64)
}

fn add_due(q: &mut Queues, account: &str, n: usize, link: &str, host: &str, due: u64) -> Admitted {
    let r = release(account, &format!("{account}-{n}"), link, due);
    let activity = activity_of(&r);
    q.admit(r, activity, host)
}

/// Every release the queues start now, by author.
fn starts(q: &mut Queues) -> Vec<ReleaseKey> {
    q.promote(u64::MAX / 2);
    std::iter::from_fn(|| q.next_start()).collect()
}

fn authors(q: &Queues, keys: &[ReleaseKey]) -> Vec<String> {
    keys.iter()
        .map(|k| q.job(k).map(|j| j.account().to_owned()).unwrap_or_default())
        .collect()
}

/// The attempt of `key` ended and was final.
fn done(q: &mut Queues, key: &ReleaseKey) {
    q.finished(key);
    assert!(q.forget(key, true).is_some());
}

#[test]
fn due_releases_start_round_robin_over_accounts() {
    let mut q = Queues::new(config());
    for n in 0..6 {
        add(&mut q, "ann", n, "ann-l", "a.example");
    }
    for n in 0..2 {
        add(&mut q, "bob", n, "bob-l", "b.example");
    }
    add(&mut q, "cat", 0, "cat-l", "c.example");
    let order = starts(&mut q);
    assert_eq!(
        authors(&q, &order),
        [
            "ann", "bob", "cat", "ann", "bob", "ann", "ann", "ann", "ann"
        ]
    );
    // Each account's own releases go oldest first.
    let ann: Vec<&str> = order
        .iter()
        .filter(|k| k.link_id == "ann-l")
        .map(|k| k.activity_id.as_str())
        .collect();
    assert_eq!(ann, ["ann-0", "ann-1", "ann-2", "ann-3", "ann-4", "ann-5"]);
}

#[test]
fn one_account_with_thousands_due_does_not_delay_another_accounts_first() {
    let mut q = Queues::new(ReleaseConfig {
        max_in_flight: 4,
        ..config()
    });
    for n in 0..2000 {
        add(
            &mut q,
            "flood",
            n,
            &format!("fl-{}", n % 32),
            &format!("h{}", n % 32),
        );
    }
    let first = starts(&mut q);
    assert_eq!(first.len(), 4, "the global cap");
    add(&mut q, "quiet", 0, "q-l", "q.example");
    assert!(starts(&mut q).is_empty(), "no slot free");
    // The next free slot goes to the account that has not had a turn.
    done(&mut q, &first[0]);
    let next = starts(&mut q);
    assert_eq!(authors(&q, &next), ["quiet"]);
}

#[test]
fn an_account_runs_at_most_its_cap_and_the_others_still_get_slots() {
    let mut q = Queues::new(ReleaseConfig {
        max_in_flight: 10,
        max_in_flight_per_account: 3,
        ..config()
    });
    for n in 0..20 {
        add(&mut q, "ann", n, &format!("ann-{n}"), &format!("h{n}"));
    }
    add(&mut q, "bob", 0, "bob-l", "b.example");
    add(&mut q, "bob", 1, "bob-l", "b.example");
    let first = starts(&mut q);
    assert_eq!(authors(&q, &first), ["ann", "bob", "ann", "bob", "ann"]);
    assert_eq!(q.in_flight(), 5, "ann is at her cap, bob has nothing more");
    // One of ann's ends: she gets exactly one more.
    done(&mut q, &first[0]);
    let next = starts(&mut q);
    assert_eq!(authors(&q, &next), ["ann"]);
    assert!(starts(&mut q).is_empty());
}

#[test]
fn the_destination_cap_holds_over_every_link_to_one_host() {
    // One account links 32 "ports" of one host: one destination (the connector keys it by
    // host), so at most the destination cap of attempts reach it.
    let mut q = Queues::new(ReleaseConfig {
        max_in_flight_per_destination: 2,
        ..config()
    });
    for port in 0..32 {
        add(&mut q, "ann", port, &format!("ann-{port}"), "203.0.113.7");
    }
    add(&mut q, "ann", 99, "ann-other", "other.example");
    let first = starts(&mut q);
    let links: Vec<&str> = first.iter().map(|k| k.link_id.as_str()).collect();
    assert_eq!(links, ["ann-0", "ann-1", "ann-other"]);
    // Each attempt that ends lets exactly one more through.
    done(&mut q, &first[0]);
    let next = starts(&mut q);
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].link_id, "ann-2");
    assert!(starts(&mut q).is_empty());
}

#[test]
fn the_link_cap_holds() {
    let mut q = Queues::new(ReleaseConfig {
        max_in_flight_per_link: 2,
        ..config()
    });
    for n in 0..5 {
        add(&mut q, "ann", n, "ann-l", "a.example");
    }
    assert_eq!(starts(&mut q).len(), 2);
}

#[test]
fn a_shared_gate_serves_accounts_in_turn() {
    let mut q = Queues::new(ReleaseConfig {
        max_in_flight_per_destination: 2,
        ..config()
    });
    for n in 0..4 {
        add(&mut q, "ann", n, &format!("ann-{n}"), "dark.example");
    }
    for n in 0..2 {
        add(&mut q, "bob", n, &format!("bob-{n}"), "dark.example");
    }
    let mut running = starts(&mut q);
    assert_eq!(authors(&q, &running), ["ann", "bob"]);
    // Each slot that frees goes to the next account in the gate's line.
    let mut served = Vec::new();
    while !running.is_empty() {
        let key = running.remove(0);
        done(&mut q, &key);
        let next = starts(&mut q);
        served.extend(authors(&q, &next));
        running.extend(next);
    }
    assert_eq!(served, ["ann", "bob", "ann", "ann"]);
    assert_eq!(q.held(), 0);
}

#[test]
fn releases_wait_for_their_time() {
    let mut q = Queues::new(config());
    add_due(&mut q, "ann", 0, "l", "h", 5_000);
    add_due(&mut q, "ann", 1, "l", "h", 1_000);
    assert_eq!(q.next_due(), Some(1_000));
    q.promote(999);
    assert!(q.next_start().is_none());
    q.promote(1_000);
    let key = q.next_start().map(|k| k.activity_id);
    assert_eq!(key.as_deref(), Some("ann-1"));
    assert_eq!(q.next_due(), Some(5_000));
}

#[test]
fn a_retried_release_goes_back_to_waiting_for_its_time() {
    let mut q = Queues::new(config());
    add(&mut q, "ann", 0, "l", "h");
    let key = starts(&mut q).remove(0);
    q.finished(&key);
    assert_eq!(
        q.job(&key).map(|j| j.stage().clone()),
        Some(Stage::Recording)
    );
    let mut next = release("ann", "ann-0", "l", 0);
    next.status = ReleaseStatus::Retrying;
    next.next_attempt_ms = 7_000;
    q.reschedule(&key, next);
    assert_eq!(q.next_due(), Some(7_000));
    assert_eq!(q.held(), 1);
}

#[test]
fn unqueued_releases_leave_every_queue() {
    let mut q = Queues::new(ReleaseConfig {
        max_in_flight_per_destination: 1,
        ..config()
    });
    add(&mut q, "ann", 0, "gone", "h"); // runs
    add(&mut q, "ann", 1, "gone", "h"); // parks on the host
    add(&mut q, "ann", 2, "kept", "h"); // parks on the host
    add_due(&mut q, "ann", 3, "gone", "h", u64::MAX); // waits for its time
    let running = starts(&mut q);
    assert_eq!(running.len(), 1);
    let mut out = q.unqueue_where(|job| job.link() == "gone");
    out.sort();
    let ids: Vec<&str> = out.iter().map(|k| k.activity_id.as_str()).collect();
    assert_eq!(ids, ["ann-1", "ann-3"], "the running one stays");
    for key in &out {
        q.forget(key, true);
    }
    assert_eq!(q.next_due(), None);
    done(&mut q, &running[0]);
    let next = starts(&mut q);
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].activity_id, "ann-2");
}

#[test]
fn past_an_accounts_bound_releases_stay_in_the_outbox_until_there_is_room() {
    let mut q = Queues::new(ReleaseConfig {
        max_held_per_account: 8,
        ..config()
    });
    let got: Vec<Admitted> = (0..10)
        .map(|n| add(&mut q, "ann", n, &format!("l{n}"), "h"))
        .collect();
    assert_eq!(got[..8], [Admitted::Held; 8]);
    assert_eq!(got[8..], [Admitted::Spilled; 2]);
    assert_eq!(
        add(&mut q, "bob", 0, "b", "h"),
        Admitted::Held,
        "bob's own bound"
    );
    assert!(q.spilled());
    assert!(!q.wants_read());
    // Room comes with slack (a quarter of the bound), not with every release that ends.
    let running = starts(&mut q);
    let ann: Vec<&ReleaseKey> = running
        .iter()
        .filter(|k| k.activity_id.starts_with("ann"))
        .collect();
    done(&mut q, ann[0]);
    assert!(!q.wants_read());
    done(&mut q, ann[1]);
    assert!(q.wants_read());
    // A read takes them on: they were not lost.
    let before = q.begin_read();
    assert!(!q.spilled() && !before.is_empty());
    let outbox: Vec<ReleaseRecord> = (0..10)
        .map(|n| release("ann", &format!("ann-{n}"), &format!("l{n}"), 0))
        .filter(|r| !matches!(r.activity_id.as_str(), "ann-0" | "ann-1"))
        .collect();
    let picked = q.pick(outbox);
    let ids: Vec<&str> = picked.iter().map(|r| r.activity_id.as_str()).collect();
    assert_eq!(ids, ["ann-8", "ann-9"]);
    for r in picked {
        let activity = activity_of(&r);
        assert_eq!(q.admit(r, activity, "h"), Admitted::Held);
    }
    q.end_read(None);
    assert!(!q.spilled());
    assert_eq!(q.held(), 9);
}

#[test]
fn at_the_total_bound_a_release_due_sooner_takes_the_place_of_the_one_due_last() {
    let mut q = Queues::new(ReleaseConfig {
        max_held: 8,
        ..config()
    });
    for n in 0..5 {
        add_due(&mut q, "a", n, "a", "h", 100 + n as u64);
    }
    assert_eq!(add_due(&mut q, "b", 0, "b", "h", 5_000), Admitted::Held);
    assert_eq!(add_due(&mut q, "c", 0, "c", "h", 200), Admitted::Held);
    assert_eq!(add_due(&mut q, "c", 1, "c", "h", 201), Admitted::Held);
    // A new account's first release, due now, gets in: b's, due last, goes back to the
    // outbox.
    assert_eq!(add_due(&mut q, "d", 0, "d", "h", 150), Admitted::Held);
    assert_eq!(q.held(), 8);
    assert!(q.jobs().all(|(k, _)| k.link_id != "b"));
    assert!(q.spilled());
    // Nothing held is due later than this one: it waits in the outbox.
    assert_eq!(add_due(&mut q, "e", 0, "e", "h", 9_999), Admitted::Spilled);
    // The bound leaves a quarter of slack before a read.
    let keys = starts(&mut q);
    done(&mut q, &keys[0]);
    assert!(!q.wants_read(), "7 held, more than 3/4 of 8");
    done(&mut q, &keys[1]);
    assert!(q.wants_read());
}

#[test]
fn a_read_picks_round_robin_soonest_first_up_to_the_room() {
    let mut q = Queues::new(ReleaseConfig {
        max_held: 5,
        max_held_per_account: 2,
        ..config()
    });
    add(&mut q, "ann", 0, "l", "h");
    let _ = q.begin_read();
    let outbox = vec![
        release("ann", "ann-0", "l", 0), // held already
        release("ann", "ann-1", "l", 300),
        release("ann", "ann-2", "l", 100),
        release("bob", "bob-0", "l", 900),
        release("bob", "bob-1", "l", 50),
        release("bob", "bob-2", "l", 70),
        release("cat", "cat-0", "l", 0),
        release("dan", "dan-0", "l", 0),
    ];
    let picked: Vec<String> = q.pick(outbox).into_iter().map(|r| r.activity_id).collect();
    // 4 of room, one each in turn: ann has 1 left of her bound (her soonest), then bob's
    // soonest, cat's, dan's; bob's second does not fit.
    assert_eq!(picked, ["ann-2", "bob-1", "cat-0", "dan-0"]);
    assert!(q.spilled(), "ann, bob and dan have more in the outbox");
}

#[test]
fn a_read_does_not_take_on_what_became_final_meanwhile() {
    let mut q = Queues::new(config());
    add(&mut q, "ann", 0, "l", "h");
    let key = starts(&mut q).remove(0);
    let _ = q.begin_read();
    // Delivered and forgotten while the read was under way, which still saw it pending.
    done(&mut q, &key);
    let stale = release("ann", "ann-0", "l", 0);
    assert!(q.pick(vec![stale.clone()]).is_empty());
    let activity = activity_of(&stale);
    assert_eq!(
        q.admit(stale.clone(), activity.clone(), "h"),
        Admitted::Known
    );
    q.end_read(None);
    // Once no read is under way, the key is forgotten.
    assert_eq!(q.admit(stale, activity, "h"), Admitted::Held);
}

#[test]
fn a_failed_read_gives_the_marks_back() {
    let mut q = Queues::new(ReleaseConfig {
        max_held_per_account: 1,
        ..config()
    });
    add(&mut q, "ann", 0, "l", "h");
    assert_eq!(add(&mut q, "ann", 1, "l", "h"), Admitted::Spilled);
    let before = q.begin_read();
    assert!(!q.spilled());
    q.end_read(Some(before));
    assert!(q.spilled());
}

/// Random runs of admits, starts, ends, retries and unlinks: after every step each release
/// is in exactly one place, the counts match, no cap is passed and no parked release waits
/// on a gate nobody runs through; at the end everything runs out.
#[test]
fn random_runs_keep_every_release_in_one_place_and_strand_none() {
    for seed in 0..40 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut q = Queues::new(ReleaseConfig {
            max_in_flight: rng.random_range(1..6),
            max_in_flight_per_account: rng.random_range(1..4),
            max_in_flight_per_link: rng.random_range(1..3),
            max_in_flight_per_destination: rng.random_range(1..4),
            max_held: rng.random_range(5..40),
            max_held_per_account: rng.random_range(2..15),
            ..config()
        });
        let mut running: Vec<ReleaseKey> = Vec::new();
        let mut n = 0;
        for step in 0..400 {
            match rng.random_range(0..10) {
                0..=3 => {
                    n += 1;
                    let account = format!("a{}", rng.random_range(0..4));
                    let link = format!("{account}-l{}", rng.random_range(0..3));
                    let host = format!("h{}", rng.random_range(0..3));
                    let due = rng.random_range(0..20);
                    add_due(&mut q, &account, n, &link, &host, due);
                }
                4..=6 if !running.is_empty() => {
                    let key = running.swap_remove(rng.random_range(0..running.len()));
                    q.finished(&key);
                    if rng.random_bool(0.5) {
                        q.forget(&key, true);
                    } else {
                        let mut next = q
                            .job(&key)
                            .map(|j| j.record.clone())
                            .unwrap_or_else(|| panic!("seed {seed} step {step}: {key:?} gone"));
                        next.next_attempt_ms = rng.random_range(0..40);
                        q.reschedule(&key, next);
                    }
                }
                7 => {
                    let link = format!("a{}-l{}", rng.random_range(0..4), rng.random_range(0..3));
                    for key in q.unqueue_where(|job| job.link() == link) {
                        q.forget(&key, true);
                    }
                }
                _ => {
                    q.promote(rng.random_range(0..40));
                    running.extend(std::iter::from_fn(|| q.next_start()));
                }
            }
            check(&q, &format!("seed {seed} step {step}"));
        }
        // Everything runs out: each attempt ends and is final.
        for round in 0.. {
            assert!(round < 10_000, "seed {seed}: releases stranded");
            q.promote(u64::MAX / 2);
            running.extend(std::iter::from_fn(|| q.next_start()));
            let Some(key) = running.pop() else {
                break;
            };
            done(&mut q, &key);
            check(&q, &format!("seed {seed} drain"));
        }
        assert_eq!(q.held(), 0, "seed {seed}: {} left", q.held());
        assert!(q.gates.is_empty() && q.schedule.is_empty());
    }
}

/// The invariants of the queues.
fn check(q: &Queues, at: &str) {
    let mut places: HashMap<&ReleaseKey, usize> = HashMap::new();
    for (_, key) in &q.schedule {
        *places.entry(key).or_default() += 1;
        assert_eq!(q.jobs[key].stage, Stage::Scheduled, "{at}");
    }
    for state in q.accounts.values() {
        for key in &state.ready {
            *places.entry(key).or_default() += 1;
            assert_eq!(q.jobs[key].stage, Stage::Ready, "{at}");
        }
    }
    let mut parked = 0;
    for (gate, g) in &q.gates {
        let cap = match gate {
            Gate::Link(_) => q.config.max_in_flight_per_link,
            Gate::Destination(_) => q.config.max_in_flight_per_destination,
        };
        assert!(g.running <= cap, "{at}: {gate:?} over its cap");
        if !g.parked.is_empty() {
            assert!(g.running > 0, "{at}: releases stranded on {gate:?}");
        }
        for line in g.parked.lines.values() {
            for key in line {
                *places.entry(key).or_default() += 1;
                parked += 1;
                assert_eq!(q.jobs[key].stage, Stage::Parked(gate.clone()), "{at}");
            }
        }
    }
    assert!(
        places.values().all(|&n| n == 1),
        "{at}: a release in two places"
    );
    let waiting = q.jobs.values().filter(|j| j.waiting()).count();
    assert_eq!(
        places.len(),
        waiting,
        "{at}: a waiting release in no queue ({parked} parked)"
    );
    let running = q
        .jobs
        .values()
        .filter(|j| j.stage == Stage::Running)
        .count();
    assert_eq!(q.in_flight, running, "{at}");
    assert!(q.in_flight <= q.config.max_in_flight, "{at}");
    for (account, state) in &q.accounts {
        let held = q.jobs.values().filter(|j| j.account == *account).count();
        assert_eq!(state.held, held, "{at}: {account}");
        let running = q
            .jobs
            .values()
            .filter(|j| j.account == *account && j.stage == Stage::Running)
            .count();
        assert_eq!(state.running, running, "{at}: {account}");
        assert!(
            running <= q.config.max_in_flight_per_account,
            "{at}: {account}"
        );
    }
    assert!(q.jobs.len() <= q.config.max_held, "{at}");
    assert!(
        q.jobs.values().all(|j| q.accounts.contains_key(&j.account)),
        "{at}: a release of an account not tracked"
    );
}
