//! An in-memory [`Store`] for the in-process cluster tests: one shared by every node, with
//! the fences of the CQL store (a write naming an epoch that is not the newest is refused,
//! and so is an unfenced write of an actor some node claimed, so a test sees any write that
//! does not come from the owner; an append must continue its log).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;

use crate::actor::place::ActorKind;
use crate::error::StoreError;
use crate::model::{
    AccountId, AccountRecord, ActivityRecord, Binding, BindingRequest, Claim, CommunityId,
    CommunityRecord, DynamicRecord, FeedPos, GroupId, GroupRecord, MessageRecord, ReleaseRecord,
    StepRecord,
};
use crate::push::event::StoredEvent;
use crate::store::{
    CommunitySnapshot, CommunityStore, CommunityWrite, Edge, EdgeChange, EdgeKind, GroupSnapshot,
    GroupStore, GroupWrite, LogAppend, OwnerStore, StepStore, SubscriberSnapshot, SubscriberStore,
    SubscriberWrite, TokenOwner, TokenSelector,
};

#[derive(Default)]
struct Group {
    record: Option<GroupRecord>,
    members: BTreeSet<AccountId>,
    requests: BTreeMap<String, BindingRequest>,
    bindings: BTreeMap<CommunityId, Binding>,
    messages: Vec<MessageRecord>,
    events: Vec<StoredEvent>,
}

#[derive(Default)]
struct Community {
    record: Option<CommunityRecord>,
    members: BTreeSet<AccountId>,
    dynamics: Vec<DynamicRecord>,
}

#[derive(Default)]
struct State {
    accounts: HashMap<AccountId, AccountRecord>,
    edges: HashMap<AccountId, BTreeMap<(EdgeKind, String), Vec<u8>>>,
    claims: HashMap<String, AccountId>,
    tokens: HashMap<[u8; 32], TokenOwner>,
    events: HashMap<AccountId, Vec<StoredEvent>>,
    activities: HashMap<String, ActivityRecord>,
    activity_keys: HashMap<(AccountId, String), String>,
    releases: BTreeMap<(String, String), ReleaseRecord>,
    groups: HashMap<GroupId, Group>,
    communities: HashMap<CommunityId, Community>,
    server_keys: HashMap<[u8; 32], CommunityId>,
    steps: BTreeMap<String, StepRecord>,
    epochs: HashMap<(ActorKind, String), u64>,
}

impl State {
    /// Refuses a write of `kind`/`id` unless it names the newest epoch (none if unclaimed).
    fn fence(&self, kind: ActorKind, id: &str, epoch: Option<u64>) -> Result<(), StoreError> {
        let now = self.epochs.get(&(kind, id.to_owned())).copied();
        if now == epoch || now.is_none() {
            return Ok(());
        }
        Err(StoreError::Fenced {
            log: format!("{}:{id}", kind.token()),
            epoch: epoch.unwrap_or_default(),
            now: now.unwrap_or_default(),
        })
    }

    /// Refuses `events` unless they continue `log` (whose newest seq is `head`).
    fn continues(log: &str, head: u64, events: &[StoredEvent]) -> Result<(), StoreError> {
        match events.first() {
            Some(first) if first.seq != head + 1 => Err(StoreError::LogMoved {
                log: log.to_owned(),
                expected: first.seq - 1,
                head: Some(head),
            }),
            _ => Ok(()),
        }
    }

    fn last_seq(&self, account: &str) -> u64 {
        self.events
            .get(account)
            .and_then(|e| e.last())
            .map_or(0, |e| e.seq)
    }
}

/// Newest first by `(ms, id)`, strictly before `before`, at most `limit`.
fn page<T: Clone>(
    items: impl Iterator<Item = T>,
    pos: impl Fn(&T) -> FeedPos,
    before: Option<&FeedPos>,
    limit: usize,
) -> Vec<T> {
    let mut items: Vec<T> = items
        .filter(|item| before.is_none_or(|b| pos(item) < *b))
        .collect();
    items.sort_by_key(|item| std::cmp::Reverse(pos(item)));
    items.truncate(limit);
    items
}

