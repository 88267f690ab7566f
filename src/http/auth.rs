//! Who is calling, read in one place. A request authenticates one of three ways:
//! - [`Authed`]: a client's bearer token (the extractor of every client route); WebSocket
//!   clients may send it as `?token=` ([`ws_account`]).
//! - [`community_server`]: the server key of the community `{cid}` in the path (401 for no or
//!   an unknown key, 403 for another community's key).
//! - [`owner_or_community`]: either of the two (ending a binding).
//!
//! The community checks run in the handler body, after the path and body extractors, so a
//! malformed request is answered as such before its key is looked at.

use std::pin::Pin;

use actix_web::dev::{Payload, RequestHead};
use actix_web::{FromRequest, HttpRequest, web};
use chorus_actors::model::{CommunityId, Revoker};

use super::AppState;
use crate::auth::token_hash;
use crate::error::{Error, Result};

/// Longest credential looked up; anything longer is not one this server issued.
const MAX_CREDENTIAL: usize = 256;

/// The bearer credential of a request: `Authorization: Bearer` or, where `allow_query` (the
/// WebSocket handshake, whose clients cannot always set headers), `?token=`.
pub(crate) fn bearer(req: &HttpRequest, allow_query: bool) -> Option<String> {
    bearer_of(req.head(), allow_query)
}

fn bearer_of(req: &RequestHead, allow_query: bool) -> Option<String> {
    if let Some(value) = req.headers.get("authorization") {
        let text = value.to_str().ok()?;
        let (scheme, token) = text.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned());
    }
    if allow_query {
        return req
            .uri
            .query()
            .unwrap_or_default()
            .split('&')
            .find_map(|pair| pair.strip_prefix("token=").map(|t| t.to_owned()));
    }
    None
}

/// The SHA-256 of a credential of a plausible size; `Unauthorized` otherwise.
fn credential_hash(credential: &str) -> Result<[u8; 32]> {
    if credential.is_empty() || credential.len() > MAX_CREDENTIAL {
        return Err(Error::Unauthorized);
    }
    Ok(token_hash(credential))
}

/// The account a client token belongs to.
async fn account_of(state: &AppState, token: &str) -> Result<String> {
    let hash = credential_hash(token)?;
    state
        .chorus
        .account_of_token(&hash)
        .await?
        .ok_or(Error::Unauthorized)
}

/// The community a server key belongs to, if any.
async fn community_of(state: &AppState, key: &str) -> Result<Option<CommunityId>> {
    let hash = credential_hash(key)?;
    Ok(state.chorus.community_of_key(&hash).await?)
}

/// The account of a request's client token and the token's hash (logout needs both).
pub async fn bearer_account(state: &AppState, req: &HttpRequest) -> Result<(String, [u8; 32])> {
    let token = bearer(req, false).ok_or(Error::Unauthorized)?;
    let account = account_of(state, &token).await?;
    Ok((account, credential_hash(&token)?))
}

/// Whether the client token `hash` still authenticates `account` (a WebSocket's token,
/// checked again while it stays open): false once it expired or was revoked.
pub async fn token_still_valid(state: &AppState, account: &str, hash: &[u8; 32]) -> Result<bool> {
    Ok(state.chorus.account_of_token(hash).await?.as_deref() == Some(account))
}

/// The authenticated caller of a client route (401 `unauthorized` otherwise).
pub struct Authed(pub String);

impl FromRequest for Authed {
    type Error = Error;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<Self>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer(req, false);
        Box::pin(async move {
            let (Some(state), Some(token)) = (state, token) else {
                return Err(Error::Unauthorized);
            };
            account_of(&state, &token).await.map(Authed)
        })
    }
}

/// The account of a WebSocket handshake (its token from the header or `?token=`) and the
/// token's hash, which the session checks again while it stays open.
pub async fn ws_account(state: &AppState, req: &RequestHead) -> Result<(String, [u8; 32])> {
    let token = bearer_of(req, true).ok_or(Error::Unauthorized)?;
    let account = account_of(state, &token).await?;
    Ok((account, credential_hash(&token)?))
}

/// Checks the request carries the server key of community `cid`: 401 for no or an unknown
/// key, 403 for the key of another community.
pub async fn community_server(state: &AppState, req: &HttpRequest, cid: &str) -> Result<()> {
    let key = bearer(req, false).ok_or(Error::Unauthorized)?;
    match community_of(state, &key).await? {
        Some(owner) if owner == cid => Ok(()),
        Some(_) => Err(Error::Domain(chorus_actors::Error::Forbidden(
            "this server key belongs to another community".into(),
        ))),
        None => Err(Error::Unauthorized),
    }
}

/// Who ends a binding: the group owner's client token, or a community's server key.
pub async fn owner_or_community(state: &AppState, req: &HttpRequest) -> Result<Revoker> {
    let token = bearer(req, false).ok_or(Error::Unauthorized)?;
    match account_of(state, &token).await {
        Ok(account) => Ok(Revoker::Owner(account)),
        Err(Error::Unauthorized) => community_of(state, &token)
            .await?
            .map(Revoker::Community)
            .ok_or(Error::Unauthorized),
        Err(e) => Err(e),
    }
}
