//! `GET /metrics`: the text parses as Prometheus's exposition format (every line a comment or
//! `name{labels} value`), the counters move with real traffic (a device, events pushed to
//! it, a 429, release attempts by outcome), every series and label the Grafana dashboard
//! (docs/grafana/chorus.json) queries is there after that traffic, `--metrics-token` guards
//! the scrape, and in cluster mode every series carries its node.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::support::cluster::TestCluster;
use crate::support::groups::{create_group, post_message};
use crate::support::release::*;
use crate::support::store::on_cql_store;
use crate::support::*;

/// A scrape: each series (`name{labels}` as written) and its value.
type Scrape = BTreeMap<String, f64>;

/// Whether `name` is a Prometheus metric or label name.
fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Checks `{k="v",...}` (escapes `\\`, `\"`, `\n` in values).
#[track_caller]
fn check_labels(labels: &str, line: &str) {
    let mut rest = labels;
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("label without =\" in {line:?}"));
        assert!(is_name(name), "bad label name {name:?} in {line:?}");
        let mut end = None;
        let mut escaped = false;
        for (i, c) in after.char_indices() {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let end = end.unwrap_or_else(|| panic!("unterminated label value in {line:?}"));
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// Parses the exposition text, failing on any line that is neither a comment nor a sample.
#[track_caller]
fn parse(text: &str) -> Scrape {
    let mut out = Scrape::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(comment) = line.strip_prefix('#') {
            let words: Vec<&str> = comment.split_whitespace().collect();
            if let Some(&"TYPE") = words.first() {
                assert!(words.len() == 3 && is_name(words[1]), "bad TYPE: {line:?}");
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&words[2]),
                    "bad type in {line:?}"
                );
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let name = match series.split_once('{') {
            Some((name, labels)) => {
                let labels = labels
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
                check_labels(labels, line);
                name
            }
            None => series,
        };
        assert!(is_name(name), "bad metric name {name:?} in {line:?}");
        assert!(name.starts_with("chorus_"), "not a chorus_ name: {line:?}");
        out.insert(series.to_owned(), value);
    }
    out
}

