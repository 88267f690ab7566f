//! Platform connectors: one [`Connectors`] value validates links when they are created and
//! releases activities to them, dispatching on the link's platform.
//!
//! Each platform lives in its own module ([`webhook`], [`mastodon`], [`email`]) with the same
//! two halves: `validate_config` (run once, at `POST /v1/me/platforms`, so a bad link is a 400
//! instead of a release that fails forever) and `attempt` (one attempt, no retries of its
//! own: the releaser owns the retry policy, so all platforms share it). Every attempt is
//! bounded by [`ConnectorSettings::timeout`]; whatever goes wrong becomes an
//! [`AttemptOutcome`], never a panic or an error the caller has to interpret.

pub mod email;
pub mod mastodon;
pub mod retry_after;
pub mod webhook;

use std::time::Duration;

use async_trait::async_trait;
use chorus_actors::model::LinkRecord;
use chorus_actors::model::limits::check_handle;
use chorus_actors::release::{AttemptOutcome, Connector, Outgoing};
use serde_json::Value;

use crate::error::{Error, Result};

/// Sent with every HTTP request so receivers can tell Chorus traffic apart in their logs.
pub const USER_AGENT: &str = concat!("chorus/", env!("CARGO_PKG_VERSION"));

pub use chorus_actors::model::limits::MAX_HANDLE;

/// Longest secret or token in a link's config, in characters.
pub const MAX_SECRET: usize = 1024;

/// How the connectors reach the outside world (from the server's config).
#[derive(Debug, Clone)]
pub struct ConnectorSettings {
    /// Bound on one attempt's whole I/O (connect + request + response).
    pub timeout: Duration,
    /// e.g. "smtp://127.0.0.1:2525" or "smtps://user:pass@mail.example:465"; None = no email platform.
    pub smtp_url: Option<String>,
    /// From header, e.g. "Chorus <chorus@localhost>".
    pub smtp_from: String,
}

/// Every connector this server has, behind one [`Connector`].
#[derive(Debug, Clone)]
pub struct Connectors {
    /// Shared by webhook and Mastodon: one connection pool, redirects off, whole-attempt timeout.
    http: reqwest::Client,
    /// Present only when SMTP is configured; without it `email` is not a platform at all.
    email: Option<email::EmailSender>,
    timeout: Duration,
}

impl Connectors {
    /// Builds the HTTP client and (if `smtp_url` is set) the SMTP transport. Bad `smtp_url` or
    /// `smtp_from` -> [`Error::Config`], so a misconfigured server fails at start-up rather
    /// than at its first email.
    pub fn new(settings: &ConnectorSettings) -> Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            // A platform that moved must be linked again: following a redirect would send the
            // signed payload (or a bearer token) somewhere the user never agreed to.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Config(format!("building the HTTP client: {e}")))?;
        let email = match &settings.smtp_url {
            Some(url) => Some(email::EmailSender::new(
                url,
                &settings.smtp_from,
                settings.timeout,
            )?),
            None => None,
        };
        Ok(Connectors {
            http,
            email,
            timeout: settings.timeout,
        })
    }

    /// Platforms this server can release to: ["webhook", "mastodon"] plus "email" when SMTP is
    /// configured.
    pub fn platforms(&self) -> Vec<&'static str> {
        let mut known = vec![webhook::PLATFORM, mastodon::PLATFORM];
        if self.email.is_some() {
            known.push(email::PLATFORM);
        }
        known
    }

    /// Validates a link when it is created (`POST /v1/me/platforms`). Returns (handle to store,
    /// config to store); the stored config keeps only the fields the connector uses.
    pub fn validate(
        &self,
        platform: &str,
        handle: &str,
        config: &Value,
    ) -> Result<(String, Value)> {
        if !self.platforms().contains(&platform) {
            return Err(Error::Domain(chorus_actors::Error::Invalid {
                code: "unknown_platform",
                message: format!(
                    "no connector for platform {platform:?}; known: {:?}",
                    self.platforms()
                ),
            }));
        }
        let handle = check_handle(platform, handle)?;
        let config = match platform {
            webhook::PLATFORM => webhook::validate_config(config)?,
            mastodon::PLATFORM => mastodon::validate_config(config)?,
            _ => email::validate(&handle, config)?,
        };
        Ok((handle, config))
    }
}

