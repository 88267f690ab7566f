//! IM groups: creation, members, chat, binding requests (the owner's side), bindings, the
//! merged dynamics feed, and who of the members is online.

use actix_web::{HttpRequest, HttpResponse, web};
use chorus_actors::model::limits::{check_id, check_name, check_text, events_limit};
use chorus_actors::model::{
    BindingRequest, DynamicRecord, GroupView, MessageRecord, OnlineMember, Page,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::auth::owner_or_community;
use super::{AppState, Authed, Body, ListQuery, Router};
use crate::error::{ErrorBody, Result};

pub fn routes(r: &mut Router) {
    r.post("/groups", create)
        .get("/groups/{gid}", get)
        .post("/groups/{gid}/members", add_member)
        .delete("/groups/{gid}/members/{id}", remove_member)
        .post("/groups/{gid}/messages", post_message)
        .get("/groups/{gid}/messages", list_messages)
        .get("/groups/{gid}/events", events)
        .get("/groups/{gid}/binding-requests", list_requests)
        .post("/groups/{gid}/binding-requests/{rid}/approve", approve)
        .post("/groups/{gid}/binding-requests/{rid}/reject", reject)
        .delete("/groups/{gid}/bindings/{cid}", revoke)
        .get("/groups/{gid}/dynamics", dynamics)
        .get("/groups/{gid}/presence", presence);
}

/// A group or community to create.
#[derive(Deserialize, ToSchema)]
pub struct NewName {
    /// 1 to 128 characters (trimmed).
    #[schema(min_length = 1, max_length = 128, example = "Hikers")]
    pub name: String,
}

/// `POST /v1/groups`: the new group.
#[derive(Serialize, ToSchema)]
pub struct GroupCreated {
    group_id: String,
}

/// An account to add (to a group, or to a community).
#[derive(Deserialize, ToSchema)]
pub struct NewMember {
    pub account_id: String,
}

/// A chat message to post.
#[derive(Deserialize, ToSchema)]
pub struct NewMessage {
    /// 1 to 4096 characters, not only white space.
    #[schema(min_length = 1, max_length = 4096)]
    text: String,
}

/// `POST /v1/groups/{gid}/messages`: the message stored.
#[derive(Serialize, ToSchema)]
pub struct MessagePosted {
    message_id: String,
}

/// The group's stored events, oldest first, each exactly the frame pushed (docs/api.md,
/// "WebSocket").
#[derive(ToSchema)]
#[allow(dead_code)] // The schema of the answer the handler splices from stored frames.
pub struct GroupEvents {
    #[schema(value_type = Vec<Object>)]
    items: Vec<Value>,
}

/// What the owner decided on a binding request.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approved,
    Rejected,
}

/// `.../approve`, `.../reject`: the request and its outcome.
#[derive(Serialize, ToSchema)]
pub struct Decided {
    group_id: String,
    request_id: String,
    status: Decision,
}

#[utoipa::path(post, path = "/v1/groups", tag = "groups", operation_id = "create_group",
    request_body = NewName,
    responses((status = 201, description = "The group; the caller is its owner and first member.", body = GroupCreated)))]
async fn create(
    state: web::Data<AppState>,
    who: Authed,
    body: Body<NewName>,
) -> Result<HttpResponse> {
    let name = check_name(&body.name)?;
    let group_id = state.chorus.create_group(&who.0, name).await?;
    tracing::info!(group = %group_id, owner = %who.0, "group created");
    Ok(HttpResponse::Created().json(GroupCreated { group_id }))
}

#[utoipa::path(get, path = "/v1/groups/{gid}", tag = "groups", operation_id = "get_group",
    params(("gid" = String, Path, description = "A group id.")),
    responses(
        (status = 200, description = "The group (members only).", body = GroupView),
        (status = 403, description = "`forbidden`: not a member.", body = ErrorBody),
    ))]
async fn get(
    state: web::Data<AppState>,
    who: Authed,
    gid: web::Path<String>,
) -> Result<HttpResponse> {
    check_id("group", &gid)?;
    let view = state.chorus.group(&who.0, &gid).await?;
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(post, path = "/v1/groups/{gid}/members", tag = "groups", operation_id = "add_group_member",
    params(("gid" = String, Path, description = "A group id.")), request_body = NewMember,
    responses(
        (status = 204, description = "A member (again: 204 too)."),
        (status = 403, description = "`forbidden`: not the owner.", body = ErrorBody),
        (status = 404, description = "`not_found`: an unknown group or account.", body = ErrorBody),
        (status = 409, description = "`limit_reached`: the group is full.", body = ErrorBody),
    ))]
