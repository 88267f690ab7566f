//! The web client's files at `/` and `/web/{name}` (src/http/webapp.rs): content types,
//! revalidation with `ETag`, the page's security headers, HEAD, and no way out of the
//! embedded table (traversal attempts are sent as raw request lines, since an HTTP client
//! would normalise them away first). What the client does is tested in Chromium (tests/web).

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

#[tokio::test]
async fn the_page_and_its_modules_are_served_with_their_types() {
    let s = Server::start();
    let page = get(&s, "/", None).await;
    page.expect(200);
    let header = |r: &Resp, name: &str| {
        r.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
    assert!(
        page.text
            .contains(r#"<script type="module" src="/web/app.js">"#)
    );
    assert!(header(&page, "content-security-policy").contains("default-src 'self'"));
    assert_eq!(header(&page, "x-frame-options"), "DENY");
    assert_eq!(header(&page, "cache-control"), "no-cache");
    for (path, ty) in [
        ("/web/app.js", "text/javascript; charset=utf-8"),
        ("/web/live.js", "text/javascript; charset=utf-8"),
        ("/web/style.css", "text/css; charset=utf-8"),
        ("/web/index.html", "text/html; charset=utf-8"),
    ] {
        let r = get(&s, path, None).await;
        r.expect(200);
        assert_eq!(header(&r, "content-type"), ty, "{path}");
        assert_eq!(header(&r, "x-content-type-options"), "nosniff", "{path}");
        assert!(header(&r, "etag").starts_with('"'), "{path}");
    }
    assert_healthy(&s).await;
}

#[tokio::test]
async fn a_known_etag_answers_304_without_a_body() {
    let s = Server::start();
    let first = get(&s, "/web/app.js", None).await;
    let etag = first.headers["etag"].to_str().unwrap().to_string();
    let again = finish(
        client()
            .get(s.url("/web/app.js"))
            .header("If-None-Match", format!("\"other\", {etag}")),
    )
    .await;
    assert_eq!(again.status.as_u16(), 304);
    assert!(again.text.is_empty());
    assert_eq!(again.headers["etag"].to_str().unwrap(), etag);
    let stale = finish(
        client()
            .get(s.url("/web/app.js"))
            .header("If-None-Match", "\"stale\""),
    )
    .await;
    assert_eq!(stale.status.as_u16(), 200);
    assert_eq!(stale.text, first.text);
}

#[tokio::test]
async fn head_answers_the_headers_only() {
    let s = Server::start();
    let r = finish(client().head(s.url("/"))).await;
    assert_eq!(r.status.as_u16(), 200);
    assert!(r.text.is_empty());
    assert_eq!(
        r.headers["content-type"].to_str().unwrap(),
        "text/html; charset=utf-8"
    );
}

/// One raw HTTP/1.1 request line; answers the status code and the body.
async fn raw_get(s: &Server, target: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(&s.addr).await.unwrap();
    let request = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).to_string();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn nothing_outside_the_embedded_files_is_served() {
    let s = Server::start();
    for target in [
        "/web/../Cargo.toml",
        "/web/..%2fCargo.toml",
        "/web/%2e%2e%2fCargo.toml",
        "/web/%2e%2e/Cargo.toml",
        "/web/..%5cCargo.toml",
        "/web//etc/passwd",
        "/web/%2fetc%2fpasswd",
        "/web/",
        "/web/nope.js",
        "/web/App.js",
        "/../Cargo.toml",
        "/index.html",
    ] {
        let (status, body) = raw_get(&s, target).await;
        assert_eq!(status, 404, "{target}: {body}");
        assert!(!body.contains("[package]"), "{target}");
        assert!(!body.contains("root:"), "{target}");
        if !body.trim().is_empty() {
            let v: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
            assert_error_shape(&v, "not_found", &body);
        }
    }
    assert_healthy(&s).await;
}
