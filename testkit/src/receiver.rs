//! A real HTTP server (actix-web, on its own thread with its own actix system, so it serves
//! tokio and actix tests alike) that records every request (arrival time, headers, raw
//! body), checks the webhook signature over the exact bytes it got, and answers from a
//! [`Script`]. Stopped when dropped.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// One answer of a receiver.
#[derive(Debug, Clone)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    content_type: Option<&'static str>,
    body: String,
    /// Sleep this long before answering.
    delay: Option<Duration>,
}

impl Reply {
    /// 200 `{"ok":true}`.
    pub fn ok() -> Reply {
        Reply::status(200).json(r#"{"ok":true}"#)
    }

    /// This status with the short text body `scripted <code>`.
    pub fn status(code: u16) -> Reply {
        Reply {
            status: code,
            headers: Vec::new(),
            content_type: None,
            body: format!("scripted {code}"),
            delay: None,
        }
    }

    /// `code` (429 or 503 in practice) with `Retry-After: <secs>`.
    pub fn retry_after(code: u16, secs: u64) -> Reply {
        let body = if code == 429 {
            "slow down"
        } else {
            "maintenance"
        };
        Reply::status(code)
            .header("Retry-After", &secs.to_string())
            .body(body)
    }

    /// Sleeps `d`, then 200 `{"ok":true,"slow":true}`.
    pub fn hang(d: Duration) -> Reply {
        Reply {
            delay: Some(d),
            ..Reply::status(200).json(r#"{"ok":true,"slow":true}"#)
        }
    }

    /// Adds a response header.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Replaces the body with this text.
    pub fn body(mut self, text: &str) -> Reply {
        self.body = text.to_string();
        self.content_type = None;
        self
    }

    /// Replaces the body with this JSON text (`Content-Type: application/json`).
    pub fn json(mut self, text: &str) -> Reply {
        self.body = text.to_string();
        self.content_type = Some("application/json");
        self
    }
}

/// What a receiver answers.
#[derive(Debug, Clone)]
pub enum Script {
    /// The same reply to every request.
    Always(Reply),
    /// These replies in order (to the n-th request, 0-based), then 200 forever.
    Seq(Vec<Reply>),
    /// The reply the function gives for the request's path (without the query).
    ByPath(fn(&str) -> Reply),
}

impl Script {
    fn reply(&self, n: usize, path: &str) -> Reply {
        match self {
            Script::Always(r) => r.clone(),
            Script::Seq(v) => v.get(n).cloned().unwrap_or_else(Reply::ok),
            Script::ByPath(route) => route(path),
        }
    }
}

/// One request as the receiver got it.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub method: String,
    /// Path and query, e.g. `/hook` or `/api/v1/statuses`.
    pub path: String,
    /// Header names lower-cased; a repeated header keeps its values joined by ", ".
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// `Chorus-Signature` is `v1=` + hex HMAC-SHA256(secret, `Chorus-Timestamp` + "." + body)
    /// with the receiver's secret (always false for a receiver without one).
    pub sig_ok: bool,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    #[track_caller]
    pub fn h(&self, name: &str) -> &str {
        self.header(name)
            .unwrap_or_else(|| panic!("request has no {name} header: {:?}", self.headers))
    }

    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "request body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn idempotency_key(&self) -> String {
        self.h("idempotency-key").to_string()
    }
}

struct State {
    script: Script,
    secret: Option<String>,
    log: Mutex<Vec<Received>>,
}

/// An HTTP server on `127.0.0.1:<port the OS chose>` (or the address given to
/// [`Receiver::start_at`]), stopped when dropped.
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<State>,
    handle: actix_web::dev::ServerHandle,
}

/// hex HMAC-SHA256(secret, timestamp + "." + body).
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

async fn handle(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let at = Instant::now();
    let mut headers: HashMap<String, String> = HashMap::new();
    for (k, v) in req.headers() {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        headers
            .entry(k.as_str().to_ascii_lowercase())
            .and_modify(|old| {
                old.push_str(", ");
                old.push_str(&v);
            })
            .or_insert(v);
    }
    let sig_ok = match (
        &state.secret,
        headers.get("chorus-timestamp"),
        headers.get("chorus-signature"),
    ) {
        (Some(secret), Some(ts), Some(sig)) => *sig == format!("v1={}", sign(secret, ts, &body)),
        _ => false,
    };
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let n = {
        let mut log = state.log.lock().unwrap();
        log.push(Received {
            at,
            method: req.method().as_str().to_string(),
            path,
            headers,
            body: body.to_vec(),
            sig_ok,
        });
        log.len() - 1
    };
    let reply = state.script.reply(n, req.path());
    if let Some(d) = reply.delay {
        actix_web::rt::time::sleep(d).await;
    }
    let status = actix_web::http::StatusCode::from_u16(reply.status).expect("status code");
    let mut answer = HttpResponse::build(status);
    for (name, value) in &reply.headers {
        answer.insert_header((name.as_str(), value.as_str()));
    }
    if let Some(ct) = reply.content_type {
        answer.content_type(ct);
    }
    if reply.body.is_empty() {
        answer.finish()
    } else {
        answer.body(reply.body)
    }
}

impl Receiver {
    /// A receiver answering by `script`; `secret` is the webhook secret its signatures are
    /// checked with (None: `sig_ok` is always false, e.g. for Mastodon).
    pub fn start(script: Script, secret: Option<&str>) -> Receiver {
        Receiver::start_at(IpAddr::V4(Ipv4Addr::LOCALHOST), script, secret)
    }

    /// [`Receiver::start`] on another address, e.g. `127.0.0.2` (Linux answers on all of
    /// 127.0.0.0/8): to the releaser, whose caps are per destination host, another host.
    pub fn start_at(ip: IpAddr, script: Script, secret: Option<&str>) -> Receiver {
        let state = Arc::new(State {
            script,
            secret: secret.map(str::to_string),
            log: Mutex::new(Vec::new()),
        });
        let data = web::Data::from(state.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let system = actix_web::rt::System::new();
            system.block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .app_data(web::PayloadConfig::new(1 << 20))
                        .default_service(web::to(handle))
                })
                .workers(1)
                .disable_signals()
                .shutdown_timeout(0)
                .bind((ip, 0))
                .expect("bind receiver");
                let addr = server.addrs()[0];
                let running = server.run();
                tx.send((addr, running.handle()))
                    .expect("send receiver addr");
                let _ = running.await;
            });
        });
        let (addr, handle) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("receiver did not start");
        Receiver {
            addr,
            state,
            handle,
        }
    }

    /// `http://<address>:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Everything received so far, in arrival order.
    pub fn requests(&self) -> Vec<Received> {
        self.state.log.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.state.log.lock().unwrap().len()
    }

    /// Waits until at least `n` requests have arrived; panics after `timeout`.
    #[track_caller]
    pub fn wait_for(&self, n: usize, timeout: Duration) -> impl Future<Output = Vec<Received>> {
        let caller = std::panic::Location::caller();
        async move {
            crate::wait_count(n, timeout, || self.requests())
                .await
                .unwrap_or_else(|got| {
                    panic!(
                        "{caller}: receiver got {} request(s) within {timeout:?}, wanted {n}: {:?}",
                        got.len(),
                        got.iter()
                            .map(|r| (r.path.clone(), String::from_utf8_lossy(&r.body)))
                            .collect::<Vec<_>>()
                    )
                })
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // `stop` sends the command at once; the returned future only waits for completion.
        drop(self.handle.stop(false));
    }
}
