//! The storage the actors need, declared here and implemented per engine in the server crate
//! (embedded fjall, and ScyllaDB). One conformance suite, `conformance` (feature
//! `conformance`), checks any implementation.
//!
//! Writes are change sets ([`SubscriberWrite`]): everything one actor turn changes — its
//! record, its edges, uniqueness claims, new tokens, and the events it emits — lands in one
//! atomic, durable write. That is what lets an actor acknowledge (answer 2xx, hand out an event
//! `seq`) only after its state is on disk, with no half-applied turn after a crash.

use async_trait::async_trait;

use crate::actor::place::ActorKind;
use crate::error::StoreError;
use crate::model::{
    AccountId, AccountRecord, ActivityRecord, Binding, BindingRequest, Claim, CommunityId,
    CommunityRecord, DynamicRecord, FeedPos, GroupId, GroupRecord, MessageRecord, ReleaseRecord,
    StepRecord,
};
use crate::push::event::StoredEvent;

/// Kinds of edge from one account to another (or to one of its links).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EdgeKind {
    /// A confirmed friend.
    Friend,
    /// A pending friend request from the other account.
    RequestIn,
    /// This account's uploaded contacts matched the other account.
    Matched,
    /// A linked platform account; the "other" id is the link id and the value a JSON
    /// [`crate::model::LinkRecord`].
    Link,
    /// A live bearer token of the account: the "other" id is the hex of its selector (the
    /// first half of its SHA-256, which alone authenticates nothing) and the value the time
    /// it was issued. Written and removed only with its index entry ([`SubscriberWrite::grant_token`],
    /// [`SubscriberWrite::revoke_token`]), so the account's actor knows its tokens (to cap
    /// them and to log one out) without a scan of the index.
    Token,
}

impl EdgeKind {
    /// All kinds, for implementations that iterate them.
    pub const ALL: [EdgeKind; 5] = [
        EdgeKind::Friend,
        EdgeKind::RequestIn,
        EdgeKind::Matched,
        EdgeKind::Link,
        EdgeKind::Token,
    ];

    /// A stable one-byte tag for key encodings.
    pub fn tag(self) -> u8 {
        match self {
            EdgeKind::Friend => b'f',
            EdgeKind::RequestIn => b'i',
            EdgeKind::Matched => b'm',
            EdgeKind::Link => b'l',
            EdgeKind::Token => b't',
        }
    }

    /// The inverse of [`EdgeKind::tag`].
    pub fn from_tag(tag: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.tag() == tag)
    }
}

/// One stored edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    pub kind: EdgeKind,
    pub other: String,
    /// Opaque to the store: a creation time for relations, a JSON record for links.
    pub value: Vec<u8>,
}

/// A change to one edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeChange {
    Put(Edge),
    Delete { kind: EdgeKind, other: String },
}

/// Everything one actor turn of one account changes, applied atomically and durably.
#[derive(Debug, Clone, Default)]
pub struct SubscriberWrite {
    pub account: AccountId,
    /// The new account record, if it changed.
    pub record: Option<AccountRecord>,
    /// Claims to take. Each must be free or already held by this account; if any is held by
    /// another account the whole write is rejected with [`StoreError::ClaimTaken`].
    pub claims: Vec<Claim>,
    /// Claims to give up (ignored where not held by this account).
    pub unclaims: Vec<Claim>,
    pub edges: Vec<EdgeChange>,
    /// New bearer tokens of this account, indexed by their hash (with
    /// [`SubscriberWrite::grant_token`], which adds the token's edge too).
    pub tokens: Vec<TokenGrant>,
    /// Selectors of tokens whose index entries go (with [`SubscriberWrite::revoke_token`]).
    pub tokens_revoked: Vec<TokenSelector>,
    /// Events to append; their `seq`s must continue the log without gaps.
    pub events: Vec<StoredEvent>,
    /// New activities of this account: stored by id, in the account's feed, and under their
    /// idempotency key if they have one.
    pub activities: Vec<ActivityRecord>,
    /// Releases to create or update (the outbox). The store keeps an index of those not
    /// final, so [`SubscriberStore::pending_releases`] finds them after a restart.
    pub outbox: Vec<ReleaseRecord>,
    /// The remaining steps of the operation this write starts ([`StepStore`]).
    pub steps: Vec<StepRecord>,
    /// The writer's epoch of this actor in cluster mode ([`crate::actor::place`]): the store
    /// refuses the write ([`StoreError::Fenced`]) unless it is still the newest. `None` on a
    /// single node.
    pub epoch: Option<u64>,
}

impl SubscriberWrite {
    /// An empty change set for `account`.
    pub fn new(account: &str) -> Self {
        Self {
            account: account.to_owned(),
            ..Self::default()
        }
    }

