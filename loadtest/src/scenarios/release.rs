//! The `release` scenario. Its receivers are the harness's own webhook sinks
//! ([`crate::sink`]) instead of WebSockets.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::{StreamExt, stream};
use serde_json::json;

use super::{Common, Fanout, Publish, bar, finish, run_fanout};
use crate::api::Api;
use crate::client;
use crate::error::Result;
use crate::report::Report;
use crate::server::Target;

/// `release`: `accounts` accounts each link `platforms` webhooks (one per harness sink) and
/// post activities; a release counts once per `Idempotency-Key`, timed from the post's due
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
    let run = run_fanout(
        sinks.receivers(),
        common,
        per_message,
        publish,
        target.pids(),
    )
    .await?;
    let counts = &sinks.counts;
    let params = json!({"accounts": accounts, "platforms": platforms, "rate": common.rate,
                        "payload": payload, "duration_s": common.duration.as_secs()});
    Ok(finish(
        "release",
        target,
        params,
        run.published * per_message,
        // Sinks are not connections the server can close.
        Fanout { closed: 0, ..run },
        json!({
            "sink_requests": counts.requests.load(Ordering::Relaxed),
            "bad_signatures": counts.bad_signatures.load(Ordering::Relaxed),
            "redeliveries": counts.duplicates.load(Ordering::Relaxed),
        }),
    ))
}