#[async_trait]
impl Connector for Connectors {
    async fn attempt(&self, out: &Outgoing) -> AttemptOutcome {
        let outcome = match out.link.platform.as_str() {
            webhook::PLATFORM => webhook::attempt(&self.http, self.timeout, out).await,
            mastodon::PLATFORM => mastodon::attempt(&self.http, self.timeout, out).await,
            email::PLATFORM => match &self.email {
                Some(sender) => sender.attempt(out).await,
                // The link was made while SMTP was configured; the server has since been
                // restarted without it. Retrying cannot help until an operator acts.
                None => AttemptOutcome::Fail {
                    error: "email is not configured on this server".into(),
                },
            },
            other => AttemptOutcome::Fail {
                error: format!("no connector for platform {other:?}"),
            },
        };
        tracing::debug!(
            platform = %out.link.platform,
            link_id = %out.link.link_id,
            activity_id = %out.activity.activity_id,
            attempt = out.attempt,
            ?outcome,
            "release attempt"
        );
        outcome
    }

    fn destination(&self, link: &LinkRecord) -> Option<String> {
        let url = match link.platform.as_str() {
            webhook::PLATFORM => str_field(&link.config, "url"),
            mastodon::PLATFORM => str_field(&link.config, "base_url"),
            // Every email goes through the one relay.
            email::PLATFORM => return Some("smtp".into()),
            _ => None,
        }?;
        let url = url::Url::parse(url).ok()?;
        Some(format!(
            "{}://{}:{}",
            url.scheme(),
            url.host_str()?,
            url.port_or_known_default()?
        ))
    }
}

/// A string field of a link's config, if present and a string.
fn str_field<'a>(config: &'a Value, name: &str) -> Option<&'a str> {
    config.get(name).and_then(Value::as_str)
}

/// An http(s) URL with a host, or a 400 naming `field`.
fn http_url_field(config: &Value, field: &str) -> Result<url::Url> {
    let must = || format!("config.{field} must be an http or https URL");
    let raw = str_field(config, field).ok_or_else(|| Error::invalid(must()))?;
    let parsed =
        url::Url::parse(raw.trim()).map_err(|e| Error::invalid(format!("{} ({e})", must())))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(Error::invalid(must()));
    }
    Ok(parsed)
}

/// Sends one request and reads the answer the shared way ([`AttemptOutcome::from_http`]).
async fn send_http(request: reqwest::RequestBuilder, timeout: Duration) -> AttemptOutcome {
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => return request_error(&e, timeout),
    };
    let status = response.status().as_u16();
    if response.status().is_success() {
        return AttemptOutcome::Delivered;
    }
    let retry_after = retry_after::from_response(status, response.headers());
    let detail = read_detail(response).await;
    AttemptOutcome::from_http(status, retry_after, &detail)
}

/// How many characters of an error response are kept: enough to show the platform's reason,
/// short enough for a release record.
const DETAIL_CHARS: usize = 200;

/// The first [`DETAIL_CHARS`] characters of the body (lossy UTF-8, trimmed). Reads at most a
/// few KiB, so a platform answering with an endless body cannot hold the attempt; a body that
/// fails mid-way keeps what arrived (the status already says what happened).
async fn read_detail(mut response: reqwest::Response) -> String {
    // 4 bytes per char at most, plus slack so a character cut at the end stays beyond 200.
    const MAX_BYTES: usize = DETAIL_CHARS * 4 + 64;
    let mut bytes = Vec::new();
    while bytes.len() < MAX_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    bytes.truncate(MAX_BYTES);
    String::from_utf8_lossy(&bytes)
        .trim()
        .chars()
        .take(DETAIL_CHARS)
        .collect::<String>()
        .trim_end()
        .to_owned()
}

/// A request that got no HTTP answer. A request that could not even be built (say, a header
/// value the stored config makes invalid) fails for good; everything else is the network's
/// fault and worth another try.
fn request_error(e: &reqwest::Error, timeout: Duration) -> AttemptOutcome {
    if e.is_builder() {
        return AttemptOutcome::Fail {
            error: format!("invalid request: {}", root_cause(e)),
        };
    }
    AttemptOutcome::Retry {
        error: describe_network_error(e, timeout),
        after: None,
    }
}

