//! What a stopped server left at rest, read straight from its store (not through the API):
//! for the tests that no secret is stored in plaintext, and that an unlinked link's secret
//! is gone.
//!
//! - fjall: every key and value of every keyspace of the data directory (opened once the
//!   server is stopped), and the raw bytes of every file under it (journals and segments
//!   too, whatever the engine has not compacted away).
//! - CQL: the rows a test names (an account's edges, an activity's releases, the outbox), by
//!   a statement on the server's own keyspace.

use std::path::Path;

use super::server::Server;
use super::store::on_cql_store;

/// One stored item: where it is (keyspace or table, and key) and its bytes.
#[derive(Debug, Clone)]
pub struct Stored {
    pub place: String,
    pub bytes: Vec<u8>,
}

/// Every item of every keyspace of `s`'s fjall store (key and value as one item each).
/// The server must be stopped.
pub fn fjall_items(s: &Server) -> Vec<Stored> {
    assert!(!s.running(), "stop the server before reading its store");
    let db = fjall::Database::builder(s.data_dir.path())
        .open()
        .expect("open the data directory");
    let mut out = Vec::new();
    for name in db.list_keyspace_names() {
        let name: &str = &name;
        let ks = db
            .keyspace(name, fjall::KeyspaceCreateOptions::default)
            .expect("open a keyspace");
        for item in ks.iter() {
            let (key, value) = item.into_inner().expect("read an item");
            let place = format!("{name}/{}", String::from_utf8_lossy(&key));
            out.push(Stored {
                place: place.clone(),
                bytes: key.to_vec(),
            });
            out.push(Stored {
                place,
                bytes: value.to_vec(),
            });
        }
    }
    out
}

/// The bytes of every file under `dir`, by path.
pub fn raw_files(dir: &Path) -> Vec<Stored> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).expect("read a directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                todo.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.push(Stored {
                    place: path.display().to_string(),
                    bytes,
                });
            }
        }
    }
    out
}

/// The first column (a blob or text) of every row `cql` selects from `s`'s keyspace, written
/// `{ks}` in `cql`, with `values` bound in order.
pub fn cql_column(s: &Server, cql: &str, values: Vec<String>) -> Vec<Stored> {
    assert!(on_cql_store(), "a CQL read on the embedded store");
    let ks = s.store_lease().keyspace().expect("a leased keyspace");
    let cql = cql.replace("{ks}", ks);
    s.store_lease()
        .select_first_column(&cql, values)
        .into_iter()
        .map(|bytes| Stored {
            place: cql.clone(),
            bytes,
        })
        .collect()
}

/// Items among `items` whose bytes hold `needle`.
pub fn holding<'a>(items: &'a [Stored], needle: &str) -> Vec<&'a Stored> {
    let needle = needle.as_bytes();
    items
        .iter()
        .filter(|i| i.bytes.windows(needle.len()).any(|w| w == needle))
        .collect()
}
