//! In-process profile sync: one account with F friends, each with 2 devices, changes its
//! profile. Measured from the change to its acknowledgement, which comes once every friend's
//! copy is durable in that friend's log (the embedded store, with its fsync) and has been
//! handed to every friend's device. The devices here only count what they are handed: socket
//! writes are the load test's business (`chorus-loadtest profile-sync`).
//!
//! `cargo bench --bench profile_sync`
#![allow(clippy::expect_used)] // a benchmark: a failed setup step must stop it

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chorus::store::FjallStore;
use chorus_actors::model::{AccountRecord, Profile};
use chorus_actors::push::event::{Outlet, Pushed, StoredEvent};
use chorus_actors::{ActorConfig, Chorus};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::{StreamExt, stream};

/// A device that counts the events it is handed.
struct Counter {
    id: u64,
    events: Arc<AtomicU64>,
}

impl Outlet for Counter {
    fn id(&self) -> u64 {
        self.id
    }
    fn push(&self, _: &StoredEvent) -> Pushed {
        self.events.fetch_add(1, Ordering::Relaxed);
        Pushed::Queued
    }
}

fn record(id: &str) -> AccountRecord {
    let mut profile = Profile::new();
    profile.insert("display_name".into(), id.into());
    AccountRecord {
        account_id: id.into(),
        password_hash: String::new(),
        profile,
        profile_version: 1,
        created_ms: 1,
        proofs: Default::default(),
    }
}

/// The center account `c` and `friends` friends of it, each with 2 counting devices.
async fn setup(chorus: &Chorus, friends: usize, pushed: &Arc<AtomicU64>) {
    let ids: Vec<String> = (0..friends).map(|i| format!("f{i:06}")).collect();
    let all = std::iter::once("c".to_owned()).chain(ids.iter().cloned());
    stream::iter(all)
        .for_each_concurrent(256, |id| async move {
            chorus
                .create_account(record(&id), [0; 32])
                .await
                .expect("account");
        })
        .await;
    stream::iter(ids.iter().enumerate())
        .for_each_concurrent(256, |(i, id)| async move {
            chorus.request_friend("c", id).await.expect("request");
            chorus.accept_friend(id, "c").await.expect("accept");
            for d in 0..2u64 {
                let outlet = Arc::new(Counter {
                    id: i as u64 * 2 + d,
                    events: pushed.clone(),
                });
                chorus.attach(id, outlet).await.expect("attach");
            }
        })
        .await;
}

fn profile_sync(c: &mut Criterion) {
    let mut bench = c.benchmark_group("profile_sync");
    bench.warm_up_time(Duration::from_secs(2));
    bench.sample_size(20);
    for friends in [500usize, 5_000] {
        let system = actix::System::new();
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(FjallStore::open(dir.path()).expect("store"));
        let chorus = system.block_on(async { Chorus::new(store, ActorConfig::default()) });
        let pushed = Arc::new(AtomicU64::new(0));
        system.block_on(setup(&chorus, friends, &pushed));
        let mut n = 0u64;
        bench.throughput(Throughput::Elements(friends as u64));
        bench.bench_with_input(BenchmarkId::from_parameter(friends), &friends, |b, _| {
            b.iter_custom(|iters| {
                system.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        n += 1;
                        let before = pushed.load(Ordering::Relaxed);
                        let changes = BTreeMap::from([("status".to_owned(), Some(n.to_string()))]);
                        chorus.update_profile("c", changes).await.expect("patch");
                        assert_eq!(
                            pushed.load(Ordering::Relaxed) - before,
                            2 * friends as u64,
                            "every friend's every device was handed the change"
                        );
                    }
                    start.elapsed()
                })
            });
        });
        chorus.shutdown();
    }
    bench.finish();
}

criterion_group!(benches, profile_sync);
criterion_main!(benches);
