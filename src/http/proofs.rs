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
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AppState, Authed, Body, Router};
use crate::error::{Error, ErrorBody, Result};

pub fn routes(r: &mut Router) {
    r.post("/me/{field}/code", send_profile)
        .post("/me/{field}/verify", verify_profile)
        .post("/me/platforms/{link_id}/code", send_link)
        .post("/me/platforms/{link_id}/verify", verify_link);
}

#[derive(Deserialize, ToSchema)]
pub struct Code {
    /// The 6 digits sent.
    #[schema(pattern = "^[0-9]{6}$", example = "123456")]
    code: String,
}

/// A code is on its way.
#[derive(Serialize, ToSchema)]
pub struct CodeSentAnswer {
    /// The address it was sent to.
    sent_to: String,
    expires_in_secs: u64,
}

/// The identifier is proven.
#[derive(Serialize, ToSchema)]
pub struct Verified {
    verified: bool,
}

/// Which profile identifier: `email`, or `phone` (409 `not_verifiable` here: no SMS gateway).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // The schema of the `{field}` path parameter, read as text.
pub enum ProfileField {
    Email,
    Phone,
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
        } => Ok(HttpResponse::Accepted().json(CodeSentAnswer {
            sent_to: to,
            expires_in_secs,
        })),
        CodeSent::Wait(secs) => {
            crate::metrics::rejected(crate::metrics::VERIFICATION_CODE);
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
    Ok(HttpResponse::Ok().json(Verified { verified: true }))
}

#[utoipa::path(post, path = "/v1/me/{field}/code", tag = "identities", operation_id = "send_profile_code",
    params(("field" = inline(ProfileField), Path, description = "The profile identifier to prove.")),
    responses(
        (status = 202, description = "A code was sent to the profile's identifier.", body = CodeSentAnswer),
        (status = 409, description = "`already_verified`, `not_verifiable` (no such identifier in the profile, no courier for it).", body = ErrorBody),
        (status = 429, description = "`rate_limited`: a code was sent too recently, or too many today; `Retry-After`.", body = ErrorBody),
    ))]
async fn send_profile(
    state: web::Data<AppState>,
    who: Authed,
    field: web::Path<String>,
) -> Result<HttpResponse> {
    send(&state, &who.0, profile(&field)?).await
}

#[utoipa::path(post, path = "/v1/me/{field}/verify", tag = "identities", operation_id = "verify_profile_code",
    params(("field" = inline(ProfileField), Path, description = "The profile identifier to prove.")),
    request_body = Code,
    responses(
        (status = 200, description = "Proven (again: 200 too).", body = Verified),
        (status = 400, description = "`bad_json`; `invalid_code` (a try spent); `invalid_input` for a code that is not 6 digits.", body = ErrorBody),
        (status = 409, description = "`code_expired`: no live code; `not_verifiable`.", body = ErrorBody),
    ))]
async fn verify_profile(
    state: web::Data<AppState>,
    who: Authed,
    field: web::Path<String>,
    body: Body<Code>,
) -> Result<HttpResponse> {
    verify(&state, &who.0, profile(&field)?, &body.code).await
}

#[utoipa::path(post, path = "/v1/me/platforms/{link_id}/code", tag = "identities", operation_id = "send_link_code",
    params(("link_id" = String, Path, description = "An email link of the caller.")),
    responses(
        (status = 202, description = "A code was sent to the link's address.", body = CodeSentAnswer),
        (status = 409, description = "`already_verified`, `not_verifiable` (not an email link, no `--smtp-url`).", body = ErrorBody),
        (status = 429, description = "`rate_limited`: a code was sent too recently, or too many today; `Retry-After`.", body = ErrorBody),
    ))]
async fn send_link(
    state: web::Data<AppState>,
    who: Authed,
    link_id: web::Path<String>,
) -> Result<HttpResponse> {
    send(&state, &who.0, link(link_id.into_inner())?).await
}

#[utoipa::path(post, path = "/v1/me/platforms/{link_id}/verify", tag = "identities", operation_id = "verify_link_code",
    params(("link_id" = String, Path, description = "An email link of the caller.")),
    request_body = Code,
    responses(
        (status = 200, description = "Proven; the link's `status` is `active`.", body = Verified),
        (status = 400, description = "`bad_json`; `invalid_code` (a try spent); `invalid_input` for a code that is not 6 digits.", body = ErrorBody),
        (status = 409, description = "`code_expired`: no live code; `not_verifiable`.", body = ErrorBody),
    ))]
async fn verify_link(
    state: web::Data<AppState>,
    who: Authed,
    link_id: web::Path<String>,
    body: Body<Code>,
) -> Result<HttpResponse> {
    verify(&state, &who.0, link(link_id.into_inner())?, &body.code).await
}
