//! Presence: `presence.changed` to an account's friends and groups when its first device
//! connects or its last one leaves, and who is online for `GET /v1/friends` and
//! `GET /v1/groups/{gid}/presence`.
//!
//! The table of devices is [`crate::push::Presence`] (replicated on every node). Announcing
//! is one task per node, [`Announcer`], which takes every account whose count crossed zero
//! somewhere and, for the accounts this node owns (so each change is announced once in a
//! cluster), decides when to tell:
//! - **online** at once, unless the account's presence was announced less than the debounce
//!   ago (then at the end of it);
//! - **offline** once the account has had no device for the debounce, so a device that drops
//!   and reconnects (a phone between networks, a page reload) is never announced offline;
//! - nothing when the state at that moment is the one last announced.
//!
//! So an account announces at most one change per debounce, and always ends announced as it
//! is. Announcements are ephemeral: written to no log, never replayed; a device that was
//! away reads presence back from the lists. An owner that changes in a cluster starts with
//! nothing announced: its first announcement of an account may repeat the state last told,
//! which a client applies as a state, not a change.

use std::collections::{BTreeSet, HashMap};
use std::slice;
use std::time::Duration;

use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::Chorus;
use crate::actor::directory::{Directory, WeakDirectory};
use crate::actor::group::MemberPresence;
use crate::actor::place::{ActorKind, Owner};
use crate::actor::subscriber::FriendIds;
use crate::error::Result;
use crate::model::{FeedPos, GroupView, OnlineMember, Page, PageRequest};
use crate::push::event::{EventType, encode_data, ephemeral_frame};

/// Groups told of one change at once.
const GROUPS_AT_ONCE: usize = 8;

/// `presence.changed`'s data.
#[derive(Debug, Serialize)]
struct Changed<'a> {
    account_id: &'a str,
    online: bool,
    devices: usize,
}

impl Chorus {
    /// How many devices `account` has connected on any node (0: offline).
    pub fn devices_online(&self, account: &str) -> usize {
        self.directory.env().presence.devices(account)
    }

    /// One page of the online members of `group_id` (members only), by account id (all
    /// of one position: the cursor is `0.<account id>`). Online counts every node's devices.
    pub async fn group_presence(
        &self,
        viewer: &str,
        group_id: &str,
        page: &PageRequest,
    ) -> Result<Page<OnlineMember>> {
        let GroupView { members, .. } = self.group(viewer, group_id).await?;
        let presence = &self.directory.env().presence;
        // Each member's count is read once: a page lists what was read, so a member who
        // leaves meanwhile is never listed with 0 devices.
        let online: HashMap<String, usize> = members
            .into_iter()
            .filter_map(|id| {
                let devices = presence.devices(&id);
                (devices > 0).then_some((id, devices))
            })
            .collect();
        let positions = online
            .keys()
            .map(|id| FeedPos {
                ms: 0,
                id: id.clone(),
            })
            .collect();
        Ok(
            Page::of_positions(positions, page).map(|account_id| OnlineMember {
                devices: online.get(&account_id).copied().unwrap_or_default(),
                account_id,
            }),
        )
    }
}

/// What the announcer remembers of one account.
#[derive(Debug, Default)]
struct Slot {
    /// What was last announced, if anything since this node took the account on.
    announced: Option<bool>,
    /// When it was.
    at: Option<Instant>,
    /// Since when the account has had no device (while it has none).
    offline_since: Option<Instant>,
    /// The timer set for it, if one is.
    due: Option<Instant>,
}

/// The task that announces presence changes of the accounts this node owns.
pub(crate) struct Announcer {
    directory: WeakDirectory,
    debounce: Duration,
    slots: HashMap<String, Slot>,
    timers: BTreeSet<(Instant, String)>,
}

impl Announcer {
    pub(crate) fn new(directory: WeakDirectory, debounce: Duration) -> Self {
        Announcer {
            directory,
            debounce,
            slots: HashMap::new(),
            timers: BTreeSet::new(),
        }
    }