/// One scrape, checked: 200, the exposition content type, and text that parses.
async fn scrape(s: &Server) -> Scrape {
    let r = client()
        .get(s.url("/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(r.status().as_u16(), 200);
    let kind = r.headers()["content-type"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    assert!(
        kind.starts_with("text/plain; version=0.0.4"),
        "content type {kind}"
    );
    parse(&r.text().await.expect("body"))
}

/// The sum of every series of `name` whose labels include each of `labels` (`k="v"`).
fn sum(scrape: &Scrape, name: &str, labels: &[&str]) -> f64 {
    scrape
        .iter()
        .filter(|(series, _)| {
            let (n, l) = series.split_once('{').unwrap_or((series, ""));
            n == name && labels.iter().all(|want| l.contains(want))
        })
        .map(|(_, v)| v)
        .sum()
}

/// Scrapes until `ok` holds (the counters of a pass or a close land a moment after the
/// client sees its effect); panics with the last scrape after 10 s.
async fn until(s: &Server, what: &str, ok: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = scrape(s).await;
        if ok(&now) {
            return now;
        }
        if Instant::now() > deadline {
            panic!("{what}: not seen in 10 s; last scrape: {now:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The dashboard's queries, as Grafana gets them.
const DASHBOARD: &str = include_str!("../../docs/grafana/chorus.json");

/// The label every series has in cluster mode only (checked by the cluster test below).
const NODE: &str = "node";

/// The one series only the embedded store's writer records (`store="fjall"`).
const FJALL_ONLY: &str = "chorus_store_batch_writes";

/// One series an expression of a panel queries: its name as written (a histogram's
/// `_bucket`, say) and the labels the expression needs it to carry: those it groups by
/// (`sum by (node, kind)`) and those it matches on (`{code="1013"}`), less `node`.
#[derive(Debug)]
struct Queried {
    panel: String,
    name: String,
    labels: BTreeSet<String>,
}

/// Every series each target expression of each panel queries. The dashboard's expressions
/// are all `agg by (labels) (... one series ...)`, possibly inside `histogram_quantile` or
/// divided by another such: a series takes the labels of the nearest `by (...)` before it.
fn dashboard_queries() -> Vec<Queried> {
    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).expect("dashboard JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut out = Vec::new();
    for panel in panels {
        let title = panel["title"].as_str().expect("panel title");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {title:?} has no query");
        for target in targets {
            let expr = target["expr"].as_str().expect("expr");
            let before = out.len();
            scan_expr(expr, |name, labels| {
                out.push(Queried {
                    panel: title.to_owned(),
                    name,
                    labels,
                });
            });
            assert!(out.len() > before, "{title:?}: no chorus_ series in {expr}");
        }
    }
    out
}

/// Calls `found` with each `chorus_` series of `expr` and the labels it must carry.
fn scan_expr(expr: &str, mut found: impl FnMut(String, BTreeSet<String>)) {
    let chars: Vec<char> = expr.chars().collect();
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut by = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        if !word(chars[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && word(chars[i]) {
            i += 1;
        }
        let ident: String = chars[start..i].iter().collect();
        let next = chars[i..]
            .iter()
            .position(|c| !c.is_whitespace())
            .map(|p| i + p);
        if ident == "by" && next.is_some_and(|n| chars[n] == '(') {
            let open = next.unwrap_or(i);
            let close = chars[open..]
                .iter()
                .position(|&c| c == ')')
                .map(|p| open + p)
                .unwrap_or_else(|| panic!("unclosed by ( in {expr}"));
            let list: String = chars[open + 1..close].iter().collect();
            by = list.split(',').map(|l| l.trim().to_owned()).collect();
            i = close + 1;
        } else if ident.starts_with("chorus_") {
            let mut labels = by.clone();
            if chars.get(i) == Some(&'{') {
                i = matchers(&chars, i, &mut labels, expr);
            }
            labels.remove(NODE);
            found(ident, labels);
        }
    }
}

/// Adds the label names of the matchers `{a="x",b=~"y"}` opening at `chars[open]` to
/// `labels`; answers the index after the closing brace.
fn matchers(chars: &[char], open: usize, labels: &mut BTreeSet<String>, expr: &str) -> usize {
    let mut i = open + 1;
    let mut name = String::new();
    loop {
        match chars.get(i) {
            None => panic!("unclosed {{ in {expr}"),
            Some('}') => return i + 1,
            Some('"') => {
                if !name.trim().is_empty() {
                    labels.insert(name.trim().to_owned());
                }
                name.clear();
                i += 1;
                while let Some(&c) = chars.get(i) {
                    i += 1;
                    match c {
                        '\\' => i += 1,
                        '"' => break,
                        _ => {}
                    }
                }
            }
            Some(&c) if c == '=' || c == '!' || c == '~' || c == ',' => i += 1,
            Some(&c) => {
                name.push(c);
                i += 1;
            }
        }
    }
}

/// Each series the dashboard queries is in `scrape`, and some series of that name carries
/// every label the query needs: a panel whose query names a series or a label the server
/// does not export draws "No data" forever.
#[track_caller]
fn check_dashboard(scrape: &Scrape) {
    let queried = dashboard_queries();
    let panels: BTreeSet<&str> = queried.iter().map(|q| q.panel.as_str()).collect();
    assert!(panels.len() >= 10, "only {} panels read", panels.len());
    for q in &queried {
        if q.name.starts_with(FJALL_ONLY) && on_cql_store() {
            continue;
        }
        let series: Vec<&str> = scrape
            .keys()
            .map(String::as_str)
            .filter(|s| s.split('{').next() == Some(q.name.as_str()))
            .collect();
        assert!(
            !series.is_empty(),
            "panel {:?} queries {}, which /metrics does not export: {:#?}",
            q.panel,
            q.name,
            scrape.keys()
        );
        for label in &q.labels {
            let has = |s: &&str| {
                s.contains(&format!("{{{label}=\"")) || s.contains(&format!(",{label}=\""))
            };
            assert!(
                series.iter().any(has),
                "panel {:?} needs label {label} on {}; exported: {series:#?}",
                q.panel,
                q.name
            );
        }
    }
}

#[test]
fn the_dashboard_scan_finds_series_grouping_and_matchers() {
    let mut got = Vec::new();
    scan_expr(
        "histogram_quantile(0.5, sum by (le, node, store) (rate(chorus_a_bucket{node=~\"$node\"}[5m]))) \
         / sum by (node) (rate(chorus_b_total{code=\"1013\",node=~\"$node\"}[$__rate_interval]))",
        |name, labels| got.push((name, labels.into_iter().collect::<Vec<_>>())),
    );
    assert_eq!(
        got,
        [
            (
                "chorus_a_bucket".to_owned(),
                vec!["le".to_owned(), "store".to_owned()]
            ),
            ("chorus_b_total".to_owned(), vec!["code".to_owned()]),
        ]
    );
    let all = dashboard_queries();
    assert!(
        all.iter()
            .any(|q| q.name == "chorus_ws_closes_total" && q.labels.contains("code"))
    );
}

#[tokio::test]
async fn metrics_parse_and_move_with_devices_events_rejections_and_releases() {
    let mut f = ReleaseFixture::start(&["--login-attempts-per-account", "1"]).await;
    let before = scrape(&f.s).await;
    assert_eq!(sum(&before, "chorus_ws_connections", &[]), 0.0);

    // A device: a connection, a device, an account online.
    let (mut ws, _hello) = ws_connect(&f.s, &f.a).await;
    until(&f.s, "one device", |m| {
        sum(m, "chorus_ws_connections", &[]) == 1.0
            && sum(m, "chorus_devices_online", &[]) == 1.0
            && sum(m, "chorus_accounts_online", &[]) == 1.0
    })
    .await;

    // An account event and a group event pushed to it.
    patch(
        &f.s,
        "/v1/me/profile",
        f.a.tok(),
        &json!({"bio": "metrics"}),
    )
    .await
    .expect(200);
    expect_event(&mut ws, "profile.updated").await;
    let gid = create_group(&f.s, &f.a, "Watched").await;
    post_message(&f.s, &f.a, &gid, "hello metrics").await;
    expect_event(&mut ws, "group.message").await;
    let pushed = until(&f.s, "events pushed", |m| {
        sum(m, "chorus_events_pushed_total", &["kind=\"account\""]) >= 1.0
            && sum(m, "chorus_events_pushed_total", &["kind=\"group\""]) >= 1.0
            && sum(m, "chorus_fanout_duration_seconds_count", &[]) >= 1.0
    })
    .await;
    assert!(
        sum(&pushed, "chorus_ws_frames_total", &[]) >= 3.0,
        "{pushed:#?}"
    );
    assert!(sum(&pushed, "chorus_ws_written_bytes_total", &[]) > 0.0);
    assert!(sum(&pushed, "chorus_ws_writes_total", &[]) >= 1.0);
    assert!(sum(&pushed, "chorus_store_commit_duration_seconds_count", &[]) >= 2.0);
    assert!(sum(&pushed, "chorus_store_batch_rows_count", &[]) >= 1.0);
    assert!(sum(&pushed, "chorus_actors_live", &["kind=\"account\""]) >= 1.0);
    assert!(sum(&pushed, "chorus_actors_live", &["kind=\"group\""]) >= 1.0);
    assert!(
        sum(
            &pushed,
            "chorus_actor_activations_total",
            &["kind=\"account\""]
        ) >= 1.0
    );
    let le = sum(
        &pushed,
        "chorus_fanout_duration_seconds_bucket",
        &["le=\"+Inf\""],
    );
    assert_eq!(
        le,
        sum(&pushed, "chorus_fanout_duration_seconds_count", &[]),
        "a histogram, with buckets"
    );

    // The device leaves: 1000 on its close, no connection left.
    ws.send(Message::Close(None)).await.expect("close");
    until(&f.s, "the close", |m| {
        sum(m, "chorus_ws_closes_total", &["code=\"1000\""]) == 1.0
            && sum(m, "chorus_ws_connections", &[]) == 0.0
            && sum(m, "chorus_devices_online", &[]) == 0.0
    })
    .await;

    // A 429: a second login attempt for one login name within the minute.
    login(&f.s, &f.a.id, "wrong password").await.expect(401);
    login(&f.s, &f.a.id, "wrong password")
        .await
        .expect_error(429, "rate_limited");
    until(&f.s, "the rejection", |m| {
        sum(m, "chorus_rate_limited_total", &["kind=\"login\""]) == 1.0
    })
    .await;

    // Release attempts by outcome: one delivered, one failed for good (400).
    let ok = f.webhook("fine", Script::Always(Reply::ok())).await;
    let bad = f
        .webhook("strict", Script::Always(Reply::status(400)))
        .await;
    let id = f.post("released").await;
    f.wait_final(&id).await;
    let done = until(&f.s, "release attempts", |m| {
        let attempts = |outcome: &str| {
            sum(
                m,
                "chorus_release_attempts_total",
                &["platform=\"webhook\"", &format!("outcome=\"{outcome}\"")],
            )
        };
        attempts("delivered") == 1.0 && attempts("failed") == 1.0
    })
    .await;
    assert_eq!(sum(&done, "chorus_release_attempts_total", &[]), 2.0);
    drop((ok, bad));

    // By now every panel of the dashboard has something to draw.
    check_dashboard(&done);
}

#[tokio::test]
async fn with_a_metrics_token_a_scrape_must_carry_it() {
    let s = Server::start_with(&["--metrics-token", "scrape-me"]);
    let r = get(&s, "/metrics", None).await;
    r.expect_error(401, "unauthorized");
    get(&s, "/metrics", Some("not-it"))
        .await
        .expect_error(401, "unauthorized");
    let r = client()
        .get(s.url("/metrics"))
        .header("Authorization", "Bearer scrape-me")
        .send()
        .await
        .expect("scrape");
    assert_eq!(r.status().as_u16(), 200);
    let text = r.text().await.expect("body");
    assert!(text.contains("chorus_ws_connections"), "{text}");
    parse(&text);
    assert_healthy(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_cluster_mode_every_series_names_its_node() {
    let Some(cluster) = TestCluster::start(2).await else {
        return;
    };
    for (i, node) in ["n0", "n1"].into_iter().enumerate() {
        let m = scrape(cluster.node(i)).await;
        assert!(!m.is_empty());
        let label = format!("node=\"{node}\"");
        for series in m.keys() {
            assert!(series.contains(&label), "{series} on {node}");
        }
    }
}