async fn add_member(
    state: web::Data<AppState>,
    who: Authed,
    gid: web::Path<String>,
    body: Body<NewMember>,
) -> Result<HttpResponse> {
    check_id("group", &gid)?;
    check_id("account", &body.account_id)?;
    state
        .chorus
        .add_group_member(&who.0, &gid, &body.account_id)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(delete, path = "/v1/groups/{gid}/members/{id}", tag = "groups", operation_id = "remove_group_member",
    params(("gid" = String, Path, description = "A group id."), ("id" = String, Path, description = "A member's account id.")),
    responses(
        (status = 204, description = "No longer a member."),
        (status = 403, description = "`forbidden`: neither the owner nor the member itself.", body = ErrorBody),
        (status = 404, description = "`not_found`: an unknown group, or not a member.", body = ErrorBody),
        (status = 409, description = "`owner_cannot_leave`.", body = ErrorBody),
    ))]
async fn remove_member(
    state: web::Data<AppState>,
    who: Authed,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let (gid, account) = path.into_inner();
    // The member id is only looked up in the group's memory (the actor answers 403 or 404
    // as the contract says), never used as a store key unless it is a member's.
    check_id("group", &gid)?;
    state
        .chorus
        .remove_group_member(&who.0, &gid, account)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(post, path = "/v1/groups/{gid}/messages", tag = "groups", operation_id = "post_message",
    params(("gid" = String, Path, description = "A group id.")), request_body = NewMessage,
    responses(
        (status = 201, description = "Stored; every member's devices get `group.message`.", body = MessagePosted),
        (status = 403, description = "`forbidden`: not a member.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the fan-out is overloaded (nothing stored) or the store refuses writes; `Retry-After`.", body = ErrorBody),
    ))]
async fn post_message(
    state: web::Data<AppState>,
    who: Authed,
    gid: web::Path<String>,
    body: Body<NewMessage>,
) -> Result<HttpResponse> {
    check_id("group", &gid)?;
    let NewMessage { text } = body.into_inner();
    check_text(&text)?;
    let message = state.chorus.post_message(&who.0, &gid, text).await?;
    Ok(HttpResponse::Created().json(MessagePosted {
        message_id: message.message_id,
    }))
}

#[utoipa::path(get, path = "/v1/groups/{gid}/messages", tag = "groups", operation_id = "list_messages",
    params(("gid" = String, Path, description = "A group id."), ListQuery),
    responses(
        (status = 200, description = "Messages, newest first (members only).", body = Page<MessageRecord>),
        (status = 403, description = "`forbidden`: not a member.", body = ErrorBody),
    ))]
async fn list_messages(
    state: web::Data<AppState>,
    who: Authed,
    gid: web::Path<String>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse> {
    check_id("group", &gid)?;
    let page = state.chorus.list_messages(&who.0, &gid, &q.page()?).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// `?after=N&limit=M` of `GET /v1/groups/{gid}/events`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// The last group seq seen; without it, from the oldest event kept.
    after: Option<u64>,
    /// Events per answer (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// Extension: the group's stored events after `after`, oldest first, exactly as they were
/// pushed (for a device that was offline).
#[utoipa::path(get, path = "/v1/groups/{gid}/events", tag = "groups", operation_id = "group_events",
    params(("gid" = String, Path, description = "A group id."), EventsQuery),
    responses(
        (status = 200, description = "Stored events after `after`, oldest first (members only).", body = GroupEvents),
        (status = 400, description = "`invalid_input`: a bad `after` or `limit`.", body = ErrorBody),
        (status = 403, description = "`forbidden`: not a member.", body = ErrorBody),
        (status = 409, description = "`resync_required`: events after `after` are no longer kept.", body = ErrorBody),
    ))]
async fn events(
    state: web::Data<AppState>,
    who: Authed,
    gid: web::Path<String>,
    q: web::Query<EventsQuery>,
) -> Result<HttpResponse> {
    check_id("group", &gid)?;
    let limit = events_limit(q.limit)?;
    let events = state
        .chorus
        .group_events(&who.0, &gid, q.after, limit)
        .await?;
    // The frames are stored JSON; splice them in rather than parse and re-encode.
    let mut body = String::from(r#"{"items":["#);
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&e.frame);
    }
    body.push_str("]}");
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body))
}

#[utoipa::path(get, path = "/v1/groups/{gid}/binding-requests", tag = "groups", operation_id = "list_binding_requests",
    params(("gid" = String, Path, description = "A group id."), ListQuery),
    responses(
        (status = 200, description = "Pending, unexpired requests, newest first (owner only).", body = Page<BindingRequest>),
        (status = 403, description = "`forbidden`: not the owner.", body = ErrorBody),
    ))]
