//! Account log heads: the one place an account's next `seq` comes from.
//!
//! An account's log is appended to by the account's own actor (the events of its turns) and by
//! fan-outs that append one event to many accounts' logs with a few store calls
//! ([`notify_each`]: a friend's profile change or post reaches thousands of friends with one
//! group commit on the embedded store, and without a message to each friend's actor). Both go through the log's [`LogHead`]: a lock
//! per account, taken before the events are numbered and held until they are durable and
//! pushed to the account's devices. So:
//!
//! - one holder at a time numbers events, from the head as the store has it: `seq`s follow
//!   1, 2, 3, … with no gap and no repeat;
//! - events reach devices in `seq` order (a device drops an event at or below one it has
//!   already been sent);
//! - a head whose write failed is forgotten, and the next holder reads it again from the store
//!   (the write may have landed). A head nobody has read yet is read the same way.
//!
//! At most one head per account exists in a process: [`LogHeads`] hands out the live one and
//! forgets it once nobody holds it. Across processes (the ScyllaDB store) the seq fence refuses
//! a write numbered from a stale head.
//!
//! In a cluster an account's log has one writer, the node that owns the account
//! ([`super::place`]): [`notify_each`] appends here only to the accounts this node owns and
//! hands the others to their owners (one call per owner node, `super::remote::notify`),
//! which append under their own heads. A head remembers the epoch its `seq` was read under
//! (every append names it, and the store refuses it once another node took the account over);
//! a seq read under another epoch is read again. An account's actor holds only its own head, and waits
//! for nothing else while it does; a fan-out takes heads in account order, waiting for a busy
//! one only while it holds smaller ones. So no two holders can wait for each other (two
//! fan-outs over overlapping friends follow one another in the same order).

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use dashmap::DashMap;
use futures_util::{StreamExt, stream};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::env::Env;
use super::place::{ActorKind, NodeId, Owner};
use super::remote::{self, NOT_OWNER_WAIT, notify::Moved};
use crate::error::StoreError;
use crate::model::step::{RECHECK_AFTER_MS, RECHECK_TAIL};
use crate::model::{AccountId, now_ms};
use crate::push::event::{EventType, StoredEvent, frame_with_data};
use crate::store::{LogAppend, Store};

type Registry = DashMap<AccountId, Weak<Mutex<Head>>>;

/// One account's log head; lock it to append.
pub type LogHead = Arc<Mutex<Head>>;

/// A held log head: nothing else numbers events of this log until it is dropped.
pub type LogGuard = OwnedMutexGuard<Head>;

/// The live log heads of this process, by account. Cheap to clone.
#[derive(Clone, Default)]
pub struct LogHeads {
    heads: Arc<Registry>,
}

impl LogHeads {
    /// The head of `account`'s log: the live one, or a new one (its `seq` not read yet).
    pub fn head(&self, account: &str) -> LogHead {
        if let Some(head) = self.heads.get(account).and_then(|w| w.upgrade()) {
            return head;
        }
        let entry = self.heads.entry(account.to_owned());
        if let dashmap::Entry::Occupied(live) = &entry
            && let Some(head) = live.get().upgrade()
        {
            return head;
        }
        let head = Arc::new(Mutex::new(Head {
            account: account.to_owned(),
            seq: None,
            epoch: None,
            registry: Arc::downgrade(&self.heads),
        }));
        entry.insert(Arc::downgrade(&head));
        head
    }
}

/// What a [`LogHead`] guards.
pub struct Head {
    account: AccountId,
    /// The newest `seq` of the log, once read from the store.
    seq: Option<u64>,
    /// The epoch of the account this node held when `seq` was read (cluster mode; `None` on
    /// a single node). Appends name it.
    epoch: Option<u64>,
    registry: Weak<Registry>,
}

impl Head {
    /// The newest `seq` for a writer holding `epoch`, reading it from the store if it is not
    /// known under that epoch (another epoch's may be stale: another node may have appended).
    pub async fn seq(&mut self, store: &dyn Store, epoch: Option<u64>) -> Result<u64, StoreError> {
        self.under(epoch);
        if let Some(seq) = self.seq {
            return Ok(seq);
        }
        let seq = store
            .last_seqs(std::slice::from_ref(&self.account))
            .await?
            .first()
            .copied()
            .unwrap_or_default();
        self.seq = Some(seq);
        Ok(seq)
    }

