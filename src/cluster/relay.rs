//! Delivery once per node: the [`Relay`] of cluster mode (plan §2.5, docs/cluster.md).
//!
//! Each event is published on NATS once by the node that made it; every node with an
//! interested device takes one copy and delivers it locally.
//! - **Account events.** The account's owner pushes them to its own devices ([`Hub::push`])
//!   and hands them here: one message per event on `<prefix>.a.<account>`, header
//!   `Chorus-Seq`, body the stored frame's bytes (no re-encode). A node with a device of the
//!   account subscribed that subject when the device attached ([`Relay::interest`]) and
//!   hands each message to [`Hub::deliver`] (its devices only; never relayed again). Order
//!   holds because only the owner (fenced) numbers an account's events and one connection
//!   keeps publish order per subject.
//! - **Group events.** The group's actor hands its local members' event to its own fan-out
//!   and one copy here: **one publish on `<prefix>.g.<group>` per event, whatever the
//!   group's size**. Each node with a local online member subscribed that subject and calls
//!   [`Fanout::send`] with its local members ([`super::interest`]), the same lanes as on a
//!   single node. NATS messages per event: 1 in, plus 1 out per interested node.
//! - **Membership.** After a join or a leave is durable, the group's actor calls
//!   [`Relay::membership`]: applied to this node's registry and published as a control
//!   message (header `Chorus-Kind: groups`) on the account's subject, so every node where
//!   the account has devices starts or stops taking the group.
//!
//! **Never blocking an actor.** async-nats's `publish` awaits a place in the connection's
//! command queue, which stops draining while NATS is disconnected. So every [`Relay`] method
//! only `try_send`s into one bounded queue ([`QUEUE`] items), drained in order by one task
//! that publishes. When the queue is full the item is shed, counted and logged, as
//! [`Fanout::send`] does for a full lane. The task applies a membership change to this
//! node's registry before publishing it, which waits for the account's lock: an attach of
//! that account in progress holds it for at most `CONFIRM_TIMEOUT` (5 s, only while NATS
//! does not answer).
//!
//! **The connection must be made with `no_echo`** (the core's `ConnectOptions`): a node
//! subscribes subjects it also publishes on, and without it the owner's devices would get
//! each account event twice (dropped by `seq`) and each group event twice (dropped only for
//! a device whose cursor for the group is tracked: one its `hello` listed or it resumed).
//!
//! **Wiring** (the cluster's start-up):
//! 1. connect with `no_echo()`, and an `event_callback` that hands every [`Event`] to
//!    [`ClusterRelay::on_event`] (the relay exists only after the connection: pass it to the
//!    callback through a `OnceLock` or a channel);
//! 2. `ClusterRelay::start(client, "chorus.<keyspace>", node, store)`, inside the runtime that is
//!    to run its tasks;
//! 3. `Chorus::with_seams(store, config, Seams { placement, relay: relay.clone() })`;
//! 4. `relay.bind(chorus.hub().clone(), chorus.fanout().clone())`;
//! 5. `GET /v1/cluster` shows [`ClusterRelay::stats`].
//!
//! **What NATS loses** (core NATS is at most once):
//! - Everything published by other nodes while this node's connection is down, and any
//!   message a full subscription queue drops. [`ClusterRelay::on_event`] (or
//!   [`ClusterRelay::connection_lost`]) then tells every device here to resume: 1013, and the
//!   device reads its account's log back from its `seq`.
//! - Group events are read back the same way: the device resumes with its `groups` cursors
//!   (`src/ws/resume.rs`), replayed from the group's log in the store. A group event carries
//!   its `group_seq` in the `Chorus-Seq` header, so receiving nodes send it once to a device
//!   that resumed the group (`src/ws/cursors.rs`) without parsing the frame.
//! - **The join race**: a group's first events after a join can be published before the
//!   joining member's node has registered its SUB for the group (the control message travels
//!   on the account subject and the SUB follows it). Those events reach the member's devices
//!   on other nodes only through the group's log (`resume` with the group).
//! - An event shed from the outbound queue reaches no other node; devices there see a gap
//!   in account `seq`s or a group's `group_seq`s only at their next resume.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_nats::{Client, Event, HeaderMap};
use bytes::Bytes;
use chorus_actors::Error;
use chorus_actors::push::{Fanout, Hub, Relay, StoredEvent};
use chorus_actors::store::Store;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::interest::{GroupsOf, Interest};
use super::presence::Report;

