//! Messages of the Subscriber actor: one struct per intent. Each documents who sends it and
//! what it changes; every change is persisted before the reply (see `Subscriber::persist`).

use std::collections::BTreeMap;
use std::sync::Arc;

use actix::Message;
use serde::Serialize;

use crate::activity_model::{ActivityRecord, DeliveryRecord, ReleaseView};
use crate::error::Result;
use crate::event::{EventType, Outlet, StoredEvent};
use crate::model::{AccountId, LinkRecord, Profile};

/// An account as another account (or itself) sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountView {
    pub account_id: AccountId,
    pub profile: Profile,
    pub profile_version: u64,
}

/// A platform link as clients see it: never its config (which may hold secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkView {
    pub link_id: String,
    pub platform: String,
    pub handle: String,
}

impl From<&LinkRecord> for LinkView {
    fn from(l: &LinkRecord) -> Self {
        LinkView {
            link_id: l.link_id.clone(),
            platform: l.platform.clone(),
            handle: l.handle.clone(),
        }
    }
}

/// `GET /v1/me`: the account's own full view.
#[derive(Debug, Clone, Serialize)]
pub struct MeView {
    pub account_id: AccountId,
    pub profile: Profile,
    pub profile_version: u64,
    pub platforms: Vec<LinkView>,
}

/// Read the account as `viewer` may see it (email/phone only for itself and friends).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<AccountView>")]
pub struct GetAccount {
    pub viewer: Option<AccountId>,
}

/// Read the account's own view, links included.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<MeView>")]
pub struct GetMe;

/// Apply a profile patch (`None` clears a field). Emits `profile.updated` to the account's own
/// devices; the caller fans it out to the returned friends.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<ProfileChanged>")]
pub struct UpdateProfile {
    pub changes: BTreeMap<String, Option<String>>,
}

/// What a profile update did.
#[derive(Debug, Clone)]
pub struct ProfileChanged {
    pub profile_version: u64,
    /// The `profile.updated` data, encoded once; empty `changes` means nothing changed.
    pub data: Option<Arc<str>>,
    pub friends: Vec<AccountId>,
}

/// Store a new bearer token's hash for the account (login).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<()>")]
pub struct AddToken {
    pub hash: [u8; 32],
}

/// A device connected: deliver this account's events to it from now on. Answers the newest
/// seq, for the `hello` frame.
#[derive(Clone, Message)]
#[rtype(result = "Result<u64>")]
pub struct Attach {
    pub outlet: Arc<dyn Outlet>,
}

/// A device disconnected.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<()>")]
pub struct Detach {
    pub outlet_id: u64,
}

/// Read stored events with `seq > after` (for `resume`).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<StoredEvent>>")]
pub struct ReadEvents {
    pub after: u64,
    pub limit: usize,
}

/// Append an event that happened elsewhere (a friend's profile change) to this account's log
/// and push it to its devices. `data` is shared by every recipient.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<u64>")]
pub struct Notify {
    pub kind: EventType,
    pub data: Arc<str>,
}

/// Link a platform account (uniqueness of (platform, handle) is claimed atomically).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<()>")]
pub struct LinkPlatform {
    pub link: LinkRecord,
}

/// Remove a platform link and release its handle.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<()>")]
pub struct UnlinkPlatform {
    pub link_id: String,
}

/// The requester's side of a friend request: checks it may be sent. If the other account had
/// already asked us, we become friends here and answer [`RequestOutcome::Mutual`].
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<RequestOutcome>")]
pub struct StartFriendRequest {
    pub to: AccountId,
}

/// Outcome of [`StartFriendRequest`].
#[derive(Debug, Clone)]
pub enum RequestOutcome {
    /// Deliver the request to the recipient; carries the requester's public view.
    Pending(AccountView),
    /// The recipient had asked first: we are friends now; tell the recipient.
    Mutual,
}

/// The recipient's side: record a pending request and emit `friend.requested`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<()>")]
pub struct ReceiveFriendRequest {
    pub from: AccountView,
}

/// The recipient accepts a pending request from `from`: becomes friends, emits `friend.added`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<()>")]
pub struct AcceptFriend {
    pub from: AccountId,
}

/// The other side of an accepted request or a mutual match: become friends (idempotent).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<()>")]
pub struct BecomeFriends {
    pub with: AccountId,
}

/// End a friendship from this side; `NotFound` if there is none.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<()>")]
pub struct Unfriend {
    pub other: AccountId,
}

/// The other side of [`Unfriend`] (idempotent).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<()>")]
pub struct DropFriend {
    pub other: AccountId,
}

/// Remember which accounts this account's uploaded contacts matched. Answers those that are
/// not friends already (suggestions, and candidates for a mutual match).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<AccountId>>")]
pub struct RecordMatches {
    pub matched: Vec<AccountId>,
}

/// `other`'s contacts matched this account. If this account had matched `other` too, they
/// become friends here and the answer is `true`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<bool>")]
pub struct MatchedBy {
    pub other: AccountId,
}

/// Which relation to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    Friends,
    IncomingRequests,
    Suggestions,
}

/// List related accounts with the time the relation began (ms), for paging newest first.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<(u64, AccountId)>>")]
pub struct ListRelation {
    pub relation: Relation,
}

/// Post an activity (`POST /v1/me/activities`). Stores it, one delivery per linked platform
/// and `activity.posted` in the author's log in one atomic write, then hands the deliveries to
/// the releaser; the caller fans `activity.posted` out to the returned friends. With an
/// `idempotency_key` seen before, answers the first activity and changes nothing.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Posted>")]
pub struct PostActivity {
    pub text: String,
    pub idempotency_key: Option<String>,
}

/// What posting did.
#[derive(Debug, Clone)]
pub struct Posted {
    pub activity: ActivityRecord,
    /// One per linked platform, as stored now.
    pub releases: Vec<ReleaseView>,
    /// True when the idempotency key matched an earlier post: nothing was stored or released.
    pub replayed: bool,
    /// Friends to tell, and the `activity.posted` data encoded once (`None` for a replay).
    pub friends: Vec<AccountId>,
    pub data: Option<Arc<str>>,
}

/// Sent by the Releaser after an attempt: store the delivery's new state and tell the
/// author's devices (`release.status`), in one write.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<()>")]
pub struct RecordRelease {
    pub delivery: DeliveryRecord,
}

/// May `viewer` read this account's activities? Itself and its friends may.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<bool>")]
pub struct CanSeeActivities {
    pub viewer: AccountId,
}
