//! Sessions: `DELETE /v1/sessions/current` logs the calling token out. (Logging in,
//! `POST /v1/sessions`, is in [`super::accounts`].)

use actix_web::{HttpRequest, HttpResponse, web};

use super::AppState;
use super::auth::bearer_account;
use crate::error::Result;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/sessions/current", web::delete().to(logout));
}

/// Ends the token of the request (204): from the answer on it is 401 on every route and
/// every node, and a WebSocket it opened is closed at its next token check.
async fn logout(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse> {
    let (account, hash) = bearer_account(&state, &req).await?;
    state.chorus.revoke_token(&account, &hash).await?;
    tracing::info!(account = %account, "token revoked (logout)");
    Ok(HttpResponse::NoContent().finish())
}