/// Items the outbound queue holds before it sheds (as a fan-out lane).
pub const QUEUE: usize = 64 * 1024;

/// Header naming what a message on an account subject is; absent for an event.
pub const KIND_HEADER: &str = "Chorus-Kind";
/// [`KIND_HEADER`] of a membership control message.
pub const KIND_GROUPS: &str = "groups";
/// Header carrying an account event's `seq`, or a group event's `group_seq`.
pub const SEQ_HEADER: &str = "Chorus-Seq";

/// The body of a membership control message: the account (named by the subject) joined
/// (`member`) or left `group`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Control {
    pub group: String,
    pub member: bool,
}

/// Subject names under one prefix.
#[derive(Debug, Clone)]
pub struct Subjects {
    prefix: String,
}

impl Subjects {
    pub fn new(prefix: impl Into<String>) -> Self {
        Subjects {
            prefix: prefix.into(),
        }
    }

    /// `<prefix>.a.<account>`: the account's events and its membership control messages.
    pub fn account(&self, account: &str) -> String {
        format!("{}.a.{account}", self.prefix)
    }

    /// `<prefix>.g.<group>`: the group's events.
    pub fn group(&self, group: &str) -> String {
        format!("{}.g.{group}", self.prefix)
    }

    /// `<prefix>.presence.<node>`: `node`'s devices per account ([`super::presence`]).
    pub fn presence(&self, node: &str) -> String {
        format!("{}.presence.{node}", self.prefix)
    }

    /// `<prefix>.sync`: subscribed by nobody; a request there is a round trip to the server
    /// ([`Interest::confirm`]).
    pub fn sync(&self) -> String {
        format!("{}.sync", self.prefix)
    }
}

/// What the relay counted since it started (`GET /v1/cluster`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RelayStats {
    /// Group events published on `g.<group>` (one per event, whatever the group's size).
    pub group_events_published: u64,
    /// Account events published on `a.<account>`.
    pub account_events_published: u64,
    /// Membership control messages published.
    pub membership_published: u64,
    /// Presence reports published (deltas and snapshot chunks).
    pub presence_published: u64,
    /// Items shed because the outbound queue was full.
    pub shed: u64,
    /// Publishes the connection refused (too large, closed).
    pub publish_failed: u64,
    /// Account events received and handed to this node's devices.
    pub inbound_account_events: u64,
    /// Group events received and handed to this node's fan-out.
    pub inbound_group_events: u64,
    /// Membership control messages received.
    pub inbound_control: u64,
    /// Messages received and dropped (malformed, or before [`ClusterRelay::bind`]).
    pub inbound_dropped: u64,
    /// SUBs made since start.
    pub subscribes: u64,
    /// Subscriptions live now.
    pub subscriptions: u64,
    /// Times every device here was told to resume.
    pub resumes: u64,
}

/// The relay's counters, shared with the interest registry.
#[derive(Debug, Default)]
pub struct Counters {
    pub(crate) group_published: AtomicU64,
    pub(crate) account_published: AtomicU64,
    pub(crate) membership_published: AtomicU64,
    pub(crate) presence_published: AtomicU64,
    pub(crate) shed: AtomicU64,
    pub(crate) publish_failed: AtomicU64,
    pub(crate) inbound_account: AtomicU64,
    pub(crate) inbound_group: AtomicU64,
    pub(crate) inbound_control: AtomicU64,
    pub(crate) inbound_dropped: AtomicU64,
    pub(crate) subscribes: AtomicU64,
    pub(crate) unsubscribes: AtomicU64,
    pub(crate) resumes: AtomicU64,
}

