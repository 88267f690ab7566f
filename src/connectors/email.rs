//! Email: one plain-text message per activity, sent through the operator's SMTP server.
//!
//! The link's handle is the recipient address; the config is empty (the server, not the user,
//! owns the SMTP credentials). The `Message-ID` is derived from the release's idempotency key,
//! so a message resent after a lost answer carries the same id and mail clients can fold the
//! duplicate. SMTP's own reply classes map onto the release policy: 5xx fails for good, 4xx and
//! anything short of a reply (connection, TLS, timeout) is retried.

use std::fmt;
use std::time::Duration;

use chorus_actors::release::{AttemptOutcome, Outgoing};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{Value, json};

use super::Checked;
use super::http::{find, human_duration, root_cause};
use crate::error::{Error, Result};

// Verification codes go out through the same relay (`email/code.rs`).
mod code;

pub const PLATFORM: &str = "email";

/// The handle must be an address; the stored config is always `{}`, with no secret and no
/// destination of the user's (every email goes through the operator's relay).
pub fn validate(handle: &str, _config: &Value) -> Result<Checked> {
    if handle.trim().parse::<Address>().is_err() {
        return Err(Error::invalid("handle must be an email address"));
    }
    Ok(Checked {
        config: json!({}),
        secret: None,
        destination: None,
    })
}

/// The SMTP transport and the sender, built once at start-up.
#[derive(Clone)]
pub struct EmailSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    timeout: Duration,
}

