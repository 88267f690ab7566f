//! The actors' storage traits on the embedded store: writes are encoded here and queued for
//! the writer, reads go to [`super::reads`].

use async_trait::async_trait;
use chorus_actors::StoreError;
use chorus_actors::model::StepRecord;
use chorus_actors::model::{AccountId, AccountRecord, Claim};
use chorus_actors::model::{ActivityRecord, ReleaseRecord};
use chorus_actors::model::{CommunityId, DynamicRecord, FeedPos, MessageRecord};
use chorus_actors::push::event::StoredEvent;
use chorus_actors::store::{
    CommunitySnapshot, CommunityStore, CommunityWrite, Edge, EdgeKind, GroupSnapshot, GroupStore,
    GroupWrite, LogAppend, StepStore, SubscriberSnapshot, SubscriberStore, SubscriberWrite,
};

use super::encode::EncodedWrite;
use super::keys::{fits, id_prefix, pair_key};
use super::reads::{feed_page, find_hash, get, last_seq, read_log, scan, scan_ids};
use super::{FjallStore, backend};
use crate::store::json::decode;

#[async_trait]
impl SubscriberStore for FjallStore {
    async fn commit(&self, write: SubscriberWrite) -> Result<(), StoreError> {
        self.submit(EncodedWrite::subscriber(&self.ks, &write)?)
            .await
    }

    async fn load_account(&self, id: &str) -> Result<Option<AccountRecord>, StoreError> {
        get(&self.ks.accounts, id)
    }

    async fn load_subscriber(&self, id: &str) -> Result<Option<SubscriberSnapshot>, StoreError> {
        let Some(record) = self.load_account(id).await? else {
            return Ok(None);
        };
        let prefix = id_prefix(id);
        let mut edges = Vec::new();
        for item in self.ks.edges.prefix(fits(&self.ks.edges, &prefix)?) {
            let (key, value) = item.into_inner().map_err(backend)?;
            let rest = key.get(prefix.len()..).unwrap_or_default();
            let Some((&tag, other)) = rest.split_first() else {
                continue;
            };
            let (Some(kind), Ok(other)) = (EdgeKind::from_tag(tag), std::str::from_utf8(other))
            else {
                tracing::error!(account = %id, "skipping undecodable edge key");
                continue;
            };
            edges.push(Edge {
                kind,
                other: other.to_owned(),
                value: value.to_vec(),
            });
        }
        Ok(Some(SubscriberSnapshot {
            record,
            edges,
            last_seq: last_seq(&self.ks.events, id)?,
        }))
    }

    async fn find_claim(&self, claim: &Claim) -> Result<Option<AccountId>, StoreError> {
        Ok(self
            .ks
            .claims
            .get(fits(&self.ks.claims, claim.0.as_bytes())?)
            .map_err(backend)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    async fn find_token(&self, hash: &[u8; 32]) -> Result<Option<AccountId>, StoreError> {
        find_hash(&self.ks.tokens, hash)
    }

    /// One write for all of them: the writer commits it in one batch, with one sync.
    async fn append_events(&self, appends: Vec<LogAppend>) -> Vec<Result<(), StoreError>> {
        if appends.is_empty() {
            return Vec::new();
        }
        let result = self.submit(EncodedWrite::appends(&self.ks, &appends)).await;
        appends
            .iter()
            .map(|_| match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(StoreError::Backend(e.to_string())),
            })
            .collect()
    }

    async fn last_seqs(&self, accounts: &[AccountId]) -> Result<Vec<u64>, StoreError> {
        accounts
            .iter()
            .map(|id| last_seq(&self.ks.events, id))
            .collect()
    }

    async fn read_events(
        &self,
        id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        read_log(&self.ks.events, id, after, limit)
    }

    async fn load_activity(&self, id: &str) -> Result<Option<ActivityRecord>, StoreError> {
        get(&self.ks.activities, id)
    }

    async fn find_activity_by_key(
        &self,
        account: &str,
        key: &str,
    ) -> Result<Option<ActivityRecord>, StoreError> {
        let key = pair_key(account, key);
        match self
            .ks
            .activity_keys
            .get(fits(&self.ks.activity_keys, &key)?)
            .map_err(backend)?
        {
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
        feed_page(&self.ks.activity_feed, account, 0, before, limit)
    }

    async fn list_releases(&self, activity_id: &str) -> Result<Vec<ReleaseRecord>, StoreError> {
        scan(&self.ks.deliveries, &id_prefix(activity_id))
    }

    async fn pending_releases(&self) -> Result<Vec<ReleaseRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self.ks.outbox.iter() {
            let key = item.key().map_err(backend)?;
            match self.ks.deliveries.get(&key).map_err(backend)? {
                Some(bytes) => out.push(decode(&String::from_utf8_lossy(&key), &bytes)?),
                None => tracing::error!(
                    key = %String::from_utf8_lossy(&key),
                    "outbox entry without its delivery; skipped"
                ),
            }
        }
        Ok(out)
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.close_writer().await
    }
}

#[async_trait]
impl GroupStore for FjallStore {
    async fn commit_group(&self, write: GroupWrite) -> Result<(), StoreError> {
        self.submit(EncodedWrite::group(&self.ks, &write)?).await
    }

