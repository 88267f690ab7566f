//! Which account and group subjects this node takes from NATS, and what it does with what
//! arrives (plan §2.5, "Interest registry").
//!
//! A node subscribes `<prefix>.a.<account>` while a device of the account is connected here,
//! and `<prefix>.g.<group>` while at least one such account is a member of the group. NATS
//! then forwards a subject's messages only to the nodes that subscribed it, so a group event
//! crosses the network once per interested node, whatever the group's size.
//!
//! **State.** Per account with devices here: how many ([`Interest::interest`] minus
//! [`Interest::release`]), its groups, and its subscription. Per group: its **local online
//! members**, a [`MemberList`] like the group actor's, and its subscription. An account is in
//! a group's local members exactly while the group is in the account's groups: both change
//! together, under the account's lock.
//!
//! **Locks.** Striped, as Centrifuge's `subLock`: an account's stripe is held for a whole
//! change of that account (interest, release, a membership control message), and a group's
//! stripe is taken inside it, one group at a time, and never the other way round, so there
//! is no lock cycle. The locks are async: [`Interest::interest`] holds its account's lock
//! while it reads the account's groups, subscribes and waits for the server to confirm
//! ([`Interest::confirm`]), so a second device of the
//! same account waits until the first one's subscriptions are registered.
//!
//! **Deferred unsubscribe.** When an account's last device leaves, its subscriptions stay for
//! [`LINGER`]; then, under the lock again, they go only if no device came back meanwhile
//! (Centrifuge `node.go` `removeSubscription`). A device that reconnects at once costs no
//! SUB/UNSUB churn.
//!
//! **Inbound.** One task per subscription reads it:
//! - `a.<account>` with `Chorus-Kind: groups`: a membership control message
//!   ([`Interest::membership`]);
//! - `a.<account>` otherwise: one event of the account's log, `seq` in the `Chorus-Seq`
//!   header and the frame as the body, for [`Hub::deliver`] (this node's devices only);
//! - `g.<group>`: a group event's frame, for [`Fanout::send`] with the group's local
//!   members, the same lanes the group actor on this node would use.
//!
//! A group subscription is removed under its group's lock and the removal waits until the
//! UNSUB is queued on the connection, so a later SUB of the same subject is behind it: the
//! server never has both at once, and no group event reaches a device twice through them.
//! (Account events may overlap there; devices drop an account event at or below the `seq`
//! they have, and a stale reader's control messages are ignored by its generation.)

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as SyncMutex, OnceLock, Weak};
use std::time::Duration;

use async_nats::{Client, HeaderMap, Message, RequestErrorKind};
use bytes::Bytes;
use bytestring::ByteString;
use chorus_actors::model::GroupId;
use chorus_actors::push::event::current_group_frame;
use chorus_actors::push::{Fanout, Hub, MemberList, Shared, StoredEvent};
use chorus_actors::{Error, StoreError};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use tokio::sync::{Mutex, oneshot};
use tokio::task::JoinHandle;

use super::relay::{Control, Counters, KIND_GROUPS, KIND_HEADER, SEQ_HEADER, Subjects, bump};

/// Stripes of the account locks and of the group locks.
const STRIPES: usize = 256;

/// How long an account's subscriptions outlive its last device (at least 1 s, plan §1.3).
pub const LINGER: Duration = Duration::from_secs(1);

/// How long [`Interest::interest`] waits for the server to confirm its subscriptions.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

/// The groups an account is a member of ([`chorus_actors::store::GroupStore::groups_of`];
/// a function so tests can answer without a store).
pub type GroupsOf =
    Arc<dyn Fn(&str) -> BoxFuture<'static, Result<Vec<GroupId>, StoreError>> + Send + Sync>;

/// Where inbound events go: this node's domain, known once `Chorus` is built.
struct Targets {
    hub: Arc<Hub>,
    fanout: Arc<Fanout>,
}

/// A live subscription: its reader task stops (and unsubscribes) when told, or when this is
/// dropped.
struct Sub {
    stop: Option<oneshot::Sender<oneshot::Sender<()>>>,
    /// Tells a stale reader (one whose account entry was replaced) from the live one.
    generation: u64,
}

