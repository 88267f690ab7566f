//! The shared secret key (`server_key.rs`): nodes starting at once on one keyspace each
//! offer a key of their own, and all of them end up with the one that won.

use super::super::ScyllaStore;
use super::on_keyspace;

#[tokio::test]
async fn nodes_racing_on_a_fresh_keyspace_share_one_key() {
    on_keyspace(|settings| async move {
        let (a, b) = tokio::join!(
            ScyllaStore::connect(&settings),
            ScyllaStore::connect(&settings)
        );
        let (a, b) = (a.expect("connect"), b.expect("connect"));
        let ks = settings.keyspace.as_str();
        let (ka, kb) = tokio::join!(
            a.shared_secret_key(ks, &[1u8; 32]),
            b.shared_secret_key(ks, &[2u8; 32])
        );
        let (ka, kb) = (ka.expect("key a"), kb.expect("key b"));
        assert_eq!(ka, kb, "two nodes, two keys");
        assert!(ka == [1u8; 32] || ka == [2u8; 32], "{ka:?}");
        // A node starting later reads it, whatever it offers.
        let c = ScyllaStore::connect(&settings).await.expect("connect");
        assert_eq!(
            c.shared_secret_key(ks, &[3u8; 32]).await.expect("key c"),
            ka
        );
    })
    .await;
}
