//! The limits of a cluster: each bucket is counted on one node, so a client that spreads its
//! attempts over N nodes (a load balancer does that for it) gets the quota of one.
//!
//! A key's node is the owner of its hash under the cluster's placement:
//! `Placement::owner(ActorKind::Account, <32 hex digits of the key's hash>)`, the rendezvous
//! hashing actors are placed by, so keys spread evenly and every node picks the same one. The
//! key names no actor (nothing is activated or claimed): the placement only picks a node.
//! A check for a key another node owns goes to it over the cluster's request/reply (the route
//! [`ROUTE`] for `a/<hex>`, the bucket's token as the body, a [`Verdict`] as JSON back). That
//! route is the server's, not the domain's: [`serve_with`] answers it before handing every
//! other route to the domain's `Serve`, so the domain crate knows nothing of limits.
//!
//! **The owner does not answer in time** ([`MAX_WAIT`], or the cluster's request timeout if
//! shorter), is not listening, or this node has no view of the cluster: the attempt is
//! counted in this node's own bucket for the key instead. Failing open (no limit) would let
//! an outage of one node, or an attacker who can slow it, lift the limit; failing closed (429)
//! would lock every client whose key that node owns out of logging in or signing up for as
//! long as the outage lasts. Counting locally keeps a limit during the outage, at worst N
//! times the quota over N nodes, and needs no recovery step after it. Views differ for a
//! moment while a node joins or leaves, so a key may be counted on two nodes then; the same
//! bound holds.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chorus_actors::place::{ActorKind, Owner, Placement, Route, Serve};

use super::{Bucket, Key, Limiter, LocalLimiter, Verdict};

/// The server-level route of a limit check between nodes.
pub const ROUTE: &str = "limit";

/// The longest a check waits for the key's owner before counting locally: a login or a
/// sign-up should not hang for the cluster's whole request timeout (2 s by default) on a
/// check that takes a millisecond when the owner is well.
pub const MAX_WAIT: Duration = Duration::from_millis(500);

/// Counts each key on its owner node, and locally when the owner cannot be reached.
pub struct ClusterLimiter {
    local: LocalLimiter,
    placement: Arc<dyn Placement>,
    wait: Duration,
}

impl ClusterLimiter {
    /// `request_timeout` is the cluster's (`--cluster-request-timeout-ms`); a check waits
    /// the shorter of it and [`MAX_WAIT`].
    pub fn new(
        local: LocalLimiter,
        placement: Arc<dyn Placement>,
        request_timeout: Duration,
    ) -> ClusterLimiter {
        ClusterLimiter {
            local,
            placement,
            wait: request_timeout.min(MAX_WAIT),
        }
    }

    /// Asks `node`; `None` when it gave no usable answer in time.
    async fn ask(&self, node: &str, key: Key) -> Option<Verdict> {
        let route = Route {
            kind: ActorKind::Account,
            id: key.hex(),
            name: ROUTE.to_owned(),
        };
        let body = Bytes::from_static(key.bucket.token().as_bytes());
        let asked = self.placement.forward(node, route, body);
        let answer = match tokio::time::timeout(self.wait, asked).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(e)) => {
                tracing::debug!(%node, error = %e, "limit check not answered; counted here");
                return None;
            }
            Err(_) => {
                tracing::debug!(%node, wait_ms = self.wait.as_millis(), "limit check timed out; counted here");
                return None;
            }
        };
        match serde_json::from_slice(&answer) {
            Ok(verdict) => Some(verdict),
            Err(e) => {
                tracing::warn!(%node, error = %e, "limit check answered something else; counted here");
                None
            }
        }
    }
}

#[async_trait]
impl Limiter for ClusterLimiter {
    async fn check(&self, key: Key) -> Verdict {
        match self.placement.owner(ActorKind::Account, &key.hex()) {
            Owner::Local => self.local.check_here(key),
            Owner::Remote(node) => match self.ask(&node, key).await {
                Some(verdict) => verdict,
                None => self.local.check_here(key),
            },
        }
    }

    fn prune(&self) {
        self.local.prune_here();
    }
}

/// The receiving side: `domain`'s `Serve` with [`ROUTE`] answered from `local` first.
pub fn serve_with(local: LocalLimiter, domain: Serve) -> Serve {
    Arc::new(move |route: Route, body: Bytes| {
        if route.name != ROUTE {
            return domain(route, body);
        }
        let answer = answer(&local, &route, &body);
        Box::pin(std::future::ready(answer))
    })
}

