//! The actors' storage traits on ScyllaDB.

use async_trait::async_trait;
use chorus_actors::StoreError;
use chorus_actors::model::{AccountId, AccountRecord, Claim};
use chorus_actors::model::{ActivityRecord, ReleaseRecord, StepRecord};
use chorus_actors::model::{CommunityId, DynamicRecord, FeedPos, GroupId, MessageRecord};
use chorus_actors::place::ActorKind;
use chorus_actors::push::event::StoredEvent;
use chorus_actors::store::{
    CommunitySnapshot, CommunityStore, CommunityWrite, Edge, GroupSnapshot, GroupStore, GroupWrite,
    LogAppend, OwnerStore, StepStore, SubscriberSnapshot, SubscriberStore, SubscriberWrite,
    TokenOwner,
};

use crate::store::json::decode;

use super::ScyllaStore;
use super::keys::{FeedKind, LogKind, OUTBOX_SHARDS, edge_kind_of, fits};

#[async_trait]
impl SubscriberStore for ScyllaStore {
    async fn commit(&self, write: SubscriberWrite) -> Result<(), StoreError> {
        self.commit_account(write).await
    }

    async fn load_account(&self, id: &str) -> Result<Option<AccountRecord>, StoreError> {
        fits("accounts", id)?;
        self.record(&self.st.get_account, (id,), &format!("accounts/{id}"))
            .await
    }

    async fn load_subscriber(&self, id: &str) -> Result<Option<SubscriberSnapshot>, StoreError> {
        let Some(record) = self.load_account(id).await? else {
            return Ok(None);
        };
        let edge_rows = self.all_rows::<(String, String, Vec<u8>)>(
            &self.st.list_edges,
            (id,),
            usize::MAX,
            "reading edges",
        );
        let (edge_rows, last_seq) =
            tokio::try_join!(edge_rows, self.last_seq(LogKind::Account, id))?;
        let mut edges = Vec::with_capacity(edge_rows.len());
        for (kind, other, value) in edge_rows {
            let Some(kind) = edge_kind_of(&kind) else {
                tracing::error!(account = %id, %kind, "skipping edge of unknown kind");
                continue;
            };
            edges.push(Edge { kind, other, value });
        }
        Ok(Some(SubscriberSnapshot {
            record,
            edges,
            last_seq,
        }))
    }

    async fn find_claim(&self, claim: &Claim) -> Result<Option<AccountId>, StoreError> {
        fits("claims", &claim.0)?;
        let row: Option<(String,)> = self
            .get_one(&self.st.get_claim, (claim.0.as_str(),), "reading claims")
            .await?;
        Ok(row.map(|(owner,)| owner))
    }

    async fn find_token(&self, hash: &[u8; 32]) -> Result<Option<TokenOwner>, StoreError> {
        self.find_token_row(hash).await
    }

    async fn append_events(&self, appends: Vec<LogAppend>) -> Vec<Result<(), StoreError>> {
        self.append_logs(appends).await
    }

    async fn last_seqs(&self, accounts: &[AccountId]) -> Result<Vec<u64>, StoreError> {
        self.last_seqs_of(LogKind::Account, accounts).await
    }

    async fn read_events(
        &self,
        id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.read_log(LogKind::Account, &self.st.read_events, id, after, limit)
            .await
    }

    async fn load_activity(&self, id: &str) -> Result<Option<ActivityRecord>, StoreError> {
        fits("activities", id)?;
        self.record(&self.st.get_activity, (id,), &format!("activities/{id}"))
            .await
    }

    async fn find_activity_by_key(
        &self,
        account: &str,
        key: &str,
    ) -> Result<Option<ActivityRecord>, StoreError> {
        fits("activity_keys", account)?;
        fits("activity_keys", key)?;
        let row: Option<(String,)> = self
            .get_one(
                &self.st.get_activity_key,
                (account, key),
                "reading activity keys",
            )
            .await?;
        match row {
            Some((id,)) => self.load_activity(&id).await,
            None => Ok(None),
        }
    }

    async fn list_activities(
        &self,
        account: &str,
        before: Option<&FeedPos>,
        limit: usize,
    ) -> Result<Vec<ActivityRecord>, StoreError> {
        self.feed_page(
            FeedKind::Activities,
            &self.st.page_activities,
            &self.st.page_activities_before,
            account,
            0,
            before,
            limit,
        )
        .await
    }

    async fn list_releases(&self, activity_id: &str) -> Result<Vec<ReleaseRecord>, StoreError> {
        fits("deliveries", activity_id)?;
        self.records(
            &self.st.list_releases,
            (activity_id,),
            &format!("deliveries/{activity_id}"),
        )
        .await
    }

    async fn pending_releases(&self) -> Result<Vec<ReleaseRecord>, StoreError> {
        let mut out: Vec<ReleaseRecord> = Vec::new();
        for shard in 0..OUTBOX_SHARDS {
            out.extend(
                self.records(&self.st.list_outbox, (shard,), &format!("outbox/{shard}"))
                    .await?,
            );
        }
        // The embedded store's order: by activity, then link.
        out.sort_by(|a, b| {
            (&a.activity_id, &a.link.link_id).cmp(&(&b.activity_id, &b.link.link_id))
        });
        Ok(out)
    }

