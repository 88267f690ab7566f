//! The HTTP peers a release goes to (webhook endpoints, Mastodon instances): the recording
//! receiver of `chorus_testkit`, linking one to an account, and checks over what it got.

use std::collections::HashSet;

use serde_json::{Value, json};

pub use chorus_testkit::{Received, Receiver, Reply, Script, sign};

use super::accounts::Acct;
use super::http::post;
use super::server::Server;

/// Links a webhook to `a`'s account; returns the link id.
pub async fn link_webhook(s: &Server, a: &Acct, handle: &str, url: &str, secret: &str) -> String {
    link(
        s,
        a,
        &json!({"platform": "webhook", "handle": handle,
                "config": {"url": url, "secret": secret}}),
    )
    .await
}

/// Links a Mastodon account; returns the link id.
pub async fn link_mastodon(
    s: &Server,
    a: &Acct,
    handle: &str,
    base_url: &str,
    token: &str,
) -> String {
    link(
        s,
        a,
        &json!({"platform": "mastodon", "handle": handle,
                "config": {"base_url": base_url, "access_token": token}}),
    )
    .await
}

/// The account path a Mastodon instance answers `verify_credentials` at.
pub const VERIFY_CREDENTIALS: &str = "/api/v1/accounts/verify_credentials";

/// A Mastodon instance, as a [`Script::ByPath`]: `verify_credentials` answers the account
/// `ann`, or `{user}` under a base path `/as-{user}/`, 401 under `/revoked/` and a page that
/// is no account under `/not-mastodon/`; anything else (a status) 200. Link it as `ann@127.0.0.1` (the instance's host).
pub fn mastodon_instance(path: &str) -> Reply {
    let Some(base) = path.strip_suffix(VERIFY_CREDENTIALS) else {
        return Reply::status(200).json(r#"{"id":"103254962155278888"}"#);
    };
    if base.starts_with("/revoked") {
        return Reply::status(401).json(r#"{"error":"The access token is invalid"}"#);
    }
    if base.starts_with("/not-mastodon") {
        return Reply::status(200).body("<html>The access token is invalid</html>");
    }
    let user = base
        .strip_prefix("/as-")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("ann");
    Reply::status(200).json(&format!(
        r#"{{"id":"1","username":"{user}","acct":"{user}","display_name":"{user}"}}"#
    ))
}

/// POST /v1/me/platforms, expecting 201; returns the link id.
#[track_caller]
pub fn link<'a>(s: &'a Server, a: &'a Acct, body: &'a Value) -> impl Future<Output = String> + 'a {
    let caller = std::panic::Location::caller();
    async move {
        let r = post(s, "/v1/me/platforms", a.tok(), body).await;
        assert_eq!(r.status.as_u16(), 201, "{caller}: link {body}: {}", r.text);
        r.body["link_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no link_id in {}", r.text))
            .to_string()
    }
}

/// Every request carries one and the same key, and the same body bytes: they are attempts
/// of one release.
#[track_caller]
pub fn assert_same_key_and_body(got: &[Received]) {
    let keys: HashSet<String> = got.iter().map(Received::idempotency_key).collect();
    assert_eq!(
        keys.len(),
        1,
        "attempts of one release carry different keys: {keys:?}"
    );
    for r in got {
        assert_eq!(
            r.body, got[0].body,
            "attempts of one release sent different bodies"
        );
    }
}
