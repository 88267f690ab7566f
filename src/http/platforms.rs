//! Platform accounts linked to the communication account: `POST/GET /v1/me/platforms`,
//! `DELETE /v1/me/platforms/{link_id}`. Configs are validated by the platform's connector
//! ([`crate::connectors`]) when linked and never echoed (they hold secrets); a Mastodon link
//! is verified with the instance first (`verify_credentials`).

use actix_web::{HttpResponse, web};
use chorus_actors::model::limits::check_id;
use chorus_actors::model::{LinkRecord, Proof, new_id, now_ms};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AppState, Authed, Body};
use crate::connectors::mastodon;
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
    // Each connector checks its own config (400 for a bad URL or a missing field) and says
    // how the handle is stored.
    let (handle, config) = state.connectors.validate(&platform, &handle, &config)?;
    // A Mastodon handle is proven by the instance before anything is stored; an email
    // address awaits its code (`POST /v1/me/platforms/{link_id}/code`).
    let proof = if platform == mastodon::PLATFORM {
        state.connectors.verify_mastodon(&handle, &config).await?;
        Proof::Verified
    } else {
        Proof::Unproven
    };
    let link_id = new_id();
    let record = LinkRecord {
        link_id: link_id.clone(),
        platform,
        handle,
        config,
        created_ms: now_ms(),
        proof,
    };
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
