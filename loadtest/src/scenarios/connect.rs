//! The `connect` scenario: idle connections only. It is the one scenario that needs more
//! client sockets than one process can hold, hence its worker child processes.

use std::time::Duration;

use serde_json::json;

use super::{Common, bar, connect_all};
use crate::api::Api;
use crate::client;
use crate::error::{Error, Result};
use crate::report::Report;
use crate::server::Target;

/// `connect`: N idle authenticated connections; server RSS per connection. At most
/// `per_process` are held by this process; the rest are spread over child processes of the
/// same binary (`connect-worker`), each given its tokens in a file.
pub async fn connect(
    target: &Target,
    connections: usize,
    per_process: usize,
    common: &Common,
) -> Result<Report> {
    let api = Api::new(&target.base)?;
    let b = bar(connections as u64, "accounts");
    let accounts = api.accounts(connections, &b).await?;
    b.finish_and_clear();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = target.rss_kib();
    let tokens: Vec<String> = accounts.into_iter().map(|a| a.token).collect();
    let mut chunks = tokens.chunks(per_process.max(1));
    let own: Vec<String> = chunks.next().map(<[String]>::to_vec).unwrap_or_default();
    let mut workers = Vec::new();
    for chunk in chunks {
        workers.push(spawn_worker(target, chunk, common).await?);
    }
    let (clients, errors) = connect_all(target, &own, common.sources).await?;
    let mut held = clients.len();
    let mut failed = errors.len();
    let mut per_process_held = vec![held];
    for worker in &mut workers {
        let (h, f) = worker.report().await?;
        held += h;
        failed += f;
        per_process_held.push(h);
    }
    tokio::time::sleep(
        common
            .duration
            .min(Duration::from_secs(30))
            .max(Duration::from_secs(2)),
    )
    .await;
    let after = target.rss_kib();
    let per_conn = match (before, after) {
        (Some(b), Some(a)) if held > 0 => Some(a.saturating_sub(b) as f64 / held as f64),
        _ => None,
    };
    let (soft, hard) = client::raise_nofile();
    let first_error = errors.first().cloned();
    for worker in workers {
        worker.release().await;
    }
    drop(clients);
    Ok(Report {
        scenario: "connect".into(),
        target: target.base.clone(),
        params: json!({"connections": connections, "sources": common.sources, "per_process": per_process}),
        published: 0,
        publish_failures: 0,
        expected: connections as u64,
        delivered: held as u64,
        active_s: 0.0,
        deliveries_per_s: 0.0,
        frames_received: 0,
        closed_by_server: 0,
        server_window: None,
        server_rss_kib: after,
        server_rss_peak_kib: target.rss_peak_kib(),
        extra: json!({
            "held": held,
            "failed": failed,
            "first_error": first_error,
            "processes": per_process_held.len(),
            "held_per_process": per_process_held,
            "rss_before_kib": before,
            "rss_after_kib": after,
            "rss_per_connection_kib": per_conn,
            "client_nofile": {"soft": soft, "hard": hard},
        }),
        collected: None,
    })
}

/// A child process holding some of the `connect` scenario's connections.
struct Worker {
    child: tokio::process::Child,
    _tokens: tempfile::NamedTempFile,
}

async fn spawn_worker(target: &Target, tokens: &[String], common: &Common) -> Result<Worker> {
    use std::io::Write;
    let mut file = tempfile::NamedTempFile::new()?;
    file.write_all(tokens.join("\n").as_bytes())?;
    file.flush()?;
    let child = tokio::process::Command::new(std::env::current_exe()?)
        .args([
            "--url",
            &target.base,
            "--sources",
            &common.sources.to_string(),
        ])
        .args([
            "--duration",
            &common.duration.as_secs().to_string(),
            "connect-worker",
            "--tokens-file",
        ])
        .arg(file.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    Ok(Worker {
        child,
        _tokens: file,
    })
}

impl Worker {
    /// Waits (up to 5 minutes) for the child's `held H failed F` line.
    async fn report(&mut self) -> Result<(usize, usize)> {
        use tokio::io::AsyncBufReadExt;
        let stdout = self
            .child
            .stdout
            .take()
            .ok_or_else(|| Error::Unexpected("worker stdout not captured".into()))?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(300), lines.next_line())
            .await
            .map_err(|_| Error::Unexpected("a connect worker did not report in 5 minutes".into()))??
            .ok_or_else(|| Error::Unexpected("a connect worker exited without reporting".into()))?;
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["held", h, "failed", f] => Ok((h.parse().unwrap_or(0), f.parse().unwrap_or(0))),
            _ => Err(Error::Unexpected(format!("a connect worker said {line:?}"))),
        }
    }

    /// Closes the child's standard input (it lets go of its connections and exits).
    async fn release(mut self) {
        drop(self.child.stdin.take());
        if tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// `connect-worker`: holds the connections of the tokens in `tokens_file`, prints
/// `held H failed F`, and keeps them until standard input closes.
pub async fn connect_worker(
    target: &Target,
    tokens_file: &std::path::Path,
    common: &Common,
) -> Result<()> {
    use tokio::io::AsyncReadExt;
    let text = std::fs::read_to_string(tokens_file)?;
    let tokens: Vec<String> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let (clients, errors) = connect_all(target, &tokens, common.sources).await?;
    println!("held {} failed {}", clients.len(), errors.len());
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
    drop(clients);
    Ok(())
}
