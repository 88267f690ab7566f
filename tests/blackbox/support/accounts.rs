//! Accounts and friendships as the tests need them set up: registration, login, making
//! friends, and reading ids out of list answers.

use serde_json::{Value, json};

use super::http::{Resp, get, post, post_empty};
use super::server::Server;

/// The password every test account is created with.
pub const PASSWORD: &str = "correct horse battery";

/// An account: id and a valid token.
#[derive(Debug, Clone)]
pub struct Acct {
    pub id: String,
    pub token: String,
}

impl Acct {
    pub fn tok(&self) -> Option<&str> {
        Some(self.token.as_str())
    }
}

/// Create an account with `PASSWORD`; returns (account_id, token).
pub async fn register(
    server: &Server,
    display_name: &str,
    email: Option<&str>,
    phone: Option<&str>,
) -> (String, String) {
    let mut profile = json!({ "display_name": display_name });
    if let Some(e) = email {
        profile["email"] = json!(e);
    }
    if let Some(p) = phone {
        profile["phone"] = json!(p);
    }
    register_profile(server, profile).await
}

pub async fn register_profile(server: &Server, profile: Value) -> (String, String) {
    let r = post(
        server,
        "/v1/accounts",
        None,
        &json!({ "password": PASSWORD, "profile": profile }),
    )
    .await;
    let body = r.expect(201);
    let id = body["account_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no account_id in {}", r.text))
        .to_string();
    let token = body["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {}", r.text))
        .to_string();
    assert!(!id.is_empty() && !token.is_empty());
    (id, token)
}

pub async fn new_acct(server: &Server, display_name: &str) -> Acct {
    let (id, token) = register(server, display_name, None, None).await;
    Acct { id, token }
}

pub async fn new_acct_with(
    server: &Server,
    display_name: &str,
    email: Option<&str>,
    phone: Option<&str>,
) -> Acct {
    let (id, token) = register(server, display_name, email, phone).await;
    Acct { id, token }
}

pub async fn login(server: &Server, login: &str, password: &str) -> Resp {
    post(
        server,
        "/v1/sessions",
        None,
        &json!({ "login": login, "password": password }),
    )
    .await
}

/// A sends a friend request to B, B accepts.
pub async fn make_friends(server: &Server, a: &Acct, b: &Acct) {
    let r = post(
        server,
        "/v1/friends/requests",
        a.tok(),
        &json!({ "to": b.id }),
    )
    .await;
    assert_eq!(r.expect(201), &json!({"status": "pending"}));
    let r = post_empty(
        server,
        &format!("/v1/friends/requests/{}/accept", a.id),
        b.tok(),
    )
    .await;
    assert_eq!(r.expect(200), &json!({"account_id": a.id}));
}

pub async fn me(server: &Server, a: &Acct) -> Value {
    get(server, "/v1/me", a.tok()).await.expect(200).clone()
}

/// Ids of `items` in a list response.
pub fn item_ids(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items array in {body}"))
        .iter()
        .map(|i| {
            i["account_id"]
                .as_str()
                .or_else(|| i["link_id"].as_str())
                .unwrap_or_else(|| panic!("item without id: {i}"))
                .to_string()
        })
        .collect()
}

pub async fn friend_ids(server: &Server, a: &Acct) -> Vec<String> {
    let r = get(server, "/v1/friends", a.tok()).await;
    item_ids(r.expect(200))
}
