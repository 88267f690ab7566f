//! Platform connectors: one [`Connectors`] value makes links when they are created and
//! releases activities to them, dispatching on the link's platform.
//!
//! Each platform lives in its own module ([`webhook`], [`mastodon`], [`email`]) with the same
//! two halves: `validate_config` (run once, at `POST /v1/me/platforms`, so a bad link is a 400
//! instead of a release that fails forever) and `attempt` (one attempt, no retries of its
//! own: the releaser owns the retry policy, so all platforms share it). Every attempt is
//! bounded by [`ConnectorSettings::timeout`]; whatever goes wrong becomes an
//! [`AttemptOutcome`], never a panic or an error the caller has to interpret.
//!
//! Shared by the platforms: [`egress`], the policy on where a link may point (public
//! addresses only, checked when the link is made and again as each release connects);
//! [`http`], one HTTP attempt and the fixed words its outcome is told in; [`sealing`], the
//! link's secret sealed when the link is made and unsealed for each attempt
//! ([`crate::secrets`]).

pub mod egress;
pub mod email;
pub mod http;
pub mod mastodon;
pub mod retry_after;
pub mod sealing;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chorus_actors::model::limits::check_handle;
use chorus_actors::model::{LinkRecord, new_id, now_ms};
use chorus_actors::release::{AttemptOutcome, Connector, Outgoing};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::secrets::SecretBox;
use egress::Egress;

/// Sent with every HTTP request so receivers can tell Chorus traffic apart in their logs.
pub const USER_AGENT: &str = concat!("chorus/", env!("CARGO_PKG_VERSION"));

pub use chorus_actors::model::limits::MAX_HANDLE;

/// Longest secret or token in a link's config, in characters.
pub const MAX_SECRET: usize = 1024;

/// How the connectors reach the outside world (from the server's config).
#[derive(Debug, Clone)]
pub struct ConnectorSettings {
    /// Bound on one attempt's whole I/O (connect + request + response). The server sets it a
    /// little under the releaser's own bound on an attempt, so that an attempt that gets no
    /// answer ends here, with the connector's fixed reason ([`http::NO_ANSWER`]).
    pub timeout: Duration,
    /// e.g. "smtp://127.0.0.1:2525" or "smtps://user:pass@mail.example:465"; None = no email platform.
    pub smtp_url: Option<String>,
    /// From header, e.g. "Chorus <chorus@localhost>".
    pub smtp_from: String,
    /// Where links may point ([`egress`]).
    pub egress: Egress,
    /// Seals link secrets under the server key.
    pub secrets: Arc<SecretBox>,
}

/// Every connector this server has, behind one [`Connector`].
#[derive(Debug, Clone)]
pub struct Connectors {
    /// Shared by webhook and Mastodon: one connection pool, redirects off, no proxy, the
    /// egress policy's resolver, whole-attempt timeout.
    http: reqwest::Client,
    /// Present only when SMTP is configured; without it `email` is not a platform at all.
    email: Option<email::EmailSender>,
    timeout: Duration,
    egress: Egress,
    secrets: Arc<SecretBox>,
}

/// A link config as its connector checked it.
#[derive(Debug)]
pub struct Checked {
    /// What is stored in the clear (a URL).
    pub config: Value,
    /// What is stored sealed.
    pub secret: Option<String>,
    /// The URL releases go to, and the config field it came from (for the egress check).
    pub destination: Option<(url::Url, &'static str)>,
}

impl Connectors {
    /// Builds the HTTP client and (if `smtp_url` is set) the SMTP transport. Bad `smtp_url` or
    /// `smtp_from` -> [`Error::Config`], so a misconfigured server fails at start-up rather
    /// than at its first email.
    pub fn new(settings: &ConnectorSettings) -> Result<Self> {
        let mut http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            // A platform that moved must be linked again: following a redirect would send the
            // signed payload (or a bearer token) somewhere the user never agreed to, and
            // past the egress check.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(resolver) = settings.egress.resolver() {
            // A proxy would resolve the destination itself, unchecked.
            http = http.dns_resolver(resolver).no_proxy();
        }
        let http = http
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
            egress: settings.egress,
            secrets: settings.secrets.clone(),
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

    /// Checks a link's handle and config (`POST /v1/me/platforms`) and answers its config as
    /// it is stored: (handle, [`Checked`]). A destination the egress policy refuses is a 400.
    pub async fn validate(
        &self,
        platform: &str,
        handle: &str,
        config: &Value,
    ) -> Result<(String, Checked)> {
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
        let checked = match platform {
            webhook::PLATFORM => webhook::validate_config(config)?,
            mastodon::PLATFORM => mastodon::validate_config(config, self.egress)?,
            _ => email::validate(&handle, config)?,
        };
        if let Some((url, field)) = &checked.destination {
            self.egress.check_link(url, field, self.timeout).await?;
        }
        Ok((handle, checked))
    }

