//! Owner epochs on a real node (`epochs.rs`, cluster mode): claims give rising epochs, a
//! write that names an epoch no longer the newest is refused as fenced with nothing stored
//! (with events, without, a community's, appends to many logs), the seqs a fenced write
//! tried stay free for the new owner, a check that answers too late rolls back, and writes
//! without an epoch are what they were.

use std::sync::Arc;
use std::time::Duration;

use chorus_actors::StoreError;
use chorus_actors::model::{
    AccountRecord, Claim, CommunityRecord, GroupRecord, MessageRecord, Profile,
};
use chorus_actors::place::ActorKind;
use chorus_actors::store::{
    CommunityStore, CommunityWrite, GroupStore, GroupWrite, LogAppend, OwnerStore, SubscriberStore,
    SubscriberWrite,
};
use scylla::value::CqlValue;

use super::super::keys::LogKind;
use super::super::{ScyllaSettings, ScyllaStore};
use super::node::{frame, group_write, lwt, owned};
use super::on_keyspace;

async fn store(settings: &ScyllaSettings) -> ScyllaStore {
    ScyllaStore::connect(settings).await.expect("connect")
}

fn group_record(gid: &str) -> GroupRecord {
    GroupRecord {
        group_id: gid.into(),
        name: "Hikers".into(),
        owner: "a1".into(),
        created_ms: 1,
    }
}

fn account(id: &str, version: u64) -> AccountRecord {
    AccountRecord {
        account_id: id.into(),
        password_hash: "$argon2id$test".into(),
        profile: Profile::new(),
        profile_version: version,
        created_ms: 1,
        proofs: Default::default(),
    }
}

fn message(gid: &str, id: &str) -> MessageRecord {
    MessageRecord {
        message_id: id.into(),
        group_id: gid.into(),
        account_id: "a1".into(),
        text: "hey".into(),
        created_ms: 1000,
    }
}

/// Whether `result` is a refusal of `epoch` by a log now at `now`.
fn is_fenced(result: &Result<(), StoreError>, epoch: u64, now: u64) -> bool {
    matches!(result, Err(StoreError::Fenced { epoch: e, now: n, .. }) if (*e, *n) == (epoch, now))
}

/// The epoch in `log`'s row (`None`: no row, or no epoch in it).
async fn epoch_of(store: &ScyllaStore, log: &str) -> Option<i64> {
    let row: Option<(Option<i64>,)> = store
        .get_one(&store.st.get_epoch, (log,), "test")
        .await
        .expect("read");
    row.and_then(|(e,)| e)
}

