//! Centrifugo v6 as a fan-out peer. The harness starts it on 127.0.0.1 with a config of its
//! own: insecure client mode (anonymous connections may subscribe to any channel, as every
//! Chorus member may read its group), the server HTTP API behind an API key, and the memory
//! engine. Receivers speak Centrifugo's JSON protocol over WebSocket
//! (`/connection/websocket`): a `connect` command and a `subscribe` to channel `group.<g>`,
//! then publications arrive as `{"push":{"channel":..,"pub":{"data":..}}}`, several to a frame
//! separated by newlines. Messages are published through the server HTTP API
//! (`POST /api/publish`, header `X-API-Key`), one request each, like Chorus's HTTP post.
//!
//! Centrifugo pings every client with `{}` (25 s by default) and disconnects one that does not
//! answer `{}` within 8 s, so each receiver's task starts as soon as it has subscribed and
//! answers pings while the other clients connect, long before the run starts.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{oneshot, watch};
use tokio_tungstenite::tungstenite::Message;

use super::{
    PeerRun, Process, check_clients, find_program, free_port, group_name, group_publish,
    open_clients,
};
use crate::client::{self, Handled, Ws};
use crate::error::{Error, Result};
use crate::report::Report;
use crate::scenarios::{Common, Receiver, SpawnReceivers};
use crate::stats::Recorder;

/// One line of what the server sends (a frame holds one or more, newline-separated).
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// `{}`: the server's ping, to be answered with `{}`.
    Ping,
    /// The reply to command `id`, with the error the server gave, if any.
    Reply { id: u32, error: Option<String> },
    /// A publication's `data`, the JSON text that was published.
    Publication(Cow<'a, str>),
    /// The server disconnects the client.
    Disconnect(String),
    /// Any other push (join, leave, unsubscribe, ...).
    Other,
}

#[derive(Deserialize)]
struct RawReply<'a> {
    #[serde(default)]
    id: u32,
    error: Option<RawError>,
    #[serde(borrow)]
    push: Option<RawPush<'a>>,
}

#[derive(Deserialize)]
struct RawError {
    #[serde(default)]
    code: u32,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct RawPush<'a> {
    #[serde(rename = "pub", borrow)]
    publication: Option<RawPublication<'a>>,
    disconnect: Option<RawDisconnect>,
}

#[derive(Deserialize)]
struct RawDisconnect {
    #[serde(default)]
    code: u32,
    #[serde(default)]
    reason: String,
}

/// The harness publishes a JSON string, so `data` is one; anything else fails the line.
#[derive(Deserialize)]
struct RawPublication<'a> {
    #[serde(borrow)]
    data: Cow<'a, str>,
}

/// Parses one line of the JSON protocol.
pub fn parse_line(line: &str) -> Result<Line<'_>, String> {
    let line = line.trim();
    if line == "{}" {
        return Ok(Line::Ping);
    }
    let reply: RawReply<'_> =
        serde_json::from_str(line).map_err(|e| format!("bad line {line:?}: {e}"))?;
    if reply.id > 0 {
        return Ok(Line::Reply {
            id: reply.id,
            error: reply.error.map(|e| format!("{} {}", e.code, e.message)),
        });
    }
    Ok(match reply.push {
        Some(RawPush {
            publication: Some(p),
            ..
        }) => Line::Publication(p.data),
        Some(RawPush {
            disconnect: Some(d),
            ..
        }) => Line::Disconnect(format!("{} {}", d.code, d.reason)),
        _ => Line::Other,
    })
}

/// A running Centrifugo with its port and the API key of its server API.
pub struct Server {
    process: Process,
    pub port: u16,
    api_key: String,
    version: Option<String>,
}

