//! The `profile-sync` scenario.

use std::sync::Arc;

use serde_json::json;

use super::{Common, Publish, bar, chorus_receivers, connect_all, finish, run_fanout};
use crate::api::Api;
use crate::client;
use crate::error::Result;
use crate::report::Report;
use crate::server::Target;

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
    let run = run_fanout(
        chorus_receivers(clients),
        common,
        per_message,
        publish,
        target.pids(),
    )
    .await?;
    let params = json!({"friends": friends, "devices": devices, "rate": common.rate, "payload": payload,
                        "duration_s": common.duration.as_secs()});
    Ok(finish(
        "profile-sync",
        target,
        params,
        run.published * per_message,
        run,
        json!({"connect_failures": errors.len()}),
    ))
}
