//! The shared conformance suite against a real cluster, when one is configured, and the
//! store's own checks on it (`tests/`). Nothing here imitates a cluster: without
//! `CHORUS_SCYLLA_NODES` each test only says it skipped.

mod ambiguous;
mod epochs;
mod figures;
mod node;
mod server_key;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chorus_actors::store::conformance::Fixture;

use super::settings::connect_session;
use super::{ScyllaSettings, ScyllaStore, apply_schema};

/// A keyspace of its own (`chorus_test_<random>`) per check, so checks run in parallel;
/// dropped at teardown.
struct ScyllaFixture {
    settings: ScyllaSettings,
}

#[async_trait]
impl Fixture for ScyllaFixture {
    type Store = ScyllaStore;

    async fn open(&self) -> Arc<ScyllaStore> {
        Arc::new(ScyllaStore::connect(&self.settings).await.expect("connect"))
    }

    async fn teardown(self) {
        let session = connect_session(&self.settings).await.expect("session");
        session
            .query_unpaged(
                format!("DROP KEYSPACE IF EXISTS {}", self.settings.keyspace),
                (),
            )
            .await
            .expect("drop keyspace");
    }
}

/// Runs `check` on a fresh keyspace (dropped afterwards, also when the check panics), or
/// says it skipped when no cluster is configured.
async fn on_keyspace<F, Fut>(check: F)
where
    F: FnOnce(ScyllaSettings) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let Some(fixture) = scylla().await else {
        return;
    };
    let outcome = chorus_actors::store::conformance::catch(check(fixture.settings.clone())).await;
    fixture.teardown().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// A fresh keyspace on the cluster `CHORUS_SCYLLA_NODES` names, or `None` (and a line saying
/// the test skipped) when it is not set.
async fn scylla() -> Option<ScyllaFixture> {
    let nodes: Vec<String> = std::env::var("CHORUS_SCYLLA_NODES")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect();
    if nodes.is_empty() {
        println!("skipped: CHORUS_SCYLLA_NODES not set");
        return None;
    }
    let settings = ScyllaSettings {
        nodes,
        keyspace: format!("chorus_test_{:08x}", rand::random::<u32>()),
        replication: "{'class': 'SimpleStrategy', 'replication_factor': 1}".into(),
        consistency: "local_quorum".into(),
        request_timeout: Duration::from_secs(30),
    };
    apply_schema(&settings).await.expect("apply schema");
    Some(ScyllaFixture { settings })
}

chorus_actors::conformance_tests!(conformance, scylla());
