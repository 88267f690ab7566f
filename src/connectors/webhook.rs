//! Webhook: an HTTP POST of the activity as JSON, signed so the receiver can tell it came
//! from Chorus and was not replayed long after.
//!
//! The signature covers `timestamp + "." + body` (HMAC-SHA256 with the link's secret): the
//! receiver recomputes it over the exact bytes it got and rejects stale timestamps. The body
//! carries nothing attempt-specific, so every attempt of one release sends identical bytes
//! and the `Idempotency-Key` header is all a receiver needs to drop repeats.

use std::time::{SystemTime, UNIX_EPOCH};

use chorus_actors::release::{AttemptOutcome, Outgoing};
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::Sha256;

use super::egress::Egress;
use super::{Checked, MAX_SECRET, USER_AGENT, http, http_url_field, str_field};
use crate::error::{Error, Result};

pub const PLATFORM: &str = "webhook";

/// The config checked: `{"url": normalized}` to store in the clear and the secret to seal;
/// other fields are dropped.
pub fn validate_config(config: &Value) -> Result<Checked> {
    let url = http_url_field(config, "url")?;
    let secret = str_field(config, "secret").unwrap_or_default();
    if secret.is_empty() || secret.chars().count() > MAX_SECRET {
        return Err(Error::invalid(format!(
            "config.secret must be a non-empty string of at most {MAX_SECRET} characters"
        )));
    }
    Ok(Checked {
        config: json!({"url": url.as_str()}),
        secret: Some(secret.to_owned()),
        destination: Some((url, "url")),
    })
}

/// The JSON body, fields in this order (a struct, not a map, so the order is fixed).
#[derive(Serialize)]
struct Payload<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    activity_id: &'a str,
    account_id: &'a str,
    author_name: &'a str,
    text: &'a str,
    created_ms: u64,
    link_id: &'a str,
    handle: &'a str,
}

/// The exact bytes POSTed for `out` (the same for every attempt).
pub fn body(out: &Outgoing) -> Vec<u8> {
    let payload = Payload {
        kind: "activity.posted",
        activity_id: &out.activity.activity_id,
        account_id: &out.activity.account_id,
        author_name: &out.activity.author_name,
        text: &out.activity.text,
        created_ms: out.activity.created_ms,
        link_id: &out.link.link_id,
        handle: &out.link.handle,
    };
    // Serialising plain strings and integers into a Vec cannot fail.
    serde_json::to_vec(&payload).unwrap_or_default()
}