    /// Runs until the presence table is gone (the domain stopped).
    pub(crate) async fn run(mut self, mut flips: mpsc::UnboundedReceiver<String>) {
        loop {
            let next = self.timers.first().map(|(at, _)| *at);
            tokio::select! {
                flip = flips.recv() => match flip {
                    Some(account) => self.consider(account, Instant::now()),
                    None => return,
                },
                () = sleep_until(next), if next.is_some() => {
                    let now = Instant::now();
                    while let Some((at, _)) = self.timers.first() {
                        if *at > now {
                            break;
                        }
                        if let Some((at, account)) = self.timers.pop_first() {
                            if let Some(slot) = self.slots.get_mut(&account)
                                && slot.due == Some(at)
                            {
                                slot.due = None;
                            }
                            self.consider(account, now);
                        }
                    }
                }
            }
        }
    }

    /// Looks at `account` now: announce, set a timer, or forget it.
    fn consider(&mut self, account: String, now: Instant) {
        let Some(directory) = self.directory.upgrade() else {
            return;
        };
        let env = directory.env();
        if env.placement.owner(ActorKind::Account, &account) != Owner::Local {
            // Its owner announces it.
            self.forget(&account);
            return;
        }
        let devices = env.presence.devices(&account);
        let online = devices > 0;
        let debounce = self.debounce;
        let slot = self.slots.entry(account.clone()).or_default();
        if online {
            slot.offline_since = None;
        } else {
            slot.offline_since.get_or_insert(now);
        }
        if slot.announced == Some(online) {
            if !online && slot.at.is_none_or(|at| at + debounce <= now) {
                // Offline, told, and past the window: nothing left to remember.
                self.forget(&account);
            }
            return;
        }
        let earliest = slot.at.map_or(now, |at| at + debounce);
        let due = match slot.offline_since {
            Some(since) => earliest.max(since + debounce),
            None => earliest,
        };
        if due > now {
            self.set_timer(account, due);
            return;
        }
        slot.announced = Some(online);
        slot.at = Some(now);
        if !online {
            // Looked at once more after the window, to be forgotten.
            self.set_timer(account.clone(), now + debounce);
        }
        actix::spawn(announce(directory, account, online, devices));
    }

    fn set_timer(&mut self, account: String, due: Instant) {
        let Some(slot) = self.slots.get_mut(&account) else {
            return;
        };
        if let Some(old) = slot.due.replace(due) {
            self.timers.remove(&(old, account.clone()));
        }
        self.timers.insert((due, account));
    }

    fn forget(&mut self, account: &str) {
        if let Some(slot) = self.slots.remove(account)
            && let Some(due) = slot.due
        {
            self.timers.remove(&(due, account.to_owned()));
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

/// Tells `account`'s friends (each device, on every node) and the members of each of its
/// groups. Nothing is stored; what cannot be told now (an actor that fails, a group on a
/// node that does not answer) is logged and dropped: the lists answer presence too.
async fn announce(directory: Directory, account: String, online: bool, devices: usize) {
    let env = directory.env();
    let data = encode_data(&Changed {
        account_id: &account,
        online,
        devices,
    });
    let event = ephemeral_frame(EventType::PRESENCE_CHANGED, &data);
    tracing::debug!(%account, online, devices, "presence changed");
    match directory.ask_here(&account, FriendIds).await {
        Ok(Ok(friends)) => {
            for friend in &friends {
                env.hub.push(friend, slice::from_ref(&event));
                env.relay.account_events(friend, slice::from_ref(&event));
            }
        }
        Ok(Err(e)) => tracing::warn!(%account, error = %e, "presence not told to friends"),
        // The account moved to another node meanwhile: its new owner announces it.
        Err(_) => return,
    }
    let groups = match env.store.groups_of(&account).await {
        Ok(groups) => groups,
        Err(e) => {
            tracing::warn!(%account, error = %e, "presence not told to groups");
            return;
        }
    };
    let frame = event.frame.to_string();
    futures_util::stream::iter(groups)
        .for_each_concurrent(GROUPS_AT_ONCE, |group| {
            let (directory, account, frame) = (&directory, account.clone(), frame.clone());
            async move {
                let told = MemberPresence { account, frame };
                if let Err(e) = directory.ask_group(&group, told).await {
                    tracing::debug!(%group, error = %e, "presence not told to a group");
                }
            }
        })
        .await;
}
