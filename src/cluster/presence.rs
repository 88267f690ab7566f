//! Presence across nodes: each node tells every other node how many devices each account
//! has on it, so every node's [`Presence`] table answers for the whole cluster
//! (`chorus_actors::push::presence`).
//!
//! On `<prefix>.presence.<node>` (every node subscribes `<prefix>.presence.*`), a node
//! publishes a [`Report`]:
//! - a **delta** whenever one account's count here changes ([`Relay::presence`], through
//!   the relay's one ordered queue);
//! - a **snapshot** of every account with a device here, in numbered rounds of chunks,
//!   after each view change (a node that joins learns everything; a node that came back
//!   from a pause tells what it has), when the NATS connection comes back (deltas may have
//!   been lost), and every [`SNAPSHOT_EVERY`] (core NATS is at most once). What a node
//!   reported before its last finished round and did not repeat in it is dropped.
//!
//! A node that leaves the view (dead, paused, gone) takes its devices with it
//! ([`Presence::keep_nodes`]), and the accounts that had no other device are announced
//! offline by their owners.
//!
//! [`Relay::presence`]: chorus_actors::push::Relay::presence

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_nats::Event;
use chorus_actors::push::Presence;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::Cluster;
use super::relay::ClusterRelay;

/// A snapshot goes out at least this often.
pub const SNAPSHOT_EVERY: Duration = Duration::from_secs(60);

/// Accounts per snapshot message (about 40 KiB: well under NATS's 1 MiB default).
pub const SNAPSHOT_CHUNK: usize = 1_000;

/// One message on `<prefix>.presence.<node>`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Report {
    /// The snapshot round this chunk belongs to; absent in a delta.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round: Option<u64>,
    /// The last chunk of its round.
    #[serde(default)]
    pub last: bool,
    /// `(account, devices on the sending node)`; 0: none left there.
    pub entries: Vec<(String, u32)>,
}

impl Report {
    /// One account's count here changed.
    pub fn delta(account: &str, devices: usize) -> Self {
        Report {
            round: None,
            last: false,
            entries: vec![(account.to_owned(), clamp(devices))],
        }
    }

    /// Round `round` of a snapshot of `counts`, in chunks (at least one, the last marked).
    pub fn snapshot(round: u64, counts: Vec<(String, usize)>) -> Vec<Self> {
        let mut chunks: Vec<Report> = counts
            .chunks(SNAPSHOT_CHUNK)
            .map(|chunk| Report {
                round: Some(round),
                last: false,
                entries: chunk.iter().map(|(a, n)| (a.clone(), clamp(*n))).collect(),
            })
            .collect();
        if chunks.is_empty() {
            chunks.push(Report {
                round: Some(round),
                last: false,
                entries: Vec::new(),
            });
        }
        if let Some(last) = chunks.last_mut() {
            last.last = true;
        }
        chunks
    }

    /// Applies a report `node` sent to this node's table.
    pub fn apply(&self, node: &str, presence: &Presence) {
        for (account, devices) in &self.entries {
            presence.remote(node, account, *devices, self.round);
        }
        if let (Some(round), true) = (self.round, self.last) {
            presence.snapshot_done(node, round);
        }
    }
}

fn clamp(devices: usize) -> u32 {
    u32::try_from(devices).unwrap_or(u32::MAX)
}

impl Cluster {
    /// Shares this node's presence with the others and keeps `presence` up to date with
    /// theirs (module doc). Once, after the domain is built, with the relay built for it.
    pub fn share_presence(&self, relay: Arc<ClusterRelay>, presence: Arc<Presence>) {
        let me = self.node_id().to_owned();
        let subject = format!("{}.presence.*", self.prefix());
        let client = self.client().clone();
        let told = presence.clone();
        let inbound = tokio::spawn(async move {
            let mut reports = match client.subscribe(subject.clone()).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(%subject, error = %e, "presence of other nodes not heard");
                    return;
                }
            };
            while let Some(msg) = reports.next().await {
                let Some(node) = msg.subject.as_str().rsplit('.').next() else {
                    continue;
                };
                if node == me {
                    continue;
                }
                match serde_json::from_slice::<Report>(&msg.payload) {
                    Ok(report) => report.apply(node, &told),
                    Err(e) => tracing::warn!(%node, error = %e, "bad presence report dropped"),
                }
            }
        });
        let membership = self.membership().clone();
        let mut changes = membership.changes();
        let mut events = self.events();
        let outbound = tokio::spawn(async move {
            let mut every = tokio::time::interval(SNAPSHOT_EVERY);
            loop {
                tokio::select! {
                    changed = changes.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        let view = membership.view();
                        let live: HashSet<&str> =
                            view.owners.iter().map(|m| m.node.as_str()).collect();
                        presence.keep_nodes(|node| live.contains(node));
                    }
                    event = events.recv() => match event {
                        Ok(Event::Connected) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Ok(_) => continue,
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    _ = every.tick() => {}
                }
                relay.presence_snapshot(presence.local_counts());
            }
        });
        self.keep_tasks([inbound, outbound]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_is_chunked_and_its_last_chunk_marked() {
        let counts: Vec<(String, usize)> = (0..2_500).map(|i| (format!("a{i}"), 1)).collect();
        let chunks = Report::snapshot(7, counts);
        assert_eq!(chunks.len(), 3);
        assert!(chunks.iter().all(|c| c.round == Some(7)));
        assert_eq!(
            chunks.iter().map(|c| c.last).collect::<Vec<_>>(),
            [false, false, true]
        );
        assert_eq!(chunks.iter().map(|c| c.entries.len()).sum::<usize>(), 2_500);
        let empty = Report::snapshot(8, Vec::new());
        assert_eq!(empty.len(), 1);
        assert!(empty[0].last && empty[0].entries.is_empty());
    }

    #[test]
    fn a_delta_reads_back_as_it_was_written() {
        let delta = Report::delta("ann", 2);
        let text = serde_json::to_string(&delta).unwrap();
        assert_eq!(text, r#"{"last":false,"entries":[["ann",2]]}"#);
        assert_eq!(serde_json::from_str::<Report>(&text).unwrap(), delta);
    }
}
