//! The schema (`schema.cql`): printed by `chorus schema print`, applied by
//! `chorus schema apply`.

use chorus_actors::StoreError;

use super::backend;
use super::settings::{ScyllaSettings, connect_session};

/// The schema, with `{keyspace}` and `{replication}` placeholders.
const SCHEMA: &str = include_str!("schema.cql");

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
        assert_eq!(statements.len(), 1 + 24);
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
