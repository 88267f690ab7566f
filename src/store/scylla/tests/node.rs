//! The store's own rules on a real node: the batch limit read at start-up, the shapes of LWT
//! answers, the seq fence refusing a second write of a seq, and `schema apply` on a keyspace
//! of an earlier version.

use chorus_actors::StoreError;
use chorus_actors::place::ActorKind;
use chorus_actors::push::event::{EventType, StoredEvent, group_frame};
use chorus_actors::store::{GroupStore, GroupWrite, OwnerStore, SubscriberStore, SubscriberWrite};

use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlValue;

use super::super::limits::{batch_fail_threshold, check_batch_limit, largest_change_set};
use super::super::lwt::LwtAnswer;
use super::super::settings::connect_session;
use super::super::{ScyllaSettings, ScyllaStore, apply_schema};
use super::on_keyspace;

pub(super) fn frame(group: &str, seq: u64, tag: &str) -> StoredEvent {
    group_frame(
        EventType::GROUP_MESSAGE,
        group,
        seq,
        &format!("{{\"tag\":\"{tag}\"}}"),
    )
}

/// A group write of events `seqs`, tagged `tag`.
pub(super) fn group_write(
    group: &str,
    seqs: std::ops::RangeInclusive<u64>,
    tag: &str,
) -> GroupWrite {
    let mut w = GroupWrite::new(group);
    w.events = seqs.map(|seq| frame(group, seq, tag)).collect();
    w
}

pub(super) fn is_log_moved(result: &Result<(), StoreError>) -> bool {
    matches!(result, Err(StoreError::LogMoved { .. }))
}

/// Runs the lightweight transaction `ps` with `values` and reads its answer.
pub(super) async fn lwt(
    store: &ScyllaStore,
    ps: &PreparedStatement,
    values: Vec<CqlValue>,
) -> LwtAnswer {
    let answer = store
        .session
        .execute_unpaged(ps, values)
        .await
        .expect("lwt");
    LwtAnswer::of(answer, "probe").expect("an LWT answer")
}

