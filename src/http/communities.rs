//! Communities: creation by a client, then the community server's calls, authenticated by
//! its `server_key` (shown once, stored only as a hash): members, dynamics, binding requests.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::groups::{check_name, check_text};
use super::{AppState, Authed, Body};
use crate::auth::{bearer, new_token, token_hash};
use crate::error::{Error, Result};
use chorus_actors::groups_model::MAX_NOTE;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/communities", web::post().to(create))
        .route("/communities/{cid}/members", web::post().to(add_member))
        .route("/communities/{cid}/dynamics", web::post().to(post_dynamic))
        .route(
            "/communities/{cid}/binding-requests",
            web::post().to(request_binding),
        );
}

/// Checks the request carries the server key of community `cid`: 401 for no or an unknown
/// key, 403 for the key of another community.
async fn server_auth(state: &AppState, req: &HttpRequest, cid: &str) -> Result<()> {
    let key = bearer(req, false).ok_or(Error::Unauthorized)?;
    if key.is_empty() || key.len() > 256 {
        return Err(Error::Unauthorized);
    }
    let owner = state
        .store
        .find_server_key(&token_hash(&key))
        .await
        .map_err(|e| Error::Domain(e.into()))?;
    match owner {
        Some(owner) if owner == cid => Ok(()),
        Some(_) => Err(Error::Domain(chorus_actors::Error::Forbidden(
            "this server key belongs to another community".into(),
        ))),
        None => Err(Error::Unauthorized),
    }
}

#[derive(Deserialize)]
struct NewCommunity {
    name: String,
}

async fn create(
    state: web::Data<AppState>,
    who: Authed,
    body: Body<NewCommunity>,
) -> Result<HttpResponse> {
    let name = check_name(&body.name)?;
    let (server_key, hash) = new_token();
    let community_id = state.registry.create_community(&who.0, name, hash).await?;
    tracing::info!(community = %community_id, creator = %who.0, "community created");
    Ok(HttpResponse::Created()
        .json(json!({"community_id": community_id, "server_key": server_key})))
}

#[derive(Deserialize)]
struct NewMember {
    account_id: String,
}

async fn add_member(
    state: web::Data<AppState>,
    req: HttpRequest,
    cid: web::Path<String>,
    body: Body<NewMember>,
) -> Result<HttpResponse> {
    server_auth(&state, &req, &cid).await?;
    state
        .registry
        .add_community_member(&cid, &body.account_id)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
struct NewDynamic {
    account_id: String,
    kind: String,
    text: String,
}

async fn post_dynamic(
    state: web::Data<AppState>,
    req: HttpRequest,
    cid: web::Path<String>,
    body: Body<NewDynamic>,
) -> Result<HttpResponse> {
    server_auth(&state, &req, &cid).await?;
    let NewDynamic {
        account_id,
        kind,
        text,
    } = body.into_inner();
    let kind_ok = !kind.is_empty()
        && kind.len() <= 32
        && kind
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'));
    if !kind_ok {
        return Err(Error::invalid("kind must match [a-z0-9_.-]{1,32}"));
    }
    check_text(&text)?;
    let dynamic = state
        .registry
        .post_dynamic(&cid, &account_id, kind, text)
        .await?;
    Ok(HttpResponse::Created().json(json!({"dynamic_id": dynamic.dynamic_id})))
}

#[derive(Deserialize)]
struct NewBindingRequest {
    group_id: String,
    note: Option<String>,
}

async fn request_binding(
    state: web::Data<AppState>,
    req: HttpRequest,
    cid: web::Path<String>,
    body: Body<NewBindingRequest>,
) -> Result<HttpResponse> {
    server_auth(&state, &req, &cid).await?;
    let NewBindingRequest { group_id, note } = body.into_inner();
    if note.as_ref().is_some_and(|n| n.chars().count() > MAX_NOTE) {
        return Err(Error::invalid(format!(
            "note has at most {MAX_NOTE} characters"
        )));
    }
    let request_id = state
        .registry
        .request_binding(&cid, &group_id, note)
        .await?;
    Ok(HttpResponse::Created().json(json!({"request_id": request_id})))
}
