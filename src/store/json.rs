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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chorus_actors::model::{AccountRecord, Profile};

    use super::*;

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