/// A concise reason, e.g. "timed out after 10s", "connection refused".
fn describe_network_error(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("timed out after {}", human_duration(timeout));
    }
    if let Some(io) = find_io_error(e) {
        match io.kind() {
            std::io::ErrorKind::ConnectionRefused => return "connection refused".into(),
            std::io::ErrorKind::ConnectionReset => return "connection reset".into(),
            std::io::ErrorKind::TimedOut => {
                return format!("timed out after {}", human_duration(timeout));
            }
            _ => {}
        }
    }
    if e.is_connect() {
        format!("could not connect: {}", root_cause(e))
    } else {
        format!("request failed: {}", root_cause(e))
    }
}

fn find_io_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        current = err.source();
    }
    None
}

/// The innermost error's message: reqwest's own wrappers ("error sending request for url
/// (...)") repeat the URL, which may carry a secret path, and say little.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut current = e;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// "10s", "1500ms".
fn human_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! The shared recording receiver (`chorus_testkit`) scripted by path for the connector
    //! tests, plus builders for the values a release attempt needs.

    use std::time::Duration;

    use chorus_actors::model::ActivityRecord;
    use chorus_actors::model::LinkRecord;
    use chorus_actors::release::Outgoing;
    use chorus_testkit::{Receiver, Reply, Script};
    use serde_json::Value;

    use super::{ConnectorSettings, Connectors};

    /// A receiver whose answer depends on the path: `/s/{code}` answers that status (429
    /// with `Retry-After: 7`, 302 with a `Location` to `/s/204`); `/hang` never answers in
    /// time; `.../api/v1/statuses` answers like Mastodon (422 under `/m422`).
    pub fn receiver() -> Receiver {
        Receiver::start(Script::ByPath(by_path), None)
    }

    fn by_path(path: &str) -> Reply {
        if path == "/hang" {
            return Reply::hang(Duration::from_secs(30));
        }
        if path.ends_with("/api/v1/statuses") {
            if path.starts_with("/m422") {
                return Reply::status(422)
                    .json(r#"{"error":"Validation failed: Text can't be blank"}"#);
            }
            return Reply::status(200).json(r#"{"id":"103254962155278888"}"#);
        }
        let Some(code) = path.strip_prefix("/s/").and_then(|c| c.parse::<u16>().ok()) else {
            return Reply::status(404).body("no such path");
        };
        match code {
            429 => Reply::retry_after(429, 7).body("  slow down  "),
            302 => Reply::status(302).header("Location", "/s/204").body(""),
            500 => Reply::retry_after(500, 7).body("boom"),
            400 => Reply::status(400).body(&"x".repeat(1000)),
            _ => Reply::status(code).body(""),
        }
    }

    pub fn connectors(timeout: Duration) -> Connectors {
        Connectors::new(&ConnectorSettings {
            timeout,
            smtp_url: None,
            smtp_from: "Chorus <chorus@localhost>".into(),
        })
        .unwrap()
    }

    pub fn outgoing(platform: &str, handle: &str, config: Value, attempt: u32) -> Outgoing {
        Outgoing {
            activity: ActivityRecord {
                activity_id: "0123456789abcdef0123456789abcdef".into(),
                account_id: "acc1".into(),
                author_name: "Ada Lovelace".into(),
                text: "Hello, \"world\" — ünïcödé\nsecond line".into(),
                created_ms: 1_700_000_000_123,
                idempotency_key: None,
            },
            link: LinkRecord {
                link_id: "link1".into(),
                platform: platform.into(),
                handle: handle.into(),
                config,
                created_ms: 1_700_000_000_000,
                proof: Default::default(),
            },
            idempotency_key: "0123456789abcdef0123456789abcdef-link1".into(),
            attempt,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(smtp_url: Option<&str>, from: &str) -> ConnectorSettings {
        ConnectorSettings {
            timeout: Duration::from_secs(5),
            smtp_url: smtp_url.map(str::to_owned),
            smtp_from: from.into(),
        }
    }

    fn code(r: Result<(String, Value)>) -> &'static str {
        r.err().map(|e| e.code()).unwrap_or("ok")
    }

    #[test]
    fn destinations_group_links_by_server() {
        let c = Connectors::new(&settings(None, "Chorus <chorus@localhost>")).unwrap();
        let link = |platform: &str, config: Value| LinkRecord {
            link_id: "l".into(),
            platform: platform.into(),
            handle: "h".into(),
            config,
            created_ms: 0,
            proof: Default::default(),
        };
        let dest = |l: LinkRecord| c.destination(&l);
        assert_eq!(
            dest(link(
                "webhook",
                json!({"url": "http://127.0.0.1:9001/a", "secret": "s"})
            )),
            Some("http://127.0.0.1:9001".into())
        );
        // Two paths on one server are one destination; the default port is made explicit.
        assert_eq!(
            dest(link(
                "webhook",
                json!({"url": "https://hooks.example/x", "secret": "s"})
            )),
            dest(link(
                "webhook",
                json!({"url": "https://hooks.example:443/y", "secret": "s"})
            ))
        );
        assert_eq!(
            dest(link(
                "mastodon",
                json!({"base_url": "https://mastodon.social", "access_token": "t"})
            )),
            Some("https://mastodon.social:443".into())
        );
        assert_eq!(dest(link("email", json!({}))), Some("smtp".into()));
        assert_eq!(dest(link("myspace", json!({}))), None);
    }

    #[test]
    fn platforms_depend_on_smtp() {
        let plain = Connectors::new(&settings(None, "Chorus <chorus@localhost>")).unwrap();
        assert_eq!(plain.platforms(), ["webhook", "mastodon"]);
        let with_mail = Connectors::new(&settings(
            Some("smtp://127.0.0.1:2525"),
            "Chorus <chorus@localhost>",
        ))
        .unwrap();
        assert_eq!(with_mail.platforms(), ["webhook", "mastodon", "email"]);
        // Email is not a platform without SMTP.
        let err = plain
            .validate("email", "ada@example.com", &json!({}))
            .unwrap_err();
        assert_eq!(err.code(), "unknown_platform");
        assert!(err.to_string().contains("\"webhook\""), "{err}");
        assert!(
            with_mail
                .validate("email", "ada@example.com", &json!({}))
                .is_ok()
        );
    }

    #[test]
    fn bad_smtp_settings_are_config_errors() {
        for (url, from) in [
            ("not a url", "Chorus <chorus@localhost>"),
            ("ftp://mail.example", "Chorus <chorus@localhost>"),
            ("smtp://127.0.0.1:2525", "not an address"),
            ("smtp://127.0.0.1:2525", ""),
        ] {
            let err = Connectors::new(&settings(Some(url), from)).unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{url} {from}: {err:?}");
        }
    }

    #[test]
    fn unknown_platform_lists_known_ones() {
        let c = Connectors::new(&settings(None, "x@y.z")).unwrap();
        let err = c.validate("myspace", "me", &json!({})).unwrap_err();
        assert_eq!(err.code(), "unknown_platform");
        assert_eq!(
            err.to_string(),
            "no connector for platform \"myspace\"; known: [\"webhook\", \"mastodon\"]"
        );
    }

    #[test]
    fn handles_are_trimmed_and_bounded() {
        let c = Connectors::new(&settings(None, "x@y.z")).unwrap();
        let cfg = json!({"url": "https://x.example/h", "secret": "s"});
        let (handle, _) = c.validate("webhook", "  me  ", &cfg).unwrap();
        assert_eq!(handle, "me");
        assert!(c.validate("webhook", &"é".repeat(128), &cfg).is_ok());
        // 100 × "İ" lower-cases to 200 characters: over the limit once normalised.
        for bad in [
            "",
            "   ",
            "é".repeat(129).as_str(),
            "İ".repeat(100).as_str(),
        ] {
            let err = c.validate("webhook", bad, &cfg).unwrap_err();
            assert_eq!(err.code(), "invalid_input");
            assert_eq!(err.to_string(), "handle must have 1 to 128 characters");
        }
        assert_eq!(
            code(c.validate("mastodon", "", &json!({}))),
            "invalid_input"
        );
    }

    #[test]
    fn durations_read_short() {
        assert_eq!(human_duration(Duration::from_secs(10)), "10s");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[actix_web::test]
    async fn unknown_platform_fails_the_attempt() {
        let c = test_support::connectors(Duration::from_secs(1));
        let out = test_support::outgoing("myspace", "me", json!({}), 1);
        assert!(matches!(
            c.attempt(&out).await,
            AttemptOutcome::Fail { error } if error.contains("myspace")
        ));
        let out = test_support::outgoing("email", "ada@example.com", json!({}), 1);
        assert!(matches!(c.attempt(&out).await, AttemptOutcome::Fail { .. }));
    }
}
