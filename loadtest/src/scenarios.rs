//! The scenarios. Each provisions what it needs through the public API, connects its clients,
//! publishes on an open-loop schedule (or flat out), waits for deliveries to drain, and
//! reports.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{StreamExt, stream};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tokio::sync::watch;

use crate::api::{Account, Api};
use crate::client::{self, Ws};
use crate::error::{Error, Result};
use crate::report::Report;
use crate::server::Target;
use crate::stats::{self, now_ns};

/// Settings every scenario shares.
#[derive(Debug, Clone)]
pub struct Common {
    pub duration: Duration,
    pub sources: usize,
    /// Messages per second over all publishers; 0 = flat out.
    pub rate: f64,
    /// Concurrent publishers in flat-out mode.
    pub publishers: usize,
    pub payload: usize,
}

/// Publishes message `i` due at `due_ns` (wall clock) carrying [`client::payload`].
pub type Publish =
    Arc<dyn Fn(u64, u64) -> Pin<Box<dyn Future<Output = Result<()>> + Send>> + Send + Sync>;

/// A receiving client's task: answers frames read and why the server closed it, if it did.
pub type Receiver = tokio::task::JoinHandle<(u64, Option<String>)>;

/// Starts every receiving client, given where to record samples, the delivery counter to
/// bump per sample, and the stop signal.
pub type SpawnReceivers =
    Box<dyn FnOnce(stats::Recorder, Arc<AtomicU64>, watch::Receiver<bool>) -> Vec<Receiver> + Send>;

/// Receivers for Chorus WebSockets.
pub fn chorus_receivers(clients: Vec<Ws>) -> SpawnReceivers {
    Box::new(move |rec, delivered, stop| {
        clients
            .into_iter()
            .map(|ws| {
                tokio::spawn(client::receive(
                    ws,
                    rec.clone(),
                    delivered.clone(),
                    stop.clone(),
                ))
            })
            .collect()
    })
}

pub fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>14} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

/// Opens one WebSocket per token (tokens may repeat: several devices of one account).
pub async fn connect_all(
    target: &Target,
    tokens: &[String],
    sources: usize,
) -> Result<(Vec<Ws>, Vec<String>)> {
    let url = target.ws_url();
    let server = client::server_addr(&url)?;
    let b = bar(tokens.len() as u64, "connecting");
    let results: Vec<Result<Ws>> = stream::iter(tokens.iter().enumerate())
        .map(|(i, token)| {
            let url = format!("{url}?token={token}");
            let b = b.clone();
            async move {
                let r = client::connect(&url, server, client::source(i, sources)).await;
                b.inc(1);
                r
            }
        })
        .buffer_unordered(256)
        .collect()
        .await;
    b.finish_and_clear();
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(ws) => ok.push(ws),
            Err(e) => errors.push(e.to_string()),
        }
    }
    Ok((ok, errors))
}

/// Publishes on schedule for `common.duration`, then waits for deliveries to drain.
/// Answers (published, what the collector found, connections closed by the server).
pub async fn run_fanout(
    spawn: SpawnReceivers,
    common: &Common,
    recipients_per_message: u64,
    publish: Publish,
) -> Result<(u64, stats::Collected, u64)> {
    let start_ns = now_ns();
    let (rec, collector) = stats::collector(start_ns);
    let (stop_tx, stop_rx) = watch::channel(false);
    let delivered = Arc::new(AtomicU64::new(0));
    let receivers = spawn(rec, delivered.clone(), stop_rx);
    let published = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let inflight = Arc::new(AtomicU64::new(0));
    let run = bar(common.duration.as_secs(), "publishing");
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
    // Let publishes in flight finish, then give deliveries up to 10 s to drain: stop once
    // all expected arrived or nothing arrived for 2 s.
    // Wait (up to 30 s) for publishes still in flight, so `expected` counts all of them.
    let waited = Instant::now();
    while inflight.load(Ordering::Relaxed) > 0 && waited.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let expected = published.load(Ordering::Relaxed) * recipients_per_message;
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
    let _ = stop_tx.send(true);
    let mut closed = 0;
    for r in receivers {
        if let Ok((_, Some(_))) = r.await {
            closed += 1;
        }
    }
    let collected = collector
        .await
        .map_err(|e| Error::Unexpected(format!("collector: {e}")))?;
    let failures = failed.load(Ordering::Relaxed);
    if failures > 0 {
        eprintln!("warning: {failures} publishes failed");
    }
    Ok((published.load(Ordering::Relaxed), collected, closed))
}