impl Sub {
    /// Stops the reader; answers once its UNSUB is queued on the connection.
    async fn close(mut self) {
        if let Some(stop) = self.stop.take() {
            let (done, queued) = oneshot::channel();
            if stop.send(done).is_ok() {
                let _ = queued.await;
            }
        }
    }
}

/// An [`Interest::interest_task`] its caller may stop waiting for.
struct Pending {
    handle: Option<JoinHandle<Result<(), Error>>>,
    registry: Weak<Interest>,
    account: String,
}

impl Drop for Pending {
    fn drop(&mut self) {
        let (Some(handle), Some(registry)) = (self.handle.take(), self.registry.upgrade()) else {
            return;
        };
        let account = std::mem::take(&mut self.account);
        registry.runtime.clone().spawn(async move {
            if let Ok(Ok(())) = handle.await {
                registry.release(&account);
            }
        });
    }
}

/// An account with devices here (or whose last device left less than [`LINGER`] ago).
struct AccountEntry {
    devices: usize,
    groups: HashSet<Arc<str>>,
    sub: Sub,
}

/// A group with at least one local online member.
struct GroupEntry {
    members: Arc<SyncMutex<MemberList>>,
    sub: Sub,
}

type Stripe<T> = Mutex<HashMap<Arc<str>, T>>;

/// The interest registry of one node.
pub struct Interest {
    client: Client,
    subjects: Subjects,
    groups_of: GroupsOf,
    counters: Arc<Counters>,
    targets: OnceLock<Targets>,
    accounts: Vec<Stripe<AccountEntry>>,
    groups: Vec<Stripe<GroupEntry>>,
    generation: AtomicU64,
    /// The runtime the readers and deferred removals run on (the one the relay started on).
    runtime: tokio::runtime::Handle,
    me: Weak<Interest>,
}

fn stripe(key: &str) -> usize {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % STRIPES as u64) as usize
}

fn stripes<T>() -> Vec<Stripe<T>> {
    (0..STRIPES).map(|_| Mutex::new(HashMap::new())).collect()
}

fn unavailable(what: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("cluster relay: {what}"))
}

impl Interest {
    /// A registry on `client`; must be called inside a tokio runtime, which runs its tasks.
    pub fn new(
        client: Client,
        subjects: Subjects,
        groups_of: GroupsOf,
        counters: Arc<Counters>,
    ) -> Arc<Self> {
        let runtime = tokio::runtime::Handle::current();
        Arc::new_cyclic(|me| Interest {
            client,
            subjects,
            groups_of,
            counters,
            targets: OnceLock::new(),
            accounts: stripes(),
            groups: stripes(),
            generation: AtomicU64::new(1),
            runtime,
            me: me.clone(),
        })
    }

    /// Hands inbound events to this node's domain from now on. Once; later calls are ignored.
    pub fn bind(&self, hub: Arc<Hub>, fanout: Arc<Fanout>) {
        if self.targets.set(Targets { hub, fanout }).is_err() {
            tracing::warn!("cluster relay bound twice: the first binding stays");
        }
    }

    /// Every device of this node, told to resume ([`Hub::resume_all`]). Answers how many.
    pub fn resume_all(&self) -> usize {
        self.targets.get().map_or(0, |t| t.hub.resume_all())
    }

