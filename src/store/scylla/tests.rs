use std::sync::Arc;
use std::time::Duration;

use super::settings::connect_session;
use super::{ScyllaSettings, ScyllaStore, apply_schema};

/// The shared conformance suite against a real cluster, when one is configured. Nothing
/// here imitates a cluster: without `CHORUS_SCYLLA_NODES` the test only says it skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_scylla() {
    let nodes: Vec<String> = std::env::var("CHORUS_SCYLLA_NODES")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect();
    if nodes.is_empty() {
        println!("skipped: CHORUS_SCYLLA_NODES not set");
        return;
    }
    let settings = ScyllaSettings {
        nodes,
        keyspace: format!("chorus_test_{:08x}", rand::random::<u32>()),
        replication: "{'class': 'SimpleStrategy', 'replication_factor': 1}".into(),
        consistency: "local_quorum".into(),
        request_timeout: Duration::from_secs(30),
    };
    apply_schema(&settings).await.expect("apply schema");
    let dir = tempfile::tempdir().expect("tempdir");
    chorus_actors::store::conformance::run_all(dir.path(), |_path| {
        let settings = settings.clone();
        async move { Arc::new(ScyllaStore::connect(&settings).await.expect("connect")) }
    })
    .await;
    let session = connect_session(&settings).await.expect("session");
    session
        .query_unpaged(format!("DROP KEYSPACE IF EXISTS {}", settings.keyspace), ())
        .await
        .expect("drop keyspace");
}