impl Server {
    /// Starts the Centrifugo binary `bin` with a generated config (see the module doc).
    pub async fn start(bin: &Path) -> Result<Server> {
        let bin = find_program(bin).ok_or_else(|| {
            Error::Unexpected(format!(
                "{} not found (install it: loadtest/peers/setup.sh)",
                bin.display()
            ))
        })?;
        let version = std::process::Command::new(&bin)
            .arg("version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        // A per-run key: the API listens on loopback only, for this run only.
        let api_key = format!("loadtest-{}-{}", std::process::id(), crate::stats::now_ns());
        let config = json!({
            "http_server": {"address": "127.0.0.1", "port": port},
            "log": {"level": "warn"},
            "client": {"insecure": true},
            "http_api": {"key": api_key},
            // As nats-server's write_deadline here: long enough for a loaded 2-core machine.
            "websocket": {"write_timeout": "10s"},
            "usage_stats": {"disabled": true},
        });
        let conf = dir.path().join("centrifugo.json");
        std::fs::write(&conf, serde_json::to_vec_pretty(&config)?)?;
        let mut cmd = std::process::Command::new(&bin);
        cmd.arg("--config").arg(&conf);
        let mut process = Process::spawn(cmd, dir, "centrifugo", false)?;
        super::wait_listening(
            SocketAddr::from(([127, 0, 0, 1], port)),
            &mut process,
            "centrifugo",
            Duration::from_secs(15),
        )
        .await?;
        Ok(Server {
            process,
            port,
            api_key,
            version,
        })
    }

    /// `group-fanout` against Centrifugo: member j of group g subscribes to `group.<g>`.
    pub async fn group_fanout(
        &self,
        groups: usize,
        members: usize,
        common: &Common,
    ) -> Result<Report> {
        let (clients, errors) = open_clients(
            &format!("ws://127.0.0.1:{}/connection/websocket", self.port),
            SocketAddr::from(([127, 0, 0, 1], self.port)),
            groups * members,
            common.sources,
            |ws, i| async move {
                let ws = subscribe(ws, &group_name(i / members)).await?;
                let (start, go) = oneshot::channel();
                Ok((start, tokio::spawn(receive(ws, go))))
            },
        )
        .await;
        check_clients("centrifugo", clients.len(), &errors)?;
        let publisher = Publisher {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            url: format!("http://127.0.0.1:{}/api/publish", self.port),
            api_key: self.api_key.clone(),
        };
        let publish = group_publish(groups, common.payload, move |channel, text| {
            let publisher = publisher.clone();
            async move { publisher.publish(&channel, &text).await }
        });
        let spawn: SpawnReceivers = Box::new(move |rec, delivered, stop| {
            clients
                .into_iter()
                .map(|(_, (start, task))| {
                    // A client whose socket already ended has dropped its end: its task has
                    // finished and reports why.
                    let _ = start.send((rec.clone(), delivered.clone(), stop.clone()));
                    task
                })
                .collect::<Vec<Receiver>>()
        });
        let extra = json!({"connect_failures": errors.len(), "transport": "websocket",
                   "protocol": "json", "server_version": self.version});
        PeerRun {
            name: "centrifugo",
            pid: self.process.pid,
            groups,
            members,
            common,
        }
        .run(spawn, publish, extra)
        .await
    }
}

/// `connect` then `subscribe` in one frame (the server handles a frame's commands in order),
/// until both are answered; answers the server's pings meanwhile.
async fn subscribe(mut ws: Ws, channel: &str) -> Result<Ws> {
    let hello = format!(
        "{}\n{}",
        json!({"id": 1, "connect": {}}),
        json!({"id": 2, "subscribe": {"channel": channel}})
    );
    ws.send(Message::text(hello)).await?;
    let mut connected = false;
    loop {
        let Message::Text(text) =
            super::handshake_frame(&mut ws, "centrifugo: waiting for subscribe").await?
        else {
            continue;
        };
        for line in text.lines() {
            match parse_line(line).map_err(Error::Unexpected)? {
                Line::Ping => ws.send(Message::text("{}")).await?,
                Line::Reply { id, error: Some(e) } => {
                    let what = if id == 1 { "connect" } else { "subscribe" };
                    return Err(Error::Unexpected(format!("centrifugo {what}: {e}")));
                }
                Line::Reply { id: 1, .. } => connected = true,
                Line::Reply { id: 2, .. } if connected => return Ok(ws),
                Line::Disconnect(why) => {
                    return Err(Error::Unexpected(format!("centrifugo disconnect: {why}")));
                }
                _ => {}
            }
        }
    }
}

/// What a receiver needs once the run starts: where to record, the delivery counter, the
/// stop signal.
type Start = (Recorder, Arc<AtomicU64>, watch::Receiver<bool>);

/// A subscribed client: answers pings until the run starts, then records the marker of every
/// publication until `stop`.
async fn receive(mut ws: Ws, mut go: oneshot::Receiver<Start>) -> (u64, Option<String>) {
    let (rec, delivered, stop) = loop {
        tokio::select! {
            start = &mut go => match start {
                Ok(start) => break start,
                // The run was abandoned before it started.
                Err(_) => return (0, None),
            },
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    if text.lines().any(|l| matches!(parse_line(l), Ok(Line::Ping))) {
                        let _ = ws.send(Message::text("{}")).await;
                    }
                }
                Some(Ok(Message::Close(frame))) => return (0, Some(format!("{frame:?}"))),
                Some(Ok(_)) => {}
                Some(Err(e)) => return (0, Some(e.to_string())),
                None => return (0, Some("ended".into())),
            }
        }
    };
    client::receive_with(ws, rec, delivered, stop, |frame, tally| {
        let mut handled = Handled::default();
        let Message::Text(text) = frame else {
            return handled;
        };
        for line in text.lines() {
            match parse_line(line) {
                Ok(Line::Publication(data)) => tally.seen(&data),
                Ok(Line::Ping) => handled.reply = Some(Message::text("{}")),
                Ok(Line::Disconnect(why)) => handled.closed = Some(format!("disconnect {why}")),
                Ok(_) => {}
                Err(e) => handled.closed = Some(format!("protocol: {e}")),
            }
        }
        handled.stop = handled.closed.is_some();
        handled
    })
    .await
}

