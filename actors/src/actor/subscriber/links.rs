//! Platform links: accounts on other platforms that activities are released to. A (platform,
//! handle) pair belongs to one account at most (a claim taken in the same write). A link's
//! secret arrives sealed by the server and stays so here; the releaser reads the link at each
//! attempt ([`GetLink`]), and unlinking deletes it with the link. Links stored in plaintext
//! by an older server are sealed when the account activates ([`SealLegacyLinks`]).

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

/// One link of this account as stored, sealed secret included: what a release attempt needs
/// besides the release itself (the releaser asks for it at each attempt, so a release never
/// keeps a copy of the secret). `NotFound("link")` once it is unlinked.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<LinkRecord>")]
pub struct GetLink {
    pub link_id: String,
}

/// Sent by the actor to itself when it activates with links written before secrets were
/// sealed: each is stored again with its secret sealed ([`crate::model::LinkSealer`]), in
/// one write. Without a sealer, or if the write fails, the links stay as they are until the
/// next activation (they still work: the connector reads either form).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<()>")]
pub(super) struct SealLegacyLinks;

impl Handler<GetLink> for Subscriber {
    type Result = Result<LinkRecord>;
    fn handle(&mut self, msg: GetLink, _: &mut Self::Context) -> Self::Result {
        self.touch();
        self.links
            .get(&msg.link_id)
            .cloned()
            .ok_or(Error::NotFound("link"))
    }
}

impl Handler<SealLegacyLinks> for Subscriber {
    type Result = Turn<Self, ()>;
    fn handle(&mut self, _: SealLegacyLinks, _: &mut Self::Context) -> Self::Result {
        let Some(sealer) = self.life.env.sealer.get().cloned() else {
            return ready(Ok(()));
        };
        let sealed: Vec<LinkRecord> = self
            .links
            .values()
            .filter(|l| l.has_plain_secret())
            .filter_map(|l| sealer.seal_legacy(l))
            .collect();
        let mut write = self.write();
        for link in &sealed {
            match serde_json::to_vec(link) {
                Ok(value) => write.edges.push(EdgeChange::Put(Edge {
                    kind: EdgeKind::Link,
                    other: link.link_id.clone(),
                    value,
                })),
                Err(e) => return ready(Err(Error::invalid(format!("link does not encode: {e}")))),
            }
        }
        if write.edges.is_empty() {
            return ready(Ok(()));
        }
        tracing::info!(account = %self.id(), links = sealed.len(), "sealing the secrets of links stored in plaintext");
        self.persist(write, move |act| {
            for link in sealed {
                act.links.insert(link.link_id.clone(), link);
            }
        })
    }
}
