//! The `community-dynamics` scenario.

use std::sync::Arc;

use serde_json::json;

use super::{Common, Publish, bar, chorus_receivers, connect_all, finish, run_fanout};
use crate::api::{Account, Api};
use crate::client;
use crate::error::Result;
use crate::report::Report;
use crate::server::Target;

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
    let run = run_fanout(
        chorus_receivers(clients),
        common,
        per_message,
        publish,
        target.pids(),
    )
    .await?;
    let params = json!({"groups": groups, "members": members, "posters": poster_accounts.len(),
                        "rate": common.rate, "payload": payload, "duration_s": common.duration.as_secs()});
    Ok(finish(
        "community-dynamics",
        target,
        params,
        run.published * per_message,
        run,
        json!({"connect_failures": errors.len()}),
    ))
}
