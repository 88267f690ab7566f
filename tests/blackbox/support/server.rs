//! The server under test: the real `chorus` binary on 127.0.0.1:0 and a temporary data
//! directory (or, on the CQL store, a keyspace of its own: [`super::store`]), with its output
//! kept for the failure report; SIGKILL, SIGTERM and restarts on the same data. Each test
//! starts its own process, so tests running side by side in this one binary share no state,
//! port or environment.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::store::StoreLease;

/// The standard test settings, given as environment so that a test's own flag for one of
/// them wins (flag over environment): a cheap password hash, and the per-address limits of
/// account creation and contact uploads, and the password-hash cap, out of the way of tests
/// that make many accounts from 127.0.0.1 at once (`limits.rs` sets them low by flag).
pub const STANDARD_ENV: &[(&str, &str)] = &[
    ("CHORUS_PASSWORD_HASH_MEMORY_KIB", "256"),
    ("CHORUS_PASSWORD_HASH_ITERATIONS", "1"),
    ("CHORUS_ACCOUNT_CREATIONS_PER_HOUR", "1000000"),
    ("CHORUS_ACCOUNT_CREATION_BURST", "1000000"),
    ("CHORUS_CONTACT_UPLOADS_PER_HOUR", "1000000"),
    ("CHORUS_CONTACT_UPLOAD_BURST", "1000000"),
    ("CHORUS_PASSWORD_HASH_CONCURRENCY", "1024"),
];

/// A running (or stopped) server process bound to a temporary data directory.
pub struct Server {
    pub addr: String,
    pub data_dir: TempDir,
    /// The store's data when it is not in `data_dir` (a keyspace); kept across restarts,
    /// given back after the process is gone (fields drop after [`Drop::drop`]). Shared by
    /// the nodes of a cluster ([`super::cluster`]).
    store: Arc<StoreLease>,
    extra_args: Vec<String>,
    /// `CHORUS_FAULTS` for the next start (fault points armed: `chorus_actors::faults`).
    faults: Option<String>,
    /// Environment of the process besides `RUST_LOG` (e.g. `CHORUS_FAULTS`), kept across
    /// restarts.
    extra_env: Vec<(String, String)>,
    child: Option<Child>,
    log: Arc<Mutex<Vec<String>>>,
    /// Whether the standard flags include `--allow-private-destinations` (all but the
    /// servers of [`Server::start_strict`]).
    allow_private: bool,
}

impl Server {
    /// Start a server with the standard test flags.
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// Start a server with the standard test flags plus `extra` arguments.
    pub fn start_with(extra: &[&str]) -> Server {
        Server::start_prepared(extra, &[], |_| {})
    }

    /// Start a server with the standard test flags but the egress policy on (no
    /// `--allow-private-destinations`), plus `extra` arguments: for the tests of the policy
    /// itself, whose links to 127.0.0.1 must be refused.
    pub fn start_strict(extra: &[&str]) -> Server {
        Server::start_with_policy(Arc::new(StoreLease::take()), extra, &[], |_| {}, false)
    }

    /// Start a server with the standard test flags plus `extra` arguments and `env`
    /// variables (the fault points of `CHORUS_FAULTS`, for one).
    pub fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Server {
        Server::start_prepared(extra, env, |_| {})
    }

    /// Start a server with `extra` arguments and `env` variables, after `prepare` has run
    /// on its (empty) data directory (to mount a small filesystem there, say).
    pub fn start_prepared(
        extra: &[&str],
        env: &[(&str, &str)],
        prepare: impl FnOnce(&Path),
    ) -> Server {
        Server::start_on(Arc::new(StoreLease::take()), extra, env, prepare)
    }

    /// Start a server on `store`, which other servers may share (the nodes of a cluster
    /// share one keyspace).
    pub fn start_in(store: Arc<StoreLease>, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Server::start_on(store, extra, env, |_| {})
    }

    fn start_on(
        store: Arc<StoreLease>,
        extra: &[&str],
        env: &[(&str, &str)],
        prepare: impl FnOnce(&Path),
    ) -> Server {
        Server::start_with_policy(store, extra, env, prepare, true)
    }

