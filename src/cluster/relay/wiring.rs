//! The domain hands the relay what it must: the group actor's events and membership
//! changes, a group's creation, the account events of a change (no NATS here: a recording
//! relay stands in).

use std::sync::{Arc, Mutex};

use chorus_actors::model::{AccountRecord, Profile};
use chorus_actors::place::SingleNode;
use chorus_actors::push::{Relay, StoredEvent};
use chorus_actors::{ActorConfig, Chorus, Error, Seams};
use futures_util::future::BoxFuture;

use crate::store::FjallStore;

/// Every call, as text, in order.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Recorder {
    fn note(&self, call: String) {
        self.0.lock().expect("calls").push(call);
    }
    fn calls(&self) -> Vec<String> {
        self.0.lock().expect("calls").clone()
    }
}

impl Relay for Recorder {
    fn account_events(&self, account: &str, events: &[StoredEvent]) {
        for e in events {
            self.note(format!("account {account} {}", e.seq));
        }
    }
    fn group_event(&self, group: &str, event: &StoredEvent) {
        self.note(format!("group {group} {}", event.seq));
    }
    fn membership(&self, account: &str, group: &str, member: bool) {
        self.note(format!("member {account} {group} {member}"));
    }
    fn interest(&self, _account: &str) -> BoxFuture<'static, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }
    fn release(&self, _account: &str) {}
}

fn record(id: &str) -> AccountRecord {
    AccountRecord {
        account_id: id.into(),
        password_hash: String::new(),
        profile: Profile::new(),
        profile_version: 1,
        created_ms: 1,
        proofs: Default::default(),
    }
}

#[test]
fn the_group_actor_relays_its_events_and_membership_changes() {
    let system = actix::System::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(FjallStore::open(dir.path()).expect("store"));
    let recorder = Arc::new(Recorder::default());
    let seams = Seams {
        placement: Arc::new(SingleNode),
        relay: recorder.clone(),
    };
    let calls = system.block_on(async {
        let chorus = Chorus::with_seams(store, ActorConfig::default(), seams);
        for id in ["owner", "m"] {
            chorus
                .create_account(record(id), [0; 32])
                .await
                .expect("account");
        }
        let g = chorus
            .create_group("owner", "g".into())
            .await
            .expect("group");
        chorus
            .add_group_member("owner", &g, "m")
            .await
            .expect("add");
        chorus
            .add_group_member("owner", &g, "m")
            .await
            .expect("again");
        chorus
            .post_message("m", &g, "hi".into())
            .await
            .expect("post");
        chorus
            .remove_group_member("m", &g, "m".into())
            .await
            .expect("leave");
        chorus.shutdown();
        recorder
            .calls()
            .into_iter()
            .map(|c| c.replace(&g, "G"))
            .collect::<Vec<_>>()
    });
    assert_eq!(
        calls,
        [
            "member owner G true",
            "member m G true",
            "group G 1",
            "member m G false",
        ],
        "one call per durable change, in order; an idempotent add changes nothing"
    );
}
