//! The delivery path of one I/O thread: group events handed to the fan-out lanes, taken by
//! the thread's shard in one pass, the shared frame appended to every local member's socket
//! buffer and each socket flushed with one `write`. Real TCP sockets on loopback, drained by
//! reader threads.
//!
//! A process may hold 20,000 open files here, so 100k member connections cannot each have a
//! socket of their own: the connections share 64 sockets (the bytes interleave; the readers
//! only count them). Every connection still has its own buffer and its own `write` per pass,
//! which is what a recipient costs.
//!
//! Two cases: one event per pass (a `write` per recipient per event), from 100 to 100k
//! members, and 16 events per pass (what the shard does when events pile up: one `write` per
//! recipient for all 16), to 10k (at 100k one pass is 200 MB through 64 sockets, and the
//! untimed draining between samples takes minutes). A third case, `1_per_pass_tracked`, is
//! the first with every connection keeping a cursor for the group (contract revision 2: a
//! device's `hello` lists its groups), each event checked against it. Criterion reports recipients (deliveries) per second; the cost per delivery is
//! its inverse and should stay flat from 100 to 100k members.
//!
//! `cargo bench --bench fanout`
#![allow(clippy::expect_used)]

use std::io::Read;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytestring::ByteString;
use chorus::ws::shard::{Limits, Shard};
use chorus_actors::push::{Fanout, MemberList, Shared};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tokio::sync::Notify;

const SOCKETS: usize = 64;

struct Bench {
    shard: Rc<Shard>,
    jobs: tokio::sync::mpsc::Receiver<chorus_actors::push::Job>,
    fanout: Arc<Fanout>,
    list: MemberList,
    slots: Vec<usize>,
}

/// The group the events are of.
const GROUP: &str = "g";

/// `members` connections of `members` accounts over [`SOCKETS`] loopback sockets. With
/// `tracked`, each connection's `hello` listed the group, so it keeps a cursor for it and
/// every event is checked against it (as every member's device does since `hello` lists the
/// account's groups).
async fn setup(members: usize, tracked: bool) -> Bench {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut streams = Vec::new();
    for _ in 0..SOCKETS {
        let client = std::net::TcpStream::connect(addr).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        std::thread::spawn(move || {
            let mut client = client;
            let mut buf = vec![0u8; 1 << 20];
            while matches!(client.read(&mut buf), Ok(n) if n > 0) {}
        });
        server.set_nonblocking(true).expect("nonblocking");
        let stream = actix_rt::net::TcpStream::from_std(server).expect("tokio stream");
        streams.push(Rc::new(stream));
    }
    let fanout = Arc::new(Fanout::new(usize::MAX));
    let (shard, jobs) = Shard::open(
        &fanout,
        Limits {
            mailbox: usize::MAX,
        },
    );
    let ids: Vec<Arc<str>> = (0..members)
        .map(|i| Arc::from(format!("{i:032x}")))
        .collect();
    let heads = [(GROUP.to_owned(), 0)];
    let slots = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let slot = shard.register(
                i as u64,
                id.clone(),
                streams[i % SOCKETS].clone(),
                Rc::new(Notify::new()),
            );
            shard.with(slot, |c| {
                c.hello(
                    "{}",
                    0,
                    if tracked { &heads[..] } else { &[] },
                    &Limits {
                        mailbox: usize::MAX,
                    },
                )
            });
            slot
        })
        .collect();
    Bench {
        shard,
        jobs,
        fanout,
        list: MemberList::new(ids),
        slots,
    }
}

impl Bench {
    /// Hands `events` group events to the lane and times the pass that delivers them.
    fn pass(&mut self, frame: &ByteString, events: usize) -> Duration {
        let members = self.list.snapshot();
        // Numbered 0 ("unknown"): checked against the cursor, never taken for one sent.
        let event = Shared::new(GROUP, 0, frame.clone());
        let started = Instant::now();
        for _ in 0..events {
            self.fanout.send(&members, self.list.len(), &event);
        }
        if let Ok(first) = self.jobs.try_recv() {
            self.shard.pass(first, &mut self.jobs);
        }
        started.elapsed()
    }

    /// Untimed: writes what the sockets did not take, as each connection's session would,
    /// letting the runtime see the sockets become writable again.
    fn drain(&self, runtime: &tokio::runtime::Runtime) {
        loop {
            let mut waiting = 0;
            for &slot in &self.slots {
                if self.shard.with(slot, |c| c.unblock()) == Some(false) {
                    waiting += 1;
                }
            }
            if waiting == 0 {
                return;
            }
            runtime.block_on(tokio::time::sleep(Duration::from_millis(1)));
        }
    }
}

fn fanout(c: &mut Criterion) {
    // A 100-byte payload, as in the load-test target.
    let frame = ByteString::from(format!(
        r#"{{"type":"group.message","group_id":"g","group_seq":1,"data":{{"text":"{}"}}}}"#,
        "x".repeat(100)
    ));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut bench = c.benchmark_group("shard_pass");
    bench.warm_up_time(Duration::from_secs(1));
    for (events, tracked, sizes) in [
        (1usize, false, &[100usize, 1_000, 10_000, 100_000][..]),
        (16, false, &[100, 1_000, 10_000][..]),
        (1, true, &[1_000, 10_000][..]),
    ] {
        for &members in sizes {
            let mut b = runtime.block_on(setup(members, tracked));
            bench.throughput(Throughput::Elements((members * events) as u64));
            bench.sample_size(if members >= 10_000 { 10 } else { 30 });
            let case = if tracked { "_tracked" } else { "" };
            let id = BenchmarkId::new(format!("{events}_per_pass{case}"), members);
            bench.bench_with_input(id, &members, |bencher, _| {
                bencher.iter_custom(|iters| {
                    let _guard = runtime.enter();
                    (0..iters)
                        .map(|_| {
                            let took = b.pass(&frame, events);
                            b.drain(&runtime);
                            took
                        })
                        .sum()
                });
            });
        }
    }
    bench.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
