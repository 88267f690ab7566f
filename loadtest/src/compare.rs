//! `compare`: group-fanout against Chorus and each peer in turn, each server started for its
//! run and stopped after it, `--runs N` rounds of every target (round-robin, so drift in a
//! shared machine's load spreads over all targets); then one table of medians with the ratios
//! Chorus/peer, and optionally the same as JSON and as a Markdown table.

use std::future::Future;
use std::path::Path;

use serde::Serialize;
use serde_json::json;

use crate::error::{Error, Result};
use crate::peers::{self, Kind, Peers};
use crate::report::Report;
use crate::scenarios::{self, Common};
use crate::server::Target;

/// What `compare` runs.
pub struct Plan<'a> {
    pub groups: usize,
    pub members: usize,
    pub targets: &'a [Kind],
    pub runs: usize,
    pub common: &'a Common,
}

/// Where `compare` writes besides the terminal.
pub struct Outputs<'a> {
    pub json: Option<&'a Path>,
    pub markdown: Option<&'a Path>,
    /// `FILE.svg` becomes `FILE-<target>[-<run>].svg`.
    pub plot: Option<&'a Path>,
}

/// What became of one run of one target.
pub enum Outcome {
    Ran(Box<Report>),
    /// The server could not be started (binary or package missing, ...).
    NotStarted(String),
    /// It started but the run failed.
    Failed(String),
}

/// One run's figures, as the table shows them.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Row {
    pub deliveries_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub delivered_pct: f64,
    /// Server CPU per delivery over the publishing and drain window.
    pub cpu_us_per_delivery: Option<f64>,
    /// Server cores kept busy over that window.
    pub server_cores: Option<f64>,
    /// Deliveries per WebSocket frame the receivers read: above 1 when the server puts
    /// several messages into one frame.
    pub deliveries_per_frame: Option<f64>,
    /// Server RSS at the window's end, every receiver connected.
    pub rss_mib: Option<f64>,
    /// Publishes that failed or got no answer in time (their deliveries still count).
    pub publish_failures: u64,
}

impl Row {
    pub fn of(r: &Report) -> Row {
        let l = r.collected.as_ref().map(|c| &c.latency);
        let w = r.server_window.as_ref();
        Row {
            deliveries_per_s: r.deliveries_per_s,
            p50_ms: l.map_or(0.0, |l| l.p50_ms),
            p99_ms: l.map_or(0.0, |l| l.p99_ms),
            max_ms: l.map_or(0.0, |l| l.max_ms),
            delivered_pct: if r.expected > 0 {
                r.delivered as f64 * 100.0 / r.expected as f64
            } else {
                0.0
            },
            cpu_us_per_delivery: w.and_then(|w| w.cpu_us_per_delivery),
            server_cores: w.map(|w| w.cores),
            deliveries_per_frame: (r.frames_received > 0)
                .then(|| r.delivered as f64 / r.frames_received as f64),
            rss_mib: w.and_then(|w| w.rss_kib).map(|k| k as f64 / 1024.0),
            publish_failures: r.publish_failures,
        }
    }

    /// Each column's median over `rows` (each column on its own); publish failures add up.
    fn median(rows: &[Row]) -> Row {
        let m = |f: fn(&Row) -> Option<f64>| median(rows.iter().filter_map(f).collect());
        Row {
            deliveries_per_s: m(|r| Some(r.deliveries_per_s)).unwrap_or_default(),
            p50_ms: m(|r| Some(r.p50_ms)).unwrap_or_default(),
            p99_ms: m(|r| Some(r.p99_ms)).unwrap_or_default(),
            max_ms: m(|r| Some(r.max_ms)).unwrap_or_default(),
            delivered_pct: m(|r| Some(r.delivered_pct)).unwrap_or_default(),
            cpu_us_per_delivery: m(|r| r.cpu_us_per_delivery),
            server_cores: m(|r| r.server_cores),
            deliveries_per_frame: m(|r| r.deliveries_per_frame),
            rss_mib: m(|r| r.rss_mib),
            publish_failures: rows.iter().map(|r| r.publish_failures).sum(),
        }
    }
}

/// The median (the mean of the middle two for an even count); None for no values.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

