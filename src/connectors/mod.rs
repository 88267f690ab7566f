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
//! [`hosts`], the key of the cap per destination host (what names resolved to, addresses
//! canonical);
//! [`http`], one HTTP attempt and the fixed words its outcome is told in; [`sealing`], the
//! link's secret sealed when the link is made and unsealed for each attempt
//! ([`crate::secrets`]).

pub mod egress;
pub mod email;
pub mod hosts;
pub mod http;
pub mod mastodon;
pub mod retry_after;
pub mod sealing;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chorus_actors::model::limits::check_handle;
use chorus_actors::model::{LinkRecord, Proof, new_id, now_ms};
use chorus_actors::release::{AttemptOutcome, Connector, Outgoing};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::secrets::SecretBox;
use egress::Egress;
use hosts::ResolvedHosts;

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
    /// What destination names resolved to, filled by the egress policy's lookups.
    hosts: Arc<ResolvedHosts>,
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
        let hosts = Arc::new(ResolvedHosts::default());
        http = http.dns_resolver(settings.egress.resolver(hosts.clone()));
        if !settings.egress.allows_private() {
            // A proxy would resolve the destination itself, unchecked.
            http = http.no_proxy();
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
            hosts,
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
            self.egress
                .check_link(url, field, self.timeout, &self.hosts)
                .await?;
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
        // A Mastodon handle counts only once the instance vouches for it; an email address
        // awaits its code, a webhook handle is a label and never counts.
        let proof = if platform == mastodon::PLATFORM {
            let base_url = str_field(&checked.config, "base_url").unwrap_or_default();
            let token = checked.secret.as_deref().unwrap_or_default();
            self.verify_mastodon(&handle, base_url, token).await?;
            Proof::Verified
        } else {
            Proof::Unproven
        };
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
            proof,
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
            // Every email goes through the one relay (a key no host name can be).
            email::PLATFORM => return Some("smtp relay".into()),
            _ => None,
        }?;
        Some(self.hosts.key(url::Url::parse(url).ok()?.host()?))
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
    /// time; `.../api/v1/statuses` answers like Mastodon (422 under `/m422`), and
    /// `.../api/v1/accounts/verify_credentials` names the account `me`.
    pub fn receiver() -> Receiver {
        Receiver::start(Script::ByPath(by_path), None)
    }

    fn by_path(path: &str) -> Reply {
        if path == "/hang" {
            return Reply::hang(Duration::from_secs(30));
        }
        if path.ends_with("/api/v1/accounts/verify_credentials") {
            return Reply::status(200).json(r#"{"id":"1","username":"me","acct":"me"}"#);
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
                proof: Default::default(),
            },
            idempotency_key: "0123456789abcdef0123456789abcdef-link1".into(),
            attempt,
        }
    }
}

#[cfg(test)]
mod tests;
