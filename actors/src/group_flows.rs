//! Flows around groups and communities: creation, the binding handshake, dynamic delivery
//! and the merged feed. As in [`crate::flows`], each step is one durable actor turn, and no
//! actor waits for another.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::event::{EventType, encode_data};
use crate::flows::{MAX_PAGE, Page};
use crate::groups_model::{
    CommunityRecord, DynamicRecord, FeedPos, GroupId, GroupRecord, MessageRecord,
};
use crate::messages::*;
use crate::model::now_ms;
use crate::registry::Registry;
use crate::store::{CommunityWrite, GroupWrite};

pub(crate) fn parse_cursor(before: Option<&str>) -> Result<Option<FeedPos>> {
    before
        .map(|c| {
            FeedPos::parse(c)
                .ok_or_else(|| Error::invalid("before is not a cursor this list returned"))
        })
        .transpose()
}

impl Registry {
    /// Creates a group owned (and joined) by `owner`.
    pub async fn create_group(&self, owner: &str, name: String) -> Result<GroupId> {
        let group_id = crate::ids::new_id();
        let mut write = GroupWrite::new(&group_id);
        write.record = Some(GroupRecord {
            group_id: group_id.clone(),
            name,
            owner: owner.to_owned(),
            created_ms: now_ms(),
        });
        write.members_add.push(owner.to_owned());
        self.store().commit_group(write).await?;
        Ok(group_id)
    }

    /// The owner adds an existing account to the group.
    pub async fn add_group_member(&self, by: &str, group_id: &str, account: &str) -> Result<()> {
        self.group(group_id).await?;
        if self.store().load_account(account).await?.is_none() {
            return Err(Error::NotFound("account"));
        }
        self.ask_group(
            group_id,
            AddMember {
                by: by.to_owned(),
                account: account.to_owned(),
            },
        )
        .await
    }

