//! Every CQL statement the store runs, prepared once per session in
//! [`Statements::prepare`]. Texts are constants: every id, key and bound is a bind marker,
//! never formatted into the text, so the server parses each statement once and routes each
//! execution to its partition's replicas (token-aware). The only thing added at prepare time
//! is the keyspace in front of the table name ([`qualify`]): the session never runs
//! `USE <keyspace>`, which Cassandra 5.0 warns about for prepared statements.

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency, SerialConsistency};

use chorus_actors::StoreError;

/// Rows per page of every read. Large results (members, edges, the outbox, long event
/// pages) arrive in pages of this size instead of one unbounded response.
pub const PAGE_SIZE: i32 = 1000;

/// How a statement is executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A SELECT: idempotent, paged.
    Read,
    /// An upsert or delete of fixed values: idempotent, so the driver may retry it (alone or
    /// inside a logged batch) after a timeout.
    Write,
    /// A lightweight transaction (Paxos): never retried blindly by the driver, serial
    /// consistency for its Paxos round.
    Lwt,
}

impl Kind {
    /// The level a statement of this kind runs at: reads may need a different one than
    /// writes (Scylla refuses EACH_QUORUM for reads).
    pub fn consistency(self, write: Consistency, read: Consistency) -> Consistency {
        match self {
            Kind::Read => read,
            Kind::Write | Kind::Lwt => write,
        }
    }
}

