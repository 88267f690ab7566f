//! Communities: creation by a client, then the community server's calls, authenticated by
//! its `server_key` (shown once, stored only as a hash): members, dynamics, binding requests.

use actix_web::{HttpRequest, HttpResponse, web};
use chorus_actors::model::ids::is_id;
use chorus_actors::model::limits::{check_id, check_kind, check_name, check_note, check_text};
use serde::Deserialize;
use serde_json::json;

use super::auth::community_server;
use super::{AppState, Authed, Body};
use crate::auth::new_token;
use crate::error::Result;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/communities", web::post().to(create))
        .route("/communities/{cid}/members", web::post().to(add_member))
        .route("/communities/{cid}/dynamics", web::post().to(post_dynamic))
        .route(
            "/communities/{cid}/binding-requests",
            web::post().to(request_binding),
        );
}

#[derive(Deserialize)]
pub struct NewCommunity {
    name: String,
}

async fn create(
    state: web::Data<AppState>,
    who: Authed,
    body: Body<NewCommunity>,
) -> Result<HttpResponse> {
    let name = check_name(&body.name)?;
    let (server_key, hash) = new_token();
    let community_id = state.chorus.create_community(&who.0, name, hash).await?;
    tracing::info!(community = %community_id, creator = %who.0, "community created");
    Ok(HttpResponse::Created()
        .json(json!({"community_id": community_id, "server_key": server_key})))
}

#[derive(Deserialize)]
pub struct NewMember {
    account_id: String,
}

async fn add_member(
    state: web::Data<AppState>,
    req: HttpRequest,
    cid: web::Path<String>,
    body: Body<NewMember>,
) -> Result<HttpResponse> {
    community_server(&state, &req, &cid).await?;
    check_id("account", &body.account_id)?;
    state
        .chorus
        .add_community_member(&cid, &body.account_id)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
pub struct NewDynamic {
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
    community_server(&state, &req, &cid).await?;
    let NewDynamic {
        account_id,
        kind,
        text,
    } = body.into_inner();
    // No account of another shape is a member: the contract's 403, as the actor would say.
    if !is_id(&account_id) {
        return Err(chorus_actors::Error::Forbidden(
            "the account is not a member of this community".into(),
        )
        .into());
    }
    check_kind(&kind)?;
    check_text(&text)?;
    let dynamic = state
        .chorus
        .post_dynamic(&cid, &account_id, kind, text)
        .await?;
    Ok(HttpResponse::Created().json(json!({"dynamic_id": dynamic.dynamic_id})))
}

#[derive(Deserialize)]
pub struct NewBindingRequest {
    group_id: String,
    note: Option<String>,
}

async fn request_binding(
    state: web::Data<AppState>,
    req: HttpRequest,
    cid: web::Path<String>,
    body: Body<NewBindingRequest>,
) -> Result<HttpResponse> {
    community_server(&state, &req, &cid).await?;
    let NewBindingRequest { group_id, note } = body.into_inner();
    check_id("group", &group_id)?;
    check_note(note.as_deref())?;
    let request_id = state.chorus.request_binding(&cid, &group_id, note).await?;
    Ok(HttpResponse::Created().json(json!({"request_id": request_id})))
}