    /// The writer now holds `epoch`: a `seq` read under another one is read again.
    fn under(&mut self, epoch: Option<u64>) {
        if self.epoch != epoch {
            self.seq = None;
            self.epoch = epoch;
        }
    }

    /// Events up to `seq` are durable.
    pub fn advance(&mut self, seq: u64) {
        self.seq = Some(seq);
    }

    /// A write failed and may still land, or was fenced: read the head (and the epoch)
    /// again next time.
    pub fn forget(&mut self) {
        self.seq = None;
        self.epoch = None;
    }
}

impl Drop for Head {
    /// The last holder let go: drop the registry's entry, unless a new head replaced it.
    fn drop(&mut self) {
        if let Some(registry) = self.registry.upgrade() {
            registry.remove_if(&self.account, |_, head| head.strong_count() == 0);
        }
    }
}

/// One event for many accounts' logs ([`notify_each`]): a step's notify.
#[derive(Debug, Clone, Copy)]
pub struct Notice<'a> {
    pub kind: EventType,
    /// The event's data, encoded once.
    pub data: &'a str,
    /// A run after its step's first: a recipient whose log holds the event already (among
    /// its [`RECHECK_TAIL`] newest) is skipped.
    pub recheck: bool,
    /// When the step was written (ms).
    pub created_ms: u64,
}

impl Notice<'_> {
    /// Whether an append now must look for the event first: on a rerun, and in a cluster
    /// also on a first run that is late enough for a sweep elsewhere to have run the step
    /// ([`RECHECK_AFTER_MS`]). Decided under the heads, on the recipients' owner, so two runs
    /// of one step never both append (they queue on the head).
    fn rechecks(&self, clustered: bool) -> bool {
        self.recheck || (clustered && now_ms().saturating_sub(self.created_ms) >= RECHECK_AFTER_MS)
    }
}

/// Reads, with one store call, the `seq` of every held head that is not known.
async fn read_unknown(held: &mut [LogGuard], store: &dyn Store) -> Result<(), StoreError> {
    let unknown: Vec<AccountId> = held
        .iter()
        .filter(|h| h.seq.is_none())
        .map(|h| h.account.clone())
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let mut seqs = store.last_seqs(&unknown).await?.into_iter();
    for head in held.iter_mut().filter(|h| h.seq.is_none()) {
        head.seq = Some(seqs.next().unwrap_or_default());
    }
    Ok(())
}

/// Most accounts' appends one store call of [`notify_each`] carries. Each call's heads are
/// let go when it is done, so a store that takes a while per account (ScyllaDB: a Paxos round
/// each) does not hold thousands of heads for the whole fan-out, and the next fan-out to the
/// same accounts follows on behind; the embedded store's writer still commits the calls that
/// are waiting together, with one sync.
const APPENDS_PER_CALL: usize = 1024;

/// How many of those calls are under way at once.
const CALLS_IN_FLIGHT: usize = 4;

/// Claims (or reads from the cache) and reads of recipients' logs under way at once, per
/// call.
const READS_AT_ONCE: usize = 16;

/// How often recipients that moved between nodes while being told are sent on again.
const MOVED_HOPS: usize = 2;