async fn store(settings: &ScyllaSettings) -> ScyllaStore {
    ScyllaStore::connect(settings).await.expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batch_limit_is_read_and_judged_at_start_up() {
    on_keyspace(|settings| async move {
        let session = connect_session(&settings).await.expect("session");
        let threshold = batch_fail_threshold(&session).await;
        println!("batch fail threshold: {threshold:?}");
        let (bytes, name) = threshold.expect("Cassandra 5.0 publishes it in system_views.settings");
        assert_eq!(name, "batch_size_fail_threshold");
        assert_eq!(bytes, 1024 * 1024, "cql-node/cassandra.yaml sets 1024KiB");
        check_batch_limit(&session, largest_change_set())
            .await
            .expect("1 MiB takes the largest write");
        match check_batch_limit(&session, 2 * 1024 * 1024).await {
            Err(StoreError::Backend(text)) => {
                assert!(
                    text.contains("batch_size_fail_threshold is 1024 KiB"),
                    "{text}"
                );
                assert!(text.contains("at least 2048 KiB"), "{text}");
            }
            other => panic!("a limit below the need must refuse, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lwt_answers_have_the_shapes_read_by_name() {
    on_keyspace(|settings| async move {
        let store = store(&settings).await;
        let st = &store.st;
        let text = |s: &str| CqlValue::Text(s.to_owned());
        let big = CqlValue::BigInt;
        // Cassandra 5.0 (ScyllaDB is documented to answer every column each time).
        let a = lwt(&store, &st.take_claim, vec![text("probe"), text("a")]).await;
        assert!(a.applied);
        assert_eq!(a.names(), ["[applied]"], "applied: [applied] alone");
        let a = lwt(&store, &st.take_claim, vec![text("probe"), text("b")]).await;
        assert!(!a.applied);
        assert_eq!(
            a.names(),
            ["[applied]", "claim", "owner"],
            "refused: the row"
        );
        assert_eq!(a.column("owner"), Some(&text("a")));
        let a = lwt(&store, &st.advance_log, vec![big(2), text("g:x"), big(1)]).await;
        assert!(!a.applied);
        assert_eq!(
            a.names(),
            ["[applied]"],
            "refused on an absent row: [applied] alone"
        );
        let a = lwt(&store, &st.open_log, vec![text("g:x"), big(1)]).await;
        assert_eq!((a.applied, a.names()), (true, vec!["[applied]"]));
        let a = lwt(&store, &st.open_log, vec![text("g:x"), big(5)]).await;
        assert!(!a.applied);
        assert_eq!(
            a.names(),
            ["[applied]", "log", "epoch", "last_seq"],
            "refused: the row"
        );
        assert_eq!(a.column("last_seq"), Some(&big(1)));
        let a = lwt(&store, &st.advance_log, vec![big(3), text("g:x"), big(2)]).await;
        assert!(!a.applied);
        assert_eq!(
            a.names(),
            ["[applied]", "last_seq"],
            "refused: the conditioned column"
        );
        assert_eq!(a.column("last_seq"), Some(&big(1)));
        let a = lwt(&store, &st.drop_log, vec![text("g:x"), big(1)]).await;
        assert_eq!((a.applied, a.names()), (true, vec!["[applied]"]));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_write_of_a_seq_is_refused_and_a_repeat_is_applied() {
    on_keyspace(|settings| async move {
        let store = store(&settings).await;
        store
            .commit_group(group_write("g1", 1..=1, "created"))
            .await
            .expect("first");
        store
            .commit_group(group_write("g1", 2..=3, "landed"))
            .await
            .expect("landed");
        // The actor's next write, from a head that missed the write that landed.
        let reused = store.commit_group(group_write("g1", 2..=2, "reused")).await;
        assert!(is_log_moved(&reused), "a reused seq is refused: {reused:?}");
        let stale = store.commit_group(group_write("g1", 1..=1, "stale")).await;
        assert!(is_log_moved(&stale), "{stale:?}");
        // Overlapping the head: not the same write either.
        let overlap = store.commit_group(group_write("g1", 3..=4, "landed")).await;
        assert!(is_log_moved(&overlap), "{overlap:?}");
        store
            .commit_group(group_write("g1", 2..=3, "landed"))
            .await
            .expect("a repeat of the write that landed is applied");
        let events = store.read_group_events("g1", 0, 10).await.expect("read");
        assert_eq!(
            events,
            [
                frame("g1", 1, "created"),
                frame("g1", 2, "landed"),
                frame("g1", 3, "landed")
            ],
            "nothing refused was written"
        );

        // The same on an account's log, and on its very first write.
        let mut w = SubscriberWrite::new("a1");
        w.events.push(frame("a1", 1, "one"));
        store.commit(w).await.expect("first account write");
        let mut w = SubscriberWrite::new("a1");
        w.events.push(frame("a1", 1, "other one"));
        let again = store.commit(w).await;
        assert!(is_log_moved(&again), "{again:?}");
        assert_eq!(
            store.read_events("a1", 0, 10).await.expect("read"),
            [frame("a1", 1, "one")]
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_surely_not_applied_gives_its_seqs_back() {
    on_keyspace(|settings| async move {
        let store = store(&settings).await;
        for (seqs, first) in [(1..=1, true), (2..=2, false)] {
            // Over the node's 1 MiB batch limit (which Cassandra checks on batches of more
            // than one partition): refused before anything is written.
            let mut huge = group_write("g1", seqs.clone(), "huge");
            huge.members_add.push("m1".into());
            huge.events[0] = group_frame(
                EventType::GROUP_MESSAGE,
                "g1",
                *seqs.start(),
                &format!("\"{}\"", "x".repeat(1_200_000)),
            );
            let refused = store.commit_group(huge).await;
            assert!(
                matches!(&refused, Err(StoreError::Backend(t)) if t.contains("Batch too large")),
                "{refused:?}"
            );
            // The reservation was rolled back: the same seqs are free for the next write.
            store
                .commit_group(group_write("g1", seqs.clone(), "small"))
                .await
                .unwrap_or_else(|e| panic!("seqs given back (first write: {first}): {e}"));
        }
        assert_eq!(
            store.read_group_events("g1", 0, 10).await.expect("read"),
            [frame("g1", 1, "small"), frame("g1", 2, "small")]
        );
    })
    .await;
}

/// A keyspace made before owner epochs, the account -> groups index and `sessions`:
/// `schema apply` adds the `epoch` column, fills `member_groups` from `group_members`,
/// moves the old `tokens` into `sessions` (with each account's token edge), takes the
/// secrets copied into release records out of them, and a second apply changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_apply_brings_an_older_keyspace_up_to_date() {
    on_keyspace(|settings| async move {
        let ks = settings.keyspace.clone();
        let session = connect_session(&settings).await.expect("session");
        let run = |cql: String| {
            let session = &session;
            async move {
                session.query_unpaged(cql, ()).await.expect("cql");
            }
        };
        run(format!("ALTER TABLE {ks}.logs DROP epoch")).await;
        run(format!("DROP TABLE {ks}.member_groups")).await;
        session.await_schema_agreement().await.expect("agreement");
        for (group, account) in [("g1", "a1"), ("g1", "a2"), ("g2", "a1")] {
            run(format!(
                "INSERT INTO {ks}.group_members (group_id, account) VALUES ('{group}', '{account}')"
            ))
            .await;
        }
        run(format!(
            "INSERT INTO {ks}.logs (log, last_seq) VALUES ('g:g1', 5)"
        ))
        .await;
        // Bearer tokens as an earlier version kept them: no issue time, no edge.
        let hash: [u8; 32] = std::array::from_fn(|i| i as u8 * 7 + 1);
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        run(format!(
            "CREATE TABLE {ks}.tokens (selector blob PRIMARY KEY, verifier blob, owner text)"
        ))
        .await;
        session.await_schema_agreement().await.expect("agreement");
        run(format!(
            "INSERT INTO {ks}.tokens (selector, verifier, owner) VALUES (0x{}, 0x{}, 'a1')",
            hex(&hash[..16]),
            hex(&hash[16..])
        ))
        .await;
        run(format!(
            "INSERT INTO {ks}.tokens (selector, owner) VALUES (0x01, 'a2')"
        ))
        .await;
        let release = serde_json::json!({
            "activity_id": "act1", "status": "retrying",
            "link": {"link_id": "l1", "platform": "webhook", "handle": "h", "created_ms": 1,
                     "config": {"url": "https://x.example/h", "secret": "whsec_copied"}}
        });
        let blob = hex(&serde_json::to_vec(&release).expect("json"));
        run(format!(
            "INSERT INTO {ks}.deliveries (activity_id, link_id, record) VALUES ('act1', 'l1', 0x{blob})"
        ))
        .await;
        run(format!(
            "INSERT INTO {ks}.outbox (shard, activity_id, link_id, record) VALUES (3, 'act1', 'l1', 0x{blob})"
        ))
        .await;
        let before = chorus_actors::model::now_ms();
        for round in ["upgrade", "again"] {
            apply_schema(&settings)
                .await
                .unwrap_or_else(|e| panic!("apply ({round}): {e}"));
        }
        let store = store(&settings).await;
        let mut groups = store.groups_of("a1").await.expect("groups_of");
        groups.sort();
        assert_eq!(groups, ["g1", "g2"], "member_groups filled");
        let owner = store
            .find_token(&hash)
            .await
            .expect("find_token")
            .expect("the old token still logs in");
        assert_eq!(owner.account, "a1");
        assert!(owner.issued_ms >= before, "issued at the upgrade");
        let edges = session
            .query_unpaged(
                format!("SELECT other FROM {ks}.edges WHERE account = 'a1' AND kind = 't'"),
                (),
            )
            .await
            .expect("edges")
            .into_rows_result()
            .expect("rows")
            .rows::<(String,)>()
            .expect("typed")
            .map(|r| r.expect("row").0)
            .collect::<Vec<_>>();
        assert_eq!(
            edges,
            [hex(&hash[..16])],
            "the account's actor knows its token"
        );
        let left = session
            .query_unpaged(format!("SELECT selector FROM {ks}.tokens"), ())
            .await
            .expect("old table")
            .into_rows_result()
            .expect("rows")
            .rows_num();
        assert_eq!(left, 0, "every old row moved or dropped");
        for table in ["deliveries", "outbox"] {
            let (record,) = session
                .query_unpaged(format!("SELECT record FROM {ks}.{table}"), ())
                .await
                .expect("read")
                .into_rows_result()
                .expect("rows")
                .single_row::<(Vec<u8>,)>()
                .expect("one row");
            let record: serde_json::Value = serde_json::from_slice(&record).expect("json");
            assert_eq!(
                record["link"]["config"],
                serde_json::json!({"url": "https://x.example/h"}),
                "{table}"
            );
            assert_eq!(record["status"], "retrying", "{table}: the rest is kept");
        }
        assert_eq!(store.groups_of("a2").await.expect("groups_of"), ["g1"]);
        assert_eq!(
            store
                .claim_owner(ActorKind::Group, "g1")
                .await
                .expect("claim"),
            1
        );
        store
            .commit_group(owned(group_write("g1", 6..=6, "next"), 1))
            .await
            .expect("the owner writes on from the old head");
    })
    .await;
}

/// `write` naming `epoch`.
pub(super) fn owned(mut write: GroupWrite, epoch: u64) -> GroupWrite {
    write.epoch = Some(epoch);
    write
}
