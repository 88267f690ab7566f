//! Mastodon: posts the activity's text as a status (`POST /api/v1/statuses`, JSON params)
//! with the user's access token.
//!
//! Mastodon honours `Idempotency-Key` (for an hour), so a retry after a lost answer does not
//! post twice. 401/403 (token revoked or lacking `write:statuses`) and 422 (e.g. text over
//! the instance's limit) cannot be fixed by waiting and fail at once.

use chorus_actors::release::{AttemptOutcome, Outgoing};
use serde_json::{Value, json};

use super::egress::Egress;
use super::{Checked, MAX_SECRET, http, http_url_field, str_field};
use crate::error::{Error, Result};

pub const PLATFORM: &str = "mastodon";

/// The config checked: `{"base_url"}` (no trailing slash) to store in the clear and the
/// access token to seal. The token travels as a bearer header, so the instance must be
/// `https://` unless the egress policy is off (`--allow-private-destinations`).
pub fn validate_config(config: &Value, egress: Egress) -> Result<Checked> {
    let url = http_url_field(config, "base_url")?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::invalid(
            "config.base_url must not have a query or fragment",
        ));
    }
    if url.scheme() != "https" && !egress.allows_private() {
        return Err(Error::invalid(
            "config.base_url must be an https URL: the access token must not travel in the clear",
        ));
    }
    let base_url = url.as_str().trim_end_matches('/');
    let token = str_field(config, "access_token").unwrap_or_default();
    // Checked here because it goes into a header: a token with spaces or control characters
    // would make every release fail.
    if token.is_empty()
        || token.chars().count() > MAX_SECRET
        || !token.chars().all(|c| c.is_ascii_graphic())
    {
        return Err(Error::invalid(format!(
            "config.access_token must be 1 to {MAX_SECRET} printable ASCII characters without spaces"
        )));
    }
    Ok(Checked {
        config: json!({"base_url": base_url}),
        secret: Some(token.to_owned()),
        destination: Some((url, "base_url")),
    })
}

impl super::Connectors {
    /// Proves a Mastodon link when it is made: the instance at `config.base_url` must say,
    /// through `GET /api/v1/accounts/verify_credentials` with the token, that the token's
    /// account is `handle`, written `user@host` with the instance's host (its port too, if
    /// the URL names one). Otherwise 400 `invalid_input`, with a fixed reason (the status at
    /// most, never the instance's words: the URL is the user's to choose). So a handle
    /// counts for contact matching (`chorus_actors::model::identity`) only for its owner.
    /// The host is the URL's, never an `acct` the instance reports: any server may answer
    /// `verify_credentials`, but only the real instance is reached at its own host.
    ///
    /// The request goes out under the egress policy like a release: the client's resolver
    /// refuses non-public addresses, and an address written in the URL is checked here.
    pub(super) async fn verify_mastodon(
        &self,
        handle: &str,
        base_url: &str,
        token: &str,
    ) -> Result<()> {
        const MAX_BODY: usize = 64 * 1024;
        let url = url::Url::parse(base_url)
            .map_err(|_| Error::invalid("config.base_url must be an http or https URL"))?;
        let host = url.host_str().unwrap_or_default().to_lowercase();
        let unverified = |why: &str| {
            Error::invalid(format!("the Mastodon account could not be verified: {why}"))
        };
        let request = self
            .http
            .get(format!("{base_url}/api/v1/accounts/verify_credentials"))
            .bearer_auth(token)
            .build()
            .map_err(|_| unverified("the request could not be built"))?;
        if self.egress.check_url(request.url()).is_err() {
            return Err(unverified(super::egress::NOT_ALLOWED));
        }
        let mut response = self
            .http
            .execute(request)
            .await
            .map_err(|_| unverified("the instance did not answer"))?;
        if !response.status().is_success() {
            return Err(unverified(&format!(
                "the instance refused the access token (HTTP {})",
                response.status().as_u16()
            )));
        }
        let mut body = Vec::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_BODY {
                return Err(unverified("the instance's answer is too long"));
            }
        }
        let account: Value = serde_json::from_slice(&body)
            .map_err(|_| unverified("the instance's answer is not an account"))?;
        let Some(username) = account.get("username").and_then(Value::as_str) else {
            return Err(unverified("the instance's answer is not an account"));
        };
        let username = username.to_lowercase();
        let mut owners = vec![format!("{username}@{host}")];
        if let Some(port) = url.port() {
            owners.push(format!("{username}@{host}:{port}"));
        }
        let claimed = chorus_actors::model::normalize_handle(PLATFORM, handle);
        if owners.contains(&claimed) {
            Ok(())
        } else {
            Err(unverified(&format!(
                "the handle is not the access token's account (write it as user@{host})"
            )))
        }
    }
}

