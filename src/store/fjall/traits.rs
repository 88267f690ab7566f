//! The actors' storage traits on the embedded store: writes are encoded here and queued for
//! the writer, reads go to [`super::reads`]. A read of one key, or of a page of at most
//! [`super::INLINE_READ_KEYS`], runs where it is asked ([`FjallStore::read_up_to`]); every
//! read that can be larger (snapshots, long logs and pages, scans) runs on the blocking pool
//! ([`FjallStore::read`]), its arguments moved in.
//!
//! Owner epochs (cluster mode) have no meaning here: one process owns the database, so
//! `claim_owner` refuses and a write's `epoch` is not looked at.

use async_trait::async_trait;
use chorus_actors::StoreError;
use chorus_actors::model::StepRecord;
use chorus_actors::model::{AccountId, AccountRecord, Claim};
use chorus_actors::model::{ActivityRecord, ReleaseRecord};
use chorus_actors::model::{CommunityId, DynamicRecord, FeedPos, GroupId, MessageRecord};
use chorus_actors::place::ActorKind;
use chorus_actors::push::event::StoredEvent;
use chorus_actors::store::{
    CommunitySnapshot, CommunityStore, CommunityWrite, GroupSnapshot, GroupStore, GroupWrite,
    LogAppend, OwnerStore, StepStore, SubscriberSnapshot, SubscriberStore, SubscriberWrite,
    TokenOwner,
};

use super::encode::EncodedWrite;
use super::keys::{IDS, fits, id_prefix, pair_key};
use super::reads::{
    feed_page, find_hash, find_token, get, last_seq, load_subscriber, pending_releases,
    pending_steps, read_log, scan, scan_ids,
};
use super::{FjallStore, backend};

#[async_trait]
impl SubscriberStore for FjallStore {
    async fn commit(&self, write: SubscriberWrite) -> Result<(), StoreError> {
        self.submit(EncodedWrite::subscriber(&IDS, &write)?).await
    }

    async fn load_account(&self, id: &str) -> Result<Option<AccountRecord>, StoreError> {
        get(&self.keyspaces()?.accounts, id)
    }

    async fn load_subscriber(&self, id: &str) -> Result<Option<SubscriberSnapshot>, StoreError> {
        let id = id.to_owned();
        self.read(move |ks| load_subscriber(ks, &id)).await
    }

