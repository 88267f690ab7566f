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
//! a write numbered from a stale head. An account's actor holds only its own head, and waits
//! for nothing else while it does; a fan-out takes heads in account order, waiting for a busy
//! one only while it holds smaller ones. So no two holders can wait for each other (two
//! fan-outs over overlapping friends follow one another in the same order).

use std::sync::{Arc, Weak};

use dashmap::DashMap;
use futures_util::{StreamExt, stream};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::env::Env;
use crate::error::StoreError;
use crate::model::AccountId;
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
    registry: Weak<Registry>,
}

impl Head {
    /// The newest `seq`, reading it from the store if it is not known.
    pub async fn seq(&mut self, store: &dyn Store) -> Result<u64, StoreError> {
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

    /// Events up to `seq` are durable.
    pub fn advance(&mut self, seq: u64) {
        self.seq = Some(seq);
    }

    /// A write failed and may still land: read the head from the store next time.
    pub fn forget(&mut self) {
        self.seq = None;
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

/// Appends one event (`data` encoded once) to each account's log and pushes it to their
/// devices. Takes the heads in account order, handing them to store calls of up to
/// [`APPENDS_PER_CALL`] as it goes (and at once when the next head is busy, so the heads it
/// holds are not kept waiting); waits for a busy head only holding smaller ones, which is
/// what keeps two fan-outs from waiting for each other. Answers once every append is durable
/// or has failed; a recipient whose append failed is logged and skipped, so one broken account
/// does not keep the others from it, and answered (the caller's step keeps them to retry).
pub async fn notify_each(
    env: &Env,
    to: &[AccountId],
    kind: EventType,
    data: &str,
) -> Vec<AccountId> {
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
    .map(|held| append_call(env, held, kind, data))
    .buffer_unordered(CALLS_IN_FLIGHT)
    .concat();
    let ((), failed) = futures_util::join!(take, append);
    failed
}

/// One store call for the held heads; they are let go together once every event is pushed.
/// Answers the accounts whose append failed.
async fn append_call(
    env: &Env,
    mut held: Vec<LogGuard>,
    kind: EventType,
    data: &str,
) -> Vec<AccountId> {
    if let Err(e) = read_unknown(&mut held, &*env.store).await {
        tracing::warn!(kind = kind.0, accounts = held.len(), error = %e,
            "event not appended: log heads unreadable");
        return held.iter().map(|h| h.account.clone()).collect();
    }
    let events: Vec<StoredEvent> = held
        .iter()
        .map(|head| frame_with_data(kind, head.seq.unwrap_or_default() + 1, data))
        .collect();
    let appends = held
        .iter()
        .zip(&events)
        .map(|(head, event)| LogAppend {
            account: head.account.clone(),
            events: vec![event.clone()],
            epoch: None,
        })
        .collect();
    let mut results = env.store.append_events(appends).await.into_iter();
    let mut failed = Vec::new();
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
                    Some(Err(e)) => e.to_string(),
                    _ => "no answer from the store".to_owned(),
                };
                tracing::warn!(account = %head.account, kind = kind.0, %error, "event not appended");
                failed.push(head.account.clone());
            }
        }
    }
    failed
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
