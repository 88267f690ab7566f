//! The membership state machine on its own, driven with made-up instants, and node ids.

use std::time::{Duration, Instant};

use super::TIMING;
use crate::cluster::membership::{Heartbeat, Phase, Table};
use crate::cluster::{default_node_id, sanitize_node_id, subject_prefix, valid_node_id};

fn hb(node: &str, incarnation: u64) -> Heartbeat {
    Heartbeat {
        node: node.to_owned(),
        incarnation,
        http_addr: "127.0.0.1:1".to_owned(),
        leaving: false,
    }
}

fn owners(table: &Table) -> Vec<String> {
    table.view().owners.into_iter().map(|m| m.node).collect()
}

#[test]
fn node_ids_are_subject_tokens() {
    assert_eq!(
        sanitize_node_id("web-1.example.com-8080"),
        "web-1_example_com-8080"
    );
    assert_eq!(sanitize_node_id("a b/c*d>e"), "a_b_c_d_e");
    assert_eq!(sanitize_node_id("né"), "n_");
    assert_eq!(sanitize_node_id(""), "node");
    assert_eq!(sanitize_node_id(&"x".repeat(100)).len(), 64);
    assert!(valid_node_id("n0") && valid_node_id("Host_1-9090"));
    assert!(!valid_node_id("") && !valid_node_id("a.b") && !valid_node_id(&"x".repeat(65)));
    let id = default_node_id(8080);
    assert!(id.ends_with("-8080") && valid_node_id(&id), "{id}");
    assert_eq!(subject_prefix("chat"), "chorus.chat");
}

#[test]
fn a_node_counts_from_its_second_heartbeat_and_goes_after_dead_after() {
    let t0 = Instant::now();
    let mut table = Table::new("me".into(), "addr".into(), TIMING, t0);
    assert!(!table.heard(&hb("p", 1), t0), "one heartbeat is not enough");
    assert!(owners(&table).is_empty());
    assert!(
        table.heard(&hb("p", 1), t0 + TIMING.heartbeat),
        "the second admits"
    );
    assert_eq!(owners(&table), ["p"]);
    // Joining until 2½ heartbeats: then this node owns its share too.
    assert!(!table.tick(t0 + TIMING.heartbeat * 2, true));
    assert!(table.tick(t0 + TIMING.settle(), true));
    assert_eq!(owners(&table), ["me", "p"]);
    // Silent for dead-after: gone (ticks every heartbeat, so no gap).
    let mut now = t0 + TIMING.settle();
    let mut dropped = false;
    while now < t0 + TIMING.heartbeat + TIMING.dead_after * 2 {
        now += TIMING.heartbeat;
        dropped |= table.tick(now, true);
        if dropped {
            break;
        }
    }
    assert!(dropped && now > t0 + TIMING.heartbeat + TIMING.dead_after);
    assert_eq!(owners(&table), ["me"]);
}

#[test]
fn a_restarted_or_leaving_peer_is_dropped_at_once() {
    let t0 = Instant::now();
    let t1 = t0 + TIMING.heartbeat;
    let mut table = Table::new("me".into(), "addr".into(), TIMING, t0);
    table.heard(&hb("p", 5), t0);
    assert!(!table.heard(&hb("p", 5), t0), "a burst counts once");
    assert!(table.heard(&hb("p", 5), t1));
    assert_eq!(owners(&table), ["p"]);
    let late = hb("p", 4);
    assert!(
        !table.heard(&late, t1),
        "a late heartbeat of an earlier life"
    );
    assert_eq!(owners(&table), ["p"]);
    let reborn = hb("p", 6);
    assert!(
        table.heard(&reborn, t1),
        "a new life: out until its second heartbeat"
    );
    assert!(owners(&table).is_empty());
    assert!(table.heard(&reborn, t1 + TIMING.heartbeat));
    assert_eq!(owners(&table), ["p"]);
    let leaving = Heartbeat {
        leaving: true,
        ..hb("p", 6)
    };
    assert!(table.heard(&leaving, t1));
    assert!(owners(&table).is_empty());
    let me = hb("me", 9);
    assert!(
        !table.heard(&me, t1),
        "its own id from elsewhere changes nothing"
    );
}

#[test]
fn a_paused_node_takes_a_new_incarnation_and_owns_nothing_until_readmitted() {
    let t0 = Instant::now();
    let mut table = Table::new("me".into(), "addr".into(), TIMING, t0);
    table.heard(&hb("p", 1), t0);
    table.heard(&hb("p", 1), t0 + TIMING.heartbeat);
    table.tick(t0 + TIMING.heartbeat, true);
    table.tick(t0 + TIMING.settle(), true);
    assert_eq!(owners(&table), ["me", "p"]);
    let before = table.view().me.incarnation;
    // Stopped for longer than dead-after: the next tick finds the gap.
    let resumed = t0 + TIMING.settle() + TIMING.dead_after + Duration::from_millis(1);
    assert!(table.tick(resumed, true));
    let view = table.view();
    assert_eq!(view.phase, Phase::Joining);
    assert!(view.me.incarnation > before);
    assert_eq!(
        owners(&table),
        ["p"],
        "the peer is not blamed for this node's pause"
    );
    // Heartbeats go on; the peer keeps beating; no ownership before dead-after + 2 beats.
    let mut now = resumed;
    while now + TIMING.heartbeat < resumed + TIMING.rejoin() {
        now += TIMING.heartbeat;
        table.heard(&hb("p", 1), now);
        assert!(
            !table.tick(now, true),
            "still joining at {:?}",
            now - resumed
        );
        assert_eq!(table.view().phase, Phase::Joining);
    }
    assert!(table.tick(resumed + TIMING.rejoin(), true));
    assert_eq!(owners(&table), ["me", "p"]);
}

#[test]
fn a_long_disconnection_is_a_presumed_death_too() {
    let t0 = Instant::now();
    let mut table = Table::new("me".into(), "addr".into(), TIMING, t0);
    table.tick(t0 + TIMING.settle(), true);
    let before = table.view().me.incarnation;
    let mut now = t0 + TIMING.settle();
    // A short one changes nothing.
    now += TIMING.heartbeat;
    assert!(!table.tick(now, false));
    now += TIMING.heartbeat;
    assert!(!table.tick(now, true));
    assert_eq!(table.view().phase, Phase::Member);
    // Longer than dead-after: presumed dead, and joining again from the reconnection.
    let mut presumed = false;
    for _ in 0..10 {
        now += TIMING.heartbeat;
        presumed |= table.tick(now, false);
    }
    assert!(presumed);
    assert_eq!(table.view().phase, Phase::Joining);
    assert!(table.view().me.incarnation > before);
    let back = now + TIMING.heartbeat;
    table.tick(back, true);
    now = back;
    while now + TIMING.heartbeat < back + TIMING.rejoin() {
        now += TIMING.heartbeat;
        assert!(!table.tick(now, true), "still joining");
    }
    assert!(table.tick(back + TIMING.rejoin(), true));
    assert_eq!(table.view().phase, Phase::Member);
}
