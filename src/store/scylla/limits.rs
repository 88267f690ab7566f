//! The cluster's batch size limit against the largest change set the API allows, checked at
//! start-up. One actor turn is one logged batch (docs/scylla.md, "Writes and what an
//! acknowledgement means"); a cluster whose `batch_size_fail_threshold` is below the largest
//! turn would refuse some valid requests with "Batch too large", long after start-up. Cassandra
//! 5.0 ships 50 KiB, ScyllaDB 1 MiB (docs/cql-node-findings.md, finding 1).

use chorus_actors::StoreError;
use chorus_actors::model::limits::{MAX_FIELD_NAME, MAX_FIELD_VALUE, MAX_PROFILE_FIELDS};
use scylla::client::session::Session;

/// Bytes one character of a JSON string can take: a control character, which the API
/// accepts in a profile value, is written `\u00XX`.
const JSON_CHAR_MAX: u64 = 6;

/// Everything of the largest turn that is not a profile: the account record's other fields
/// (ids, the password hash, version, time), the event frame's envelope, and the keys and
/// per-row overhead of its rows (`accounts`, `events`), with room to spare.
const ENVELOPE: u64 = 4096;

/// The largest profile as JSON: every field at its longest name and value, each value
/// character at its longest encoding.
pub(super) fn profile_json_max() -> u64 {
    let per_field = MAX_FIELD_NAME as u64 + MAX_FIELD_VALUE as u64 * JSON_CHAR_MAX + 6; // "":"",
    2 + MAX_PROFILE_FIELDS as u64 * per_field
}

/// Bytes of the largest change set the API allows: a profile update carries the profile
/// three times, in the account record, in the `profile.updated` frame (whose changes are at
/// most the whole profile, whatever the body limit) and in the step that tells the friends
/// (which names the account, not its friends, so it does not grow with them). A group message
/// (two copies of at most 4,096 characters) and the other turns are smaller.
pub(super) fn largest_change_set() -> u64 {
    3 * profile_json_max() + ENVELOPE
}

/// Where a cluster publishes its batch limit: `(query, setting name)`, tried in order.
/// Cassandra 4.0+ has the virtual table `system_views.settings` (5.0 lists both the new name,
/// value `50KiB`, and the old `_in_kb` one, value `50`); ScyllaDB has `system.config` with
/// the `_in_kb` name only (not verified here: no ScyllaDB node could run on this machine).
const SOURCES: [(&str, &str); 2] = [
    (
        "SELECT value FROM system_views.settings WHERE name = ?",
        "batch_size_fail_threshold",
    ),
    (
        "SELECT value FROM system.config WHERE name = ?",
        "batch_size_fail_threshold_in_kb",
    ),
];

/// Reads the batch fail threshold of the node answering, in bytes; `None` when no source
/// answers with a value this code reads (each miss is logged at debug).
pub(super) async fn batch_fail_threshold(session: &Session) -> Option<(u64, &'static str)> {
    for (query, name) in SOURCES {
        let answer = match session.query_unpaged(query, (name,)).await {
            Ok(answer) => answer,
            Err(e) => {
                tracing::debug!(%query, error = %e, "batch limit not readable here");
                continue;
            }
        };
        let value = answer
            .into_rows_result()
            .ok()
            .and_then(|rows| rows.maybe_first_row::<(Option<String>,)>().ok().flatten())
            .and_then(|(value,)| value);
        match value.as_deref().map(parse_size) {
            Some(Some(bytes)) => return Some((bytes, name)),
            other => tracing::debug!(%query, ?value, parsed = ?other, "batch limit unreadable"),
        }
    }
    None
}

/// A size setting as the cluster prints it, in bytes: `50KiB`, `1MiB`, `512B` (Cassandra's
/// data storage units), or a bare number of KiB (the `_in_kb` settings), possibly quoted.
pub(super) fn parse_size(value: &str) -> Option<u64> {
    let value = value.trim().trim_matches('"').trim();
    let digits = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "kib" | "kb" => 1024,
        "b" => 1,
        "mib" | "mb" => 1024 * 1024,
        "gib" | "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    number.checked_mul(scale)
}

/// The start-up verdict on a threshold: an error naming the setting when it is below `need`.
pub(super) fn judge(threshold: Option<(u64, &str)>, need: u64) -> Result<(), String> {
    match threshold {
        Some((bytes, name)) if bytes < need => Err(format!(
            "the cluster's {name} is {} KiB, below the {} KiB the largest write Chorus allows \
             needs (a profile at its limits, three times in one batch); raise \
             batch_size_fail_threshold to at least {} KiB (ScyllaDB ships 1024 KiB; \
             Cassandra 50 KiB) on every node",
            bytes / 1024,
            need.div_ceil(1024),
            need.div_ceil(1024),
        )),
        _ => Ok(()),
    }
}

/// Refuses to start on a cluster whose batch limit is below `need` bytes; warns when the
/// limit cannot be read. Only the node that answers is asked: the limit is per coordinator,
/// so every node should be configured alike.
pub(super) async fn check_batch_limit(session: &Session, need: u64) -> Result<(), StoreError> {
    let threshold = batch_fail_threshold(session).await;
    match threshold {
        Some((bytes, name)) => {
            tracing::info!(
                setting = name,
                kib = bytes / 1024,
                need_kib = need.div_ceil(1024),
                "cluster batch limit read"
            );
        }
        None => tracing::warn!(
            need_kib = need.div_ceil(1024),
            "could not read the cluster's batch_size_fail_threshold; a write larger than it \
             fails with \"Batch too large\": make sure every node's is at least need_kib KiB"
        ),
    }
    judge(threshold, need).map_err(StoreError::Backend)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_clusters_print_them() {
        assert_eq!(parse_size("50KiB"), Some(50 * 1024));
        assert_eq!(parse_size("1024KiB"), Some(1024 * 1024));
        assert_eq!(parse_size("1MiB"), Some(1024 * 1024));
        assert_eq!(parse_size("512B"), Some(512));
        assert_eq!(parse_size("1024"), Some(1024 * 1024), "_in_kb: KiB");
        assert_eq!(
            parse_size("\"50\""),
            Some(50 * 1024),
            "quoted (system.config)"
        );
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("KiB"), None);
        assert_eq!(parse_size("50 parsecs"), None);
        assert_eq!(parse_size("99999999999999999999GiB"), None);
    }

    #[test]
    fn the_largest_write_is_a_profile_three_times() {
        // 32 fields of a 64-character name and 1,024 characters of 6 bytes each.
        assert_eq!(profile_json_max(), 2 + 32 * (64 + 6144 + 6));
        assert_eq!(largest_change_set(), 600_646);
        // Over Cassandra's default (what finding 1 hit), under ScyllaDB's.
        assert!(largest_change_set() > 50 * 1024);
        assert!(largest_change_set() < 1024 * 1024);
    }

    #[test]
    fn a_low_threshold_refuses_to_start_naming_the_setting() {
        let need = largest_change_set();
        let err = judge(Some((50 * 1024, "batch_size_fail_threshold")), need)
            .expect_err("50 KiB is too small");
        assert!(err.contains("batch_size_fail_threshold is 50 KiB"), "{err}");
        assert!(err.contains("at least 587 KiB"), "{err}");
        assert_eq!(judge(Some((1024 * 1024, "x")), need), Ok(()));
        assert_eq!(judge(Some((need, "x")), need), Ok(()), "exactly enough");
        assert_eq!(
            judge(None, need),
            Ok(()),
            "unreadable: a warning, not a refusal"
        );
    }
}
