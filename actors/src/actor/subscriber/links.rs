//! Platform links: accounts on other platforms that activities are released to. A (platform,
//! handle) pair belongs to one account at most (a claim taken in the same write).

use actix::prelude::*;
use serde::{Deserialize, Serialize};

use super::Subscriber;
use crate::actor::{Durable, Turn, ready};
use crate::error::{Error, Result};
use crate::model::LinkRecord;
use crate::model::limits::MAX_LINKS;
use crate::store::{Edge, EdgeChange, EdgeKind};

/// Link a platform account (uniqueness of (platform, handle) is claimed atomically).
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<()>")]
pub struct LinkPlatform {
    pub link: LinkRecord,
}

/// Remove a platform link and release its handle; once durable, the releaser attempts
/// nothing more to it.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<()>")]
pub struct UnlinkPlatform {
    pub link_id: String,
}

/// The edge that stores `link` (its record as JSON): the one way a link is written.
pub(super) fn link_edge(link: &LinkRecord) -> Result<EdgeChange> {
    let value = serde_json::to_vec(link)
        .map_err(|e| Error::invalid(format!("link does not encode: {e}")))?;
    Ok(EdgeChange::Put(Edge {
        kind: EdgeKind::Link,
        other: link.link_id.clone(),
        value,
    }))
}

impl Handler<LinkPlatform> for Subscriber {
    type Result = Turn<Self, ()>;
    fn handle(&mut self, msg: LinkPlatform, _: &mut Self::Context) -> Self::Result {
        if self.links.len() >= MAX_LINKS {
            return ready(Err(Error::invalid(format!(
                "an account links at most {MAX_LINKS} platform accounts"
            ))));
        }
        let claim = msg.link.claim();
        if self.links.values().any(|l| l.claim() == claim) {
            return ready(Err(Error::conflict(
                "handle_taken",
                "this platform account is already linked",
            )));
        }
        let edge = match link_edge(&msg.link) {
            Ok(edge) => edge,
            Err(e) => return ready(Err(e)),
        };
        let mut write = self.write();
        write.claims.push(claim);
        write.edges.push(edge);
        let link = msg.link;
        self.persist(write, move |act| {
            act.links.insert(link.link_id.clone(), link);
        })
    }
}

impl Handler<UnlinkPlatform> for Subscriber {
    type Result = Turn<Self, ()>;
    fn handle(&mut self, msg: UnlinkPlatform, _: &mut Self::Context) -> Self::Result {
        let Some(link) = self.links.get(&msg.link_id) else {
            return ready(Err(Error::NotFound("link")));
        };
        let mut write = self.write();
        write.unclaims.push(link.claim());
        write.edges.push(EdgeChange::Delete {
            kind: EdgeKind::Link,
            other: msg.link_id.clone(),
        });
        self.persist(write, move |act| {
            act.links.remove(&msg.link_id);
            if let Some(releaser) = act.life.env.releaser.get() {
                releaser.cancel_link(msg.link_id);
            }
        })
    }
}
