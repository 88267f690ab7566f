//! Reads of the embedded store as an actor thread makes them (one current-thread runtime):
//! an account's snapshot with 1,000 edges, its log of 1,000 events, a page of 10 events, and
//! a token lookup. Reads of more than one key run on tokio's blocking pool; this measures what
//! that hand-off costs a caller that waits for the answer.
//!
//! `cargo bench --bench store_reads`
#![allow(clippy::expect_used)] // a benchmark: a failed setup step must stop it

use std::time::Duration;

use chorus::store::FjallStore;
use chorus_actors::model::{AccountRecord, Profile};
use chorus_actors::push::event::{EventType, encode_event};
use chorus_actors::store::{Edge, EdgeChange, EdgeKind, SubscriberStore, SubscriberWrite};
use criterion::{Criterion, criterion_group, criterion_main};

const EDGES: usize = 1_000;
const EVENTS: u64 = 1_000;

fn store_reads(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FjallStore::open(dir.path()).expect("open");
    let mut write = SubscriberWrite::new("reader");
    let mut profile = Profile::new();
    profile.insert("display_name".into(), "Reader".into());
    write.record = Some(AccountRecord {
        account_id: "reader".into(),
        password_hash: "$argon2id$bench".into(),
        profile,
        profile_version: 1,
        created_ms: 1,
        proofs: Default::default(),
    });
    write.edges = (0..EDGES)
        .map(|i| {
            EdgeChange::Put(Edge {
                kind: EdgeKind::Friend,
                other: format!("{i:032x}"),
                value: 1u64.to_be_bytes().to_vec(),
            })
        })
        .collect();
    write.events = (1..=EVENTS)
        .map(|seq| encode_event(EventType::FRIEND_ADDED, seq, &serde_json::json!({"n": seq})))
        .collect();
    let token = [7u8; 32];
    write.grant_token(token, 1);
    rt.block_on(store.commit(write)).expect("commit");

    let mut group = c.benchmark_group("store_reads");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("snapshot_1000_edges", |b| {
        b.iter(|| rt.block_on(store.load_subscriber("reader")).expect("read"));
    });
    group.bench_function("log_1000_events", |b| {
        b.iter(|| {
            rt.block_on(store.read_events("reader", 0, 1000))
                .expect("read")
        });
    });
    group.bench_function("log_10_events", |b| {
        b.iter(|| {
            rt.block_on(store.read_events("reader", 990, 10))
                .expect("read")
        });
    });
    group.bench_function("token", |b| {
        b.iter(|| rt.block_on(store.find_token(&token)).expect("read"));
    });
    group.finish();
    rt.block_on(store.close()).expect("close");
}

criterion_group!(benches, store_reads);
criterion_main!(benches);