/// Appends one event (`data` encoded once) to each account's log and pushes it to their
/// devices; answers the accounts whose append failed (logged; the caller's step keeps them
/// to retry), so one broken account does not keep the others from it.
///
/// On one node every append is made here ([`notify_here`]). In a cluster, here only for the
/// accounts this node owns; the others go to their owners, one call per owner node, and a
/// recipient that moved meanwhile is sent on to its new owner (at most [`MOVED_HOPS`] times).
pub async fn notify_each(env: &Env, to: &[AccountId], notice: Notice<'_>) -> Vec<AccountId> {
    if !env.placement.clustered() {
        return notify_here(env, to, notice).await;
    }
    let mut failed = Vec::new();
    let mut left: Vec<AccountId> = to.to_vec();
    for hop in 0..=MOVED_HOPS {
        if hop > 0 {
            tokio::time::sleep(NOT_OWNER_WAIT).await;
        }
        let mut here = Vec::new();
        let mut there: BTreeMap<NodeId, Vec<AccountId>> = BTreeMap::new();
        for account in left.drain(..) {
            match env.placement.owner(ActorKind::Account, &account) {
                Owner::Local => here.push(account),
                Owner::Remote(node) => there.entry(node).or_default().push(account),
            }
        }
        let remote = stream::iter(there)
            .map(|(node, accounts)| remote::notify::forward(env, node, accounts, notice))
            .buffer_unordered(CALLS_IN_FLIGHT)
            .collect::<Vec<Moved>>();
        let (local, remote) = futures_util::join!(notify_here(env, &here, notice), remote);
        failed.extend(local);
        for moved in remote {
            failed.extend(moved.failed);
            left.extend(moved.moved);
        }
        if left.is_empty() {
            break;
        }
    }
    failed.extend(left);
    failed
}

/// [`notify_each`] for accounts whose logs this node writes. Takes the heads in account
/// order, handing them to store calls of up to [`APPENDS_PER_CALL`] as it goes (and at once
/// when the next head is busy, so the heads it holds are not kept waiting); waits for a busy
/// head only holding smaller ones, which is what keeps two fan-outs from waiting for each
/// other. Answers once every append is durable or has failed.
pub async fn notify_here(env: &Env, to: &[AccountId], notice: Notice<'_>) -> Vec<AccountId> {
    let mut order: Vec<&AccountId> = to.iter().collect();
    order.sort_unstable();
    order.dedup();
    let (calls, waiting) = tokio::sync::mpsc::channel::<Vec<LogGuard>>(1);
    let take = async move {
        let mut held = Vec::with_capacity(APPENDS_PER_CALL.min(order.len()));
        for id in order {
            let head = env.logs.head(id);
            let guard = match head.clone().try_lock_owned() {
                Ok(guard) => guard,
                Err(_) => {
                    if !held.is_empty() && calls.send(std::mem::take(&mut held)).await.is_err() {
                        return;
                    }
                    head.lock_owned().await
                }
            };
            held.push(guard);
            if held.len() == APPENDS_PER_CALL
                && calls.send(std::mem::take(&mut held)).await.is_err()
            {
                return;
            }
        }
        if !held.is_empty() {
            let _ = calls.send(held).await;
        }
    };
    let append = stream::unfold(waiting, |mut waiting| async move {
        waiting.recv().await.map(|held| (held, waiting))
    })
    .map(|held| append_call(env, held, notice))
    .buffer_unordered(CALLS_IN_FLIGHT)
    .concat();
    let ((), failed) = futures_util::join!(take, append);
    failed
}

/// Sorts `held` by `outcome`: the heads it keeps, and the accounts of those it refused
/// (logged as `what`).
fn keep_ok<T>(
    held: Vec<LogGuard>,
    outcomes: Vec<Result<T, StoreError>>,
    what: &str,
    kind: EventType,
    mut keep: impl FnMut(&mut LogGuard, T) -> bool,
    failed: &mut Vec<AccountId>,
) -> Vec<LogGuard> {
    let mut kept = Vec::with_capacity(held.len());
    for (mut head, outcome) in held.into_iter().zip(outcomes) {
        match outcome {
            Ok(value) => {
                if keep(&mut head, value) {
                    kept.push(head);
                }
            }
            Err(e) => {
                tracing::warn!(account = %head.account, kind = kind.0, error = %e, "{what}");
                failed.push(head.account.clone());
            }
        }
    }
    kept
}

