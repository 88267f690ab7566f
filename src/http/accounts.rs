//! Accounts and personal info: `POST /v1/accounts`, `POST /v1/sessions`, `GET /v1/me`,
//! `PATCH /v1/me/profile`, `GET /v1/accounts/{id}`.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use chorus_actors::faults::{self, Point};
use chorus_actors::model::limits::{check_id, check_login, normalize_patch, normalize_profile};
use chorus_actors::model::{AccountRecord, Profile, new_id, now_ms};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{AppState, Authed, Body, ClientIp};
use crate::auth::{Passwords, new_token};
use crate::error::{Error, Result};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/accounts", web::post().to(create))
        .route("/accounts/{id}", web::get().to(get_account))
        .route("/sessions", web::post().to(login))
        .route("/me", web::get().to(me))
        .route("/me/profile", web::patch().to(patch_profile));
}

#[derive(Deserialize)]
pub struct NewAccount {
    password: String,
    profile: Map<String, Value>,
}

/// Profile fields must be strings; anything else is `invalid_input` naming the field.
fn string_fields(map: Map<String, Value>) -> Result<Profile> {
    map.into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k, s)),
            _ => Err(Error::invalid(format!(
                "profile field {k:?} must be a string"
            ))),
        })
        .collect()
}

/// `POST /v1/accounts`: counted against the client address first (429), then checked, then
/// hashed (503 when every hash slot is taken); nothing is stored before all three pass.
async fn create(
    state: web::Data<AppState>,
    client: ClientIp,
    body: Body<NewAccount>,
) -> Result<HttpResponse> {
    state.limits.account_creation(client.0).await?;
    let NewAccount { password, profile } = body.into_inner();
    if !profile.contains_key("display_name") {
        return Err(Error::BadJson(
            "missing field `profile.display_name`".into(),
        ));
    }
    Passwords::check_policy(&password)?;
    let mut profile = string_fields(profile)?;
    normalize_profile(&mut profile)?;
    let password_hash = state.passwords.hash(password).await?;
    let account_id = new_id();
    let (token, hash) = new_token();
    let record = AccountRecord {
        account_id: account_id.clone(),
        password_hash,
        profile,
        profile_version: 1,
        created_ms: now_ms(),
        proofs: Default::default(),
    };
    state.chorus.create_account(record, hash).await?;
    tracing::info!(account = %account_id, "account created");
    Ok(HttpResponse::Created().json(json!({"account_id": account_id, "token": token})))
}

#[derive(Deserialize)]
pub struct Login {
    login: String,
    password: String,
}

/// A PHC string to verify against when the login names no account, so that a miss costs
/// as much time as a wrong password and does not reveal which logins exist.
const DUMMY_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$7ZlbXmQnDBtCSr1sdpJ7+JkwlQ9UBGcEJMGcQrhfFq0";

/// `POST /v1/sessions`: counted against the client address and the normalised login (429),
/// then checked (503 when every hash slot is taken).
async fn login(
    state: web::Data<AppState>,
    client: ClientIp,
    body: Body<Login>,
) -> Result<HttpResponse> {
    let Login { login, password } = body.into_inner();
    check_login(&login)?;
    let address = client.0;
    state.limits.login(&login, address).await?;
    let record = state.chorus.find_login(&login).await?;
    let phc = record
        .as_ref()
        .map_or_else(|| DUMMY_PHC.to_owned(), |r| r.password_hash.clone());
    let ok = state.passwords.verify(password, phc).await?;
    let Some(record) = record.filter(|_| ok) else {
        tracing::info!(?address, "failed login");
        return Err(Error::InvalidCredentials);
    };
    let (token, hash) = new_token();
    state.chorus.add_token(&record.account_id, hash).await?;
    Ok(HttpResponse::Ok().json(json!({"account_id": record.account_id, "token": token})))
}

async fn me(state: web::Data<AppState>, who: Authed) -> Result<HttpResponse> {
    faults::panic_at(Point::HANDLER_PANIC);
    let me = state.chorus.me(&who.0).await?;
    Ok(HttpResponse::Ok().json(me))
}

async fn patch_profile(
    state: web::Data<AppState>,
    who: Authed,
    body: Body<Map<String, Value>>,
) -> Result<HttpResponse> {
    let mut changes = BTreeMap::new();
    for (name, value) in body.into_inner() {
        let value = match value {
            Value::String(s) => Some(s),
            Value::Null => None,
            _ => {
                return Err(Error::invalid(format!(
                    "profile field {name:?} must be a string or null"
                )));
            }
        };
        changes.insert(name, value);
    }
    normalize_patch(&mut changes)?;
    let version = state.chorus.update_profile(&who.0, changes).await?;
    Ok(HttpResponse::Ok().json(json!({"profile_version": version})))
}

async fn get_account(
    state: web::Data<AppState>,
    who: Authed,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    check_id("account", &id)?;
    let view = state.chorus.account(&who.0, &id).await?;
    Ok(HttpResponse::Ok().json(view))
}
