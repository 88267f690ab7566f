//! Peer servers that `group-fanout` can also drive, for comparison with Chorus: the NATS
//! server over WebSocket (Debian's 2.9 and the current one), Centrifugo v6 and Socket.IO
//! (Node). The harness starts each one on loopback with a config of its own in a temp dir,
//! connects G x M receiving clients that join G groups (a NATS subject, a Centrifugo channel
//! or a Socket.IO room per group), and drives them with
//! [`scenarios::run_fanout`](crate::scenarios::run_fanout) exactly as it drives Chorus,
//! measuring the peer process's CPU as it does Chorus's.
//!
//! - `nats.rs`: the NATS text protocol over WebSocket; the publisher is plain TCP.
//! - `centrifugo.rs`: Centrifugo's JSON protocol over WebSocket; publishing through its
//!   server HTTP API.
//! - `socketio.rs`: Engine.IO v4 / Socket.IO v5 over WebSocket against
//!   `loadtest/peers/socketio-server.js`.

pub mod centrifugo;
pub mod nats;
pub mod socketio;

use std::fs::File;
use std::future::Future;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::net::TcpSocket;
use tokio_tungstenite::client_async;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, Ws};
use crate::error::{Error, Result};
use crate::report::Report;
use crate::scenarios::{Common, Publish, SpawnReceivers, open_all, run_fanout};

/// Which server `group-fanout` runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Chorus (the server under test).
    Chorus,
    /// nats-server 2.9, Debian's package.
    Nats29,
    /// The current nats-server (2.15), built by loadtest/peers/setup.sh.
    Nats,
    /// Centrifugo v6, built by loadtest/peers/setup.sh.
    Centrifugo,
    /// Socket.IO 4 on Node (loadtest/peers/socketio-server.js).
    Socketio,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Chorus => "chorus",
            Kind::Nats29 => "nats29",
            Kind::Nats => "nats",
            Kind::Centrifugo => "centrifugo",
            Kind::Socketio => "socketio",
        }
    }
}

/// Where the peers' programs are.
#[derive(Debug, Clone)]
pub struct Peers {
    /// Debian's `nats-server` 2.9 (a bare name is looked up on PATH, then /usr/sbin, /usr/bin).
    pub nats29_server: PathBuf,
    /// The current `nats-server` (setup.sh builds it into `loadtest/peers/bin`).
    pub nats_server: PathBuf,
    /// `centrifugo` v6 (setup.sh builds it into `loadtest/peers/bin`).
    pub centrifugo: PathBuf,
    /// `node` binary (looked up like nats29_server).
    pub node: PathBuf,
    /// `loadtest/peers`: `socketio-server.js` and its `node_modules`.
    pub dir: PathBuf,
}

/// A peer server started by the harness.
pub enum Started {
    Nats(nats::Server),
    Centrifugo(centrifugo::Server),
    Socketio(socketio::Server),
}

/// Starts the peer `kind` (not Chorus: that is [`crate::server::Target::spawn`]).
pub async fn start(kind: Kind, peers: &Peers) -> Result<Started> {
    match kind {
        Kind::Nats29 => Ok(Started::Nats(
            nats::Server::start(&peers.nats29_server, kind.name()).await?,
        )),
        Kind::Nats => Ok(Started::Nats(
            nats::Server::start(&peers.nats_server, kind.name()).await?,
        )),
        Kind::Centrifugo => Ok(Started::Centrifugo(
            centrifugo::Server::start(&peers.centrifugo).await?,
        )),
        Kind::Socketio => Ok(Started::Socketio(socketio::Server::start(peers).await?)),
        Kind::Chorus => Err(Error::Unexpected(
            "chorus is not a peer: start it with Target::spawn".into(),
        )),
    }
}

impl Started {
    /// `group-fanout` against this peer: G groups of M online members, message i to group
    /// i mod G.
    pub async fn group_fanout(
        &self,
        groups: usize,
        members: usize,
        common: &Common,
    ) -> Result<Report> {
        match self {
            Started::Nats(s) => s.group_fanout(groups, members, common).await,
            Started::Centrifugo(s) => s.group_fanout(groups, members, common).await,
            Started::Socketio(s) => s.group_fanout(groups, members, common).await,
        }
    }
}

