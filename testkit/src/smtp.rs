//! `python3 smtp_sink.py` (beside this crate's manifest): a real SMTP server (aiosmtpd). Every
//! accepted message is one JSON object `{"mail_from", "rcpt_tos", "data", "subject", "text"}`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// The running sink; killed when dropped.
pub struct SmtpSink {
    pub port: u16,
    messages: Arc<Mutex<Vec<Value>>>,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl SmtpSink {
    /// Starts the sink with `args` (`--fail-first N`, `--reject`, see the script).
    ///
    /// `None` (after printing `skipped: aiosmtpd not installed`) when aiosmtpd is missing,
    /// unless `CHORUS_REQUIRE_SMTP_SINK` is set, in which case it panics: CI installs the
    /// sink and must not skip the email tests silently.
    pub fn start(args: &[&str]) -> Option<SmtpSink> {
        let importable = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !importable {
            if std::env::var_os("CHORUS_REQUIRE_SMTP_SINK").is_some() {
                panic!(
                    "CHORUS_REQUIRE_SMTP_SINK is set but `python3 -c 'import aiosmtpd'` fails: \
                     pip install aiosmtpd"
                );
            }
            println!("skipped: aiosmtpd not installed (pip install aiosmtpd)");
            return None;
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn python3 smtp_sink.py");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("sink stdout");
        let messages = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink_messages = messages.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(port) = line.strip_prefix("READY ") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(port.trim().parse::<u16>().expect("sink port"));
                    }
                    continue;
                }
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => sink_messages.lock().unwrap().push(v),
                    Err(e) => eprintln!("smtp_sink printed a non-JSON line ({e}): {line}"),
                }
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(port) => port,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("smtp_sink.py did not print READY <port>: {e}");
            }
        };
        Some(SmtpSink {
            port,
            messages,
            child,
            stdin,
        })
    }

    /// `smtp://127.0.0.1:<port>`, for `--smtp-url`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message accepted so far, in arrival order.
    pub fn messages(&self) -> Vec<Value> {
        self.messages.lock().unwrap().clone()
    }

    /// Waits until at least `n` messages have arrived; panics after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Value> {
        crate::wait_count(n, timeout, || self.messages())
            .await
            .unwrap_or_else(|got| {
                panic!(
                    "smtp sink got {} message(s) within {timeout:?}, wanted {n}: {got:?}",
                    got.len()
                )
            })
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        // Closing stdin makes the sink exit; kill it in case it does not.
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.flush();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