    fn start_with_policy(
        store: Arc<StoreLease>,
        extra: &[&str],
        env: &[(&str, &str)],
        prepare: impl FnOnce(&Path),
        allow_private: bool,
    ) -> Server {
        let data_dir = tempfile::tempdir().expect("create temp data dir");
        prepare(data_dir.path());
        let mut server = Server {
            addr: String::new(),
            data_dir,
            store,
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            faults: None,
            extra_env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            child: None,
            log: Arc::new(Mutex::new(Vec::new())),
            allow_private,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "server already running");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chorus"));
        cmd.arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .args(self.store.args())
            // The peers a release goes to (testkit's receivers, SMTP sink, plain-http
            // Mastodon stand-ins) listen on 127.0.0.1, which the egress policy refuses:
            // every test server but the policy's own ([`Server::start_strict`]) turns it off.
            .args(self.allow_private.then_some("--allow-private-destinations"))
            .args(&self.extra_args)
            .envs(STANDARD_ENV.iter().copied())
            .env("RUST_LOG", "info")
            .env_remove("CHORUS_FAULTS")
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(points) = &self.faults {
            cmd.env("CHORUS_FAULTS", points);
        }
        let mut child = cmd.spawn().expect("spawn chorus binary");
        let stdout = child.stdout.take().expect("child stdout");
        let stderr = child.stderr.take().expect("child stderr");

        let (tx, rx) = mpsc::channel::<String>();
        let mut sent = false;
        keep_lines(stdout, self.log.clone(), move |line| {
            if !sent && let Some(addr) = parse_listen_addr(&line) {
                let _ = tx.send(addr);
                sent = true;
            }
            line
        });
        keep_lines(stderr, self.log.clone(), |line| format!("[stderr] {line}"));

        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(addr) => {
                    self.addr = addr;
                    break;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        panic!(
                            "chorus exited with {status} before listening; output:\n{}",
                            self.log_text()
                        );
                    }
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        panic!(
                            "chorus did not print `listening on http://` within 30 s; output:\n{}",
                            self.log_text()
                        );
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = child.kill();
                    let status = child.wait();
                    panic!(
                        "chorus closed stdout before listening ({status:?}); output:\n{}",
                        self.log_text()
                    );
                }
            }
        }
        self.child = Some(child);
    }

    pub fn log_text(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// Whether the server's log shows `text` within `within`: its output is read by a thread
    /// of its own, so a line written just before an answer may be read just after it.
    pub async fn logged(&self, text: &str, within: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + within;
        while !self.log_text().contains(text) {
            if std::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        true
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/ws", self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url(), path)
    }

    /// SIGKILL the process (no chance to flush anything).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Send SIGTERM without waiting.
    pub fn sigterm(&self) {
        self.signal(libc::SIGTERM);
    }

    /// SIGSTOP: the process stops where it is (its sockets stay open, its timers stop),
    /// as a long garbage-collection pause or a frozen VM would stop it.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT after [`Server::pause`].
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: libc::c_int) {
        let child = self.child.as_ref().expect("server is not running");
        let pid = child.id() as libc::pid_t;
        // SAFETY: plain kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill({signal}) failed");
    }

    /// Whether the process is running (started and not killed).
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// Wait (up to `timeout`) for the process to exit; returns its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("server is not running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "server did not exit within {timeout:?}; output:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM the process and wait (up to 20 s) for it to exit; returns its status.
    pub fn terminate(&mut self) -> ExitStatus {
        self.sigterm();
        self.wait_exit(Duration::from_secs(20))
    }

    /// Arms fault points (`CHORUS_FAULTS`, e.g. `"after_first_step"`) for the next start, or
    /// none; a running server keeps what it started with.
    pub fn set_faults(&mut self, points: Option<&str>) {
        self.faults = points.map(str::to_owned);
    }

    /// The store this server runs on (its keyspace, on the CQL store).
    pub fn store_lease(&self) -> &StoreLease {
        &self.store
    }

    /// Whether the next start passes `--allow-private-destinations` (kept across restarts).
    pub fn set_allow_private(&mut self, allow: bool) {
        self.allow_private = allow;
    }

    /// Start the server again on the same data directory (kills it first if running).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- chorus output (last lines) ----\n{}", self.log_text());
        }
    }
}

/// Reads `from` line by line on a thread of its own until it ends, keeping each line (as
/// `seen` returns it) in `log`.
fn keep_lines(
    from: impl Read + Send + 'static,
    log: Arc<Mutex<Vec<String>>>,
    mut seen: impl FnMut(String) -> String + Send + 'static,
) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(from);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                    push_log(&log, seen(line));
                }
            }
        }
    });
}

fn push_log(log: &Arc<Mutex<Vec<String>>>, line: String) {
    if let Ok(mut l) = log.lock() {
        l.push(line);
        if l.len() > 400 {
            l.drain(0..200);
        }
    }
}

fn parse_listen_addr(line: &str) -> Option<String> {
    let idx = line.find("listening on http://")?;
    let rest = &line[idx + "listening on http://".len()..];
    let addr: String = rest.split_whitespace().next()?.to_string();
    // strip ANSI escapes or trailing punctuation if any
    let addr: String = addr
        .chars()
        .take_while(|c| {
            c.is_ascii_alphanumeric() || *c == '.' || *c == ':' || *c == '[' || *c == ']'
        })
        .collect();
    let addr = addr.trim_end_matches('/').to_string();
    if addr.is_empty() { None } else { Some(addr) }
}
