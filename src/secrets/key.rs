//! Where the server key that seals link secrets comes from, in this order:
//!
//! 1. `--secret-key-file PATH`: the file holds the key as 64 hex characters (surrounding
//!    whitespace is ignored). It must exist; the server never writes it. For a cluster, or a
//!    key kept apart from the data it protects (a secrets manager mounting a file).
//! 2. The embedded store: `secret.key` in the data directory, made on first start (created
//!    exclusively, mode 0600) and read on every later one. A copy of the data directory
//!    carries its key: back them up apart if that matters.
//! 3. The CQL store: one row of the keyspace's `server_config` table, inserted by the first
//!    node to start with a lightweight transaction (insert if not exists) and read by every
//!    other: all nodes of a cluster seal and open with the same key (docs/scylla.md).
//!
//! Losing the key loses the secrets: links made under it fail their releases ("the link's
//! secret cannot be read") until they are linked again.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};

use super::KEY_LEN;
use crate::error::{Error, Result};
use crate::store::ScyllaStore;

/// The key file the server makes in the embedded store's data directory.
pub const DATA_DIR_KEY_FILE: &str = "secret.key";

/// Where the key is kept when no `--secret-key-file` names one.
pub enum Keeper<'a> {
    /// The embedded store's data directory.
    DataDir(&'a Path),
    /// The CQL store, in its keyspace.
    Cql(&'a ScyllaStore, &'a str),
}

/// The server key (see the module docs for the order), and where it came from, for the
/// start-up log.
pub async fn server_key(
    file: Option<&Path>,
    keeper: Keeper<'_>,
) -> Result<([u8; KEY_LEN], String)> {
    if let Some(path) = file {
        return Ok((read_file(path)?, format!("from {}", path.display())));
    }
    match keeper {
        Keeper::DataDir(dir) => Ok(match in_data_dir(dir)? {
            (key, KeyOrigin::Read(path)) => (key, format!("from {}", path.display())),
            (key, KeyOrigin::Made(path)) => (key, format!("made at {}", path.display())),
        }),
        Keeper::Cql(store, keyspace) => {
            let stored = store
                .shared_secret_key(keyspace, &generate()?)
                .await
                .map_err(|e| Error::Internal(format!("the secret key in the keyspace: {e}")))?;
            let key = stored.try_into().map_err(|_| {
                Error::Config(format!(
                    "{keyspace}.server_config holds a secret_key that is not {KEY_LEN} bytes"
                ))
            })?;
            Ok((key, format!("shared in {keyspace}.server_config")))
        }
    }
}

/// A fresh random key.
pub fn generate() -> Result<[u8; KEY_LEN]> {
    let mut key = [0u8; KEY_LEN];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| Error::Internal("the system random source failed".into()))?;
    Ok(key)
}

/// The key as a key file holds it (hex, with a newline).
pub fn encode(key: &[u8; KEY_LEN]) -> String {
    format!("{}\n", hex::encode(key))
}

/// A key from its text form (64 hex characters, surrounding whitespace ignored).
pub fn decode(text: &str) -> Option<[u8; KEY_LEN]> {
    let bytes = hex::decode(text.trim()).ok()?;
    bytes.try_into().ok()
}

/// Reads the key file at `path` (`--secret-key-file`): it must exist and hold a key.
pub fn read_file(path: &Path) -> Result<[u8; KEY_LEN]> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::Config(format!(
            "cannot read the secret key file {}: {e}",
            path.display()
        ))
    })?;
    warn_if_readable_by_others(path);
    decode(&text).ok_or_else(|| {
        Error::Config(format!(
            "the secret key file {} must hold {} hex characters",
            path.display(),
            KEY_LEN * 2
        ))
    })
}

/// The data directory's key: read if `dir` has one, else made (mode 0600). Two servers
/// starting on one directory at once cannot both make one: the file is created exclusively,
/// and the loser reads the winner's.
pub fn in_data_dir(dir: &Path) -> Result<([u8; KEY_LEN], KeyOrigin)> {
    let path = dir.join(DATA_DIR_KEY_FILE);
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::Internal(format!("creating {}: {e}", dir.display())))?;
    let key = generate()?;
    let made = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path);
    match made {
        Ok(mut file) => {
            file.write_all(encode(&key).as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| Error::Internal(format!("writing {}: {e}", path.display())))?;
            Ok((key, KeyOrigin::Made(path)))
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            Ok((read_file(&path)?, KeyOrigin::Read(path)))
        }
        Err(e) => Err(Error::Internal(format!("creating {}: {e}", path.display()))),
    }
}

/// Whether a key was found or made, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    Read(PathBuf),
    Made(PathBuf),
}

/// A key file others may read is worth a warning, not a refusal (a container may mount it
/// so on purpose).
fn warn_if_readable_by_others(path: &Path) {
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "the secret key file is readable by others than its owner (chmod 600 it)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips() {
        let key = generate().unwrap();
        assert_ne!(key, generate().unwrap());
        assert_eq!(decode(&encode(&key)), Some(key));
        assert_eq!(decode(&format!("  {}  ", hex::encode(key))), Some(key));
        for bad in ["", "zz", &hex::encode([1u8; 31]), &hex::encode([1u8; 33])] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn data_dir_key_is_made_once_private_then_read() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("data");
        let (made, origin) = in_data_dir(&sub).unwrap();
        let path = sub.join(DATA_DIR_KEY_FILE);
        assert_eq!(origin, KeyOrigin::Made(path.clone()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, origin) = in_data_dir(&sub).unwrap();
        assert_eq!((again, origin), (made, KeyOrigin::Read(path.clone())));
        assert_eq!(read_file(&path).unwrap(), made);
    }

    #[test]
    fn bad_key_files_are_config_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = read_file(&dir.path().join("nope")).unwrap_err();
        assert!(matches!(missing, Error::Config(_)), "{missing:?}");
        let short = dir.path().join("short");
        std::fs::write(&short, "abcd").unwrap();
        let err = read_file(&short).unwrap_err();
        assert!(err.to_string().contains("64 hex characters"), "{err}");
        // A data directory whose key file is damaged does not get a new key silently.
        std::fs::write(dir.path().join(DATA_DIR_KEY_FILE), "garbage").unwrap();
        assert!(matches!(in_data_dir(dir.path()), Err(Error::Config(_))));
    }
}
