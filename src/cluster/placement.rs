//! Where actors live in a cluster: [`ClusterPlacement`], the cluster's
//! [`chorus_actors::place::Placement`].
//!
//! **Owner.** Rendezvous (highest random weight) hashing of (kind, id) over the view's
//! owners ([`super::membership::View`]): every node scores every key, the highest score owns
//! it. No ring and no coordination: every node computes the same owner from the same view,
//! and when a node leaves only its own keys move (each to its runner-up), when one joins only
//! the keys it now wins. The hash is xxh3 with a fixed seed, the same on every build and
//! machine (a `RandomState` would differ per process, a `DefaultHasher` may differ per Rust
//! release, and nodes of one cluster must agree during a rolling upgrade).
//!
//! **No view, no local.** While NATS is disconnected this node cannot know who is alive, and
//! while it is joining (starting, or back after it was presumed dead) the others do not count
//! it yet; either way it must not serve an actor another node may be serving. So `owner`
//! never answers `Local` then:
//! - joining, connected: the key's owner among the *other* live nodes, which is where those
//!   nodes send it too (forwarding works);
//! - disconnected, or no other node live: [`Owner::Remote`] of **this node's own id**, the
//!   "no view" answer: [`Placement::forward`] to oneself fails at once with
//!   [`Error::Unavailable`] (503 `unavailable`, `Retry-After: 1`) without touching NATS.
//!
//! **Epochs.** The first use of an actor claims it in the store (`OwnerStore::claim_owner`,
//! a conditional write that moves its epoch past every earlier owner's) and caches the epoch
//! until [`Placement::forget`], or until a view change gives the actor to another node
//! (pruned before the change is announced, so an actor that moves away and back is claimed
//! again: the other node may have claimed it in between). Concurrent first uses share one
//! claim: two claims by the same node would fence its own first one. A claim is refused
//! (`StoreError::Unavailable`) for an actor this node does not own: claiming it would fence
//! the real owner.

use std::sync::Arc;

use bytes::Bytes;
use chorus_actors::place::{ActorKind, Owner, Placement, Route};
use chorus_actors::store::OwnerStore;
use chorus_actors::{Error, StoreError};
use dashmap::DashMap;
use futures_util::future::BoxFuture;
use tokio::sync::{OnceCell, watch};
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use super::membership::{Member, Membership, View};
use super::rpc::Forwarder;

/// The seed of every key hash. Changing it moves every actor: never change it in a running
/// cluster.
const KEY_SEED: u64 = 0x6368_6f72_7573_0001;

/// A node's part of every score, from its id alone.
pub(crate) fn node_seed(node: &str) -> u64 {
    xxh3_64(node.as_bytes())
}

/// The hash of a key, the same on every node.
pub fn key_hash(kind: ActorKind, id: &str) -> u64 {
    let mut key = Vec::with_capacity(id.len() + 2);
    key.extend_from_slice(kind.token().as_bytes());
    key.push(b'/');
    key.extend_from_slice(id.as_bytes());
    xxh3_64_with_seed(&key, KEY_SEED)
}

