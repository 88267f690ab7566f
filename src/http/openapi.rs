//! The OpenAPI 3.1 document of the REST surface, served at `GET /openapi.json` (no auth).
//!
//! It is generated from the code ([utoipa]): each handler carries a `#[utoipa::path]` with
//! its request body, parameters and answers, and the bodies are the types the handlers
//! really serialize (`ToSchema` on the answer structs here and on the domain's views in
//! `chorus_actors::model`). [`CommonAnswers`] adds what every route of a kind may answer (the
//! error shape for a bad body, no token, an unknown id, a store that refuses writes), so
//! each handler lists only its own. The test below holds the document against the route
//! table [`super::register`] records: a route registered without an operation fails it.
//! `.ci/run` runs schemathesis against a live server with this document.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::{
    accounts, activities, cluster, communities, friends, groups, platforms, proofs, sessions,
};
use crate::error::ErrorBody;

/// The document: every path of docs/api.md, and the internal cluster endpoints under the
/// tag `internal` (not part of the wire contract).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Chorus",
        description = "Actor-model fan-out server for IM groups and communities: the REST \
            surface of the wire contract (docs/api.md). The WebSocket (`GET /v1/ws`) is listed \
            for its handshake; its frames are described in docs/api.md.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        super::healthz,
        super::readyz,
        serve,
        accounts::create,
        accounts::get_account,
        accounts::login,
        accounts::me,
        accounts::patch_profile,
        sessions::logout,
        activities::post,
        activities::releases,
        activities::feed,
        platforms::link,
        platforms::list,
        platforms::unlink,
        proofs::send_profile,
        proofs::verify_profile,
        proofs::send_link,
        proofs::verify_link,
        friends::list_friends,
        friends::request,
        friends::list_requests,
        friends::accept,
        friends::decline,
        friends::list_suggestions,
        friends::remove,
        friends::contacts,
        groups::create,
        groups::get,
        groups::add_member,
        groups::remove_member,
        groups::post_message,
        groups::list_messages,
        groups::events,
        groups::list_requests,
        groups::approve,
        groups::reject,
        groups::revoke,
        groups::dynamics,
        groups::presence,
        communities::create,
        communities::add_member,
        communities::post_dynamic,
        communities::request_binding,
        cluster::status,
        cluster::owner,
        crate::ws::not_upgraded,
    ),
    components(schemas(ErrorBody)),
    security(("client" = [])),
    modifiers(&SecuritySchemes, &CommonAnswers),
    tags(
        (name = "health", description = "Liveness, readiness and this document: no auth."),
        (name = "accounts", description = "Accounts, sessions and personal info."),
        (name = "platforms", description = "Platform accounts linked to an account."),
        (name = "identities", description = "Proving an email (or a link) with a code."),
        (name = "activities", description = "Activities and their release to platforms."),
        (name = "friends", description = "Friends, requests and contact matching."),
        (name = "groups", description = "IM groups, chat, bindings and dynamics."),
        (name = "communities", description = "Communities: the community server's calls use its server key."),
        (name = "websocket", description = "The WebSocket handshake."),
        (name = "internal", description = "Cluster mode's operator endpoints: not part of the wire contract, no auth, may change without notice; 404 on a node not in cluster mode."),
    ),
)]
pub struct ApiDoc;

/// The document as served, built once.
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .unwrap_or_else(|e| format!(r#"{{"error":"the document did not serialize: {e}"}}"#))
    })
}

/// `GET /openapi.json`: this document.
#[utoipa::path(get, path = "/openapi.json", tag = "health", operation_id = "openapi",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document of this API.",
        content_type = "application/json", body = Object)))]
pub async fn serve() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document())
}

/// The two bearer credentials: a client's token (`POST /v1/accounts`, `POST /v1/sessions`)
/// and a community server's key (`POST /v1/communities`).
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |what: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(what))
                    .build(),
            )
        };
        components.add_security_scheme(
            "client",
            bearer("A client token, from `POST /v1/accounts` or `POST /v1/sessions`."),
        );
        components.add_security_scheme(
            "community_server",
            bearer("A community's server key, shown once by `POST /v1/communities`."),
        );
    }
}

/// The answers a route may give by its kind, added where its handler lists none for the
/// status: 400 `bad_json` and 413 with a body, 400 for a list's bad `limit` or `before`, 401
/// with credentials, 404 with a path parameter, and 500 / 503 everywhere but the health
/// routes.
struct CommonAnswers;