#[allow(clippy::too_many_arguments)]
pub fn finish(
    scenario: &str,
    target: &Target,
    params: serde_json::Value,
    published: u64,
    expected: u64,
    collected: stats::Collected,
    closed: u64,
    extra: serde_json::Value,
) -> Report {
    let active_s = (collected
        .last_recv_ns
        .saturating_sub(collected.first_recv_ns)) as f64
        / 1e9;
    Report {
        scenario: scenario.to_owned(),
        target: target.base.clone(),
        params,
        published,
        expected,
        delivered: collected.deliveries,
        active_s,
        deliveries_per_s: if active_s > 0.0 {
            collected.deliveries as f64 / active_s
        } else {
            0.0
        },
        closed_by_server: closed,
        server_rss_kib: target.rss_kib(),
        extra,
        collected: Some(collected),
    }
}

/// `connect`: N idle authenticated connections; server RSS per connection. At most
/// `per_process` are held by this process; the rest are spread over child processes of the
/// same binary (`connect-worker`), each given its tokens in a file.
pub async fn connect(
    target: &Target,
    connections: usize,
    per_process: usize,
    common: &Common,
) -> Result<Report> {
    let api = Api::new(&target.base)?;
    let b = bar(connections as u64, "accounts");
    let accounts = api.accounts(connections, &b).await?;
    b.finish_and_clear();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = target.rss_kib();
    let tokens: Vec<String> = accounts.into_iter().map(|a| a.token).collect();
    let mut chunks = tokens.chunks(per_process.max(1));
    let own: Vec<String> = chunks.next().map(<[String]>::to_vec).unwrap_or_default();
    let mut workers = Vec::new();
    for chunk in chunks {
        workers.push(spawn_worker(target, chunk, common).await?);
    }
    let (clients, errors) = connect_all(target, &own, common.sources).await?;
    let mut held = clients.len();
    let mut failed = errors.len();
    let mut per_process_held = vec![held];
    for worker in &mut workers {
        let (h, f) = worker.report().await?;
        held += h;
        failed += f;
        per_process_held.push(h);
    }
    tokio::time::sleep(
        common
            .duration
            .min(Duration::from_secs(30))
            .max(Duration::from_secs(2)),
    )
    .await;
    let after = target.rss_kib();
    let per_conn = match (before, after) {
        (Some(b), Some(a)) if held > 0 => Some(a.saturating_sub(b) as f64 / held as f64),
        _ => None,
    };
    let (soft, hard) = client::raise_nofile();
    let first_error = errors.first().cloned();
    for worker in workers {
        worker.release().await;
    }
    drop(clients);
    Ok(Report {
        scenario: "connect".into(),
        target: target.base.clone(),
        params: json!({"connections": connections, "sources": common.sources, "per_process": per_process}),
        published: 0,
        expected: connections as u64,
        delivered: held as u64,
        active_s: 0.0,
        deliveries_per_s: 0.0,
        closed_by_server: 0,
        server_rss_kib: after,
        extra: json!({
            "held": held,
            "failed": failed,
            "first_error": first_error,
            "processes": per_process_held.len(),
            "held_per_process": per_process_held,
            "rss_before_kib": before,
            "rss_after_kib": after,
            "rss_per_connection_kib": per_conn,
            "client_nofile": {"soft": soft, "hard": hard},
        }),
        collected: None,
    })
}

