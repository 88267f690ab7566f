//! The account's devices and event log: attaching and detaching devices, reading the log
//! back (`resume`), appending an event that happened elsewhere.

use std::sync::Arc;

use actix::prelude::*;

use super::Subscriber;
use crate::actor::{Durable, Turn};
use crate::error::Result;
use crate::push::event::{Outlet, StoredEvent};

/// A device connected: push this account's events to it from now on. Answers the newest
/// seq, for the `hello` frame.
#[derive(Clone, Message)]
#[rtype(result = "Result<u64>")]
pub struct Attach {
    pub outlet: Arc<dyn Outlet>,
}

/// A device disconnected.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<()>")]
pub struct Detach {
    pub outlet_id: u64,
}

/// Read stored events with `seq > after`, at most `limit` (see
/// [`crate::model::limits::MAX_EVENTS_PAGE`]), for `resume`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<StoredEvent>>")]
pub struct ReadEvents {
    pub after: u64,
    pub limit: usize,
}

impl Handler<Attach> for Subscriber {
    type Result = Turn<Self, u64>;
    /// Under the log head, so no event is numbered between the `seq` answered and the device
    /// joining: each later event is pushed to it, each earlier one is at or below that `seq`.
    fn handle(&mut self, msg: Attach, _: &mut Self::Context) -> Self::Result {
        self.touch();
        let (log, env) = (self.log.clone(), self.life.env.clone());
        let account = self.record.account_id.clone();
        let attach = async move {
            let mut head = log.lock_owned().await;
            let seq = head.seq(&*env.store).await?;
            env.hub.attach(&account, msg.outlet);
            Ok(seq)
        };
        AtomicResponse::new(Box::pin(attach.into_actor(self)))
    }
}

impl Handler<Detach> for Subscriber {
    type Result = Result<()>;
    fn handle(&mut self, msg: Detach, _: &mut Self::Context) -> Self::Result {
        self.touch();
        self.life
            .env
            .hub
            .detach(&self.record.account_id, msg.outlet_id);
        Ok(())
    }
}

impl Handler<ReadEvents> for Subscriber {
    type Result = ResponseFuture<Result<Vec<StoredEvent>>>;
    fn handle(&mut self, msg: ReadEvents, _: &mut Self::Context) -> Self::Result {
        self.touch();
        // Reads do not need the actor's turn: everything acknowledged is already stored.
        let store = self.life.env.store.clone();
        let id = self.record.account_id.clone();
        Box::pin(async move { Ok(store.read_events(&id, msg.after, msg.limit).await?) })
    }
}
