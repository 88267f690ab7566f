//! Communities: creation by a client, then the community server's calls, authenticated by
//! its `server_key` (shown once, stored only as a hash): members, dynamics, binding requests.

use actix_web::{HttpRequest, HttpResponse, web};
use chorus_actors::model::ids::is_id;
use chorus_actors::model::limits::{check_id, check_kind, check_name, check_note, check_text};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::community_server;
use super::groups::{NewMember, NewName};
use super::{AppState, Authed, Body, Router};
use crate::auth::new_token;
use crate::error::{ErrorBody, Result};

pub fn routes(r: &mut Router) {
    r.post("/communities", create)
        .post("/communities/{cid}/members", add_member)
        .post("/communities/{cid}/dynamics", post_dynamic)
        .post("/communities/{cid}/binding-requests", request_binding);
}

/// `POST /v1/communities`: the community and its server key (shown once).
#[derive(Serialize, ToSchema)]
pub struct CommunityCreated {
    community_id: String,
    server_key: String,
}

/// `POST /v1/communities/{cid}/dynamics`: the dynamic stored.
#[derive(Serialize, ToSchema)]
pub struct DynamicPosted {
    dynamic_id: String,
}

/// `POST /v1/communities/{cid}/binding-requests`: the request made.
#[derive(Serialize, ToSchema)]
pub struct BindingRequested {
    request_id: String,
}

#[utoipa::path(post, path = "/v1/communities", tag = "communities", operation_id = "create_community",
    request_body = NewName,
    responses((status = 201, description = "The community and its server key.", body = CommunityCreated)))]
async fn create(
    state: web::Data<AppState>,
    who: Authed,
    body: Body<NewName>,
) -> Result<HttpResponse> {
    let name = check_name(&body.name)?;
    let (server_key, hash) = new_token();
    let community_id = state.chorus.create_community(&who.0, name, hash).await?;
    tracing::info!(community = %community_id, creator = %who.0, "community created");
    Ok(HttpResponse::Created().json(CommunityCreated {
        community_id,
        server_key,
    }))
}

#[utoipa::path(post, path = "/v1/communities/{cid}/members", tag = "communities", operation_id = "add_community_member",
    params(("cid" = String, Path, description = "A community id.")), request_body = NewMember,
    security(("community_server" = [])),
    responses(
        (status = 204, description = "A member (again: 204 too)."),
        (status = 403, description = "`forbidden`: another community's key.", body = ErrorBody),
        (status = 404, description = "`not_found`: an unknown account.", body = ErrorBody),
    ))]
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

#[derive(Deserialize, ToSchema)]
pub struct NewDynamic {
    /// A member of the community.
    account_id: String,
    #[schema(pattern = "^[a-z0-9_.-]{1,32}$", example = "post")]
    kind: String,
    /// 1 to 4096 characters, not only white space.
    #[schema(min_length = 1, max_length = 4096)]
    text: String,
}

#[utoipa::path(post, path = "/v1/communities/{cid}/dynamics", tag = "communities", operation_id = "post_dynamic",
    params(("cid" = String, Path, description = "A community id.")), request_body = NewDynamic,
    security(("community_server" = [])),
    responses(
        (status = 201, description = "Stored, and stored by every bound group.", body = DynamicPosted),
        (status = 403, description = "`forbidden`: the account is not a member, or another community's key.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the fan-out is overloaded (nothing stored) or the store refuses writes; `Retry-After`.", body = ErrorBody),
    ))]
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
    Ok(HttpResponse::Created().json(DynamicPosted {
        dynamic_id: dynamic.dynamic_id,
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct NewBindingRequest {
    group_id: String,
    /// Up to 512 characters.
    #[schema(max_length = 512)]
    note: Option<String>,
}

#[utoipa::path(post, path = "/v1/communities/{cid}/binding-requests", tag = "communities", operation_id = "request_binding",
    params(("cid" = String, Path, description = "A community id.")), request_body = NewBindingRequest,
    security(("community_server" = [])),
    responses(
        (status = 201, description = "Requested; the group owner gets `binding.requested`.", body = BindingRequested),
        (status = 403, description = "`forbidden`: another community's key.", body = ErrorBody),
        (status = 404, description = "`not_found`: an unknown group.", body = ErrorBody),
        (status = 409, description = "`already_bound`, `already_requested`, `limit_reached`.", body = ErrorBody),
    ))]
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
    Ok(HttpResponse::Created().json(BindingRequested { request_id }))
}
