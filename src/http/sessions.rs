//! Sessions: `DELETE /v1/sessions/current` logs the calling token out. (Logging in,
//! `POST /v1/sessions`, is in [`super::accounts`].)

use actix_web::{HttpRequest, HttpResponse, web};

use super::auth::bearer_account;
use super::{AppState, Router};
use crate::error::Result;

pub fn routes(r: &mut Router) {
    r.delete("/sessions/current", logout);
}

/// Ends the token of the request (204): from the answer on it is 401 on every route and
/// every node, and a WebSocket it opened is closed at its next token check.
#[utoipa::path(delete, path = "/v1/sessions/current", tag = "accounts", operation_id = "logout",
    responses((status = 204, description = "The token of this request is ended.")))]
async fn logout(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse> {
    let (account, hash) = bearer_account(&state, &req).await?;
    state.chorus.revoke_token(&account, &hash).await?;
    tracing::info!(account = %account, "token revoked (logout)");
    Ok(HttpResponse::NoContent().finish())
}