/// The subject / channel / room of group `g`.
pub fn group_name(g: usize) -> String {
    format!("group.{g}")
}

/// A child process with its temp dir, stopped (SIGTERM, then SIGKILL after 5 s) on drop.
pub struct Process {
    child: Child,
    pub pid: u32,
    /// Config and log; removed on drop.
    _dir: tempfile::TempDir,
    pub log: PathBuf,
}

impl Process {
    /// Starts `cmd` with stderr (and stdout unless the caller piped it) into `dir/<name>.log`.
    pub fn spawn(
        mut cmd: std::process::Command,
        dir: tempfile::TempDir,
        name: &str,
        pipe_stdout: bool,
    ) -> Result<Process> {
        let log = dir.path().join(format!("{name}.log"));
        let file = File::create(&log)?;
        cmd.stdin(std::process::Stdio::null())
            .stderr(file.try_clone()?);
        if pipe_stdout {
            cmd.stdout(std::process::Stdio::piped());
        } else {
            cmd.stdout(file);
        }
        let child = cmd
            .spawn()
            .map_err(|e| Error::Unexpected(format!("cannot start {name}: {e}")))?;
        Ok(Process {
            pid: child.id(),
            child,
            _dir: dir,
            log,
        })
    }

    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// An error if the process has already exited, with the end of its log.
    pub fn check_alive(&mut self, what: &str) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(Error::Unexpected(format!(
                "{what} exited ({status}): {}",
                self.log_tail()
            ))),
            Err(e) => Err(Error::Unexpected(format!("{what}: {e}"))),
        }
    }

    /// The last lines of the log, on one line.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Finds a program: a path with a slash as is, a bare name on PATH, then in /usr/sbin and
/// /usr/bin (Debian puts nats-server in /usr/sbin).
pub fn find_program(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return program.is_file().then(|| program.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// A loopback port free right now (the peer binds it a moment later).
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Waits until `addr` accepts TCP connections, `process` is still alive, for up to `limit`.
pub async fn wait_listening(
    addr: SocketAddr,
    process: &mut Process,
    what: &str,
    limit: Duration,
) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        process.check_alive(what)?;
        if let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr)).await
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Unexpected(format!(
                "{what} did not listen on {addr} in {limit:?}: {}",
                process.log_tail()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Opens a WebSocket to `url` at `server` from loopback address `source` (no hello read).
pub async fn ws_connect(url: &str, server: SocketAddr, source: IpAddr) -> Result<Ws> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    let (ws, _) = client_async(url, stream).await?;
    Ok(ws)
}

/// The next text or binary frame of a handshake, waiting 10 s at most; an error if the
/// socket closes first. `what` names the peer and the step in errors.
pub async fn handshake_frame(ws: &mut Ws, what: &str) -> Result<Message> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .map_err(|_| Error::Unexpected(format!("{what}: no answer in 10 s")))?;
        match frame {
            Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => return Ok(m),
            Some(Ok(Message::Close(c))) => {
                return Err(Error::Unexpected(format!("{what}: closed: {c:?}")));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => return Err(Error::Unexpected(format!("{what}: socket ended"))),
        }
    }
}

/// Opens `n` WebSockets to `url` at `server`, client i from loopback source i mod `sources`,
/// and runs `handshake(ws, i)` on each (through [`open_all`](crate::scenarios::open_all)).
pub async fn open_clients<T, F, Fut>(
    url: &str,
    server: SocketAddr,
    n: usize,
    sources: usize,
    handshake: F,
) -> (Vec<(usize, T)>, Vec<String>)
where
    F: Fn(Ws, usize) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let handshake = &handshake;
    open_all(n, |i| async move {
        let ws = ws_connect(url, server, client::source(i, sources)).await?;
        handshake(ws, i).await
    })
    .await
}

