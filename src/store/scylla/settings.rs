//! Connection and keyspace settings, checked before anything connects, and the consistency
//! levels they lead to (what each level guarantees: docs/scylla.md, "Writes and what an
//! acknowledgement means").

use std::sync::Arc;
use std::time::Duration;

use chorus_actors::StoreError;
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::policies::timestamp_generator::MonotonicTimestampGenerator;
use scylla::statement::{Consistency, SerialConsistency};

use super::backend;

/// Connection and keyspace settings (from `--scylla-nodes`, `--scylla-keyspace`,
/// `--scylla-replication`, `--scylla-consistency`).
#[derive(Debug, Clone)]
pub struct ScyllaSettings {
    /// Contact points, `host:port`.
    pub nodes: Vec<String>,
    /// Validated: `^[a-z][a-z0-9_]{0,47}$`.
    pub keyspace: String,
    /// CQL map literal, e.g. `{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}`.
    pub replication: String,
    /// `local_quorum` (default) | `quorum` | `each_quorum` | `all` | `local_one` | `one`.
    pub consistency: String,
    /// Client-side limit of one request.
    pub request_timeout: Duration,
}

impl ScyllaSettings {
    /// Checks every setting before anything connects, so a typo fails at startup with a
    /// message naming the flag, not deep inside the driver.
    pub fn validate(&self) -> Result<(), String> {
        if !valid_keyspace(&self.keyspace) {
            return Err(format!(
                "scylla keyspace {:?} must match ^[a-z][a-z0-9_]{{0,47}}$",
                self.keyspace
            ));
        }
        if self.nodes.is_empty() {
            return Err("at least one scylla node (host:port) is required".into());
        }
        for node in &self.nodes {
            let ok = !node.chars().any(char::is_whitespace)
                && node
                    .rsplit_once(':')
                    .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !ok {
                return Err(format!("scylla node {node:?} must be host:port"));
            }
        }
        parse_consistency(&self.consistency)?;
        let replication = self.replication.trim();
        if !(replication.starts_with('{')
            && replication.ends_with('}')
            && replication.contains("class")
            && !replication.contains(';'))
        {
            return Err(format!(
                "scylla replication {:?} must be a CQL map literal such as \
                 {{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}}",
                self.replication
            ));
        }
        if self.request_timeout.is_zero() {
            return Err("scylla request timeout must be above zero".into());
        }
        Ok(())
    }
}

