//! IM groups: creation, members, chat, the group's log, the owner's side of the binding
//! handshake, and the merged dynamics of bound communities.

use super::Chorus;
use super::retention::{after_horizon, checked_read};
use crate::actor::community::{BindingAdded, BindingRemoved};
use crate::actor::group::{
    AddMember, ApproveBinding, GetGroup, ListBindingRequests, LogAccess, MemberAccess, PostMessage,
    RejectBinding, RemoveMember, RevokeBinding,
};
use crate::actor::place::ActorKind;
use crate::error::{Error, Result};
use crate::model::{
    BindingRequest, DynamicRecord, FeedPos, GroupId, GroupRecord, GroupView, MessageRecord, Page,
    PageRequest, Revoker, new_id, now_ms,
};
use crate::push::event::StoredEvent;
use crate::store::GroupWrite;

impl Chorus {
    /// Creates a group (name checked by [`crate::model::limits::check_name`]) owned and
    /// joined by `owner`.
    pub async fn create_group(&self, owner: &str, name: String) -> Result<GroupId> {
        let group_id = new_id();
        let mut write = GroupWrite::new(&group_id);
        write.record = Some(GroupRecord {
            group_id: group_id.clone(),
            name,
            owner: owner.to_owned(),
            created_ms: now_ms(),
        });
        write.members_add.push(owner.to_owned());
        self.store().commit_group(write).await?;
        self.directory
            .env()
            .relay
            .membership(owner, &group_id, true);
        Ok(group_id)
    }

    /// The group as a member sees it.
    pub async fn group(&self, viewer: &str, group_id: &str) -> Result<GroupView> {
        self.directory
            .ask_group(
                group_id,
                GetGroup {
                    viewer: viewer.to_owned(),
                },
            )
            .await
    }

    /// The owner adds an existing account to the group.
    pub async fn add_group_member(&self, by: &str, group_id: &str, account: &str) -> Result<()> {
        self.directory.exists(ActorKind::Group, group_id).await?;
        if self.store().load_account(account).await?.is_none() {
            return Err(Error::NotFound("account"));
        }
        self.directory
            .ask_group(
                group_id,
                AddMember {
                    by: by.to_owned(),
                    account: account.to_owned(),
                },
            )
            .await
    }

    /// The owner removes a member, or a member leaves.
    pub async fn remove_group_member(
        &self,
        by: &str,
        group_id: &str,
        account: String,
    ) -> Result<()> {
        self.directory
            .ask_group(
                group_id,
                RemoveMember {
                    by: by.to_owned(),
                    account,
                },
            )
            .await
    }

    /// A member posts a chat message (checked by [`crate::model::limits::check_text`]);
    /// every member's devices get `group.message`.
    pub async fn post_message(
        &self,
        by: &str,
        group_id: &str,
        text: String,
    ) -> Result<MessageRecord> {
        self.admit_publish()?;
        self.directory
            .ask_group(
                group_id,
                PostMessage {
                    by: by.to_owned(),
                    text,
                },
            )
            .await
    }

    /// Up to `limit` (checked by [`crate::model::limits::events_limit`]) of the group's
    /// stored events with `seq > after`, oldest first (members only). The group's actor
    /// checks the membership; the events are read from the store here (everything
    /// acknowledged is there), so they do not cross between nodes.
    pub async fn group_events(
        &self,
        viewer: &str,
        group_id: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        let head = self
            .directory
            .ask_group(
                group_id,
                LogAccess {
                    viewer: viewer.to_owned(),
                },
            )
            .await?;
        let Some(since) = after else {
            // From the oldest event kept: where a reader starts again after a resync.
            return self.read_group_page(group_id, 0, limit).await;
        };
        let (from, read) = checked_read(since, limit);
        let page = self.read_group_page(group_id, from, read).await?;
        after_horizon(since, page, limit, head)
    }

