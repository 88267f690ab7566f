//! The NATS server as a fan-out peer (two targets: Debian's nats-server 2.9 as `nats29`, the
//! current one built by `loadtest/peers/setup.sh` as `nats`): receivers are NATS clients over
//! WebSocket (one per member, subscribed to `group.<g>`); the publisher is one plain-TCP NATS
//! connection.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use futures_util::SinkExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{Mutex, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;

use super::{
    PeerRun, Process, check_clients, find_program, free_port, group_name, group_publish,
    open_clients,
};
use crate::client::{self, Handled, Ws};
use crate::error::{Error, Result};
use crate::report::Report;
use crate::scenarios::{Common, SpawnReceivers};
use crate::stats::Recorder;

const CONNECT: &str = "CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1}\r\n";
/// A control line longer than this without CRLF is a protocol error (NATS's own limit is 4 KiB).
const MAX_CONTROL: usize = 64 * 1024;

/// One operation of the NATS text protocol, borrowed from the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Op<'a> {
    Info(&'a str),
    Msg {
        subject: &'a str,
        sid: &'a str,
        reply: Option<&'a str>,
        payload: &'a [u8],
    },
    Ping,
    Pong,
    Ok,
    Err(&'a str),
}

/// Parses one operation at the start of `buf`: `Ok(None)` while it is incomplete (a frame
/// may end mid-operation), else the operation and how many bytes it took.
pub fn parse_op(buf: &[u8]) -> Result<Option<(Op<'_>, usize)>, String> {
    let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") else {
        if buf.len() > MAX_CONTROL {
            return Err(format!("no CRLF in {} bytes", buf.len()));
        }
        return Ok(None);
    };
    let line = std::str::from_utf8(&buf[..eol]).map_err(|e| format!("control line: {e}"))?;
    let after = eol + 2;
    let (verb, rest) = match line.split_once([' ', '\t']) {
        Some((v, r)) => (v, r.trim()),
        None => (line, ""),
    };
    let op = if verb.eq_ignore_ascii_case("MSG") {
        let mut it = rest.split_ascii_whitespace();
        let (Some(subject), Some(sid), Some(a)) = (it.next(), it.next(), it.next()) else {
            return Err(format!("bad MSG line: {line}"));
        };
        let (reply, size) = match it.next() {
            Some(size) => (Some(a), size),
            None => (None, a),
        };
        let size: usize = size.parse().map_err(|_| format!("bad MSG size: {line}"))?;
        let end = after + size;
        if buf.len() < end + 2 {
            return Ok(None);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err(format!("MSG payload not followed by CRLF: {line}"));
        }
        return Ok(Some((
            Op::Msg {
                subject,
                sid,
                reply,
                payload: &buf[after..end],
            },
            end + 2,
        )));
    } else if verb.eq_ignore_ascii_case("PING") {
        Op::Ping
    } else if verb.eq_ignore_ascii_case("PONG") {
        Op::Pong
    } else if verb.eq_ignore_ascii_case("+OK") {
        Op::Ok
    } else if verb.eq_ignore_ascii_case("-ERR") {
        Op::Err(rest)
    } else if verb.eq_ignore_ascii_case("INFO") {
        Op::Info(rest)
    } else {
        return Err(format!("unknown operation: {line}"));
    };
    Ok(Some((op, after)))
}

/// A running nats-server with its client (TCP) and WebSocket ports.
pub struct Server {
    process: Process,
    /// The target's name in reports (`nats29`, `nats`).
    name: &'static str,
    pub port: u16,
    pub ws_port: u16,
}

