//! Messages of the Community actor.

use actix::Message;

use crate::error::Result;
use crate::groups_model::{CommunityRecord, DynamicRecord, GroupId};
use crate::model::AccountId;

/// Read the community's record.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<CommunityRecord>")]
pub struct GetCommunity;

/// The community server adds a member (idempotent).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<()>")]
pub struct AddCommunityMember {
    pub account: AccountId,
}

/// The community server posts a member's dynamic: stored once in the community feed.
/// Answers it and the groups bound now, for the caller to deliver to.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(DynamicRecord, Vec<GroupId>)>")]
pub struct PostDynamic {
    pub account_id: AccountId,
    pub kind: String,
    pub text: String,
}

/// A binding was approved (already durable on both sides): start delivering to the group.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<()>")]
pub struct BindingAdded {
    pub group_id: GroupId,
}

/// A binding ended (already durable): stop delivering to the group.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<()>")]
pub struct BindingRemoved {
    pub group_id: GroupId,
}