    /// A new link of `platform` to store: checked ([`Connectors::validate`]), with a fresh
    /// id, its secret sealed for that id.
    pub async fn new_link(
        &self,
        platform: &str,
        handle: &str,
        config: &Value,
    ) -> Result<LinkRecord> {
        let (handle, checked) = self.validate(platform, handle, config).await?;
        let link_id = new_id();
        let secret = match &checked.secret {
            Some(plain) => Some(self.secrets.seal(&link_id, plain)?),
            None => None,
        };
        Ok(LinkRecord {
            link_id,
            platform: platform.to_owned(),
            handle,
            config: checked.config,
            secret,
            created_ms: now_ms(),
        })
    }
}

#[async_trait]
impl Connector for Connectors {
    async fn attempt(&self, out: &Outgoing) -> AttemptOutcome {
        let outcome = match out.link.platform.as_str() {
            platform @ (webhook::PLATFORM | mastodon::PLATFORM) => {
                match self.secret_of(&out.link) {
                    Err(error) => AttemptOutcome::Fail { error },
                    Ok(secret) if platform == webhook::PLATFORM => {
                        webhook::attempt(&self.http, self.egress, out, &secret).await
                    }
                    Ok(token) => mastodon::attempt(&self.http, self.egress, out, &token).await,
                }
            }
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
    use std::sync::Arc;

    use super::{ConnectorSettings, Connectors, Egress, SecretBox};

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

    /// The key every connector test seals under.
    pub fn secrets() -> Arc<SecretBox> {
        Arc::new(SecretBox::new(&[42; crate::secrets::KEY_LEN]).unwrap())
    }

    /// Settings for tests: no SMTP, `egress` as given.
    pub fn settings(timeout: Duration, egress: Egress) -> ConnectorSettings {
        ConnectorSettings {
            timeout,
            smtp_url: None,
            smtp_from: "Chorus <chorus@localhost>".into(),
            egress,
            secrets: secrets(),
        }
    }

    /// Connectors with the egress policy off: the receivers listen on 127.0.0.1.
    pub fn connectors(timeout: Duration) -> Connectors {
        Connectors::new(&settings(timeout, Egress::ANYWHERE)).unwrap()
    }

    /// An attempt of a link whose secret is `secret`, sealed as a link made now would be.
    pub fn outgoing_with(
        platform: &str,
        config: Value,
        secret: Option<&str>,
        attempt: u32,
    ) -> Outgoing {
        let mut out = outgoing(platform, "me", config, attempt);
        out.link.secret = secret.map(|s| secrets().seal(&out.link.link_id, s).unwrap());
        out
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
                secret: None,
                created_ms: 1_700_000_000_000,
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
            smtp_url: smtp_url.map(str::to_owned),
            smtp_from: from.into(),
            ..test_support::settings(Duration::from_secs(5), Egress::PUBLIC_ONLY)
        }
    }

    fn code(r: Result<(String, Checked)>) -> &'static str {
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
            secret: None,
            created_ms: 0,
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

    #[tokio::test]
    async fn platforms_depend_on_smtp() {
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
            .await
            .unwrap_err();
        assert_eq!(err.code(), "unknown_platform");
        assert!(err.to_string().contains("\"webhook\""), "{err}");
        assert!(
            with_mail
                .validate("email", "ada@example.com", &json!({}))
                .await
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

    #[tokio::test]
    async fn unknown_platform_lists_known_ones() {
        let c = Connectors::new(&settings(None, "x@y.z")).unwrap();
        let err = c.validate("myspace", "me", &json!({})).await.unwrap_err();
        assert_eq!(err.code(), "unknown_platform");
        assert_eq!(
            err.to_string(),
            "no connector for platform \"myspace\"; known: [\"webhook\", \"mastodon\"]"
        );
    }

    #[tokio::test]
    async fn handles_are_trimmed_and_bounded() {
        let c = Connectors::new(&settings(None, "x@y.z")).unwrap();
        let cfg = json!({"url": "https://x.example/h", "secret": "s"});
        let (handle, _) = c.validate("webhook", "  me  ", &cfg).await.unwrap();
        assert_eq!(handle, "me");
        assert!(c.validate("webhook", &"é".repeat(128), &cfg).await.is_ok());
        // 100 × "İ" lower-cases to 200 characters: over the limit once normalised.
        for bad in [
            "",
            "   ",
            "é".repeat(129).as_str(),
            "İ".repeat(100).as_str(),
        ] {
            let err = c.validate("webhook", bad, &cfg).await.unwrap_err();
            assert_eq!(err.code(), "invalid_input");
            assert_eq!(err.to_string(), "handle must have 1 to 128 characters");
        }
        assert_eq!(
            code(c.validate("mastodon", "", &json!({})).await),
            "invalid_input"
        );
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

    #[tokio::test]
    async fn new_links_keep_their_secret_sealed_apart() {
        let c = Connectors::new(&settings(None, "x@y.z")).unwrap();
        let cfg = json!({"url": "https://8.8.8.8/h", "secret": "whsec_plain"});
        let link = c.new_link("webhook", "me", &cfg).await.unwrap();
        assert_eq!(link.config, json!({"url": "https://8.8.8.8/h"}));
        let sealed = link.secret.clone().unwrap();
        assert!(sealed.starts_with("v1.") && !sealed.contains("whsec_plain"));
        assert_eq!(c.secret_of(&link).unwrap(), "whsec_plain");
        assert!(
            !serde_json::to_string(&link)
                .unwrap()
                .contains("whsec_plain")
        );
        // A release keeps the link without it.
        assert_eq!(link.public().secret, None);
        let masto = c
            .new_link(
                "mastodon",
                "@me@m.example",
                &json!({"base_url": "https://8.8.4.4", "access_token": "tok_plain"}),
            )
            .await
            .unwrap();
        assert_eq!(masto.config, json!({"base_url": "https://8.8.4.4"}));
        assert_eq!(c.secret_of(&masto).unwrap(), "tok_plain");
        // Two links of one secret seal it differently, each for its own id.
        let other = c.new_link("webhook", "me2", &cfg).await.unwrap();
        assert_ne!(other.secret, link.secret);
        let mut swapped = other.clone();
        swapped.secret = link.secret.clone();
        assert!(c.secret_of(&swapped).is_err());
    }

    #[tokio::test]
    async fn links_to_private_destinations_are_refused() {
        let c = Connectors::new(&settings(None, "x@y.z")).unwrap();
        for (platform, cfg, field) in [
            (
                "webhook",
                json!({"url": "http://127.0.0.1:9/x", "secret": "s"}),
                "url",
            ),
            (
                "webhook",
                json!({"url": "http://localhost/x", "secret": "s"}),
                "url",
            ),
            (
                "webhook",
                json!({"url": "http://169.254.169.254/", "secret": "s"}),
                "url",
            ),
            (
                "mastodon",
                json!({"base_url": "https://[::1]:8443", "access_token": "t"}),
                "base_url",
            ),
        ] {
            let err = c.new_link(platform, "me", &cfg).await.unwrap_err();
            assert_eq!(err.code(), "invalid_input", "{cfg}");
            assert!(
                err.to_string()
                    .starts_with(&format!("config.{field} must point at a public")),
                "{cfg}: {err}"
            );
        }
        // Plain http is refused for Mastodon (the token would travel in the clear), even
        // to a public address; a webhook may use it (its secret only signs).
        let err = c
            .new_link(
                "mastodon",
                "@me@m.example",
                &json!({"base_url": "http://8.8.4.4", "access_token": "t"}),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), "invalid_input");
        assert!(err.to_string().contains("https"), "{err}");
        assert!(
            c.new_link(
                "webhook",
                "me",
                &json!({"url": "http://8.8.4.4/h", "secret": "s"})
            )
            .await
            .is_ok()
        );
        // With the policy off, all of them are taken.
        let open = test_support::connectors(Duration::from_secs(5));
        for (platform, cfg) in [
            (
                "webhook",
                json!({"url": "http://127.0.0.1:9/x", "secret": "s"}),
            ),
            (
                "mastodon",
                json!({"base_url": "http://[::1]:3000", "access_token": "t"}),
            ),
        ] {
            assert!(open.new_link(platform, "me", &cfg).await.is_ok(), "{cfg}");
        }
    }

    #[tokio::test]
    async fn releases_to_private_destinations_are_refused_when_connecting() {
        // Linked while the address was public, or under another policy: the attempt
        // itself refuses it, before any byte is sent, for good.
        let rx = test_support::receiver();
        let strict = Connectors::new(&test_support::settings(
            Duration::from_secs(5),
            Egress::PUBLIC_ONLY,
        ))
        .unwrap();
        let port = url::Url::parse(&rx.url("/s/204")).unwrap().port().unwrap();
        for url in [
            rx.url("/s/204"),
            // A name that resolves to loopback: the resolver refuses its answer.
            format!("http://localhost:{port}/s/204"),
            format!("http://[::ffff:127.0.0.1]:{port}/s/204"),
        ] {
            let out = test_support::outgoing_with("webhook", json!({"url": url}), Some("s"), 1);
            assert_eq!(
                strict.attempt(&out).await,
                AttemptOutcome::Fail {
                    error: egress::NOT_ALLOWED.into()
                },
                "{url}"
            );
            let masto = test_support::outgoing_with(
                "mastodon",
                json!({"base_url": url.trim_end_matches("/s/204")}),
                Some("t"),
                1,
            );
            assert!(
                matches!(strict.attempt(&masto).await, AttemptOutcome::Fail { error } if error == egress::NOT_ALLOWED)
            );
        }
        assert_eq!(
            rx.requests().len(),
            0,
            "a refused destination got a request"
        );
    }
}
