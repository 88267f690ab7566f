//! Checks of communities: a server key resolves to its community, and only the whole key does
//! (the verifier half is compared), since it is what a community's server authenticates with.

use crate::model::CommunityRecord;
use crate::store::{CommunityStore, CommunityWrite, SubscriberStore};

use super::Fixture;

/// A server key resolves to its community; the verifier half is checked.
pub async fn server_keys_resolve<F: Fixture>(fx: &F) {
    let store = fx.open().await;
    let hash = [9u8; 32];
    let mut c = CommunityWrite::new("c2");
    c.record = Some(CommunityRecord {
        community_id: "c2".into(),
        name: "Keyed".into(),
        creator: "owner".into(),
        created_ms: 1,
    });
    c.server_key_hash = Some(hash);
    store.commit_community(c).await.expect("keyed community");
    assert_eq!(
        store.find_server_key(&hash).await.expect("find").as_deref(),
        Some("c2")
    );
    let mut near = hash;
    near[31] = 0;
    assert!(
        store.find_server_key(&near).await.expect("find").is_none(),
        "verifier half checked"
    );
    store.close().await.expect("close");
}
