//! HTTP routes of the contract. Handlers validate at the edge, call the domain (registry and
//! flows), and turn every failure into the contract's error shape via [`crate::error::Error`].

pub mod accounts;
pub mod activities;
pub mod communities;
pub mod friends;
pub mod groups;
pub mod platforms;

use std::pin::Pin;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use chorus_actors::Registry;
use chorus_actors::flows::MAX_PAGE;
use chorus_actors::store::Store;
use serde::Deserialize;
use tokio::sync::watch;

use crate::auth::{LoginLimits, Passwords, bearer, token_hash};
use crate::config::Config;
use crate::connectors::Connectors;
use crate::error::{Error, Result};

/// Everything handlers share; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub registry: Registry,
    pub store: Arc<dyn Store>,
    pub passwords: Passwords,
    pub login_limits: LoginLimits,
    /// Turns true when the server shuts down; WebSocket sessions close with 1001.
    pub shutdown: watch::Receiver<bool>,
    /// The platforms this server delivers to; links are validated against them.
    pub connectors: Arc<Connectors>,
}

impl AppState {
    /// The account a bearer token belongs to.
    pub async fn authenticate(&self, token: &str) -> Result<String> {
        if token.is_empty() || token.len() > 256 {
            return Err(Error::Unauthorized);
        }
        self.store
            .find_token(&token_hash(token))
            .await
            .map_err(|e| Error::Domain(e.into()))?
            .ok_or(Error::Unauthorized)
    }
}

/// The authenticated caller of a `/v1` route (401 `unauthorized` otherwise).
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
            state.authenticate(&token).await.map(Authed)
        })
    }
}

/// `?limit=N&before=CURSOR` of every list. `limit` is read as text so a bad value answers
/// `invalid_input` rather than a generic parse failure.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    limit: Option<String>,
    before: Option<String>,
}

impl ListQuery {
    /// The page size (default 50, 1..=200).
    pub fn limit(&self) -> Result<usize> {
        match &self.limit {
            None => Ok(50),
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
                _ => Err(Error::invalid(format!(
                    "limit must be a number from 1 to {MAX_PAGE}"
                ))),
            },
        }
    }

    pub fn before(&self) -> Option<&str> {
        self.before.as_deref()
    }
}

/// A JSON request body that must be an object. `web::Json<T>` alone would also take an array
/// for a struct (serde fills fields by position, so `["x"]` reads as `{"name":"x"}`); the
/// contract says wrong types are `bad_json`, so the body is read as an object first.
pub struct Body<T>(pub T);

impl<T> Body<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Body<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: serde::de::DeserializeOwned + 'static> FromRequest for Body<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<Self, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let object =
            web::Json::<serde_json::Map<String, serde_json::Value>>::from_request(req, payload);
        Box::pin(async move {
            let object = object.await?.into_inner();
            serde_json::from_value(serde_json::Value::Object(object))
                .map(Body)
                .map_err(|e| Error::BadJson(format!("invalid JSON body: {e}")).into())
        })
    }
}

/// JSON bodies: any content type, the configured size limit, errors in the contract's shape.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .content_type_required(false)
        .error_handler(move |err, _req| {
            match err {
                JsonPayloadError::Overflow { .. }
                | JsonPayloadError::OverflowKnownLength { .. } => Error::BodyTooLarge(limit),
                JsonPayloadError::Deserialize(e) => {
                    Error::BadJson(format!("invalid JSON body: {e}"))
                }
                JsonPayloadError::Payload(actix_web::error::PayloadError::Overflow) => {
                    Error::BodyTooLarge(limit)
                }
                other => Error::BadJson(format!("invalid JSON body: {other}")),
            }
            .into()
        })
}

fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err: PathError, _| {
        tracing::debug!(error = %err, "path did not parse");
        Error::Domain(chorus_actors::Error::NotFound("resource")).into()
    })
}

fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err: QueryPayloadError, _| {
        Error::invalid(format!("bad query string: {err}")).into()
    })
}

/// `GET /healthz`.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// Anything unrouted.
async fn not_found() -> Result<HttpResponse> {
    Err(Error::Domain(chorus_actors::Error::NotFound("route")))
}

/// Registers every route and the extractor configs.
pub fn configure(cfg: &mut web::ServiceConfig, body_limit: usize) {
    cfg.app_data(json_config(body_limit))
        .app_data(web::PayloadConfig::new(body_limit))
        .app_data(path_config())
        .app_data(query_config())
        .route("/healthz", web::get().to(healthz))
        .service(
            web::scope("/v1")
                .configure(accounts::routes)
                .configure(activities::routes)
                .configure(platforms::routes)
                .configure(friends::routes)
                .configure(groups::routes)
                .configure(communities::routes)
                .route("/ws", web::get().to(crate::ws::connect)),
        )
        .default_service(web::to(not_found));
}