    /// True when applying it would change nothing.
    pub fn is_empty(&self) -> bool {
        self.record.is_none()
            && self.claims.is_empty()
            && self.unclaims.is_empty()
            && self.edges.is_empty()
            && self.tokens.is_empty()
            && self.tokens_revoked.is_empty()
            && self.events.is_empty()
            && self.activities.is_empty()
            && self.outbox.is_empty()
            && self.steps.is_empty()
    }

    /// Issues a token: its index entry (hash -> account, issue time) and its
    /// [`EdgeKind::Token`] edge, in this one write.
    pub fn grant_token(&mut self, hash: [u8; 32], issued_ms: u64) {
        let grant = TokenGrant { hash, issued_ms };
        self.edges.push(EdgeChange::Put(Edge {
            kind: EdgeKind::Token,
            other: grant.selector().to_hex(),
            value: issued_ms.to_be_bytes().to_vec(),
        }));
        self.tokens.push(grant);
    }

    /// Ends a token: its index entry and its edge go in this one write.
    pub fn revoke_token(&mut self, selector: TokenSelector) {
        self.edges.push(EdgeChange::Delete {
            kind: EdgeKind::Token,
            other: selector.to_hex(),
        });
        self.tokens_revoked.push(selector);
    }
}

/// A token issued: the SHA-256 of the bearer token (the store keeps its first half as the
/// lookup key, the selector, and compares the second half in constant time) and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    pub hash: [u8; 32],
    pub issued_ms: u64,
}

impl TokenGrant {
    /// The index key of this token.
    pub fn selector(&self) -> TokenSelector {
        TokenSelector::of(&self.hash)
    }
}

/// The first half of a token's SHA-256: the key of its index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenSelector(pub [u8; 16]);

impl TokenSelector {
    /// The selector of the token whose SHA-256 is `hash`.
    pub fn of(hash: &[u8; 32]) -> Self {
        let mut selector = [0u8; 16];
        selector.copy_from_slice(&hash[..16]);
        TokenSelector(selector)
    }

    /// Lower-case hex, as the token's edge names it.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The inverse of [`TokenSelector::to_hex`].
    pub fn from_hex(text: &str) -> Option<Self> {
        if text.len() != 32 || !text.is_ascii() {
            return None;
        }
        let mut selector = [0u8; 16];
        for (i, byte) in selector.iter_mut().enumerate() {
            *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(TokenSelector(selector))
    }
}

/// Whose a token is, and since when ([`SubscriberStore::find_token`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenOwner {
    pub account: AccountId,
    pub issued_ms: u64,
}

/// Events to append to one account's log, in a write of many accounts' appends
/// ([`SubscriberStore::append_events`]): `seq`s continue that log without gaps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogAppend {
    pub account: AccountId,
    pub events: Vec<StoredEvent>,
    /// The writer's epoch of this actor in cluster mode ([`crate::actor::place`]): the store
    /// refuses the write ([`StoreError::Fenced`]) unless it is still the newest. `None` on a
    /// single node.
    pub epoch: Option<u64>,
}

/// Everything an actor needs to activate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberSnapshot {
    pub record: AccountRecord,
    pub edges: Vec<Edge>,
    /// The seq of the newest event (0 if none).
    pub last_seq: u64,
}

