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

/// What a receiver's next read gave.
enum Read {
    /// A text or binary frame (WebSocket pings are answered by tungstenite and skipped).
    Data(Message),
    /// The run's stop signal.
    Stop,
    /// The socket closed or failed, and why.
    Closed(String),
}

/// Waits for the next data frame of `ws` or for `stop`, whichever comes first.
async fn next_read(ws: &mut Ws, stop: &mut watch::Receiver<bool>) -> Read {
    loop {
        tokio::select! {
            _ = stop.changed() => return Read::Stop,
            msg = ws.next() => match msg {
                Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => return Read::Data(m),
                Some(Ok(Message::Close(frame))) => return Read::Closed(format!("{frame:?}")),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Read::Closed(e.to_string()),
                None => return Read::Closed("ended".into()),
            }
        }
    }
}

/// What a receiver's frame handler made of one frame.
#[derive(Debug, Default)]
pub struct Handled {
    /// To send back on the socket (the answer to a ping of the server's protocol).
    pub reply: Option<Message>,
    /// Why the server ended the connection (a disconnect, an error, a protocol violation).
    pub closed: Option<String>,
    /// Read no further.
    pub stop: bool,
}

/// Reads data frames until `stop` turns true (or the socket ends), handing each to `handle`
/// with the run's [`Tally`] to record the markers it finds. Answers the frames read and
/// whether the server closed the socket.
pub async fn receive_with<H>(
    mut ws: Ws,
    rec: Recorder,
    delivered: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
    mut handle: H,
) -> (u64, Option<String>)
where
    H: FnMut(Message, &mut Tally) -> Handled,
{
    let mut frames = 0u64;
    let mut tally = Tally::new(rec, delivered);
    let mut closed = None;
    loop {
        match next_read(&mut ws, &mut stop).await {
            Read::Data(frame) => {
                frames += 1;
                let handled = handle(frame, &mut tally);
                if let Some(reply) = handled.reply {
                    let _ = ws.send(reply).await;
                }
                if handled.closed.is_some() {
                    closed = handled.closed;
                }
                if handled.stop {
                    break;
                }
            }
            Read::Stop => break,
            Read::Closed(why) => {
                closed = Some(why);
                break;
            }
        }
    }
    drop(tally);
    let _ = ws.close(None).await;
    let _ = ws.flush().await;
    (frames, closed)
}

/// A Chorus receiver: every text frame is one event, recorded if it carries a marker.
pub async fn receive(
    ws: Ws,
    rec: Recorder,
    delivered: Arc<AtomicU64>,
    stop: watch::Receiver<bool>,
) -> (u64, Option<String>) {
    receive_with(ws, rec, delivered, stop, |frame, tally| {
        if let Message::Text(text) = &frame {
            tally.seen(text);
        }
        Handled::default()
    })
    .await
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
