//! The ScyllaDB store: the actors' storage traits over a ScyllaDB (or Cassandra-compatible)
//! cluster, for deployments where one node's disk is not enough or not safe enough.
//!
//! `docs/scylla.md` is where the design is written down: the tables and their partitions, and
//! the commit protocol (claims by lightweight transaction, one logged batch, releases last),
//! what an acknowledgement guarantees at each consistency level, and the limits. The code
//! keeps short notes that point there. By file:
//! - `settings.rs`: the `--scylla-*` settings, validated before anything connects, and the
//!   consistency levels they lead to;
//! - `schema.rs`: `schema.cql`, printed and applied;
//! - `statements.rs`: every CQL statement, prepared once in [`ScyllaStore::connect`];
//! - `keys.rs`: partitions, buckets and shards (pure functions);
//! - `rows.rs`: change sets as batch rows, every record encoded before anything is sent;
//! - `limits.rs`: the cluster's batch size limit, checked at start-up against the largest
//!   change set the API allows;
//! - `commit.rs`: the commit protocol and the gate that `close` shuts;
//! - `fence.rs`: the seq fence, a lightweight transaction on a log's head before the batch
//!   that carries its events, so a seq is never written twice;
//! - `epochs.rs`: owner epochs (cluster mode): claims, and the check every write naming an
//!   epoch passes before its batch, so two nodes never both write one actor;
//! - `reads.rs`: single rows, paged listings, event logs and feeds across their partitions;
//! - `server_key.rs`: the key that seals link secrets, one row every node shares;
//! - `traits.rs`: the storage traits.

mod commit;
mod epochs;
mod fence;
mod keys;
mod limits;
mod lwt;
mod reads;
mod rows;
mod schema;
mod server_key;
mod settings;
mod statements;
mod traits;

use std::sync::Arc;
use std::time::Duration;

use chorus_actors::StoreError;
use scylla::client::session::Session;
use scylla::errors::ExecutionError;
use scylla::policies::timestamp_generator::MonotonicTimestampGenerator;
use scylla::statement::Consistency;

use self::commit::WriteGate;
pub use self::epochs::DEFAULT_FENCE_BOUND;
pub use self::keys::{EVENT_BUCKET, FEED_BUCKET_MS, OUTBOX_SHARDS};
pub use self::schema::{apply_schema, schema, schema_statements};
pub use self::settings::ScyllaSettings;
use self::settings::{connect_session_on, parse_consistency, read_consistency, serial_for};
use self::statements::Statements;

/// The [`Store`](chorus_actors::store::Store) on ScyllaDB. Cheap handles (`Arc`s) inside, so
/// a write can carry its own copy into a task of its own.
pub struct ScyllaStore {
    session: Arc<Session>,
    st: Arc<Statements>,
    consistency: Consistency,
    gate: WriteGate,
    /// Where writes that must finish even without their caller run (see `commit.rs`).
    runtime: tokio::runtime::Handle,
    /// The session's client timestamps; a fenced write takes its batch's from it before
    /// its check (`epochs.rs`).
    clock: Arc<MonotonicTimestampGenerator>,
    /// The longest a fenced write's check may take before the write gives up
    /// ([`ScyllaStore::with_fence_bound`]).
    fence_bound: Duration,
    /// Seconds each event row lives (`USING TTL`; 0: for ever), from
    /// [`ScyllaStore::with_log_retention`].
    event_ttl: i32,
}

impl ScyllaStore {
    /// Connects, checks the keyspace exists and the cluster takes batches as large as the
    /// API allows, and prepares every statement once.
    pub async fn connect(settings: &ScyllaSettings) -> Result<ScyllaStore, StoreError> {
        settings.validate().map_err(StoreError::Backend)?;
        let consistency = parse_consistency(&settings.consistency).map_err(StoreError::Backend)?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| backend("finding the tokio runtime", e))?;
        let clock = Arc::new(MonotonicTimestampGenerator::new());
        let session = connect_session_on(settings, Arc::clone(&clock)).await?;
        let mut lookup = session
            .prepare("SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = ?")
            .await
            .map_err(|e| backend("reading the schema", e))?;
        lookup.set_consistency(read_consistency(consistency));
        let found = session
            .execute_unpaged(&lookup, (settings.keyspace.as_str(),))
            .await
            .map_err(|e| backend("reading the schema", e))?
            .into_rows_result()
            .map_err(|e| backend("reading the schema", e))?
            .rows_num();
        if found == 0 {
            return Err(StoreError::Backend(format!(
                "keyspace {} does not exist; run `chorus schema apply`",
                settings.keyspace
            )));
        }
        limits::check_batch_limit(&session, limits::largest_change_set()).await?;
        let started = std::time::Instant::now();
        let st = Statements::prepare(
            &session,
            &settings.keyspace,
            consistency,
            read_consistency(consistency),
            serial_for(consistency),
        )
        .await?;
        tracing::info!(
            keyspace = %settings.keyspace,
            nodes = ?settings.nodes,
            consistency = %settings.consistency,
            statements = statements::ALL.len(),
            prepare_ms = started.elapsed().as_millis(),
            "connected to scylla; statements prepared"
        );
        Ok(ScyllaStore {
            session: Arc::new(session),
            st: Arc::new(st),
            consistency,
            gate: WriteGate::new(),
            runtime,
            clock,
            fence_bound: DEFAULT_FENCE_BOUND,
            event_ttl: 0,
        })
    }

    /// Keeps each event row written from now on for `retention` (`None`: for ever), by a
    /// CQL TTL: the cluster drops expired rows itself during compaction, with no sweep and
    /// no read-before-delete. Rows written before keep the TTL they were written with (none,
    /// before this setting existed). The log's head is in `logs`, which has no TTL, so a log
    /// whose every event expired still numbers its next event after the last.
    pub fn with_log_retention(mut self, retention: Option<Duration>) -> ScyllaStore {
        // CQL caps a TTL at 20 years; longer is for ever in practice.
        const MAX_TTL: u64 = 20 * 365 * 24 * 3600;
        self.event_ttl = retention.map_or(0, |d| {
            i32::try_from(d.as_secs().clamp(1, MAX_TTL)).unwrap_or(0)
        });
        self
    }

    /// Another handle on the same session, statements and gate.
    fn share(&self) -> ScyllaStore {
        ScyllaStore {
            session: Arc::clone(&self.session),
            st: Arc::clone(&self.st),
            consistency: self.consistency,
            gate: self.gate.clone(),
            runtime: self.runtime.clone(),
            clock: Arc::clone(&self.clock),
            fence_bound: self.fence_bound,
            event_ttl: self.event_ttl,
        }
    }
}

/// A failed call to the cluster. One the cluster could not serve for now (too few replicas
/// up, a timeout, an overloaded or bootstrapping node, no connection) is
/// [`StoreError::Unavailable`] (503 with `Retry-After` for clients); anything else is
/// [`StoreError::Backend`] (500).
fn backend<E: std::fmt::Display + 'static>(context: &str, e: E) -> StoreError {
    let message = format!("scylla {context}: {e}");
    let any: &dyn std::any::Any = &e;
    match any.downcast_ref::<ExecutionError>() {
        Some(e) if commit::unavailable(e) => StoreError::Unavailable(message),
        _ => StoreError::Backend(message),
    }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        key: what.to_owned(),
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests;