/// Storage of accounts: records, edges, claims, tokens and each account's event log.
#[async_trait]
pub trait SubscriberStore: Send + Sync + 'static {
    /// Applies `write` atomically; returns once it is durable.
    async fn commit(&self, write: SubscriberWrite) -> Result<(), StoreError>;

    /// The record alone (cheap; used for listings and lookups).
    async fn load_account(&self, id: &str) -> Result<Option<AccountRecord>, StoreError>;

    /// Record, edges and log position, to activate an actor.
    async fn load_subscriber(&self, id: &str) -> Result<Option<SubscriberSnapshot>, StoreError>;

    /// The account holding `claim`, if any.
    async fn find_claim(&self, claim: &Claim) -> Result<Option<AccountId>, StoreError>;

    /// The account a token hash belongs to and when it was issued, if it is indexed.
    /// Implementations compare the stored hash with `hash` in constant time. Whether it is
    /// still alive is the caller's rule ([`crate::model::Caps::token_alive`]).
    async fn find_token(&self, hash: &[u8; 32]) -> Result<Option<TokenOwner>, StoreError>;

    /// Appends events to many accounts' logs in one write: one event to each friend of an
    /// account whose profile changed, with one group commit (one sync) for all of them instead
    /// of one write per friend. Each append's `seq`s must continue its account's log. Answers
    /// once every append is durable: one result per append, in order.
    ///
    /// The embedded store applies them all or none. ScyllaDB applies each account's append
    /// atomically behind that log's seq fence, independently of the others (one logged batch
    /// cannot hold thousands of partitions). An append whose result is an error may still land
    /// when its outcome is unknown (a timeout), so its caller reads that log's head again
    /// ([`SubscriberStore::last_seqs`]) before appending to it.
    async fn append_events(&self, appends: Vec<LogAppend>) -> Vec<Result<(), StoreError>>;

    /// The newest `seq` of each account's log (0 if it has none), in the order asked: the same
    /// head [`SubscriberStore::load_subscriber`] answers as `last_seq`, without the rest.
    async fn last_seqs(&self, accounts: &[AccountId]) -> Result<Vec<u64>, StoreError>;

    /// Events with `seq > after`, oldest first, at most `limit`.
    async fn read_events(
        &self,
        id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// One activity by id.
    async fn load_activity(&self, id: &str) -> Result<Option<ActivityRecord>, StoreError>;

    /// The activity `account` posted with idempotency key `key`, if any.
    async fn find_activity_by_key(
        &self,
        account: &str,
        key: &str,
    ) -> Result<Option<ActivityRecord>, StoreError>;

    /// `account`'s activities strictly older than `before` (all if `None`), newest first.
    async fn list_activities(
        &self,
        account: &str,
        before: Option<&FeedPos>,
        limit: usize,
    ) -> Result<Vec<ActivityRecord>, StoreError>;

    /// Every release of one activity, ordered by link id.
    async fn list_releases(&self, activity_id: &str) -> Result<Vec<ReleaseRecord>, StoreError>;

    /// Every release that is not final (`pending` or `retrying`): what a restarted server
    /// must carry on with.
    async fn pending_releases(&self) -> Result<Vec<ReleaseRecord>, StoreError>;

    /// Removes the events of account and group logs that are older than `horizon_ms`
    /// (event-log retention), always keeping each log's newest event; answers how many
    /// went. An engine that expires events by itself answers 0 and does nothing here (the
    /// CQL store writes each event with a TTL).
    async fn trim_logs(&self, horizon_ms: u64) -> Result<usize, StoreError> {
        let _ = horizon_ms;
        Ok(0)
    }

    /// Flushes everything acknowledged so far and stops accepting writes (graceful shutdown).
    async fn close(&self) -> Result<(), StoreError>;
}

/// Everything one Group actor turn changes, applied atomically and durably.
#[derive(Debug, Clone, Default)]
pub struct GroupWrite {
    pub group_id: GroupId,
    pub record: Option<GroupRecord>,
    pub members_add: Vec<AccountId>,
    pub members_remove: Vec<AccountId>,
    pub requests_put: Vec<BindingRequest>,
    /// Request ids to delete.
    pub requests_remove: Vec<String>,
    /// Written under the group and under the community in the same atomic write, so the
    /// two sides never disagree about a binding, even across a crash.
    pub bindings_put: Vec<Binding>,
    /// Community ids whose binding with this group ends (both sides).
    pub bindings_remove: Vec<CommunityId>,
    pub messages: Vec<MessageRecord>,
    /// Group events (frames shared by every member); `seq`s continue the group's log.
    pub events: Vec<StoredEvent>,
    /// The remaining steps of the operation this write starts ([`StepStore`]).
    pub steps: Vec<StepRecord>,
    /// The writer's epoch of this actor in cluster mode ([`crate::actor::place`]): the store
    /// refuses the write ([`StoreError::Fenced`]) unless it is still the newest. `None` on a
    /// single node.
    pub epoch: Option<u64>,
}

impl GroupWrite {
    pub fn new(group_id: &str) -> Self {
        Self {
            group_id: group_id.to_owned(),
            ..Self::default()
        }
    }
}

/// What a Group actor activates from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSnapshot {
    pub record: GroupRecord,
    pub members: Vec<AccountId>,
    pub requests: Vec<BindingRequest>,
    pub bindings: Vec<Binding>,
    pub last_seq: u64,
}

