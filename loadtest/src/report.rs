//! The end of a run: a summary table on the terminal, `--json FILE`, `--plot FILE.svg`.

use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::procfs::ServerWindow;
use crate::stats::Collected;

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub target: String,
    pub params: serde_json::Value,
    /// Messages (or profile changes, dynamics) published.
    pub published: u64,
    /// Publishes that failed or were not answered in time (not in `expected`; the server may
    /// still have delivered them).
    pub publish_failures: u64,
    /// Deliveries expected if every recipient got every message.
    pub expected: u64,
    pub delivered: u64,
    /// Seconds from the first to the last delivery.
    pub active_s: f64,
    pub deliveries_per_s: f64,
    /// WebSocket frames the receivers read (0 where they are not WebSocket clients).
    pub frames_received: u64,
    /// Connections the server closed during the run (slow readers get 1013).
    pub closed_by_server: u64,
    /// The server process over the publishing and drain window: CPU, CPU per delivery, RSS.
    pub server_window: Option<ServerWindow>,
    /// At the end of the run, after the receivers have disconnected.
    pub server_rss_kib: Option<u64>,
    /// Peak over the server's life (VmHWM), provisioning included.
    pub server_rss_peak_kib: Option<u64>,
    pub extra: serde_json::Value,
    pub collected: Option<Collected>,
}

impl Report {
    /// The summary table.
    pub fn print(&self) {
        println!();
        println!("== {} against {}", self.scenario, self.target);
        println!("   params        {}", self.params);
        if let Some(c) = &self.collected {
            let l = &c.latency;
            let s = &c.span;
            if self.publish_failures > 0 {
                println!(
                    "   published     {} ({} more failed or got no answer in time; any \
                     deliveries of theirs still count)",
                    self.published, self.publish_failures
                );
            } else {
                println!("   published     {}", self.published);
            }
            println!(
                "   delivered     {} of {} expected ({:.2}%)",
                self.delivered,
                self.expected,
                if self.expected > 0 {
                    self.delivered as f64 * 100.0 / self.expected as f64
                } else {
                    0.0
                }
            );
            println!(
                "   throughput    {:.0} deliveries/s over {:.2} s",
                self.deliveries_per_s, self.active_s
            );
            println!(
                "   latency ms    p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
                l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms
            );
            println!(
                "   span ms       p50 {:.2}  p99 {:.2}  max {:.2}   (first to last recipient of a message)",
                s.p50_ms, s.p99_ms, s.max_ms
            );
        }
        if self.closed_by_server > 0 {
            println!(
                "   closed        {} connections closed by the server",
                self.closed_by_server
            );
        }
        if let Some(w) = &self.server_window {
            let per = w
                .cpu_us_per_delivery
                .map_or("n/a".to_owned(), |us| format!("{us:.2} µs"));
            println!(
                "   server CPU    {per} per delivery   ({:.2} s CPU over {:.2} s: {:.2} cores)",
                w.cpu_s, w.window_s, w.cores
            );
        }
        if self.frames_received > 0 {
            println!(
                "   frames        {} WebSocket frames read, {:.2} deliveries per frame",
                self.frames_received,
                self.delivered as f64 / self.frames_received as f64
            );
        }
        let rss = [
            ("with clients", self.server_window.and_then(|w| w.rss_kib)),
            ("at the end", self.server_rss_kib),
            ("peak", self.server_rss_peak_kib),
        ]
        .iter()
        .filter_map(|(what, kib)| kib.map(|k| format!("{k} KiB {what}")))
        .collect::<Vec<_>>();
        if !rss.is_empty() {
            println!("   server RSS    {}", rss.join(", "));
        }
        if !self.extra.is_null() {
            println!("   more          {}", self.extra);
        }
    }

    pub fn write_json(&self, path: &Path) -> Result<()> {
        std::fs::write(path, serde_json::to_vec_pretty(self)?)?;
        Ok(())
    }

    /// Throughput and latency over time.
    pub fn plot(&self, path: &Path) -> Result<()> {
        let Some(c) = &self.collected else {
            return Err(Error::Unexpected(
                "nothing to plot: this scenario records no deliveries".into(),
            ));
        };
        let plot_err = |e: Box<dyn std::error::Error>| Error::Unexpected(format!("plot: {e}"));
        let root = SVGBackend::new(path, (960, 640)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(Box::new(e)))?;
        let (top, bottom) = root.split_vertically(320);
        let secs = c.series.len().max(1) as u64;
        let max_d = c
            .series
            .iter()
            .map(|s| s.deliveries)
            .max()
            .unwrap_or(1)
            .max(1);
        let mut chart = ChartBuilder::on(&top)
            .caption(
                format!("{}: deliveries per second", self.scenario),
                ("sans-serif", 18),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0u64..secs, 0u64..max_d + max_d / 10)
            .map_err(|e| plot_err(Box::new(e)))?;
        chart
            .configure_mesh()
            .x_desc("s")
            .draw()
            .map_err(|e| plot_err(Box::new(e)))?;
        chart
            .draw_series(LineSeries::new(
                c.series.iter().map(|s| (s.t, s.deliveries)),
                &BLUE,
            ))
            .map_err(|e| plot_err(Box::new(e)))?;
        let max_l = c.series.iter().map(|s| s.p99_ms).fold(1.0f64, f64::max);
        let mut chart = ChartBuilder::on(&bottom)
            .caption("latency (ms): p50 green, p99 red", ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0u64..secs, 0f64..max_l * 1.1)
            .map_err(|e| plot_err(Box::new(e)))?;
        chart
            .configure_mesh()
            .x_desc("s")
            .draw()
            .map_err(|e| plot_err(Box::new(e)))?;
        chart
            .draw_series(LineSeries::new(
                c.series.iter().map(|s| (s.t, s.p50_ms)),
                &GREEN,
            ))
            .map_err(|e| plot_err(Box::new(e)))?;
        chart
            .draw_series(LineSeries::new(
                c.series.iter().map(|s| (s.t, s.p99_ms)),
                &RED,
            ))
            .map_err(|e| plot_err(Box::new(e)))?;
        root.present().map_err(|e| plot_err(Box::new(e)))?;
        Ok(())
    }
}
