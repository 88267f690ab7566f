//! A real nats-server on 127.0.0.1, on ports it picks itself (`-p -1 -m -1`), for the tests of
//! cluster mode. It writes its ports to a file (`--ports_file_dir`), which is read once it
//! appears, so there is no race for a free port. Killed when dropped.
//!
//! The binary is, in this order: `CHORUS_TEST_NATS_SERVER`, `nats-server` on `PATH`,
//! Debian's `/usr/sbin/nats-server`, or the one `loadtest/peers/setup.sh` builds. When none is
//! found the caller skips (printing why), unless `CHORUS_REQUIRE_NATS` is set: CI installs it
//! and must not skip the cluster tests silently.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// The running server; killed when dropped.
pub struct NatsServer {
    /// `nats://127.0.0.1:PORT`, for `--nats-url`.
    pub url: String,
    /// `127.0.0.1:PORT` of its monitoring endpoint (`/varz`).
    pub monitor: String,
    child: Child,
    _dir: TempDir,
}

/// The counters of `/varz` that say how much crossed the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Varz {
    pub in_msgs: u64,
    pub out_msgs: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
}

impl Varz {
    /// What crossed the server between `earlier` and `self`.
    pub fn since(&self, earlier: &Varz) -> Varz {
        Varz {
            in_msgs: self.in_msgs.saturating_sub(earlier.in_msgs),
            out_msgs: self.out_msgs.saturating_sub(earlier.out_msgs),
            in_bytes: self.in_bytes.saturating_sub(earlier.in_bytes),
            out_bytes: self.out_bytes.saturating_sub(earlier.out_bytes),
        }
    }
}

/// The nats-server binary to run, if there is one.
pub fn binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHORUS_TEST_NATS_SERVER") {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("nats-server"))
            .find(|p| p.is_file())
    });
    let built = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../loadtest/peers/bin/nats-server"
    ));
    on_path
        .or_else(|| Some(PathBuf::from("/usr/sbin/nats-server")).filter(|p| p.is_file()))
        .or_else(|| Some(built).filter(|p| p.is_file()))
}

impl NatsServer {
    /// Starts one. `None` (after printing `skipped: …`) when there is no binary, unless
    /// `CHORUS_REQUIRE_NATS` is set, in which case it panics.
    pub fn start() -> Option<NatsServer> {
        let Some(bin) = binary() else {
            if std::env::var_os("CHORUS_REQUIRE_NATS").is_some() {
                panic!(
                    "CHORUS_REQUIRE_NATS is set but no nats-server was found (apt-get install nats-server)"
                );
            }
            println!("skipped: no nats-server (apt-get install nats-server)");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("chorus-nats-")
            .tempdir()
            .expect("create the nats-server's directory");
        let child = Command::new(&bin)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                "-1",
                "-m",
                "-1",
                "--ports_file_dir",
            ])
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let mut server = NatsServer {
            url: String::new(),
            monitor: String::new(),
            child,
            _dir: dir,
        };
        let ports = server.ports_file();
        let first = |key: &str| -> String {
            ports[key][0]
                .as_str()
                .unwrap_or_else(|| panic!("no {key} port in the ports file: {ports}"))
                .to_string()
        };
        server.url = first("nats");
        server.monitor = first("monitoring")
            .trim_start_matches("http://")
            .to_string();
        Some(server)
    }

    /// Waits (up to 10 s) for the server's ports file and reads it.
    fn ports_file(&mut self) -> Value {
        let name = format!("nats-server_{}.ports", self.child.id());
        let path = self._dir.path().join(name);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(text) = std::fs::read_to_string(&path)
                && let Ok(ports) = serde_json::from_str::<Value>(&text)
            {
                return ports;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("nats-server exited with {status} before writing its ports");
            }
            assert!(
                Instant::now() < deadline,
                "nats-server wrote no ports file in 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's message and byte counters (`GET /varz`), read with a blocking request.
    pub fn varz(&self) -> Varz {
        let mut stream = TcpStream::connect(&self.monitor).expect("connect to /varz");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("read timeout");
        write!(
            stream,
            "GET /varz HTTP/1.0\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.monitor
        )
        .expect("send GET /varz");
        let mut text = String::new();
        stream.read_to_string(&mut text).expect("read /varz");
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("/varz: {e}: {body}"));
        let n = |k: &str| v[k].as_u64().unwrap_or_default();
        Varz {
            in_msgs: n("in_msgs"),
            out_msgs: n("out_msgs"),
            in_bytes: n("in_bytes"),
            out_bytes: n("out_bytes"),
        }
    }

    /// The server's pid (to pause it, say).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
