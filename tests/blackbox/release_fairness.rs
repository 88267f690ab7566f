//! Fair release (issue 15): one account cannot hold up everyone else's releases. Authors take
//! turns, each has its own cap on attempts running, the cap per destination counts a host
//! whatever the port, and the releases held in memory are bounded, the rest waiting in the
//! outbox (never dropped).
//!
//! Hosts are told apart by loopback address: the healthy sinks listen on 127.0.0.1, the black
//! holes on 127.0.0.2 and up.

use std::collections::HashSet;
use std::time::Duration;

use crate::support::release::*;
use crate::support::*;

/// How long the well-behaved account's release may take: well under the attempt timeout,
/// so it cannot be a slot freed by a black hole's attempt timing out.
const FAIR_WAIT: Duration = Duration::from_secs(5);

/// Black-hole hosts, and ports (receivers) on each.
const HOSTS: u8 = 4;
const PORTS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_flooding_black_holes_does_not_delay_another_accounts_release() {
    // 16 slots in all, 8 per account, 3 per host; attempts hang for 30 s and time out at 20.
    // Without the caps the flood's first 16 attempts would hold every slot for 20 s, and
    // the release after them would wait behind hundreds more.
    let mut f = ReleaseFixture::start_as(
        "Quiet Author",
        &[
            "--release-concurrency",
            "16",
            "--release-per-account",
            "8",
            "--release-per-destination",
            "3",
            "--release-timeout-ms",
            "20000",
        ],
    )
    .await;
    let flood = new_acct(&f.s, "Flood Author").await;
    // 32 links (the most an account may have): 2 paths on each of 4 ports of 4 hosts.
    let mut holes: Vec<(u8, Receiver)> = Vec::new();
    for host in 2..2 + HOSTS {
        for _ in 0..PORTS {
            let rx = Receiver::start_at(
                [127, 0, 0, host].into(),
                Script::Always(Reply::hang(Duration::from_secs(30))),
                None,
            );
            for path in ["/a", "/b"] {
                let handle = format!("hole-{}-{path}", rx.addr);
                link_webhook(&f.s, &flood, &handle, &rx.url(path), "whsec_hole").await;
            }
            holes.push((host, rx));
        }
    }
    for n in 0..20 {
        post_text(&f.s, &flood, &format!("flood {n}")).await;
    }
    // The flood holds every slot it may: 8, at most 3 on any host whatever the port.
    let started = |holes: &[(u8, Receiver)]| holes.iter().map(|(_, rx)| rx.count()).sum::<usize>();
    let deadline = tokio::time::Instant::now() + RELEASE_WAIT;
    while started(&holes) < 8 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the flood started {} attempts",
            started(&holes)
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    let sink = f.webhook("healthy", Script::Always(Reply::ok())).await;
    let (s, a, link) = (&f.s, &f.a, &sink.link);
    let id = f.post("hello, fairly").await;
    let items = wait_releases(s, a, &id, FAIR_WAIT, |items| {
        items.iter().any(|i| i["status"] != "pending")
    })
    .await;
    assert_eq!(release_of(&items, link)["status"], "delivered", "{items:?}");
    assert_eq!(sink.rx.count(), 1);

    // No attempt of the flood has ended yet (they hang 30 s, time out at 20): what the
    // black holes got is what ran at once.
    assert_eq!(started(&holes), 8, "the cap per account");
    for host in 2..2 + HOSTS {
        let on_host: usize = holes
            .iter()
            .filter(|(h, _)| *h == host)
            .map(|(_, rx)| rx.count())
            .sum();
        assert!(
            on_host <= 3,
            "127.0.0.{host} got {on_host} attempts at once"
        );
    }
}

/// What the server logs when its bounds first leave releases in the outbox.
const SPILLED: &str = "releases past the releaser's bounds wait in the outbox";

/// Releases past the bounds wait in the outbox and are all released: a few at a time as
/// room comes, and across a restart (which reads the outbox under the same bounds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_past_the_bounds_wait_in_the_outbox_and_all_land() {
    let mut f = ReleaseFixture::start_as(
        "Busy Author",
        &["--release-held", "6", "--release-held-per-account", "4"],
    )
    .await;
    // Each answer takes a while, so releases pile up past the bounds.
    let slow = || Script::Always(Reply::hang(Duration::from_secs(1)));
    let first = f.webhook("first", slow()).await;
    let second = f.webhook("second", slow()).await;
    let other = new_acct(&f.s, "Other Author").await;
    let third = Receiver::start(slow(), Some("whsec_third"));
    link_webhook(&f.s, &other, "third", &third.url("/hook"), "whsec_third").await;

    let mut mine = Vec::new();
    let mut theirs = Vec::new();
    for n in 0..12 {
        mine.push(f.post(&format!("mine {n}")).await);
        theirs.push(activity_id(
            &post_text(&f.s, &other, &format!("theirs {n}")).await,
        ));
        if n == 5 {
            // Half of them posted: the server dies, the rest of its outbox waits on disk.
            assert!(
                f.s.logged(SPILLED, Duration::from_secs(5)).await,
                "{}",
                f.s.log_text()
            );
            f.s.kill();
            f.s.restart();
        }
    }
    let patience = Duration::from_secs(60);
    for id in &mine {
        let items = wait_final(&f.s, &f.a, id, patience).await;
        assert!(
            items.iter().all(|i| i["status"] == "delivered"),
            "{items:?}"
        );
    }
    for id in &theirs {
        let items = wait_final(&f.s, &other, id, patience).await;
        assert!(
            items.iter().all(|i| i["status"] == "delivered"),
            "{items:?}"
        );
    }
    // Each release reached its platform (again after the crash, at most, with its key).
    for (rx, want) in [(&first.rx, 12), (&second.rx, 12), (&third, 12)] {
        let keys: HashSet<String> = rx
            .requests()
            .iter()
            .map(Received::idempotency_key)
            .collect();
        assert_eq!(keys.len(), want);
    }
}
