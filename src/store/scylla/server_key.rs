//! The server key that seals link secrets, kept in the keyspace so that every node of a
//! cluster has the same one (`crate::secrets::key`). The first node to start inserts the key
//! it drew with a lightweight transaction (insert if not exists); every node, that one
//! included, then reads the row back at serial consistency, so all of them use the one key
//! that won, even when two started at once.

use chorus_actors::StoreError;
use scylla::statement::{Consistency, SerialConsistency};

use super::{ScyllaStore, backend, corrupt, serial_for};

/// The row of `server_config` that holds the key.
const SECRET_KEY_ROW: &str = "secret_key";

impl ScyllaStore {
    /// The keyspace's secret key: `fresh` if no node stored one before (it is stored now),
    /// else the one stored. `keyspace` is the store's.
    pub async fn shared_secret_key(
        &self,
        keyspace: &str,
        fresh: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let what = "storing the secret key (is the schema applied? run `chorus schema apply`)";
        let serial = serial_for(self.consistency);
        let mut insert = self
            .session
            .prepare(format!(
                "INSERT INTO {keyspace}.server_config (name, value) VALUES (?, ?) IF NOT EXISTS"
            ))
            .await
            .map_err(|e| backend(what, e))?;
        insert.set_consistency(self.consistency);
        insert.set_serial_consistency(Some(serial));
        self.session
            .execute_unpaged(&insert, (SECRET_KEY_ROW, fresh))
            .await
            .map_err(|e| backend(what, e))?;
        let mut select = self
            .session
            .prepare(format!(
                "SELECT value FROM {keyspace}.server_config WHERE name = ?"
            ))
            .await
            .map_err(|e| backend("reading the secret key", e))?;
        // A serial read sees the insert that won, whichever node made it.
        select.set_consistency(match serial {
            SerialConsistency::LocalSerial => Consistency::LocalSerial,
            SerialConsistency::Serial => Consistency::Serial,
        });
        let rows = self
            .session
            .execute_unpaged(&select, (SECRET_KEY_ROW,))
            .await
            .map_err(|e| backend("reading the secret key", e))?
            .into_rows_result()
            .map_err(|e| backend("reading the secret key", e))?;
        let (value,): (Vec<u8>,) = rows
            .single_row()
            .map_err(|e| corrupt("server_config secret_key", e))?;
        Ok(value)
    }
}
