//! The ScyllaDB store: the actors' storage traits over a ScyllaDB (or Cassandra-compatible)
//! cluster, for deployments where one node's disk is not enough or not safe enough.
//!
//! # Layout
//! The same records as the embedded store (JSON blobs, frames as text), in the tables of
//! `schema.cql`. Feeds are partitioned by owner and day ([`FEED_BUCKET_MS`]) and
//! clustered newest first, with a per-feed index of non-empty days (`feed_buckets`) so a page
//! walks only days that hold items; event logs are partitioned by owner and a range of
//! [`EVENT_BUCKET`] seqs, with the newest seq in `logs`; the outbox is spread over
//! [`OUTBOX_SHARDS`] partitions by a stable hash of the activity id. No partition grows
//! without bound. Every statement is prepared once in [`ScyllaStore::connect`], binds every
//! key, runs at the configured consistency, and every read that can be large is paged.
//!
//! # What a commit guarantees
//! A change set ([`SubscriberWrite`], [`GroupWrite`], [`CommunityWrite`]) is written as:
//! 1. **Claims first**, one lightweight transaction (Paxos, serial consistency) each:
//!    `INSERT ... IF NOT EXISTS`. A claim held by another account stops the write: the claims
//!    this write just took are given back (`DELETE ... IF owner = ?`) and the answer is
//!    [`StoreError::ClaimTaken`] with nothing else written.
//! 2. **One logged batch** with everything else (record, edges, tokens, events and the log's
//!    last seq, activities with their feed row, day index and idempotency key, deliveries
//!    with their outbox entry, both sides of a binding). A logged batch is atomic: once the
//!    coordinator has written it to its batch log, every statement is applied eventually,
//!    even if the coordinator dies. It is **not isolated**: a concurrent reader may see part
//!    of it for a moment. That is harmless here because each owner's rows are written only
//!    by its own actor, which reads them only after the write was acknowledged.
//!    Acknowledged means the batch met the configured consistency (default LOCAL_QUORUM).
//!    Rows a change set touches more than once are collapsed first (last change wins, as in
//!    the embedded store), because every statement of a batch carries the same timestamp and
//!    the cluster would otherwise pick the winner by content, not by order.
//! 3. **Releases last** (`DELETE ... IF owner = ?`), so a failed write never frees a claim
//!    its account still uses. A release that keeps failing is logged and leaves the claim
//!    held by its account (safe, but nobody else can take it until released).
//!
//! If the batch fails, the claims it took are given back only when the failure proves the
//! batch was not applied (e.g. `Unavailable`, a rejected statement, no connection). When the
//! outcome is unknown (a timeout, a connection lost mid-request) or the batch is known to
//! be in the batch log (a write timeout of type `BATCH`), the claims are kept: a batch that
//! lands later then finds its claims still held by its account, never free or given to
//! someone else. The caller gets [`StoreError::Backend`] either way. To make that judgement
//! exact, a batch that follows freshly taken claims is sent non-idempotent, so the driver
//! never retries it after an ambiguous attempt; every other batch is idempotent and retried
//! by the driver as usual.
//!
//! Claims use LOCAL_SERIAL under a datacenter-local consistency (the default LOCAL_QUORUM)
//! and SERIAL under a cluster-wide one, so a multi-datacenter deployment that asks for
//! `quorum` or `each_quorum` also gets claims decided across datacenters. Reads use the same
//! level as writes, so at LOCAL_QUORUM a read after an acknowledged write sees it; the one
//! exception is `each_quorum`, which the cluster refuses for reads: those read at
//! LOCAL_QUORUM, which still overlaps every acknowledged write in the local datacenter.
//!
//! A write that takes or releases claims spans several requests (claims, batch, releases).
//! It runs as its own task on the runtime the store was connected on, so it finishes even if
//! its caller is dropped (an HTTP client that hangs up during signup, an actor stopped at
//! shutdown): a claim is never left taken by a write that then never happened.
//! [`SubscriberStore::close`] stops admitting writes and waits for those already admitted.
//!
//! Limits: a change set must fit in one batch (the cluster's
//! `batch_size_fail_threshold_in_kb`, 1 MiB by default). A claim race under heavy
//! contention can fail with a Paxos timeout (`Backend`), never with two winners. A timeout
//! can leave a write applied (or applying) although the caller was told `Backend`; with an
//! ambiguous claim failure the claim may stay held by the account that tried. Successive
//! writes of one row (a record, a last seq) are ordered by client timestamps from one
//! monotonic generator per process; across processes that relies on synchronized clocks.

mod keys;
mod statements;

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytestring::ByteString;
use chorus_actors::StoreError;
use chorus_actors::model::{
    AccountId, AccountRecord, ActivityRecord, Claim, CommunityId, DynamicRecord, FeedPos,
    MessageRecord, ReleaseRecord as DeliveryRecord,
};
use chorus_actors::push::StoredEvent;
use chorus_actors::store::{
    CommunitySnapshot, CommunityStore, CommunityWrite, Edge, EdgeChange, GroupSnapshot, GroupStore,
    GroupWrite, SubscriberSnapshot, SubscriberStore, SubscriberWrite,
};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::deserialize::row::DeserializeRow;
use scylla::errors::{DbError, ExecutionError, RequestAttemptError, WriteType};
use scylla::policies::timestamp_generator::MonotonicTimestampGenerator;
use scylla::response::PagingState;
use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency, SerialConsistency};
use scylla::value::{CqlValue, Row};
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

pub use self::keys::{EVENT_BUCKET, FEED_BUCKET_MS, OUTBOX_SHARDS};
use self::keys::{
    FeedKind, LogKind, bound_ms, decode, edge_kind_of, edge_kind_text, encode, event_bucket,
    feed_bucket, from_bigint, limit_value, outbox_shard, split_hash, to_bigint,
};
use self::statements::Statements;

/// The schema, with `{keyspace}` and `{replication}` placeholders.
const SCHEMA: &str = include_str!("schema.cql");

