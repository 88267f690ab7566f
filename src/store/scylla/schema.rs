//! The schema (`schema.cql`): printed by `chorus schema print`, applied by
//! `chorus schema apply`, which also brings keyspaces made by earlier versions up to date
//! (columns added since, the `member_groups` index filled from `group_members`, bearer tokens
//! moved from `tokens` to `sessions`).

use chorus_actors::StoreError;
use chorus_actors::model::now_ms;
use chorus_actors::store::{EdgeKind, TokenSelector};
use std::future::Future;

use futures_util::TryStreamExt;
use scylla::client::session::Session;
use scylla::deserialize::row::DeserializeRow;
use scylla::statement::batch::{Batch, BatchType};
use scylla::value::{CqlValue, Row};

use super::backend;
use super::keys::{edge_kind_text, to_bigint};
use super::settings::{ScyllaSettings, connect_session};
use crate::store::json::without_copied_secret;

/// The schema, with `{keyspace}` and `{replication}` placeholders.
const SCHEMA: &str = include_str!("schema.cql");

/// Columns `schema.cql` has that tables made by earlier versions lack, as `(table, column,
/// type)`: `CREATE TABLE IF NOT EXISTS` leaves an existing table as it is, so apply adds
/// them (the owner epoch of cluster mode, in `logs`).
const ADDED_COLUMNS: [(&str, &str, &str); 1] = [("logs", "epoch", "bigint")];

/// Rows an upgrade step ([`write_each_row`]) writes at once.
const BACKFILL_CONCURRENCY: usize = 64;

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

/// Connects and applies the schema (every statement is `IF NOT EXISTS`, and every added
/// column is added only if missing, so this is safe to repeat), then waits until every node
/// agrees on it. A keyspace that had groups before `member_groups` existed gets the index
/// filled from `group_members` when the table is made (docs/scylla.md, "member_groups").
pub async fn apply_schema(settings: &ScyllaSettings) -> Result<(), StoreError> {
    settings.validate().map_err(StoreError::Backend)?;
    let session = connect_session(settings).await?;
    let ks = settings.keyspace.as_str();
    let backfill = exists(&session, ks, "group_members", None).await?
        && !exists(&session, ks, "member_groups", None).await?;
    for statement in schema_statements(ks, &settings.replication) {
        session
            .query_unpaged(statement.as_str(), ())
            .await
            .map_err(|e| backend("applying the schema", e))?;
    }
    for (table, column, kind) in ADDED_COLUMNS {
        add_column(&session, ks, table, column, kind).await?;
    }
    session
        .await_schema_agreement()
        .await
        .map_err(|e| backend("awaiting schema agreement", e))?;
    if backfill {
        let rows = backfill_member_groups(&session, ks).await?;
        tracing::info!(keyspace = %ks, rows, "member_groups filled from group_members");
    }
    if exists(&session, ks, OLD_TOKENS, None).await? {
        // A keyspace from before sealed secrets: its release records may hold copies.
        let rewritten = remove_copied_secrets(&session, ks).await?;
        if rewritten > 0 {
            tracing::info!(
                keyspace = %ks,
                rewritten,
                "plaintext secrets taken out of release records written before sealing"
            );
        }
        let moved = move_old_tokens(&session, ks, now_ms()).await?;
        if moved > 0 {
            tracing::info!(
                keyspace = %ks,
                moved,
                "bearer tokens of an earlier version moved to sessions (each lives --token-ttl-secs from now)"
            );
        }
    }
    tracing::info!(keyspace = %ks, "scylla schema applied");
    Ok(())
}