/// Hand-written so the SMTP credentials inside the transport never reach a log.
impl fmt::Debug for EmailSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailSender")
            .field("from", &self.from.to_string())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl EmailSender {
    /// `smtp_url` as lettre reads it (`smtp://`, `smtp://...?tls=required`, `smtps://`, with
    /// optional `user:pass@`); `from` a mailbox like `Chorus <chorus@localhost>`.
    pub fn new(smtp_url: &str, from: &str, timeout: Duration) -> Result<Self> {
        let from: Mailbox = from
            .parse()
            .map_err(|e| Error::Config(format!("smtp_from {from:?} is not a mailbox: {e}")))?;
        // The URL may hold a password: the message names the problem, never the URL.
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url)
            .map_err(|e| Error::Config(format!("smtp_url is not usable: {e}")))?
            .timeout(Some(timeout))
            .build();
        Ok(EmailSender {
            transport,
            from,
            timeout,
        })
    }

    /// The message for `out` (see the module docs for its shape).
    pub fn message(&self, out: &Outgoing) -> std::result::Result<Message, String> {
        let to: Address = out
            .link
            .handle
            .trim()
            .parse()
            .map_err(|_| "link handle is not an email address".to_owned())?;
        let author = &out.activity.author_name;
        Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to))
            .subject(format!("{author} posted on Chorus"))
            .message_id(Some(format!("<{}@chorus>", out.idempotency_key)))
            .header(ContentType::TEXT_PLAIN)
            .body(format!("{}\n\n— {author} via Chorus", out.activity.text))
            .map_err(|e| format!("cannot build the message: {e}"))
    }

    /// One attempt: one SMTP session, bounded by the whole-attempt timeout.
    pub async fn attempt(&self, out: &Outgoing) -> AttemptOutcome {
        let message = match self.message(out) {
            Ok(message) => message,
            Err(error) => return AttemptOutcome::Fail { error },
        };
        // lettre's timeout bounds each network step; this bounds the whole conversation.
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Err(_) => AttemptOutcome::Retry {
                error: format!("timed out after {}", human_duration(self.timeout)),
                after: None,
            },
            Ok(Ok(_)) => AttemptOutcome::Delivered,
            Ok(Err(e)) => self.outcome(&e),
        }
    }

    fn outcome(&self, e: &lettre::transport::smtp::Error) -> AttemptOutcome {
        if e.is_permanent() {
            return AttemptOutcome::Fail {
                error: format!("SMTP {e}"),
            };
        }
        let error = if e.is_transient() {
            format!("SMTP {e}")
        } else if e.is_timeout() {
            format!("timed out after {}", human_duration(self.timeout))
        } else if find::<std::io::Error>(e)
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            "connection refused".to_owned()
        } else {
            format!("SMTP {}", root_cause(e))
        };
        AttemptOutcome::Retry { error, after: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::egress::Egress;
    use crate::connectors::test_support::{outgoing, settings};
    use crate::connectors::{ConnectorSettings, Connectors};
    use chorus_actors::release::Connector;
    use chorus_testkit::SmtpSink;

    #[tokio::test]
    async fn handle_must_be_an_address() {
        let checked = validate("ada@example.com", &json!({"x": 1})).unwrap();
        assert_eq!(checked.config, json!({}));
        assert!(checked.secret.is_none() && checked.destination.is_none());
        for bad in [
            "ada",
            "ada@",
            "@example.com",
            "Ada <ada@example.com>",
            "a b@c.d",
        ] {
            let e = validate(bad, &json!({})).unwrap_err();
            assert_eq!(e.code(), "invalid_input", "{bad}");
            assert_eq!(e.to_string(), "handle must be an email address");
        }
        let c = Connectors::new(&ConnectorSettings {
            smtp_url: Some("smtp://127.0.0.1:2525".into()),
            ..settings(Duration::from_secs(1), Egress::PUBLIC_ONLY)
        })
        .unwrap();
        let link = c
            .new_link("email", " ada@example.com ", &json!({"secret": "dropped"}))
            .await
            .unwrap();
        assert_eq!(
            (link.handle.as_str(), link.config),
            ("ada@example.com", json!({}))
        );
        assert_eq!(link.secret, None);
        assert_eq!(
            c.validate("email", "nobody", &json!({}))
                .await
                .unwrap_err()
                .to_string(),
            "handle must be an email address"
        );
    }

    #[test]
    fn debug_hides_credentials() {
        let sender = EmailSender::new(
            "smtps://user:hunter2@mail.example:465",
            "Chorus <chorus@localhost>",
            Duration::from_secs(1),
        )
        .unwrap();
        assert!(!format!("{sender:?}").contains("hunter2"));
    }

    /// Connectors that send mail to `sink`.
    fn connectors_to(sink: &SmtpSink) -> Connectors {
        Connectors::new(&ConnectorSettings {
            smtp_url: Some(sink.url()),
            ..settings(Duration::from_secs(10), Egress::PUBLIC_ONLY)
        })
        .unwrap()
    }

    /// The first message `sink` accepted (waits up to 10 s for it).
    async fn first_message(sink: &SmtpSink) -> Value {
        sink.wait_for(1, Duration::from_secs(10)).await.remove(0)
    }

    fn mail_out(attempt: u32) -> Outgoing {
        outgoing("email", "ada@example.com", json!({}), attempt)
    }

    #[tokio::test]
    async fn sends_the_message_over_real_smtp() {
        let Some(sink) = SmtpSink::start(&[]) else {
            return;
        };
        let c = connectors_to(&sink);
        let out = mail_out(1);
        assert_eq!(c.attempt(&out).await, AttemptOutcome::Delivered);
        let got = first_message(&sink).await;
        assert_eq!(got["mail_from"], "chorus@localhost");
        assert_eq!(got["rcpt_tos"], json!(["ada@example.com"]));
        let data = got["data"].as_str().unwrap();
        let header = |name: &str| {
            data.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                .map(str::trim)
                .unwrap_or_else(|| panic!("no {name} header in {data}"))
                .to_owned()
        };
        assert_eq!(header("From"), "Chorus <chorus@localhost>");
        assert_eq!(header("To"), "ada@example.com");
        assert_eq!(
            header("Message-ID"),
            "<0123456789abcdef0123456789abcdef-link1@chorus>"
        );
        assert!(header("Content-Type").starts_with("text/plain; charset=utf-8"));
        assert_eq!(got["subject"], "Ada Lovelace posted on Chorus");
        // Mail bodies travel with CRLF line ends (lettre converts; QP keeps them).
        assert_eq!(
            got["text"]
                .as_str()
                .unwrap()
                .replace("\r\n", "\n")
                .trim_end(),
            "Hello, \"world\" — ünïcödé\nsecond line\n\n— Ada Lovelace via Chorus"
        );
    }

    #[tokio::test]
    async fn transient_reply_is_retried_then_delivered() {
        let Some(sink) = SmtpSink::start(&["--fail-first", "1"]) else {
            return;
        };
        let c = connectors_to(&sink);
        match c.attempt(&mail_out(1)).await {
            AttemptOutcome::Retry { error, after } => {
                assert!(error.contains("451"), "{error}");
                assert!(error.contains("try again later"), "{error}");
                assert_eq!(after, None);
            }
            other => panic!("451 gave {other:?}"),
        }
        assert_eq!(c.attempt(&mail_out(2)).await, AttemptOutcome::Delivered);
        let got = first_message(&sink).await;
        assert_eq!(got["rcpt_tos"], json!(["ada@example.com"]));
    }

    #[tokio::test]
    async fn permanent_reply_fails() {
        let Some(sink) = SmtpSink::start(&["--reject"]) else {
            return;
        };
        let c = connectors_to(&sink);
        match c.attempt(&mail_out(1)).await {
            AttemptOutcome::Fail { error } => {
                assert!(error.contains("550"), "{error}");
                assert!(error.contains("no such user"), "{error}");
            }
            other => panic!("550 gave {other:?}"),
        }
    }

    #[tokio::test]
    async fn no_server_is_retried() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let c = Connectors::new(&ConnectorSettings {
            smtp_url: Some(format!("smtp://127.0.0.1:{port}")),
            ..settings(Duration::from_secs(2), Egress::PUBLIC_ONLY)
        })
        .unwrap();
        assert_eq!(
            c.attempt(&mail_out(1)).await,
            AttemptOutcome::Retry {
                error: "connection refused".into(),
                after: None
            }
        );
    }
}
