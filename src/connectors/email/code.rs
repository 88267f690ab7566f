//! Verification codes by email: the SMTP relay as the domain's [`Courier`] (the seam that
//! proves identifiers, `chorus_actors::Courier`). With `--smtp-url` a profile email and an
//! email link count only once the code sent here comes back; without it there is no courier
//! and emails are taken as registered. Phones are not carried: an SMS gateway would be a
//! courier of its own.

use async_trait::async_trait;
use chorus_actors::Courier;
use chorus_actors::model::IdKind;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{Address, AsyncTransport, Message};

use super::EmailSender;
use crate::connectors::http::root_cause;

#[async_trait]
impl Courier for EmailSender {
    fn carries(&self, kind: IdKind) -> bool {
        kind == IdKind::Email
    }

    /// One message with the code, one SMTP session, bounded like a release attempt. The
    /// reason of a failure is for the log only.
    async fn send(&self, kind: IdKind, to: &str, code: &str) -> Result<(), String> {
        if kind != IdKind::Email {
            return Err(format!("email cannot carry a code to a {kind:?}"));
        }
        let message = self.code_message(to, code)?;
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Err(_) => Err("timed out".into()),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("SMTP {}", root_cause(&e))),
        }
    }
}

impl EmailSender {
    /// The message that carries `code` to `to`.
    fn code_message(&self, to: &str, code: &str) -> Result<Message, String> {
        let to: Address = to
            .trim()
            .parse()
            .map_err(|_| "not an email address".to_owned())?;
        Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to))
            .subject(format!("Your Chorus code: {code}"))
            .header(ContentType::TEXT_PLAIN)
            .body(format!(
                "Your Chorus verification code is {code}.\n\n\
                 Enter it to confirm that this address is yours. It expires in a few \
                 minutes.\nIf you did not ask for it, ignore this message: nothing happens \
                 without the code."
            ))
            .map_err(|e| format!("cannot build the message: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chorus_testkit::SmtpSink;
    use serde_json::json;

    use super::*;

    #[test]
    fn the_domain_knows_the_platforms_by_these_names() {
        use chorus_actors::model::identity::{EMAIL_PLATFORM, LABEL_PLATFORM};
        assert_eq!(super::super::PLATFORM, EMAIL_PLATFORM);
        assert_eq!(crate::connectors::webhook::PLATFORM, LABEL_PLATFORM);
    }

    #[tokio::test]
    async fn sends_the_code_over_real_smtp() {
        let Some(sink) = SmtpSink::start(&[]) else {
            return;
        };
        let sender = EmailSender::new(
            &sink.url(),
            "Chorus <chorus@localhost>",
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(sender.carries(IdKind::Email) && !sender.carries(IdKind::Phone));
        sender
            .send(IdKind::Email, " ada@example.com ", "012345")
            .await
            .unwrap();
        let got = sink.wait_for(1, Duration::from_secs(10)).await.remove(0);
        assert_eq!(got["rcpt_tos"], json!(["ada@example.com"]));
        assert_eq!(got["subject"], "Your Chorus code: 012345");
        assert!(got["text"].as_str().unwrap().contains("code is 012345."));
        assert!(
            sender
                .send(IdKind::Phone, "+15550100000", "1")
                .await
                .is_err()
        );
        assert!(sender.send(IdKind::Email, "nobody", "1").await.is_err());
    }
}