/// Whether `table` (or its `column`) exists in keyspace `ks`.
async fn exists(
    session: &Session,
    ks: &str,
    table: &str,
    column: Option<&str>,
) -> Result<bool, StoreError> {
    let what = "reading the schema";
    let answer = match column {
        None => {
            let query = "SELECT table_name FROM system_schema.tables \
                WHERE keyspace_name = ? AND table_name = ?";
            session.query_unpaged(query, (ks, table)).await
        }
        Some(column) => {
            let query = "SELECT column_name FROM system_schema.columns \
                WHERE keyspace_name = ? AND table_name = ? AND column_name = ?";
            session.query_unpaged(query, (ks, table, column)).await
        }
    };
    let rows = answer
        .map_err(|e| backend(what, e))?
        .into_rows_result()
        .map_err(|e| backend(what, e))?;
    Ok(rows.rows_num() > 0)
}

/// `ALTER TABLE ks.table ADD column kind`, unless the column is there (also when another
/// apply added it meanwhile).
async fn add_column(
    session: &Session,
    ks: &str,
    table: &str,
    column: &str,
    kind: &str,
) -> Result<(), StoreError> {
    if exists(session, ks, table, Some(column)).await? {
        return Ok(());
    }
    let alter = format!("ALTER TABLE {ks}.{table} ADD {column} {kind}");
    match session.query_unpaged(alter.as_str(), ()).await {
        Ok(_) => {
            tracing::info!(keyspace = %ks, %table, %column, "column added");
            Ok(())
        }
        Err(e) => {
            // Another apply added it meanwhile. Cassandra 5.0 answers "Column with name
            // 'epoch' already exists" (older versions: "... conflicts with an existing
            // column").
            let text = e.to_string();
            if text.contains("already exists") || text.contains("conflicts with an existing column")
            {
                return Ok(());
            }
            Err(backend(&format!("adding {table}.{column}"), e))
        }
    }
}

/// Writes the `member_groups` row of every `group_members` row (a full scan, paged), and
/// answers how many. Idempotent: a deployer may run it again (docs/scylla.md).
pub(super) async fn backfill_member_groups(session: &Session, ks: &str) -> Result<u64, StoreError> {
    let what = "filling member_groups";
    let insert = session
        .prepare(format!(
            "INSERT INTO {ks}.member_groups (account, group_id) VALUES (?, ?)"
        ))
        .await
        .map_err(|e| backend(what, e))?;
    let select = format!("SELECT group_id, account FROM {ks}.group_members");
    let insert = &insert;
    write_each_row(
        session,
        select,
        what,
        move |(group, account): (String, String)| async move {
            session
                .execute_unpaged(insert, (account, group))
                .await
                .map_err(|e| backend(what, e))
                .map(|_| 1)
        },
    )
    .await
}

/// Runs `write` on every row `select` answers (a full scan, paged), [`BACKFILL_CONCURRENCY`]
/// writes at once, and answers the sum of what the writes answer (1 for a row written, 0 for
/// one passed over): the tail of every upgrade step here.
async fn write_each_row<R, W, F>(
    session: &Session,
    select: String,
    what: &str,
    write: W,
) -> Result<u64, StoreError>
where
    R: for<'f, 'm> DeserializeRow<'f, 'm>,
    W: Fn(R) -> F,
    F: Future<Output = Result<u64, StoreError>>,
{
    session
        .query_iter(select, ())
        .await
        .map_err(|e| backend(what, e))?
        .rows_stream::<R>()
        .map_err(|e| backend(what, e))?
        .map_err(|e| backend(what, e))
        .map_ok(write)
        .try_buffer_unordered(BACKFILL_CONCURRENCY)
        .try_fold(0u64, |n, one| async move { Ok(n + one) })
        .await
}

