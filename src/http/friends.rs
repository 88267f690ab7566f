//! Friends: requests, accept, removal, lists, and contact matching.

use actix_web::{HttpResponse, web};
use chorus_actors::model::limits::{check_contacts, check_id, contact_claim};
use chorus_actors::model::{Relation, RequestStatus};
use serde::Deserialize;
use serde_json::json;

use super::{AppState, Authed, Body, ClientIp, ListQuery};
use crate::error::Result;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/friends", web::get().to(list_friends))
        .route("/friends/requests", web::post().to(request))
        .route("/friends/requests", web::get().to(list_requests))
        .route("/friends/requests/{from}/accept", web::post().to(accept))
        .route("/friends/requests/{from}", web::delete().to(decline))
        .route("/friends/suggestions", web::get().to(list_suggestions))
        .route("/friends/{id}", web::delete().to(remove))
        .route("/me/contacts", web::post().to(contacts));
}

#[derive(Deserialize)]
pub struct NewRequest {
    to: String,
}

async fn request(
    state: web::Data<AppState>,
    who: Authed,
    body: Body<NewRequest>,
) -> Result<HttpResponse> {
    check_id("account", &body.to)?;
    let status = state.chorus.request_friend(&who.0, &body.to).await?;
    let status = match status {
        RequestStatus::Pending => "pending",
        RequestStatus::Friends => "friends",
    };
    Ok(HttpResponse::Created().json(json!({"status": status})))
}

async fn accept(
    state: web::Data<AppState>,
    who: Authed,
    from: web::Path<String>,
) -> Result<HttpResponse> {
    check_id("friend request", &from)?;
    state.chorus.accept_friend(&who.0, &from).await?;
    Ok(HttpResponse::Ok().json(json!({"account_id": from.into_inner()})))
}

/// Declines a pending request (204; 404 without one); the requester is not told.
async fn decline(
    state: web::Data<AppState>,
    who: Authed,
    from: web::Path<String>,
) -> Result<HttpResponse> {
    check_id("friend request", &from)?;
    state.chorus.decline_friend(&who.0, &from).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn remove(
    state: web::Data<AppState>,
    who: Authed,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    check_id("friend", &id)?;
    state.chorus.remove_friend(&who.0, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn list(
    state: &AppState,
    who: &str,
    relation: Relation,
    q: &ListQuery,
) -> Result<HttpResponse> {
    let page = state.chorus.list_related(who, relation, &q.page()?).await?;
    Ok(HttpResponse::Ok().json(page))
}

async fn list_friends(
    state: web::Data<AppState>,
    who: Authed,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse> {
    list(&state, &who.0, Relation::Friends, &q).await
}

async fn list_requests(
    state: web::Data<AppState>,
    who: Authed,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse> {
    list(&state, &who.0, Relation::IncomingRequests, &q).await
}

async fn list_suggestions(
    state: web::Data<AppState>,
    who: Authed,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse> {
    list(&state, &who.0, Relation::Suggestions, &q).await
}

#[derive(Deserialize)]
struct Contact {
    kind: String,
    value: String,
    platform: Option<String>,
}

#[derive(Deserialize)]
pub struct Contacts {
    contacts: Vec<Contact>,
}

/// Counted against the client address first (429 `rate_limited`; nothing matched or stored).
async fn contacts(
    state: web::Data<AppState>,
    who: Authed,
    client: ClientIp,
    body: Body<Contacts>,
) -> Result<HttpResponse> {
    state.limits.contact_upload(client.0).await?;
    check_contacts(body.contacts.len())?;
    let platforms = state.connectors.platforms();
    let mut claims = Vec::with_capacity(body.contacts.len());
    for c in &body.contacts {
        if let Some(claim) = contact_claim(&c.kind, &c.value, c.platform.as_deref(), &platforms)? {
            claims.push(claim);
        }
    }
    let matched = state.chorus.match_contacts(&who.0, claims).await?;
    Ok(HttpResponse::Ok().json(json!({"matched": matched})))
}
