//! In-process group fan-out: one group event pushed to every member's device, over 10 to
//! 100k members. Measures the real path: the hub (connection table), the partitioned fan-out
//! workers and the server's WebSocket mailboxes (`WsOutlet`, bounded `try_send`). It stops at
//! the mailbox: socket writes are the load test's business.
//!
//! Criterion reports elements (recipients) per second; the cost per recipient is its inverse
//! and should stay flat as the group grows.
//!
//! `cargo bench --bench fanout`

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytestring::ByteString;
use chorus::ws::{Outbound, WsOutlet};
use chorus_actors::push::{Fanout, Hub, Partition, partition};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tokio::sync::mpsc::Receiver;

struct Group {
    fanout: Fanout,
    partitions: Vec<Partition>,
    mailboxes: Vec<Receiver<Outbound>>,
    _hub: Arc<Hub>,
}

fn group(members: usize, workers: usize) -> Group {
    let hub = Arc::new(Hub::default());
    let mut ids: Vec<Arc<str>> = Vec::with_capacity(members);
    let mut mailboxes = Vec::with_capacity(members);
    for i in 0..members {
        let id: Arc<str> = Arc::from(format!("{i:032x}"));
        let (outlet, rx, _too_slow) = WsOutlet::new(8);
        hub.attach(&id, outlet);
        ids.push(id);
        mailboxes.push(rx);
    }
    Group {
        fanout: Fanout::new(hub.clone(), workers),
        partitions: partition(ids),
        mailboxes,
        _hub: hub,
    }
}

fn fanout(c: &mut Criterion) {
    // A 100-byte payload, as in the load-test target.
    let frame = ByteString::from(format!(
        r#"{{"type":"group.message","group_id":"g","seq":1,"data":{{"text":"{}"}}}}"#,
        "x".repeat(100)
    ));
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut bench = c.benchmark_group("group_fanout");
    bench.warm_up_time(Duration::from_secs(1));
    for members in [10usize, 100, 1_000, 10_000, 100_000] {
        let mut g = group(members, workers);
        bench.throughput(Throughput::Elements(members as u64));
        bench.sample_size(if members >= 10_000 { 20 } else { 50 });
        bench.bench_with_input(BenchmarkId::from_parameter(members), &members, |b, _| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    g.fanout.send(&g.partitions, &frame);
                    g.fanout.flush();
                    total += start.elapsed();
                    // Empty the mailboxes outside the measurement, checking every push arrived.
                    for rx in &mut g.mailboxes {
                        assert!(rx.try_recv().is_ok(), "every member got the frame");
                    }
                }
                total
            });
        });
    }
    bench.finish();
}

/// What the group actor itself spends per event: handing the frame and the member
/// partitions to the workers. This is the time the actor is held (besides its one store
/// write); the pushes happen on the workers.
fn actor_handoff(c: &mut Criterion) {
    let frame =
        ByteString::from_static(r#"{"type":"group.message","group_id":"g","seq":1,"data":{}}"#);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut bench = c.benchmark_group("group_actor_handoff");
    bench.warm_up_time(Duration::from_secs(1));
    bench.sample_size(20);
    for members in [1_000usize, 100_000] {
        let mut g = group(members, workers);
        bench.bench_with_input(BenchmarkId::from_parameter(members), &members, |b, _| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    g.fanout.send(&g.partitions, &frame);
                    total += start.elapsed();
                    g.fanout.flush();
                    for rx in &mut g.mailboxes {
                        let _ = rx.try_recv();
                    }
                }
                total
            });
        });
    }
    bench.finish();
}

criterion_group!(benches, fanout, actor_handoff);
criterion_main!(benches);