/// A [`Verdict`] as JSON; for a malformed request, an error object the caller does not read
/// as a verdict (it then counts locally).
fn answer(local: &LocalLimiter, route: &Route, body: &[u8]) -> Bytes {
    let key = std::str::from_utf8(body)
        .ok()
        .and_then(Bucket::from_token)
        .and_then(|bucket| Key::from_hex(bucket, &route.id));
    let Some(key) = key else {
        tracing::warn!(id = %route.id, "a malformed limit check from another node");
        return Bytes::from_static(br#"{"error":"malformed limit check"}"#);
    };
    match serde_json::to_vec(&local.check_here(key)) {
        Ok(bytes) => Bytes::from(bytes),
        Err(_) => Bytes::from_static(br#"{"error":"verdict not encodable"}"#),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use futures_util::future::BoxFuture;
    use tokio::sync::watch;

    use super::*;
    use crate::config::Config;

    /// Two nodes in one process: every key is owned by `owner`; a forward runs the owner's
    /// `Serve` directly, or never answers while `down`.
    struct Pair {
        me: String,
        owner: String,
        serve: Serve,
        down: Mutex<bool>,
    }

    impl Placement for Pair {
        fn owner(&self, _kind: ActorKind, _id: &str) -> Owner {
            if self.owner == self.me {
                Owner::Local
            } else {
                Owner::Remote(self.owner.clone())
            }
        }

        fn forward(
            &self,
            _node: &str,
            route: Route,
            body: Bytes,
        ) -> BoxFuture<'static, Result<Bytes, chorus_actors::Error>> {
            if *self.down.lock().unwrap_or_else(|p| p.into_inner()) {
                return Box::pin(std::future::pending());
            }
            let serve = self.serve.clone();
            Box::pin(async move { Ok(serve(route, body).await) })
        }

        fn epoch(
            &self,
            _kind: ActorKind,
            _id: &str,
        ) -> BoxFuture<'static, Result<Option<u64>, chorus_actors::StoreError>> {
            Box::pin(async { Ok(None) })
        }

        fn forget(&self, _kind: ActorKind, _id: &str) {}

        fn clustered(&self) -> bool {
            true
        }

        fn changes(&self) -> watch::Receiver<u64> {
            watch::channel(0).1
        }
    }

    fn no_domain() -> Serve {
        Arc::new(|_, _| Box::pin(std::future::ready(Bytes::from_static(b"domain"))))
    }

    fn config() -> Config {
        Config {
            login_attempts_per_account: 2,
            ..Config::default()
        }
    }

    /// Node "a" asks node "b", which owns every key.
    fn nodes() -> (ClusterLimiter, LocalLimiter, Arc<Pair>) {
        let owner = LocalLimiter::new(&config());
        let pair = Arc::new(Pair {
            me: "a".into(),
            owner: "b".into(),
            serve: serve_with(owner.clone(), no_domain()),
            down: Mutex::new(false),
        });
        let asking = ClusterLimiter::new(
            LocalLimiter::new(&config()),
            pair.clone(),
            Duration::from_millis(50),
        );
        (asking, owner, pair)
    }

    #[tokio::test]
    async fn a_key_is_counted_on_its_owner() {
        let (asking, owner, _) = nodes();
        let key = Key::new(Bucket::Login, "email:ann@example.com");
        assert_eq!(asking.check(key).await, Verdict::Allow);
        // The owner's own attempts and the forwarded ones share one bucket.
        assert_eq!(owner.check_here(key), Verdict::Allow);
        assert!(matches!(asking.check(key).await, Verdict::Wait(_)));
        assert_eq!(owner.tracked(Bucket::Login), 1);
        assert_eq!(
            asking.local.tracked(Bucket::Login),
            0,
            "nothing counted locally"
        );
    }

    #[tokio::test]
    async fn an_owner_that_does_not_answer_is_replaced_by_the_local_bucket() {
        let (asking, owner, pair) = nodes();
        *pair.down.lock().expect("lock") = true;
        let key = Key::new(Bucket::Login, "email:ann@example.com");
        assert_eq!(asking.check(key).await, Verdict::Allow);
        assert_eq!(asking.check(key).await, Verdict::Allow);
        assert!(
            matches!(asking.check(key).await, Verdict::Wait(_)),
            "still limited"
        );
        assert_eq!(owner.tracked(Bucket::Login), 0);
    }

    #[tokio::test]
    async fn other_routes_go_to_the_domain_and_malformed_checks_are_refused() {
        let serve = serve_with(LocalLimiter::new(&config()), no_domain());
        let route = |name: &str, id: &str| Route {
            kind: ActorKind::Account,
            id: id.into(),
            name: name.into(),
        };
        let domain = serve(route("GetMe", "x"), Bytes::new()).await;
        assert_eq!(&domain[..], b"domain");
        let bad = serve(route(ROUTE, "not hex"), Bytes::from_static(b"login")).await;
        assert!(serde_json::from_slice::<Verdict>(&bad).is_err());
        let hex = Key::new(Bucket::Login, "x").hex();
        let bad = serve(route(ROUTE, &hex), Bytes::from_static(b"no such bucket")).await;
        assert!(serde_json::from_slice::<Verdict>(&bad).is_err());
        let ok = serve(route(ROUTE, &hex), Bytes::from_static(b"login")).await;
        assert_eq!(
            serde_json::from_slice::<Verdict>(&ok).ok(),
            Some(Verdict::Allow)
        );
    }
}
