//! Platform accounts linked to the communication account: `POST/GET /v1/me/platforms`,
//! `DELETE /v1/me/platforms/{link_id}`. Configs are validated per platform when linked and
//! never echoed (they hold secrets).

use actix_web::{HttpResponse, web};
use chorus_actors::messages::{GetMe, LinkPlatform, UnlinkPlatform};
use chorus_actors::model::{LinkRecord, now_ms};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AppState, Authed, Body};
use crate::auth::new_id;
use crate::error::{Error, Result};

/// Platforms the server has a connector for.
pub const PLATFORMS: [&str; 1] = ["webhook"];

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/me/platforms", web::post().to(link))
        .route("/me/platforms", web::get().to(list))
        .route("/me/platforms/{link_id}", web::delete().to(unlink));
}

#[derive(Deserialize)]
struct NewLink {
    platform: String,
    handle: String,
    #[serde(default)]
    config: Value,
}

/// Checks a link's config for its platform; answers the config as it will be stored.
pub fn validate_config(platform: &str, config: &Value) -> Result<Value> {
    match platform {
        "webhook" => {
            let url = config
                .get("url")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let parsed = url::Url::parse(url)
                .map_err(|e| Error::invalid(format!("config.url is not a URL: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
                return Err(Error::invalid("config.url must be an http or https URL"));
            }
            let secret = config
                .get("secret")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if secret.is_empty() || secret.len() > 1024 {
                return Err(Error::invalid("config.secret must be a non-empty string"));
            }
            Ok(json!({"url": parsed.as_str(), "secret": secret}))
        }
        other => Err(Error::Domain(chorus_actors::Error::Invalid {
            code: "unknown_platform",
            message: format!("no connector for platform {other:?}; known: {PLATFORMS:?}"),
        })),
    }
}

async fn link(
    state: web::Data<AppState>,
    who: Authed,
    body: Body<NewLink>,
) -> Result<HttpResponse> {
    let NewLink {
        platform,
        handle,
        config,
    } = body.into_inner();
    let config = validate_config(&platform, &config)?;
    let handle = handle.trim().to_owned();
    if handle.is_empty() || handle.chars().count() > 128 {
        return Err(Error::invalid("handle must have 1 to 128 characters"));
    }
    let link_id = new_id();
    let record = LinkRecord {
        link_id: link_id.clone(),
        platform,
        handle,
        config,
        created_ms: now_ms(),
    };
    state
        .registry
        .ask(&who.0, LinkPlatform { link: record })
        .await?;
    Ok(HttpResponse::Created().json(json!({"link_id": link_id})))
}

async fn list(state: web::Data<AppState>, who: Authed) -> Result<HttpResponse> {
    let me = state.registry.ask(&who.0, GetMe).await?;
    Ok(HttpResponse::Ok().json(json!({"items": me.platforms, "next": null})))
}

async fn unlink(
    state: web::Data<AppState>,
    who: Authed,
    link_id: web::Path<String>,
) -> Result<HttpResponse> {
    state
        .registry
        .ask(
            &who.0,
            UnlinkPlatform {
                link_id: link_id.into_inner(),
            },
        )
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_config_needs_http_url_and_secret() {
        assert!(
            validate_config(
                "webhook",
                &json!({"url": "https://x.example/h", "secret": "s"})
            )
            .is_ok()
        );
        assert!(
            validate_config("webhook", &json!({"url": "ftp://x.example", "secret": "s"})).is_err()
        );
        assert!(validate_config("webhook", &json!({"url": "https://x.example"})).is_err());
        assert!(validate_config("webhook", &json!({"secret": "s"})).is_err());
        let err = validate_config("myspace", &json!({}))
            .err()
            .map(|e| e.code());
        assert_eq!(err, Some("unknown_platform"));
    }
}
