//! IM groups: creation, members, chat, binding requests (the owner's side), bindings and
//! the merged dynamics feed.

use actix_web::{HttpRequest, HttpResponse, web};
use chorus_actors::model::limits::{check_id, check_name, check_text, events_limit};
use serde::Deserialize;
use serde_json::json;

use super::auth::owner_or_community;
use super::{AppState, Authed, Body, ListQuery};
use crate::error::Result;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/groups", web::post().to(create))
        .route("/groups/{gid}", web::get().to(get))
        .route("/groups/{gid}/members", web::post().to(add_member))
        .route(
            "/groups/{gid}/members/{id}",
            web::delete().to(remove_member),
        )
        .route("/groups/{gid}/messages", web::post().to(post_message))
        .route("/groups/{gid}/messages", web::get().to(list_messages))
        .route("/groups/{gid}/events", web::get().to(events))
        .route(
            "/groups/{gid}/binding-requests",
            web::get().to(list_requests),
        )
        .route(
            "/groups/{gid}/binding-requests/{rid}/approve",
            web::post().to(approve),
        )
        .route(
            "/groups/{gid}/binding-requests/{rid}/reject",
            web::post().to(reject),
        )
        .route("/groups/{gid}/bindings/{cid}", web::delete().to(revoke))
        .route("/groups/{gid}/dynamics", web::get().to(dynamics));
}

#[derive(Deserialize)]
pub struct NewGroup {
    name: String,
}

async fn create(
    state: web::Data<AppState>,
    who: Authed,
    body: Body<NewGroup>,
) -> Result<HttpResponse> {
    let name = check_name(&body.name)?;
    let group_id = state.chorus.create_group(&who.0, name).await?;
    tracing::info!(group = %group_id, owner = %who.0, "group created");
    Ok(HttpResponse::Created().json(json!({"group_id": group_id})))
}

async fn get(
    state: web::Data<AppState>,
    who: Authed,
    gid: web::Path<String>,
) -> Result<HttpResponse> {
    check_id("group", &gid)?;
    let view = state.chorus.group(&who.0, &gid).await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Deserialize)]
pub struct NewMember {
    account_id: String,
}

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

#[derive(Deserialize)]
pub struct NewMessage {
    text: String,
}

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
    Ok(HttpResponse::Created().json(json!({"message_id": message.message_id})))
}

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

#[derive(Deserialize)]
struct EventsQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

/// Extension: the group's stored events after `after`, oldest first, exactly as they were
/// pushed (for a device that was offline).
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

async fn approve(
    state: web::Data<AppState>,
    who: Authed,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let (gid, rid) = path.into_inner();
    check_id("group", &gid)?;
    check_id("binding request", &rid)?;
    state.chorus.approve_binding(&who.0, &gid, &rid).await?;
    Ok(HttpResponse::Ok().json(json!({"group_id": gid, "request_id": rid, "status": "approved"})))
}

async fn reject(
    state: web::Data<AppState>,
    who: Authed,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let (gid, rid) = path.into_inner();
    check_id("group", &gid)?;
    check_id("binding request", &rid)?;
    state.chorus.reject_binding(&who.0, &gid, &rid).await?;
    Ok(HttpResponse::Ok().json(json!({"group_id": gid, "request_id": rid, "status": "rejected"})))
}

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