/// Runs the plan; `chorus` starts (or attaches to) the Chorus server for one run. Answers the
/// outcomes in run order: (target, run number from 1, outcome).
pub async fn compare<F, Fut>(
    plan: &Plan<'_>,
    peers: &Peers,
    chorus: F,
    out: &Outputs<'_>,
) -> Result<Vec<(Kind, usize, Outcome)>>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Target>>,
{
    let (groups, members, common) = (plan.groups, plan.members, plan.common);
    let mut outcomes = Vec::new();
    for run in 1..=plan.runs.max(1) {
        for &kind in plan.targets {
            eprintln!(
                "== compare: {} ({groups} x {members}), run {run} of {}",
                kind.name(),
                plan.runs
            );
            let outcome = match kind {
                Kind::Chorus => match chorus().await {
                    Err(e) => Outcome::NotStarted(e.to_string()),
                    Ok(target) => {
                        ran(scenarios::group_fanout(&target, groups, members, common).await)
                    }
                },
                peer => match peers::start(peer, peers).await {
                    Err(e) => Outcome::NotStarted(e.to_string()),
                    Ok(server) => ran(server.group_fanout(groups, members, common).await),
                },
            };
            match &outcome {
                Outcome::Ran(r) => {
                    r.print();
                    if let Some(path) = out.plot {
                        plot(r, path, kind, run, plan.runs);
                    }
                }
                Outcome::NotStarted(e) => eprintln!("{}: not started: {e}", kind.name()),
                Outcome::Failed(e) => eprintln!("{}: run failed: {e}", kind.name()),
            }
            outcomes.push((kind, run, outcome));
        }
    }
    let table = Table::new(plan, &outcomes);
    table.print();
    if let Some(path) = out.json {
        std::fs::write(path, serde_json::to_vec_pretty(&table.json(&outcomes))?)?;
    }
    if let Some(path) = out.markdown {
        std::fs::write(path, table.markdown())?;
    }
    Ok(outcomes)
}

