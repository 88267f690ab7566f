//! The server under test: started by the harness (the default, so that it knows the PID for
//! RSS and can set a low password-hash cost for fast provisioning) or given by URL.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// A running server.
pub struct Target {
    pub base: String,
    pub pid: Option<u32>,
    child: Option<Child>,
    _data: Option<tempfile::TempDir>,
}

impl Target {
    /// Starts `bin` on 127.0.0.1:0 with a fresh data dir and a low password-hash cost.
    pub fn spawn(bin: &PathBuf, extra: &[String]) -> Result<Target> {
        let data = tempfile::tempdir()?;
        let mut child = Command::new(bin)
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .args([
                "--password-hash-memory-kib",
                "64",
                "--password-hash-iterations",
                "1",
            ])
            .args(["--login-attempts-per-address", "1000000"])
            .args(extra)
            .env("RUST_LOG", "warn,chorus=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::Unexpected(format!("cannot start {}: {e}", bin.display())))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error::Unexpected("server stdout not captured".into()))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                if !sent && let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    let _ = tx.send(addr);
                    sent = true;
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| Error::Unexpected("server did not report its address in 30 s".into()))?;
        Ok(Target {
            base: format!("http://{addr}"),
            pid: Some(child.id()),
            child: Some(child),
            _data: Some(data),
        })
    }

    /// A server already running at `base` (RSS only if `pid` is given).
    pub fn attach(base: String, pid: Option<u32>) -> Target {
        Target {
            base: base.trim_end_matches('/').to_owned(),
            pid,
            child: None,
            _data: None,
        }
    }

    pub fn ws_url(&self) -> String {
        format!("{}/v1/ws", self.base.replacen("http://", "ws://", 1))
    }

    /// The server's resident set size in KiB, from /proc.
    pub fn rss_kib(&self) -> Option<u64> {
        crate::procfs::status_kib(self.pid?, "VmRSS")
    }

    /// The server's peak resident set size so far in KiB, from /proc.
    pub fn rss_peak_kib(&self) -> Option<u64> {
        crate::procfs::status_kib(self.pid?, "VmHWM")
    }

    /// Waits until `/healthz` answers.
    pub async fn wait_healthy(&self, http: &reqwest::Client) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = http.get(format!("{}/healthz", self.base)).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Unexpected(format!("{} is not healthy", self.base)));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            // SIGTERM for a graceful stop, then make sure.
            if let Ok(pid) = i32::try_from(child.id()) {
                // SAFETY: kill(2) on our own child's pid.
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
