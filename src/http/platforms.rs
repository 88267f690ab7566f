//! Platform accounts linked to the communication account: `POST/GET /v1/me/platforms`,
//! `DELETE /v1/me/platforms/{link_id}`. Configs are validated by the platform's connector
//! ([`crate::connectors`]) when linked, under the egress policy, and never echoed; their
//! secrets are stored sealed, and go with the link when it is unlinked. A Mastodon link is
//! verified with the instance first (`verify_credentials`).

use actix_web::{HttpResponse, web};
use chorus_actors::model::limits::check_id;
use chorus_actors::model::{LinkView, Page};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::{AppState, Authed, Body, Router};
use crate::error::{ErrorBody, Result};

pub fn routes(r: &mut Router) {
    r.post("/me/platforms", link)
        .get("/me/platforms", list)
        .delete("/me/platforms/{link_id}", unlink);
}

#[derive(Deserialize, ToSchema)]
pub struct NewLink {
    /// A connector this server has: `webhook`, `mastodon`, `email` (with `--smtp-url`).
    #[schema(example = "webhook")]
    platform: String,
    /// 1 to 128 characters.
    #[schema(min_length = 1, max_length = 128)]
    handle: String,
    /// The platform's settings (docs/api.md, "Platform accounts"); never echoed.
    #[serde(default)]
    #[schema(value_type = Object)]
    config: Value,
}

/// `POST /v1/me/platforms`: the new link.
#[derive(Serialize, ToSchema)]
pub struct Linked {
    link_id: String,
}

#[utoipa::path(post, path = "/v1/me/platforms", tag = "platforms", operation_id = "link_platform",
    request_body = NewLink,
    responses(
        (status = 201, description = "Linked.", body = Linked),
        (status = 400, description = "`bad_json`; `unknown_platform`; `invalid_input` for a bad config or handle, a destination the egress policy refuses, an unverifiable Mastodon account or more than 32 links.", body = ErrorBody),
        (status = 409, description = "`handle_taken`: an account already links that (platform, handle).", body = ErrorBody),
    ))]
async fn link(
    state: web::Data<AppState>,
    who: Authed,
    body: Body<NewLink>,
) -> Result<HttpResponse> {
    let NewLink {
        platform,
        handle,
        config,
    } = body.into_inner();
    // Each connector checks its own config (400 for a bad URL, a missing field, or a
    // destination the egress policy refuses) and says how the handle is stored; a Mastodon
    // handle is proven by the instance before anything is stored, an email address awaits
    // its code (`POST /v1/me/platforms/{link_id}/code`); the secret is sealed before it
    // leaves this node.
    let record = state
        .connectors
        .new_link(&platform, &handle, &config)
        .await?;
    let link_id = record.link_id.clone();
    state.chorus.link_platform(&who.0, record).await?;
    Ok(HttpResponse::Created().json(Linked { link_id }))
}

#[utoipa::path(get, path = "/v1/me/platforms", tag = "platforms", operation_id = "list_platforms",
    responses((status = 200, description = "Every link (never its config); `next` is null.", body = Page<LinkView>)))]
async fn list(state: web::Data<AppState>, who: Authed) -> Result<HttpResponse> {
    let me = state.chorus.me(&who.0).await?;
    Ok(HttpResponse::Ok().json(Page {
        items: me.platforms,
        next: None,
    }))
}

#[utoipa::path(delete, path = "/v1/me/platforms/{link_id}", tag = "platforms", operation_id = "unlink_platform",
    params(("link_id" = String, Path, description = "A link id of the caller.")),
    responses((status = 204, description = "Unlinked; the handle is free again.")))]
async fn unlink(
    state: web::Data<AppState>,
    who: Authed,
    link_id: web::Path<String>,
) -> Result<HttpResponse> {
    check_id("link", &link_id)?;
    state
        .chorus
        .unlink_platform(&who.0, link_id.into_inner())
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