async fn group_seqs(store: &ScyllaStore, gid: &str) -> Vec<(u64, String)> {
    store
        .read_group_events(gid, 0, 100)
        .await
        .expect("read")
        .into_iter()
        .map(|e| (e.seq, e.frame.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_give_rising_epochs() {
    on_keyspace(|settings| async move {
        let store = Arc::new(store(&settings).await);
        for kind in [ActorKind::Account, ActorKind::Group, ActorKind::Community] {
            for want in 1..=3 {
                assert_eq!(store.claim_owner(kind, "x").await.expect("claim"), want);
            }
        }
        assert_eq!(
            epoch_of(&store, "c:x").await,
            Some(3),
            "a community's own row"
        );
        // A log written before any claim (a single node's data): the claim keeps its head.
        store
            .commit_group(group_write("old", 1..=2, "before"))
            .await
            .expect("unfenced write");
        assert_eq!(epoch_of(&store, "g:old").await, None);
        assert_eq!(
            store
                .claim_owner(ActorKind::Group, "old")
                .await
                .expect("claim"),
            1
        );
        assert_eq!(
            store.last_seq(LogKind::Group, "old").await.expect("head"),
            2
        );
        // Nodes claiming one actor at once: each claim that succeeds has an epoch of its own.
        let claims: Vec<_> = (0..6)
            .map(|_| {
                let store = Arc::clone(&store);
                tokio::spawn(async move { store.claim_owner(ActorKind::Account, "race").await })
            })
            .collect();
        let mut got = Vec::new();
        for claim in claims {
            match claim.await.expect("join") {
                Ok(epoch) => got.push(epoch),
                Err(StoreError::Unavailable(e)) => println!("claim gave up: {e}"),
                Err(e) => panic!("a claim failed otherwise: {e}"),
            }
        }
        let (claimed, mut distinct) = (got.len(), got.clone());
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), claimed, "no epoch given twice: {got:?}");
        assert!(claimed >= 1, "some claim succeeded");
        let newest = epoch_of(&store, "a:race").await.expect("epoch");
        assert_eq!(Some(newest as u64), distinct.last().copied());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_with_an_old_epoch_is_fenced_and_stores_nothing() {
    on_keyspace(|settings| async move {
        let store = store(&settings).await;
        // A group write with events; then one of the old owner after a takeover.
        let old = store
            .claim_owner(ActorKind::Group, "g1")
            .await
            .expect("claim");
        let mut w = owned(group_write("g1", 1..=1, "created"), old);
        w.record = Some(group_record("g1"));
        w.members_add.push("a1".into());
        store.commit_group(w).await.expect("the owner's write");
        let new = store
            .claim_owner(ActorKind::Group, "g1")
            .await
            .expect("takeover");
        assert_eq!((old, new), (1, 2));
        let mut stale = owned(group_write("g1", 2..=2, "stale"), old);
        stale.messages.push(message("g1", "m1"));
        stale.members_add.push("a2".into());
        let refused = store.commit_group(stale).await;
        assert!(is_fenced(&refused, old, new), "{refused:?}");
        assert_eq!(
            group_seqs(&store, "g1").await,
            [(1, frame("g1", 1, "created").frame.to_string())]
        );
        assert!(
            store
                .list_messages("g1", None, 10)
                .await
                .expect("read")
                .is_empty()
        );
        assert!(store.groups_of("a2").await.expect("read").is_empty());
        assert_eq!(
            store
                .load_group("g1")
                .await
                .expect("load")
                .expect("group")
                .last_seq,
            1
        );

        // A log's first write, by an owner already taken over.
        let old = store
            .claim_owner(ActorKind::Group, "g2")
            .await
            .expect("claim");
        let new = store
            .claim_owner(ActorKind::Group, "g2")
            .await
            .expect("takeover");
        let refused = store
            .commit_group(owned(group_write("g2", 1..=1, "x"), old))
            .await;
        assert!(is_fenced(&refused, old, new), "{refused:?}");
        assert!(group_seqs(&store, "g2").await.is_empty());

        // A group write without events (a member added), by g1's old owner and its new one.
        let (old, new) = (1, 2);
        let mut add = GroupWrite::new("g1");
        add.members_add.push("a3".into());
        let refused = store.commit_group(owned(add.clone(), old)).await;
        assert!(is_fenced(&refused, old, new), "{refused:?}");
        assert!(store.groups_of("a3").await.expect("read").is_empty());
        store
            .commit_group(owned(add, new))
            .await
            .expect("the owner adds a member");
        assert_eq!(store.groups_of("a3").await.expect("read"), ["g1"]);

        // An account write without events, taking a claim: refused, the claim given back.
        let first = store
            .claim_owner(ActorKind::Account, "a1")
            .await
            .expect("claim");
        let mut w = SubscriberWrite::new("a1");
        w.record = Some(account("a1", 1));
        w.epoch = Some(first);
        store.commit(w).await.expect("the owner's write");
        let now = store
            .claim_owner(ActorKind::Account, "a1")
            .await
            .expect("takeover");
        let mut w = SubscriberWrite::new("a1");
        w.record = Some(account("a1", 2));
        w.claims.push(Claim::email("a1@example.com"));
        w.epoch = Some(first);
        let refused = store.commit(w).await;
        assert!(is_fenced(&refused, first, now), "{refused:?}");
        let record = store
            .load_account("a1")
            .await
            .expect("load")
            .expect("account");
        assert_eq!(record.profile_version, 1, "the record is the owner's");
        assert_eq!(
            store
                .find_claim(&Claim::email("a1@example.com"))
                .await
                .expect("find"),
            None,
            "the fenced write's claim was given back"
        );

        // A community write (never has events): its own row, `c:<id>`.
        let first = store
            .claim_owner(ActorKind::Community, "c1")
            .await
            .expect("claim");
        let mut w = CommunityWrite::new("c1");
        w.record = Some(CommunityRecord {
            community_id: "c1".into(),
            name: "Club".into(),
            creator: "a1".into(),
            created_ms: 1,
        });
        w.members_add.push("a1".into());
        w.epoch = Some(first);
        store.commit_community(w).await.expect("the owner's write");
        let now = store
            .claim_owner(ActorKind::Community, "c1")
            .await
            .expect("takeover");
        let mut w = CommunityWrite::new("c1");
        w.members_add.push("a2".into());
        w.epoch = Some(first);
        let refused = store.commit_community(w).await;
        assert!(is_fenced(&refused, first, now), "{refused:?}");
        let community = store.load_community("c1").await.expect("load").expect("c");
        assert_eq!(community.members, ["a1"]);

        // Appends to many logs: each its own epoch, each its own answer.
        let (m1, m2) = (
            store
                .claim_owner(ActorKind::Account, "m1")
                .await
                .expect("claim"),
            store
                .claim_owner(ActorKind::Account, "m2")
                .await
                .expect("claim"),
        );
        let m2_now = store
            .claim_owner(ActorKind::Account, "m2")
            .await
            .expect("takeover");
        let results = store
            .append_events(vec![
                LogAppend {
                    account: "m1".into(),
                    events: vec![frame("m1", 1, "ok")],
                    epoch: Some(m1),
                },
                LogAppend {
                    account: "m2".into(),
                    events: vec![frame("m2", 1, "stale")],
                    epoch: Some(m2),
                },
            ])
            .await;
        assert!(results[0].is_ok(), "{:?}", results[0]);
        assert!(is_fenced(&results[1], m2, m2_now), "{:?}", results[1]);
        assert_eq!(store.read_events("m1", 0, 10).await.expect("read").len(), 1);
        assert!(
            store
                .read_events("m2", 0, 10)
                .await
                .expect("read")
                .is_empty()
        );

        // An epoch nobody claimed (no row): fenced, at 0.
        let refused = store
            .commit_group(owned(group_write("g9", 1..=1, "x"), 1))
            .await;
        assert!(is_fenced(&refused, 1, 0), "{refused:?}");
        let mut w = CommunityWrite::new("c9");
        w.members_add.push("a1".into());
        w.epoch = Some(1);
        let refused = store.commit_community(w).await;
        assert!(is_fenced(&refused, 1, 0), "{refused:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_writes_seqs_stay_usable_by_the_new_owner() {
    on_keyspace(|settings| async move {
        let store = store(&settings).await;
        for (gid, before) in [("g1", 2u64), ("g2", 0)] {
            let old = store
                .claim_owner(ActorKind::Group, gid)
                .await
                .expect("claim");
            if before > 0 {
                store
                    .commit_group(owned(group_write(gid, 1..=before, "old"), old))
                    .await
                    .expect("the old owner's write");
            }
            let new = store
                .claim_owner(ActorKind::Group, gid)
                .await
                .expect("takeover");
            // The new owner loads, then the old one, not knowing, writes the next seqs.
            let head = store.last_seq(LogKind::Group, gid).await.expect("head");
            assert_eq!(head, before);
            let next = before + 1..=before + 2;
            let refused = store
                .commit_group(owned(group_write(gid, next.clone(), "stale"), old))
                .await;
            assert!(is_fenced(&refused, old, new), "{refused:?}");
            store
                .commit_group(owned(group_write(gid, next.clone(), "new"), new))
                .await
                .expect("the new owner takes the same seqs");
            let seqs = group_seqs(&store, gid).await;
            assert_eq!(seqs.len() as u64, before + 2, "{seqs:?}");
            assert!(
                seqs.iter()
                    .skip(before as usize)
                    .all(|(_, frame)| frame.contains("\"new\"")),
                "the seqs hold the new owner's events: {seqs:?}"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_of_an_applied_write_is_recognised_while_its_epoch_holds() {
    on_keyspace(|settings| async move {
        let store = store(&settings).await;
        let epoch = store
            .claim_owner(ActorKind::Group, "g1")
            .await
            .expect("claim");
        for _ in 0..2 {
            store
                .commit_group(owned(group_write("g1", 1..=1, "first"), epoch))
                .await
                .expect("a first write, and its repeat");
        }
        for _ in 0..2 {
            store
                .commit_group(owned(group_write("g1", 2..=3, "next"), epoch))
                .await
                .expect("a later write, and its repeat");
        }
        let moved = store
            .commit_group(owned(group_write("g1", 3..=3, "other"), epoch))
            .await;
        assert!(
            super::node::is_log_moved(&moved),
            "not the same write: {moved:?}"
        );
        // Once another node owns the log, the repeat is fenced: its batch (a newer
        // timestamp) must not be sent again over the new owner's writes.
        let now = store
            .claim_owner(ActorKind::Group, "g1")
            .await
            .expect("takeover");
        let repeat = store
            .commit_group(owned(group_write("g1", 2..=3, "next"), epoch))
            .await;
        assert!(is_fenced(&repeat, epoch, now), "{repeat:?}");
        assert_eq!(group_seqs(&store, "g1").await.len(), 3);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_without_an_epoch_are_as_before() {
    on_keyspace(|settings| async move {
        // A store that would refuse every fenced write: writes without an epoch never see
        // the bound, nor any epoch check.
        let store = store(&settings).await.with_fence_bound(Duration::ZERO);
        store
            .commit_group(group_write("g1", 1..=2, "one"))
            .await
            .expect("a first write: INSERT ... IF NOT EXISTS");
        let mut w = GroupWrite::new("g1");
        w.members_add.push("a1".into());
        store.commit_group(w).await.expect("no events, no check");
        let mut w = CommunityWrite::new("c1");
        w.members_add.push("a1".into());
        store.commit_community(w).await.expect("a community write");
        // No epoch written anywhere, no `c:` row.
        assert_eq!(epoch_of(&store, "g:g1").await, None);
        let row: Option<(Option<i64>,)> = store
            .get_one(&store.st.get_epoch, ("c:c1",), "test")
            .await
            .expect("read");
        assert!(
            row.is_none(),
            "a community write without an epoch makes no log row"
        );
        // The unfenced undo deletes the row of a first reservation, as before.
        let store = store.with_fence_bound(super::super::DEFAULT_FENCE_BOUND);
        store
            .commit_group(group_write("g1", 3..=3, "two"))
            .await
            .expect("the next write");
        assert_eq!(group_seqs(&store, "g1").await.len(), 3);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_answered_too_late_rolls_back_and_is_fenced() {
    on_keyspace(|settings| async move {
        let prompt = store(&settings).await;
        // Every check "answers too late" for a bound of zero.
        let late = store(&settings).await.with_fence_bound(Duration::ZERO);
        let epoch = prompt
            .claim_owner(ActorKind::Group, "g1")
            .await
            .expect("claim");
        // A first write (the head was null), a later one, a write without events.
        for seqs in [1..=1, 2..=3] {
            let mut w = owned(group_write("g1", seqs.clone(), "late"), epoch);
            w.messages.push(message("g1", "late"));
            let refused = late.commit_group(w).await;
            assert!(is_fenced(&refused, epoch, epoch), "{refused:?}");
            assert!(
                prompt
                    .list_messages("g1", None, 10)
                    .await
                    .expect("read")
                    .is_empty()
            );
            // Rolled back: the same seqs are free for the owner's next write.
            prompt
                .commit_group(owned(group_write("g1", seqs.clone(), "prompt"), epoch))
                .await
                .unwrap_or_else(|e| panic!("seqs {seqs:?} given back: {e}"));
        }
        let mut add = owned(GroupWrite::new("g1"), epoch);
        add.members_add.push("a1".into());
        let refused = late.commit_group(add.clone()).await;
        assert!(is_fenced(&refused, epoch, epoch), "{refused:?}");
        assert!(prompt.groups_of("a1").await.expect("read").is_empty());
        prompt.commit_group(add).await.expect("in time");
        let seqs = group_seqs(&prompt, "g1").await;
        assert_eq!(seqs.len(), 3);
        assert!(seqs.iter().all(|(_, f)| f.contains("prompt")), "{seqs:?}");
        assert_eq!(
            epoch_of(&prompt, "g:g1").await,
            Some(epoch as i64),
            "the epoch is kept"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_lwt_answers_show_the_epoch() {
    on_keyspace(|settings| async move {
        let store = store(&settings).await;
        let st = &store.st;
        let (text, big) = (|s: &str| CqlValue::Text(s.to_owned()), CqlValue::BigInt);
        // No row: refused with `[applied]` alone (read as epoch 0).
        let a = lwt(&store, &st.move_epoch, vec![big(2), text("g:x"), big(1)]).await;
        assert_eq!((a.applied, a.names()), (false, vec!["[applied]"]));
        let a = lwt(
            &store,
            &st.open_log_fenced,
            vec![big(1), text("g:x"), big(1)],
        )
        .await;
        assert_eq!((a.applied, a.names()), (false, vec!["[applied]"]));
        let a = lwt(&store, &st.first_epoch, vec![big(1), text("g:x")]).await;
        assert_eq!((a.applied, a.names()), (true, vec!["[applied]"]));
        let a = lwt(&store, &st.first_epoch, vec![big(1), text("g:x")]).await;
        assert!(!a.applied);
        assert_eq!(a.names(), ["[applied]", "epoch"]);
        assert_eq!(a.column("epoch"), Some(&big(1)));
        let a = lwt(
            &store,
            &st.open_log_fenced,
            vec![big(2), text("g:x"), big(1)],
        )
        .await;
        assert!(a.applied, "the claim's row, last_seq null");
        let a = lwt(
            &store,
            &st.advance_log_fenced,
            vec![big(4), text("g:x"), big(1), big(2)],
        )
        .await;
        assert!(!a.applied);
        assert_eq!(
            a.names(),
            ["[applied]", "last_seq", "epoch"],
            "the conditioned columns"
        );
        assert_eq!(
            (a.column("epoch"), a.column("last_seq")),
            (Some(&big(1)), Some(&big(2)))
        );
        let a = lwt(
            &store,
            &st.drop_log_fenced,
            vec![text("g:x"), big(2), big(1)],
        )
        .await;
        assert!(a.applied);
        let a = lwt(
            &store,
            &st.advance_log_fenced,
            vec![big(4), text("g:x"), big(2), big(1)],
        )
        .await;
        assert!(!a.applied);
        assert_eq!(
            a.column("last_seq"),
            None,
            "the undo nulled the head, kept the row"
        );
        assert_eq!(a.column("epoch"), Some(&big(1)));
    })
    .await;
}