/// Warns about failed clients; an error if none made it.
pub fn check_clients(what: &str, ok: usize, errors: &[String]) -> Result<()> {
    if let Some(first) = errors.first() {
        eprintln!(
            "warning: {what}: {} clients failed, first: {first}",
            errors.len()
        );
    }
    if ok == 0 {
        return Err(Error::Unexpected(format!(
            "{what}: no client connected: {}",
            errors.first().cloned().unwrap_or_default()
        )));
    }
    Ok(())
}

/// The publisher of a peer's run: message i goes to group i mod `groups` with a
/// `payload`-byte text carrying the load-test marker; `send(group, text)` publishes it.
pub fn group_publish<F, Fut>(groups: usize, payload: usize, send: F) -> Publish
where
    F: Fn(String, String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    Arc::new(move |i, due| {
        Box::pin(send(
            group_name((i as usize) % groups),
            client::payload(i, due, payload),
        ))
    })
}

/// A peer's `group-fanout` run, once its driver has connected the receivers.
pub struct PeerRun<'a> {
    /// The target's name in the report.
    pub name: &'static str,
    /// The peer's process, whose CPU and memory the report gives.
    pub pid: u32,
    pub groups: usize,
    pub members: usize,
    pub common: &'a Common,
}

impl PeerRun<'_> {
    /// Runs [`run_fanout`] with these receivers and publisher and reports it in the same
    /// shape as Chorus's.
    pub async fn run(
        &self,
        spawn: SpawnReceivers,
        publish: Publish,
        extra: serde_json::Value,
    ) -> Result<Report> {
        let (groups, members, common) = (self.groups, self.members, self.common);
        let run = run_fanout(spawn, common, members as u64, publish, vec![self.pid]).await?;
        let target = crate::server::Target::attach(self.name.into(), Some(self.pid));
        let params = serde_json::json!({"groups": groups, "members": members,
            "rate": common.rate, "payload": common.payload,
            "duration_s": common.duration.as_secs()});
        Ok(crate::scenarios::finish(
            "group-fanout",
            &target,
            params,
            run.published * members as u64,
            run,
            extra,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers() -> Peers {
        let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/peers"));
        Peers {
            nats29_server: PathBuf::from("/usr/sbin/nats-server"),
            nats_server: dir.join("bin/nats-server"),
            centrifugo: dir.join("bin/centrifugo"),
            node: PathBuf::from("node"),
            dir,
        }
    }

    fn common() -> Common {
        Common {
            duration: Duration::from_secs(1),
            sources: 2,
            rate: 10.0,
            publishers: 1,
            payload: 64,
        }
    }

    /// End to end against each peer when it is installed (loadtest/peers/setup.sh): 2 groups
    /// of 3 members, 1 s at 10 msg/s; every member gets every message of its group.
    async fn smoke(kind: Kind) {
        let server = match start(kind, &peers()).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("skipped: {} not available: {e}", kind.name());
                return;
            }
        };
        let r = server.group_fanout(2, 3, &common()).await.unwrap();
        assert!(r.published >= 5, "{r:?}");
        assert_eq!(r.expected, r.published * 3);
        assert_eq!(r.delivered, r.expected, "{r:?}");
        assert_eq!(r.target, kind.name());
        assert_eq!(r.closed_by_server, 0);
        let w = r.server_window.unwrap();
        assert!(w.cpu_s >= 0.0 && w.window_s > 0.5, "{w:?}");
        assert!(w.rss_kib.unwrap() > 0);
    }

    #[tokio::test]
    async fn nats29_smoke() {
        smoke(Kind::Nats29).await;
    }

    #[tokio::test]
    async fn nats_smoke() {
        smoke(Kind::Nats).await;
    }

    #[tokio::test]
    async fn centrifugo_smoke() {
        smoke(Kind::Centrifugo).await;
    }

    #[tokio::test]
    async fn socketio_smoke() {
        smoke(Kind::Socketio).await;
    }

    #[test]
    fn missing_programs_are_not_found() {
        assert_eq!(find_program(Path::new("/nonexistent/nats-server")), None);
        assert_eq!(find_program(Path::new("no-such-program-here")), None);
        assert!(find_program(Path::new("sh")).is_some());
    }
}