/// Attempts at a claim release before it is given up (and logged).
const RELEASE_ATTEMPTS: usize = 3;

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
fn parse_consistency(name: &str) -> Result<Consistency, String> {
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
fn read_consistency(consistency: Consistency) -> Consistency {
    match consistency {
        Consistency::EachQuorum => Consistency::LocalQuorum,
        other => other,
    }
}

/// The serial consistency of claims under `consistency`. A datacenter-local level keeps
/// Paxos local (LOCAL_SERIAL, the default); a cluster-wide level asks for SERIAL, since a
/// claim decided by one datacenter alone could also be granted by another.
fn serial_for(consistency: Consistency) -> SerialConsistency {
    match consistency {
        Consistency::LocalQuorum | Consistency::LocalOne => SerialConsistency::LocalSerial,
        _ => SerialConsistency::Serial,
    }
}

/// The schema as CQL statements, keyspace and replication filled in (what
/// `chorus schema print` prints).
pub fn schema(keyspace: &str, replication: &str) -> String {
    SCHEMA
        .replace("{keyspace}", keyspace)
        .replace("{replication}", replication)
}

/// The same, split into single statements without comments (for [`apply_schema`]).
pub fn schema_statements(keyspace: &str, replication: &str) -> Vec<String> {
    let text = schema(keyspace, replication);
    let code: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect();
    code.join("\n")
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Connects and applies the schema (every statement is `IF NOT EXISTS`, so this is safe to
/// repeat), then waits until every node agrees on it.
pub async fn apply_schema(settings: &ScyllaSettings) -> Result<(), StoreError> {
    settings.validate().map_err(StoreError::Backend)?;
    let session = connect_session(settings).await?;
    for statement in schema_statements(&settings.keyspace, &settings.replication) {
        session
            .query_unpaged(statement.as_str(), ())
            .await
            .map_err(|e| backend("applying the schema", e))?;
    }
    session
        .await_schema_agreement()
        .await
        .map_err(|e| backend("awaiting schema agreement", e))?;
    tracing::info!(keyspace = %settings.keyspace, "scylla schema applied");
    Ok(())
}

fn backend(context: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("scylla {context}: {e}"))
}

async fn connect_session(settings: &ScyllaSettings) -> Result<Session, StoreError> {
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
        .timestamp_generator(Arc::new(MonotonicTimestampGenerator::new()))
        .build()
        .await
        .map_err(|e| backend("connecting", e))
}

/// The [`Store`](chorus_actors::store::Store) on ScyllaDB. Cheap handles (`Arc`s) inside, so
/// a write can carry its own copy into a task of its own.
pub struct ScyllaStore {
    session: Arc<Session>,
    st: Arc<Statements>,
    consistency: Consistency,
    gate: WriteGate,
    /// Where writes that must finish even without their caller run (see [`Self::commit`]).
    runtime: tokio::runtime::Handle,
}

impl ScyllaStore {
    /// Connects, checks the keyspace exists, and prepares every statement once.
    pub async fn connect(settings: &ScyllaSettings) -> Result<ScyllaStore, StoreError> {
        settings.validate().map_err(StoreError::Backend)?;
        let consistency = parse_consistency(&settings.consistency).map_err(StoreError::Backend)?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| backend("finding the tokio runtime", e))?;
        let session = connect_session(settings).await?;
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
        session
            .use_keyspace(settings.keyspace.as_str(), false)
            .await
            .map_err(|e| backend("using the keyspace", e))?;
        let st = Statements::prepare(
            &session,
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
            "connected to scylla; statements prepared"
        );
        Ok(ScyllaStore {
            session: Arc::new(session),
            st: Arc::new(st),
            consistency,
            gate: WriteGate::new(),
            runtime,
        })
    }

    /// Another handle on the same session, statements and gate.
    fn share(&self) -> ScyllaStore {
        ScyllaStore {
            session: Arc::clone(&self.session),
            st: Arc::clone(&self.st),
            consistency: self.consistency,
            gate: self.gate.clone(),
            runtime: self.runtime.clone(),
        }
    }

    /// At most one row.
    async fn get_one<R>(
        &self,
        ps: &PreparedStatement,
        values: impl SerializeRow,
        what: &str,
    ) -> Result<Option<R>, StoreError>
    where
        R: for<'f, 'm> DeserializeRow<'f, 'm>,
    {
        let rows = self
            .session
            .execute_unpaged(ps, values)
            .await
            .map_err(|e| backend(what, e))?
            .into_rows_result()
            .map_err(|e| backend(what, e))?;
        rows.maybe_first_row::<R>().map_err(|e| corrupt(what, e))
    }

    /// Every row, page by page, stopping once `max` rows are in.
    async fn all_rows<R>(
        &self,
        ps: &PreparedStatement,
        values: impl SerializeRow,
        max: usize,
        what: &str,
    ) -> Result<Vec<R>, StoreError>
    where
        R: for<'f, 'm> DeserializeRow<'f, 'm>,
    {
        let mut out = Vec::new();
        let mut state = PagingState::start();
        loop {
            let (result, paging) = self
                .session
                .execute_single_page(ps, &values, state)
                .await
                .map_err(|e| backend(what, e))?;
            let rows = result.into_rows_result().map_err(|e| backend(what, e))?;
            for row in rows.rows::<R>().map_err(|e| backend(what, e))? {
                out.push(row.map_err(|e| corrupt(what, e))?);
                if out.len() >= max {
                    return Ok(out);
                }
            }
            match paging.into_paging_control_flow() {
                ControlFlow::Break(()) => return Ok(out),
                ControlFlow::Continue(next) => state = next,
            }
        }
    }

    /// Every JSON record a query returns (one blob column), decoded.
    async fn records<T: DeserializeOwned>(
        &self,
        ps: &PreparedStatement,
        values: impl SerializeRow,
        what: &str,
    ) -> Result<Vec<T>, StoreError> {
        let rows: Vec<(Vec<u8>,)> = self.all_rows(ps, values, usize::MAX, what).await?;
        rows.iter().map(|(bytes,)| decode(what, bytes)).collect()
    }

    async fn record<T: DeserializeOwned>(
        &self,
        ps: &PreparedStatement,
        values: impl SerializeRow,
        what: &str,
    ) -> Result<Option<T>, StoreError> {
        match self.get_one::<(Vec<u8>,)>(ps, values, what).await? {
            Some((bytes,)) => Ok(Some(decode(what, &bytes)?)),
            None => Ok(None),
        }
    }

    async fn ids(
        &self,
        ps: &PreparedStatement,
        owner: &str,
        what: &str,
    ) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = self.all_rows(ps, (owner,), usize::MAX, what).await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    async fn last_seq(&self, kind: LogKind, id: &str) -> Result<u64, StoreError> {
        let key = kind.key(id);
        match self
            .get_one::<(i64,)>(&self.st.get_last_seq, (key.as_str(),), "reading logs")
            .await?
        {
            Some((seq,)) => from_bigint(seq, &format!("logs/{key}")),
            None => Ok(0),
        }
    }

    /// Events with `seq > after`, oldest first: the log's partitions from the one holding
    /// `after + 1` up to the one holding its last seq (seqs have no gaps, so none is empty).
    async fn read_log(
        &self,
        kind: LogKind,
        ps: &PreparedStatement,
        id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let last = self.last_seq(kind, id).await?;
        if after >= last {
            return Ok(Vec::new());
        }
        // after < last <= i64::MAX.
        let after_value = to_bigint(after, "seq")?;
        let mut out = Vec::new();
        let mut bucket = event_bucket(after + 1);
        while bucket <= event_bucket(last) && out.len() < limit {
            let remaining = limit - out.len();
            let rows: Vec<(i64, String)> = self
                .all_rows(
                    ps,
                    (id, bucket, after_value, limit_value(remaining)),
                    remaining,
                    "reading events",
                )
                .await?;
            for (seq, frame) in rows {
                out.push(StoredEvent {
                    seq: from_bigint(seq, &format!("{id}/{seq}"))?,
                    frame: ByteString::from(frame),
                });
            }
            bucket += 1;
        }
        Ok(out)
    }

    /// Newest-first page of a feed: items created at or after `since_ms` and strictly before
    /// `before`. Walks the feed's non-empty days newest first (from the cursor's day), reading
    /// each day partition until `limit` items are in.
    #[allow(clippy::too_many_arguments)]
    async fn feed_page<T: DeserializeOwned>(
        &self,
        kind: FeedKind,
        page: &PreparedStatement,
        page_before: &PreparedStatement,
        owner: &str,
        since_ms: u64,
        before: Option<&FeedPos>,
        limit: usize,
    ) -> Result<Vec<T>, StoreError> {
        let feed = kind.key(owner);
        let top = before.map_or(i64::MAX, |pos| feed_bucket(pos.ms));
        let low = feed_bucket(since_ms);
        let since = bound_ms(since_ms);
        let mut out = Vec::new();
        if limit == 0 || top < low {
            return Ok(out);
        }
        let mut state = PagingState::start();
        loop {
            let (result, paging) = self
                .session
                .execute_single_page(&self.st.list_feed_buckets, (&feed, top, low), state)
                .await
                .map_err(|e| backend("reading feed days", e))?;
            let buckets: Vec<i64> = {
                let rows = result
                    .into_rows_result()
                    .map_err(|e| backend("reading feed days", e))?;
                rows.rows::<(i64,)>()
                    .map_err(|e| backend("reading feed days", e))?
                    .map(|row| row.map(|(b,)| b))
                    .collect::<Result<_, _>>()
                    .map_err(|e| corrupt("feed_buckets", e))?
            };
            for bucket in buckets {
                let remaining = limit - out.len();
                let rows: Vec<(i64, Vec<u8>)> = match before {
                    Some(pos) if feed_bucket(pos.ms) == bucket => {
                        let values = (
                            &feed,
                            bucket,
                            bound_ms(pos.ms),
                            pos.id.as_str(),
                            limit_value(remaining),
                        );
                        self.all_rows(page_before, values, remaining, "reading a feed")
                            .await?
                    }
                    _ => {
                        let values = (&feed, bucket, limit_value(remaining));
                        self.all_rows(page, values, remaining, "reading a feed")
                            .await?
                    }
                };
                for (ms, bytes) in rows {
                    if ms < since {
                        return Ok(out);
                    }
                    out.push(decode(&format!("{feed}/{ms}"), &bytes)?);
                }
                if out.len() >= limit {
                    return Ok(out);
                }
            }
            match paging.into_paging_control_flow() {
                ControlFlow::Break(()) => return Ok(out),
                ControlFlow::Continue(next) => state = next,
            }
        }
    }

    /// Looks up a selector/verifier hash index (tokens, server keys); the verifier half is
    /// compared in constant time.
    async fn find_hash(
        &self,
        ps: &PreparedStatement,
        hash: &[u8; 32],
        what: &str,
    ) -> Result<Option<String>, StoreError> {
        let (selector, verifier) = split_hash(hash);
        let row: Option<(Vec<u8>, String)> = self.get_one(ps, (selector,), what).await?;
        Ok(row.and_then(|(stored, owner)| bool::from(stored.ct_eq(&verifier)).then_some(owner)))
    }

    /// One account write: claims, then the batch, then releases (see the module docs).
    async fn commit_subscriber(&self, write: SubscriberWrite) -> Result<(), StoreError> {
        let account = write.account.as_str();
        // Encode everything before taking any claim: a record that fails to encode must not
        // leave claims behind.
        let rows = self.subscriber_rows(&write)?;
        let taken = self.take_claims(&write).await?;
        if !rows.rows.is_empty() {
            // Fresh claims make the outcome matter: no blind driver retries then.
            let idempotent = taken.is_empty();
            if let Err(failure) = self.run_batch(rows, idempotent).await {
                match failure.outcome {
                    BatchOutcome::NotApplied => self.give_back(account, &taken).await,
                    outcome => {
                        if !taken.is_empty() {
                            tracing::error!(%account, claims = ?taken, ?outcome,
                                "write outcome unknown or pending; its claims stay held");
                        }
                    }
                }
                tracing::error!(%account, outcome = ?failure.outcome, error = %failure.message,
                    "account write failed");
                return Err(StoreError::Backend(failure.message));
            }
        }
        for Claim(claim) in &write.releases {
            if write.claims.iter().any(|c| &c.0 == claim) {
                // Released and claimed in one write: the claim wins, as in the embedded store.
                continue;
            }
            if let Err(e) = self.release(claim, account).await {
                tracing::error!(%account, %claim, error = %e,
                    "claim release failed after the write landed; the claim stays held");
            }
        }
        Ok(())
    }

    // ---- claims -------------------------------------------------------------------------

    /// One claim's lightweight transaction.
    async fn take_claim(&self, claim: &str, account: &str) -> Result<ClaimOutcome, StoreError> {
        let what = "taking a claim";
        let rows = self
            .session
            .execute_unpaged(&self.st.take_claim, (claim, account))
            .await
            .map_err(|e| backend(what, e))?
            .into_rows_result()
            .map_err(|e| backend(what, e))?;
        // Scylla answers `[applied]` plus every column (null when applied); Cassandra only
        // `[applied]` when applied. Columns are found by name to read either.
        let specs = rows.column_specs();
        let applied_at = specs.get_by_name("[applied]").map_or(0, |(i, _)| i);
        let owner_at = specs.get_by_name("owner").map(|(i, _)| i);
        let row: Row = rows.single_row().map_err(|e| backend(what, e))?;
        let column = |i: usize| row.columns.get(i).and_then(Option::as_ref);
        let applied = column(applied_at)
            .and_then(CqlValue::as_boolean)
            .ok_or_else(|| backend(what, "answer without [applied]"))?;
        if applied {
            return Ok(ClaimOutcome::Taken);
        }
        match owner_at.and_then(column).and_then(CqlValue::as_text) {
            Some(owner) if owner == account => Ok(ClaimOutcome::AlreadyOurs),
            _ => Ok(ClaimOutcome::HeldByOther),
        }
    }

    /// Takes every claim of `write` in order. On a claim held by another account, gives back
    /// the ones taken here and answers [`StoreError::ClaimTaken`].
    async fn take_claims(&self, write: &SubscriberWrite) -> Result<Vec<String>, StoreError> {
        let account = write.account.as_str();
        let mut taken: Vec<String> = Vec::new();
        for Claim(claim) in &write.claims {
            if taken.contains(claim) {
                continue;
            }
            match self.take_claim(claim, account).await {
                Ok(ClaimOutcome::Taken) => taken.push(claim.clone()),
                Ok(ClaimOutcome::AlreadyOurs) => {}
                Ok(ClaimOutcome::HeldByOther) => {
                    self.give_back(account, &taken).await;
                    return Err(StoreError::ClaimTaken(claim.clone()));
                }
                Err(e) => {
                    // This claim's transaction may or may not have applied, and the account
                    // may have held it before: it is left as it is (at worst held by this
                    // account), and only the claims known to be taken here are given back.
                    self.give_back(account, &taken).await;
                    return Err(e);
                }
            }
        }
        Ok(taken)
    }

    /// Deletes `claim` if `account` holds it; retried, since the condition makes a repeat
    /// harmless.
    async fn release(&self, claim: &str, account: &str) -> Result<(), StoreError> {
        let mut last = None;
        for _ in 0..RELEASE_ATTEMPTS {
            match self
                .session
                .execute_unpaged(&self.st.release_claim, (claim, account))
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(e) => backend("releasing a claim", e),
            None => backend("releasing a claim", "no attempt made"),
        })
    }

    /// Best-effort undo of claims this write took.
    async fn give_back(&self, account: &str, claims: &[String]) {
        for claim in claims {
            if let Err(e) = self.release(claim, account).await {
                tracing::error!(%account, %claim, error = %e,
                    "claim taken by a failed write could not be given back; it stays held");
            }
        }
    }

    // ---- batches ------------------------------------------------------------------------

    async fn run_batch(&self, rows: BatchRows<'_>, idempotent: bool) -> Result<(), BatchFailure> {
        let mut batch = Batch::new(BatchType::Logged);
        let mut values = Vec::with_capacity(rows.rows.len());
        for (ps, row) in rows.rows {
            batch.append_statement(ps.clone());
            values.push(row);
        }
        batch.set_consistency(self.consistency);
        batch.set_is_idempotent(idempotent);
        match self.session.batch(&batch, values).await {
            Ok(_) => Ok(()),
            Err(e) => Err(BatchFailure {
                outcome: batch_outcome(&e),
                message: format!("scylla write failed: {e}"),
            }),
        }
    }

    /// A batch without claims: nothing to undo when it fails.
    async fn write_rows(&self, rows: BatchRows<'_>, owner: &str) -> Result<(), StoreError> {
        if rows.rows.is_empty() {
            return Ok(());
        }
        self.run_batch(rows, true).await.map_err(|f| {
            tracing::error!(%owner, outcome = ?f.outcome, error = %f.message, "write failed");
            StoreError::Backend(f.message)
        })
    }

    fn subscriber_rows<'a>(&'a self, w: &SubscriberWrite) -> Result<BatchRows<'a>, StoreError> {
        let st = &self.st;
        let id = w.account.as_str();
        let mut rows = BatchRows::default();
        if let Some(record) = &w.record {
            rows.put(
                format!("accounts\0{id}"),
                &st.put_account,
                vec![text(id), blob(encode(id, record)?)],
            );
        }
        for change in &w.edges {
            match change {
                EdgeChange::Put(edge) => {
                    let kind = edge_kind_text(edge.kind);
                    rows.put(
                        format!("edges\0{id}\0{kind}\0{}", edge.other),
                        &st.put_edge,
                        vec![
                            text(id),
                            text(&kind),
                            text(&edge.other),
                            blob(edge.value.clone()),
                        ],
                    );
                }
                EdgeChange::Delete { kind, other } => {
                    let kind = edge_kind_text(*kind);
                    rows.put(
                        format!("edges\0{id}\0{kind}\0{other}"),
                        &st.delete_edge,
                        vec![text(id), text(&kind), text(other)],
                    );
                }
            }
        }
        for hash in &w.tokens {
            let (selector, verifier) = split_hash(hash);
            rows.put(
                format!("tokens\0{}", hex::encode(&selector)),
                &st.put_token,
                vec![blob(selector), blob(verifier), text(id)],
            );
        }
        add_events(
            &mut rows,
            &st.put_event,
            LogKind::Account,
            id,
            &w.events,
            st,
        )?;
        for a in &w.activities {
            let record = encode(&a.activity_id, a)?;
            rows.put(
                format!("activities\0{}", a.activity_id),
                &st.put_activity,
                vec![text(&a.activity_id), blob(record.clone())],
            );
            add_feed_item(
                &mut rows,
                &st.put_feed_activity,
                FeedKind::Activities,
                id,
                a.created_ms,
                &a.activity_id,
                record,
                st,
            )?;
            if let Some(key) = &a.idempotency_key {
                rows.put(
                    format!("activity_keys\0{id}\0{key}"),
                    &st.put_activity_key,
                    vec![text(id), text(key), text(&a.activity_id)],
                );
            }
        }
        for d in &w.deliveries {
            let (aid, lid) = (d.activity_id.as_str(), d.link.link_id.as_str());
            let record = encode(aid, d)?;
            rows.put(
                format!("deliveries\0{aid}\0{lid}"),
                &st.put_delivery,
                vec![text(aid), text(lid), blob(record.clone())],
            );
            let shard = CqlValue::Int(outbox_shard(aid));
            let key = format!("outbox\0{aid}\0{lid}");
            if d.status.is_final() {
                rows.put(key, &st.delete_outbox, vec![shard, text(aid), text(lid)]);
            } else {
                rows.put(
                    key,
                    &st.put_outbox,
                    vec![shard, text(aid), text(lid), blob(record)],
                );
            }
        }
        Ok(rows)
    }

    fn group_rows<'a>(&'a self, w: &GroupWrite) -> Result<BatchRows<'a>, StoreError> {
        let st = &self.st;
        let gid = w.group_id.as_str();
        let mut rows = BatchRows::default();
        if let Some(record) = &w.record {
            rows.put(
                format!("groups\0{gid}"),
                &st.put_group,
                vec![text(gid), blob(encode(gid, record)?)],
            );
        }
        for m in &w.members_add {
            rows.put(
                format!("group_members\0{gid}\0{m}"),
                &st.put_group_member,
                vec![text(gid), text(m)],
            );
        }
        for m in &w.members_remove {
            rows.put(
                format!("group_members\0{gid}\0{m}"),
                &st.delete_group_member,
                vec![text(gid), text(m)],
            );
        }
        for r in &w.requests_remove {
            rows.put(
                format!("binding_requests\0{gid}\0{r}"),
                &st.delete_request,
                vec![text(gid), text(r)],
            );
        }
        for r in &w.requests_put {
            rows.put(
                format!("binding_requests\0{gid}\0{}", r.request_id),
                &st.put_request,
                vec![
                    text(gid),
                    text(&r.request_id),
                    blob(encode(&r.request_id, r)?),
                ],
            );
        }
        for b in &w.bindings_put {
            let cid = b.community_id.as_str();
            let record = encode(cid, b)?;
            rows.put(
                format!("bindings_by_group\0{gid}\0{cid}"),
                &st.put_binding_by_group,
                vec![text(gid), text(cid), blob(record.clone())],
            );
            rows.put(
                format!("bindings_by_community\0{cid}\0{gid}"),
                &st.put_binding_by_community,
                vec![text(cid), text(gid), blob(record)],
            );
        }
        for cid in &w.bindings_remove {
            rows.put(
                format!("bindings_by_group\0{gid}\0{cid}"),
                &st.delete_binding_by_group,
                vec![text(gid), text(cid)],
            );
            rows.put(
                format!("bindings_by_community\0{cid}\0{gid}"),
                &st.delete_binding_by_community,
                vec![text(cid), text(gid)],
            );
        }
        for m in &w.messages {
            add_feed_item(
                &mut rows,
                &st.put_message,
                FeedKind::Messages,
                gid,
                m.created_ms,
                &m.message_id,
                encode(&m.message_id, m)?,
                st,
            )?;
        }
        add_events(
            &mut rows,
            &st.put_group_event,
            LogKind::Group,
            gid,
            &w.events,
            st,
        )?;
        Ok(rows)
    }

    fn community_rows<'a>(&'a self, w: &CommunityWrite) -> Result<BatchRows<'a>, StoreError> {
        let st = &self.st;
        let cid = w.community_id.as_str();
        let mut rows = BatchRows::default();
        if let Some(record) = &w.record {
            rows.put(
                format!("communities\0{cid}"),
                &st.put_community,
                vec![text(cid), blob(encode(cid, record)?)],
            );
        }
        if let Some(hash) = &w.server_key_hash {
            let (selector, verifier) = split_hash(hash);
            rows.put(
                format!("server_keys\0{}", hex::encode(&selector)),
                &st.put_server_key,
                vec![blob(selector), blob(verifier), text(cid)],
            );
        }
        for m in &w.members_add {
            rows.put(
                format!("community_members\0{cid}\0{m}"),
                &st.put_community_member,
                vec![text(cid), text(m)],
            );
        }
        for d in &w.dynamics {
            add_feed_item(
                &mut rows,
                &st.put_dynamic,
                FeedKind::Dynamics,
                cid,
                d.created_ms,
                &d.dynamic_id,
                encode(&d.dynamic_id, d)?,
                st,
            )?;
        }
        Ok(rows)
    }
}