/// The store.
#[derive(Default)]
pub struct MemStore {
    state: Mutex<State>,
    /// While set, every append to many logs fails (unavailable).
    pub fail_appends: AtomicBool,
}

impl MemStore {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The events of `account`'s log.
    pub fn events(&self, account: &str) -> Vec<StoredEvent> {
        self.state()
            .events
            .get(account)
            .cloned()
            .unwrap_or_default()
    }

    /// Moves the epoch of `kind`/`id` one past the newest and answers it (a claim).
    pub fn claim(&self, kind: ActorKind, id: &str) -> u64 {
        let mut s = self.state();
        let epoch = s.epochs.entry((kind, id.to_owned())).or_default();
        *epoch += 1;
        *epoch
    }

    /// The newest epoch of `kind`/`id`, if claimed.
    pub fn epoch(&self, kind: ActorKind, id: &str) -> Option<u64> {
        self.state().epochs.get(&(kind, id.to_owned())).copied()
    }
}

#[async_trait]
impl SubscriberStore for MemStore {
    async fn commit(&self, w: SubscriberWrite) -> Result<(), StoreError> {
        let mut s = self.state();
        s.fence(ActorKind::Account, &w.account, w.epoch)?;
        for claim in &w.claims {
            if s.claims.get(&claim.0).is_some_and(|a| *a != w.account) {
                return Err(StoreError::ClaimTaken(claim.0.clone()));
            }
        }
        let head = s.last_seq(&w.account);
        State::continues(&format!("a:{}", w.account), head, &w.events)?;
        if let Some(record) = w.record {
            s.accounts.insert(w.account.clone(), record);
        }
        for claim in w.claims {
            s.claims.insert(claim.0, w.account.clone());
        }
        for claim in w.unclaims {
            if s.claims.get(&claim.0) == Some(&w.account) {
                s.claims.remove(&claim.0);
            }
        }
        let edges = s.edges.entry(w.account.clone()).or_default();
        for change in w.edges {
            match change {
                EdgeChange::Put(e) => {
                    edges.insert((e.kind, e.other), e.value);
                }
                EdgeChange::Delete { kind, other } => {
                    edges.remove(&(kind, other));
                }
            }
        }
        for grant in w.tokens {
            let owner = TokenOwner {
                account: w.account.clone(),
                issued_ms: grant.issued_ms,
            };
            s.tokens.insert(grant.hash, owner);
        }
        for selector in w.tokens_revoked {
            s.tokens
                .retain(|hash, _| TokenSelector::of(hash) != selector);
        }
        s.events
            .entry(w.account.clone())
            .or_default()
            .extend(w.events);
        for a in w.activities {
            if let Some(key) = &a.idempotency_key {
                s.activity_keys
                    .insert((w.account.clone(), key.clone()), a.activity_id.clone());
            }
            s.activities.insert(a.activity_id.clone(), a);
        }
        for r in w.outbox {
            s.releases
                .insert((r.activity_id.clone(), r.link.link_id.clone()), r);
        }
        for step in w.steps {
            s.steps.insert(step.step_id.clone(), step);
        }
        Ok(())
    }

    async fn load_account(&self, id: &str) -> Result<Option<AccountRecord>, StoreError> {
        Ok(self.state().accounts.get(id).cloned())
    }

