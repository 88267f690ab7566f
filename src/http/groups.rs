//! IM groups: creation, members, chat, binding requests (the owner's side), bindings and
//! the merged dynamics feed.

use actix_web::{HttpRequest, HttpResponse, web};
use chorus_actors::groups_model::{MAX_NAME, MAX_TEXT};
use chorus_actors::messages::{
    GetGroup, ListBindingRequests, PostMessage, ReadGroupEvents, RemoveMember, Revoker,
};
use serde::Deserialize;
use serde_json::json;

use super::{AppState, Authed, Body, ListQuery};
use crate::auth::{bearer, token_hash};
use crate::error::{Error, Result};

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

/// A trimmed name of 1 to [`MAX_NAME`] characters.
pub fn check_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(Error::invalid(format!(
            "name must have 1 to {MAX_NAME} characters"
        )));
    }
    Ok(name.to_owned())
}

/// A text of 1 to [`MAX_TEXT`] characters (not only white space).
pub fn check_text(text: &str) -> Result<()> {
    if text.trim().is_empty() || text.chars().count() > MAX_TEXT {
        return Err(Error::invalid(format!(
            "text must have 1 to {MAX_TEXT} characters"
        )));
    }
    Ok(())
}

#[derive(Deserialize)]
struct NewGroup {
    name: String,
}

async fn create(
    state: web::Data<AppState>,
    who: Authed,
    body: Body<NewGroup>,
) -> Result<HttpResponse> {
    let name = check_name(&body.name)?;
    let group_id = state.registry.create_group(&who.0, name).await?;
    tracing::info!(group = %group_id, owner = %who.0, "group created");
    Ok(HttpResponse::Created().json(json!({"group_id": group_id})))
}

async fn get(
    state: web::Data<AppState>,
    who: Authed,
    gid: web::Path<String>,
) -> Result<HttpResponse> {
    let view = state
        .registry
        .ask_group(&gid, GetGroup { viewer: who.0 })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Deserialize)]
struct NewMember {
    account_id: String,
}

async fn add_member(
    state: web::Data<AppState>,
    who: Authed,
    gid: web::Path<String>,
    body: Body<NewMember>,
) -> Result<HttpResponse> {
    state
        .registry
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
    state
        .registry
        .ask_group(&gid, RemoveMember { by: who.0, account })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
struct NewMessage {
    text: String,
}

async fn post_message(
    state: web::Data<AppState>,
    who: Authed,
    gid: web::Path<String>,
    body: Body<NewMessage>,
) -> Result<HttpResponse> {
    let NewMessage { text } = body.into_inner();
    check_text(&text)?;
    let message = state
        .registry
        .ask_group(&gid, PostMessage { by: who.0, text })
        .await?;
    Ok(HttpResponse::Created().json(json!({"message_id": message.message_id})))
}

async fn list_messages(
    state: web::Data<AppState>,
    who: Authed,
    gid: web::Path<String>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse> {
    let page = state
        .registry
        .list_messages(&who.0, &gid, q.limit()?, q.before())
        .await?;
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
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Error::invalid("limit must be a number from 1 to 1000"));
    }
    let events = state
        .registry
        .ask_group(
            &gid,
            ReadGroupEvents {
                viewer: who.0,
                after: q.after.unwrap_or(0),
                limit,
            },
        )
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
) -> Result<HttpResponse> {
    let items = state
        .registry
        .ask_group(&gid, ListBindingRequests { by: who.0 })
        .await?;
    Ok(HttpResponse::Ok().json(json!({"items": items, "next": null})))
}

async fn approve(
    state: web::Data<AppState>,
    who: Authed,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let (gid, rid) = path.into_inner();
    state.registry.approve_binding(&who.0, &gid, &rid).await?;
    Ok(HttpResponse::Ok().json(json!({"group_id": gid, "request_id": rid, "status": "approved"})))
}

async fn reject(
    state: web::Data<AppState>,
    who: Authed,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let (gid, rid) = path.into_inner();
    state.registry.reject_binding(&who.0, &gid, &rid).await?;
    Ok(HttpResponse::Ok().json(json!({"group_id": gid, "request_id": rid, "status": "rejected"})))
}

/// The owner's client token, or a community's server key.
async fn revoker(state: &AppState, req: &HttpRequest) -> Result<Revoker> {
    let token = bearer(req, false).ok_or(Error::Unauthorized)?;
    match state.authenticate(&token).await {
        Ok(account) => Ok(Revoker::Owner(account)),
        Err(Error::Unauthorized) => state
            .store
            .find_server_key(&token_hash(&token))
            .await
            .map_err(|e| Error::Domain(e.into()))?
            .map(Revoker::Community)
            .ok_or(Error::Unauthorized),
        Err(e) => Err(e),
    }
}

async fn revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let by = revoker(&state, &req).await?;
    let (gid, cid) = path.into_inner();
    state.registry.revoke_binding(&gid, &cid, by).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn dynamics(
    state: web::Data<AppState>,
    who: Authed,
    gid: web::Path<String>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse> {
    let page = state
        .registry
        .list_group_dynamics(&who.0, &gid, q.limit()?, q.before())
        .await?;
    Ok(HttpResponse::Ok().json(page))
}
