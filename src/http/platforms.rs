//! Platform accounts linked to the communication account: `POST/GET /v1/me/platforms`,
//! `DELETE /v1/me/platforms/{link_id}`. Configs are validated by the platform's connector
//! ([`crate::connectors`]) when linked, under the egress policy, and never echoed; their
//! secrets are stored sealed, and go with the link when it is unlinked. A Mastodon link is
//! verified with the instance first (`verify_credentials`).

use actix_web::{HttpResponse, web};
use chorus_actors::model::limits::check_id;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AppState, Authed, Body};
use crate::error::Result;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/me/platforms", web::post().to(link))
        .route("/me/platforms", web::get().to(list))
        .route("/me/platforms/{link_id}", web::delete().to(unlink));
}

#[derive(Deserialize)]
pub struct NewLink {
    platform: String,
    handle: String,
    #[serde(default)]
    config: Value,
}

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
    Ok(HttpResponse::Created().json(json!({"link_id": link_id})))
}

async fn list(state: web::Data<AppState>, who: Authed) -> Result<HttpResponse> {
    let me = state.chorus.me(&who.0).await?;
    Ok(HttpResponse::Ok().json(json!({"items": me.platforms, "next": null})))
}

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