/// Publishes through the server HTTP API; a publish counts once Centrifugo has answered it
/// without an error, like Chorus's HTTP post.
#[derive(Clone)]
struct Publisher {
    http: reqwest::Client,
    url: String,
    api_key: String,
}

impl Publisher {
    async fn publish(&self, channel: &str, payload: &str) -> Result<()> {
        let response = self
            .http
            .post(&self.url)
            .header("X-API-Key", &self.api_key)
            .json(&json!({"channel": channel, "data": payload}))
            .send()
            .await?;
        let status = response.status();
        let body: serde_json::Value = response.json().await?;
        if !status.is_success() || body.get("error").is_some() {
            return Err(Error::Unexpected(format!(
                "centrifugo publish: {status} {body}"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_the_json_protocol() {
        assert_eq!(parse_line("{}").unwrap(), Line::Ping);
        assert_eq!(
            parse_line(
                r#"{"id":1,"connect":{"client":"c","version":"6.9.1","ping":25,"pong":true}}"#
            )
            .unwrap(),
            Line::Reply { id: 1, error: None }
        );
        assert_eq!(
            parse_line(r#"{"id":2,"error":{"code":103,"message":"permission denied"}}"#).unwrap(),
            Line::Reply {
                id: 2,
                error: Some("103 permission denied".into())
            }
        );
        assert_eq!(
            parse_line(
                r#"{"push":{"channel":"group.0","disconnect":{"code":3008,"reason":"slow"}}}"#
            )
            .unwrap(),
            Line::Disconnect("3008 slow".into())
        );
        assert_eq!(
            parse_line(r#"{"push":{"channel":"group.0","join":{"info":{"client":"x"}}}}"#).unwrap(),
            Line::Other
        );
        assert!(parse_line("not json").is_err());
    }

    #[test]
    fn a_frame_of_publications_carries_every_marker() {
        let frame: String = (0..3)
            .map(|i| {
                json!({"push": {"channel": "group.0",
                       "pub": {"data": client::payload(i, 1_700_000_000_000 + i, 100), "offset": i}}})
                .to_string()
            })
            .collect::<Vec<_>>()
            .join("\n");
        let markers: Vec<_> = frame
            .lines()
            .map(|l| match parse_line(l).unwrap() {
                Line::Publication(data) => client::parse_marker(&data),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            markers,
            (0..3)
                .map(|i| Some((i, 1_700_000_000_000 + i)))
                .collect::<Vec<_>>()
        );
    }
}
