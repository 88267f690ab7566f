//! Webhook sinks for the `release` scenario: real HTTP/1.1 servers (hyper) on 127.0.0.1
//! that take Chorus's webhook releases, check each signature, count each `Idempotency-Key`
//! once, and time each arrival from the marker in the activity text (its due time).

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::error::Result;
use crate::scenarios::{Receiver, SpawnReceivers};
use crate::stats::Tally;

/// What the sinks saw, over all of them.
#[derive(Debug, Default)]
pub struct Counts {
    pub requests: AtomicU64,
    pub bad_signatures: AtomicU64,
    /// Requests whose `Idempotency-Key` had been delivered before (redeliveries).
    pub duplicates: AtomicU64,
}

struct Sink {
    secret: Vec<u8>,
    seen: Mutex<HashSet<String>>,
    /// Set when the run starts recording.
    tally: Mutex<Option<Tally>>,
    counts: Arc<Counts>,
}

/// Running sinks; they stop with the harness.
pub struct Sinks {
    pub urls: Vec<String>,
    sinks: Vec<Arc<Sink>>,
    pub counts: Arc<Counts>,
}

impl Sinks {
    /// Starts `n` sinks that check signatures made with `secret`.
    pub async fn start(n: usize, secret: &str) -> Result<Sinks> {
        let counts = Arc::new(Counts::default());
        let mut urls = Vec::with_capacity(n);
        let mut sinks = Vec::with_capacity(n);
        for _ in 0..n {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            urls.push(format!("http://{}/hook", listener.local_addr()?));
            let sink = Arc::new(Sink {
                secret: secret.as_bytes().to_vec(),
                seen: Mutex::new(HashSet::new()),
                tally: Mutex::new(None),
                counts: counts.clone(),
            });
            sinks.push(sink.clone());
            tokio::spawn(serve(listener, sink));
        }
        Ok(Sinks {
            urls,
            sinks,
            counts,
        })
    }

    /// Receivers for [`crate::scenarios::run_fanout`]: each sink records into the run's
    /// collector until the run stops.
    pub fn receivers(&self) -> SpawnReceivers {
        let sinks = self.sinks.clone();
        Box::new(move |rec, delivered, stop| {
            sinks
                .into_iter()
                .map(|sink| {
                    if let Ok(mut slot) = sink.tally.lock() {
                        *slot = Some(Tally::new(rec.clone(), delivered.clone()));
                    }
                    tokio::spawn(until_stopped(sink, stop.clone()))
                })
                .collect::<Vec<Receiver>>()
        })
    }
}

async fn until_stopped(sink: Arc<Sink>, mut stop: watch::Receiver<bool>) -> (u64, Option<String>) {
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            break;
        }
    }
    // Dropping the tally hands its last samples to the collector.
    if let Ok(mut slot) = sink.tally.lock() {
        slot.take();
    }
    (0, None)
}

async fn serve(listener: TcpListener, sink: Arc<Sink>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let sink = sink.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, sink.clone()));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn header(req: &Request<Incoming>, name: &str) -> String {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

fn signature_ok(secret: &[u8], timestamp: &str, body: &[u8], signature: &str) -> bool {
    let Some(Ok(expected)) = signature.strip_prefix("v1=").map(hex::decode) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

async fn handle(
    req: Request<Incoming>,
    sink: Arc<Sink>,
) -> std::result::Result<Response<Full<Bytes>>, Infallible> {
    let (timestamp, signature) = (
        header(&req, "Chorus-Timestamp"),
        header(&req, "Chorus-Signature"),
    );
    let key = header(&req, "Idempotency-Key");
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let counts = &sink.counts;
    counts.requests.fetch_add(1, Ordering::Relaxed);
    let mut answer = Response::new(Full::new(Bytes::new()));
    if !signature_ok(&sink.secret, &timestamp, &body, &signature) {
        counts.bad_signatures.fetch_add(1, Ordering::Relaxed);
        *answer.status_mut() = StatusCode::UNAUTHORIZED;
        return Ok(answer);
    }
    let fresh = sink
        .seen
        .lock()
        .map(|mut seen| seen.insert(key))
        .unwrap_or(false);
    if !fresh {
        counts.duplicates.fetch_add(1, Ordering::Relaxed);
        return Ok(answer);
    }
    let text = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("text").and_then(|t| t.as_str()).map(str::to_owned));
    if let (Some(text), Ok(mut slot)) = (text, sink.tally.lock())
        && let Some(tally) = slot.as_mut()
    {
        tally.seen(&text);
    }
    Ok(answer)
}
