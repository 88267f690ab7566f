//! The web client (`web/` at the crate root), served at `/`: plain JavaScript modules and a
//! style sheet, embedded in the binary with `include_bytes!`, so a user needs no build step
//! and no file beside the binary. `GET /` is `index.html`; every other file is
//! `GET /web/{name}`.
//!
//! A request names a file by looking it up in [`ASSETS`], a fixed table of names, never by
//! touching the file system: `..`, `%2e%2e`, absolute paths or anything else not in the
//! table is a 404 in the contract's shape, so there is no directory traversal to defend
//! against. The files have no content hash in their names, so they are served with
//! `Cache-Control: no-cache` and a strong `ETag` (SHA-256 of the bytes): a browser revalidates
//! on every load and gets a bodiless 304 while the binary is the same.

use std::sync::OnceLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, guard, web};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// One embedded file: its name under `/web/` and its bytes.
struct Asset {
    name: &'static str,
    bytes: &'static [u8],
}

/// Embeds each listed file of `web/`. A unit test checks that the list and the folder agree,
/// so a file added to `web/` and not here fails the build's tests, not a user's browser.
macro_rules! assets {
    ($($name:literal),* $(,)?) => {
        const ASSETS: &[Asset] = &[$(Asset {
            name: $name,
            bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/", $name)),
        }),*];
    };
}

assets!(
    "index.html",
    "style.css",
    "app.js",
    "api.js",
    "live.js",
    "dom.js",
    "names.js",
    "auth.js",
    "friends.js",
    "groups.js",
    "activities.js",
);

/// What the page may load and reach: only this origin (its scripts, its API, its WebSocket;
/// `'self'` covers `ws:`/`wss:` of the same host), no inline script, no framing.
const CSP: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data:; \
                   object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The `Content-Type` of an embedded file, by its extension.
fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// The `ETag` of every asset, by its index in [`ASSETS`], hashed once on first use.
fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| format!("\"{}\"", hex::encode(&Sha256::digest(a.bytes)[..16])))
            .collect()
    })
}

/// Answers the asset `name`: 200 with its bytes, or 304 when the request's `If-None-Match`
/// names its current `ETag`; 404 `not_found` for a name not in the table.
fn serve(req: &HttpRequest, name: &str) -> Result<HttpResponse> {
    let Some(index) = ASSETS.iter().position(|a| a.name == name) else {
        return Err(Error::Domain(chorus_actors::Error::NotFound("route")));
    };
    let asset = &ASSETS[index];
    let etag = &etags()[index];
    let fresh = req
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/") == etag
        });
    let mut response = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, etag.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"));
    if name.ends_with(".html") {
        response
            .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
            .insert_header((header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")));
    }
    if fresh {
        return Ok(response.finish());
    }
    Ok(response
        .content_type(content_type(asset.name))
        .body(asset.bytes))
}

/// `GET /`: the client's page.
async fn index(req: HttpRequest) -> Result<HttpResponse> {
    serve(&req, "index.html")
}

/// `GET /web/{name}`: one of the client's files.
async fn file(req: HttpRequest, name: web::Path<String>) -> Result<HttpResponse> {
    serve(&req, &name)
}

/// GET and HEAD (a HEAD answer has the headers and no body).
fn get_or_head() -> actix_web::Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

/// Registers `/` and `/web/{name}`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", get_or_head().to(index))
        .route("/web/{name}", get_or_head().to(file));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file of `web/` is embedded, and every embedded name is a file there.
    #[test]
    fn the_table_lists_the_folder() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/web");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = ASSETS.iter().map(|a| a.name.to_string()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded);
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("style.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("noext"), "application/octet-stream");
    }
}