fn ran(r: Result<Report>) -> Outcome {
    match r {
        Ok(r) => Outcome::Ran(Box::new(r)),
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

fn plot(r: &Report, path: &Path, kind: Kind, run: usize, runs: usize) {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let name = if runs > 1 {
        format!("{stem}-{}-{run}.svg", kind.name())
    } else {
        format!("{stem}-{}.svg", kind.name())
    };
    let path = path.with_file_name(name);
    if let Err(e) = r.plot(&path) {
        eprintln!("warning: plot {}: {e}", path.display());
    }
}

/// Targets whose runs did not all produce a report (for `--strict`).
pub fn failed_targets(outcomes: &[(Kind, usize, Outcome)]) -> Vec<&'static str> {
    let mut bad: Vec<&str> = Vec::new();
    for (kind, _, outcome) in outcomes {
        if !matches!(outcome, Outcome::Ran(_)) && !bad.contains(&kind.name()) {
            bad.push(kind.name());
        }
    }
    bad
}

/// Each target's runs and their medians.
struct Table {
    title: String,
    params: serde_json::Value,
    runs: usize,
    /// Per target, in the plan's order: the rows of the runs that ran, and why others did not.
    targets: Vec<(Kind, Vec<Row>, Vec<String>)>,
}

impl Table {
    fn new(plan: &Plan<'_>, outcomes: &[(Kind, usize, Outcome)]) -> Table {
        let c = plan.common;
        let rate = if c.rate > 0.0 {
            format!(
                "{} msg/s ({:.0} deliveries/s offered)",
                c.rate,
                c.rate * plan.members as f64
            )
        } else {
            format!("flat out ({} publishers)", c.publishers)
        };
        let mut targets: Vec<(Kind, Vec<Row>, Vec<String>)> = Vec::new();
        for (kind, _, outcome) in outcomes {
            let i = match targets.iter().position(|(k, _, _)| k == kind) {
                Some(i) => i,
                None => {
                    targets.push((*kind, Vec::new(), Vec::new()));
                    targets.len() - 1
                }
            };
            match outcome {
                Outcome::Ran(r) => targets[i].1.push(Row::of(r)),
                Outcome::NotStarted(e) => targets[i].2.push(format!("NOT STARTED: {e}")),
                Outcome::Failed(e) => targets[i].2.push(format!("RUN FAILED: {e}")),
            }
        }
        Table {
            title: format!(
                "group-fanout, {} groups x {} members, {rate}, {} B payload, {} s",
                plan.groups,
                plan.members,
                c.payload,
                c.duration.as_secs()
            ),
            params: json!({"groups": plan.groups, "members": plan.members, "rate": c.rate,
                           "publishers": c.publishers, "payload": c.payload,
                           "duration_s": c.duration.as_secs(), "runs": plan.runs}),
            runs: plan.runs.max(1),
            targets,
        }
    }

    fn medians(&self) -> impl Iterator<Item = (Kind, Option<Row>)> + '_ {
        self.targets
            .iter()
            .map(|(k, rows, _)| (*k, (!rows.is_empty()).then(|| Row::median(rows))))
    }

    fn print(&self) {
        println!();
        println!("== compare: {}", self.title);
        if self.runs > 1 {
            println!(
                "   medians of {} runs each (every run's report is above)",
                self.runs
            );
        }
        println!(
            "   {:<12} {:>12} {:>8} {:>8} {:>9} {:>7} {:>10} {:>6} {:>8} {:>8}",
            "target",
            "deliveries/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "deliv%",
            "CPU µs/dl",
            "cores",
            "dl/frame",
            "RSS MiB"
        );
        for ((kind, rows, errors), (_, median)) in self.targets.iter().zip(self.medians()) {
            if let Some(m) = median {
                let runs = if self.runs > 1 {
                    format!("  ({} of {} runs)", rows.len(), self.runs)
                } else {
                    String::new()
                };
                println!(
                    "   {:<12} {:>12.0} {:>8.2} {:>8.2} {:>9.2} {:>7.2} {:>10} {:>6} {:>8} {:>8}{runs}",
                    kind.name(),
                    m.deliveries_per_s,
                    m.p50_ms,
                    m.p99_ms,
                    m.max_ms,
                    m.delivered_pct,
                    opt(m.cpu_us_per_delivery, 2),
                    opt(m.server_cores, 2),
                    opt(m.deliveries_per_frame, 1),
                    opt(m.rss_mib, 0),
                );
            }
            if let Some(m) = median.filter(|m| m.publish_failures > 0) {
                println!(
                    "   {:<12} {} publishes failed or got no answer in time (not expected, so \
                     delivered% may pass 100)",
                    "", m.publish_failures
                );
            }
            for e in errors {
                println!("   {:<12} {e}", kind.name());
            }
        }
        let chorus = self
            .medians()
            .find_map(|(k, m)| if k == Kind::Chorus { m } else { None });
        for (kind, peer) in self.medians() {
            if kind == Kind::Chorus {
                continue;
            }
            let line = match (chorus, peer) {
                (Some(c), Some(p)) => format!(
                    "deliveries/s {}   p99 {}   CPU/delivery {}",
                    ratio(Some(c.deliveries_per_s), Some(p.deliveries_per_s)),
                    ratio(Some(c.p99_ms), Some(p.p99_ms)),
                    ratio(c.cpu_us_per_delivery, p.cpu_us_per_delivery)
                ),
                (None, _) => "n/a (no chorus result)".into(),
                (_, None) => "n/a (no result for the peer)".into(),
            };
            println!("   chorus/{:<11} {line}", kind.name());
        }
        for note in [
            "(deliveries/s: above 1 = chorus delivers more; p99 and CPU/delivery: below 1 =",
            " chorus is faster / cheaper. CPU µs/dl: the server process's utime+stime over the",
            " publishing and drain window per delivery, which the harness's own CPU does not",
            " enter; cores: that CPU over the window; dl/frame: deliveries per WebSocket frame",
            " the receivers read; RSS: with every receiver connected. At a fixed --rate every",
            " target that keeps up delivers about rate x members per second.)",
        ] {
            println!("   {note}");
        }
    }

    /// Every run's report (or why there is none), and the medians.
    fn json(&self, outcomes: &[(Kind, usize, Outcome)]) -> serde_json::Value {
        let runs: Vec<serde_json::Value> = outcomes
            .iter()
            .map(|(kind, run, o)| match o {
                Outcome::Ran(r) => json!({"target": kind.name(), "run": run, "report": r}),
                Outcome::NotStarted(e) => {
                    json!({"target": kind.name(), "run": run, "not_started": e})
                }
                Outcome::Failed(e) => json!({"target": kind.name(), "run": run, "failed": e}),
            })
            .collect();
        let medians: Vec<serde_json::Value> = self
            .medians()
            .map(|(k, m)| json!({"target": k.name(), "median": m}))
            .collect();
        json!({"scenario": "compare", "params": self.params, "runs": runs, "medians": medians})
    }

    /// The medians as a Markdown table, each with its runs' range, for the README.
    fn markdown(&self) -> String {
        let mut md = format!(
            "{}; {}\n\n\
             | target | deliveries/s | p50 ms | p99 ms | delivered % | server CPU µs/delivery \
             | server cores | deliveries per frame | server RSS MiB |\n\
             |---|---|---|---|---|---|---|---|---|\n",
            self.title,
            if self.runs > 1 {
                format!("median of {} runs (range in brackets)", self.runs)
            } else {
                "one run".into()
            }
        );
        for (kind, rows, errors) in &self.targets {
            if rows.is_empty() {
                let why = errors.first().map_or("no result", String::as_str);
                md.push_str(&format!("| {} | {why} | | | | | | | |\n", kind.name()));
                continue;
            }
            let cell = |f: fn(&Row) -> Option<f64>, digits: usize| {
                let v: Vec<f64> = rows.iter().filter_map(f).collect();
                let (Some(m), Some(lo), Some(hi)) = (
                    median(v.clone()),
                    v.iter().copied().reduce(f64::min),
                    v.iter().copied().reduce(f64::max),
                ) else {
                    return "n/a".to_owned();
                };
                if rows.len() > 1 {
                    format!("{m:.digits$} [{lo:.digits$}–{hi:.digits$}]")
                } else {
                    format!("{m:.digits$}")
                }
            };
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                kind.name(),
                cell(|r| Some(r.deliveries_per_s), 0),
                cell(|r| Some(r.p50_ms), 1),
                cell(|r| Some(r.p99_ms), 1),
                cell(|r| Some(r.delivered_pct), 2),
                cell(|r| r.cpu_us_per_delivery, 2),
                cell(|r| r.server_cores, 2),
                cell(|r| r.deliveries_per_frame, 1),
                cell(|r| r.rss_mib, 0),
            ));
        }
        md
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.digits$}"))
}

