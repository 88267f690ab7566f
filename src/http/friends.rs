//! Friends: requests, accept, removal, lists, and contact matching.

use actix_web::{HttpResponse, web};
use chorus_actors::model::limits::{check_contacts, check_id, contact_claim};
use chorus_actors::model::{AccountView, Page, Relation, RequestStatus};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AppState, Authed, Body, ClientIp, ListQuery, Router};
use crate::error::{ErrorBody, Result};

pub fn routes(r: &mut Router) {
    r.get("/friends", list_friends)
        .post("/friends/requests", request)
        .get("/friends/requests", list_requests)
        .post("/friends/requests/{from}/accept", accept)
        .delete("/friends/requests/{from}", decline)
        .get("/friends/suggestions", list_suggestions)
        .delete("/friends/{id}", remove)
        .post("/me/contacts", contacts);
}

#[derive(Deserialize, ToSchema)]
pub struct NewRequest {
    /// The account asked.
    to: String,
}

/// `POST /v1/friends/requests`: `pending`, or `friends` when it accepted the other's request.
#[derive(Serialize, ToSchema)]
pub struct RequestAnswer {
    status: RequestStatus,
}

/// The account whose request was accepted.
#[derive(Serialize, ToSchema)]
pub struct Accepted {
    account_id: String,
}

/// `POST /v1/me/contacts`: every other account the upload matched.
#[derive(Serialize, ToSchema)]
pub struct Matched {
    matched: Vec<String>,
}

#[utoipa::path(post, path = "/v1/friends/requests", tag = "friends", operation_id = "request_friend",
    request_body = NewRequest,
    responses(
        (status = 201, description = "Asked, or friends at once if the other had asked.", body = RequestAnswer),
        (status = 400, description = "`bad_json`; `invalid_input` for yourself.", body = ErrorBody),
        (status = 404, description = "`not_found`: an unknown account.", body = ErrorBody),
        (status = 409, description = "`already_friends`, `already_requested`, `limit_reached`.", body = ErrorBody),
    ))]
async fn request(
    state: web::Data<AppState>,
    who: Authed,
    body: Body<NewRequest>,
) -> Result<HttpResponse> {
    check_id("account", &body.to)?;
    let status = state.chorus.request_friend(&who.0, &body.to).await?;
    Ok(HttpResponse::Created().json(RequestAnswer { status }))
}

#[utoipa::path(post, path = "/v1/friends/requests/{from}/accept", tag = "friends", operation_id = "accept_friend",
    params(("from" = String, Path, description = "The requester's account id.")),
    responses((status = 200, description = "Friends (again: 200 too).", body = Accepted)))]
async fn accept(
    state: web::Data<AppState>,
    who: Authed,
    from: web::Path<String>,
) -> Result<HttpResponse> {
    check_id("friend request", &from)?;
    state.chorus.accept_friend(&who.0, &from).await?;
    Ok(HttpResponse::Ok().json(Accepted {
        account_id: from.into_inner(),
    }))
}

/// Declines a pending request (204; 404 without one); the requester is not told.
#[utoipa::path(delete, path = "/v1/friends/requests/{from}", tag = "friends", operation_id = "decline_friend",
    params(("from" = String, Path, description = "The requester's account id.")),
    responses((status = 204, description = "Declined; the requester is not told.")))]
async fn decline(
    state: web::Data<AppState>,
    who: Authed,
    from: web::Path<String>,
) -> Result<HttpResponse> {
    check_id("friend request", &from)?;
    state.chorus.decline_friend(&who.0, &from).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(delete, path = "/v1/friends/{id}", tag = "friends", operation_id = "remove_friend",
    params(("id" = String, Path, description = "A friend's account id.")),
    responses((status = 204, description = "No longer friends.")))]
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

#[utoipa::path(get, path = "/v1/friends", tag = "friends", operation_id = "list_friends",
    params(ListQuery),
    responses(
        (status = 200, description = "Friends, newest friendship first (profiles with `email`, `phone`).", body = Page<AccountView>),
    ))]
async fn list_friends(
    state: web::Data<AppState>,
    who: Authed,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse> {
    list(&state, &who.0, Relation::Friends, &q).await
}

#[utoipa::path(get, path = "/v1/friends/requests", tag = "friends", operation_id = "list_friend_requests",
    params(ListQuery),
    responses(
        (status = 200, description = "Incoming pending requests.", body = Page<AccountView>),
    ))]
async fn list_requests(
    state: web::Data<AppState>,
    who: Authed,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse> {
    list(&state, &who.0, Relation::IncomingRequests, &q).await
}

#[utoipa::path(get, path = "/v1/friends/suggestions", tag = "friends", operation_id = "list_suggestions",
    params(ListQuery),
    responses(
        (status = 200, description = "Accounts the caller's contacts matched, not friends yet.", body = Page<AccountView>),
    ))]
async fn list_suggestions(
    state: web::Data<AppState>,
    who: Authed,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse> {
    list(&state, &who.0, Relation::Suggestions, &q).await
}

#[derive(Deserialize, ToSchema)]
pub struct Contact {
    /// `email`, `phone` or `platform`.
    #[schema(example = "email")]
    kind: String,
    /// An email or phone (up to 256 characters), or a handle (up to 128).
    #[schema(max_length = 256)]
    value: String,
    /// The platform of a `platform` contact.
    platform: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct Contacts {
    #[schema(max_items = 1000)]
    contacts: Vec<Contact>,
}

/// Counted against the client address first (429 `rate_limited`; nothing matched or stored).
#[utoipa::path(post, path = "/v1/me/contacts", tag = "friends", operation_id = "upload_contacts",
    request_body = Contacts,
    responses(
        (status = 200, description = "The accounts matched.", body = Matched),
        (status = 400, description = "`bad_json`; `invalid_input` for an unknown `kind`, a platform contact without `platform`, a value over its limit, more than 1000 contacts.", body = ErrorBody),
        (status = 409, description = "`limit_reached`: past `--max-contact-matches`.", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many uploads from this address; `Retry-After`.", body = ErrorBody),
    ))]
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
    Ok(HttpResponse::Ok().json(Matched { matched }))
}