macro_rules! statements {
    ($( $(#[$doc:meta])* $name:ident: $kind:ident = $text:expr; )*) => {
        /// The prepared statements of one session.
        pub struct Statements {
            $( $(#[$doc])* pub $name: PreparedStatement, )*
        }

        /// Every statement as `(name, text, kind)`, for tests and diagnostics.
        pub const ALL: &[(&str, &str, Kind)] = &[
            $( (stringify!($name), $text, Kind::$kind), )*
        ];

        impl Statements {
            /// Prepares every statement on `session`, its tables in `keyspace`: writes and
            /// claims at `write`, reads at `read`.
            pub async fn prepare(
                session: &Session,
                keyspace: &str,
                write: Consistency,
                read: Consistency,
                serial: SerialConsistency,
            ) -> Result<Self, StoreError> {
                Ok(Self {
                    $( $name: prepare(
                        session,
                        stringify!($name),
                        &qualify($text, keyspace),
                        Kind::$kind,
                        Kind::$kind.consistency(write, read),
                        serial,
                    ).await?, )*
                })
            }
        }
    };
}

statements! {
    put_account: Write = "INSERT INTO accounts (id, record) VALUES (?, ?)";
    get_account: Read = "SELECT record FROM accounts WHERE id = ?";

    put_edge: Write = "INSERT INTO edges (account, kind, other, value) VALUES (?, ?, ?, ?)";
    delete_edge: Write = "DELETE FROM edges WHERE account = ? AND kind = ? AND other = ?";
    list_edges: Read = "SELECT kind, other, value FROM edges WHERE account = ?";

    /// Answers `[applied]` and, when not applied, the current owner.
    take_claim: Lwt = "INSERT INTO claims (claim, owner) VALUES (?, ?) IF NOT EXISTS";
    /// Deletes the claim only if `owner` still holds it.
    release_claim: Lwt = "DELETE FROM claims WHERE claim = ? IF owner = ?";
    get_claim: Read = "SELECT owner FROM claims WHERE claim = ?";

    put_token: Write =
        "INSERT INTO sessions (selector, verifier, issued_ms, owner) VALUES (?, ?, ?, ?)";
    delete_token: Write = "DELETE FROM sessions WHERE selector = ?";
    get_token: Read = "SELECT verifier, issued_ms, owner FROM sessions WHERE selector = ?";

    /// `USING TTL ?`: the event log's retention in seconds (0: kept for ever).
    put_event: Write =
        "INSERT INTO events (account, bucket, seq, frame) VALUES (?, ?, ?, ?) USING TTL ?";
    read_events: Read =
        "SELECT seq, frame FROM events WHERE account = ? AND bucket = ? AND seq > ? LIMIT ?";
    put_group_event: Write =
        "INSERT INTO group_events (group_id, bucket, seq, frame) VALUES (?, ?, ?, ?) USING TTL ?";
    read_group_events: Read =
        "SELECT seq, frame FROM group_events WHERE group_id = ? AND bucket = ? AND seq > ? LIMIT ?";
    /// The seq fence (`fence.rs`): a log's head moves only by these lightweight transactions,
    /// never by a plain write, so a batch that lands late can never move it.
    /// The first reservation of a log.
    open_log: Lwt = "INSERT INTO logs (log, last_seq) VALUES (?, ?) IF NOT EXISTS";
    /// Every later one: `SET last_seq = new ... IF last_seq = old`.
    advance_log: Lwt = "UPDATE logs SET last_seq = ? WHERE log = ? IF last_seq = ?";
    /// Undoes a first reservation whose batch was surely not applied.
    drop_log: Lwt = "DELETE FROM logs WHERE log = ? IF last_seq = ?";
    get_last_seq: Read = "SELECT last_seq FROM logs WHERE log = ?";
    /// The same three moves for a writer that names its epoch (cluster mode, `fence.rs`):
    /// they apply only while the epoch is still the log's. The owner's claim made the row,
    /// so the first reservation is an update of it, and its undo keeps the row (and epoch).
    open_log_fenced: Lwt =
        "UPDATE logs SET last_seq = ? WHERE log = ? IF last_seq = null AND epoch = ?";
    advance_log_fenced: Lwt =
        "UPDATE logs SET last_seq = ? WHERE log = ? IF last_seq = ? AND epoch = ?";
    drop_log_fenced: Lwt =
        "UPDATE logs SET last_seq = null WHERE log = ? IF last_seq = ? AND epoch = ?";
    /// Owner epochs (`fence.rs`): an actor's epoch is in its log's row (`a:`, `g:`, `c:`).
    get_epoch: Read = "SELECT epoch FROM logs WHERE log = ?";
    /// A claim (`SET epoch = old + 1 ... IF epoch = old`), and the check a write without
    /// events makes before its batch (`SET epoch = mine ... IF epoch = mine`).
    move_epoch: Lwt = "UPDATE logs SET epoch = ? WHERE log = ? IF epoch = ?";
    /// The first claim of an actor (no epoch yet; the row may not exist).
    first_epoch: Lwt = "UPDATE logs SET epoch = ? WHERE log = ? IF epoch = null";

    put_group: Write = "INSERT INTO groups (group_id, record) VALUES (?, ?)";
    get_group: Read = "SELECT record FROM groups WHERE group_id = ?";
    put_group_member: Write = "INSERT INTO group_members (group_id, account) VALUES (?, ?)";
    delete_group_member: Write = "DELETE FROM group_members WHERE group_id = ? AND account = ?";
    list_group_members: Read = "SELECT account FROM group_members WHERE group_id = ?";
    /// The account -> groups index, written in the same batch as `group_members`.
    put_member_group: Write = "INSERT INTO member_groups (account, group_id) VALUES (?, ?)";
    delete_member_group: Write = "DELETE FROM member_groups WHERE account = ? AND group_id = ?";
    list_member_groups: Read = "SELECT group_id FROM member_groups WHERE account = ?";
    put_request: Write =
        "INSERT INTO binding_requests (group_id, request_id, record) VALUES (?, ?, ?)";
    delete_request: Write =
        "DELETE FROM binding_requests WHERE group_id = ? AND request_id = ?";
    list_requests: Read = "SELECT record FROM binding_requests WHERE group_id = ?";
    put_binding_by_group: Write =
        "INSERT INTO bindings_by_group (group_id, community_id, record) VALUES (?, ?, ?)";
    delete_binding_by_group: Write =
        "DELETE FROM bindings_by_group WHERE group_id = ? AND community_id = ?";
    list_bindings_by_group: Read = "SELECT record FROM bindings_by_group WHERE group_id = ?";
    put_binding_by_community: Write =
        "INSERT INTO bindings_by_community (community_id, group_id, record) VALUES (?, ?, ?)";
    delete_binding_by_community: Write =
        "DELETE FROM bindings_by_community WHERE community_id = ? AND group_id = ?";
    list_bindings_by_community: Read =
        "SELECT record FROM bindings_by_community WHERE community_id = ?";

    put_community: Write = "INSERT INTO communities (community_id, record) VALUES (?, ?)";
    get_community: Read = "SELECT record FROM communities WHERE community_id = ?";
    put_community_member: Write =
        "INSERT INTO community_members (community_id, account) VALUES (?, ?)";
    list_community_members: Read =
        "SELECT account FROM community_members WHERE community_id = ?";
    put_server_key: Write =
        "INSERT INTO server_keys (selector, verifier, owner) VALUES (?, ?, ?)";
    get_server_key: Read = "SELECT verifier, owner FROM server_keys WHERE selector = ?";

    put_message: Write = "INSERT INTO messages (feed, bucket, created_ms, item_id, record) \
        VALUES (?, ?, ?, ?, ?)";
    /// Newest first within one day partition.
    page_messages: Read =
        "SELECT created_ms, record FROM messages WHERE feed = ? AND bucket = ? LIMIT ?";
    /// The same, strictly older than the cursor `(created_ms, item_id)`.
    page_messages_before: Read = "SELECT created_ms, record FROM messages \
        WHERE feed = ? AND bucket = ? AND (created_ms, item_id) < (?, ?) LIMIT ?";
    put_dynamic: Write = "INSERT INTO dynamics (feed, bucket, created_ms, item_id, record) \
        VALUES (?, ?, ?, ?, ?)";
    page_dynamics: Read =
        "SELECT created_ms, record FROM dynamics WHERE feed = ? AND bucket = ? LIMIT ?";
    page_dynamics_before: Read = "SELECT created_ms, record FROM dynamics \
        WHERE feed = ? AND bucket = ? AND (created_ms, item_id) < (?, ?) LIMIT ?";
    put_feed_activity: Write = "INSERT INTO activity_feed \
        (feed, bucket, created_ms, item_id, record) VALUES (?, ?, ?, ?, ?)";
    page_activities: Read =
        "SELECT created_ms, record FROM activity_feed WHERE feed = ? AND bucket = ? LIMIT ?";
    page_activities_before: Read = "SELECT created_ms, record FROM activity_feed \
        WHERE feed = ? AND bucket = ? AND (created_ms, item_id) < (?, ?) LIMIT ?";
    put_feed_bucket: Write = "INSERT INTO feed_buckets (feed, bucket) VALUES (?, ?)";
    /// Days of a feed between two buckets (inclusive), newest first.
    list_feed_buckets: Read =
        "SELECT bucket FROM feed_buckets WHERE feed = ? AND bucket <= ? AND bucket >= ?";

    put_activity: Write = "INSERT INTO activities (activity_id, record) VALUES (?, ?)";
    get_activity: Read = "SELECT record FROM activities WHERE activity_id = ?";
    put_activity_key: Write = "INSERT INTO activity_keys (account, idempotency_key, activity_id) \
        VALUES (?, ?, ?)";
    get_activity_key: Read = "SELECT activity_id FROM activity_keys \
        WHERE account = ? AND idempotency_key = ?";

    put_delivery: Write =
        "INSERT INTO deliveries (activity_id, link_id, record) VALUES (?, ?, ?)";
    list_releases: Read = "SELECT record FROM deliveries WHERE activity_id = ?";
    put_outbox: Write =
        "INSERT INTO outbox (shard, activity_id, link_id, record) VALUES (?, ?, ?, ?)";
    delete_outbox: Write =
        "DELETE FROM outbox WHERE shard = ? AND activity_id = ? AND link_id = ?";
    list_outbox: Read = "SELECT record FROM outbox WHERE shard = ?";

    put_step: Write = "INSERT INTO steps (shard, step_id, record) VALUES (?, ?, ?)";
    delete_step: Write = "DELETE FROM steps WHERE shard = ? AND step_id = ?";
    list_steps: Read = "SELECT record FROM steps WHERE shard = ?";
}

/// `text` with its table qualified by `keyspace` (validated: `[a-z][a-z0-9_]*`): the table
/// is the word after the first `INTO`, `FROM` or `UPDATE`.
pub fn qualify(text: &str, keyspace: &str) -> String {
    let mut out = String::with_capacity(text.len() + keyspace.len() + 1);
    let mut done = false;
    let mut after_keyword = false;
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if after_keyword && !done && !word.is_empty() {
            out.push_str(keyspace);
            out.push('.');
            done = true;
        }
        after_keyword = matches!(word, "INTO" | "FROM" | "UPDATE");
        out.push_str(word);
    }
    out
}

async fn prepare(
    session: &Session,
    name: &str,
    text: &str,
    kind: Kind,
    consistency: Consistency,
    serial: SerialConsistency,
) -> Result<PreparedStatement, StoreError> {
    let mut ps = session.prepare(text).await.map_err(|e| {
        StoreError::Backend(format!(
            "scylla: preparing {name} failed: {e} (is the schema applied? run `chorus schema apply`)"
        ))
    })?;
    ps.set_consistency(consistency);
    ps.set_page_size(PAGE_SIZE);
    match kind {
        Kind::Read | Kind::Write => ps.set_is_idempotent(true),
        Kind::Lwt => {
            ps.set_is_idempotent(false);
            ps.set_serial_consistency(Some(serial));
        }
    }
    Ok(ps)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Partition key columns per table, as in `schema.cql`.
    fn partition_key(table: &str) -> &'static [&'static str] {
        match table {
            "accounts" => &["id"],
            "edges" | "member_groups" => &["account"],
            "claims" => &["claim"],
            "sessions" | "server_keys" => &["selector"],
            "events" => &["account", "bucket"],
            "group_events" => &["group_id", "bucket"],
            "logs" => &["log"],
            "groups" | "group_members" | "binding_requests" | "bindings_by_group" => &["group_id"],
            "communities" | "community_members" | "bindings_by_community" => &["community_id"],
            "messages" | "dynamics" | "activity_feed" => &["feed", "bucket"],
            "feed_buckets" => &["feed"],
            "activities" | "deliveries" => &["activity_id"],
            "activity_keys" => &["account", "idempotency_key"],
            "outbox" | "steps" => &["shard"],
            other => panic!("statement on unknown table {other}"),
        }
    }

    fn table_of(text: &str) -> &str {
        let words: Vec<&str> = text.split_whitespace().collect();
        let at = words
            .iter()
            .position(|w| *w == "INTO" || *w == "FROM" || *w == "UPDATE")
            .expect("statement names its table");
        words[at + 1]
    }

    #[test]
    fn every_statement_binds_its_partition_key() {
        for (name, text, _) in ALL {
            assert!(
                !text.contains('\'') && !text.contains('"'),
                "{name}: no literals in statement text"
            );
            let table = table_of(text);
            let schema = super::super::schema("ks", "{'class': 'SimpleStrategy'}");
            assert!(
                schema.contains(&format!("CREATE TABLE IF NOT EXISTS ks.{table} (")),
                "{name}: table {table} is in the schema"
            );
            if let Some(values) = text.split("VALUES").nth(1) {
                let open = values.find('(').expect("VALUES (");
                let close = values.find(')').expect("VALUES (...)");
                let inner = &values[open + 1..close];
                assert!(
                    inner.split(',').all(|v| v.trim() == "?"),
                    "{name}: every inserted value is a bind marker"
                );
                for col in partition_key(table) {
                    assert!(text.contains(col), "{name}: inserts {col}");
                }
            } else {
                for col in partition_key(table) {
                    assert!(
                        text.contains(&format!("WHERE {col} = ?"))
                            || text.contains(&format!("AND {col} = ?")),
                        "{name}: partition key column {col} is bound with ?"
                    );
                }
            }
        }
    }

    #[test]
    fn only_conditional_statements_are_lwt() {
        for (name, text, kind) in ALL {
            let conditional = text.contains(" IF ");
            assert_eq!(
                conditional,
                *kind == Kind::Lwt,
                "{name}: LWT kind matches its text"
            );
            if text.starts_with("SELECT") {
                assert_eq!(*kind, Kind::Read, "{name}");
            }
        }
    }

    #[test]
    fn every_statement_names_its_keyspace_once_qualified() {
        for (name, text, _) in ALL {
            let qualified = qualify(text, "ks");
            let table = table_of(text);
            assert_eq!(table_of(&qualified), format!("ks.{table}"), "{name}");
            assert_eq!(qualified.matches("ks.").count(), 1, "{name}: {qualified}");
            assert_eq!(
                qualified.replacen("ks.", "", 1),
                *text,
                "{name}: only the table"
            );
        }
        assert_eq!(
            qualify("UPDATE logs SET last_seq = ? WHERE log = ?", "chorus"),
            "UPDATE chorus.logs SET last_seq = ? WHERE log = ?"
        );
    }

    #[test]
    fn statement_names_are_unique() {
        let mut names: Vec<_> = ALL.iter().map(|(n, _, _)| *n).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }
}
