//! The `group-fanout` scenario.

use std::sync::Arc;

use serde_json::json;

use super::{Common, Publish, bar, chorus_receivers, connect_all, finish, run_fanout};
use crate::api::Api;
use crate::client;
use crate::error::Result;
use crate::report::Report;
use crate::server::Target;

/// `group-fanout`: G groups of M online members; messages posted by each group's owner. On
/// a cluster, clients and posts are spread over the nodes, and the report says how many NATS
/// messages and bytes each posted message cost.
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
    // Posts go to the nodes in turn, as clients of a load balancer would send them.
    let apis = Arc::new(
        (0..target.node_count())
            .map(|n| Api::new(target.base_of(n)))
            .collect::<Result<Vec<_>>>()?,
    );
    let nats_before = target.nats_counters().await;
    let publish: Publish = Arc::new(move |i, due| {
        let (apis, gids) = (apis.clone(), gids.clone());
        Box::pin(async move {
            let (gid, token) = &gids[(i as usize) % gids.len()];
            let api = &apis[(i as usize) % apis.len()];
            api.post(
                &format!("/v1/groups/{gid}/messages"),
                token,
                json!({"text": client::payload(i, due, payload)}),
            )
            .await
            .map(|_| ())
        })
    });
    let run = run_fanout(
        chorus_receivers(clients),
        common,
        members as u64,
        publish,
        target.pids(),
    )
    .await?;
    let nats = match (nats_before, target.nats_counters().await) {
        (Some(before), Some(after)) => {
            let d = after.since(&before);
            let per = |n: u64| (run.published > 0).then(|| n as f64 / run.published as f64);
            json!({"in_msgs": d.in_msgs, "out_msgs": d.out_msgs, "in_bytes": d.in_bytes,
                   "out_bytes": d.out_bytes,
                   "msgs_per_event": per(d.in_msgs + d.out_msgs),
                   "bytes_per_event": per(d.in_bytes + d.out_bytes)})
        }
        _ => serde_json::Value::Null,
    };
    let params = json!({"groups": groups, "members": members, "rate": common.rate, "payload": payload,
                        "duration_s": common.duration.as_secs(), "nodes": target.node_count()});
    Ok(finish(
        "group-fanout",
        target,
        params,
        run.published * members as u64,
        run,
        json!({"connect_failures": errors.len(), "nats": nats}),
    ))
}
