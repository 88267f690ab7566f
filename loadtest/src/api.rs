//! Provisioning through the public API: accounts, friendships, groups, communities.
//! Runs many requests at once so 100k accounts take seconds, not an hour (with the server's
//! password-hash cost lowered, as [`crate::server::Target::spawn`] does).

use futures_util::{StreamExt, stream};
use indicatif::ProgressBar;
use serde_json::{Value, json};

use crate::error::{Error, Result};

/// Requests in flight while provisioning.
pub const CONCURRENCY: usize = 64;

#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
}

/// A provisioned account.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub token: String,
}

impl Api {
    pub fn new(base: &str) -> Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(CONCURRENCY * 2)
            .build()?;
        Ok(Api {
            http,
            base: base.to_owned(),
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            return Err(Error::Unexpected(format!("{path}: {status} {text}")));
        }
        if text.is_empty() {
            return Ok(Value::Null);
        }
        Ok(serde_json::from_str(&text)?)
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Result<Value> {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Result<Value> {
        self.call(reqwest::Method::PATCH, path, token, Some(body))
            .await
    }

    fn field(v: &Value, name: &str) -> Result<String> {
        v[name]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::Unexpected(format!("answer without {name}: {v}")))
    }

    /// Creates `n` accounts.
    pub async fn accounts(&self, n: usize, bar: &ProgressBar) -> Result<Vec<Account>> {
        let results: Vec<Result<Account>> = stream::iter(0..n)
            .map(|i| async move {
                let v = self
                    .post(
                        "/v1/accounts",
                        "",
                        json!({"password": "load-test-pw", "profile": {"display_name": format!("load{i}")}}),
                    )
                    .await?;
                bar.inc(1);
                Ok(Account {
                    id: Self::field(&v, "account_id")?,
                    token: Self::field(&v, "token")?,
                })
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// A group owned by `owner` with every account of `members` in it.
    pub async fn group(
        &self,
        owner: &Account,
        members: &[Account],
        bar: &ProgressBar,
    ) -> Result<String> {
        let v = self
            .post("/v1/groups", &owner.token, json!({"name": "load"}))
            .await?;
        let gid = Self::field(&v, "group_id")?;
        let path = format!("/v1/groups/{gid}/members");
        let results: Vec<Result<Value>> = stream::iter(members.iter().filter(|m| m.id != owner.id))
            .map(|m| {
                let path = path.clone();
                async move {
                    let r = self
                        .post(&path, &owner.token, json!({"account_id": m.id}))
                        .await;
                    bar.inc(1);
                    r
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for r in results {
            r?;
        }
        Ok(gid)
    }

    /// Makes `center` friends with every account of `others` (request, then accept).
    pub async fn befriend_all(
        &self,
        center: &Account,
        others: &[Account],
        bar: &ProgressBar,
    ) -> Result<()> {
        let results: Vec<Result<Value>> = stream::iter(others)
            .map(|o| async move {
                self.post("/v1/friends/requests", &center.token, json!({"to": o.id}))
                    .await?;
                let r = self
                    .post(
                        &format!("/v1/friends/requests/{}/accept", center.id),
                        &o.token,
                        json!({}),
                    )
                    .await;
                bar.inc(1);
                r
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        results.into_iter().try_for_each(|r| r.map(|_| ()))
    }
}