/// One store call for the held heads; they are let go together once every event is pushed.
/// Answers the accounts whose append failed.
async fn append_call(env: &Env, mut held: Vec<LogGuard>, notice: Notice<'_>) -> Vec<AccountId> {
    let kind = notice.kind;
    let mut failed = Vec::new();
    let clustered = env.placement.clustered();
    if clustered {
        // The epoch first (claimed on first use), then the seq: the seq read after a claim
        // holds everything the account's previous owner wrote.
        let claims: Vec<_> = held
            .iter()
            .map(|h| env.placement.epoch(ActorKind::Account, &h.account))
            .collect();
        let epochs: Vec<Result<Option<u64>, StoreError>> =
            stream::iter(claims).buffered(READS_AT_ONCE).collect().await;
        held = keep_ok(
            held,
            epochs,
            "event not appended: account not claimed",
            kind,
            |head, epoch| {
                head.under(epoch);
                true
            },
            &mut failed,
        );
    }
    if let Err(e) = read_unknown(&mut held, &*env.store).await {
        tracing::warn!(kind = kind.0, accounts = held.len(), error = %e,
            "event not appended: log heads unreadable");
        failed.extend(held.iter().map(|h| h.account.clone()));
        return failed;
    }
    if notice.rechecks(clustered) {
        let tails: Vec<(AccountId, u64)> = held
            .iter()
            .map(|h| (h.account.clone(), h.seq.unwrap_or_default()))
            .collect();
        let told: Vec<Result<bool, StoreError>> = stream::iter(tails)
            .map(|(account, seq)| holds(&*env.store, account, seq, notice))
            .buffered(READS_AT_ONCE)
            .collect()
            .await;
        // A recipient whose log holds the event already is done: its head goes now.
        held = keep_ok(
            held,
            told,
            "event not appended: log unreadable for the recheck",
            kind,
            |_, told| !told,
            &mut failed,
        );
    }
    let events: Vec<StoredEvent> = held
        .iter()
        .map(|head| frame_with_data(kind, head.seq.unwrap_or_default() + 1, notice.data))
        .collect();
    let appends = held
        .iter()
        .zip(&events)
        .map(|(head, event)| LogAppend {
            account: head.account.clone(),
            events: vec![event.clone()],
            epoch: head.epoch,
        })
        .collect();
    let mut results = env.store.append_events(appends).await.into_iter();
    for (head, event) in held.iter_mut().zip(events) {
        match results.next() {
            Some(Ok(())) => {
                head.advance(event.seq);
                env.hub.push(&head.account, std::slice::from_ref(&event));
                env.relay
                    .account_events(&head.account, std::slice::from_ref(&event));
            }
            outcome => {
                head.forget();
                let error = match outcome {
                    Some(Err(e)) => {
                        if let StoreError::Fenced { .. } = e {
                            // Another node took the account over: it appends from now on.
                            env.placement.forget(ActorKind::Account, &head.account);
                        }
                        e.to_string()
                    }
                    _ => "no answer from the store".to_owned(),
                };
                tracing::warn!(account = %head.account, kind = kind.0, %error, "event not appended");
                failed.push(head.account.clone());
            }
        }
    }
    failed
}

/// Whether the newest events of `account`'s log (its head at `seq`, held) already hold the
/// notice's event.
async fn holds(
    store: &dyn Store,
    account: AccountId,
    seq: u64,
    notice: Notice<'_>,
) -> Result<bool, StoreError> {
    let after = seq.saturating_sub(RECHECK_TAIL as u64);
    let tail = store.read_events(&account, after, RECHECK_TAIL).await?;
    Ok(tail
        .iter()
        .any(|e| e.frame == frame_with_data(notice.kind, e.seq, notice.data).frame))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_live_head_per_account_forgotten_when_let_go() {
        let logs = LogHeads::default();
        let a = logs.head("a");
        let again = logs.head("a");
        assert!(Arc::ptr_eq(&a, &again), "the live head is shared");
        assert!(!Arc::ptr_eq(&a, &logs.head("b")));
        drop((a, again));
        assert!(logs.heads.is_empty(), "entries go when nobody holds them");
        let fresh = logs.head("a");
        assert!(fresh.try_lock().map(|h| h.seq.is_none()).unwrap_or(false));
    }

    #[tokio::test]
    async fn a_held_head_is_busy_for_everyone_else() {
        let logs = LogHeads::default();
        let guard = logs.head("a").lock_owned().await;
        assert!(logs.head("a").try_lock_owned().is_err());
        drop(guard);
        assert!(logs.head("a").try_lock_owned().is_ok());
    }
}
