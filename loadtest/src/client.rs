//! WebSocket clients: many sockets spread over loopback source addresses (127.0.0.2,
//! 127.0.0.3, ...) so no single source address runs out of its ~28k ephemeral ports, and a
//! receive loop that timestamps every load-test payload it sees.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpSocket;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{WebSocketStream, client_async};

use crate::error::{Error, Result};
use crate::stats::{Recorder, Tally};

pub type Ws = WebSocketStream<tokio::net::TcpStream>;

/// Raises this process's open-file limit to the hard limit; answers (soft, hard) after.
pub fn raise_nofile() -> (u64, u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        }
    }
    (lim.rlim_cur, lim.rlim_max)
}

/// The `i`th of `sources` loopback source addresses, from 127.0.0.2 on.
pub fn source(i: usize, sources: usize) -> IpAddr {
    let n = (i % sources.max(1)) as u32 + 2;
    IpAddr::V4(Ipv4Addr::from(0x7f00_0000 | n))
}

/// Opens one WebSocket from `source` and reads the hello frame.
pub async fn connect(url: &str, server: SocketAddr, source: IpAddr) -> Result<Ws> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    let (mut ws, _) = client_async(url, stream).await?;
    match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        Ok(Some(Ok(Message::Text(_)))) => Ok(ws),
        other => Err(Error::Unexpected(format!("no hello frame: {other:?}"))),
    }
}

/// The address a `ws://host:port/...` URL points at.
pub fn server_addr(url: &str) -> Result<SocketAddr> {
    let rest = url
        .split("://")
        .nth(1)
        .ok_or_else(|| Error::Unexpected(format!("not a URL: {url}")))?;
    let host = rest.split('/').next().unwrap_or_default();
    host.parse()
        .map_err(|e| Error::Unexpected(format!("{host} is not ip:port: {e}")))
}

/// Finds the `lt:<message>:<sent ns>:` marker that every load-test payload carries.
pub fn parse_marker(text: &str) -> Option<(u64, u64)> {
    let at = text.find("lt:")?;
    let mut parts = text[at + 3..].splitn(3, ':');
    let msg = parts.next()?.parse().ok()?;
    let sent = parts.next()?.parse().ok()?;
    Some((msg, sent))
}

/// A payload of `bytes` bytes (at least the marker) carrying message id and send time.
pub fn payload(msg: u64, sent_ns: u64, bytes: usize) -> String {
    let mut p = format!("lt:{msg}:{sent_ns}:");
    while p.len() < bytes {
        p.push('x');
    }
    p
}

/// Reads frames until `stop` turns true (or the socket ends), recording every marker seen.
/// Answers the frames read and whether the server closed the socket.
pub async fn receive(
    mut ws: Ws,
    rec: Recorder,
    delivered: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) -> (u64, Option<String>) {
    let mut frames = 0u64;
    let mut tally = Tally::new(rec, delivered);
    let mut closed = None;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    frames += 1;
                    tally.seen(&text);
                }
                Some(Ok(Message::Close(frame))) => {
                    closed = Some(format!("{frame:?}"));
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    closed = Some(e.to_string());
                    break;
                }
                None => {
                    closed = Some("ended".into());
                    break;
                }
            }
        }
    }
    drop(tally);
    let _ = ws.close(None).await;
    let _ = ws.flush().await;
    (frames, closed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_round_trip() {
        let p = payload(42, 1_700_000_000_123, 100);
        assert_eq!(p.len(), 100);
        let frame = format!(r#"{{"type":"group.message","data":{{"text":"{p}"}}}}"#);
        assert_eq!(parse_marker(&frame), Some((42, 1_700_000_000_123)));
        assert_eq!(parse_marker("no marker"), None);
    }

    #[test]
    fn sources_cycle_over_loopback() {
        assert_eq!(source(0, 4).to_string(), "127.0.0.2");
        assert_eq!(source(5, 4).to_string(), "127.0.0.3");
    }
}
