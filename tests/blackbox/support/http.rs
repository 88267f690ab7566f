//! HTTP against the server under test: requests with an optional bearer token, the answer
//! as status + JSON + text, and the contract's error shape.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::server::Server;

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("reqwest client")
}

/// A response: status, headers and parsed JSON body (Value::Null when empty), plus raw text.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    /// Assert the status is `status` and return the body.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text
        );
        &self.body
    }

    /// Assert this is an error response with the given status and code, in the
    /// `{"error":{"code","message"}}` shape.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status (wanted error {code}); body: {}",
            self.text
        );
        assert_error_shape(&self.body, code, &self.text);
    }
}

#[track_caller]
pub fn assert_error_shape(body: &Value, code: &str, text: &str) {
    let obj = body
        .as_object()
        .unwrap_or_else(|| panic!("error body is not a JSON object: {text:?}"));
    let err = obj
        .get("error")
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("error body has no `error` object: {text}"));
    assert_eq!(
        err.get("code").and_then(Value::as_str),
        Some(code),
        "wrong error code; body: {text}"
    );
    let msg = err
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("error has no string `message`: {text}"));
    assert!(!msg.is_empty(), "error message is empty: {text}");
}

pub async fn send(
    server: &Server,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Resp {
    let mut req = client().request(method, server.url(path));
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    finish(req).await
}

/// Send raw bytes as the body, with an optional Content-Type header.
pub async fn send_raw(
    server: &Server,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: impl Into<reqwest::Body>,
    content_type: Option<&str>,
) -> Resp {
    let mut req = client().request(method, server.url(path)).body(body);
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    if let Some(ct) = content_type {
        req = req.header("Content-Type", ct);
    }
    finish(req).await
}

pub async fn finish(req: reqwest::RequestBuilder) -> Resp {
    let resp = req.send().await.expect("HTTP request failed");
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("read response body");
    let body = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::Null)
    };
    Resp {
        status,
        headers,
        body,
        text,
    }
}

pub async fn get(server: &Server, path: &str, token: Option<&str>) -> Resp {
    send(server, Method::GET, path, token, None).await
}

pub async fn post(server: &Server, path: &str, token: Option<&str>, body: &Value) -> Resp {
    send(server, Method::POST, path, token, Some(body)).await
}

pub async fn post_empty(server: &Server, path: &str, token: Option<&str>) -> Resp {
    send(server, Method::POST, path, token, None).await
}

pub async fn patch(server: &Server, path: &str, token: Option<&str>, body: &Value) -> Resp {
    send(server, Method::PATCH, path, token, Some(body)).await
}

pub async fn delete(server: &Server, path: &str, token: Option<&str>) -> Resp {
    send(server, Method::DELETE, path, token, None).await
}

/// `/healthz` must answer 200 `{"status":"ok"}`.
pub async fn assert_healthy(server: &Server) {
    let r = get(server, "/healthz", None).await;
    assert_eq!(r.status.as_u16(), 200, "healthz status; body {}", r.text);
    assert_eq!(r.body, json!({"status": "ok"}), "healthz body");
}