/// A child process holding some of the `connect` scenario's connections.
struct Worker {
    child: tokio::process::Child,
    _tokens: tempfile::NamedTempFile,
}

async fn spawn_worker(target: &Target, tokens: &[String], common: &Common) -> Result<Worker> {
    use std::io::Write;
    let mut file = tempfile::NamedTempFile::new()?;
    file.write_all(tokens.join("\n").as_bytes())?;
    file.flush()?;
    let child = tokio::process::Command::new(std::env::current_exe()?)
        .args([
            "--url",
            &target.base,
            "--sources",
            &common.sources.to_string(),
        ])
        .args([
            "--duration",
            &common.duration.as_secs().to_string(),
            "connect-worker",
            "--tokens-file",
        ])
        .arg(file.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    Ok(Worker {
        child,
        _tokens: file,
    })
}

impl Worker {
    /// Waits (up to 5 minutes) for the child's `held H failed F` line.
    async fn report(&mut self) -> Result<(usize, usize)> {
        use tokio::io::AsyncBufReadExt;
        let stdout = self
            .child
            .stdout
            .take()
            .ok_or_else(|| Error::Unexpected("worker stdout not captured".into()))?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(300), lines.next_line())
            .await
            .map_err(|_| Error::Unexpected("a connect worker did not report in 5 minutes".into()))??
            .ok_or_else(|| Error::Unexpected("a connect worker exited without reporting".into()))?;
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["held", h, "failed", f] => Ok((h.parse().unwrap_or(0), f.parse().unwrap_or(0))),
            _ => Err(Error::Unexpected(format!("a connect worker said {line:?}"))),
        }
    }

    /// Closes the child's standard input (it lets go of its connections and exits).
    async fn release(mut self) {
        drop(self.child.stdin.take());
        if tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// `connect-worker`: holds the connections of the tokens in `tokens_file`, prints
/// `held H failed F`, and keeps them until standard input closes.
pub async fn connect_worker(
    target: &Target,
    tokens_file: &std::path::Path,
    common: &Common,
) -> Result<()> {
    use tokio::io::AsyncReadExt;
    let text = std::fs::read_to_string(tokens_file)?;
    let tokens: Vec<String> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let (clients, errors) = connect_all(target, &tokens, common.sources).await?;
    println!("held {} failed {}", clients.len(), errors.len());
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
    drop(clients);
    Ok(())
}

/// `group-fanout`: G groups of M online members; messages posted by each group's owner.
pub async fn group_fanout(
    target: &Target,
    groups: usize,
    members: usize,
    common: &Common,
) -> Result<Report> {
    let api = Api::new(&target.base)?;
    let b = bar((groups * members) as u64, "accounts");
    let accounts = api.accounts(groups * members, &b).await?;
    b.finish_and_clear();
    let mut gids = Vec::new();
    let b = bar((groups * members) as u64, "memberships");
    for chunk in accounts.chunks(members) {
        gids.push((
            api.group(&chunk[0], chunk, &b).await?,
            chunk[0].token.clone(),
        ));
    }
    b.finish_and_clear();
    let tokens: Vec<String> = accounts.iter().map(|a| a.token.clone()).collect();
    let (clients, errors) = connect_all(target, &tokens, common.sources).await?;
    if !errors.is_empty() {
        eprintln!(
            "warning: {} connections failed, first: {}",
            errors.len(),
            errors[0]
        );
    }
    let gids = Arc::new(gids);
    let payload = common.payload;
    let publish: Publish = Arc::new(move |i, due| {
        let (api, gids) = (api.clone(), gids.clone());
        Box::pin(async move {
            let (gid, token) = &gids[(i as usize) % gids.len()];
            api.post(
                &format!("/v1/groups/{gid}/messages"),
                token,
                json!({"text": client::payload(i, due, payload)}),
            )
            .await
            .map(|_| ())
        })
    });
    let (published, collected, closed) =
        run_fanout(chorus_receivers(clients), common, members as u64, publish).await?;
    let params = json!({"groups": groups, "members": members, "rate": common.rate, "payload": payload,
                        "duration_s": common.duration.as_secs()});
    Ok(finish(
        "group-fanout",
        target,
        params,
        published,
        published * members as u64,
        collected,
        closed,
        json!({"connect_failures": errors.len()}),
    ))
}

/// `community-dynamics`: one community bound to K groups of M members; P community members
/// post dynamics through the community server's key.
pub async fn community_dynamics(
    target: &Target,
    groups: usize,
    members: usize,
    posters: usize,
    common: &Common,
) -> Result<Report> {
    let api = Api::new(&target.base)?;
    let b = bar((groups * members + posters) as u64, "accounts");
    let accounts = api.accounts(groups * members + posters, &b).await?;
    b.finish_and_clear();
    let (group_accounts, poster_accounts) = accounts.split_at(groups * members);
    let owner = &group_accounts[0];
    let v = api
        .post(
            "/v1/communities",
            &owner.token,
            json!({"name": "load club"}),
        )
        .await?;
    let cid = v["community_id"].as_str().unwrap_or_default().to_owned();
    let key = v["server_key"].as_str().unwrap_or_default().to_owned();
    for p in poster_accounts {
        api.post(
            &format!("/v1/communities/{cid}/members"),
            &key,
            json!({"account_id": p.id}),
        )
        .await?;
    }
    let b = bar((groups * members) as u64, "memberships");
    for chunk in group_accounts.chunks(members) {
        let gid = api.group(&chunk[0], chunk, &b).await?;
        let r = api
            .post(
                &format!("/v1/communities/{cid}/binding-requests"),
                &key,
                json!({"group_id": gid}),
            )
            .await?;
        let rid = r["request_id"].as_str().unwrap_or_default();
        api.post(
            &format!("/v1/groups/{gid}/binding-requests/{rid}/approve"),
            &chunk[0].token,
            json!({}),
        )
        .await?;
    }
    b.finish_and_clear();
    let tokens: Vec<String> = group_accounts.iter().map(|a| a.token.clone()).collect();
    let (clients, errors) = connect_all(target, &tokens, common.sources).await?;
    let posters: Arc<Vec<Account>> = Arc::new(poster_accounts.to_vec());
    let payload = common.payload;
    let path = Arc::new(format!("/v1/communities/{cid}/dynamics"));
    let key = Arc::new(key);
    let publish: Publish = Arc::new(move |i, due| {
        let (api, posters, path, key) = (api.clone(), posters.clone(), path.clone(), key.clone());
        Box::pin(async move {
            let poster = &posters[(i as usize) % posters.len()];
            api.post(&path, &key, json!({"account_id": poster.id, "kind": "post", "text": client::payload(i, due, payload)}))
                .await
                .map(|_| ())
        })
    });
    let per_message = (groups * members) as u64;
    let (published, collected, closed) =
        run_fanout(chorus_receivers(clients), common, per_message, publish).await?;
    let params = json!({"groups": groups, "members": members, "posters": poster_accounts.len(),
                        "rate": common.rate, "payload": payload, "duration_s": common.duration.as_secs()});
    Ok(finish(
        "community-dynamics",
        target,
        params,
        published,
        published * per_message,
        collected,
        closed,
        json!({"connect_failures": errors.len()}),
    ))
}

/// `profile-sync`: one account with F friends of D devices each changes its profile.
pub async fn profile_sync(
    target: &Target,
    friends: usize,
    devices: usize,
    common: &Common,
) -> Result<Report> {
    let api = Api::new(&target.base)?;
    let b = bar((friends + 1) as u64, "accounts");
    let accounts = api.accounts(friends + 1, &b).await?;
    b.finish_and_clear();
    let (center, others) = accounts.split_at(1);
    let center = center[0].clone();
    let b = bar(friends as u64, "friendships");
    api.befriend_all(&center, others, &b).await?;
    b.finish_and_clear();
    let tokens: Vec<String> = others
        .iter()
        .flat_map(|a| std::iter::repeat_n(a.token.clone(), devices))
        .collect();
    let (clients, errors) = connect_all(target, &tokens, common.sources).await?;
    let payload = common.payload;
    let center = Arc::new(center);
    let publish: Publish = Arc::new(move |i, due| {
        let (api, center) = (api.clone(), center.clone());
        Box::pin(async move {
            api.patch(
                "/v1/me/profile",
                &center.token,
                json!({"status": client::payload(i, due, payload)}),
            )
            .await
            .map(|_| ())
        })
    });
    let per_message = (friends * devices) as u64;
    let (published, collected, closed) =
        run_fanout(chorus_receivers(clients), common, per_message, publish).await?;
    let params = json!({"friends": friends, "devices": devices, "rate": common.rate, "payload": payload,
                        "duration_s": common.duration.as_secs()});
    Ok(finish(
        "profile-sync",
        target,
        params,
        published,
        published * per_message,
        collected,
        closed,
        json!({"connect_failures": errors.len()}),
    ))
}

/// `release`: `accounts` accounts each link `platforms` webhooks (one per harness sink) and
/// post activities; a delivery counts once per `Idempotency-Key`, timed from the post's due
/// time to its arrival at the sink (so it includes the post's own durable write).
pub async fn release(
    target: &Target,
    accounts: usize,
    platforms: usize,
    common: &Common,
) -> Result<Report> {
    const SECRET: &str = "load-test-secret";
    let api = Api::new(&target.base)?;
    let sinks = crate::sink::Sinks::start(platforms.max(1), SECRET).await?;
    let b = bar(accounts as u64, "accounts");
    let authors = api.accounts(accounts.max(1), &b).await?;
    b.finish_and_clear();
    let links: Vec<(String, String, usize)> = authors
        .iter()
        .flat_map(|a| (0..sinks.urls.len()).map(|k| (a.token.clone(), a.id.clone(), k)))
        .collect();
    let b = bar(links.len() as u64, "links");
    let linked: Vec<Result<serde_json::Value>> = stream::iter(links)
        .map(|(token, id, k)| {
            let (api, url, b) = (api.clone(), sinks.urls[k].clone(), b.clone());
            async move {
                let body = json!({"platform": "webhook", "handle": format!("lt-{id}-{k}"),
                                  "config": {"url": url, "secret": SECRET}});
                let r = api.post("/v1/me/platforms", &token, body).await;
                b.inc(1);
                r
            }
        })
        .buffer_unordered(crate::api::CONCURRENCY)
        .collect()
        .await;
    b.finish_and_clear();
    linked.into_iter().collect::<Result<Vec<_>>>()?;
    let payload = common.payload;
    let authors = Arc::new(authors);
    let publish: Publish = Arc::new(move |i, due| {
        let (api, authors) = (api.clone(), authors.clone());
        Box::pin(async move {
            let author = &authors[(i as usize) % authors.len()];
            api.post(
                "/v1/me/activities",
                &author.token,
                json!({"text": client::payload(i, due, payload)}),
            )
            .await
            .map(|_| ())
        })
    });
    let per_message = sinks.urls.len() as u64;
    let (published, collected, _) =
        run_fanout(sinks.receivers(), common, per_message, publish).await?;
    let counts = &sinks.counts;
    let params = json!({"accounts": accounts, "platforms": platforms, "rate": common.rate,
                        "payload": payload, "duration_s": common.duration.as_secs()});
    Ok(finish(
        "release",
        target,
        params,
        published,
        published * per_message,
        collected,
        0,
        json!({
            "sink_requests": counts.requests.load(Ordering::Relaxed),
            "bad_signatures": counts.bad_signatures.load(Ordering::Relaxed),
            "redeliveries": counts.duplicates.load(Ordering::Relaxed),
        }),
    ))
}
