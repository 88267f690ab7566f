//! Messages of the Group actor.

use std::sync::Arc;

use actix::Message;
use serde::Serialize;

use crate::error::Result;
use crate::groups_model::{
    Binding, BindingRequest, CommunityId, DynamicRecord, GroupId, MessageRecord,
};
use crate::model::AccountId;

/// A group as its members see it.
#[derive(Debug, Clone, Serialize)]
pub struct GroupView {
    pub group_id: GroupId,
    pub name: String,
    pub owner: AccountId,
    pub members: Vec<AccountId>,
    pub bindings: Vec<CommunityId>,
}

/// Read the group (members only).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<GroupView>")]
pub struct GetGroup {
    pub viewer: AccountId,
}

/// Check that `viewer` is a member; answers the group's bindings (for the merged feed).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<Binding>>")]
pub struct MemberAccess {
    pub viewer: AccountId,
}

/// The owner adds an account (idempotent).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<()>")]
pub struct AddMember {
    pub by: AccountId,
    pub account: AccountId,
}

/// The owner removes a member, or a member leaves.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<()>")]
pub struct RemoveMember {
    pub by: AccountId,
    pub account: AccountId,
}

/// A member posts a chat message; stored, then pushed to every member as `group.message`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<MessageRecord>")]
pub struct PostMessage {
    pub by: AccountId,
    pub text: String,
}

/// A community asks to bind. Answers the stored request and the owner to notify.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(BindingRequest, AccountId)>")]
pub struct ReceiveBindingRequest {
    pub community_id: CommunityId,
    pub community_name: String,
    pub note: Option<String>,
}

/// The owner lists pending, unexpired requests.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<BindingRequest>>")]
pub struct ListBindingRequests {
    pub by: AccountId,
}

/// The owner approves: the binding is stored on both sides at once and members get
/// `binding.approved`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Binding>")]
pub struct ApproveBinding {
    pub by: AccountId,
    pub request_id: String,
}

/// The owner rejects; answers the request (the caller tells the owner's devices).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<BindingRequest>")]
pub struct RejectBinding {
    pub by: AccountId,
    pub request_id: String,
}

/// Who ends a binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoker {
    /// The group owner (a client token).
    Owner(AccountId),
    /// The community's server (its `server_key`).
    Community(CommunityId),
}

/// End a binding; members get `binding.revoked`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<()>")]
pub struct RevokeBinding {
    pub by: Revoker,
    pub community_id: CommunityId,
}

/// A bound community's member posted a dynamic: push it to every member as `group.dynamic`
/// (ignored if the binding ended meanwhile).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<()>")]
pub struct DeliverDynamic {
    pub dynamic: Arc<DynamicRecord>,
}

/// Read stored group events with `seq > after` (the group's own `resume`).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<crate::event::StoredEvent>>")]
pub struct ReadGroupEvents {
    pub viewer: AccountId,
    pub after: u64,
    pub limit: usize,
}