impl CommonAnswers {
    fn add(operation: &mut Operation) {
        let id = operation.operation_id.as_deref().unwrap_or_default();
        let never_fails = matches!(id, "healthz" | "readyz" | "openapi");
        let has_body = operation.request_body.is_some();
        let has_credentials = operation.security.as_ref().is_none_or(|reqs| {
            reqs.iter()
                .any(|r| serde_json::to_value(r).is_ok_and(|v| v != serde_json::json!({})))
        });
        let has_param = |what: &str, value: &str| {
            operation.parameters.as_ref().is_some_and(|ps| {
                ps.iter()
                    .any(|p| serde_json::to_value(p).is_ok_and(|v| v[what] == value))
            })
        };
        let has_path_param = has_param("in", "path");
        let is_list = has_param("name", "before");
        let answers = [
            (
                has_body,
                "400",
                "`bad_json`: not a JSON object, a wrong type or a missing field; `invalid_input`: a value breaks a rule.",
            ),
            (
                is_list,
                "400",
                "`invalid_input`: a bad `limit` or `before`.",
            ),
            (has_body, "413", "`body_too_large`: over `--body-limit`."),
            (
                has_credentials,
                "401",
                "`unauthorized`: no or an unknown bearer credential.",
            ),
            (
                has_path_param,
                "404",
                "`not_found`: an unknown id, or one of the wrong shape.",
            ),
            (
                !never_fails,
                "500",
                "`storage_error` or `internal`: the server's fault.",
            ),
            (
                !never_fails,
                "503",
                "`unavailable`: come back after `Retry-After` seconds (the store refuses writes, an actor is briefly out of reach, overload).",
            ),
        ];
        for (applies, status, description) in answers {
            if applies && !operation.responses.responses.contains_key(status) {
                operation
                    .responses
                    .responses
                    .insert(status.to_owned(), error_answer(description).into());
            }
        }
    }
}

/// An answer in the contract's error shape.
fn error_answer(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

impl Modify for CommonAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                Self::add(operation);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use actix_web::App;
    use serde_json::Value;

    use super::*;

    fn parsed() -> Value {
        serde_json::from_str(document()).expect("the document is JSON")
    }

    #[test]
    fn the_document_is_openapi_3_1() {
        let doc = parsed();
        let version = doc["openapi"].as_str().expect("an openapi field");
        assert!(version.starts_with("3.1."), "{version}");
        assert!(doc["components"]["securitySchemes"]["client"].is_object());
        assert!(doc["components"]["securitySchemes"]["community_server"].is_object());
    }

    /// Every route the server registers is documented, and nothing else: a new route
    /// without a `#[utoipa::path]` listed in [`ApiDoc`] fails here.
    #[test]
    fn every_registered_route_is_documented() {
        let mut table = Vec::new();
        let _app = App::new().configure(|cfg| table = super::super::register(cfg, 1024));
        let registered: BTreeSet<(String, String)> = table
            .into_iter()
            .map(|e| (e.method.as_str().to_lowercase(), e.path))
            .collect();
        let doc = parsed();
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("a path item").keys() {
                documented.insert((method.clone(), path.clone()));
            }
        }
        assert_eq!(registered, documented);
    }

    /// Each operation has a unique id, says how it authenticates, and answers its errors in
    /// the contract's shape.
    #[test]
    fn every_operation_is_complete() {
        let doc = parsed();
        let mut ids = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("a path item") {
                let id = op["operationId"].as_str().expect("an operationId");
                assert!(ids.insert(id.to_owned()), "{id} twice");
                let answers = op["responses"].as_object().expect("responses");
                assert!(
                    answers.keys().any(|s| s.starts_with('2') || s == "101"),
                    "{method} {path} has no success answer"
                );
                for (status, answer) in answers {
                    if status.starts_with('4') || status.starts_with('5') {
                        assert_eq!(
                            answer["content"]["application/json"]["schema"]["$ref"],
                            "#/components/schemas/ErrorBody",
                            "{method} {path} {status}"
                        );
                    }
                }
            }
        }
    }

    /// Every `$ref` names a schema of the document (utoipa leaves out some it only names).
    #[test]
    fn every_reference_resolves() {
        fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
            match v {
                Value::Object(map) => {
                    if let Some(Value::String(r)) = map.get("$ref") {
                        out.push(r);
                    }
                    map.values().for_each(|v| refs(v, out));
                }
                Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let doc = parsed();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for r in found {
            let name = r
                .strip_prefix("#/components/schemas/")
                .expect("a schema reference");
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "{r} does not resolve"
            );
        }
    }

    /// Health, readiness, this document and the two calls that give a token need none;
    /// the community server's calls take its key.
    #[test]
    fn security_is_as_documented() {
        let doc = parsed();
        let security = |path: &str, method: &str| doc["paths"][path][method]["security"].clone();
        for (path, method) in [
            ("/healthz", "get"),
            ("/readyz", "get"),
            ("/openapi.json", "get"),
            ("/v1/accounts", "post"),
            ("/v1/sessions", "post"),
        ] {
            assert_eq!(security(path, method), serde_json::json!([{}]), "{path}");
        }
        assert_eq!(
            security("/v1/communities/{cid}/dynamics", "post"),
            serde_json::json!([{"community_server": []}])
        );
        assert_eq!(doc["security"], serde_json::json!([{"client": []}]));
    }
}
