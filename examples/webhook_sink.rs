//! A reference receiver for Chorus's webhook releases, used by the README walkthrough: checks
//! each request's signature and age, deduplicates by `Idempotency-Key`, prints one line per
//! request, and can fail the first N requests on purpose (to watch a retry).
//!
//! `cargo run --example webhook_sink -- --listen 127.0.0.1:9001 --secret s3cret [--fail-first 1]`

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use clap::Parser;
use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Parser, Clone)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9001")]
    listen: SocketAddr,
    /// The `config.secret` of the link.
    #[arg(long)]
    secret: String,
    /// Answer 500 to this many requests first.
    #[arg(long, default_value_t = 0)]
    fail_first: u32,
    /// Requests signed longer ago than this many seconds are refused (replay protection).
    #[arg(long, default_value_t = 300)]
    max_age_secs: u64,
}

struct Sink {
    args: Args,
    seen: Mutex<HashSet<String>>,
    requests: AtomicU32,
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> &'a str {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// True when `signature` is `v1=` + HMAC-SHA256(secret, timestamp "." body), compared in
/// constant time by `verify_slice`.
fn signature_ok(secret: &[u8], timestamp: &str, body: &[u8], signature: &str) -> bool {
    let Some(hex_sig) = signature.strip_prefix("v1=") else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_sig) else {
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

async fn receive(req: HttpRequest, body: web::Bytes, sink: web::Data<Sink>) -> HttpResponse {
    let n = sink.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let (timestamp, key) = (
        header(&req, "Chorus-Timestamp"),
        header(&req, "Idempotency-Key"),
    );
    let signature = header(&req, "Chorus-Signature");
    if !signature_ok(sink.args.secret.as_bytes(), timestamp, &body, signature) {
        println!("#{n} rejected: bad signature");
        return HttpResponse::Unauthorized().body("bad signature");
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let age = timestamp
        .parse::<u64>()
        .map_or(u64::MAX, |t| now.abs_diff(t));
    if age > sink.args.max_age_secs {
        println!("#{n} rejected: timestamp {age} s off");
        return HttpResponse::BadRequest().body("stale timestamp");
    }
    if n <= sink.args.fail_first {
        println!("#{n} key={key}: answering 500 on purpose");
        return HttpResponse::InternalServerError().body("failing on purpose");
    }
    let fresh = sink
        .seen
        .lock()
        .map(|mut seen| seen.insert(key.to_owned()))
        .unwrap_or(true);
    let text = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("text").and_then(|t| t.as_str()).map(str::to_owned))
        .unwrap_or_default();
    if fresh {
        println!("#{n} key={key}: delivered, signature ok: {text:?}");
    } else {
        println!("#{n} key={key}: duplicate, already have it");
    }
    HttpResponse::Ok().finish()
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let sink = web::Data::new(Sink {
        args: args.clone(),
        seen: Mutex::new(HashSet::new()),
        requests: AtomicU32::new(0),
    });
    println!("webhook sink on http://{}/", args.listen);
    HttpServer::new(move || {
        App::new()
            .app_data(sink.clone())
            .default_service(web::post().to(receive))
    })
    .workers(1)
    .bind(args.listen)?
    .run()
    .await
}
