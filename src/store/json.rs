//! Records as stored: plain `serde_json` documents, the same bytes in both engines, so data
//! moves between them unchanged.

use chorus_actors::StoreError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A record as stored. A failure is [`StoreError::Backend`]: the write that carried the record
/// fails before anything of it is written.
pub fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value)
        .map_err(|e| StoreError::Backend(format!("record {key} failed to encode: {e}")))
}

/// A stored record back; anything undecodable is [`StoreError::Corrupt`] naming its key.
pub fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

/// A stored release record (`ReleaseRecord`) without the plaintext secret versions before
/// sealing copied into its link's `config` (a webhook's `secret`, a Mastodon
/// `access_token`), or `None` if it has none (or is not a JSON object). Works on the
/// document, not the type, so whatever else the record holds is kept as it is. A release
/// reads its link's secret from the account when it attempts, so nothing is lost.
pub fn without_copied_secret(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut record: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let config = record.get_mut("link")?.get_mut("config")?.as_object_mut()?;
    let mut removed = false;
    for field in chorus_actors::model::LEGACY_SECRET_FIELDS {
        removed |= config.remove(field).is_some();
    }
    if !removed {
        return None;
    }
    serde_json::to_vec(&record).ok()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chorus_actors::model::{AccountRecord, Profile};

    use super::*;

    #[test]
    fn copied_secrets_are_taken_out_of_release_records() {
        let old = serde_json::json!({
            "activity_id": "a1", "status": "delivered", "attempts": 1,
            "link": {"link_id": "l1", "platform": "webhook", "handle": "h",
                     "config": {"url": "https://x.example/h", "secret": "whsec_old"},
                     "created_ms": 1}
        });
        let bytes = serde_json::to_vec(&old).unwrap();
        let scrubbed = without_copied_secret(&bytes).expect("rewritten");
        let back: serde_json::Value = serde_json::from_slice(&scrubbed).unwrap();
        let mut want = old.clone();
        want["link"]["config"] = serde_json::json!({"url": "https://x.example/h"});
        assert_eq!(back, want);
        assert_eq!(
            without_copied_secret(&scrubbed),
            None,
            "nothing left to take"
        );
        assert_eq!(without_copied_secret(b"not json"), None);
    }

    #[test]
    fn records_round_trip_and_bad_bytes_are_corrupt() {
        let mut profile = Profile::new();
        profile.insert("display_name".into(), "Ann".into());
        let rec = AccountRecord {
            account_id: "a1".into(),
            password_hash: "$argon2id$x".into(),
            profile,
            profile_version: 3,
            created_ms: 9,
            proofs: Default::default(),
        };
        let bytes = encode("accounts/a1", &rec).unwrap();
        // Plain serde_json, nothing around it.
        assert_eq!(bytes, serde_json::to_vec(&rec).unwrap());
        let back: AccountRecord = decode("accounts/a1", &bytes).unwrap();
        assert_eq!(back, rec);
        match decode::<AccountRecord>("accounts/a1", b"{not json") {
            Err(StoreError::Corrupt { key, .. }) => assert_eq!(key, "accounts/a1"),
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn an_unencodable_value_is_an_error_naming_its_key() {
        // JSON object keys must be strings.
        let map: BTreeMap<(u8, u8), u8> = [((1, 2), 3)].into();
        match encode("odd/1", &map) {
            Err(StoreError::Backend(msg)) => assert!(msg.contains("odd/1"), "{msg}"),
            other => panic!("expected Backend, got {other:?}"),
        }
    }
}