    /// Creates a community; `server_key_hash` is the SHA-256 of the key shown once to the
    /// creator.
    pub async fn create_community(
        &self,
        creator: &str,
        name: String,
        server_key_hash: [u8; 32],
    ) -> Result<String> {
        let community_id = crate::ids::new_id();
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

    /// The community server adds an existing account as a member.
    pub async fn add_community_member(&self, community_id: &str, account: &str) -> Result<()> {
        if self.store().load_account(account).await?.is_none() {
            return Err(Error::NotFound("account"));
        }
        self.ask_community(
            community_id,
            AddCommunityMember {
                account: account.to_owned(),
            },
        )
        .await
    }

    /// Stores a dynamic once, then delivers it to every group bound now. Answers after every
    /// bound group has stored and handed it to fan-out.
    pub async fn post_dynamic(
        &self,
        community_id: &str,
        account_id: &str,
        kind: String,
        text: String,
    ) -> Result<DynamicRecord> {
        let (dynamic, groups) = self
            .ask_community(
                community_id,
                PostDynamic {
                    account_id: account_id.to_owned(),
                    kind,
                    text,
                },
            )
            .await?;
        let shared = Arc::new(dynamic.clone());
        for group_id in groups {
            let msg = DeliverDynamic {
                dynamic: shared.clone(),
            };
            if let Err(e) = self.ask_group(&group_id, msg).await {
                tracing::warn!(group = %group_id, community = %community_id, error = %e, "dynamic not delivered");
            }
        }
        Ok(dynamic)
    }

    /// A community asks to bind to a group; the request reaches the owner's devices as
    /// `binding.requested` (and the owner's log, for offline devices).
    pub async fn request_binding(
        &self,
        community_id: &str,
        group_id: &str,
        note: Option<String>,
    ) -> Result<String> {
        let community = self.ask_community(community_id, GetCommunity).await?;
        let (request, owner) = self
            .ask_group(
                group_id,
                ReceiveBindingRequest {
                    community_id: community_id.to_owned(),
                    community_name: community.name,
                    note,
                },
            )
            .await?;
        let data = encode_data(&request);
        self.ask(
            &owner,
            Notify {
                kind: EventType::BINDING_REQUESTED,
                data,
            },
        )
        .await?;
        Ok(request.request_id)
    }

    /// The owner approves a request: stored on both sides at once, members get
    /// `binding.approved`, and the community starts delivering.
    pub async fn approve_binding(&self, by: &str, group_id: &str, request_id: &str) -> Result<()> {
        let binding = self
            .ask_group(
                group_id,
                ApproveBinding {
                    by: by.to_owned(),
                    request_id: request_id.to_owned(),
                },
            )
            .await?;
        self.ask_community(
            &binding.community_id,
            BindingAdded {
                group_id: group_id.to_owned(),
            },
        )
        .await
    }

    /// The owner rejects a request; the owner's devices get `binding.rejected`.
    pub async fn reject_binding(&self, by: &str, group_id: &str, request_id: &str) -> Result<()> {
        let request = self
            .ask_group(
                group_id,
                RejectBinding {
                    by: by.to_owned(),
                    request_id: request_id.to_owned(),
                },
            )
            .await?;
        let data = encode_data(&serde_json::json!({
            "group_id": &request.group_id,
            "community_id": &request.community_id,
            "request_id": &request.request_id,
        }));
        self.ask(
            by,
            Notify {
                kind: EventType::BINDING_REJECTED,
                data,
            },
        )
        .await?;
        Ok(())
    }

    /// Ends a binding, by the owner or the community; members get `binding.revoked`.
    pub async fn revoke_binding(
        &self,
        group_id: &str,
        community_id: &str,
        by: Revoker,
    ) -> Result<()> {
        self.ask_group(
            group_id,
            RevokeBinding {
                by,
                community_id: community_id.to_owned(),
            },
        )
        .await?;
        match self
            .ask_community(
                community_id,
                BindingRemoved {
                    group_id: group_id.to_owned(),
                },
            )
            .await
        {
            Err(Error::NotFound(_)) => Ok(()),
            other => other,
        }
    }

    /// A page of the group's chat, newest first (members only).
    pub async fn list_messages(
        &self,
        viewer: &str,
        group_id: &str,
        limit: usize,
        before: Option<&str>,
    ) -> Result<Page<MessageRecord>> {
        let before = parse_cursor(before)?;
        self.ask_group(
            group_id,
            MemberAccess {
                viewer: viewer.to_owned(),
            },
        )
        .await?;
        let limit = limit.clamp(1, MAX_PAGE);
        let mut items = self
            .store()
            .list_messages(group_id, before.as_ref(), limit + 1)
            .await?;
        let next = cut(&mut items, limit, |m| FeedPos {
            ms: m.created_ms,
            id: m.message_id.clone(),
        });
        Ok(Page { items, next })
    }

    /// The merged dynamics of every community bound to the group, each from the time of its
    /// binding on, newest first (members only).
    pub async fn list_group_dynamics(
        &self,
        viewer: &str,
        group_id: &str,
        limit: usize,
        before: Option<&str>,
    ) -> Result<Page<DynamicRecord>> {
        let before = parse_cursor(before)?;
        let bindings = self
            .ask_group(
                group_id,
                MemberAccess {
                    viewer: viewer.to_owned(),
                },
            )
            .await?;
        let limit = limit.clamp(1, MAX_PAGE);
        let mut merged = Vec::new();
        for binding in bindings {
            let feed = self
                .store()
                .list_dynamics(
                    &binding.community_id,
                    binding.since_ms,
                    before.as_ref(),
                    limit + 1,
                )
                .await?;
            merged.extend(feed);
        }
        merged.sort_by(|a, b| (b.created_ms, &b.dynamic_id).cmp(&(a.created_ms, &a.dynamic_id)));
        let next = cut(&mut merged, limit, |d| FeedPos {
            ms: d.created_ms,
            id: d.dynamic_id.clone(),
        });
        Ok(Page {
            items: merged,
            next,
        })
    }
}

/// Truncates a newest-first list read with one extra item to `limit`, answering the cursor
/// of the last kept item when more remain.
pub(crate) fn cut<T>(
    items: &mut Vec<T>,
    limit: usize,
    pos: impl Fn(&T) -> FeedPos,
) -> Option<String> {
    if items.len() > limit {
        items.truncate(limit);
        items.last().map(|last| pos(last).cursor())
    } else {
        None
    }
}