/// Storage of IM groups: record, members, binding requests, bindings, chat feed, event log.
#[async_trait]
pub trait GroupStore: Send + Sync + 'static {
    async fn commit_group(&self, write: GroupWrite) -> Result<(), StoreError>;
    async fn load_group(&self, id: &str) -> Result<Option<GroupSnapshot>, StoreError>;
    /// Group events with `seq > after`, oldest first.
    async fn read_group_events(
        &self,
        id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError>;
    /// The heads (newest `group_seq`, 0 for none) of `groups`' logs, in order: what a
    /// device's `hello` lists and where a `resume` of a group stops being a replay.
    async fn last_group_seqs(&self, groups: &[GroupId]) -> Result<Vec<u64>, StoreError>;
    /// The groups `account` is a member of (an index written with the membership itself),
    /// so a node where the account has devices knows which groups' events to take.
    async fn groups_of(&self, account: &str) -> Result<Vec<GroupId>, StoreError>;
    /// Chat messages strictly older than `before` (all if `None`), newest first.
    async fn list_messages(
        &self,
        id: &str,
        before: Option<&FeedPos>,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError>;
}

/// Everything one Community actor turn changes, applied atomically and durably.
#[derive(Debug, Clone, Default)]
pub struct CommunityWrite {
    pub community_id: CommunityId,
    pub record: Option<CommunityRecord>,
    /// SHA-256 of the community server's key, indexed so a key finds its community.
    pub server_key_hash: Option<[u8; 32]>,
    pub members_add: Vec<AccountId>,
    pub dynamics: Vec<DynamicRecord>,
    /// The remaining steps of the operation this write starts ([`StepStore`]).
    pub steps: Vec<StepRecord>,
    /// The writer's epoch of this actor in cluster mode ([`crate::actor::place`]): the store
    /// refuses the write ([`StoreError::Fenced`]) unless it is still the newest. `None` on a
    /// single node.
    pub epoch: Option<u64>,
}

impl CommunityWrite {
    pub fn new(community_id: &str) -> Self {
        Self {
            community_id: community_id.to_owned(),
            ..Self::default()
        }
    }
}

/// What a Community actor activates from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommunitySnapshot {
    pub record: CommunityRecord,
    pub members: Vec<AccountId>,
    /// Read from the community side of the binding index.
    pub bindings: Vec<Binding>,
}

/// Storage of communities: record, server key, members, dynamics feed.
#[async_trait]
pub trait CommunityStore: Send + Sync + 'static {
    async fn commit_community(&self, write: CommunityWrite) -> Result<(), StoreError>;
    async fn load_community(&self, id: &str) -> Result<Option<CommunitySnapshot>, StoreError>;
    /// The community whose server key hashes to `hash` (compared in constant time).
    async fn find_server_key(&self, hash: &[u8; 32]) -> Result<Option<CommunityId>, StoreError>;
    /// Dynamics created at or after `since_ms` and strictly older than `before`, newest first.
    async fn list_dynamics(
        &self,
        id: &str,
        since_ms: u64,
        before: Option<&FeedPos>,
        limit: usize,
    ) -> Result<Vec<DynamicRecord>, StoreError>;
}

/// The outbox of cross-actor steps ([`crate::model::step`]): a step is written in the same
/// atomic write as the first step of its operation (the `steps` of [`SubscriberWrite`],
/// [`GroupWrite`] and [`CommunityWrite`]), and settled here once carried out.
#[async_trait]
pub trait StepStore: Send + Sync + 'static {
    /// Up to `limit` steps not settled yet, oldest first (by `step_id`).
    async fn pending_steps(&self, limit: usize) -> Result<Vec<StepRecord>, StoreError>;

    /// Removes the step `step_id` (`rest` is `None`: it is done), or replaces it with what is
    /// left of it; durable when it answers. Settling a step that is not stored stores `rest`
    /// (or nothing).
    async fn settle_step(&self, step_id: &str, rest: Option<StepRecord>) -> Result<(), StoreError>;
}

/// Who may write an actor: the epoch of its owner (cluster mode, [`crate::actor::place`]).
#[async_trait]
pub trait OwnerStore: Send + Sync + 'static {
    /// Takes `kind`/`id` over for this node: moves its epoch one past the newest and answers
    /// the new epoch. From then on a write naming an older epoch is refused
    /// ([`StoreError::Fenced`]). Only the CQL store can: the embedded store is single-node
    /// and answers [`StoreError::Backend`].
    ///
    /// Epochs start at 1 (the first claim) and only rise. A refusal's `now` is the epoch the
    /// store holds, 0 if the actor was never claimed; a `now` equal to the write's own epoch
    /// means the write's check answered too late to trust (the CQL store's fence bound).
    /// Claims racing for one actor each get an epoch of their own; one that keeps losing
    /// answers [`StoreError::Unavailable`]. Claim before loading the actor, so the load sees
    /// everything the previous owner wrote.
    async fn claim_owner(&self, kind: ActorKind, id: &str) -> Result<u64, StoreError>;
}

/// Every store the actors need, as one object.
pub trait Store: SubscriberStore + GroupStore + CommunityStore + StepStore + OwnerStore {}

impl<T: SubscriberStore + GroupStore + CommunityStore + StepStore + OwnerStore> Store for T {}

/// The conformance suite every [`Store`] must pass. An engine runs it with
/// `chorus_actors::conformance_tests!(module, fixture())`, one `#[tokio::test]` per check, each
/// on a fresh store its `conformance::Fixture` opens (and opens again, to check durability
/// across a reopen).
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
