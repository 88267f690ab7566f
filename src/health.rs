//! Liveness and readiness. `/healthz` answers while the process can answer at all;
//! `/readyz` answers 200 only while the server can serve *and* store: it fails while the
//! store refuses writes ([`StoreHealth`], set by the store when its disk fails and cleared
//! when writes work again), while any start-up recovery runs ([`Readiness::recovering`]), and
//! once the server is shutting down ([`Readiness::shutting_down`]), and in cluster mode
//! while the node cannot serve its share of the cluster ([`Readiness::follow_cluster`]: NATS
//! not connected, or the node still joining).
//! A load balancer or an orchestrator takes a server out of rotation on a failing `/readyz`,
//! and restarts it only on a failing `/healthz`, which a sick disk never causes: reads are
//! still served.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// Whether the store takes writes. The store sets it; `/readyz` reads it. Cheap to clone.
#[derive(Clone, Default)]
pub struct StoreHealth(Arc<Mutex<Option<String>>>);

impl StoreHealth {
    /// The store refuses writes, for `reason` (said by `/readyz`).
    pub fn refusing(&self, reason: impl Into<String>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason.into());
    }

    /// The store takes writes again.
    pub fn writable(&self) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Why the store refuses writes, while it does.
    pub fn refusal(&self) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Why the server is not ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotReady {
    /// The store refuses writes (its disk is full or failing).
    Store(String),
    /// Start-up recovery is running (the names of what is being recovered).
    Recovering(Vec<&'static str>),
    /// Cluster mode: this node cannot serve its share of the cluster (why).
    Cluster(String),
    /// The server is shutting down.
    ShuttingDown,
}

impl NotReady {
    /// What `/readyz` says.
    pub fn reason(&self) -> String {
        match self {
            NotReady::Store(why) => format!("the store refuses writes: {why}"),
            NotReady::Recovering(what) => format!("recovering: {}", what.join(", ")),
            NotReady::Cluster(why) => format!("cluster: {why}"),
            NotReady::ShuttingDown => "shutting down".to_owned(),
        }
    }

    /// Seconds a client should wait before asking again (`Retry-After`): a recovery takes
    /// moments, a disk is freed by an operator.
    pub fn retry_after(&self) -> u64 {
        match self {
            NotReady::Store(_) => crate::error::STORE_RETRY_AFTER_SECS,
            NotReady::Recovering(_) | NotReady::Cluster(_) | NotReady::ShuttingDown => 1,
        }
    }
}

/// The server's readiness: held by [`crate::http::AppState`], read by `/readyz`. Cheap to
/// clone; every clone sees the same state.
#[derive(Clone, Default)]
pub struct Readiness {
    store: StoreHealth,
    /// How many guards of each recovery are alive.
    recovering: Arc<Mutex<BTreeMap<&'static str, usize>>>,
    stopping: Arc<AtomicBool>,
    /// Cluster mode: why the node cannot serve its share now, asked on every check.
    cluster: Arc<OnceLock<ClusterProbe>>,
}

/// Asked by `/readyz` in cluster mode: `None` while the node can serve its share of the
/// cluster, else why not (`crate::cluster::Cluster::not_ready`).
pub type ClusterProbe = Arc<dyn Fn() -> Option<String> + Send + Sync>;

impl Readiness {
    /// Readiness that follows `store`'s health (a store without a sick state passes a
    /// default [`StoreHealth`], which always takes writes).
    pub fn new(store: StoreHealth) -> Self {
        Readiness {
            store,
            recovering: Arc::default(),
            stopping: Arc::default(),
            cluster: Arc::default(),
        }
    }

    /// Cluster mode: not ready while `probe` says why not. Set once, at start-up.
    pub fn follow_cluster(&self, probe: ClusterProbe) {
        if self.cluster.set(probe).is_err() {
            tracing::warn!("readiness already follows a cluster");
        }
    }

    /// The server is shutting down: not ready from now on, so a load balancer stops sending
    /// before the listener closes.
    pub fn shutting_down(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// Marks `what` as recovering until the returned guard is dropped; the server is not
    /// ready while any guard (of any recovery) is alive. Take the guard before the recovery
    /// starts and move it into the task that runs it, so a recovery that panics or is
    /// cancelled still ends the state.
    #[must_use = "the recovery ends when the guard is dropped"]
    pub fn recovering(&self, what: &'static str) -> RecoveryGuard {
        *self
            .recovering
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(what)
            .or_insert(0) += 1;
        RecoveryGuard {
            recovering: self.recovering.clone(),
            what,
        }
    }

    /// `Ok` when ready; otherwise why not (shutting down first, then a store that refuses
    /// writes, then the cluster, then recoveries).
    pub fn check(&self) -> Result<(), NotReady> {
        if self.stopping.load(Ordering::Acquire) {
            return Err(NotReady::ShuttingDown);
        }
        if let Some(why) = self.store.refusal() {
            return Err(NotReady::Store(why));
        }
        if let Some(why) = self.cluster.get().and_then(|probe| probe()) {
            return Err(NotReady::Cluster(why));
        }
        let recovering = self
            .recovering
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if recovering.is_empty() {
            Ok(())
        } else {
            Err(NotReady::Recovering(recovering.keys().copied().collect()))
        }
    }
}

/// Keeps one recovery's "not ready" state while alive ([`Readiness::recovering`]).
pub struct RecoveryGuard {
    recovering: Arc<Mutex<BTreeMap<&'static str, usize>>>,
    what: &'static str,
}

impl Drop for RecoveryGuard {
    fn drop(&mut self) {
        let mut map = self
            .recovering
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = map.get_mut(self.what) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(self.what);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_again_only_when_every_guard_is_dropped() {
        let readiness = Readiness::default();
        assert_eq!(readiness.check(), Ok(()));
        let first = readiness.recovering("steps");
        let second = readiness.recovering("steps");
        let other = readiness.recovering("releases");
        assert_eq!(
            readiness.check(),
            Err(NotReady::Recovering(vec!["releases", "steps"]))
        );
        drop(first);
        drop(other);
        assert_eq!(readiness.check(), Err(NotReady::Recovering(vec!["steps"])));
        drop(second);
        assert_eq!(readiness.check(), Ok(()));
    }

    #[test]
    fn a_store_refusing_writes_is_not_ready_until_it_takes_them_again() {
        let store = StoreHealth::default();
        let readiness = Readiness::new(store.clone());
        store.refusing("No space left on device");
        let not_ready = readiness.check().expect_err("not ready");
        assert!(
            not_ready.reason().contains("No space left"),
            "{not_ready:?}"
        );
        assert_eq!(
            not_ready.retry_after(),
            crate::error::STORE_RETRY_AFTER_SECS
        );
        store.writable();
        assert_eq!(readiness.check(), Ok(()));
        readiness.clone().shutting_down();
        assert_eq!(readiness.check(), Err(NotReady::ShuttingDown));
    }

    #[test]
    fn a_cluster_node_is_ready_only_while_its_probe_says_so() {
        let readiness = Readiness::default();
        let why = Arc::new(Mutex::new(Some("NATS is not connected".to_owned())));
        let probe = why.clone();
        readiness.follow_cluster(Arc::new(move || {
            probe.lock().unwrap_or_else(PoisonError::into_inner).clone()
        }));
        let not_ready = readiness.check().expect_err("not ready");
        assert_eq!(not_ready.reason(), "cluster: NATS is not connected");
        assert_eq!(not_ready.retry_after(), 1);
        *why.lock().unwrap_or_else(PoisonError::into_inner) = None;
        assert_eq!(readiness.check(), Ok(()));
        readiness.shutting_down();
        assert_eq!(readiness.check(), Err(NotReady::ShuttingDown));
    }
}