/// Admits writes until closed; closing waits until every admitted write has finished (or
/// been dropped), like the embedded store's close, which answers after the writes queued
/// before it. The lock is fair: once `close` waits, later writes wait too and then find the
/// gate closed.
#[derive(Clone)]
struct WriteGate {
    open: Arc<tokio::sync::RwLock<bool>>,
}

impl WriteGate {
    fn new() -> Self {
        WriteGate {
            open: Arc::new(tokio::sync::RwLock::new(true)),
        }
    }

    /// Admission of one write, held until the write is over.
    async fn enter(&self) -> Result<tokio::sync::OwnedRwLockReadGuard<bool>, StoreError> {
        let admitted = Arc::clone(&self.open).read_owned().await;
        if *admitted {
            Ok(admitted)
        } else {
            Err(StoreError::Backend("store is closed".into()))
        }
    }

    /// Stops admitting writes; returns once the admitted ones are over.
    async fn close(&self) {
        *self.open.write().await = false;
    }
}

enum ClaimOutcome {
    /// This transaction took it.
    Taken,
    /// The account held it already.
    AlreadyOurs,
    HeldByOther,
}

/// What a failed batch means for the rows it carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BatchOutcome {
    /// Rejected before anything was written.
    NotApplied,
    /// In the coordinator's batch log: it will be applied.
    WillApply,
    /// Unknown (a timeout, a lost connection).
    Unknown,
}

