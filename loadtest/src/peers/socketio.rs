//! Socket.IO as a fan-out peer: `loadtest/peers/socketio-server.js` on Node, receivers are
//! raw WebSocket clients speaking Engine.IO v4 / Socket.IO v5 that join room `group.<g>`
//! (acknowledged), and one more client emits `publish` for every message.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::{Mutex, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;

use super::{
    PeerRun, Peers, Process, check_clients, find_program, group_name, group_publish, open_clients,
};
use crate::client::{self, Handled, Ws};
use crate::error::{Error, Result};
use crate::report::Report;
use crate::scenarios::{Common, SpawnReceivers};
use crate::stats::Recorder;

/// A Socket.IO packet type (the digit after the Engine.IO `4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SioKind {
    Connect,
    Disconnect,
    Event,
    Ack,
    ConnectError,
    BinaryEvent,
    BinaryAck,
}

/// A Socket.IO packet: `<type>[<attachments>-][<nsp>,][<ack id>][<JSON>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sio<'a> {
    pub kind: SioKind,
    /// "/" unless the packet names another namespace.
    pub nsp: &'a str,
    pub id: Option<u64>,
    /// The JSON after the header ("" if none).
    pub data: &'a str,
}

/// An Engine.IO v4 packet as one WebSocket text frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet<'a> {
    Open(&'a str),
    Close,
    Ping(&'a str),
    Pong(&'a str),
    Message(Sio<'a>),
    Upgrade,
    Noop,
}

/// Parses one Engine.IO packet carrying (for type 4) one Socket.IO packet.
pub fn parse_packet(text: &str) -> Result<Packet<'_>, String> {
    let mut chars = text.chars();
    let eio = chars.next().ok_or("empty packet")?;
    let rest = &text[eio.len_utf8()..];
    Ok(match eio {
        '0' => Packet::Open(rest),
        '1' => Packet::Close,
        '2' => Packet::Ping(rest),
        '3' => Packet::Pong(rest),
        '4' => Packet::Message(parse_sio(rest)?),
        '5' => Packet::Upgrade,
        '6' => Packet::Noop,
        other => return Err(format!("unknown Engine.IO packet type {other:?}")),
    })
}

fn parse_sio(text: &str) -> Result<Sio<'_>, String> {
    let kind = match text.as_bytes().first() {
        Some(b'0') => SioKind::Connect,
        Some(b'1') => SioKind::Disconnect,
        Some(b'2') => SioKind::Event,
        Some(b'3') => SioKind::Ack,
        Some(b'4') => SioKind::ConnectError,
        Some(b'5') => SioKind::BinaryEvent,
        Some(b'6') => SioKind::BinaryAck,
        other => return Err(format!("unknown Socket.IO packet type {other:?}")),
    };
    let mut rest = &text[1..];
    if matches!(kind, SioKind::BinaryEvent | SioKind::BinaryAck) {
        let dash = rest
            .find('-')
            .ok_or("binary packet without attachment count")?;
        if !rest[..dash].bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("bad attachment count in {text:?}"));
        }
        rest = &rest[dash + 1..];
    }
    let mut nsp = "/";
    if rest.starts_with('/') {
        let end = rest.find(',').unwrap_or(rest.len());
        nsp = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or("");
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let id = if digits > 0 {
        Some(
            rest[..digits]
                .parse()
                .map_err(|e| format!("bad ack id: {e}"))?,
        )
    } else {
        None
    };
    Ok(Sio {
        kind,
        nsp,
        id,
        data: &rest[digits..],
    })
}

/// A running `socketio-server.js`.
pub struct Server {
    process: Process,
    pub port: u16,
    node_version: Option<String>,
}