    async fn close(&self) -> Result<(), StoreError> {
        // Nothing to flush: every acknowledged write already met its consistency level. What
        // is left is to let the admitted writes finish (a write's claims, batch and releases
        // must not be cut apart by the process exiting after this returns).
        self.gate.close().await;
        tracing::info!("scylla store closed");
        Ok(())
    }
}

#[async_trait]
impl GroupStore for ScyllaStore {
    async fn commit_group(&self, write: GroupWrite) -> Result<(), StoreError> {
        let _admitted = self.gate.enter().await?;
        let rows = self.group_rows(&write)?;
        self.write_rows(rows, &[], &write.group_id).await
    }

    async fn last_group_seqs(&self, groups: &[GroupId]) -> Result<Vec<u64>, StoreError> {
        self.last_seqs_of(LogKind::Group, groups).await
    }

    async fn groups_of(&self, account: &str) -> Result<Vec<GroupId>, StoreError> {
        fits("member_groups", account)?;
        self.ids(
            &self.st.list_member_groups,
            account,
            "reading member groups",
        )
        .await
    }

    async fn load_group(&self, id: &str) -> Result<Option<GroupSnapshot>, StoreError> {
        fits("groups", id)?;
        let Some(record) = self
            .record(&self.st.get_group, (id,), &format!("groups/{id}"))
            .await?
        else {
            return Ok(None);
        };
        let (requests_key, bindings_key) = (
            format!("binding_requests/{id}"),
            format!("bindings_by_group/{id}"),
        );
        let (members, requests, bindings, last_seq) = tokio::try_join!(
            self.ids(&self.st.list_group_members, id, "reading group members"),
            self.records(&self.st.list_requests, (id,), &requests_key),
            self.records(&self.st.list_bindings_by_group, (id,), &bindings_key),
            self.last_seq(LogKind::Group, id),
        )?;
        Ok(Some(GroupSnapshot {
            record,
            members,
            requests,
            bindings,
            last_seq,
        }))
    }

    async fn read_group_events(
        &self,
        id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.read_log(LogKind::Group, &self.st.read_group_events, id, after, limit)
            .await
    }

    async fn list_messages(
        &self,
        id: &str,
        before: Option<&FeedPos>,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        self.feed_page(
            FeedKind::Messages,
            &self.st.page_messages,
            &self.st.page_messages_before,
            id,
            0,
            before,
            limit,
        )
        .await
    }
}

#[async_trait]
impl CommunityStore for ScyllaStore {
    async fn commit_community(&self, write: CommunityWrite) -> Result<(), StoreError> {
        let _admitted = self.gate.enter().await?;
        let rows = self.community_rows(&write)?;
        self.write_rows(rows, &[], &write.community_id).await
    }

    async fn load_community(&self, id: &str) -> Result<Option<CommunitySnapshot>, StoreError> {
        fits("communities", id)?;
        let Some(record) = self
            .record(&self.st.get_community, (id,), &format!("communities/{id}"))
            .await?
        else {
            return Ok(None);
        };
        let bindings_key = format!("bindings_by_community/{id}");
        let (members, bindings) = tokio::try_join!(
            self.ids(
                &self.st.list_community_members,
                id,
                "reading community members"
            ),
            self.records(&self.st.list_bindings_by_community, (id,), &bindings_key),
        )?;
        Ok(Some(CommunitySnapshot {
            record,
            members,
            bindings,
        }))
    }

    async fn find_server_key(&self, hash: &[u8; 32]) -> Result<Option<CommunityId>, StoreError> {
        self.find_hash(&self.st.get_server_key, hash, "reading server keys")
            .await
    }

    async fn list_dynamics(
        &self,
        id: &str,
        since_ms: u64,
        before: Option<&FeedPos>,
        limit: usize,
    ) -> Result<Vec<DynamicRecord>, StoreError> {
        self.feed_page(
            FeedKind::Dynamics,
            &self.st.page_dynamics,
            &self.st.page_dynamics_before,
            id,
            since_ms,
            before,
            limit,
        )
        .await
    }
}

#[async_trait]
impl OwnerStore for ScyllaStore {
    async fn claim_owner(&self, kind: ActorKind, id: &str) -> Result<u64, StoreError> {
        self.claim(kind, id).await
    }
}

#[async_trait]
impl StepStore for ScyllaStore {
    /// Each shard's oldest `limit` (a shard is ordered by step id), merged.
    async fn pending_steps(&self, limit: usize) -> Result<Vec<StepRecord>, StoreError> {
        let mut out: Vec<StepRecord> = Vec::new();
        for shard in 0..OUTBOX_SHARDS {
            let what = format!("steps/{shard}");
            let rows: Vec<(Vec<u8>,)> = self
                .all_rows(&self.st.list_steps, (shard,), limit, &what)
                .await?;
            for (bytes,) in rows {
                out.push(decode(&what, &bytes)?);
            }
        }
        out.sort_by(|a, b| a.step_id.cmp(&b.step_id));
        out.truncate(limit);
        Ok(out)
    }

    async fn settle_step(&self, step_id: &str, rest: Option<StepRecord>) -> Result<(), StoreError> {
        let _admitted = self.gate.enter().await?;
        let rows = self.settle_rows(step_id, rest.as_ref())?;
        self.write_rows(rows, &[], step_id).await
    }
}
