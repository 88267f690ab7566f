//! A link's secret at rest and in use: sealed when the link is made
//! ([`super::Connectors::new_link`]), unsealed for each attempt ([`Connectors::secret_of`]),
//! and sealed late for a link stored before secrets were ([`LinkSealer`]).

use chorus_actors::model::{LEGACY_SECRET_FIELDS, LinkRecord, LinkSealer};
use serde_json::Value;

use super::Connectors;

impl Connectors {
    /// The plaintext secret of `link` for one attempt: its sealed `secret` opened, or, in a
    /// record stored before secrets were sealed, the plaintext field of its config. The
    /// error is a fixed `last_error`.
    pub(super) fn secret_of(&self, link: &LinkRecord) -> Result<String, String> {
        if let Some(sealed) = &link.secret {
            return self
                .secrets
                .open(&link.link_id, sealed)
                .map_err(str::to_owned);
        }
        legacy_secret(link)
            .map(|(_, plain)| plain.to_owned())
            .ok_or_else(|| format!("{} link has no secret", link.platform))
    }
}

/// The plaintext secret a record stored before sealing keeps in its config, and its field.
fn legacy_secret(link: &LinkRecord) -> Option<(&'static str, &str)> {
    LEGACY_SECRET_FIELDS
        .into_iter()
        .find_map(|field| Some((field, link.config.get(field).and_then(Value::as_str)?)))
}

impl LinkSealer for Connectors {
    fn seal_legacy(&self, link: &LinkRecord) -> Option<LinkRecord> {
        let (_, plain) = legacy_secret(link)?;
        let sealed = match self.secrets.seal(&link.link_id, plain) {
            Ok(sealed) => sealed,
            Err(e) => {
                tracing::error!(link = %link.link_id, error = %e, "sealing an old link's secret failed");
                return None;
            }
        };
        let mut record = link.public();
        record.secret = Some(sealed);
        Some(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::test_support::connectors;
    use serde_json::json;
    use std::time::Duration;

    fn legacy(platform: &str, config: Value) -> LinkRecord {
        LinkRecord {
            link_id: "old1".into(),
            platform: platform.into(),
            handle: "h".into(),
            config,
            secret: None,
            created_ms: 1,
            proof: Default::default(),
        }
    }

    #[test]
    fn old_plaintext_links_are_read_and_sealed() {
        let c = connectors(Duration::from_secs(1));
        for (platform, config, field, plain) in [
            (
                "webhook",
                json!({"url": "https://x.example/h", "secret": "whsec_old"}),
                "secret",
                "whsec_old",
            ),
            (
                "mastodon",
                json!({"base_url": "https://m.example", "access_token": "tok_old"}),
                "access_token",
                "tok_old",
            ),
        ] {
            let old = legacy(platform, config);
            assert!(old.has_plain_secret());
            assert_eq!(c.secret_of(&old).unwrap(), plain);
            let sealed = c.seal_legacy(&old).unwrap();
            assert!(!sealed.has_plain_secret());
            assert!(sealed.config.get(field).is_none(), "{}", sealed.config);
            let text = serde_json::to_string(&sealed).unwrap();
            assert!(!text.contains(plain), "{text}");
            assert_eq!(c.secret_of(&sealed).unwrap(), plain);
            // Everything else is kept.
            assert_eq!(
                (&sealed.link_id, &sealed.handle, sealed.created_ms),
                (&old.link_id, &old.handle, old.created_ms)
            );
            // Nothing to do twice.
            assert!(c.seal_legacy(&sealed).is_none());
        }
    }

    #[test]
    fn a_link_without_a_readable_secret_fails_with_a_fixed_reason() {
        let c = connectors(Duration::from_secs(1));
        let none = legacy("webhook", json!({"url": "https://x.example/h"}));
        assert_eq!(
            c.secret_of(&none).unwrap_err(),
            "webhook link has no secret"
        );
        let mut foreign = none.clone();
        foreign.secret = Some("v1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into());
        assert_eq!(
            c.secret_of(&foreign).unwrap_err(),
            crate::secrets::UNREADABLE
        );
    }
}
