//! Latency and throughput bookkeeping. Receivers send batches of samples to one collector,
//! which keeps an HDR histogram of the whole run, one per second for the plot, and the first
//! and last arrival of each message (its span over all recipients).

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::mpsc;

/// Wall-clock nanoseconds (sender and receivers share this machine's clock).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// One delivery seen by a client.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub msg: u64,
    /// When the message was due to be sent (open loop: the schedule, not the actual send).
    pub sent_ns: u64,
    pub recv_ns: u64,
}

/// Where receivers send their samples.
#[derive(Clone)]
pub struct Recorder(mpsc::UnboundedSender<Vec<Sample>>);

impl Recorder {
    pub fn record(&self, batch: Vec<Sample>) {
        if !batch.is_empty() {
            let _ = self.0.send(batch);
        }
    }
}

/// 1 µs to 1 hour at 3 significant digits: constant parameters that `new_with_bounds`
/// accepts, so the `expect` cannot fire.
#[allow(clippy::expect_used)]
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant, valid histogram bounds")
}

/// A receiving client's bookkeeping: finds the load-test marker in what arrived, timestamps
/// it, bumps the shared delivery counter and hands samples to the collector in batches (the
/// rest when it is dropped).
pub struct Tally {
    rec: Recorder,
    delivered: std::sync::Arc<std::sync::atomic::AtomicU64>,
    batch: Vec<Sample>,
}

impl Tally {
    pub fn new(rec: Recorder, delivered: std::sync::Arc<std::sync::atomic::AtomicU64>) -> Self {
        Tally {
            rec,
            delivered,
            batch: Vec::with_capacity(64),
        }
    }

    /// Records `text` if it carries a marker ([`crate::client::parse_marker`]).
    pub fn seen(&mut self, text: &str) {
        if let Some((msg, sent_ns)) = crate::client::parse_marker(text) {
            self.batch.push(Sample {
                msg,
                sent_ns,
                recv_ns: now_ns(),
            });
            self.delivered
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if self.batch.len() >= 64 {
                self.rec.record(std::mem::take(&mut self.batch));
            }
        }
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        self.rec.record(std::mem::take(&mut self.batch));
    }
}

/// Per-second figures for the plot.
#[derive(Debug, Clone, Serialize)]
pub struct Second {
    pub t: u64,
    pub deliveries: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Latency quantiles in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Quantiles {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Quantiles {
    fn of(h: &Histogram<u64>) -> Self {
        let q = |x: f64| h.value_at_quantile(x) as f64 / 1000.0;
        Quantiles {
            p50_ms: q(0.5),
            p90_ms: q(0.9),
            p99_ms: q(0.99),
            p999_ms: q(0.999),
            max_ms: h.max() as f64 / 1000.0,
        }
    }
}

/// What the collector found.
#[derive(Debug, Clone, Serialize)]
pub struct Collected {
    pub deliveries: u64,
    pub latency: Quantiles,
    /// First to last arrival of each message over its recipients.
    pub span: Quantiles,
    pub series: Vec<Second>,
    pub first_recv_ns: u64,
    pub last_recv_ns: u64,
}

/// Starts the collector; answers the recorder to hand out and the task that ends with the
/// results once every recorder is dropped.
pub fn collector(start_ns: u64) -> (Recorder, tokio::task::JoinHandle<Collected>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<Sample>>();
    let task = tokio::spawn(async move {
        let mut all = histogram();
        let mut seconds: Vec<(u64, Histogram<u64>)> = Vec::new();
        let mut spans: HashMap<u64, (u64, u64)> = HashMap::new();
        let mut deliveries = 0u64;
        let (mut first, mut last) = (u64::MAX, 0u64);
        while let Some(batch) = rx.recv().await {
            for s in batch {
                deliveries += 1;
                let lat_us = s.recv_ns.saturating_sub(s.sent_ns) / 1000;
                let _ = all.record(lat_us.max(1));
                let sec = (s.recv_ns.saturating_sub(start_ns) / 1_000_000_000) as usize;
                while seconds.len() <= sec {
                    seconds.push((0, histogram()));
                }
                seconds[sec].0 += 1;
                let _ = seconds[sec].1.record(lat_us.max(1));
                let e = spans.entry(s.msg).or_insert((s.recv_ns, s.recv_ns));
                e.0 = e.0.min(s.recv_ns);
                e.1 = e.1.max(s.recv_ns);
                first = first.min(s.recv_ns);
                last = last.max(s.recv_ns);
            }
        }
        let mut span_h = histogram();
        for (lo, hi) in spans.values() {
            let _ = span_h.record(((hi - lo) / 1000).max(1));
        }
        Collected {
            deliveries,
            latency: Quantiles::of(&all),
            span: Quantiles::of(&span_h),
            series: seconds
                .iter()
                .enumerate()
                .map(|(t, (n, h))| Second {
                    t: t as u64,
                    deliveries: *n,
                    p50_ms: if *n > 0 {
                        h.value_at_quantile(0.5) as f64 / 1000.0
                    } else {
                        0.0
                    },
                    p99_ms: if *n > 0 {
                        h.value_at_quantile(0.99) as f64 / 1000.0
                    } else {
                        0.0
                    },
                })
                .collect(),
            first_recv_ns: if first == u64::MAX { 0 } else { first },
            last_recv_ns: last,
        }
    });
    (Recorder(tx), task)
}