    async fn load_group(&self, id: &str) -> Result<Option<GroupSnapshot>, StoreError> {
        let Some(record) = get(&self.ks.groups, id)? else {
            return Ok(None);
        };
        let prefix = id_prefix(id);
        Ok(Some(GroupSnapshot {
            record,
            members: scan_ids(&self.ks.group_members, &prefix)?,
            requests: scan(&self.ks.binding_requests, &prefix)?,
            bindings: scan(&self.ks.bindings_by_group, &prefix)?,
            last_seq: last_seq(&self.ks.group_events, id)?,
        }))
    }

    async fn read_group_events(
        &self,
        id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        read_log(&self.ks.group_events, id, after, limit)
    }

    async fn list_messages(
        &self,
        id: &str,
        before: Option<&FeedPos>,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        feed_page(&self.ks.messages, id, 0, before, limit)
    }
}

#[async_trait]
impl CommunityStore for FjallStore {
    async fn commit_community(&self, write: CommunityWrite) -> Result<(), StoreError> {
        self.submit(EncodedWrite::community(&self.ks, &write)?)
            .await
    }

    async fn load_community(&self, id: &str) -> Result<Option<CommunitySnapshot>, StoreError> {
        let Some(record) = get(&self.ks.communities, id)? else {
            return Ok(None);
        };
        let prefix = id_prefix(id);
        Ok(Some(CommunitySnapshot {
            record,
            members: scan_ids(&self.ks.community_members, &prefix)?,
            bindings: scan(&self.ks.bindings_by_community, &prefix)?,
        }))
    }

    async fn find_server_key(&self, hash: &[u8; 32]) -> Result<Option<CommunityId>, StoreError> {
        find_hash(&self.ks.server_keys, hash)
    }

    async fn list_dynamics(
        &self,
        id: &str,
        since_ms: u64,
        before: Option<&FeedPos>,
        limit: usize,
    ) -> Result<Vec<DynamicRecord>, StoreError> {
        feed_page(&self.ks.dynamics, id, since_ms, before, limit)
    }
}

#[async_trait]
impl StepStore for FjallStore {
    async fn pending_steps(&self, limit: usize) -> Result<Vec<StepRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self.ks.steps.iter().take(limit) {
            let (key, value) = item.into_inner().map_err(backend)?;
            out.push(decode(&String::from_utf8_lossy(&key), &value)?);
        }
        Ok(out)
    }

    async fn settle_step(&self, step_id: &str, rest: Option<StepRecord>) -> Result<(), StoreError> {
        self.submit(EncodedWrite::settle(&self.ks, step_id, rest.as_ref())?)
            .await
    }
}