struct BatchFailure {
    outcome: BatchOutcome,
    message: String,
}

/// Reads a batch error. Only the last attempt's error is visible, which is why a batch whose
/// outcome matters (one guarded by fresh claims) is sent non-idempotent: the driver then
/// retries only after attempts that surely did not apply.
fn batch_outcome(e: &ExecutionError) -> BatchOutcome {
    match e {
        ExecutionError::BadQuery(_)
        | ExecutionError::EmptyPlan
        | ExecutionError::PrepareError(_)
        | ExecutionError::ConnectionPoolError(_) => BatchOutcome::NotApplied,
        ExecutionError::LastAttemptError(attempt) => match attempt {
            RequestAttemptError::SerializationError(_)
            | RequestAttemptError::CqlRequestSerialization(_)
            | RequestAttemptError::UnableToAllocStreamId => BatchOutcome::NotApplied,
            RequestAttemptError::DbError(db, _) => match db {
                DbError::Unavailable { .. }
                | DbError::Invalid
                | DbError::SyntaxError
                | DbError::Unauthorized
                | DbError::ConfigError
                | DbError::IsBootstrapping
                | DbError::Unprepared { .. } => BatchOutcome::NotApplied,
                DbError::WriteTimeout {
                    write_type: WriteType::Batch,
                    ..
                } => BatchOutcome::WillApply,
                _ => BatchOutcome::Unknown,
            },
            _ => BatchOutcome::Unknown,
        },
        _ => BatchOutcome::Unknown,
    }
}

