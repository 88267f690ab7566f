//! Release: an activity to every platform its author linked (webhook, Mastodon, email).
//!
//! - [`connector`]: the seam to the platforms ([`Connector`], implemented in the server
//!   crate) and the shared reading of HTTP answers ([`AttemptOutcome::from_http`]).
//! - [`policy`]: retries (backoff with jitter, `Retry-After`, giving up), caps on attempts
//!   running at once and bounds on releases held ([`ReleaseConfig`]).
//! - `queues`: what the releaser holds and which attempt starts next: round-robin over
//!   authors, under caps in all, per author, per link and per destination host; at most so
//!   many releases held, the rest left in the outbox.
//! - `releaser`: the Releaser actor, one per server, carrying each release from `pending` to
//!   `delivered`/`failed`, every status recorded by the author's actor before the next step.
//! - `recovery`: the store's outbox read and carried on with: at start-up, after a cluster
//!   view change, and when the bounds left releases there and there is room again.
//! - `secret`: each attempt reads its link (sealed secret included) from the author's actor,
//!   so a release never keeps a copy of the secret.

pub mod connector;
pub mod policy;
mod queues;
mod recovery;
mod releaser;
mod secret;

use std::sync::Arc;

use actix::prelude::*;

pub use connector::{AttemptOutcome, Connector, Outgoing};
pub use policy::ReleaseConfig;

use crate::actor::directory::Directory;
use crate::error::{Error, Result};
use recovery::Recover;
use releaser::Releaser;

/// Starts the Releaser on its own thread (returned, to be stopped at shutdown), makes it the
/// one the account actors hand new releases to, and has it pick up every release the store
/// holds as not final; answers how many it carries on with.
pub(crate) async fn start(
    directory: &Directory,
    connector: Arc<dyn Connector>,
    config: ReleaseConfig,
) -> Result<(Arbiter, usize)> {
    let env = directory.env();
    if env.releaser.get().is_some() {
        return Err(Error::Unavailable("the releaser is already running".into()));
    }
    let arbiter = Arbiter::new();
    let (weak, store) = (directory.downgrade(), env.store.clone());
    let addr = Releaser::start_in_arbiter(&arbiter.handle(), move |_| {
        Releaser::new(weak, store, connector, config)
    });
    env.releaser.set(Arc::new(addr.clone()));
    let recovered = addr
        .send(Recover)
        .await
        .map_err(|e| Error::Unavailable(format!("releaser: {e}")))??;
    Ok((arbiter, recovered))
}
