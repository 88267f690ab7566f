//! Accounts and personal info: `POST /v1/accounts`, `POST /v1/sessions`, `GET /v1/me`,
//! `PATCH /v1/me/profile`, `GET /v1/accounts/{id}`.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use chorus_actors::faults::{self, Point};
use chorus_actors::model::limits::{check_id, check_login, normalize_patch, normalize_profile};
use chorus_actors::model::{AccountRecord, AccountView, MeView, Profile, new_id, now_ms};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};

use super::{AppState, Authed, Body, ClientIp, Router};
use crate::auth::{Passwords, new_token};
use crate::error::{Error, ErrorBody, Result};

pub fn routes(r: &mut Router) {
    r.post("/accounts", create)
        .get("/accounts/{id}", get_account)
        .post("/sessions", login)
        .get("/me", me)
        .patch("/me/profile", patch_profile);
}

#[derive(Deserialize, ToSchema)]
pub struct NewAccount {
    /// 8 to 1024 characters.
    #[schema(min_length = 8, max_length = 1024)]
    password: String,
    #[schema(value_type = NewProfile)]
    profile: Map<String, Value>,
}

/// The rules every profile field keeps (docs/api.md, "Accounts"): at most 32 fields, names
/// `[a-z0-9_]{1,64}`, values up to 1024 characters.
fn profile_object(value: ObjectBuilder) -> ObjectBuilder {
    ObjectBuilder::new()
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[a-z0-9_]{1,64}$")),
        ))
        .additional_properties(Some(value.max_length(Some(1024))))
        .max_properties(Some(32))
}

/// The schema of the profile a new account sends: string fields, `display_name` required.
/// Written by hand, as [`ProfilePatch`]: a map with rules on its keys is not a Rust type.
pub struct NewProfile;

impl utoipa::PartialSchema for NewProfile {
    fn schema() -> RefOr<Schema> {
        let text = || ObjectBuilder::new().schema_type(Type::String);
        profile_object(text())
            .description(Some(
                "Personal info: string fields. `email` is lower-cased and `phone` must be \
                 E.164 (once spaces, dashes, dots and parentheses are removed); both are \
                 logins, unique across accounts.",
            ))
            .property(
                "display_name",
                text().min_length(Some(1)).max_length(Some(1024)),
            )
            .required("display_name")
            .into()
    }
}

impl ToSchema for NewProfile {}

/// `PATCH /v1/me/profile`'s body: fields to set, `null` clears one.
pub struct ProfilePatch;

impl utoipa::PartialSchema for ProfilePatch {
    fn schema() -> RefOr<Schema> {
        profile_object(
            ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::String, Type::Null])),
        )
        .description(Some(
            "Fields to set (strings) or clear (`null`); `display_name` cannot be cleared.",
        ))
        .min_properties(Some(1))
        .into()
    }
}

impl ToSchema for ProfilePatch {}

/// An account and a new client token (shown once): `POST /v1/accounts`, `POST /v1/sessions`.
#[derive(Serialize, ToSchema)]
pub struct TokenAnswer {
    account_id: String,
    token: String,
}

/// `PATCH /v1/me/profile`: the profile's version after the patch.
#[derive(Serialize, ToSchema)]
pub struct ProfileVersion {
    profile_version: u64,
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
#[utoipa::path(post, path = "/v1/accounts", tag = "accounts", operation_id = "create_account",
    security(()), request_body = NewAccount,
    responses(
        (status = 201, description = "The account and its first client token.", body = TokenAnswer),
        (status = 400, description = "`bad_json` without `password`, `profile` or `profile.display_name`; `invalid_input` for a non-string field or a broken rule.", body = ErrorBody),
        (status = 409, description = "`email_taken`, `phone_taken`.", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many account creations from this address; `Retry-After`.", body = ErrorBody),
    ))]
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
    Ok(HttpResponse::Created().json(TokenAnswer { account_id, token }))
}

#[derive(Deserialize, ToSchema)]
pub struct Login {
    /// An email, a phone (starting with `+`) or an account id; up to 256 characters.
    #[schema(max_length = 256)]
    login: String,
    password: String,
}

/// A PHC string to verify against when the login names no account, so that a miss costs
/// as much time as a wrong password and does not reveal which logins exist.
const DUMMY_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$7ZlbXmQnDBtCSr1sdpJ7+JkwlQ9UBGcEJMGcQrhfFq0";

/// `POST /v1/sessions`: counted against the client address and the normalised login (429),
/// then checked (503 when every hash slot is taken).
#[utoipa::path(post, path = "/v1/sessions", tag = "accounts", operation_id = "login",
    security(()), request_body = Login,
    responses(
        (status = 200, description = "A new client token.", body = TokenAnswer),
        (status = 400, description = "`bad_json`; `invalid_input` for a `login` over 256 characters.", body = ErrorBody),
        (status = 401, description = "`invalid_credentials`: no such login, or a wrong password.", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many attempts for this login or from this address; `Retry-After`.", body = ErrorBody),
    ))]
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
    Ok(HttpResponse::Ok().json(TokenAnswer {
        account_id: record.account_id,
        token,
    }))
}

#[utoipa::path(get, path = "/v1/me", tag = "accounts", operation_id = "me",
    responses((status = 200, description = "The account's own full view.", body = MeView)))]
async fn me(state: web::Data<AppState>, who: Authed) -> Result<HttpResponse> {
    faults::panic_at(Point::HANDLER_PANIC);
    let me = state.chorus.me(&who.0).await?;
    Ok(HttpResponse::Ok().json(me))
}

#[utoipa::path(patch, path = "/v1/me/profile", tag = "accounts", operation_id = "patch_profile",
    request_body = ProfilePatch,
    responses(
        (status = 200, description = "The profile's version (unchanged if nothing changed).", body = ProfileVersion),
        (status = 400, description = "`bad_json`; `invalid_input` for an empty object, a non-string non-null value, clearing `display_name`, or a broken rule.", body = ErrorBody),
        (status = 409, description = "`email_taken`, `phone_taken`.", body = ErrorBody),
    ))]
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
    Ok(HttpResponse::Ok().json(ProfileVersion {
        profile_version: version,
    }))
}

#[utoipa::path(get, path = "/v1/accounts/{id}", tag = "accounts", operation_id = "get_account",
    params(("id" = String, Path, description = "An account id.")),
    responses((status = 200, description = "The account as the caller sees it (`email`, `phone` only to itself and friends).", body = AccountView)))]
async fn get_account(
    state: web::Data<AppState>,
    who: Authed,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    check_id("account", &id)?;
    let view = state.chorus.account(&who.0, &id).await?;
    Ok(HttpResponse::Ok().json(view))
}