/// Adds one to `counter`.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    fn stats(&self) -> RelayStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let subscribes = get(&self.subscribes);
        RelayStats {
            group_events_published: get(&self.group_published),
            account_events_published: get(&self.account_published),
            membership_published: get(&self.membership_published),
            presence_published: get(&self.presence_published),
            shed: get(&self.shed),
            publish_failed: get(&self.publish_failed),
            inbound_account_events: get(&self.inbound_account),
            inbound_group_events: get(&self.inbound_group),
            inbound_control: get(&self.inbound_control),
            inbound_dropped: get(&self.inbound_dropped),
            subscribes,
            subscriptions: subscribes.saturating_sub(get(&self.unsubscribes)),
            resumes: get(&self.resumes),
        }
    }
}

/// One item of the outbound queue.
enum Outbound {
    Account {
        account: Arc<str>,
        event: StoredEvent,
    },
    Group {
        group: String,
        event: StoredEvent,
    },
    Membership {
        account: String,
        control: Control,
    },
    Presence(Report),
}

/// The cluster's [`Relay`]: publishes this node's events once, subscribes what this node's
/// devices need, and delivers what arrives.
pub struct ClusterRelay {
    queue: mpsc::Sender<Outbound>,
    interest: Arc<Interest>,
    counters: Arc<Counters>,
    /// Set by [`Event::Disconnected`], so the next [`Event::Connected`] resumes devices.
    disconnected: AtomicBool,
    /// The round of this node's last presence snapshot (starts at the start's unix ms, so
    /// a restarted node's rounds still rise).
    round: AtomicU64,
}

impl ClusterRelay {
    /// Starts the relay on `client` (made with `no_echo`), under subject prefix `prefix`
    /// (`chorus.<keyspace>`), reading accounts' groups from `store`. Call inside the tokio
    /// runtime that is to run its tasks, before the domain exists: publishing needs only the
    /// client. Inbound events are dropped until [`ClusterRelay::bind`].
    pub fn start(client: Client, prefix: String, node: &str, store: Arc<dyn Store>) -> Arc<Self> {
        let groups_of: GroupsOf = Arc::new(move |account: &str| {
            let store = store.clone();
            let account = account.to_owned();
            Box::pin(async move { store.groups_of(&account).await })
        });
        Self::start_with(client, prefix, node, groups_of)
    }

    /// [`ClusterRelay::start`] with the account → groups lookup given as a function.
    pub fn start_with(
        client: Client,
        prefix: String,
        node: &str,
        groups_of: GroupsOf,
    ) -> Arc<Self> {
        let subjects = Subjects::new(prefix);
        let counters = Arc::new(Counters::default());
        let interest = Interest::new(
            client.clone(),
            subjects.clone(),
            groups_of,
            counters.clone(),
        );
        let (queue, items) = mpsc::channel(QUEUE);
        tokio::spawn(drain(
            client,
            subjects,
            node.to_owned(),
            items,
            interest.clone(),
            counters.clone(),
        ));
        Arc::new(ClusterRelay {
            queue,
            interest,
            counters,
            disconnected: AtomicBool::new(false),
            round: AtomicU64::new(super::membership::unix_ms()),
        })
    }

    /// Publishes a snapshot of this node's devices per account ([`super::presence`]), in a
    /// new round, through the same queue as everything else.
    pub fn presence_snapshot(&self, counts: Vec<(String, usize)>) {
        let round = self.round.fetch_add(1, Ordering::AcqRel) + 1;
        for chunk in Report::snapshot(round, counts) {
            self.enqueue(Outbound::Presence(chunk));
        }
    }

    /// Delivers inbound events to this node's domain (`Chorus::hub()`, `Chorus::fanout()`).
    /// Once, right after `Chorus` is built.
    pub fn bind(&self, hub: Arc<Hub>, fanout: Arc<Fanout>) {
        self.interest.bind(hub, fanout);
    }

    /// Messages from other nodes may have been lost (the connection came back after a
    /// disconnection, or a subscription's queue overflowed): every device connected here is
    /// told to resume (1013, then `resume` from its `seq`). Answers how many were told.
    pub fn connection_lost(&self) -> usize {
        bump(&self.counters.resumes);
        let told = self.interest.resume_all();
        tracing::warn!(
            devices = told,
            "NATS messages may have been lost: devices told to resume"
        );
        told
    }