/// Lowercase hex HMAC-SHA256(secret, timestamp + "." + body); the header value is
/// `v1=<this>`.
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length (long ones are hashed), so this never takes the else.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// One attempt: POST the body, signed with the link's (unsealed) `secret`, to its URL.
pub async fn attempt(
    client: &reqwest::Client,
    egress: Egress,
    out: &Outgoing,
    secret: &str,
) -> AttemptOutcome {
    // The stored config was validated at link time; a record that no longer reads is a
    // permanent problem, not a network one.
    let Some(url) = str_field(&out.link.config, "url") else {
        return AttemptOutcome::Fail {
            error: "webhook link config lacks url".into(),
        };
    };
    let body = body(out);
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
        .to_string();
    let signature = sign(secret.as_bytes(), &timestamp, &body);
    let request = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::USER_AGENT, USER_AGENT)
        .header("Chorus-Timestamp", &timestamp)
        .header("Chorus-Signature", format!("v1={signature}"))
        .header("Idempotency-Key", &out.idempotency_key)
        .header("Chorus-Attempt", out.attempt.to_string())
        .body(body);
    http::send(client, egress, request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::http::NO_ANSWER;
    use crate::connectors::test_support::{connectors, outgoing, outgoing_with, receiver};
    use chorus_actors::release::Connector;
    use std::time::Duration;

    fn err(config: Value) -> (String, String) {
        let e = validate_config(&config).unwrap_err();
        (e.code().to_owned(), e.to_string())
    }

    #[test]
    fn config_needs_http_url_and_secret() {
        let checked = validate_config(&json!({
            "url": "HTTPS://X.example/h?q=1", "secret": "s", "extra": true
        }))
        .unwrap();
        // The secret is kept apart, to be sealed; the URL alone is stored in the clear.
        assert_eq!(checked.config, json!({"url": "https://x.example/h?q=1"}));
        assert_eq!(checked.secret.as_deref(), Some("s"));
        let (url, field) = checked.destination.unwrap();
        assert_eq!((url.as_str(), field), ("https://x.example/h?q=1", "url"));
        for (bad, field) in [
            (
                json!({"url": "ftp://x.example", "secret": "s"}),
                "config.url",
            ),
            (json!({"url": "not a url", "secret": "s"}), "config.url"),
            (json!({"url": "https://", "secret": "s"}), "config.url"),
            (json!({"url": 7, "secret": "s"}), "config.url"),
            (json!({"secret": "s"}), "config.url"),
            (json!({"url": "https://x.example"}), "config.secret"),
            (
                json!({"url": "https://x.example", "secret": ""}),
                "config.secret",
            ),
            (
                json!({"url": "https://x.example", "secret": 5}),
                "config.secret",
            ),
            (
                json!({"url": "https://x.example", "secret": "s".repeat(1025)}),
                "config.secret",
            ),
            (Value::Null, "config.url"),
        ] {
            let (code, message) = err(bad.clone());
            assert_eq!(code, "invalid_input", "{bad}");
            assert!(message.starts_with(field), "{bad}: {message}");
        }
        assert!(
            validate_config(&json!({"url": "http://127.0.0.1:9/x", "secret": "s".repeat(1024)}))
                .is_ok()
        );
    }

    #[test]
    fn signature_matches_an_independent_hmac_and_a_fixed_vector() {
        let body = br#"{"type":"activity.posted"}"#;
        let mut mac = Hmac::<Sha256>::new_from_slice(b"topsecret").unwrap();
        mac.update(b"1700000000.");
        mac.update(body);
        let expected = hex::encode(mac.finalize().into_bytes());
        assert_eq!(sign(b"topsecret", "1700000000", body), expected);
        // Fixed vector (computed with Python's hmac module) over "1700000000." + body.
        assert_eq!(
            sign(b"whsec_test", "1700000000", body),
            "8a0cb2b87a447c1bbbba892d569a87f8fbc0176de3761929989d79a1df19bde9"
        );
    }

    #[test]
    fn body_has_the_contract_shape() {
        let out = outgoing("webhook", "me", json!({}), 3);
        let text = String::from_utf8(body(&out)).unwrap();
        assert_eq!(
            text,
            r#"{"type":"activity.posted","activity_id":"0123456789abcdef0123456789abcdef","account_id":"acc1","author_name":"Ada Lovelace","text":"Hello, \"world\" — ünïcödé\nsecond line","created_ms":1700000000123,"link_id":"link1","handle":"me"}"#
        );
        // Nothing attempt-specific inside.
        assert_eq!(body(&outgoing("webhook", "me", json!({}), 9)), body(&out));
    }

    #[actix_web::test]
    async fn posts_signed_and_maps_statuses() {
        let rx = receiver();
        let c = connectors(Duration::from_secs(5));
        let config = |path: &str| json!({"url": rx.url(path), "secret": "s3cret"});

        // Signed with the sealed secret, unsealed for the attempt; and with the plaintext
        // secret of a link stored before secrets were sealed.
        let first = outgoing_with(
            "webhook",
            json!({"url": rx.url("/s/204")}),
            Some("s3cret"),
            1,
        );
        assert_eq!(c.attempt(&first).await, AttemptOutcome::Delivered);
        let second = outgoing("webhook", "me", config("/s/200"), 2);
        assert_eq!(c.attempt(&second).await, AttemptOutcome::Delivered);

        let seen = rx.requests();
        assert_eq!(seen.len(), 2);
        for (req, attempt) in seen.iter().zip(["1", "2"]) {
            assert_eq!(req.method, "POST");
            let h = &req.headers;
            assert_eq!(h["content-type"], "application/json");
            assert_eq!(h["user-agent"], USER_AGENT);
            assert!(h["user-agent"].starts_with("chorus/"));
            assert_eq!(h["idempotency-key"], first.idempotency_key);
            assert_eq!(h["chorus-attempt"], attempt);
            let ts = &h["chorus-timestamp"];
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let ts_num: u64 = ts.parse().unwrap();
            assert!(now.abs_diff(ts_num) < 60, "timestamp {ts} vs now {now}");
            // Independent check over the exact received bytes.
            let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
            mac.update(format!("{ts}.").as_bytes());
            mac.update(&req.body);
            let want = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
            assert_eq!(h["chorus-signature"], want);
            let v: Value = serde_json::from_slice(&req.body).unwrap();
            assert_eq!(v["type"], "activity.posted");
            assert_eq!(v["activity_id"], "0123456789abcdef0123456789abcdef");
            assert_eq!(v["account_id"], "acc1");
            assert_eq!(v["author_name"], "Ada Lovelace");
            assert_eq!(v["text"], "Hello, \"world\" — ünïcödé\nsecond line");
            assert_eq!(v["created_ms"], 1_700_000_000_123u64);
            assert_eq!(v["link_id"], "link1");
            assert_eq!(v["handle"], "me");
            assert_eq!(v.as_object().unwrap().len(), 8);
        }
        // Same bytes on every attempt.
        assert_eq!(seen[0].body, seen[1].body);

        // 500 -> retry; its Retry-After is not honoured (only 429/503); the body ("boom")
        // is never shown.
        assert_eq!(
            c.attempt(&outgoing("webhook", "me", config("/s/500"), 1))
                .await,
            AttemptOutcome::Retry {
                error: "HTTP 500".into(),
                after: None
            }
        );
        // 400 -> fail, the status alone.
        assert_eq!(
            c.attempt(&outgoing("webhook", "me", config("/s/400"), 1))
                .await,
            AttemptOutcome::Fail {
                error: "HTTP 400".into()
            }
        );
        // 429 with Retry-After: 7 -> retry after 7 s.
        assert_eq!(
            c.attempt(&outgoing("webhook", "me", config("/s/429"), 1))
                .await,
            AttemptOutcome::Retry {
                error: "HTTP 429".into(),
                after: Some(Duration::from_secs(7))
            }
        );
        // A redirect is not followed (it would land on /s/204 and succeed).
        let before = rx.requests().len();
        assert_eq!(
            c.attempt(&outgoing("webhook", "me", config("/s/302"), 1))
                .await,
            AttemptOutcome::Fail {
                error: "HTTP 302".into()
            }
        );
        assert_eq!(rx.requests().len(), before + 1);
        // 404 (unknown path) fails.
        assert!(matches!(
            c.attempt(&outgoing("webhook", "me", config("/nowhere"), 1))
                .await,
            AttemptOutcome::Fail { .. }
        ));
    }

    #[actix_web::test]
    async fn a_receiver_that_never_answers_times_out() {
        let rx = receiver();
        let c = connectors(Duration::from_secs(1));
        let out = outgoing(
            "webhook",
            "me",
            json!({"url": rx.url("/hang"), "secret": "s"}),
            1,
        );
        let started = std::time::Instant::now();
        let outcome = c.attempt(&out).await;
        let took = started.elapsed();
        // The same words as a refused connection: a port that answers nothing and a closed
        // one look alike.
        assert_eq!(
            outcome,
            AttemptOutcome::Retry {
                error: NO_ANSWER.into(),
                after: None
            }
        );
        assert!(took < Duration::from_secs(5), "took {took:?}");
    }

    #[actix_web::test]
    async fn connection_refused_is_retried_in_the_same_words_as_a_timeout() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let c = connectors(Duration::from_secs(2));
        let out = outgoing(
            "webhook",
            "me",
            json!({"url": format!("http://127.0.0.1:{port}/h"), "secret": "s"}),
            1,
        );
        assert_eq!(
            c.attempt(&out).await,
            AttemptOutcome::Retry {
                error: NO_ANSWER.into(),
                after: None
            }
        );
    }

    #[actix_web::test]
    async fn a_link_without_its_secret_fails() {
        let rx = receiver();
        let c = connectors(Duration::from_secs(5));
        let out = outgoing_with("webhook", json!({"url": rx.url("/s/204")}), None, 1);
        assert_eq!(
            c.attempt(&out).await,
            AttemptOutcome::Fail {
                error: "webhook link has no secret".into()
            }
        );
        assert_eq!(rx.requests().len(), 0);
    }
}