/// One attempt: post the status with the link's (unsealed) access `token`.
pub async fn attempt(
    client: &reqwest::Client,
    egress: Egress,
    out: &Outgoing,
    token: &str,
) -> AttemptOutcome {
    let Some(base_url) = str_field(&out.link.config, "base_url") else {
        return AttemptOutcome::Fail {
            error: "mastodon link config lacks base_url".into(),
        };
    };
    let request = client
        .post(format!(
            "{}/api/v1/statuses",
            base_url.trim_end_matches('/')
        ))
        .bearer_auth(token)
        .header("Idempotency-Key", &out.idempotency_key)
        .json(&json!({"status": out.activity.text}));
    http::send(client, egress, request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::test_support::{connectors, outgoing, outgoing_with, receiver};
    use chorus_actors::release::Connector;
    use std::time::Duration;

    #[test]
    fn config_needs_base_url_and_token() {
        let checked = validate_config(
            &json!({
                "base_url": "https://mastodon.example/", "access_token": "abc_DEF-123", "x": 1
            }),
            Egress::PUBLIC_ONLY,
        )
        .unwrap();
        assert_eq!(
            checked.config,
            json!({"base_url": "https://mastodon.example"})
        );
        assert_eq!(checked.secret.as_deref(), Some("abc_DEF-123"));
        assert_eq!(checked.destination.unwrap().1, "base_url");
        assert_eq!(
            validate_config(
                &json!({
                    "base_url": "http://127.0.0.1:3000/social/", "access_token": "t"
                }),
                Egress::ANYWHERE
            )
            .unwrap()
            .config["base_url"],
            "http://127.0.0.1:3000/social"
        );
        // Plain http only with the policy off: the token would travel in the clear.
        let e = validate_config(
            &json!({"base_url": "http://mastodon.example", "access_token": "t"}),
            Egress::PUBLIC_ONLY,
        )
        .unwrap_err();
        assert_eq!(e.code(), "invalid_input");
        assert_eq!(
            e.to_string(),
            "config.base_url must be an https URL: the access token must not travel in the clear"
        );
        for (bad, field) in [
            (json!({"access_token": "t"}), "config.base_url"),
            (
                json!({"base_url": "mastodon.example", "access_token": "t"}),
                "config.base_url",
            ),
            (
                json!({"base_url": "ftp://m.example", "access_token": "t"}),
                "config.base_url",
            ),
            (
                json!({"base_url": "https://m.example/?a=1", "access_token": "t"}),
                "config.base_url",
            ),
            (
                json!({"base_url": "https://m.example"}),
                "config.access_token",
            ),
            (
                json!({"base_url": "https://m.example", "access_token": ""}),
                "config.access_token",
            ),
            (
                json!({"base_url": "https://m.example", "access_token": "a b"}),
                "config.access_token",
            ),
            (
                json!({"base_url": "https://m.example", "access_token": "a\nb"}),
                "config.access_token",
            ),
            (
                json!({"base_url": "https://m.example", "access_token": "t".repeat(1025)}),
                "config.access_token",
            ),
        ] {
            let e = validate_config(&bad, Egress::PUBLIC_ONLY).unwrap_err();
            assert_eq!(e.code(), "invalid_input", "{bad}");
            assert!(e.to_string().starts_with(field), "{bad}: {e}");
        }
    }

    #[actix_web::test]
    async fn posts_a_status_and_maps_statuses() {
        let rx = receiver();
        let c = connectors(Duration::from_secs(5));
        let checked = validate_config(
            &json!({
                "base_url": format!("{}/", rx.url("/m200")), "access_token": "tok123"
            }),
            Egress::ANYWHERE,
        )
        .unwrap();
        let out = outgoing_with("mastodon", checked.config, checked.secret.as_deref(), 1);
        assert_eq!(c.attempt(&out).await, AttemptOutcome::Delivered);
        let seen = rx.requests();
        assert_eq!(seen.len(), 1);
        let req = &seen[0];
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/m200/api/v1/statuses");
        assert_eq!(req.headers["authorization"], "Bearer tok123");
        assert_eq!(req.headers["idempotency-key"], out.idempotency_key);
        assert!(req.headers["content-type"].starts_with("application/json"));
        let v: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(v, json!({"status": out.activity.text}));

        let bad = outgoing(
            "mastodon",
            "@ada@m.example",
            json!({"base_url": rx.url("/m422"), "access_token": "tok123"}),
            1,
        );
        // The instance's reason (its body) is not shown: the status alone.
        assert_eq!(
            c.attempt(&bad).await,
            AttemptOutcome::Fail {
                error: "HTTP 422".into()
            }
        );
    }
}