    async fn load_subscriber(&self, id: &str) -> Result<Option<SubscriberSnapshot>, StoreError> {
        let s = self.state();
        Ok(s.accounts.get(id).map(|record| SubscriberSnapshot {
            record: record.clone(),
            edges: s
                .edges
                .get(id)
                .map(|e| {
                    e.iter()
                        .map(|((kind, other), value)| Edge {
                            kind: *kind,
                            other: other.clone(),
                            value: value.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            last_seq: s.last_seq(id),
        }))
    }

    async fn find_claim(&self, claim: &Claim) -> Result<Option<AccountId>, StoreError> {
        Ok(self.state().claims.get(&claim.0).cloned())
    }

    async fn find_token(&self, hash: &[u8; 32]) -> Result<Option<TokenOwner>, StoreError> {
        Ok(self.state().tokens.get(hash).cloned())
    }

    async fn append_events(&self, appends: Vec<LogAppend>) -> Vec<Result<(), StoreError>> {
        let mut s = self.state();
        let failing = self.fail_appends.load(Ordering::Relaxed);
        appends
            .into_iter()
            .map(|a| {
                if failing {
                    return Err(StoreError::Unavailable("appends fail (test)".into()));
                }
                s.fence(ActorKind::Account, &a.account, a.epoch)?;
                let head = s.last_seq(&a.account);
                State::continues(&format!("a:{}", a.account), head, &a.events)?;
                s.events.entry(a.account).or_default().extend(a.events);
                Ok(())
            })
            .collect()
    }

    async fn last_seqs(&self, accounts: &[AccountId]) -> Result<Vec<u64>, StoreError> {
        let s = self.state();
        Ok(accounts.iter().map(|a| s.last_seq(a)).collect())
    }

    async fn read_events(
        &self,
        id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let events = self.events(id);
        Ok(events
            .into_iter()
            .filter(|e| e.seq > after)
            .take(limit)
            .collect())
    }

    async fn load_activity(&self, id: &str) -> Result<Option<ActivityRecord>, StoreError> {
        Ok(self.state().activities.get(id).cloned())
    }

    async fn find_activity_by_key(
        &self,
        account: &str,
        key: &str,
    ) -> Result<Option<ActivityRecord>, StoreError> {
        let s = self.state();
        Ok(s.activity_keys
            .get(&(account.to_owned(), key.to_owned()))
            .and_then(|id| s.activities.get(id))
            .cloned())
    }

    async fn list_activities(
        &self,
        account: &str,
        before: Option<&FeedPos>,
        limit: usize,
    ) -> Result<Vec<ActivityRecord>, StoreError> {
        let s = self.state();
        let mine = s
            .activities
            .values()
            .filter(|a| a.account_id == account)
            .cloned();
        let pos = |a: &ActivityRecord| FeedPos {
            ms: a.created_ms,
            id: a.activity_id.clone(),
        };
        Ok(page(mine, pos, before, limit))
    }

    async fn list_releases(&self, activity_id: &str) -> Result<Vec<ReleaseRecord>, StoreError> {
        let s = self.state();
        Ok(s.releases
            .values()
            .filter(|r| r.activity_id == activity_id)
            .cloned()
            .collect())
    }

    async fn pending_releases(&self) -> Result<Vec<ReleaseRecord>, StoreError> {
        let s = self.state();
        Ok(s.releases
            .values()
            .filter(|r| !r.status.is_final())
            .cloned()
            .collect())
    }

    async fn close(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[async_trait]
impl GroupStore for MemStore {
    async fn commit_group(&self, w: GroupWrite) -> Result<(), StoreError> {
        let mut s = self.state();
        s.fence(ActorKind::Group, &w.group_id, w.epoch)?;
        let head = s
            .groups
            .get(&w.group_id)
            .and_then(|g| g.events.last())
            .map_or(0, |e| e.seq);
        State::continues(&format!("g:{}", w.group_id), head, &w.events)?;
        let g = s.groups.entry(w.group_id.clone()).or_default();
        if let Some(record) = w.record {
            g.record = Some(record);
        }
        g.members.extend(w.members_add);
        for m in &w.members_remove {
            g.members.remove(m);
        }
        for r in w.requests_put {
            g.requests.insert(r.request_id.clone(), r);
        }
        for r in &w.requests_remove {
            g.requests.remove(r);
        }
        for b in w.bindings_put {
            g.bindings.insert(b.community_id.clone(), b);
        }
        for c in &w.bindings_remove {
            g.bindings.remove(c);
        }
        g.messages.extend(w.messages);
        g.events.extend(w.events);
        for step in w.steps {
            s.steps.insert(step.step_id.clone(), step);
        }
        Ok(())
    }

    async fn load_group(&self, id: &str) -> Result<Option<GroupSnapshot>, StoreError> {
        let s = self.state();
        Ok(s.groups.get(id).and_then(|g| {
            Some(GroupSnapshot {
                record: g.record.clone()?,
                members: g.members.iter().cloned().collect(),
                requests: g.requests.values().cloned().collect(),
                bindings: g.bindings.values().cloned().collect(),
                last_seq: g.events.last().map_or(0, |e| e.seq),
            })
        }))
    }

    async fn read_group_events(
        &self,
        id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let s = self.state();
        Ok(s.groups
            .get(id)
            .map(|g| {
                g.events
                    .iter()
                    .filter(|e| e.seq > after)
                    .take(limit)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn last_group_seqs(&self, groups: &[GroupId]) -> Result<Vec<u64>, StoreError> {
        let s = self.state();
        Ok(groups
            .iter()
            .map(|id| {
                s.groups
                    .get(id)
                    .and_then(|g| g.events.last())
                    .map_or(0, |e| e.seq)
            })
            .collect())
    }

    async fn groups_of(&self, account: &str) -> Result<Vec<GroupId>, StoreError> {
        let s = self.state();
        Ok(s.groups
            .iter()
            .filter(|(_, g)| g.members.contains(account))
            .map(|(id, _)| id.clone())
            .collect())
    }

    async fn list_messages(
        &self,
        id: &str,
        before: Option<&FeedPos>,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let s = self.state();
        let all = s
            .groups
            .get(id)
            .map(|g| g.messages.clone())
            .unwrap_or_default();
        let pos = |m: &MessageRecord| FeedPos {
            ms: m.created_ms,
            id: m.message_id.clone(),
        };
        Ok(page(all.into_iter(), pos, before, limit))
    }
}

#[async_trait]
impl CommunityStore for MemStore {
    async fn commit_community(&self, w: CommunityWrite) -> Result<(), StoreError> {
        let mut s = self.state();
        s.fence(ActorKind::Community, &w.community_id, w.epoch)?;
        if let Some(hash) = w.server_key_hash {
            s.server_keys.insert(hash, w.community_id.clone());
        }
        let c = s.communities.entry(w.community_id.clone()).or_default();
        if let Some(record) = w.record {
            c.record = Some(record);
        }
        c.members.extend(w.members_add);
        c.dynamics.extend(w.dynamics);
        for step in w.steps {
            s.steps.insert(step.step_id.clone(), step);
        }
        Ok(())
    }

    async fn load_community(&self, id: &str) -> Result<Option<CommunitySnapshot>, StoreError> {
        let s = self.state();
        let bindings: Vec<Binding> = s
            .groups
            .values()
            .filter_map(|g| g.bindings.get(id).cloned())
            .collect();
        Ok(s.communities.get(id).and_then(|c| {
            Some(CommunitySnapshot {
                record: c.record.clone()?,
                members: c.members.iter().cloned().collect(),
                bindings,
            })
        }))
    }

    async fn find_server_key(&self, hash: &[u8; 32]) -> Result<Option<CommunityId>, StoreError> {
        Ok(self.state().server_keys.get(hash).cloned())
    }

    async fn list_dynamics(
        &self,
        id: &str,
        since_ms: u64,
        before: Option<&FeedPos>,
        limit: usize,
    ) -> Result<Vec<DynamicRecord>, StoreError> {
        let s = self.state();
        let all = s
            .communities
            .get(id)
            .map(|c| c.dynamics.clone())
            .unwrap_or_default();
        let pos = |d: &DynamicRecord| FeedPos {
            ms: d.created_ms,
            id: d.dynamic_id.clone(),
        };
        let since = all.into_iter().filter(|d| d.created_ms >= since_ms);
        Ok(page(since, pos, before, limit))
    }
}

#[async_trait]
impl StepStore for MemStore {
    async fn pending_steps(&self, limit: usize) -> Result<Vec<StepRecord>, StoreError> {
        Ok(self.state().steps.values().take(limit).cloned().collect())
    }

    async fn settle_step(&self, step_id: &str, rest: Option<StepRecord>) -> Result<(), StoreError> {
        let mut s = self.state();
        match rest {
            Some(rest) => s.steps.insert(step_id.to_owned(), rest),
            None => s.steps.remove(step_id),
        };
        Ok(())
    }
}

#[async_trait]
impl OwnerStore for MemStore {
    async fn claim_owner(&self, kind: ActorKind, id: &str) -> Result<u64, StoreError> {
        Ok(self.claim(kind, id))
    }
}
