//! HTTP routes of the contract. A handler reads its input, checks it once with the rules of
//! [`chorus_actors::model::limits`], calls one method of the domain facade
//! ([`chorus_actors::Chorus`]) and turns every failure into the contract's error shape via
//! [`crate::error::Error`]. Who is calling is read in [`auth`], from which address in
//! [`client`] (for the rate limits); a panic anywhere in a request becomes a 500 in
//! [`panics`]. Routes are registered through [`router::Router`], which records the route
//! table; [`openapi`] is the OpenAPI 3.1 document of them all, served at `/openapi.json`.
//! The web client's files are served at `/` by [`webapp`].

pub mod accounts;
pub mod activities;
pub mod auth;
pub mod client;
pub mod cluster;
pub mod communities;
pub mod friends;
pub mod groups;
pub mod openapi;
pub mod panics;
pub mod platforms;
pub mod proofs;
pub mod router;
pub mod sessions;
pub mod webapp;

use std::pin::Pin;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::error::{PathError, PayloadError, QueryPayloadError};
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use chorus_actors::Chorus;
use chorus_actors::model::PageRequest;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use utoipa::{IntoParams, ToSchema};

pub use self::auth::Authed;
pub use self::client::ClientIp;
pub use self::router::{Endpoint, Router};
use crate::auth::Passwords;
use crate::config::Config;
use crate::connectors::Connectors;
use crate::error::{Error, ErrorBody, Result};
use crate::health::Readiness;
use crate::limits::Limits;

/// Everything handlers share; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    /// The domain: every operation goes through it.
    pub chorus: Chorus,
    /// Password hashing, at most `--password-hash-concurrency` at once.
    pub passwords: Passwords,
    /// Rate limits per client address and per login ([`crate::limits`]).
    pub limits: Limits,
    /// Turns true when the server shuts down; WebSocket sessions close with 1001.
    pub shutdown: watch::Receiver<bool>,
    /// The platforms this server releases activities to; links are validated against them.
    pub connectors: Arc<Connectors>,
    /// What `/readyz` answers: the store's health and the recoveries running.
    pub readiness: Readiness,
}

/// `?limit=N&before=CURSOR` of every list. `limit` is read as text so a bad value answers
/// `invalid_input` rather than a generic parse failure.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Items per page (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    limit: Option<String>,
    /// The `next` of the previous page.
    #[param(pattern = r"^[0-9]{1,20}\.[0-9a-f]{32}$", max_length = 53)]
    before: Option<String>,
}

impl ListQuery {
    /// The page asked for, checked ([`PageRequest::parse`]).
    pub fn page(&self) -> Result<PageRequest> {
        Ok(PageRequest::parse(
            self.limit.as_deref(),
            self.before.as_deref(),
        )?)
    }
}

/// A JSON request body that must be an object, read by [`parse_body`]: any content type, the
/// configured size limit ([`BodyLimit`]), errors in the contract's shape.
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

/// The most bytes a request body may have (`--body-limit`), as app data for [`Body`].
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// The one parser of request bodies: `bytes` must be a JSON object, then read as `T`.
/// `serde_json` alone would also take an array for a struct (it fills fields by position, so
/// `["x"]` reads as `{"name":"x"}`); the contract says wrong types are `bad_json`, so the body
/// is read as an object first. Public for the fuzz targets (fuzz/), which call it with
/// arbitrary bytes.
pub fn parse_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let bad = |e: serde_json::Error| Error::BadJson(format!("invalid JSON body: {e}"));
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(bytes).map_err(bad)?;
    serde_json::from_value(serde_json::Value::Object(object)).map_err(bad)
}

impl<T: serde::de::DeserializeOwned + 'static> FromRequest for Body<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<Self, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        // The bytes, within `web::PayloadConfig`'s limit (set to the same `--body-limit`).
        let limit = req.app_data::<BodyLimit>().map_or(0, |l| l.0);
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = bytes
                .await
                .map_err(|e| match e.as_error::<PayloadError>() {
                    Some(PayloadError::Overflow) => Error::BodyTooLarge(limit),
                    _ => Error::BadJson(format!("invalid JSON body: {e}")),
                })?;
            Ok(Body(parse_body(&bytes)?))
        })
    }
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

/// `{"status": "ok"}`: the answer of `/healthz` and `/readyz`.
#[derive(Serialize, ToSchema)]
pub struct StatusOk {
    #[schema(example = "ok")]
    status: &'static str,
}

const OK: StatusOk = StatusOk { status: "ok" };

/// `GET /healthz`: liveness. 200 while the process answers at all, whatever the store does
/// (restarting a server whose disk is full would not free the disk).
#[utoipa::path(get, path = "/healthz", tag = "health", operation_id = "healthz",
    security(()),
    responses((status = 200, description = "The process answers.", body = StatusOk)))]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(OK)
}

/// `GET /readyz`: readiness. 200 `{"status":"ok"}` while the server can serve and store; 503
/// `unavailable` in the contract's error shape, with `Retry-After` and the reason in the
/// message, while the store refuses writes or a start-up recovery runs.
#[utoipa::path(get, path = "/readyz", tag = "health", operation_id = "readyz",
    security(()),
    responses(
        (status = 200, description = "The server can serve and store.", body = StatusOk),
        (status = 503, description = "`unavailable`: not ready (the reason in the message), with `Retry-After`.", body = ErrorBody),
    ))]
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.readiness.check() {
        Ok(()) => HttpResponse::Ok().json(OK),
        Err(not_ready) => HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", not_ready.retry_after().to_string()))
            .json(ErrorBody::new(
                "unavailable",
                format!("not ready: {}", not_ready.reason()),
            )),
    }
}

/// Anything unrouted.
async fn not_found() -> Result<HttpResponse> {
    Err(Error::Domain(chorus_actors::Error::NotFound("route")))
}

/// Registers every route and the extractor configs.
pub fn configure(cfg: &mut web::ServiceConfig, body_limit: usize) {
    register(cfg, body_limit);
}

/// [`configure`], answering the route table: every method and path registered, which the
/// OpenAPI test holds against the document ([`openapi`]).
pub fn register(cfg: &mut web::ServiceConfig, body_limit: usize) -> Vec<Endpoint> {
    let mut table = Vec::new();
    cfg.app_data(BodyLimit(body_limit))
        .app_data(web::PayloadConfig::new(body_limit))
        .app_data(path_config())
        .app_data(query_config());
    Router::new(cfg, "", &mut table)
        .get("/healthz", healthz)
        .get("/readyz", readyz)
        .get("/openapi.json", openapi::serve);
    // For operators (text/plain) and the web client's files: not part of the JSON API, so
    // not in the route table nor in /openapi.json.
    cfg.route("/metrics", web::get().to(crate::metrics::scrape));
    cfg.configure(webapp::routes);
    let mut v1 = Vec::new();
    cfg.service(web::scope("/v1").configure(|cfg| {
        let mut r = Router::new(cfg, "/v1", &mut v1);
        accounts::routes(&mut r);
        sessions::routes(&mut r);
        activities::routes(&mut r);
        platforms::routes(&mut r);
        proofs::routes(&mut r);
        friends::routes(&mut r);
        groups::routes(&mut r);
        communities::routes(&mut r);
        r.get("/cluster", cluster::status)
            .get("/cluster/owner/{kind}/{id}", cluster::owner)
            .get("/ws", crate::ws::not_upgraded);
    }))
    .default_service(web::to(not_found));
    table.extend(v1);
    table
}