async fn list_requests(
    state: web::Data<AppState>,
    who: Authed,
    gid: web::Path<String>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse> {
    check_id("group", &gid)?;
    let page = state
        .chorus
        .binding_requests(&who.0, &gid, &q.page()?)
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

#[utoipa::path(post, path = "/v1/groups/{gid}/binding-requests/{rid}/approve", tag = "groups", operation_id = "approve_binding",
    params(("gid" = String, Path, description = "A group id."), ("rid" = String, Path, description = "A binding request id.")),
    responses(
        (status = 200, description = "Bound (again: 200 too); members get `binding.approved`.", body = Decided),
        (status = 403, description = "`forbidden`: not the owner.", body = ErrorBody),
        (status = 409, description = "`request_expired`, `already_bound`.", body = ErrorBody),
    ))]
async fn approve(
    state: web::Data<AppState>,
    who: Authed,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    decide(&state, &who.0, path.into_inner(), Decision::Approved).await
}

#[utoipa::path(post, path = "/v1/groups/{gid}/binding-requests/{rid}/reject", tag = "groups", operation_id = "reject_binding",
    params(("gid" = String, Path, description = "A group id."), ("rid" = String, Path, description = "A binding request id.")),
    responses(
        (status = 200, description = "Rejected; the owner's devices get `binding.rejected`.", body = Decided),
        (status = 403, description = "`forbidden`: not the owner.", body = ErrorBody),
        (status = 409, description = "`request_expired`.", body = ErrorBody),
    ))]
async fn reject(
    state: web::Data<AppState>,
    who: Authed,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    decide(&state, &who.0, path.into_inner(), Decision::Rejected).await
}

/// The owner's answer to binding request `rid` of group `gid`.
async fn decide(
    state: &AppState,
    who: &str,
    (gid, rid): (String, String),
    decision: Decision,
) -> Result<HttpResponse> {
    check_id("group", &gid)?;
    check_id("binding request", &rid)?;
    match decision {
        Decision::Approved => state.chorus.approve_binding(who, &gid, &rid).await?,
        Decision::Rejected => state.chorus.reject_binding(who, &gid, &rid).await?,
    }
    Ok(HttpResponse::Ok().json(Decided {
        group_id: gid,
        request_id: rid,
        status: decision,
    }))
}

#[utoipa::path(delete, path = "/v1/groups/{gid}/bindings/{cid}", tag = "groups", operation_id = "revoke_binding",
    params(("gid" = String, Path, description = "A group id."), ("cid" = String, Path, description = "A bound community's id.")),
    security(("client" = []), ("community_server" = [])),
    responses(
        (status = 204, description = "Unbound; members get `binding.revoked`."),
        (status = 403, description = "`forbidden`: a member's token, or another community's key.", body = ErrorBody),
        (status = 404, description = "`not_found`: an unknown group, or not bound.", body = ErrorBody),
    ))]
async fn revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let by = owner_or_community(&state, &req).await?;
    let (gid, cid) = path.into_inner();
    check_id("group", &gid)?;
    check_id("binding", &cid)?;
    state.chorus.revoke_binding(&gid, &cid, by).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/v1/groups/{gid}/dynamics", tag = "groups", operation_id = "group_dynamics",
    params(("gid" = String, Path, description = "A group id."), ListQuery),
    responses(
        (status = 200, description = "The bound communities' dynamics merged, newest first (members only).", body = Page<DynamicRecord>),
        (status = 403, description = "`forbidden`: not a member.", body = ErrorBody),
    ))]
async fn dynamics(
    state: web::Data<AppState>,
    who: Authed,
    gid: web::Path<String>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse> {
    check_id("group", &gid)?;
    let page = state
        .chorus
        .list_group_dynamics(&who.0, &gid, &q.page()?)
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

#[utoipa::path(get, path = "/v1/groups/{gid}/presence", tag = "groups", operation_id = "group_presence",
    params(("gid" = String, Path, description = "A group id."), ListQuery),
    responses(
        (status = 200, description = "The members with a device connected (on any node), with how many, by account id (members only).", body = Page<OnlineMember>),
        (status = 403, description = "`forbidden`: not a member.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such group.", body = ErrorBody),
    ))]
async fn presence(
    state: web::Data<AppState>,
    who: Authed,
    gid: web::Path<String>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse> {
    check_id("group", &gid)?;
    let page = state
        .chorus
        .group_presence(&who.0, &gid, &q.page()?)
        .await?;
    Ok(HttpResponse::Ok().json(page))
}
