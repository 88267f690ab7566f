//! The ambiguous write for real: the local CQL node (`scripts/cql-node`) is paused with
//! SIGSTOP while a write is on its way, so the write times out on the client and lands when
//! the node resumes, as in docs/cql-node-findings.md, finding 2. Skipped unless
//! `CHORUS_SCYLLA_NODES` is set and the node's pid file is found (`$CQL_NODE_DIR/node.pid`,
//! default `<repo>/.cql-node/node.pid`: `chorus_testkit::cql_node`). Other tests of the run
//! only wait out the pause.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chorus_actors::model::GroupRecord;
use chorus_actors::store::{GroupStore, GroupWrite};
use chorus_testkit::cql_node::{Paused, node_pid};

use super::super::commit::BatchOutcome;
use super::super::fence::Reservation;
use super::super::{ScyllaSettings, ScyllaStore};
use super::node::{frame, group_write, is_log_moved};
use super::on_keyspace;

/// A store whose requests time out after `ms`.
async fn impatient(settings: &ScyllaSettings, ms: u64) -> ScyllaStore {
    let mut settings = settings.clone();
    settings.request_timeout = Duration::from_millis(ms);
    ScyllaStore::connect(&settings).await.expect("connect")
}

/// Reads the group's events until `want` of them are there (a write landing after a resume
/// takes a moment), at most 10 s.
async fn events_when(store: &ScyllaStore, group: &str, want: usize) -> Vec<u64> {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let events = store.read_group_events(group, 0, 100).await.expect("read");
        if events.len() >= want || Instant::now() > until {
            return events.iter().map(|e| e.seq).collect();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_lands_late_is_neither_lost_nor_overwritten() {
    on_keyspace(|settings| async move {
        let Some(pid) = node_pid() else {
            println!("skipped: no local CQL node pid file (scripts/cql-node)");
            return;
        };
        let store = ScyllaStore::connect(&settings).await.expect("connect");
        let late = impatient(&settings, 500).await;
        // The actor's store, connected before any pause.
        let actor = Arc::new(ScyllaStore::connect(&settings).await.expect("connect"));
        let mut created = group_write("g1", 1..=1, "created");
        created.record = Some(GroupRecord {
            group_id: "g1".into(),
            name: "Hikers".into(),
            owner: "a1".into(),
            created_ms: 1,
        });
        store.commit_group(created).await.expect("first");

        // The ambiguous write, step by step: its seq is reserved, then its batch goes to a
        // paused node and times out on the client.
        let ambiguous = group_write("g1", 2..=2, "ambiguous");
        let mut rows = late.group_rows(&ambiguous).expect("rows");
        let fence = rows.fence.take().expect("events, so a fence");
        assert_eq!(
            late.reserve(&fence).await.expect("reserve"),
            Reservation::Taken
        );
        let paused = Paused::node(&pid);
        let failure = late
            .run_batch(rows, false, None)
            .await
            .expect_err("a batch to a paused node times out");
        assert_eq!(
            failure.outcome,
            BatchOutcome::Unknown,
            "{}",
            failure.message
        );
        // The actor's next write, from the head it had before (it took the write for
        // failed), sent while the late batch still waits in the node's socket.
        let next = {
            let actor = Arc::clone(&actor);
            tokio::spawn(async move { actor.commit_group(group_write("g1", 2..=2, "next")).await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(paused);
        let next = next.await.expect("join");
        assert!(is_log_moved(&next), "the reused seq is refused: {next:?}");

        // The late batch lands; the actor reloads and goes on from the stored head.
        assert_eq!(events_when(&store, "g1", 2).await, [1, 2]);
        let snap = store.load_group("g1").await.expect("load").expect("group");
        assert_eq!(snap.last_seq, 2);
        store
            .commit_group(group_write("g1", 3..=3, "next"))
            .await
            .expect("the next write, after a reload");
        assert_eq!(
            store.read_group_events("g1", 0, 10).await.expect("read"),
            [
                frame("g1", 1, "created"),
                frame("g1", 2, "ambiguous"),
                frame("g1", 3, "next")
            ],
            "the late write kept its seq; the next one took the one after"
        );

        // The pause hits the reservation itself: the write fails before its batch is sent;
        // the reservation may land late. Whatever it does, the next write is never lost.
        let paused = Paused::node(&pid);
        let stalled = late.commit_group(group_write("g1", 4..=4, "stalled")).await;
        drop(paused);
        assert!(
            stalled.is_err(),
            "a write to a paused node fails: {stalled:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut head = 3;
        let mut acknowledged = None;
        for _ in 0..3 {
            let mut w = GroupWrite::new("g1");
            w.events.push(frame("g1", head + 1, "acknowledged"));
            match store.commit_group(w).await {
                Ok(()) => {
                    acknowledged = Some(head + 1);
                    break;
                }
                Err(e) => {
                    let text = e.to_string();
                    assert!(is_log_moved(&Err(e)), "{text}");
                    head = store
                        .load_group("g1")
                        .await
                        .expect("load")
                        .expect("g")
                        .last_seq;
                }
            }
        }
        let acknowledged = acknowledged.expect("a write after a reload lands");
        let events = store.read_group_events("g1", 0, 10).await.expect("read");
        println!(
            "after a stalled reservation: acknowledged at seq {acknowledged}, log {:?}",
            events.iter().map(|e| e.seq).collect::<Vec<_>>()
        );
        assert_eq!(
            events.last(),
            Some(&frame("g1", acknowledged, "acknowledged"))
        );
        assert!(
            events.iter().all(|e| e != &frame("g1", 4, "stalled")),
            "a write whose batch was never sent left no event"
        );
    })
    .await;
}