/// The rows of one logged batch (`S` is the statement; generic only so tests can use
/// names). Each row is keyed by its table and primary key; a later change of the same row
/// replaces the earlier one, because all statements of a batch share one timestamp and the
/// cluster would not honour their order.
struct Rows<S> {
    rows: Vec<(S, Vec<CqlValue>)>,
    index: HashMap<String, usize>,
}

impl<S> Default for Rows<S> {
    fn default() -> Self {
        Rows {
            rows: Vec::new(),
            index: HashMap::new(),
        }
    }
}

impl<S> Rows<S> {
    fn put(&mut self, key: String, statement: S, values: Vec<CqlValue>) {
        match self.index.get(&key) {
            Some(&at) => {
                if let Some(slot) = self.rows.get_mut(at) {
                    *slot = (statement, values);
                }
            }
            None => {
                self.index.insert(key, self.rows.len());
                self.rows.push((statement, values));
            }
        }
    }
}

/// The rows of a batch of prepared statements.
type BatchRows<'a> = Rows<&'a PreparedStatement>;

fn text(s: &str) -> CqlValue {
    CqlValue::Text(s.to_owned())
}

fn blob(bytes: Vec<u8>) -> CqlValue {
    CqlValue::Blob(bytes)
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        key: what.to_owned(),
        reason: e.to_string(),
    }
}