impl Server {
    /// Starts `node socketio-server.js 0` in `peers.dir` and reads the port it reports.
    pub async fn start(peers: &Peers) -> Result<Server> {
        let node = find_program(&peers.node).ok_or_else(|| {
            Error::Unexpected(format!(
                "{} not found (install Node.js, then loadtest/peers/setup.sh)",
                peers.node.display()
            ))
        })?;
        let script = peers.dir.join("socketio-server.js");
        if !script.is_file() {
            return Err(Error::Unexpected(format!(
                "{} is missing",
                script.display()
            )));
        }
        if !peers.dir.join("node_modules/socket.io").is_dir() {
            return Err(Error::Unexpected(format!(
                "socket.io is not installed in {} (run loadtest/peers/setup.sh)",
                peers.dir.display()
            )));
        }
        let node_version = std::process::Command::new(&node)
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
        let mut cmd = std::process::Command::new(&node);
        cmd.arg(&script).arg("0").current_dir(&peers.dir);
        let mut process = Process::spawn(cmd, tempfile::tempdir()?, "socketio-server", true)?;
        let stdout = process
            .take_stdout()
            .ok_or_else(|| Error::Unexpected("socketio-server stdout not captured".into()))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                if !sent && let Some(port) = line.strip_prefix("listening ") {
                    let _ = tx.send(port.trim().to_owned());
                    sent = true;
                }
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let port = loop {
            match rx.try_recv() {
                Ok(port) => break port,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    process.check_alive("socketio-server")?;
                    return Err(Error::Unexpected(format!(
                        "socketio-server closed its stdout: {}",
                        process.log_tail()
                    )));
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => {}
            }
            process.check_alive("socketio-server")?;
            if std::time::Instant::now() > deadline {
                return Err(Error::Unexpected(format!(
                    "socketio-server did not report its port in 30 s: {}",
                    process.log_tail()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let port: u16 = port
            .parse()
            .map_err(|_| Error::Unexpected(format!("socketio-server said port {port:?}")))?;
        Ok(Server {
            process,
            port,
            node_version,
        })
    }

    fn url(&self) -> String {
        format!(
            "ws://127.0.0.1:{}/socket.io/?EIO=4&transport=websocket",
            self.port
        )
    }

    /// `group-fanout` against Socket.IO: member j of group g joins room `group.<g>`.
    pub async fn group_fanout(
        &self,
        groups: usize,
        members: usize,
        common: &Common,
    ) -> Result<Report> {
        let url = self.url();
        let server = SocketAddr::from(([127, 0, 0, 1], self.port));
        let sources = common.sources;
        let (clients, errors) = open_clients(
            &url,
            server,
            groups * members,
            sources,
            |ws, i| async move { join(ws, Some(&group_name(i / members))).await },
        )
        .await;
        check_clients("socketio", clients.len(), &errors)?;
        let publisher = {
            let ws = super::ws_connect(&url, server, client::source(0, sources)).await?;
            let ws = tokio::time::timeout(Duration::from_secs(10), join(ws, None))
                .await
                .map_err(|_| {
                    Error::Unexpected("socketio publisher: handshake timed out".into())
                })??;
            Publisher::new(ws)
        };
        let publish = group_publish(groups, common.payload, move |room, text| {
            let publisher = publisher.clone();
            async move { publisher.publish(&room, &text).await }
        });
        let spawn: SpawnReceivers = Box::new(move |rec, delivered, stop| {
            clients
                .into_iter()
                .map(|(_, ws)| {
                    tokio::spawn(receive(ws, rec.clone(), delivered.clone(), stop.clone()))
                })
                .collect()
        });
        let extra = json!({"connect_failures": errors.len(), "transport": "websocket",
                   "node_version": self.node_version});
        PeerRun {
            name: "socketio",
            pid: self.process.pid,
            groups,
            members,
            common,
        }
        .run(spawn, publish, extra)
        .await
    }
}

/// Engine.IO open, Socket.IO connect to "/", then (for a receiver) `join` with an ack.
async fn join(mut ws: Ws, room: Option<&str>) -> Result<Ws> {
    let mut connected = false;
    loop {
        let Message::Text(text) = super::handshake_frame(&mut ws, "socketio handshake").await?
        else {
            continue;
        };
        match parse_packet(&text).map_err(Error::Unexpected)? {
            Packet::Open(_) => ws.send(Message::text("40")).await?,
            Packet::Ping(p) => ws.send(Message::text(format!("3{p}"))).await?,
            Packet::Message(Sio {
                kind: SioKind::Connect,
                ..
            }) if !connected => {
                connected = true;
                let Some(room) = room else { return Ok(ws) };
                ws.send(Message::text(format!("420{}", json!(["join", room]))))
                    .await?;
            }
            Packet::Message(Sio {
                kind: SioKind::Ack,
                id: Some(0),
                ..
            }) if connected => return Ok(ws),
            Packet::Message(Sio {
                kind: SioKind::ConnectError,
                data,
                ..
            }) => return Err(Error::Unexpected(format!("socketio: connect error {data}"))),
            Packet::Close => return Err(Error::Unexpected("socketio: closed".into())),
            _ => {}
        }
    }
}

/// Reads until `stop`, recording the marker of every `msg` event; answers pings.
async fn receive(
    ws: Ws,
    rec: Recorder,
    delivered: Arc<AtomicU64>,
    stop: watch::Receiver<bool>,
) -> (u64, Option<String>) {
    client::receive_with(ws, rec, delivered, stop, |frame, tally| {
        let Message::Text(text) = frame else {
            return Handled::default();
        };
        let over = |why: String| Handled {
            closed: Some(why),
            stop: true,
            ..Handled::default()
        };
        match parse_packet(&text) {
            Ok(Packet::Message(Sio {
                kind: SioKind::Event,
                data,
                ..
            })) => {
                if data.starts_with("[\"msg\"") {
                    tally.seen(data);
                }
                Handled::default()
            }
            Ok(Packet::Ping(p)) => Handled {
                reply: Some(Message::text(format!("3{p}"))),
                ..Handled::default()
            },
            Ok(Packet::Close)
            | Ok(Packet::Message(Sio {
                kind: SioKind::Disconnect,
                ..
            })) => over("socket.io disconnect".into()),
            Ok(_) => Handled::default(),
            Err(e) => over(format!("protocol: {e}")),
        }
    })
    .await
}

/// The publishing client. Every `publish` carries an ack id and completes when the server
/// acknowledges it (after `io.to(room).emit`), so a publish counts once the server has taken
/// it, like Chorus's HTTP post. A background task answers pings and resolves acks.
#[derive(Clone)]
struct Publisher {
    sink: Arc<Mutex<SplitSink<Ws, Message>>>,
    next_id: Arc<AtomicU64>,
    acks: Acks,
}

type Acks = Arc<std::sync::Mutex<HashMap<u64, oneshot::Sender<()>>>>;

impl Publisher {
    fn new(ws: Ws) -> Publisher {
        let (sink, mut stream) = ws.split();
        let sink = Arc::new(Mutex::new(sink));
        let acks: Acks = Arc::default();
        let (s, a) = (sink.clone(), acks.clone());
        tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(t) = msg else { continue };
                match parse_packet(&t) {
                    Ok(Packet::Ping(p)) => {
                        let _ = s.lock().await.send(Message::text(format!("3{p}"))).await;
                    }
                    Ok(Packet::Message(Sio {
                        kind: SioKind::Ack,
                        id: Some(id),
                        ..
                    })) => {
                        if let Some(tx) = a.lock().ok().and_then(|mut m| m.remove(&id)) {
                            let _ = tx.send(());
                        }
                    }
                    _ => {}
                }
            }
            // Dropping the waiters fails the publishes still waiting.
            if let Ok(mut m) = a.lock() {
                m.clear();
            }
        });
        Publisher {
            sink,
            next_id: Arc::new(AtomicU64::new(1)),
            acks,
        }
    }

    /// Emits `publish` with {room, payload} and waits (10 s at most) for its ack.
    async fn publish(&self, room: &str, payload: &str) -> Result<()> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.acks
            .lock()
            .map_err(|_| Error::Unexpected("socketio publisher: poisoned lock".into()))?
            .insert(id, tx);
        let frame = json!(["publish", {"room": room, "payload": payload}]);
        let sent = self
            .sink
            .lock()
            .await
            .send(Message::text(format!("42{id}{frame}")))
            .await;
        let outcome = match sent {
            Err(e) => Err(e.into()),
            Ok(()) => match tokio::time::timeout(Duration::from_secs(10), rx).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err(Error::Unexpected(
                    "socketio publisher: connection lost".into(),
                )),
                Err(_) => Err(Error::Unexpected(
                    "socketio publisher: no ack in 10 s".into(),
                )),
            },
        };
        if outcome.is_err()
            && let Ok(mut m) = self.acks.lock()
        {
            m.remove(&id);
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_io_packets() {
        assert_eq!(
            parse_packet(r#"0{"sid":"a","pingInterval":25000}"#).unwrap(),
            Packet::Open(r#"{"sid":"a","pingInterval":25000}"#)
        );
        assert_eq!(parse_packet("2").unwrap(), Packet::Ping(""));
        assert_eq!(parse_packet("3probe").unwrap(), Packet::Pong("probe"));
        assert_eq!(parse_packet("1").unwrap(), Packet::Close);
        assert_eq!(parse_packet("6").unwrap(), Packet::Noop);
        assert!(parse_packet("").is_err());
        assert!(parse_packet("9").is_err());
    }

    #[test]
    fn socket_io_packets() {
        let sio = |t| match parse_packet(t).unwrap() {
            Packet::Message(s) => s,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            sio(r#"40{"sid":"x"}"#),
            Sio {
                kind: SioKind::Connect,
                nsp: "/",
                id: None,
                data: r#"{"sid":"x"}"#
            }
        );
        let p = client::payload(7, 1_700_000_000_000, 64);
        let frame = format!(r#"42["msg","{p}"]"#);
        let s = sio(&frame);
        assert_eq!(s.kind, SioKind::Event);
        assert_eq!(s.id, None);
        assert_eq!(client::parse_marker(s.data), Some((7, 1_700_000_000_000)));
        assert_eq!(
            sio(r#"430["ok"]"#),
            Sio {
                kind: SioKind::Ack,
                nsp: "/",
                id: Some(0),
                data: r#"["ok"]"#
            }
        );
        assert_eq!(
            sio(r#"42/chat,17["join","r"]"#),
            Sio {
                kind: SioKind::Event,
                nsp: "/chat",
                id: Some(17),
                data: r#"["join","r"]"#
            }
        );
        assert_eq!(
            sio(r#"451-["up",{"_placeholder":true,"num":0}]"#).kind,
            SioKind::BinaryEvent
        );
        assert_eq!(sio("41").kind, SioKind::Disconnect);
        assert_eq!(sio(r#"44{"message":"no"}"#).kind, SioKind::ConnectError);
        assert!(parse_packet("4").is_err());
        assert!(parse_packet("49").is_err());
    }
}
