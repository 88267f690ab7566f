//! The one cursor of a device (contract revision 2): where it stands in its account's log
//! (`seq`) and in each of its groups' logs (`group_seq`). `hello` tells a device the heads
//! of its groups ([`Chorus::group_heads`]); `resume` with `groups` replays each listed
//! group's events after the device's cursor for it ([`Chorus::resume_groups`], then
//! [`Chorus::resume_group_events`] and [`Chorus::read_group_log`] page by page).
//!
//! Everything is read from the store where the device is, as the account's own replay is:
//! everything acknowledged is there, on every node, so no actor is asked (membership is the
//! `groups_of` index, written with the membership itself). Group frames stored by versions
//! before revision 2 carry `seq` instead of `group_seq`; they are rewritten as they are read
//! ([`current_group_frame`]).

use super::Chorus;
use super::retention::{after_horizon, checked_read};
use crate::error::Result;
use crate::model::GroupId;
use crate::model::limits::{MAX_CURSOR_GROUPS, MAX_EVENTS_PAGE};
use crate::push::event::{StoredEvent, current_group_frame};

/// The groups of an account as its `hello` lists them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupHeads {
    /// Up to [`MAX_CURSOR_GROUPS`] groups (the first by id) and their newest `group_seq`.
    pub heads: Vec<(GroupId, u64)>,
    /// The account is in more groups than are listed.
    pub more: bool,
}

/// Where the replay of one group starts and where it stands now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStart {
    pub group_id: GroupId,
    /// The device's cursor: it has every event up to here.
    pub after: u64,
    /// The group's newest `group_seq` when the resume was checked.
    pub head: u64,
}

/// What a `resume` with groups is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeGroups {
    /// Every group is one of the account's: replay them, in this order.
    Replay(Vec<GroupStart>),
    /// This group is not one of the account's (unknown, or the account is not, or no
    /// longer, a member): nothing is replayed.
    NotMember(GroupId),
}

impl Chorus {
    /// The account's groups and their heads, for `hello`: at most [`MAX_CURSOR_GROUPS`],
    /// the first by group id, and whether there are more.
    pub async fn group_heads(&self, account: &str) -> Result<GroupHeads> {
        let mut groups = self.store().groups_of(account).await?;
        groups.sort_unstable();
        let more = groups.len() > MAX_CURSOR_GROUPS;
        groups.truncate(MAX_CURSOR_GROUPS);
        let seqs = self.store().last_group_seqs(&groups).await?;
        Ok(GroupHeads {
            heads: groups.into_iter().zip(seqs).collect(),
            more,
        })
    }

    /// Checks a `resume`'s `groups` (the caller has checked their shape and number):
    /// every one must be a group of `account`. Answers where each replay starts, in the
    /// order given, with the group's head now.
    pub async fn resume_groups(
        &self,
        account: &str,
        cursors: Vec<(GroupId, u64)>,
    ) -> Result<ResumeGroups> {
        let mine = self.store().groups_of(account).await?;
        if let Some((gid, _)) = cursors.iter().find(|(gid, _)| !mine.contains(gid)) {
            return Ok(ResumeGroups::NotMember(gid.clone()));
        }
        let ids: Vec<GroupId> = cursors.iter().map(|(gid, _)| gid.clone()).collect();
        let heads = self.store().last_group_seqs(&ids).await?;
        Ok(ResumeGroups::Replay(
            cursors
                .into_iter()
                .zip(heads)
                .map(|((group_id, after), head)| GroupStart {
                    group_id,
                    after,
                    head,
                })
                .collect(),
        ))
    }

    /// The first page of a group's replay from `since`: like [`Chorus::read_group_log`],
    /// or `resync_required` when events after `since` were trimmed (`super::retention`).
    /// `head` is the group's head as [`Chorus::resume_groups`] read it.
    pub async fn resume_group_events(
        &self,
        group_id: &str,
        since: u64,
        head: u64,
    ) -> Result<Vec<StoredEvent>> {
        let (after, limit) = checked_read(since, MAX_EVENTS_PAGE);
        let page = self.read_group_page(group_id, after, limit).await?;
        after_horizon(since, page, MAX_EVENTS_PAGE, head)
    }

    /// Up to [`MAX_EVENTS_PAGE`] events of the group's log with `group_seq > after`, oldest
    /// first, in the current frame shape (a full page means more may follow).
    pub async fn read_group_log(&self, group_id: &str, after: u64) -> Result<Vec<StoredEvent>> {
        self.read_group_page(group_id, after, MAX_EVENTS_PAGE).await
    }

    /// A page of the group's log as stored, each frame brought to the current shape.
    pub(super) async fn read_group_page(
        &self,
        group_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        let page = self
            .store()
            .read_group_events(group_id, after, limit)
            .await?;
        Ok(page
            .into_iter()
            .map(|event| current_group_frame(group_id, event))
            .collect())
    }
}
