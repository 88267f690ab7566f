//! What the harness reads about the server process from /proc: CPU time (for server CPU per
//! delivery, a figure that does not depend on how much CPU the load generator itself takes)
//! and memory.
//!
//! Not write syscalls: `syscw` in /proc/PID/io counts write(2)/writev(2) but not send(2),
//! which Rust's standard library (and so Chorus) uses on sockets, while Go and Node use
//! write(2); the counts would not compare across servers.

use serde::Serialize;

/// CPU time (user + system, all threads) a process has used so far, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = cpu_ticks(&stat)?;
    Some(ticks as f64 / clock_ticks_per_second())
}

/// utime + stime from the text of /proc/PID/stat. The command name (field 2) is in
/// parentheses and may itself hold spaces and parentheses, so fields are counted from the
/// last ')': state is field 3, utime 14, stime 15.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// `sysconf(_SC_CLK_TCK)`, the unit of utime and stime (100 on Linux almost everywhere).
fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// A field of /proc/PID/status in KiB: `VmRSS` (resident now) or `VmHWM` (peak resident).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_field(&status, field)
}

fn status_field(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The server process over a run's publishing and drain window.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ServerWindow {
    /// utime + stime of the server process used in the window.
    pub cpu_s: f64,
    /// Wall-clock length of the window.
    pub window_s: f64,
    /// cpu_s / window_s: cores the server kept busy on average.
    pub cores: f64,
    /// cpu_s per delivery made in the window, in microseconds (None without deliveries).
    pub cpu_us_per_delivery: Option<f64>,
    /// Resident memory at the window's end, every receiver still connected.
    pub rss_kib: Option<u64>,
}

/// The start of a CPU window: the processes' CPU time (summed) and the wall clock.
#[derive(Debug, Clone)]
pub struct CpuMark {
    pids: Vec<u32>,
    cpu_s: f64,
    at: std::time::Instant,
}

/// The CPU time of every one of `pids`, summed; None if one cannot be read.
fn cpu_of(pids: &[u32]) -> Option<f64> {
    pids.iter().map(|&pid| cpu_seconds(pid)).sum()
}

impl CpuMark {
    /// None without a PID, or if a process cannot be read (another user's, gone).
    pub fn now(pids: &[u32]) -> Option<CpuMark> {
        if pids.is_empty() {
            return None;
        }
        Some(CpuMark {
            pids: pids.to_vec(),
            cpu_s: cpu_of(pids)?,
            at: std::time::Instant::now(),
        })
    }

    /// The window from this mark to now, with the deliveries made in it (CPU and memory of
    /// all the processes together: the nodes of a cluster).
    pub fn window(&self, deliveries: u64) -> Option<ServerWindow> {
        let cpu_s = cpu_of(&self.pids)? - self.cpu_s;
        let window_s = self.at.elapsed().as_secs_f64();
        Some(ServerWindow {
            cpu_s,
            window_s,
            cores: if window_s > 0.0 {
                cpu_s / window_s
            } else {
                0.0
            },
            cpu_us_per_delivery: (deliveries > 0).then(|| cpu_s * 1e6 / deliveries as f64),
            rss_kib: self.pids.iter().map(|&pid| status_kib(pid, "VmRSS")).sum(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_count_from_the_last_parenthesis() {
        let stat = "1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 \
                    9 0 123 456 789";
        assert_eq!(cpu_ticks(stat), Some(325));
        assert_eq!(cpu_ticks("garbage"), None);
        assert_eq!(cpu_ticks("1 (x) S 1 2"), None);
    }

    #[test]
    fn status_fields_in_kib() {
        let status = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(status_field(status, "VmRSS"), Some(1024));
        assert_eq!(status_field(status, "VmHWM"), Some(2048));
        assert_eq!(status_field(status, "VmSwap"), None);
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let pid = std::process::id();
        let mark = CpuMark::now(&[pid]).unwrap();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        let w = mark.window(1000).unwrap();
        assert!(w.cpu_s >= 0.0 && w.window_s > 0.0, "{w:?}");
        assert!(w.rss_kib.unwrap() > 0);
        assert!(status_kib(pid, "VmRSS").unwrap() > 0);
        assert!(CpuMark::now(&[]).is_none());
    }
}