/// `node`'s score for a key: the node seed and the key hash mixed by a 64-bit finalizer
/// (murmur3's `fmix64`, a bijection with full avalanche), one multiply-xorshift round per
/// node instead of hashing the key again for each.
fn score(seed: u64, key: u64) -> u64 {
    let mut h = seed ^ key;
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The highest-scoring member of `nodes` that `eligible` accepts for `key` (ties, which a
/// 64-bit score makes rare, go to the greater id, so every node breaks them alike).
pub fn rendezvous(
    nodes: &[Member],
    key: u64,
    eligible: impl Fn(&Member) -> bool,
) -> Option<&Member> {
    nodes.iter().filter(|m| eligible(m)).max_by(|a, b| {
        score(a.seed, key)
            .cmp(&score(b.seed, key))
            .then_with(|| a.node.cmp(&b.node))
    })
}

type Claims = DashMap<(ActorKind, String), Arc<OnceCell<u64>>>;

/// The cluster's placement: owners by rendezvous hashing over the live view, epochs claimed
/// in the store and cached, forwards over NATS. Cheap to clone.
#[derive(Clone)]
pub struct ClusterPlacement {
    inner: Arc<Inner>,
}

struct Inner {
    membership: Arc<Membership>,
    forwarder: Forwarder,
    store: Arc<dyn OwnerStore>,
    claims: Arc<Claims>,
}

impl ClusterPlacement {
    /// Placement over `membership`'s view; installs the claim cache's pruning as its change
    /// hook.
    pub(crate) fn new(
        membership: Arc<Membership>,
        forwarder: Forwarder,
        store: Arc<dyn OwnerStore>,
    ) -> ClusterPlacement {
        let claims: Arc<Claims> = Arc::default();
        let pruned = claims.clone();
        membership.on_change(Box::new(move |view: &View| {
            // Keep only what this node owns in the new view: the rest moved away (or this
            // node is joining and owns nothing), and will be claimed again if it comes back.
            pruned.retain(|(kind, id), _| owned_in(view, *kind, id));
        }));
        ClusterPlacement {
            inner: Arc::new(Inner {
                membership,
                forwarder,
                store,
                claims,
            }),
        }
    }

    /// Epochs held now (for `/v1/cluster`).
    pub fn claims_held(&self) -> usize {
        self.inner.claims.len()
    }
}

/// Whether this node owns `kind`/`id` in `view` (its phase included, not its freshness).
fn owned_in(view: &View, kind: ActorKind, id: &str) -> bool {
    rendezvous(&view.owners, key_hash(kind, id), |_| true).is_some_and(|m| m.node == view.me.node)
}

impl Inner {
    fn owner(&self, kind: ActorKind, id: &str) -> Owner {
        let membership = &self.membership;
        let me = membership.me();
        if !membership.connected() {
            return Owner::Remote(me.to_owned());
        }
        // Stale since this node was stopped: peers may have taken its actors (module doc of
        // membership); until the heartbeat task has sorted that out, serve nothing here.
        let fresh = membership.fresh();
        let view = membership.view();
        let key = key_hash(kind, id);
        match rendezvous(&view.owners, key, |m| fresh || m.node != me) {
            Some(m) if m.node == me => Owner::Local,
            Some(m) => Owner::Remote(m.node.clone()),
            None => Owner::Remote(me.to_owned()),
        }
    }
}

impl Placement for ClusterPlacement {
    fn owner(&self, kind: ActorKind, id: &str) -> Owner {
        self.inner.owner(kind, id)
    }

    fn forward(
        &self,
        node: &str,
        route: Route,
        body: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, Error>> {
        if node == self.inner.membership.me() {
            let why = self
                .inner
                .membership
                .not_ready()
                .unwrap_or_else(|| "no other node is live".to_owned());
            let message = format!(
                "no owner for {}/{} can be reached from this node ({why}); retry",
                route.kind, route.id
            );
            return Box::pin(async move { Err(Error::Unavailable(message)) });
        }
        let forwarder = self.inner.forwarder.clone();
        let node = node.to_owned();
        Box::pin(async move { forwarder.forward(&node, route, body).await })
    }

    fn epoch(
        &self,
        kind: ActorKind,
        id: &str,
    ) -> BoxFuture<'static, Result<Option<u64>, StoreError>> {
        let inner = self.inner.clone();
        let id = id.to_owned();
        Box::pin(async move {
            let not_owned = |id: &str| {
                StoreError::Unavailable(format!(
                    "{kind}/{id} is not owned by this node now (the cluster view changed)"
                ))
            };
            if inner.owner(kind, &id) != Owner::Local {
                return Err(not_owned(&id));
            }
            let key = (kind, id);
            let cell = inner.claims.entry(key.clone()).or_default().clone();
            let claimed = cell
                .get_or_try_init(|| inner.store.claim_owner(kind, &key.1))
                .await;
            let epoch = match claimed {
                Ok(epoch) => *epoch,
                Err(e) => {
                    // Nothing cached: the next use tries again.
                    inner
                        .claims
                        .remove_if(&key, |_, c| Arc::ptr_eq(c, &cell) && c.get().is_none());
                    return Err(e);
                }
            };
            // The view may have moved on during the claim.
            if inner.owner(kind, &key.1) != Owner::Local {
                inner.claims.remove_if(&key, |_, c| Arc::ptr_eq(c, &cell));
                return Err(not_owned(&key.1));
            }
            Ok(Some(epoch))
        })
    }

    fn forget(&self, kind: ActorKind, id: &str) {
        self.inner.claims.remove(&(kind, id.to_owned()));
    }

    fn clustered(&self) -> bool {
        true
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.inner.membership.changes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(ids: &[&str]) -> Vec<Member> {
        ids.iter()
            .map(|id| Member {
                node: (*id).to_owned(),
                incarnation: 1,
                http_addr: String::new(),
                seed: node_seed(id),
            })
            .collect()
    }

    fn owner_of(nodes: &[Member], i: usize) -> &str {
        let key = key_hash(ActorKind::Group, &format!("{i:032x}"));
        &rendezvous(nodes, key, |_| true).expect("some node").node
    }

    #[test]
    fn a_dead_node_moves_only_its_own_keys() {
        let three = members(&["n0", "n1", "n2"]);
        let two = members(&["n0", "n2"]);
        let mut per_node = std::collections::BTreeMap::<&str, usize>::new();
        let mut moved = 0;
        for i in 0..10_000 {
            let before = owner_of(&three, i);
            let after = owner_of(&two, i);
            *per_node.entry(before).or_default() += 1;
            if before == "n1" {
                assert_ne!(after, "n1");
                moved += 1;
            } else {
                assert_eq!(before, after, "key {i} moved off a live node");
            }
        }
        assert_eq!(moved, per_node["n1"]);
        // Spread evenly: each node holds a third, give or take a few percent.
        for (node, n) in per_node {
            assert!((3_000..3_700).contains(&n), "{node} owns {n} of 10000");
        }
    }

    #[test]
    fn a_joining_node_takes_only_keys_it_wins() {
        let two = members(&["a", "b"]);
        let three = members(&["a", "b", "c"]);
        for i in 0..2_000 {
            let after = owner_of(&three, i);
            if after != "c" {
                assert_eq!(owner_of(&two, i), after);
            }
        }
    }

    #[test]
    fn the_hash_is_the_same_everywhere() {
        // Pinned: a change of any of these moves actors of a running cluster (a new xxh3,
        // a new seed, a new mix), so nodes of two builds would disagree on owners.
        let seed = node_seed("n0");
        assert_eq!(seed, 16_059_159_448_129_433_833);
        let key = key_hash(ActorKind::Account, "0123456789abcdef0123456789abcdef");
        assert_eq!(key, 15_257_063_630_620_408_342);
        assert_eq!(score(seed, key), 12_469_250_669_520_247_029);
    }
}