/// Takes out of every release record (`deliveries`, and `outbox` for those not final) the
/// plaintext secret versions before sealing copied into it
/// ([`crate::store::json::without_copied_secret`]); a paged scan of both tables, rewriting
/// only the records that hold one. Answers how many.
pub(super) async fn remove_copied_secrets(session: &Session, ks: &str) -> Result<u64, StoreError> {
    let what = "taking secrets out of release records";
    let mut rewritten = 0;
    for (table, keys) in [
        ("deliveries", ["activity_id", "link_id"].as_slice()),
        ("outbox", ["shard", "activity_id", "link_id"].as_slice()),
    ] {
        let by_key = keys
            .iter()
            .map(|k| format!("{k} = ?"))
            .collect::<Vec<_>>()
            .join(" AND ");
        let update = session
            .prepare(format!("UPDATE {ks}.{table} SET record = ? WHERE {by_key}"))
            .await
            .map_err(|e| backend(what, e))?;
        let select = format!("SELECT record, {} FROM {ks}.{table}", keys.join(", "));
        let update = &update;
        // The new record, then the row's key columns as they came; a record without a copied
        // secret is left as it is.
        rewritten += write_each_row(session, select, what, move |row: Row| async move {
            let mut columns = row.columns.into_iter();
            let clean = match columns.next().flatten() {
                Some(CqlValue::Blob(record)) => without_copied_secret(&record),
                _ => None,
            };
            let Some(clean) = clean else {
                return Ok(0);
            };
            let mut values = vec![Some(CqlValue::Blob(clean))];
            values.extend(columns);
            session
                .execute_unpaged(update, values)
                .await
                .map_err(|e| backend(what, e))
                .map(|_| 1)
        })
        .await?;
    }
    Ok(rewritten)
}

/// The table bearer tokens were kept in before they had an issue time (`sessions` now).
const OLD_TOKENS: &str = "tokens";

/// Moves each row of the old `tokens` table (selector, verifier, owner) into `sessions`, as
/// issued at `now`, with the account's token edge, and deletes it from `tokens`: one logged
/// batch per token, so a crash or a second apply moves each once. The old rows have no
/// issue time, so each token lives `--token-ttl-secs` from the upgrade, and the account's
/// actor knows it (to cap its tokens and to log it out). The table itself stays (servers of
/// the earlier version may still write to it during a rolling upgrade; an apply after the
/// last of them is gone moves what they wrote, and the empty table may then be dropped:
/// docs/scylla.md). Answers how many were moved; rows no token could match are deleted.
pub(super) async fn move_old_tokens(
    session: &Session,
    ks: &str,
    now: u64,
) -> Result<u64, StoreError> {
    let what = "moving tokens to sessions";
    let prepare =
        |cql: String| async move { session.prepare(cql).await.map_err(|e| backend(what, e)) };
    let insert = prepare(format!(
        "INSERT INTO {ks}.sessions (selector, verifier, issued_ms, owner) VALUES (?, ?, ?, ?)"
    ))
    .await?;
    let edge = prepare(format!(
        "INSERT INTO {ks}.edges (account, kind, other, value) VALUES (?, ?, ?, ?)"
    ))
    .await?;
    let delete = prepare(format!("DELETE FROM {ks}.{OLD_TOKENS} WHERE selector = ?")).await?;
    let issued = to_bigint(now, "issue time")?;
    let kind = edge_kind_text(EdgeKind::Token);
    let mut batch = Batch::new(BatchType::Logged);
    batch.append_statement(insert);
    batch.append_statement(edge);
    batch.append_statement(delete.clone());
    let select = format!("SELECT selector, verifier, owner FROM {ks}.{OLD_TOKENS}");
    let (batch, delete, kind) = (&batch, &delete, &kind);
    write_each_row(
        session,
        select,
        what,
        move |(selector, verifier, owner): (Vec<u8>, Option<Vec<u8>>, Option<String>)| async move {
            let (Ok(head), Some(verifier), Some(owner)) =
                (<[u8; 16]>::try_from(selector.as_slice()), verifier, owner)
            else {
                session
                    .execute_unpaged(delete, (selector,))
                    .await
                    .map_err(|e| backend(what, e))?;
                return Ok(0);
            };
            let hex = TokenSelector(head).to_hex();
            let stamp = issued.to_be_bytes().to_vec();
            session
                .batch(
                    batch,
                    (
                        (selector.clone(), verifier, issued, owner.clone()),
                        (owner, kind.as_str(), hex, stamp),
                        (selector,),
                    ),
                )
                .await
                .map_err(|e| backend(what, e))?;
            Ok(1)
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(statements.len(), 1 + 26);
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
}