/// Events plus the log's new last seq (the largest written; an owner's writes are serialized
/// by its actor, so a plain write of the maximum is correct).
fn add_events<'a>(
    rows: &mut BatchRows<'a>,
    put: &'a PreparedStatement,
    kind: LogKind,
    owner: &str,
    events: &[StoredEvent],
    st: &'a Statements,
) -> Result<(), StoreError> {
    let table = match kind {
        LogKind::Account => "events",
        LogKind::Group => "group_events",
    };
    for e in events {
        rows.put(
            format!("{table}\0{owner}\0{}", e.seq),
            put,
            vec![
                text(owner),
                CqlValue::BigInt(event_bucket(e.seq)),
                CqlValue::BigInt(to_bigint(e.seq, "seq")?),
                text(&e.frame),
            ],
        );
    }
    if let Some(last) = events.iter().map(|e| e.seq).max() {
        let log = kind.key(owner);
        rows.put(
            format!("logs\0{log}"),
            &st.put_last_seq,
            vec![
                CqlValue::Text(log),
                CqlValue::BigInt(to_bigint(last, "seq")?),
            ],
        );
    }
    Ok(())
}

/// A feed item and its day in the feed's day index.
#[allow(clippy::too_many_arguments)]
fn add_feed_item<'a>(
    rows: &mut BatchRows<'a>,
    put: &'a PreparedStatement,
    kind: FeedKind,
    owner: &str,
    created_ms: u64,
    item_id: &str,
    record: Vec<u8>,
    st: &'a Statements,
) -> Result<(), StoreError> {
    let feed = kind.key(owner);
    let bucket = feed_bucket(created_ms);
    rows.put(
        format!("feed\0{feed}\0{created_ms}\0{item_id}"),
        put,
        vec![
            text(&feed),
            CqlValue::BigInt(bucket),
            CqlValue::BigInt(to_bigint(created_ms, "created_ms")?),
            text(item_id),
            blob(record),
        ],
    );
    rows.put(
        format!("feed_buckets\0{feed}\0{bucket}"),
        &st.put_feed_bucket,
        vec![CqlValue::Text(feed), CqlValue::BigInt(bucket)],
    );
    Ok(())
}

#[async_trait]
impl SubscriberStore for ScyllaStore {
    async fn commit(&self, write: SubscriberWrite) -> Result<(), StoreError> {
        let admitted = self.gate.enter().await?;
        if write.claims.is_empty() && write.releases.is_empty() {
            // One batch: dropped half way, it either was sent or was not, and was never
            // acknowledged either way.
            let result = self.commit_subscriber(write).await;
            drop(admitted);
            return result;
        }
        // Claims, batch and releases are separate requests: run them to the end on a task of
        // their own, whatever happens to the caller, holding the admission until done.
        let store = self.share();
        self.runtime
            .spawn(async move {
                let result = store.commit_subscriber(write).await;
                drop(admitted);
                result
            })
            .await
            .map_err(|e| backend("account write task", e))?
    }