    /// A page of the group's chat, newest first (members only).
    pub async fn list_messages(
        &self,
        viewer: &str,
        group_id: &str,
        page: &PageRequest,
    ) -> Result<Page<MessageRecord>> {
        self.directory
            .ask_group(
                group_id,
                MemberAccess {
                    viewer: viewer.to_owned(),
                },
            )
            .await?;
        let items = self
            .store()
            .list_messages(group_id, page.before.as_ref(), page.limit + 1)
            .await?;
        Ok(Page::cut(items, page.limit, |m| FeedPos {
            ms: m.created_ms,
            id: m.message_id.clone(),
        }))
    }

    /// The owner lists pending, unexpired binding requests, newest first, one page at a time
    /// (the group holds at most its cap of them, so the actor answers them all and the page
    /// is cut here).
    pub async fn binding_requests(
        &self,
        by: &str,
        group_id: &str,
        page: &PageRequest,
    ) -> Result<Page<BindingRequest>> {
        let pending = self
            .directory
            .ask_group(group_id, ListBindingRequests { by: by.to_owned() })
            .await?;
        let pos = |r: &BindingRequest| FeedPos {
            ms: r.created_ms,
            id: r.request_id.clone(),
        };
        let items: Vec<BindingRequest> = pending
            .into_iter()
            .filter(|r| page.before.as_ref().is_none_or(|before| pos(r) < *before))
            .take(page.limit + 1)
            .collect();
        Ok(Page::cut(items, page.limit, pos))
    }

    /// The owner approves a request: stored on both sides at once (one atomic write, so no
    /// step is left for the community's side), members get `binding.approved`, and the
    /// community's live actor learns of it. Approving the same request again while its
    /// binding stands succeeds.
    pub async fn approve_binding(&self, by: &str, group_id: &str, request_id: &str) -> Result<()> {
        let binding = self
            .directory
            .ask_group(
                group_id,
                ApproveBinding {
                    by: by.to_owned(),
                    request_id: request_id.to_owned(),
                },
            )
            .await?;
        self.directory
            .ask_community(
                &binding.community_id,
                BindingAdded {
                    group_id: group_id.to_owned(),
                },
            )
            .await
    }

    /// The owner rejects a request; the owner's devices get `binding.rejected` (a step stored
    /// with the rejection).
    pub async fn reject_binding(&self, by: &str, group_id: &str, request_id: &str) -> Result<()> {
        let step = self
            .directory
            .ask_group(
                group_id,
                RejectBinding {
                    by: by.to_owned(),
                    request_id: request_id.to_owned(),
                },
            )
            .await?;
        self.carry(Some(step)).await;
        Ok(())
    }

    /// Ends a binding, by the owner or the community; members get `binding.revoked`.
    pub async fn revoke_binding(
        &self,
        group_id: &str,
        community_id: &str,
        by: Revoker,
    ) -> Result<()> {
        self.directory
            .ask_group(
                group_id,
                RevokeBinding {
                    by,
                    community_id: community_id.to_owned(),
                },
            )
            .await?;
        match self
            .directory
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

    /// The merged dynamics of every community bound to the group, each from the time of its
    /// binding on, newest first (members only).
    pub async fn list_group_dynamics(
        &self,
        viewer: &str,
        group_id: &str,
        page: &PageRequest,
    ) -> Result<Page<DynamicRecord>> {
        let bindings = self
            .directory
            .ask_group(
                group_id,
                MemberAccess {
                    viewer: viewer.to_owned(),
                },
            )
            .await?;
        let mut merged = Vec::new();
        for binding in bindings {
            let feed = self
                .store()
                .list_dynamics(
                    &binding.community_id,
                    binding.since_ms,
                    page.before.as_ref(),
                    page.limit + 1,
                )
                .await?;
            merged.extend(feed);
        }
        merged.sort_by(|a, b| (b.created_ms, &b.dynamic_id).cmp(&(a.created_ms, &a.dynamic_id)));
        Ok(Page::cut(merged, page.limit, |d| FeedPos {
            ms: d.created_ms,
            id: d.dynamic_id.clone(),
        }))
    }
}