fn ratio(chorus: Option<f64>, peer: Option<f64>) -> String {
    match (chorus, peer) {
        (Some(c), Some(p)) if p > 0.0 => format!("x{:.2}", c / p),
        _ => "n/a".into(),
    }
}

/// `--strict`: an error naming the targets without a result in every run.
pub fn check_strict(outcomes: &[(Kind, usize, Outcome)]) -> Result<()> {
    let bad = failed_targets(outcomes);
    if bad.is_empty() {
        Ok(())
    } else {
        Err(Error::Unexpected(format!(
            "--strict: no result for {}",
            bad.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_even_and_no_values() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }

    #[test]
    fn row_medians_skip_missing_values() {
        let row = |d: f64, cpu: Option<f64>| Row {
            deliveries_per_s: d,
            cpu_us_per_delivery: cpu,
            ..Row::default()
        };
        let m = Row::median(&[row(1.0, Some(5.0)), row(3.0, None), row(2.0, Some(7.0))]);
        assert_eq!(m.deliveries_per_s, 2.0);
        assert_eq!(m.cpu_us_per_delivery, Some(6.0));
        assert_eq!(Row::median(&[row(1.0, None)]).cpu_us_per_delivery, None);
    }

    #[test]
    fn table_medians_markdown_and_strict() {
        let common = Common {
            duration: std::time::Duration::from_secs(10),
            sources: 8,
            rate: 20.0,
            publishers: 8,
            payload: 100,
        };
        let targets = [Kind::Chorus, Kind::Nats];
        let plan = Plan {
            groups: 1,
            members: 5000,
            targets: &targets,
            runs: 2,
            common: &common,
        };
        let report = |d: f64| {
            Box::new(Report {
                scenario: "group-fanout".into(),
                target: "x".into(),
                params: json!({}),
                published: 10,
                publish_failures: 0,
                expected: 100,
                delivered: 100,
                active_s: 1.0,
                deliveries_per_s: d,
                frames_received: 0,
                closed_by_server: 0,
                server_window: None,
                server_rss_kib: None,
                server_rss_peak_kib: None,
                extra: json!({}),
                collected: None,
            })
        };
        let outcomes = vec![
            (Kind::Chorus, 1, Outcome::Ran(report(100.0))),
            (Kind::Nats, 1, Outcome::NotStarted("missing".into())),
            (Kind::Chorus, 2, Outcome::Ran(report(300.0))),
            (Kind::Nats, 2, Outcome::Failed("boom".into())),
        ];
        let table = Table::new(&plan, &outcomes);
        let medians: Vec<_> = table.medians().collect();
        assert_eq!(medians[0].1.unwrap().deliveries_per_s, 200.0);
        assert!(medians[1].1.is_none());
        let md = table.markdown();
        assert!(md.contains("| chorus | 200 [100–300] |"), "{md}");
        assert!(md.contains("| nats | NOT STARTED: missing |"), "{md}");
        assert!(md.contains("100000 deliveries/s offered"), "{md}");
        let j = table.json(&outcomes);
        assert_eq!(j["runs"].as_array().unwrap().len(), 4);
        assert_eq!(j["medians"][0]["median"]["deliveries_per_s"], 200.0);
        assert_eq!(failed_targets(&outcomes), vec!["nats"]);
        assert!(check_strict(&outcomes).is_err());
        assert!(check_strict(&outcomes[..1]).is_ok());
    }
}