impl Server {
    /// Starts the nats-server `bin` with a generated config: client port and WebSocket port
    /// on 127.0.0.1, no TLS, a write deadline long enough for a loaded 2-core machine.
    pub async fn start(bin: &Path, name: &'static str) -> Result<Server> {
        let bin = find_program(bin).ok_or_else(|| {
            Error::Unexpected(format!(
                "{} not found (install it: loadtest/peers/setup.sh)",
                bin.display()
            ))
        })?;
        let dir = tempfile::tempdir()?;
        let (port, ws_port) = (free_port()?, free_port()?);
        let conf = dir.path().join("nats.conf");
        std::fs::write(
            &conf,
            format!(
                "host: 127.0.0.1\nport: {port}\nwrite_deadline: \"10s\"\n\
                 max_connections: 1000000\n\
                 websocket {{\n  host: 127.0.0.1\n  port: {ws_port}\n  no_tls: true\n}}\n"
            ),
        )?;
        let mut cmd = std::process::Command::new(&bin);
        cmd.arg("-c").arg(&conf);
        let mut process = Process::spawn(cmd, dir, "nats-server", false)?;
        let limit = Duration::from_secs(15);
        super::wait_listening(
            SocketAddr::from(([127, 0, 0, 1], ws_port)),
            &mut process,
            "nats-server",
            limit,
        )
        .await?;
        super::wait_listening(
            SocketAddr::from(([127, 0, 0, 1], port)),
            &mut process,
            "nats-server",
            limit,
        )
        .await?;
        Ok(Server {
            process,
            name,
            port,
            ws_port,
        })
    }

    /// `group-fanout` against NATS: member j of group g subscribes to `group.<g>`.
    pub async fn group_fanout(
        &self,
        groups: usize,
        members: usize,
        common: &Common,
    ) -> Result<Report> {
        let (clients, errors) = open_clients(
            &format!("ws://127.0.0.1:{}", self.ws_port),
            SocketAddr::from(([127, 0, 0, 1], self.ws_port)),
            groups * members,
            common.sources,
            |ws, i| async move { subscribe(ws, &group_name(i / members)).await },
        )
        .await;
        check_clients(self.name, clients.len(), &errors)?;
        let publisher = Publisher::connect(SocketAddr::from(([127, 0, 0, 1], self.port))).await?;
        let publish = group_publish(groups, common.payload, move |subject, text| {
            let publisher = publisher.clone();
            async move { publisher.publish(&subject, text.as_bytes()).await }
        });
        let spawn: SpawnReceivers = Box::new(move |rec, delivered, stop| {
            clients
                .into_iter()
                .map(|(_, (ws, buf))| {
                    tokio::spawn(receive(
                        ws,
                        buf,
                        rec.clone(),
                        delivered.clone(),
                        stop.clone(),
                    ))
                })
                .collect()
        });
        let extra = json!({"connect_failures": errors.len(), "transport": "websocket",
                   "server_version": self.version()});
        PeerRun {
            name: self.name,
            pid: self.process.pid,
            groups,
            members,
            common,
        }
        .run(spawn, publish, extra)
        .await
    }

    fn version(&self) -> Option<String> {
        let log = std::fs::read_to_string(&self.process.log).ok()?;
        log.lines()
            .find_map(|l| l.split("Version:").nth(1))
            .map(|v| v.trim().to_owned())
    }
}

/// Handshake over a fresh WebSocket: INFO in, CONNECT + SUB + PING out, until PONG. Answers
/// the socket and whatever arrived after the PONG.
async fn subscribe(mut ws: Ws, subject: &str) -> Result<(Ws, Vec<u8>)> {
    let hello = format!("{CONNECT}SUB {subject} 1\r\nPING\r\n");
    ws.send(Message::binary(hello.into_bytes())).await?;
    let mut buf = Vec::new();
    loop {
        match super::handshake_frame(&mut ws, "nats: waiting for PONG").await? {
            Message::Binary(b) => buf.extend_from_slice(&b),
            Message::Text(t) => buf.extend_from_slice(t.as_bytes()),
            _ => continue,
        }
        let mut pos = 0;
        let mut pong = false;
        let mut ping = false;
        while let Some((op, n)) = parse_op(&buf[pos..]).map_err(Error::Unexpected)? {
            pos += n;
            match op {
                Op::Pong => {
                    pong = true;
                    break;
                }
                Op::Ping => ping = true,
                Op::Err(e) => return Err(Error::Unexpected(format!("nats: -ERR {e}"))),
                _ => {}
            }
        }
        buf.drain(..pos);
        if ping {
            ws.send(Message::binary(b"PONG\r\n".to_vec())).await?;
        }
        if pong {
            return Ok((ws, buf));
        }
    }
}