    async fn load_account(&self, id: &str) -> Result<Option<AccountRecord>, StoreError> {
        self.record(&self.st.get_account, (id,), &format!("accounts/{id}"))
            .await
    }

    async fn load_subscriber(&self, id: &str) -> Result<Option<SubscriberSnapshot>, StoreError> {
        let Some(record) = self.load_account(id).await? else {
            return Ok(None);
        };
        let edge_rows = self.all_rows::<(String, String, Vec<u8>)>(
            &self.st.list_edges,
            (id,),
            usize::MAX,
            "reading edges",
        );
        let (edge_rows, last_seq) =
            tokio::try_join!(edge_rows, self.last_seq(LogKind::Account, id))?;
        let mut edges = Vec::with_capacity(edge_rows.len());
        for (kind, other, value) in edge_rows {
            let Some(kind) = edge_kind_of(&kind) else {
                tracing::error!(account = %id, %kind, "skipping edge of unknown kind");
                continue;
            };
            edges.push(Edge { kind, other, value });
        }
        Ok(Some(SubscriberSnapshot {
            record,
            edges,
            last_seq,
        }))
    }

    async fn find_claim(&self, claim: &Claim) -> Result<Option<AccountId>, StoreError> {
        let row: Option<(String,)> = self
            .get_one(&self.st.get_claim, (claim.0.as_str(),), "reading claims")
            .await?;
        Ok(row.map(|(owner,)| owner))
    }

    async fn find_token(&self, hash: &[u8; 32]) -> Result<Option<AccountId>, StoreError> {
        self.find_hash(&self.st.get_token, hash, "reading tokens")
            .await
    }

    async fn read_events(
        &self,
        id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.read_log(LogKind::Account, &self.st.read_events, id, after, limit)
            .await
    }

    async fn load_activity(&self, id: &str) -> Result<Option<ActivityRecord>, StoreError> {
        self.record(&self.st.get_activity, (id,), &format!("activities/{id}"))
            .await
    }

    async fn find_activity_by_key(
        &self,
        account: &str,
        key: &str,
    ) -> Result<Option<ActivityRecord>, StoreError> {
        let row: Option<(String,)> = self
            .get_one(
                &self.st.get_activity_key,
                (account, key),
                "reading activity keys",
            )
            .await?;
        match row {
            Some((id,)) => self.load_activity(&id).await,
            None => Ok(None),
        }
    }

    async fn list_activities(
        &self,
        account: &str,
        before: Option<&FeedPos>,
        limit: usize,
    ) -> Result<Vec<ActivityRecord>, StoreError> {
        self.feed_page(
            FeedKind::Activities,
            &self.st.page_activities,
            &self.st.page_activities_before,
            account,
            0,
            before,
            limit,
        )
        .await
    }

    async fn list_deliveries(&self, activity_id: &str) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.records(
            &self.st.list_deliveries,
            (activity_id,),
            &format!("deliveries/{activity_id}"),
        )
        .await
    }

    async fn pending_deliveries(&self) -> Result<Vec<DeliveryRecord>, StoreError> {
        let mut out: Vec<DeliveryRecord> = Vec::new();
        for shard in 0..OUTBOX_SHARDS {
            out.extend(
                self.records(&self.st.list_outbox, (shard,), &format!("outbox/{shard}"))
                    .await?,
            );
        }
        // The embedded store's order: by activity, then link.
        out.sort_by(|a, b| {
            (&a.activity_id, &a.link.link_id).cmp(&(&b.activity_id, &b.link.link_id))
        });
        Ok(out)
    }

    async fn close(&self) -> Result<(), StoreError> {
        // Nothing to flush: every acknowledged write already met its consistency level. What
        // is left is to let the admitted writes finish (a write's claims, batch and releases
        // must not be cut apart by the process exiting after this returns).
        self.gate.close().await;
        tracing::info!("scylla store closed");
        Ok(())
    }
}

#[async_trait]
impl GroupStore for ScyllaStore {
    async fn commit_group(&self, write: GroupWrite) -> Result<(), StoreError> {
        let _admitted = self.gate.enter().await?;
        let rows = self.group_rows(&write)?;
        self.write_rows(rows, &write.group_id).await
    }

    async fn load_group(&self, id: &str) -> Result<Option<GroupSnapshot>, StoreError> {
        let Some(record) = self
            .record(&self.st.get_group, (id,), &format!("groups/{id}"))
            .await?
        else {
            return Ok(None);
        };
        let (requests_key, bindings_key) = (
            format!("binding_requests/{id}"),
            format!("bindings_by_group/{id}"),
        );
        let (members, requests, bindings, last_seq) = tokio::try_join!(
            self.ids(&self.st.list_group_members, id, "reading group members"),
            self.records(&self.st.list_requests, (id,), &requests_key),
            self.records(&self.st.list_bindings_by_group, (id,), &bindings_key),
            self.last_seq(LogKind::Group, id),
        )?;
        Ok(Some(GroupSnapshot {
            record,
            members,
            requests,
            bindings,
            last_seq,
        }))
    }

    async fn read_group_events(
        &self,
        id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.read_log(LogKind::Group, &self.st.read_group_events, id, after, limit)
            .await
    }

    async fn list_messages(
        &self,
        id: &str,
        before: Option<&FeedPos>,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        self.feed_page(
            FeedKind::Messages,
            &self.st.page_messages,
            &self.st.page_messages_before,
            id,
            0,
            before,
            limit,
        )
        .await
    }
}

#[async_trait]
impl CommunityStore for ScyllaStore {
    async fn commit_community(&self, write: CommunityWrite) -> Result<(), StoreError> {
        let _admitted = self.gate.enter().await?;
        let rows = self.community_rows(&write)?;
        self.write_rows(rows, &write.community_id).await
    }

