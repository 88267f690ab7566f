//! The fan-out run every scenario shares: publish on schedule, then wait for what was
//! published to arrive. Kept apart from the scenarios because its timing rules (open loop,
//! drain limits) decide what every figure means.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{Common, Publish, SpawnReceivers, bar};
use crate::error::{Error, Result};
use crate::procfs::{CpuMark, ServerWindow};
use crate::stats::{self, now_ns};

/// What one fan-out run found.
pub struct Fanout {
    /// Messages the server took.
    pub published: u64,
    /// Publishes that failed or got no answer in time. `expected` does not count them, but
    /// the server may still have delivered them (so delivered can pass 100 %).
    pub publish_failures: u64,
    pub collected: stats::Collected,
    /// Receivers whose connection the server closed.
    pub closed: u64,
    /// Frames the receivers read, all of them together.
    pub frames: u64,
    /// The server's CPU and memory over the publishing and drain window (None without a
    /// readable PID).
    pub server_window: Option<ServerWindow>,
}

/// Publishes on schedule for `common.duration`, then waits for what was published to arrive.
/// `server_pids` are the processes whose CPU time is measured over that window (and their
/// memory at the end of it): the server, or every node of a cluster.
pub async fn run_fanout(
    spawn: SpawnReceivers,
    common: &Common,
    recipients_per_message: u64,
    publish: Publish,
    server_pids: Vec<u32>,
) -> Result<Fanout> {
    let start_ns = now_ns();
    let (rec, collector) = stats::collector(start_ns);
    let (stop_tx, stop_rx) = watch::channel(false);
    let delivered = Arc::new(AtomicU64::new(0));
    let receivers = spawn(rec, delivered.clone(), stop_rx);
    let published = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let inflight = Arc::new(AtomicU64::new(0));
    let run = bar(common.duration.as_secs(), "publishing");
    let cpu = CpuMark::now(&server_pids);
    let started = Instant::now();
    let deadline = started + common.duration;
    if common.rate > 0.0 {
        // Open loop: message i is due at start + i/rate whatever happened to the others, and
        // carries its due time, so a stall shows up as latency instead of hiding itself.
        let interval = Duration::from_secs_f64(1.0 / common.rate);
        let base_ns = now_ns();
        let mut i = 0u64;
        loop {
            let due = started + interval.mul_f64(i as f64);
            if due >= deadline {
                break;
            }
            tokio::time::sleep_until(due.into()).await;
            let due_ns = base_ns + (due - started).as_nanos() as u64;
            let (publish, published, failed, inflight) = (
                publish.clone(),
                published.clone(),
                failed.clone(),
                inflight.clone(),
            );
            inflight.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                match publish(i, due_ns).await {
                    Ok(()) => published.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
                inflight.fetch_sub(1, Ordering::Relaxed);
            });
            i += 1;
            run.set_position(started.elapsed().as_secs());
        }
    } else {
        let next = Arc::new(AtomicU64::new(0));
        let loops: Vec<_> = (0..common.publishers.max(1))
            .map(|_| {
                let (publish, published, failed, next) = (
                    publish.clone(),
                    published.clone(),
                    failed.clone(),
                    next.clone(),
                );
                tokio::spawn(async move {
                    while Instant::now() < deadline {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        match publish(i, now_ns()).await {
                            Ok(()) => published.fetch_add(1, Ordering::Relaxed),
                            Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                })
            })
            .collect();
        for l in loops {
            let _ = l.await;
        }
    }
    run.finish_and_clear();
    // Wait (up to 30 s) for publishes still in flight, so `expected` counts all of them.
    let waited = Instant::now();
    while inflight.load(Ordering::Relaxed) > 0 && waited.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let expected = published.load(Ordering::Relaxed) * recipients_per_message;
    // Then give the arrivals up to 10 s to drain: stop once all expected arrived or nothing
    // arrived for 2 s.
    let drain = Instant::now();
    let (mut last, mut quiet) = (delivered.load(Ordering::Relaxed), Instant::now());
    while drain.elapsed() < Duration::from_secs(10) {
        let now = delivered.load(Ordering::Relaxed);
        if now >= expected {
            break;
        }
        if now != last {
            (last, quiet) = (now, Instant::now());
        } else if quiet.elapsed() > Duration::from_secs(2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let server_window = cpu.and_then(|c| c.window(delivered.load(Ordering::Relaxed)));
    let _ = stop_tx.send(true);
    let (mut closed, mut frames) = (0, 0);
    for r in receivers {
        if let Ok((read, why)) = r.await {
            frames += read;
            closed += u64::from(why.is_some());
        }
    }
    let collected = collector
        .await
        .map_err(|e| Error::Unexpected(format!("collector: {e}")))?;
    let failures = failed.load(Ordering::Relaxed);
    if failures > 0 {
        eprintln!("warning: {failures} publishes failed");
    }
    Ok(Fanout {
        published: published.load(Ordering::Relaxed),
        publish_failures: failures,
        collected,
        closed,
        frames,
        server_window,
    })
}
