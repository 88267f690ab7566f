//! Activities and their release: `POST /v1/me/activities`, `GET /v1/activities/{id}/releases`
//! (the author only) and the activity feed `GET /v1/accounts/{id}/activities` (the account
//! and its friends).

use actix_web::{HttpResponse, web};
use chorus_actors::model::limits::{check_id, check_post};
use chorus_actors::model::{ActivityView, Page, ReleaseStatus, ReleaseView};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AppState, Authed, Body, ListQuery, Router};
use crate::error::{ErrorBody, Result};

pub fn routes(r: &mut Router) {
    r.post("/me/activities", post)
        .get("/activities/{id}/releases", releases)
        .get("/accounts/{id}/activities", feed);
}

#[derive(Deserialize, ToSchema)]
pub struct NewActivity {
    /// 1 to 5000 characters, not blank, no NUL.
    #[schema(min_length = 1, max_length = 5000)]
    text: String,
    /// 1 to 128 characters, no control characters; per account.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128)]
    idempotency_key: Option<String>,
}

/// `POST /v1/me/activities`: the activity and one release per linked platform.
#[derive(Serialize, ToSchema)]
pub struct Posted {
    activity_id: String,
    created_ms: u64,
    releases: Vec<NewRelease>,
}

/// A release as a post answers it.
#[derive(Serialize, ToSchema)]
pub struct NewRelease {
    link_id: String,
    platform: String,
    status: ReleaseStatus,
}

/// 201 with the activity and one release per linked platform. A repeat with a known
/// `idempotency_key` answers the first activity (releases as they stand now) with the header
/// `Idempotent-Replayed: true`, and releases nothing again.
#[utoipa::path(post, path = "/v1/me/activities", tag = "activities", operation_id = "post_activity",
    request_body = NewActivity,
    responses(
        (status = 201, description = "The activity (or, for a known `idempotency_key`, the first one, with `Idempotent-Replayed: true`).", body = Posted),
        (status = 409, description = "`idempotency_key_reused`: the key with another text.", body = ErrorBody),
    ))]
async fn post(
    state: web::Data<AppState>,
    who: Authed,
    body: Body<NewActivity>,
) -> Result<HttpResponse> {
    let NewActivity {
        text,
        idempotency_key,
    } = body.into_inner();
    check_post(&text, idempotency_key.as_deref())?;
    let posted = state
        .chorus
        .post_activity(&who.0, text, idempotency_key)
        .await?;
    let releases: Vec<_> = posted
        .releases
        .iter()
        .map(|r| NewRelease {
            link_id: r.link_id.clone(),
            platform: r.platform.clone(),
            status: r.status,
        })
        .collect();
    if !posted.replayed {
        tracing::info!(
            account = %who.0, activity = %posted.activity.activity_id,
            platforms = releases.len(), friends = posted.friends_told, "activity posted"
        );
    }
    let mut answer = HttpResponse::Created();
    if posted.replayed {
        answer.insert_header(("Idempotent-Replayed", "true"));
    }
    Ok(answer.json(Posted {
        activity_id: posted.activity.activity_id,
        created_ms: posted.activity.created_ms,
        releases,
    }))
}

#[utoipa::path(get, path = "/v1/activities/{id}/releases", tag = "activities", operation_id = "list_releases",
    params(("id" = String, Path, description = "An activity id.")),
    responses(
        (status = 200, description = "One release per platform, by `link_id`; `next` is null.", body = Page<ReleaseView>),
        (status = 403, description = "`forbidden`: not the author.", body = ErrorBody),
    ))]
async fn releases(
    state: web::Data<AppState>,
    who: Authed,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    check_id("activity", &id)?;
    let items = state.chorus.list_releases(&who.0, &id).await?;
    Ok(HttpResponse::Ok().json(Page { items, next: None }))
}

#[utoipa::path(get, path = "/v1/accounts/{id}/activities", tag = "activities", operation_id = "activity_feed",
    params(("id" = String, Path, description = "An account id."), ListQuery),
    responses(
        (status = 200, description = "The account's activities, newest first.", body = Page<ActivityView>),
        (status = 403, description = "`forbidden`: neither the account nor a friend.", body = ErrorBody),
    ))]
async fn feed(
    state: web::Data<AppState>,
    who: Authed,
    id: web::Path<String>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse> {
    check_id("account", &id)?;
    let page = state
        .chorus
        .list_activities(&who.0, &id, &q.page()?)
        .await?;
    Ok(HttpResponse::Ok().json(page))
}
