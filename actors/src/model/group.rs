//! IM groups and communities: records as stored, and the views and roles around them.

use serde::{Deserialize, Serialize};

use super::AccountId;

/// Group id: 32 hex characters.
pub type GroupId = String;
/// Community id: 32 hex characters.
pub type CommunityId = String;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub group_id: GroupId,
    pub name: String,
    pub owner: AccountId,
    pub created_ms: u64,
}

/// A community's request to bind to a group, pending until the owner answers or it expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BindingRequest {
    pub request_id: String,
    #[schema(value_type = String)]
    pub group_id: GroupId,
    #[schema(value_type = String)]
    pub community_id: CommunityId,
    pub community_name: String,
    pub note: Option<String>,
    pub created_ms: u64,
    pub expires_ms: u64,
}

/// An approved binding. Stored under the group and under the community in one atomic write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    pub group_id: GroupId,
    pub community_id: CommunityId,
    /// Dynamics from this time on show in the group.
    pub since_ms: u64,
    /// The request it was approved from, so that approving it again (a retry after a lost
    /// answer) answers the same binding instead of 404. Absent in bindings stored before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// A chat message of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MessageRecord {
    pub message_id: String,
    #[schema(value_type = String)]
    pub group_id: GroupId,
    #[schema(value_type = String)]
    pub account_id: AccountId,
    pub text: String,
    pub created_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommunityRecord {
    pub community_id: CommunityId,
    pub name: String,
    /// The account that created it.
    pub creator: AccountId,
    pub created_ms: u64,
}

/// One piece of dynamic info (a post, a status, a join) of a community member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DynamicRecord {
    pub dynamic_id: String,
    #[schema(value_type = String)]
    pub community_id: CommunityId,
    #[schema(value_type = String)]
    pub account_id: AccountId,
    pub kind: String,
    pub text: String,
    pub created_ms: u64,
}

/// A group as its members see it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GroupView {
    #[schema(value_type = String)]
    pub group_id: GroupId,
    pub name: String,
    #[schema(value_type = String)]
    pub owner: AccountId,
    #[schema(value_type = Vec<String>)]
    pub members: Vec<AccountId>,
    #[schema(value_type = Vec<String>)]
    pub bindings: Vec<CommunityId>,
}

/// Who ends a binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Revoker {
    /// The group owner (a client token).
    Owner(AccountId),
    /// The community's server (its `server_key`).
    Community(CommunityId),
}