fn valid_keyspace(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 48
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The consistency level a setting names.
pub(super) fn parse_consistency(name: &str) -> Result<Consistency, String> {
    match name.to_ascii_lowercase().as_str() {
        "local_quorum" => Ok(Consistency::LocalQuorum),
        "quorum" => Ok(Consistency::Quorum),
        "each_quorum" => Ok(Consistency::EachQuorum),
        "all" => Ok(Consistency::All),
        "local_one" => Ok(Consistency::LocalOne),
        "one" => Ok(Consistency::One),
        other => Err(format!(
            "scylla consistency {other:?} is not one of local_quorum, quorum, each_quorum, \
             all, local_one, one"
        )),
    }
}

/// The level reads run at under the configured (write) `consistency`. Scylla refuses
/// EACH_QUORUM for reads ("only supported for writes"); LOCAL_QUORUM reads still overlap
/// every EACH_QUORUM write (which met a quorum in every datacenter, the local one included).
pub(super) fn read_consistency(consistency: Consistency) -> Consistency {
    match consistency {
        Consistency::EachQuorum => Consistency::LocalQuorum,
        other => other,
    }
}

/// The serial consistency of claims under `consistency`. A datacenter-local level keeps
/// Paxos local (LOCAL_SERIAL, the default); a cluster-wide level asks for SERIAL, since a
/// claim decided by one datacenter alone could also be granted by another.
pub(super) fn serial_for(consistency: Consistency) -> SerialConsistency {
    match consistency {
        Consistency::LocalQuorum | Consistency::LocalOne => SerialConsistency::LocalSerial,
        _ => SerialConsistency::Serial,
    }
}

/// A session at the configured consistency, on one monotonic clock.
pub(super) async fn connect_session(settings: &ScyllaSettings) -> Result<Session, StoreError> {
    connect_session_on(settings, Arc::new(MonotonicTimestampGenerator::new())).await
}

/// The same, on `clock`, which the store also reads for the batches whose timestamps it
/// takes itself (fenced writes: `epochs.rs`).
pub(super) async fn connect_session_on(
    settings: &ScyllaSettings,
    clock: Arc<MonotonicTimestampGenerator>,
) -> Result<Session, StoreError> {
    let consistency = parse_consistency(&settings.consistency).map_err(StoreError::Backend)?;
    let profile = ExecutionProfile::builder()
        .consistency(consistency)
        .serial_consistency(Some(serial_for(consistency)))
        .request_timeout(Some(settings.request_timeout))
        .build();
    SessionBuilder::new()
        .known_nodes(&settings.nodes)
        .default_execution_profile_handle(profile.into_handle())
        // One monotonic clock for every write of this process: an actor's later write always
        // carries a later timestamp than its earlier one, whichever coordinator takes it.
        .timestamp_generator(clock)
        .build()
        .await
        .map_err(|e| backend("connecting", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::scylla::statements;

    fn settings() -> ScyllaSettings {
        ScyllaSettings {
            nodes: vec!["127.0.0.1:9042".into()],
            keyspace: "chorus".into(),
            replication: "{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}".into(),
            consistency: "local_quorum".into(),
            request_timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn valid_settings_pass() {
        assert_eq!(settings().validate(), Ok(()));
        let mut s = settings();
        s.nodes = vec!["scylla-1:9042".into(), "[::1]:19042".into()];
        s.keyspace = format!("k{}", "a".repeat(47));
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn bad_settings_are_rejected() {
        let bad = |f: &dyn Fn(&mut ScyllaSettings)| {
            let mut s = settings();
            f(&mut s);
            s.validate()
        };
        for ks in [
            "",
            "Chorus",
            "1chorus",
            "chorus-x",
            "a;drop",
            &"a".repeat(49),
        ] {
            assert!(
                bad(&|s| s.keyspace = ks.to_owned()).is_err(),
                "keyspace {ks:?}"
            );
        }
        assert!(bad(&|s| s.nodes.clear()).is_err());
        assert!(bad(&|s| s.nodes = vec!["localhost".into()]).is_err());
        assert!(bad(&|s| s.nodes = vec!["host:notaport".into()]).is_err());
        assert!(bad(&|s| s.nodes = vec![":9042".into()]).is_err());
        assert!(bad(&|s| s.consistency = "serial".into()).is_err());
        assert!(bad(&|s| s.consistency = "two".into()).is_err());
        assert!(
            bad(&|s| s.replication = "{'class': 'SimpleStrategy'}; DROP KEYSPACE chorus".into())
                .is_err()
        );
        assert!(bad(&|s| s.replication = "{'class': 'SimpleStrategy'; 'x': 1}".into()).is_err());
        assert!(bad(&|s| s.replication = "SimpleStrategy".into()).is_err());
        assert!(bad(&|s| s.request_timeout = Duration::ZERO).is_err());
    }

    #[test]
    fn consistency_names_parse() {
        let cases = [
            ("local_quorum", Consistency::LocalQuorum),
            ("quorum", Consistency::Quorum),
            ("each_quorum", Consistency::EachQuorum),
            ("all", Consistency::All),
            ("local_one", Consistency::LocalOne),
            ("one", Consistency::One),
            ("LOCAL_QUORUM", Consistency::LocalQuorum),
        ];
        for (name, level) in cases {
            assert_eq!(parse_consistency(name), Ok(level), "{name}");
        }
        assert!(parse_consistency("any").is_err());
        assert!(parse_consistency("").is_err());
        assert_eq!(
            serial_for(Consistency::LocalQuorum),
            SerialConsistency::LocalSerial
        );
        assert_eq!(serial_for(Consistency::Quorum), SerialConsistency::Serial);
    }

    #[test]
    fn reads_never_ask_for_each_quorum() {
        // Scylla answers a read at EACH_QUORUM with "only supported for writes".
        assert_eq!(
            read_consistency(Consistency::EachQuorum),
            Consistency::LocalQuorum
        );
        for level in [
            Consistency::LocalQuorum,
            Consistency::Quorum,
            Consistency::All,
            Consistency::LocalOne,
            Consistency::One,
        ] {
            assert_eq!(read_consistency(level), level, "{level:?}");
        }
        let (write, read) = (
            Consistency::EachQuorum,
            read_consistency(Consistency::EachQuorum),
        );
        for (name, _, kind) in statements::ALL {
            let level = kind.consistency(write, read);
            assert_eq!(
                level == Consistency::EachQuorum,
                *kind != statements::Kind::Read,
                "{name}: reads at LOCAL_QUORUM, writes and claims at EACH_QUORUM"
            );
        }
    }
}
