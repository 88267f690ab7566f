use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chorus_actors::StoreError;
use chorus_actors::model::{AccountRecord, Claim, Profile};
use chorus_actors::push::event::{EventType, encode_event};
use chorus_actors::store::conformance::Fixture;
use chorus_actors::store::{GroupStore, GroupWrite, SubscriberStore, SubscriberWrite};

use super::FjallStore;
use super::encode::EncodedWrite;
use super::keys::{IDS, Keyspaces};

/// The shared conformance suite, each check on a store in a fresh directory.
struct FjallFixture {
    dir: tempfile::TempDir,
}

#[async_trait]
impl Fixture for FjallFixture {
    type Store = FjallStore;

    async fn open(&self) -> Arc<FjallStore> {
        Arc::new(FjallStore::open(self.dir.path()).expect("open fjall store"))
    }
}

async fn fjall() -> Option<FjallFixture> {
    let dir = tempfile::tempdir().expect("tempdir");
    Some(FjallFixture { dir })
}

chorus_actors::conformance_tests!(conformance, fjall());

/// The write that creates the account `id`.
fn new_account(id: &str) -> SubscriberWrite {
    let mut write = SubscriberWrite::new(id);
    write.record = Some(AccountRecord {
        account_id: id.into(),
        password_hash: "$argon2id$test".into(),
        profile: Profile::new(),
        profile_version: 1,
        created_ms: 1,
        proofs: Default::default(),
    });
    write
}

/// No record type of today can fail to encode, so the failure is brought in the way one
/// would arrive: a value whose serialization fails (JSON object keys must be strings), put
/// through the same encoding step as every record of a write.
#[tokio::test]
async fn a_record_that_fails_to_encode_fails_its_write_and_stores_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FjallStore::open(dir.path()).expect("open");
    let mut write = new_account("a1");
    write.claims.push(Claim::email("a1@example.com"));
    write.events.push(encode_event(
        EventType::FRIEND_ADDED,
        1,
        &serde_json::json!({}),
    ));

    let unencodable: BTreeMap<(u8, u8), u8> = [((1, 2), 3)].into();
    let result = async {
        let mut encoded = EncodedWrite::subscriber(&IDS, &write)?;
        encoded.put_json(&IDS.activities, b"odd".to_vec(), &unencodable)?;
        store.submit(encoded).await
    }
    .await;
    match result {
        Err(StoreError::Backend(msg)) => assert!(msg.contains("failed to encode"), "{msg}"),
        other => panic!("an encode failure must fail the write, got {other:?}"),
    }
    assert!(store.load_account("a1").await.expect("load").is_none());
    assert!(
        store
            .read_events("a1", 0, 10)
            .await
            .expect("read")
            .is_empty()
    );
    assert!(
        store
            .find_claim(&Claim::email("a1@example.com"))
            .await
            .expect("find")
            .is_none(),
        "a failed write took its claim"
    );

    // The writer is unaffected: the same write without the odd record lands whole.
    store.commit(write).await.expect("commit");
    assert!(store.load_account("a1").await.expect("load").is_some());
    assert_eq!(store.read_events("a1", 0, 10).await.expect("read").len(), 1);
    store.close().await.expect("close");
}

/// A database made before the account -> groups index: opening it fills the index from the
/// group members, once.
#[tokio::test]
async fn opening_an_older_database_fills_the_groups_of_each_member() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FjallStore::open(dir.path()).expect("open");
    for (gid, members) in [("g1", ["a1", "a2"]), ("g2", ["a1", "a3"])] {
        let mut w = GroupWrite::new(gid);
        w.members_add = members.map(String::from).to_vec();
        store.commit_group(w).await.expect("group");
    }
    store.close().await.expect("close");
    drop(store);
    {
        // What an older version left: members, no index.
        let db = fjall::Database::builder(dir.path()).open().expect("db");
        let ks = Keyspaces::open(&db).expect("keyspaces");
        let keys: Vec<_> = ks
            .member_groups
            .iter()
            .map(|item| item.key().expect("key"))
            .collect();
        assert_eq!(keys.len(), 4);
        for key in keys {
            ks.member_groups.remove(key).expect("remove");
        }
        db.persist(fjall::PersistMode::SyncAll).expect("sync");
    }
    {
        let db = fjall::Database::builder(dir.path()).open().expect("db");
        let ks = Keyspaces::open(&db).expect("keyspaces");
        assert!(
            ks.member_groups.is_empty().expect("read"),
            "the index is gone"
        );
    }
    let store = FjallStore::open(dir.path()).expect("reopen");
    let mut groups = store.groups_of("a1").await.expect("groups_of");
    groups.sort();
    assert_eq!(groups, ["g1", "g2"]);
    assert_eq!(store.groups_of("a3").await.expect("groups_of"), ["g2"]);
    store.close().await.expect("close");
}

