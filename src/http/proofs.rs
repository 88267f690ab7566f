//! Proving identifiers with a code (with `--smtp-url`; `chorus_actors::model::identity`):
//! `POST /v1/me/email/code` and `/v1/me/phone/code` send one to the profile's email (or
//! phone, once a courier carries phones), `POST /v1/me/email/verify` and
//! `/v1/me/phone/verify` confirm it; `POST /v1/me/platforms/{link_id}/code` and `/verify` do
//! the same for an email link.

use actix_web::{HttpResponse, web};
use chorus_actors::CodeSent;
use chorus_actors::model::identity::check_code;
use chorus_actors::model::limits::check_id;
use chorus_actors::model::{CodeTarget, IdKind};
use serde::Deserialize;
use serde_json::json;

use super::{AppState, Authed, Body};
use crate::error::{Error, Result};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/me/{field}/code", web::post().to(send_profile))
        .route("/me/{field}/verify", web::post().to(verify_profile))
        .route("/me/platforms/{link_id}/code", web::post().to(send_link))
        .route(
            "/me/platforms/{link_id}/verify",
            web::post().to(verify_link),
        );
}

#[derive(Deserialize)]
pub struct Code {
    code: String,
}

/// The profile identifier a path names: `email` or `phone` (any other is an unknown route).
fn profile(field: &str) -> Result<CodeTarget> {
    match field {
        "email" => Ok(CodeTarget::Profile(IdKind::Email)),
        "phone" => Ok(CodeTarget::Profile(IdKind::Phone)),
        _ => Err(Error::Domain(chorus_actors::Error::NotFound("route"))),
    }
}

/// A link a path names.
fn link(link_id: String) -> Result<CodeTarget> {
    check_id("link", &link_id)?;
    Ok(CodeTarget::Link(link_id))
}

/// 202 `{"sent_to", "expires_in_secs"}`, or 429 `rate_limited` with `Retry-After` while the
/// last code is too fresh.
async fn send(state: &AppState, who: &str, target: CodeTarget) -> Result<HttpResponse> {
    match state.chorus.send_code(who, target).await? {
        CodeSent::Sent {
            to,
            expires_in_secs,
        } => Ok(HttpResponse::Accepted()
            .json(json!({"sent_to": to, "expires_in_secs": expires_in_secs}))),
        CodeSent::Wait(secs) => {
            crate::metrics::rejected("verification_code");
            Err(Error::RateLimited(secs))
        }
    }
}

/// 200 `{"verified": true}`.
async fn verify(
    state: &AppState,
    who: &str,
    target: CodeTarget,
    code: &str,
) -> Result<HttpResponse> {
    check_code(code)?;
    state
        .chorus
        .confirm_code(who, target, code.to_owned())
        .await?;
    Ok(HttpResponse::Ok().json(json!({"verified": true})))
}

async fn send_profile(
    state: web::Data<AppState>,
    who: Authed,
    field: web::Path<String>,
) -> Result<HttpResponse> {
    send(&state, &who.0, profile(&field)?).await
}

async fn verify_profile(
    state: web::Data<AppState>,
    who: Authed,
    field: web::Path<String>,
    body: Body<Code>,
) -> Result<HttpResponse> {
    verify(&state, &who.0, profile(&field)?, &body.code).await
}

async fn send_link(
    state: web::Data<AppState>,
    who: Authed,
    link_id: web::Path<String>,
) -> Result<HttpResponse> {
    send(&state, &who.0, link(link_id.into_inner())?).await
}

async fn verify_link(
    state: web::Data<AppState>,
    who: Authed,
    link_id: web::Path<String>,
    body: Body<Code>,
) -> Result<HttpResponse> {
    verify(&state, &who.0, link(link_id.into_inner())?, &body.code).await
}
