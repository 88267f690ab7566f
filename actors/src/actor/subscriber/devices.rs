//! The account's devices: where its log stands when one attaches. Devices themselves attach
//! to the node they connect to (`crate::ops::accounts`: the hub there, and the relay's
//! interest in the account); the account's actor, on whichever node owns it, only answers
//! from where on events reach them.

use actix::prelude::*;
use serde::{Deserialize, Serialize};

use super::Subscriber;
use crate::actor::{Durable, Turn};
use crate::error::Result;

/// The newest `seq` of the account's log, for a device's `hello`; read under the log head.
/// The device is attached where it connected before this is asked, so every event numbered
/// after the answer reaches it, and every earlier one is at or below the answer (the device
/// drops those, and replays them from the log on `resume`).
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<u64>")]
pub struct HeadSeq;

impl Handler<HeadSeq> for Subscriber {
    type Result = Turn<Self, u64>;
    fn handle(&mut self, _: HeadSeq, _: &mut Self::Context) -> Self::Result {
        self.touch();
        let (log, store, epoch) = (
            self.log.clone(),
            self.life.env.store.clone(),
            self.life.epoch(),
        );
        let read = async move {
            let mut head = log.lock_owned().await;
            Ok(head.seq(&*store, epoch).await?)
        };
        AtomicResponse::new(Box::pin(read.into_actor(self)))
    }
}

/// The account's friends, for its `presence.changed` (asked on the account's owner node,
/// where its presence is announced: never routed).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<String>>")]
pub struct FriendIds;

impl Handler<FriendIds> for Subscriber {
    type Result = Result<Vec<String>>;
    fn handle(&mut self, _: FriendIds, _: &mut Self::Context) -> Self::Result {
        Ok(self.friends.keys().cloned().collect())
    }
}