/// Tokens an older version kept in `tokens` (hash halves and owner, no issue time) still log
/// in after the upgrade: moved to `sessions` with the account's token edge, issued at the
/// upgrade, and the old keyspace is gone. The secrets that version copied into release
/// records are taken out of them.
#[tokio::test]
async fn opening_an_older_database_moves_its_tokens_to_sessions() {
    use chorus_actors::model::now_ms;
    use chorus_actors::store::{EdgeKind, TokenSelector};
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FjallStore::open(dir.path()).expect("open");
    store.commit(new_account("a1")).await.expect("account");
    store.close().await.expect("close");
    drop(store);
    let hash: [u8; 32] = std::array::from_fn(|i| i as u8 * 7 + 1);
    {
        // What an older version left: selector -> verifier ++ owner, and a broken entry.
        let db = fjall::Database::builder(dir.path()).open().expect("db");
        let old = db
            .keyspace("tokens", fjall::KeyspaceCreateOptions::default)
            .expect("old keyspace");
        let mut value = hash[16..].to_vec();
        value.extend_from_slice(b"a1");
        old.insert(&hash[..16], value).expect("insert");
        old.insert(b"short", b"x").expect("insert");
        let ks = Keyspaces::open(&db).expect("keyspaces");
        let release = serde_json::json!({
            "activity_id": "act1", "status": "retrying",
            "link": {"link_id": "l1", "platform": "webhook", "handle": "h", "created_ms": 1,
                     "config": {"url": "https://x.example/h", "secret": "whsec_copied"}}
        });
        let bytes = serde_json::to_vec(&release).expect("json");
        ks.deliveries.insert(b"act1\0l1", &bytes).expect("insert");
        ks.outbox.insert(b"act1\0l1", &bytes).expect("insert");
        ks.deliveries
            .insert(b"act2\0l1", br#"{"link":{"config":{"url":"u"}}}"#)
            .expect("insert");
        db.persist(fjall::PersistMode::SyncAll).expect("sync");
    }
    let before = now_ms();
    let store = FjallStore::open(dir.path()).expect("reopen");
    let owner = store
        .find_token(&hash)
        .await
        .expect("find")
        .expect("the old token still logs in");
    assert_eq!(owner.account, "a1");
    assert!(owner.issued_ms >= before, "issued at the upgrade");
    let mut wrong = hash;
    wrong[31] ^= 1;
    assert!(store.find_token(&wrong).await.expect("find").is_none());
    let snapshot = store
        .load_subscriber("a1")
        .await
        .expect("load")
        .expect("account");
    let tokens: Vec<_> = snapshot
        .edges
        .iter()
        .filter(|e| e.kind == EdgeKind::Token)
        .map(|e| e.other.clone())
        .collect();
    assert_eq!(tokens, [TokenSelector::of(&hash).to_hex()]);
    store.close().await.expect("close");
    drop(store);
    let db = fjall::Database::builder(dir.path()).open().expect("db");
    assert!(!db.keyspace_exists("tokens"), "the old keyspace is deleted");
    let ks = Keyspaces::open(&db).expect("keyspaces");
    for keyspace in [&ks.deliveries, &ks.outbox] {
        let record = keyspace.get(b"act1\0l1").expect("read").expect("kept");
        let record: serde_json::Value = serde_json::from_slice(&record).expect("json");
        assert_eq!(
            record["link"]["config"],
            serde_json::json!({"url": "https://x.example/h"})
        );
        assert_eq!(record["status"], "retrying", "the rest is kept");
    }
    assert_eq!(
        &*ks.deliveries.get(b"act2\0l1").expect("read").expect("kept"),
        br#"{"link":{"config":{"url":"u"}}}"#,
        "a record without a copy is left as it was"
    );
}
