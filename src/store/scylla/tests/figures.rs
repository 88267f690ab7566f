//! Figures of docs/scylla.md, measured on the configured node and printed (run with
//! `--nocapture`): what the seq fence adds to a write, how its Paxos round behaves when
//! writers race for one log, how long preparing every statement takes, and what owner
//! epochs add to a write and what a claim takes. They assert only what must hold whatever
//! the machine (one winner per race).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chorus_actors::place::ActorKind;
use chorus_actors::store::{GroupStore, GroupWrite, OwnerStore};

use super::super::ScyllaStore;
use super::super::settings::{connect_session, read_consistency, serial_for};
use super::super::statements::Statements;
use super::node::{group_write, is_log_moved, owned};
use super::on_keyspace;

const WRITES: usize = 200;

fn summary(mut times: Vec<Duration>) -> String {
    times.sort_unstable();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    let mean = times.iter().sum::<Duration>().as_secs_f64() * 1e3 / times.len() as f64;
    format!(
        "mean {mean:.2} ms, p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms",
        at(0.5),
        at(0.95),
        at(1.0)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figures_fence_cost_contention_and_prepare_time() {
    on_keyspace(|settings| async move {
        let store = Arc::new(ScyllaStore::connect(&settings).await.expect("connect"));

        // One event per write, one group per write (a group's first write: `open_log`) and
        // then the same group on (`advance_log`); the same rows without the fence.
        let (mut fenced, mut unfenced) = (Vec::new(), Vec::new());
        for n in 1..=WRITES as u64 {
            let w = group_write("fenced", n..=n, "x");
            let started = Instant::now();
            store.commit_group(w).await.expect("fenced write");
            fenced.push(started.elapsed());
            let w = group_write("unfenced", n..=n, "x");
            let mut rows = store.group_rows(&w).expect("rows");
            rows.fence = None;
            let started = Instant::now();
            assert!(
                store.run_batch(rows, true, None).await.is_ok(),
                "unfenced write"
            );
            unfenced.push(started.elapsed());
        }
        println!(
            "FIGURE write with fence (LWT + batch), {WRITES} sequential: {}",
            summary(fenced)
        );
        println!(
            "FIGURE write without fence (batch only), {WRITES} sequential: {}",
            summary(unfenced)
        );

        // Writers racing for one log position (as two nodes' actors of one group would):
        // exactly one wins, the others are refused; any other error is a Paxos timeout.
        for racers in [2usize, 8, 32] {
            let group = format!("race{racers}");
            store
                .commit_group(group_write(&group, 1..=1, "start"))
                .await
                .expect("start");
            let started = Instant::now();
            let tasks: Vec<_> = (0..racers)
                .map(|i| {
                    let store = Arc::clone(&store);
                    let group = group.clone();
                    tokio::spawn(async move {
                        let result = store
                            .commit_group(group_write(&group, 2..=2, &format!("racer{i}")))
                            .await;
                        (is_log_moved(&result), result.is_ok(), started.elapsed())
                    })
                })
                .collect();
            let (mut won, mut refused, mut slowest) = (0, 0, Duration::ZERO);
            for task in tasks {
                let (moved, ok, took) = task.await.expect("join");
                won += usize::from(ok);
                refused += usize::from(moved);
                slowest = slowest.max(took);
            }
            println!(
                "FIGURE {racers} writers racing for one seq: {won} applied, {refused} refused, \
                 {} failed otherwise (Paxos timeout), slowest answer {:.0} ms",
                racers - won - refused,
                slowest.as_secs_f64() * 1e3
            );
            assert_eq!(won, 1, "exactly one write takes a seq");
        }

        // Preparing every statement, on a fresh session, twice (the second time the node
        // knows them already).
        let consistency = scylla::statement::Consistency::LocalQuorum;
        for round in ["first", "again"] {
            let session = connect_session(&settings).await.expect("session");
            let started = Instant::now();
            Statements::prepare(
                &session,
                &settings.keyspace,
                consistency,
                read_consistency(consistency),
                serial_for(consistency),
            )
            .await
            .expect("prepare");
            println!(
                "FIGURE prepare all {} statements ({round}): {:.0} ms",
                super::super::statements::ALL.len(),
                started.elapsed().as_secs_f64() * 1e3
            );
        }
    })
    .await;
}

/// What owner epochs cost (docs/scylla.md, "Owner epochs"): writes with and without an
/// epoch, interleaved so the machine's noise falls on both alike, and claims.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figures_owner_epochs() {
    on_keyspace(|settings| async move {
        let store = ScyllaStore::connect(&settings).await.expect("connect");
        let epoch = store
            .claim_owner(ActorKind::Group, "owned")
            .await
            .expect("claim");
        let (mut events_none, mut events_some) = (Vec::new(), Vec::new());
        let (mut bare_none, mut bare_some) = (Vec::new(), Vec::new());
        for n in 1..=WRITES as u64 {
            let started = Instant::now();
            store
                .commit_group(group_write("free", n..=n, "x"))
                .await
                .expect("write");
            events_none.push(started.elapsed());
            let started = Instant::now();
            store
                .commit_group(owned(group_write("owned", n..=n, "x"), epoch))
                .await
                .expect("fenced write");
            events_some.push(started.elapsed());
            for (group, epoch, times) in [
                ("free", None, &mut bare_none),
                ("owned", Some(epoch), &mut bare_some),
            ] {
                let mut w = GroupWrite::new(group);
                w.members_add.push(format!("m{n}"));
                w.epoch = epoch;
                let started = Instant::now();
                store.commit_group(w).await.expect("member write");
                times.push(started.elapsed());
            }
        }
        for (what, times) in [
            ("group write with 1 event, epoch None", events_none),
            (
                "group write with 1 event, epoch Some (fence carries it)",
                events_some,
            ),
            (
                "group write without events, epoch None (batch only)",
                bare_none,
            ),
            (
                "group write without events, epoch Some (epoch LWT + batch)",
                bare_some,
            ),
        ] {
            println!("FIGURE {what}, {WRITES} sequential: {}", summary(times));
        }
        let (mut first, mut again) = (Vec::new(), Vec::new());
        for n in 0..WRITES / 2 {
            for times in [&mut first, &mut again] {
                let started = Instant::now();
                store
                    .claim_owner(ActorKind::Account, &format!("a{n}"))
                    .await
                    .expect("claim");
                times.push(started.elapsed());
            }
        }
        println!(
            "FIGURE first claim of an actor (read + LWT), {}: {}",
            WRITES / 2,
            summary(first)
        );
        println!(
            "FIGURE claim of an actor claimed before (read + LWT), {}: {}",
            WRITES / 2,
            summary(again)
        );
    })
    .await;
}