    /// [`Interest::interest`] as a task of the registry's runtime, so a caller that stops
    /// waiting (a handshake dropped) leaves nothing counted: when the task succeeds after its
    /// caller gave up, the device is released again.
    pub fn interest_task(&self, account: &str) -> BoxFuture<'static, Result<(), Error>> {
        let me = self.me.clone();
        let owned = account.to_owned();
        let handle = self.runtime.spawn(async move {
            match me.upgrade() {
                Some(me) => me.interest(&owned).await,
                None => Err(unavailable("shut down")),
            }
        });
        let mut pending = Pending {
            handle: Some(handle),
            registry: self.me.clone(),
            account: account.to_owned(),
        };
        Box::pin(async move {
            let Some(handle) = pending.handle.as_mut() else {
                return Err(unavailable("interest polled twice"));
            };
            let answer = handle.await;
            // Answered: nothing for the drop to undo.
            pending.handle.take();
            answer.unwrap_or_else(|e| Err(unavailable(format!("interest task: {e}"))))
        })
    }

    /// A device of `account` attaches here: subscribe the account and its groups unless
    /// already done, and answer once the server has the subscriptions. On an error nothing
    /// is counted: the caller must not [`Interest::release`].
    pub async fn interest(&self, account: &str) -> Result<(), Error> {
        let mut accounts = self.accounts[stripe(account)].lock().await;
        if let Some(entry) = accounts.get_mut(account) {
            entry.devices += 1;
            return Ok(());
        }
        let groups = (self.groups_of)(account).await?;
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let sub = self
            .subscribe(
                self.subjects.account(account),
                generation,
                |me, msg, gen_| Box::pin(async move { me.on_account(msg, gen_).await }),
            )
            .await?;
        let key: Arc<str> = Arc::from(account);
        let mut entry = AccountEntry {
            devices: 1,
            groups: HashSet::new(),
            sub,
        };
        for group in groups {
            let group: Arc<str> = Arc::from(group);
            if let Err(e) = self.join(&key, &group).await {
                tracing::warn!(%account, %group, error = %e, "group not subscribed");
                continue;
            }
            entry.groups.insert(group);
        }
        accounts.insert(key.clone(), entry);
        let Err(failure) = self.confirm().await else {
            return Ok(());
        };
        // Undo this device's count; the subscriptions go after the usual delay.
        if let Some(entry) = accounts.get_mut(&key) {
            entry.devices -= 1;
        }
        drop(accounts);
        self.linger(key);
        Err(failure)
    }

    /// Answers once the server has processed everything this connection sent before (the
    /// SUBs above all). async-nats's `flush` only writes the socket, so this is a request
    /// nobody answers on `<prefix>.sync`: the server's "no responders" reply comes after it
    /// has read every earlier command of the connection.
    pub async fn confirm(&self) -> Result<(), Error> {
        let asked = self.client.request(self.subjects.sync(), Bytes::new());
        match tokio::time::timeout(CONFIRM_TIMEOUT, asked).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.kind() == RequestErrorKind::NoResponders => Ok(()),
            Ok(Err(e)) => Err(unavailable(format!("NATS round trip: {e}"))),
            Err(_) => Err(unavailable(
                "NATS did not confirm the subscriptions in time",
            )),
        }
    }

    /// A device of `account` left this node. Its subscriptions go [`LINGER`] after the last
    /// one, unless a device comes back first. Returns at once (the count changes on the
    /// registry's runtime).
    pub fn release(&self, account: &str) {
        let account = account.to_owned();
        self.later(Duration::ZERO, move |me| async move {
            me.release_now(&account).await
        });
    }

    /// Runs `work` on the registry's runtime after `delay`, unless the registry is gone.
    fn later<F, Fut>(&self, delay: Duration, work: F)
    where
        F: FnOnce(Arc<Interest>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let me = self.me.clone();
        self.runtime.spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if let Some(me) = me.upgrade() {
                work(me).await;
            }
        });
    }

    async fn release_now(&self, account: &str) {
        let mut accounts = self.accounts[stripe(account)].lock().await;
        let Some(entry) = accounts.get_mut(account) else {
            tracing::warn!(%account, "relay release without interest: ignored");
            return;
        };
        entry.devices = entry.devices.saturating_sub(1);
        if entry.devices == 0 {
            let key = accounts.get_key_value(account).map(|(k, _)| k.clone());
            drop(accounts);
            if let Some(key) = key {
                self.linger(key);
            }
        }
    }

    /// After [`LINGER`], drops `account` if it still has no device here.
    fn linger(&self, account: Arc<str>) {
        self.later(
            LINGER,
            move |me| async move { me.drop_if_idle(&account).await },
        );
    }

    async fn drop_if_idle(&self, account: &str) {
        let mut accounts = self.accounts[stripe(account)].lock().await;
        if accounts.get(account).is_none_or(|e| e.devices > 0) {
            return;
        }
        let Some((key, entry)) = accounts.remove_entry(account) else {
            return;
        };
        // The account's reader may be waiting for this very lock: stop it without waiting.
        drop(entry.sub);
        for group in &entry.groups {
            self.leave(&key, group).await;
        }
    }

    /// `account` (online here) joined or left `group`: a control message from the group's
    /// node, or the group's actor on this node. Nothing if the account has no device here.
    pub async fn membership(&self, account: &str, group: &str, member: bool) {
        self.membership_of(account, group, member, None).await;
    }

    /// [`Interest::membership`], applied only if the account's entry is of `generation`
    /// when one is given (a reader applies only what its own subscription received).
    async fn membership_of(
        &self,
        account: &str,
        group: &str,
        member: bool,
        generation: Option<u64>,
    ) {
        let mut accounts = self.accounts[stripe(account)].lock().await;
        let Some(key) = accounts.get_key_value(account).map(|(k, _)| k.clone()) else {
            return;
        };
        let Some(entry) = accounts.get_mut(account) else {
            return;
        };
        if generation.is_some_and(|g| g != entry.sub.generation) {
            return;
        }
        if member {
            if entry.groups.contains(group) {
                return;
            }
            let group: Arc<str> = Arc::from(group);
            match self.join(&key, &group).await {
                Ok(()) => {
                    entry.groups.insert(group);
                }
                Err(e) => tracing::warn!(%account, %group, error = %e, "group not subscribed"),
            }
        } else if entry.groups.remove(group) {
            self.leave(&key, group).await;
        }
    }

    /// Adds `account` to `group`'s local members, subscribing the group if it is new here.
    /// The caller holds the account's lock and knows the account was not a local member.
    async fn join(&self, account: &Arc<str>, group: &Arc<str>) -> Result<(), Error> {
        let mut groups = self.groups[stripe(group)].lock().await;
        if let Some(entry) = groups.get(group) {
            if let Ok(mut members) = entry.members.lock() {
                members.insert(account.clone());
            }
            return Ok(());
        }
        let members = Arc::new(SyncMutex::new(MemberList::new([account.clone()])));
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let list = members.clone();
        let id = group.clone();
        let sub = self
            .subscribe(self.subjects.group(group), generation, move |me, msg, _| {
                me.on_group(&id, &list, msg);
                Box::pin(async {})
            })
            .await?;
        groups.insert(group.clone(), GroupEntry { members, sub });
        Ok(())
    }

    /// Removes `account` from `group`'s local members, unsubscribing the group when it was
    /// the last. The caller holds the account's lock.
    async fn leave(&self, account: &str, group: &str) {
        let mut groups = self.groups[stripe(group)].lock().await;
        let Some(entry) = groups.get(group) else {
            return;
        };
        let empty = entry.members.lock().map_or(true, |mut members| {
            members.remove(account);
            members.is_empty()
        });
        if empty && let Some(entry) = groups.remove(group) {
            entry.sub.close().await;
        }
    }

    /// Subscribes `subject` and starts its reader, which hands each message to `handle`.
    async fn subscribe<H>(&self, subject: String, generation: u64, handle: H) -> Result<Sub, Error>
    where
        H: Fn(Arc<Interest>, Message, u64) -> BoxFuture<'static, ()> + Send + 'static,
    {
        let mut subscriber = self
            .client
            .subscribe(subject.clone())
            .await
            .map_err(|e| unavailable(format!("subscribe {subject}: {e}")))?;
        bump(&self.counters.subscribes);
        let (stop, mut stopped) = oneshot::channel::<oneshot::Sender<()>>();
        let me = self.me.clone();
        let counters = self.counters.clone();
        self.runtime.spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    done = &mut stopped => {
                        if let Err(e) = subscriber.unsubscribe().await {
                            tracing::debug!(%subject, error = %e, "unsubscribe not queued");
                        }
                        if let Ok(done) = done {
                            let _ = done.send(());
                        }
                        break;
                    }
                    msg = subscriber.next() => {
                        let (Some(msg), Some(me)) = (msg, me.upgrade()) else {
                            break;
                        };
                        handle(me, msg, generation).await;
                    }
                }
            }
            bump(&counters.unsubscribes);
        });
        Ok(Sub {
            stop: Some(stop),
            generation,
        })
    }

    /// A message on an account subject.
    async fn on_account(&self, msg: Message, generation: u64) {
        let Some(account) = msg.subject.as_str().rsplit('.').next() else {
            return;
        };
        let kind = header(msg.headers.as_ref(), KIND_HEADER);
        if kind == Some(KIND_GROUPS) {
            bump(&self.counters.inbound_control);
            match serde_json::from_slice::<Control>(&msg.payload) {
                Ok(c) => {
                    self.membership_of(account, &c.group, c.member, Some(generation))
                        .await
                }
                Err(e) => self.dropped(&msg, format!("bad control message: {e}")),
            }
            return;
        }
        let seq = header(msg.headers.as_ref(), SEQ_HEADER).and_then(|s| s.parse::<u64>().ok());
        let (Some(seq), Ok(frame)) = (seq, ByteString::try_from(msg.payload.clone())) else {
            self.dropped(&msg, "account event without a seq or not UTF-8".into());
            return;
        };
        let Some(targets) = self.targets.get() else {
            self.dropped(&msg, "relay not bound yet".into());
            return;
        };
        bump(&self.counters.inbound_account);
        targets.hub.deliver(account, &[StoredEvent { seq, frame }]);
    }

    /// A message on a group subject: its frame to the group's local members. Its
    /// `group_seq` comes in the `Chorus-Seq` header; a node of a version before it sends
    /// none, and a frame of the old shape (`seq`), which is brought to the current one.
    fn on_group(&self, group: &str, members: &SyncMutex<MemberList>, msg: Message) {
        let Ok(frame) = ByteString::try_from(msg.payload.clone()) else {
            self.dropped(&msg, format!("group {group} event not UTF-8"));
            return;
        };
        let event = match header(msg.headers.as_ref(), SEQ_HEADER).and_then(|s| s.parse().ok()) {
            Some(seq) => Shared::new(group, seq, frame),
            None => {
                let seq = legacy_seq(&frame).unwrap_or(0);
                let frame = current_group_frame(group, StoredEvent { seq, frame }).frame;
                Shared::new(group, seq, frame)
            }
        };
        let Some(targets) = self.targets.get() else {
            self.dropped(&msg, "relay not bound yet".into());
            return;
        };
        let Ok(mut members) = members.lock() else {
            return;
        };
        let (snapshot, count) = (members.snapshot(), members.len());
        drop(members);
        bump(&self.counters.inbound_group);
        targets.fanout.send(&snapshot, count, &event);
    }

    fn dropped(&self, msg: &Message, why: String) {
        bump(&self.counters.inbound_dropped);
        tracing::warn!(subject = %msg.subject, "cluster relay dropped a message: {why}");
    }

    /// Local online members of `group` (tests and diagnostics).
    pub async fn local_members(&self, group: &str) -> usize {
        let groups = self.groups[stripe(group)].lock().await;
        groups
            .get(group)
            .and_then(|g| g.members.lock().ok().map(|m| m.len()))
            .unwrap_or(0)
    }
}

/// The `seq` of a group frame of the old shape (`{"type","group_id","seq",...}`), found
/// in its header (before `"data"`), so that it can be rewritten.
fn legacy_seq(frame: &str) -> Option<u64> {
    let head = &frame[..frame.find(r#","data":"#)?];
    let digits = &head[head.find(r#","seq":"#)? + 7..];
    digits.parse().ok()
}

fn header<'a>(headers: Option<&'a HeaderMap>, name: &str) -> Option<&'a str> {
    headers.and_then(|h| h.get(name)).map(|v| v.as_str())
}
