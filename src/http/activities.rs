//! Activities and their release: `POST /v1/me/activities`, `GET /v1/activities/{id}/releases`
//! (the author only) and the activity feed `GET /v1/accounts/{id}/activities` (the account
//! and its friends).

use actix_web::{HttpResponse, web};
use chorus_actors::model::limits::{check_id, check_post};
use serde::Deserialize;
use serde_json::json;

use super::{AppState, Authed, Body, ListQuery};
use crate::error::Result;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/me/activities", web::post().to(post))
        .route("/activities/{id}/releases", web::get().to(releases))
        .route("/accounts/{id}/activities", web::get().to(feed));
}

#[derive(Deserialize)]
pub struct NewActivity {
    text: String,
    #[serde(default)]
    idempotency_key: Option<String>,
}

/// 201 with the activity and one release per linked platform. A repeat with a known
/// `idempotency_key` answers the first activity (releases as they stand now) with the header
/// `Idempotent-Replayed: true`, and releases nothing again.
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
        .map(|r| json!({"link_id": r.link_id, "platform": r.platform, "status": r.status}))
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
    Ok(answer.json(json!({
        "activity_id": posted.activity.activity_id,
        "created_ms": posted.activity.created_ms,
        "releases": releases,
    })))
}

async fn releases(
    state: web::Data<AppState>,
    who: Authed,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    check_id("activity", &id)?;
    let items = state.chorus.list_releases(&who.0, &id).await?;
    Ok(HttpResponse::Ok().json(json!({"items": items, "next": null})))
}

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
