//! Communities: creation by a client, then the community server's side: members, dynamics
//! (stored once, pushed to every bound group) and binding requests.

use super::Chorus;
use crate::actor::community::{AddMember, GetCommunity, PostDynamic};
use crate::actor::group::ReceiveBindingRequest;
use crate::error::{Error, Result};
use crate::model::{CommunityId, CommunityRecord, DynamicRecord, new_id, now_ms};
use crate::store::CommunityWrite;

impl Chorus {
    /// Creates a community (name checked by [`crate::model::limits::check_name`]);
    /// `server_key_hash` is the SHA-256 of the key shown once to the creator.
    pub async fn create_community(
        &self,
        creator: &str,
        name: String,
        server_key_hash: [u8; 32],
    ) -> Result<CommunityId> {
        let community_id = new_id();
        let mut write = CommunityWrite::new(&community_id);
        write.record = Some(CommunityRecord {
            community_id: community_id.clone(),
            name,
            creator: creator.to_owned(),
            created_ms: now_ms(),
        });
        write.server_key_hash = Some(server_key_hash);
        self.store().commit_community(write).await?;
        Ok(community_id)
    }

    /// The community whose server key hashes to `key_hash`.
    pub async fn community_of_key(&self, key_hash: &[u8; 32]) -> Result<Option<CommunityId>> {
        Ok(self.store().find_server_key(key_hash).await?)
    }

    /// The community server adds an existing account as a member.
    pub async fn add_community_member(&self, community_id: &str, account: &str) -> Result<()> {
        if self.store().load_account(account).await?.is_none() {
            return Err(Error::NotFound("account"));
        }
        self.directory
            .ask_community(
                community_id,
                AddMember {
                    account: account.to_owned(),
                },
            )
            .await
    }

    /// Stores a dynamic once (kind and text checked by [`crate::model::limits`]) with the step
    /// that pushes it through every group bound now, then carries that out. Answers after
    /// every bound group has stored it and handed it to fan-out (normally), and in any case
    /// once they are sure to.
    pub async fn post_dynamic(
        &self,
        community_id: &str,
        account_id: &str,
        kind: String,
        text: String,
    ) -> Result<DynamicRecord> {
        self.admit_publish()?;
        let (dynamic, step) = self
            .directory
            .ask_community(
                community_id,
                PostDynamic {
                    account_id: account_id.to_owned(),
                    kind,
                    text,
                },
            )
            .await?;
        self.carry(step).await;
        Ok(dynamic)
    }

    /// A community asks to bind to a group (note checked by
    /// [`crate::model::limits::check_note`]); the request reaches the owner's devices as
    /// `binding.requested` (and the owner's log, for offline devices).
    pub async fn request_binding(
        &self,
        community_id: &str,
        group_id: &str,
        note: Option<String>,
    ) -> Result<String> {
        let community = self
            .directory
            .ask_community(community_id, GetCommunity)
            .await?;
        let (request, step) = self
            .directory
            .ask_group(
                group_id,
                ReceiveBindingRequest {
                    community_id: community_id.to_owned(),
                    community_name: community.name,
                    note,
                },
            )
            .await?;
        self.carry(Some(step)).await;
        Ok(request.request_id)
    }
}
