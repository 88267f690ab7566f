//! Bringing a database made by an earlier version up to date, once, when it is opened: the
//! indexes added since are filled, what moved is moved, and plaintext secrets copied into
//! release records are taken out. Each step finds nothing to do
//! on a database this version made.

use chorus_actors::StoreError;
use chorus_actors::model::now_ms;
use chorus_actors::store::{EdgeKind, TokenGrant};
use fjall::{Database, KeyspaceCreateOptions, PersistMode};

use super::backend;
use super::keys::{Keyspaces, edge_key, token_entry};
use crate::store::json::without_copied_secret;

/// The keyspace bearer tokens were kept in before they had an issue time (`sessions` now).
const OLD_TOKENS: &str = "tokens";

/// Every step, in order. A database from before sealed secrets still has the old `tokens`
/// keyspace; its release records are cleaned first, so that deleting that keyspace, last,
/// marks the step done (a crash before it repeats the step, which is idempotent).
pub(super) fn bring_up_to_date(db: &Database, ks: &Keyspaces) -> Result<(), StoreError> {
    fill_member_groups(db, ks)?;
    if db.keyspace_exists(OLD_TOKENS) {
        remove_copied_secrets(db, ks)?;
    }
    move_old_tokens(db, ks, now_ms())
}

/// Takes out of every release record (`deliveries`, and `outbox` for those not final) the
/// plaintext secret versions before sealing copied into it
/// ([`crate::store::json::without_copied_secret`]): the links are sealed as their accounts
/// start (`LinkSealer`), and releases read the secret from there.
fn remove_copied_secrets(db: &Database, ks: &Keyspaces) -> Result<(), StoreError> {
    // Batches of a bounded size: the records may be many.
    const PER_BATCH: usize = 4096;
    let mut batch = db.batch().durability(Some(PersistMode::SyncAll));
    let (mut rewritten, mut in_batch) = (0usize, 0usize);
    for keyspace in [&ks.deliveries, &ks.outbox] {
        for item in keyspace.iter() {
            let (key, value) = item.into_inner().map_err(backend)?;
            if let Some(clean) = without_copied_secret(&value) {
                batch.insert(keyspace, key, clean);
                rewritten += 1;
                in_batch += 1;
            }
            if in_batch == PER_BATCH {
                batch.commit().map_err(backend)?;
                batch = db.batch().durability(Some(PersistMode::SyncAll));
                in_batch = 0;
            }
        }
    }
    batch.commit().map_err(backend)?;
    if rewritten > 0 {
        tracing::info!(
            rewritten,
            "plaintext secrets taken out of release records written before sealing"
        );
    }
    Ok(())
}

/// Fills `member_groups` (the account -> groups index) from `group_members` in a database
/// made before the index existed: it is empty there while members are not. Every write since
/// keeps both in one batch, so an empty index with members happens only then.
fn fill_member_groups(db: &Database, ks: &Keyspaces) -> Result<(), StoreError> {
    if !ks.member_groups.is_empty().map_err(backend)?
        || ks.group_members.is_empty().map_err(backend)?
    {
        return Ok(());
    }
    let mut batch = db.batch().durability(Some(PersistMode::SyncAll));
    let mut rows = 0usize;
    for item in ks.group_members.iter() {
        let key = item.key().map_err(backend)?;
        let mut parts = key.splitn(2, |b| *b == 0);
        let (Some(group), Some(account)) = (parts.next(), parts.next()) else {
            continue;
        };
        let mut index = account.to_vec();
        index.push(0);
        index.extend_from_slice(group);
        batch.insert(&ks.member_groups, index, b"".as_slice());
        rows += 1;
    }
    batch.commit().map_err(backend)?;
    tracing::info!(rows, "member_groups filled from group_members");
    Ok(())
}

/// Moves the tokens of the old `tokens` keyspace (first half of the token's SHA-256 ->
/// second half ++ account id) into `sessions`, each with its account's token edge, as if
/// issued at `now`: the old entries have no issue time, so each lives `--token-ttl-secs`
/// from the upgrade, and the account's actor knows it (to cap its tokens and to log it out).
/// Then the old keyspace is deleted. One batch: a crash before it commits leaves the old
/// keyspace whole, and the next start moves it again.
fn move_old_tokens(db: &Database, ks: &Keyspaces, now: u64) -> Result<(), StoreError> {
    if !db.keyspace_exists(OLD_TOKENS) {
        return Ok(());
    }
    let old = db
        .keyspace(OLD_TOKENS, KeyspaceCreateOptions::default)
        .map_err(backend)?;
    let mut batch = db.batch().durability(Some(PersistMode::SyncAll));
    let (mut moved, mut skipped) = (0usize, 0usize);
    for item in old.iter() {
        let (selector, value) = item.into_inner().map_err(backend)?;
        // 16 bytes of selector, 16 of verifier, then a non-empty account id; anything
        // else could never have matched a token, and is dropped with the keyspace.
        if selector.len() != 16 || value.len() <= 16 {
            skipped += 1;
            continue;
        }
        let (verifier, owner) = value.split_at(16);
        let Ok(owner) = std::str::from_utf8(owner) else {
            skipped += 1;
            continue;
        };
        let mut hash = [0u8; 32];
        hash[..16].copy_from_slice(&selector);
        hash[16..].copy_from_slice(verifier);
        let grant = TokenGrant {
            hash,
            issued_ms: now,
        };
        let (key, entry) = token_entry(&grant, owner);
        batch.insert(&ks.sessions, key, entry);
        batch.insert(
            &ks.edges,
            edge_key(owner, EdgeKind::Token, &grant.selector().to_hex()),
            now.to_be_bytes().as_slice(),
        );
        moved += 1;
    }
    batch.commit().map_err(backend)?;
    db.delete_keyspace(old).map_err(backend)?;
    tracing::info!(
        moved,
        skipped,
        "bearer tokens of an earlier version moved to sessions (each lives --token-ttl-secs from now)"
    );
    Ok(())
}