    /// Feed every event of the connection's `event_callback` here: `Disconnected` then
    /// `Connected`, and `SlowConsumer`, call [`ClusterRelay::connection_lost`].
    pub fn on_event(&self, event: &Event) {
        match event {
            Event::Disconnected => self.disconnected.store(true, Ordering::Release),
            Event::Connected if self.disconnected.swap(false, Ordering::AcqRel) => {
                self.connection_lost();
            }
            Event::SlowConsumer(_) => {
                self.connection_lost();
            }
            _ => {}
        }
    }

    /// The counters (`GET /v1/cluster`).
    pub fn stats(&self) -> RelayStats {
        self.counters.stats()
    }

    /// The interest registry (diagnostics and tests).
    pub fn interest_registry(&self) -> &Arc<Interest> {
        &self.interest
    }

    fn enqueue(&self, item: Outbound) {
        if let Err(e) = self.queue.try_send(item) {
            bump(&self.counters.shed);
            tracing::warn!(error = %e, "cluster relay queue is full: event shed for other nodes");
        }
    }
}

impl Relay for ClusterRelay {
    fn account_events(&self, account: &str, events: &[StoredEvent]) {
        let account: Arc<str> = Arc::from(account);
        for event in events {
            self.enqueue(Outbound::Account {
                account: account.clone(),
                event: event.clone(),
            });
        }
    }

    fn group_event(&self, group: &str, event: &StoredEvent) {
        self.enqueue(Outbound::Group {
            group: group.to_owned(),
            event: event.clone(),
        });
    }

    fn membership(&self, account: &str, group: &str, member: bool) {
        self.enqueue(Outbound::Membership {
            account: account.to_owned(),
            control: Control {
                group: group.to_owned(),
                member,
            },
        });
    }

    fn interest(&self, account: &str) -> BoxFuture<'static, Result<(), Error>> {
        self.interest.interest_task(account)
    }

    fn release(&self, account: &str) {
        self.interest.release(account);
    }

    fn presence(&self, account: &str, devices: usize) {
        self.enqueue(Outbound::Presence(Report::delta(account, devices)));
    }
}

/// The one task that publishes, in queue order. A membership change is applied to this
/// node's registry first (in order with the other changes the actors made), then published.
async fn drain(
    client: Client,
    subjects: Subjects,
    node: String,
    mut items: mpsc::Receiver<Outbound>,
    interest: Arc<Interest>,
    counters: Arc<Counters>,
) {
    while let Some(item) = items.recv().await {
        let (subject, headers, body, counter) = match item {
            Outbound::Account { account, event } => {
                let mut headers = HeaderMap::new();
                headers.insert(SEQ_HEADER, event.seq.to_string());
                let subject = subjects.account(&account);
                let body = event.frame.into_bytes();
                (subject, Some(headers), body, &counters.account_published)
            }
            Outbound::Group { group, event } => {
                // The group_seq travels in a header too, so receiving nodes need not parse
                // the frame to send each event once to a device that resumed the group.
                let mut headers = HeaderMap::new();
                headers.insert(SEQ_HEADER, event.seq.to_string());
                (
                    subjects.group(&group),
                    Some(headers),
                    event.frame.into_bytes(),
                    &counters.group_published,
                )
            }
            Outbound::Membership { account, control } => {
                interest
                    .membership(&account, &control.group, control.member)
                    .await;
                let mut headers = HeaderMap::new();
                headers.insert(KIND_HEADER, KIND_GROUPS);
                let body = Bytes::from(serde_json::to_vec(&control).unwrap_or_default());
                let subject = subjects.account(&account);
                (subject, Some(headers), body, &counters.membership_published)
            }
            Outbound::Presence(report) => {
                let body = Bytes::from(serde_json::to_vec(&report).unwrap_or_default());
                let subject = subjects.presence(&node);
                (subject, None, body, &counters.presence_published)
            }
        };
        let sent = match headers {
            Some(headers) => client.publish_with_headers(subject, headers, body).await,
            None => client.publish(subject, body).await,
        };
        match sent {
            Ok(()) => bump(counter),
            Err(e) => {
                bump(&counters.publish_failed);
                tracing::warn!(error = %e, "cluster relay publish failed");
            }
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod wiring;
