use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chorus_actors::StoreError;
use chorus_actors::model::{AccountRecord, Claim, Profile};
use chorus_actors::push::event::{EventType, encode_event};
use chorus_actors::store::conformance::Fixture;
use chorus_actors::store::{SubscriberStore, SubscriberWrite};

use super::FjallStore;
use super::encode::EncodedWrite;

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

/// No record type of today can fail to encode, so the failure is brought in the way one
/// would arrive: a value whose serialization fails (JSON object keys must be strings), put
/// through the same encoding step as every record of a write.
#[tokio::test]
async fn a_record_that_fails_to_encode_fails_its_write_and_stores_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FjallStore::open(dir.path()).expect("open");
    let mut write = SubscriberWrite::new("a1");
    write.record = Some(AccountRecord {
        account_id: "a1".into(),
        password_hash: "$argon2id$test".into(),
        profile: Profile::new(),
        profile_version: 1,
        created_ms: 1,
    });
    write.claims.push(Claim::email("a1@example.com"));
    write.events.push(encode_event(
        EventType::FRIEND_ADDED,
        1,
        &serde_json::json!({}),
    ));

    let unencodable: BTreeMap<(u8, u8), u8> = [((1, 2), 3)].into();
    let result = async {
        let mut encoded = EncodedWrite::subscriber(&store.ks, &write)?;
        encoded.put_json(&store.ks.activities, b"odd".to_vec(), &unencodable)?;
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

/// The reproduction of issue 13 at the engine: a claim of 22,000 × "İ" lower-cased (66 KB)
/// would reach lsm-tree's 65,535-byte key assertion. The store refuses the whole write
/// before the writer sees it, refuses reads of such a key alike, and goes on working.
#[tokio::test]
async fn a_key_over_the_engine_limit_is_refused_whole_and_nothing_panics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FjallStore::open(dir.path()).expect("open");
    let record = |id: &str| AccountRecord {
        account_id: id.into(),
        password_hash: "$argon2id$test".into(),
        profile: Profile::new(),
        profile_version: 1,
        created_ms: 1,
    };
    let huge = Claim::handle("webhook", &"İ".repeat(22_000));
    assert!(huge.0.len() > u16::MAX as usize);
    let mut write = SubscriberWrite::new("a1");
    write.record = Some(record("a1"));
    write.claims.push(huge.clone());
    match store.commit(write).await {
        Err(StoreError::KeyTooLong { table, len, max }) => {
            assert_eq!((table.as_str(), len, max), ("claims", huge.0.len(), 65_535));
        }
        other => panic!("an over-long key must be refused, got {other:?}"),
    }
    assert!(store.load_account("a1").await.expect("load").is_none());

    // Reads of such a key (a point read, a prefix scan, a range) are refused too.
    assert!(matches!(
        store.find_claim(&huge).await,
        Err(StoreError::KeyTooLong { .. })
    ));
    let long_id = "a".repeat(70_000);
    assert!(matches!(
        store.load_subscriber(&long_id).await,
        Err(StoreError::KeyTooLong { .. })
    ));
    assert!(matches!(
        store.read_events(&long_id, 0, 10).await,
        Err(StoreError::KeyTooLong { .. })
    ));

    // The writer thread is alive: the next write lands.
    let mut write = SubscriberWrite::new("a2");
    write.record = Some(record("a2"));
    store.commit(write).await.expect("a later write lands");
    assert!(store.load_account("a2").await.expect("load").is_some());
}
