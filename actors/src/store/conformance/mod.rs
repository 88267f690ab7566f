#![allow(clippy::expect_used, clippy::unwrap_used)] // a test suite: a broken rule must panic
//! Generic checks of the storage traits' semantics, for every engine. Each check panics with a
//! message naming the rule it found broken.
//!
//! An engine runs the suite with [`conformance_tests!`](crate::conformance_tests), which
//! expands to one `#[tokio::test]` per check, so one broken rule does not hide the others. Every
//! check gets a [`Fixture`] of its own (a fresh, empty store: its own directory or keyspace), so
//! the checks are independent of each other and of their order, and run in parallel.
//!
//! The checks, one file per area: `accounts.rs` (records, claims, edges, tokens, concurrent
//! writes), `events.rs` (an account's log, appends to many logs), `groups.rs` (groups, the
//! groups of an account, bindings, feeds), `communities.rs` (server keys), `activities.rs`
//! (activities, releases, the outbox), `durability.rs` (a close and a reopen), `ambiguous.rs`
//! (a write that landed though its writer was told it failed), `keys.rs` (a key over the
//! engine's limit). This file holds the [`Fixture`], the macro, and the record builders the
//! checks share.
//!
//! [`Fixture`]: crate::store::conformance::Fixture

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::FutureExt;

use crate::model::{
    AccountRecord, ActivityRecord, DynamicRecord, GroupRecord, LinkRecord, Profile,
};
use crate::push::event::{EventType, StoredEvent, encode_event};
use crate::store::Store;

mod accounts;
mod activities;
mod ambiguous;
mod communities;
mod durability;
mod events;
mod groups;
mod keys;
mod steps;

// The checks, at the paths `conformance_tests!` calls them by.
pub use accounts::{
    claims_are_exclusive_and_atomic, claims_release, concurrent_commits_all_land, create_and_load,
    edges_put_and_delete, tokens_resolve,
};
pub use activities::{activities_and_outbox, activity_claim_conflict_stores_nothing};
pub use ambiguous::ambiguous_write_is_neither_lost_nor_overwritten;
pub use communities::server_keys_resolve;
pub use durability::durable_across_reopen;
pub use events::{appends_to_many_logs, events_page_in_order};
pub use groups::{
    bindings_are_two_sided, feeds_page_newest_first, groups_of_follows_membership,
    groups_round_trip,
};
pub use keys::keys_over_the_engine_limit_are_refused;
pub use steps::{a_refused_write_stores_no_step, steps_ride_with_their_first_write};

/// One check's engine: a fresh, empty store of its own.
#[async_trait]
pub trait Fixture: Send + Sync + Sized + 'static {
    /// The engine's store.
    type Store: Store;

    /// Opens the store over this fixture's data. Called again after a close, by the
    /// durability check, and must then find everything written before.
    async fn open(&self) -> Arc<Self::Store>;

    /// Removes what the fixture made (a keyspace); run whether the check passed or not.
    async fn teardown(self) {}
}

/// One `#[tokio::test]` per check of this suite, in a module `$name`, each on a fixture of its
/// own from `$fixture`: an expression (evaluated once per test, in the module's scope through
/// `use super::*`) giving a future of `Option<impl Fixture>`; `None` means the engine is not
/// available, and the test returns after the fixture has said so. The calling crate needs
/// `tokio` (with `macros` and `rt-multi-thread`).
///
/// ```text
/// chorus_actors::conformance_tests!(conformance, fixture());
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($name:ident, $fixture:expr) => {
        $crate::conformance_tests!(@module $name, $fixture;
            create_and_load,
            claims_are_exclusive_and_atomic,
            claims_release,
            edges_put_and_delete,
            tokens_resolve,
            events_page_in_order,
            appends_to_many_logs,
            concurrent_commits_all_land,
            groups_round_trip,
            groups_of_follows_membership,
            bindings_are_two_sided,
            feeds_page_newest_first,
            server_keys_resolve,
            activities_and_outbox,
            activity_claim_conflict_stores_nothing,
            durable_across_reopen,
            ambiguous_write_is_neither_lost_nor_overwritten,
            steps_ride_with_their_first_write,
            a_refused_write_stores_no_step,
            keys_over_the_engine_limit_are_refused,
        );
    };
    (@module $name:ident, $fixture:expr; $($check:ident),* $(,)?) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let Some(fixture) = $fixture.await else {
                        return;
                    };
                    let outcome = $crate::store::conformance::catch(
                        $crate::store::conformance::$check(&fixture),
                    )
                    .await;
                    $crate::store::conformance::Fixture::teardown(fixture).await;
                    if let Err(panic) = outcome {
                        ::std::panic::resume_unwind(panic);
                    }
                }
            )*
        }
    };
}

/// Runs a check, catching its panic so the fixture is torn down before the test fails.
#[doc(hidden)]
pub async fn catch(check: impl Future<Output = ()>) -> Result<(), Box<dyn Any + Send>> {
    AssertUnwindSafe(check).catch_unwind().await
}

/// Account `id`'s record, with display name `name`.
fn record(id: &str, name: &str) -> AccountRecord {
    let mut profile = Profile::new();
    profile.insert("display_name".into(), name.into());
    AccountRecord {
        account_id: id.into(),
        password_hash: "$argon2id$test".into(),
        profile,
        profile_version: 1,
        created_ms: 1,
        proofs: Default::default(),
    }
}

/// Event `seq` of an account's log.
fn event(seq: u64) -> StoredEvent {
    encode_event(EventType::FRIEND_ADDED, seq, &serde_json::json!({"n": seq}))
}

/// Dynamic `d<n>` of community `cid`, created at `100 + 10 n` ms.
fn dynamic(cid: &str, n: u64) -> DynamicRecord {
    DynamicRecord {
        dynamic_id: format!("d{n}"),
        community_id: cid.into(),
        account_id: "a1".into(),
        kind: "post".into(),
        text: format!("t{n}"),
        created_ms: 100 + n * 10,
    }
}

/// Group `id`'s record.
fn group_record(id: &str) -> GroupRecord {
    GroupRecord {
        group_id: id.into(),
        name: "Hikers".into(),
        owner: "owner".into(),
        created_ms: 5,
    }
}

/// A webhook link `id` (to an address nothing answers on; no check releases to it).
fn link(id: &str) -> LinkRecord {
    LinkRecord {
        link_id: id.into(),
        platform: "webhook".into(),
        handle: format!("h-{id}"),
        config: serde_json::json!({"url": "http://127.0.0.1:1/"}),
        secret: Some("v1:sealed".into()),
        created_ms: 1,
        proof: Default::default(),
    }
}

/// Activity `id` by `author` at `ms`, with idempotency key `key`.
fn activity(id: &str, author: &str, ms: u64, key: Option<&str>) -> ActivityRecord {
    ActivityRecord {
        activity_id: id.into(),
        account_id: author.into(),
        author_name: "Ann".into(),
        text: format!("post {id}"),
        created_ms: ms,
        idempotency_key: key.map(str::to_owned),
    }
}
