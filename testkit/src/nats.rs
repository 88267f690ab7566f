//! A real nats-server for the cluster tests, on random ports, killed on drop.
//!
//! The binary is the first of: `$CHORUS_TEST_NATS_SERVER`, `nats-server` on `PATH`,
//! `/usr/sbin/nats-server` (Debian's package), `loadtest/peers/bin/nats-server` (built by
//! `loadtest/peers/setup.sh`). It runs as `nats-server -a 127.0.0.1 -p -1 -m -1
//! --ports_file_dir DIR`: the server picks free ports itself and writes them to
//! `DIR/nats-server_<pid>.ports`, which is polled for (no race for a port). Without a binary
//! a test skips ([`NatsServer::start`] answers `None`), unless `CHORUS_REQUIRE_CQL_NODE` or
//! `CHORUS_REQUIRE_NATS` is set (as `.ci/run` does), where it fails.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A running nats-server.
pub struct NatsServer {
    child: Child,
    dir: PathBuf,
    binary: PathBuf,
    url: String,
    monitor: String,
}

/// The server's message counters (`GET /varz`), over all its clients.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Varz {
    pub in_msgs: u64,
    pub out_msgs: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    /// Subscriptions the server holds now.
    pub subscriptions: u64,
}

impl Varz {
    /// What crossed the server between `earlier` and `self`.
    pub fn since(&self, earlier: &Varz) -> Varz {
        Varz {
            in_msgs: self.in_msgs.saturating_sub(earlier.in_msgs),
            out_msgs: self.out_msgs.saturating_sub(earlier.out_msgs),
            in_bytes: self.in_bytes.saturating_sub(earlier.in_bytes),
            out_bytes: self.out_bytes.saturating_sub(earlier.out_bytes),
            subscriptions: self.subscriptions,
        }
    }
}

impl NatsServer {
    /// Starts a server, or `None` (after saying so on stderr) when there is no binary.
    ///
    /// # Panics
    /// When there is no binary and a `CHORUS_REQUIRE_*` variable is set, or when the server
    /// does not start.
    pub fn start() -> Option<NatsServer> {
        let Some(binary) = binary() else {
            let required = ["CHORUS_REQUIRE_NATS", "CHORUS_REQUIRE_CQL_NODE"]
                .iter()
                .any(|v| std::env::var_os(v).is_some());
            assert!(
                !required,
                "no nats-server found (set CHORUS_TEST_NATS_SERVER, or run loadtest/peers/setup.sh)"
            );
            eprintln!("skipped: no nats-server found");
            return None;
        };
        Some(NatsServer::spawn(binary, None))
    }

    fn spawn(binary: PathBuf, port: Option<u16>) -> NatsServer {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "chorus-nats-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("nats-server's directory");
        let port = port.map_or_else(|| "-1".to_owned(), |p| p.to_string());
        let child = Command::new(&binary)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &port,
                "-m",
                "-1",
                "--ports_file_dir",
            ])
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let ports = dir.join(format!("nats-server_{}.ports", child.id()));
        let mut server = NatsServer {
            child,
            dir,
            binary,
            url: String::new(),
            monitor: String::new(),
        };
        let (url, monitor) = read_ports(&ports, &mut server.child);
        server.url = url;
        server.monitor = monitor;
        server
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `http://127.0.0.1:<port>` of the monitoring endpoints.
    pub fn monitor_url(&self) -> &str {
        &self.monitor
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server (its clients see the connection drop) and starts a new one on the
    /// same client port, so they reconnect to it.
    pub fn restart(&mut self) {
        let port = self
            .url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port of the url");
        self.stop();
        let again = NatsServer::spawn(self.binary.clone(), Some(port));
        *self = again;
    }

    /// Kills the server now (its clients see the connection drop).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The server's counters now.
    pub fn varz(&self) -> Varz {
        let addr = self.monitor.trim_start_matches("http://");
        let mut stream = TcpStream::connect(addr).expect("connect to nats-server monitoring");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        write!(stream, "GET /varz HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("send");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read /varz");
        let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        let json: serde_json::Value = serde_json::from_str(body).expect("/varz is JSON");
        let n = |key: &str| json[key].as_u64().unwrap_or(0);
        Varz {
            in_msgs: n("in_msgs"),
            out_msgs: n("out_msgs"),
            in_bytes: n("in_bytes"),
            out_bytes: n("out_bytes"),
            subscriptions: n("subscriptions"),
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The binary to run (module doc), if any.
pub fn binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHORUS_TEST_NATS_SERVER") {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("nats-server"));
    let known = [
        PathBuf::from("/usr/sbin/nats-server"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../loadtest/peers/bin/nats-server"),
    ];
    on_path.chain(known).find(|p| p.is_file())
}

/// Waits for the ports file: `(client url, monitoring url)`.
fn read_ports(path: &Path, child: &mut Child) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(json) = serde_json::from_str::<serde_json::Value>(&text)
        {
            let first = |key: &str| json[key][0].as_str().map(str::to_owned);
            if let (Some(nats), Some(monitor)) = (first("nats"), first("monitoring")) {
                return (nats, monitor);
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("nats-server exited at start: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "nats-server wrote no ports file in 10 s ({})",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
