//! `GET /openapi.json`: the OpenAPI 3.1 document of the REST surface, served without auth,
//! and true of the running server: every operation it says takes a client token is routed
//! and answers 401 without one. (The unit tests in `src/http/openapi.rs` hold it against the
//! route table; `scripts/schemathesis`, run by `.ci/run`, fuzzes the server with it.)

use crate::support::*;
use reqwest::Method;
use serde_json::{Value, json};

/// A path of the document with an id of the server's shape in each parameter.
fn filled(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.starts_with('{') {
                "0123456789abcdef0123456789abcdef"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn the_document_is_served_without_auth_and_every_client_route_needs_a_token() {
    let s = Server::start();
    let r = get(&s, "/openapi.json", None).await;
    let doc = r.expect(200).clone();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["security"], json!([{"client": []}]));
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            // Operations without their own `security` take the document's: a client token.
            if op.get("security").is_some() {
                continue;
            }
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = (method != Method::GET && method != Method::DELETE).then(|| json!({}));
            let r = send(&s, method.clone(), &filled(path), None, body.as_ref()).await;
            assert_eq!(
                r.status.as_u16(),
                401,
                "{method} {path} without a token: {}",
                r.text
            );
            assert_eq!(r.body["error"]["code"], Value::from("unauthorized"));
            checked += 1;
        }
    }
    assert!(checked > 30, "only {checked} client operations");
    assert_healthy(&s).await;
}