/// Reads until `stop`, recording the marker of every MSG; answers PING with PONG. `buf`
/// holds what arrived after the handshake's PONG (an operation may span frames).
async fn receive(
    ws: Ws,
    mut buf: Vec<u8>,
    rec: Recorder,
    delivered: Arc<AtomicU64>,
    stop: watch::Receiver<bool>,
) -> (u64, Option<String>) {
    client::receive_with(ws, rec, delivered, stop, move |frame, tally| {
        let mut handled = Handled::default();
        match frame {
            Message::Binary(b) => buf.extend_from_slice(&b),
            Message::Text(t) => buf.extend_from_slice(t.as_bytes()),
            _ => return handled,
        }
        let mut pos = 0;
        let mut pings = 0;
        loop {
            match parse_op(&buf[pos..]) {
                Ok(Some((op, n))) => {
                    pos += n;
                    match op {
                        Op::Msg { payload, .. } => {
                            if let Ok(text) = std::str::from_utf8(payload) {
                                tally.seen(text);
                            }
                        }
                        Op::Ping => pings += 1,
                        Op::Err(e) => handled.closed = Some(format!("-ERR {e}")),
                        _ => {}
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    handled.closed = Some(format!("protocol: {e}"));
                    handled.stop = true;
                    break;
                }
            }
        }
        buf.drain(..pos);
        if pings > 0 {
            handled.reply = Some(Message::binary(b"PONG\r\n".repeat(pings)));
        }
        handled
    })
    .await
}

/// One plain-TCP NATS connection shared by every publish. Each PUB is followed by a PING and
/// completes on its PONG (the server answers in order), so a publish counts once the server
/// has taken it, like Chorus's HTTP post, and flat-out mode stays closed-loop.
#[derive(Clone)]
struct Publisher {
    writer: Arc<Mutex<BufWriter<OwnedWriteHalf>>>,
    /// One waiter per PING sent, oldest first; pushed under the writer lock.
    pongs: Arc<std::sync::Mutex<VecDeque<oneshot::Sender<()>>>>,
}

impl Publisher {
    async fn connect(addr: SocketAddr) -> Result<Publisher> {
        let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
            .await
            .map_err(|_| Error::Unexpected("nats publisher: connect timed out".into()))??;
        stream.set_nodelay(true)?;
        let (mut read, write) = stream.into_split();
        let publisher = Publisher {
            writer: Arc::new(Mutex::new(BufWriter::new(write))),
            pongs: Arc::new(std::sync::Mutex::new(VecDeque::new())),
        };
        let (w, pongs) = (publisher.writer.clone(), publisher.pongs.clone());
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = vec![0u8; 16 * 1024];
            loop {
                let n = match read.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                let mut pos = 0;
                let mut pings = 0;
                loop {
                    match parse_op(&buf[pos..]) {
                        Ok(Some((op, used))) => {
                            pos += used;
                            match op {
                                Op::Ping => pings += 1,
                                Op::Pong => {
                                    if let Some(tx) =
                                        pongs.lock().ok().and_then(|mut q| q.pop_front())
                                    {
                                        let _ = tx.send(());
                                    }
                                }
                                Op::Err(e) => eprintln!("warning: nats publisher: -ERR {e}"),
                                _ => {}
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            eprintln!("warning: nats publisher: {e}");
                            return;
                        }
                    }
                }
                buf.drain(..pos);
                for _ in 0..pings {
                    let mut w = w.lock().await;
                    let _ = w.write_all(b"PONG\r\n").await;
                    let _ = w.flush().await;
                }
            }
            // Dropping the waiters fails the publishes still waiting.
            if let Ok(mut q) = pongs.lock() {
                q.clear();
            }
        });
        // The first PONG proves the CONNECT was taken.
        publisher
            .send(CONNECT.as_bytes())
            .await
            .map_err(|e| Error::Unexpected(format!("nats publisher: no PONG: {e}")))?;
        Ok(publisher)
    }

    /// Writes `frame` + PING, flushes, and waits (10 s at most) for the PONG.
    async fn send(&self, frame: &[u8]) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        {
            let mut w = self.writer.lock().await;
            w.write_all(frame).await?;
            w.write_all(b"PING\r\n").await?;
            self.pongs
                .lock()
                .map_err(|_| Error::Unexpected("nats publisher: poisoned lock".into()))?
                .push_back(tx);
            w.flush().await?;
        }
        match tokio::time::timeout(Duration::from_secs(10), rx).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Error::Unexpected("nats publisher: connection lost".into())),
            Err(_) => Err(Error::Unexpected("nats publisher: no PONG in 10 s".into())),
        }
    }

    async fn publish(&self, subject: &str, payload: &[u8]) -> Result<()> {
        let mut frame = format!("PUB {subject} {}\r\n", payload.len()).into_bytes();
        frame.extend_from_slice(payload);
        frame.extend_from_slice(b"\r\n");
        self.send(&frame).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(buf: &[u8]) -> (Vec<Op<'_>>, usize) {
        let mut ops = Vec::new();
        let mut pos = 0;
        while let Some((op, n)) = parse_op(&buf[pos..]).unwrap() {
            ops.push(op);
            pos += n;
        }
        (ops, pos)
    }

    #[test]
    fn parses_several_operations_in_one_frame() {
        let buf = b"INFO {\"server_id\":\"x\"}\r\nPING\r\nMSG group.0 1 5\r\nhello\r\n+OK\r\nMSG group.1 7 _INBOX.r 3\r\nabc\r\n-ERR 'Slow Consumer'\r\nPONG\r\n";
        let (ops, used) = all(buf);
        assert_eq!(used, buf.len());
        assert_eq!(
            ops,
            vec![
                Op::Info("{\"server_id\":\"x\"}"),
                Op::Ping,
                Op::Msg {
                    subject: "group.0",
                    sid: "1",
                    reply: None,
                    payload: b"hello"
                },
                Op::Ok,
                Op::Msg {
                    subject: "group.1",
                    sid: "7",
                    reply: Some("_INBOX.r"),
                    payload: b"abc"
                },
                Op::Err("'Slow Consumer'"),
                Op::Pong,
            ]
        );
    }

    #[test]
    fn payload_may_hold_crlf_and_empty_payloads_parse() {
        let (ops, _) = all(b"MSG s 1 4\r\na\r\nb\r\nMSG s 1 0\r\n\r\n");
        assert_eq!(
            ops,
            vec![
                Op::Msg {
                    subject: "s",
                    sid: "1",
                    reply: None,
                    payload: b"a\r\nb"
                },
                Op::Msg {
                    subject: "s",
                    sid: "1",
                    reply: None,
                    payload: b""
                },
            ]
        );
    }

    #[test]
    fn split_frames_reassemble_at_every_cut() {
        let p = client::payload(42, 1_700_000_000_123, 100);
        let stream = format!(
            "MSG group.3 1 {}\r\n{p}\r\nPING\r\nMSG group.3 1 2\r\nok\r\n",
            p.len()
        );
        let bytes = stream.as_bytes();
        for cut in 0..=bytes.len() {
            let mut buf = Vec::new();
            let mut markers = Vec::new();
            let mut pings = 0;
            for frame in [&bytes[..cut], &bytes[cut..]] {
                buf.extend_from_slice(frame);
                let mut pos = 0;
                while let Some((op, n)) = parse_op(&buf[pos..]).unwrap() {
                    pos += n;
                    match op {
                        Op::Msg { payload, .. } => markers
                            .push(client::parse_marker(std::str::from_utf8(payload).unwrap())),
                        Op::Ping => pings += 1,
                        _ => {}
                    }
                }
                buf.drain(..pos);
            }
            assert!(buf.is_empty(), "cut {cut}: left {buf:?}");
            assert_eq!(
                markers,
                vec![Some((42, 1_700_000_000_123)), None],
                "cut {cut}"
            );
            assert_eq!(pings, 1, "cut {cut}");
        }
    }

    #[test]
    fn incomplete_and_bad_input() {
        assert_eq!(parse_op(b"MSG s 1 10\r\nshort").unwrap(), None);
        assert_eq!(parse_op(b"PIN").unwrap(), None);
        assert!(parse_op(b"MSG s 1 x\r\n").is_err());
        assert!(parse_op(b"MSG s 1 2\r\nabXY").is_err());
        assert!(parse_op(b"BOGUS\r\n").is_err());
        assert!(parse_op(&vec![b'a'; MAX_CONTROL + 1]).is_err());
    }
}
