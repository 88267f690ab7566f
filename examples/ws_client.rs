//! A minimal Chorus WebSocket client for the README walkthrough: connects as one device,
//! optionally resumes from its cursors, and prints every frame it receives, one per line.
//!
//! `cargo run --example ws_client -- --token TOKEN [--url ws://127.0.0.1:8080/v1/ws]
//! [--since N] [--group GID=M ...]`
//!
//! It keeps the contract's two cursors (revision 2): the highest `seq` of the account's own
//! events, and per group the last `group_seq` seen with none missing before it. When the
//! connection drops (or the server closes it, 1013 for a device too slow to read), it
//! connects again and resumes from them, so nothing is missed; it stops when the server
//! cannot be reached (at once at start, after 30 s of tries once it was connected).

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Seconds of failed connections after a drop before the client gives up.
const RECONNECT_TRIES: u32 = 30;

#[derive(Parser)]
struct Args {
    /// Bearer token from POST /v1/accounts or /v1/sessions.
    #[arg(long)]
    token: String,
    #[arg(long, default_value = "ws://127.0.0.1:8080/v1/ws")]
    url: String,
    /// Replay the account's stored events with seq greater than this, then go live.
    #[arg(long)]
    since: Option<u64>,
    /// Replay a group's stored events with group_seq greater than M: `GID=M` (repeatable).
    #[arg(long = "group", value_parser = group_cursor)]
    groups: Vec<(String, u64)>,
}

fn group_cursor(text: &str) -> Result<(String, u64), String> {
    let (gid, at) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected GID=M"))?;
    let at = at.parse().map_err(|e| format!("{text:?}: {e}"))?;
    Ok((gid.to_owned(), at))
}

/// Where the device stands: the two cursors of the contract.
#[derive(Default)]
struct Cursors {
    /// The highest account `seq` seen, once known (`--since`, or a resume's).
    since: Option<u64>,
    groups: BTreeMap<String, u64>,
}

impl Cursors {
    /// Moves the cursors past one server frame.
    fn saw(&mut self, frame: &Value) {
        if let (Some(gid), Some(at)) = (frame["group_id"].as_str(), frame["group_seq"].as_u64()) {
            // Only one past the last: after a hole, resume from before it.
            let last = self
                .groups
                .entry(gid.to_owned())
                .or_insert(at.saturating_sub(1));
            if at == *last + 1 {
                *last = at;
            }
        } else if frame["type"] != "hello"
            && let Some(seq) = frame["seq"].as_u64()
        {
            self.since = Some(self.since.map_or(seq, |s| s.max(seq)));
        }
    }

    /// The resume frame, once there is something to resume from.
    fn resume(&self, hello: &Value) -> Option<String> {
        if self.since.is_none() && self.groups.is_empty() {
            return None;
        }
        let since = self.since.or(hello["seq"].as_u64()).unwrap_or(0);
        Some(json!({"type": "resume", "since": since, "groups": self.groups}).to_string())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut cursors = Cursors {
        since: args.since,
        groups: args.groups.into_iter().collect(),
    };
    let mut tries = 0;
    loop {
        let mut request = args.url.as_str().into_client_request()?;
        request
            .headers_mut()
            .insert("Authorization", format!("Bearer {}", args.token).parse()?);
        let mut ws = match tokio_tungstenite::connect_async(request).await {
            Ok((ws, _)) => ws,
            // Once connected, a server that restarts gets RECONNECT_TRIES seconds to return.
            Err(e) if tries > 0 && tries < RECONNECT_TRIES => {
                tries += 1;
                eprintln!("reconnecting: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        tries = 1;
        let mut hello: Option<Value> = None;
        while let Some(msg) = ws.next().await {
            let text = match msg {
                Ok(Message::Text(text)) => text,
                Ok(Message::Close(frame)) => {
                    println!("closed: {frame:?}");
                    break;
                }
                Ok(_) => continue,
                Err(e) => {
                    println!("connection lost: {e}");
                    break;
                }
            };
            println!("{text}");
            let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
                continue;
            };
            if hello.is_none() && frame["type"] == "hello" {
                if let Some(resume) = cursors.resume(&frame) {
                    ws.send(Message::text(resume)).await?;
                }
                // Groups it had no cursor for: live from their heads on.
                if let Some(heads) = frame["groups"].as_object() {
                    for (gid, head) in heads {
                        if let Some(head) = head.as_u64() {
                            cursors.groups.entry(gid.clone()).or_insert(head);
                        }
                    }
                }
                hello = Some(frame);
                continue;
            }
            cursors.saw(&frame);
        }
        // Connect again and resume from where this device stands.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
