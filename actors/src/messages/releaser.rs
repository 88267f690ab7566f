//! Messages of the Releaser actor (one per server): what to deliver, and its own bookkeeping.

use std::sync::Arc;

use actix::Message;

use crate::activity_model::{ActivityRecord, DeliveryRecord};
use crate::error::Result;

/// Sent by a Subscriber right after an activity and its deliveries are durable: start them.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Enqueue {
    pub activity: Arc<ActivityRecord>,
    pub deliveries: Vec<DeliveryRecord>,
}

/// Sent by a Subscriber once an unlink is durable: deliveries to that link that are waiting
/// are recorded `failed` ("platform unlinked") instead of attempted; one running now
/// finishes its attempt, and is not retried.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct CancelLink {
    pub link_id: String,
}

/// Sent once at start-up, before the server takes requests: read every delivery the store
/// holds as not final and carry on with it. Answers how many were picked up.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<usize>")]
pub struct LoadPending;
