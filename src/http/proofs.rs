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
    cfg.route("/me/email/code", web::post().to(send_email))
        .route("/me/email/verify", web::post().to(verify_email))
        .route("/me/phone/code", web::post().to(send_phone))
        .route("/me/phone/verify", web::post().to(verify_phone))
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

/// 202 `{"sent_to", "expires_in_secs"}`, or 429 `rate_limited` with `Retry-After` while the
/// last code is too fresh.
async fn send(state: &AppState, who: &str, target: CodeTarget) -> Result<HttpResponse> {
    match state.chorus.send_code(who, target).await? {
        CodeSent::Sent {
            to,
            expires_in_secs,
        } => Ok(HttpResponse::Accepted()
            .json(json!({"sent_to": to, "expires_in_secs": expires_in_secs}))),
        CodeSent::Wait(secs) => Err(Error::RateLimited(secs)),
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

async fn send_email(state: web::Data<AppState>, who: Authed) -> Result<HttpResponse> {
    send(&state, &who.0, CodeTarget::Profile(IdKind::Email)).await
}

async fn send_phone(state: web::Data<AppState>, who: Authed) -> Result<HttpResponse> {
    send(&state, &who.0, CodeTarget::Profile(IdKind::Phone)).await
}

async fn send_link(
    state: web::Data<AppState>,
    who: Authed,
    link_id: web::Path<String>,
) -> Result<HttpResponse> {
    check_id("link", &link_id)?;
    send(&state, &who.0, CodeTarget::Link(link_id.into_inner())).await
}

async fn verify_email(
    state: web::Data<AppState>,
    who: Authed,
    body: Body<Code>,
) -> Result<HttpResponse> {
    verify(
        &state,
        &who.0,
        CodeTarget::Profile(IdKind::Email),
        &body.code,
    )
    .await
}

async fn verify_phone(
    state: web::Data<AppState>,
    who: Authed,
    body: Body<Code>,
) -> Result<HttpResponse> {
    verify(
        &state,
        &who.0,
        CodeTarget::Profile(IdKind::Phone),
        &body.code,
    )
    .await
}

async fn verify_link(
    state: web::Data<AppState>,
    who: Authed,
    link_id: web::Path<String>,
    body: Body<Code>,
) -> Result<HttpResponse> {
    check_id("link", &link_id)?;
    verify(
        &state,
        &who.0,
        CodeTarget::Link(link_id.into_inner()),
        &body.code,
    )
    .await
}