    async fn find_claim(&self, claim: &Claim) -> Result<Option<AccountId>, StoreError> {
        let ks = self.keyspaces()?;
        Ok(ks
            .claims
            .get(fits(&ks.claims, claim.0.as_bytes())?)
            .map_err(backend)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    async fn find_token(&self, hash: &[u8; 32]) -> Result<Option<TokenOwner>, StoreError> {
        find_token(&self.keyspaces()?.sessions, hash)
    }

    /// One write for all of them: the writer commits it in one batch, with one sync.
    async fn append_events(&self, appends: Vec<LogAppend>) -> Vec<Result<(), StoreError>> {
        if appends.is_empty() {
            return Vec::new();
        }
        let result = self.submit(EncodedWrite::appends(&IDS, &appends)).await;
        appends
            .iter()
            .map(|_| match &result {
                Ok(()) => Ok(()),
                // Each gets the same failure, of the same kind (503 for a sick disk).
                Err(StoreError::Unavailable(why)) => Err(StoreError::Unavailable(why.clone())),
                Err(e) => Err(StoreError::Backend(e.to_string())),
            })
            .collect()
    }

    async fn trim_logs(&self, horizon_ms: u64) -> Result<usize, StoreError> {
        self.trim(horizon_ms).await
    }

    async fn last_seqs(&self, accounts: &[AccountId]) -> Result<Vec<u64>, StoreError> {
        let accounts = accounts.to_vec();
        self.read_up_to(accounts.len(), move |ks| {
            accounts.iter().map(|id| last_seq(&ks.events, id)).collect()
        })
        .await
    }

    async fn read_events(
        &self,
        id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let id = id.to_owned();
        self.read_up_to(limit, move |ks| read_log(&ks.events, &id, after, limit))
            .await
    }

    async fn load_activity(&self, id: &str) -> Result<Option<ActivityRecord>, StoreError> {
        get(&self.keyspaces()?.activities, id)
    }

    async fn find_activity_by_key(
        &self,
        account: &str,
        key: &str,
    ) -> Result<Option<ActivityRecord>, StoreError> {
        let key = pair_key(account, key);
        let ks = self.keyspaces()?;
        let id = ks
            .activity_keys
            .get(fits(&ks.activity_keys, &key)?)
            .map_err(backend)?;
        match id {
            Some(id) => self.load_activity(&String::from_utf8_lossy(&id)).await,
            None => Ok(None),
        }
    }

    async fn list_activities(
        &self,
        account: &str,
        before: Option<&FeedPos>,
        limit: usize,
    ) -> Result<Vec<ActivityRecord>, StoreError> {
        let (account, before) = (account.to_owned(), before.cloned());
        self.read_up_to(limit, move |ks| {
            feed_page(&ks.activity_feed, &account, 0, before.as_ref(), limit)
        })
        .await
    }

    async fn list_releases(&self, activity_id: &str) -> Result<Vec<ReleaseRecord>, StoreError> {
        let prefix = id_prefix(activity_id);
        self.read(move |ks| scan(&ks.deliveries, &prefix)).await
    }

    async fn pending_releases(&self) -> Result<Vec<ReleaseRecord>, StoreError> {
        self.read(pending_releases).await
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.close_writer().await
    }
}

#[async_trait]
impl GroupStore for FjallStore {
    async fn commit_group(&self, write: GroupWrite) -> Result<(), StoreError> {
        self.submit(EncodedWrite::group(&IDS, &write)?).await
    }

    async fn groups_of(&self, account: &str) -> Result<Vec<GroupId>, StoreError> {
        let account = account.to_owned();
        self.read(move |ks| scan_ids(&ks.member_groups, &id_prefix(&account)))
            .await
    }

    async fn last_group_seqs(&self, groups: &[GroupId]) -> Result<Vec<u64>, StoreError> {
        let groups = groups.to_vec();
        self.read_up_to(groups.len(), move |ks| {
            groups
                .iter()
                .map(|id| last_seq(&ks.group_events, id))
                .collect()
        })
        .await
    }

    async fn load_group(&self, id: &str) -> Result<Option<GroupSnapshot>, StoreError> {
        let id = id.to_owned();
        self.read(move |ks| {
            let Some(record) = get(&ks.groups, &id)? else {
                return Ok(None);
            };
            let prefix = id_prefix(&id);
            Ok(Some(GroupSnapshot {
                record,
                members: scan_ids(&ks.group_members, &prefix)?,
                requests: scan(&ks.binding_requests, &prefix)?,
                bindings: scan(&ks.bindings_by_group, &prefix)?,
                last_seq: last_seq(&ks.group_events, &id)?,
            }))
        })
        .await
    }

    async fn read_group_events(
        &self,
        id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let id = id.to_owned();
        self.read_up_to(limit, move |ks| {
            read_log(&ks.group_events, &id, after, limit)
        })
        .await
    }

    async fn list_messages(
        &self,
        id: &str,
        before: Option<&FeedPos>,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let (id, before) = (id.to_owned(), before.cloned());
        self.read_up_to(limit, move |ks| {
            feed_page(&ks.messages, &id, 0, before.as_ref(), limit)
        })
        .await
    }
}

#[async_trait]
impl CommunityStore for FjallStore {
    async fn commit_community(&self, write: CommunityWrite) -> Result<(), StoreError> {
        self.submit(EncodedWrite::community(&IDS, &write)?).await
    }

    async fn load_community(&self, id: &str) -> Result<Option<CommunitySnapshot>, StoreError> {
        let id = id.to_owned();
        self.read(move |ks| {
            let Some(record) = get(&ks.communities, &id)? else {
                return Ok(None);
            };
            let prefix = id_prefix(&id);
            Ok(Some(CommunitySnapshot {
                record,
                members: scan_ids(&ks.community_members, &prefix)?,
                bindings: scan(&ks.bindings_by_community, &prefix)?,
            }))
        })
        .await
    }

    async fn find_server_key(&self, hash: &[u8; 32]) -> Result<Option<CommunityId>, StoreError> {
        find_hash(&self.keyspaces()?.server_keys, hash)
    }

    async fn list_dynamics(
        &self,
        id: &str,
        since_ms: u64,
        before: Option<&FeedPos>,
        limit: usize,
    ) -> Result<Vec<DynamicRecord>, StoreError> {
        let (id, before) = (id.to_owned(), before.cloned());
        self.read_up_to(limit, move |ks| {
            feed_page(&ks.dynamics, &id, since_ms, before.as_ref(), limit)
        })
        .await
    }
}

#[async_trait]
impl OwnerStore for FjallStore {
    async fn claim_owner(&self, kind: ActorKind, id: &str) -> Result<u64, StoreError> {
        Err(StoreError::Backend(format!(
            "{}:{id} cannot be claimed: the embedded store is single-node; cluster mode needs --store scylla",
            kind
        )))
    }
}

#[async_trait]
impl StepStore for FjallStore {
    async fn pending_steps(&self, limit: usize) -> Result<Vec<StepRecord>, StoreError> {
        self.read_up_to(limit, move |ks| pending_steps(ks, limit))
            .await
    }

    async fn settle_step(&self, step_id: &str, rest: Option<StepRecord>) -> Result<(), StoreError> {
        self.submit(EncodedWrite::settle(&IDS, step_id, rest.as_ref())?)
            .await
    }
}