    async fn load_community(&self, id: &str) -> Result<Option<CommunitySnapshot>, StoreError> {
        let Some(record) = self
            .record(&self.st.get_community, (id,), &format!("communities/{id}"))
            .await?
        else {
            return Ok(None);
        };
        let bindings_key = format!("bindings_by_community/{id}");
        let (members, bindings) = tokio::try_join!(
            self.ids(
                &self.st.list_community_members,
                id,
                "reading community members"
            ),
            self.records(&self.st.list_bindings_by_community, (id,), &bindings_key),
        )?;
        Ok(Some(CommunitySnapshot {
            record,
            members,
            bindings,
        }))
    }

    async fn find_server_key(&self, hash: &[u8; 32]) -> Result<Option<CommunityId>, StoreError> {
        self.find_hash(&self.st.get_server_key, hash, "reading server keys")
            .await
    }

    async fn list_dynamics(
        &self,
        id: &str,
        since_ms: u64,
        before: Option<&FeedPos>,
        limit: usize,
    ) -> Result<Vec<DynamicRecord>, StoreError> {
        self.feed_page(
            FeedKind::Dynamics,
            &self.st.page_dynamics,
            &self.st.page_dynamics_before,
            id,
            since_ms,
            before,
            limit,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[tokio::test]
    async fn close_waits_for_admitted_writes_and_refuses_later_ones() {
        let gate = WriteGate::new();
        let admitted = gate.enter().await.expect("open gate admits");
        let closing = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.close().await })
        };
        // The write in flight holds the close back...
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(
            !closing.is_finished(),
            "close returned before a write ended"
        );
        // ...and a write arriving meanwhile waits, then finds the gate closed.
        let late = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.enter().await.map(drop) })
        };
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!late.is_finished(), "a write slipped past a waiting close");
        drop(admitted);
        closing.await.expect("close");
        assert!(matches!(
            late.await.expect("join"),
            Err(StoreError::Backend(_))
        ));
        assert!(gate.enter().await.is_err(), "closed gate admits nothing");
    }

    #[test]
    fn schema_fills_keyspace_and_replication() {
        let repl = "{'class': 'SimpleStrategy', 'replication_factor': 1}";
        let text = schema("chorus_x", repl);
        assert!(!text.contains("{keyspace}") && !text.contains("{replication}"));
        assert!(text.contains(&format!(
            "CREATE KEYSPACE IF NOT EXISTS chorus_x\n    WITH replication = {repl};"
        )));
        assert!(text.contains("CREATE TABLE IF NOT EXISTS chorus_x.accounts ("));
    }

    #[test]
    fn every_schema_statement_is_idempotent() {
        let statements = schema_statements("ks", "{'class': 'SimpleStrategy'}");
        // The keyspace and every table of the layout.
        assert_eq!(statements.len(), 1 + 23);
        for s in &statements {
            assert!(s.starts_with("CREATE "), "only creates: {s}");
            assert!(
                s.starts_with("CREATE TABLE IF NOT EXISTS ks.")
                    || s.starts_with("CREATE KEYSPACE IF NOT EXISTS ks"),
                "IF NOT EXISTS and qualified: {s}"
            );
            assert!(!s.contains("--") && !s.contains(';'));
        }
        let code: String = SCHEMA
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect();
        let creates = code.matches("CREATE ").count();
        assert_eq!(creates, statements.len(), "every CREATE became a statement");
        assert_eq!(
            code.matches("IF NOT EXISTS").count(),
            creates,
            "every CREATE has IF NOT EXISTS"
        );
    }

    #[test]
    fn feed_tables_cluster_newest_first() {
        let text = schema("ks", "{'class': 'SimpleStrategy'}");
        for table in ["messages", "dynamics", "activity_feed"] {
            let start = text
                .find(&format!("ks.{table} ("))
                .expect("feed table present");
            let def = &text[start..];
            let def = &def[..def.find(';').expect("statement end")];
            assert!(def.contains("PRIMARY KEY ((feed, bucket), created_ms, item_id)"));
            assert!(def.contains("CLUSTERING ORDER BY (created_ms DESC, item_id DESC)"));
        }
    }

    #[test]
    fn rows_collapse_repeated_changes_last_wins() {
        let mut rows: Rows<&str> = Rows::default();
        rows.put("members\0g\0a".into(), "put_member", vec![text("a")]);
        rows.put("members\0g\0b".into(), "put_member", vec![text("b")]);
        rows.put("members\0g\0a".into(), "delete_member", vec![text("a")]);
        let ops: Vec<_> = rows.rows.iter().map(|(s, _)| *s).collect();
        assert_eq!(
            ops,
            ["delete_member", "put_member"],
            "last change of a row wins"
        );
        assert_eq!(rows.rows.len(), 2);
    }

    #[test]
    fn only_certain_failures_count_as_not_applied() {
        let unavailable = ExecutionError::LastAttemptError(RequestAttemptError::DbError(
            DbError::Unavailable {
                consistency: Consistency::LocalQuorum,
                required: 2,
                alive: 1,
            },
            "down".into(),
        ));
        assert_eq!(batch_outcome(&unavailable), BatchOutcome::NotApplied);
        let logged = ExecutionError::LastAttemptError(RequestAttemptError::DbError(
            DbError::WriteTimeout {
                consistency: Consistency::LocalQuorum,
                received: 1,
                required: 2,
                write_type: WriteType::Batch,
            },
            "slow".into(),
        ));
        assert_eq!(batch_outcome(&logged), BatchOutcome::WillApply);
        let batchlog = ExecutionError::LastAttemptError(RequestAttemptError::DbError(
            DbError::WriteTimeout {
                consistency: Consistency::LocalQuorum,
                received: 0,
                required: 2,
                write_type: WriteType::BatchLog,
            },
            "slow".into(),
        ));
        assert_eq!(batch_outcome(&batchlog), BatchOutcome::Unknown);
        assert_eq!(
            batch_outcome(&ExecutionError::RequestTimeout(Duration::from_secs(1))),
            BatchOutcome::Unknown
        );
        assert_eq!(
            batch_outcome(&ExecutionError::EmptyPlan),
            BatchOutcome::NotApplied
        );
    }

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
}
