//! A full or failing disk (the embedded store): a write answers 503 `unavailable` with
//! `Retry-After` in the contract's shape, reads still answer 200, `/readyz` fails while
//! `/healthz` stays 200, nothing of a refused write is stored, and once the disk takes writes
//! again the server does too, without a restart.
//!
//! The real thing runs on an 8 MiB tmpfs mounted on the data directory and filled up (root
//! only). Where mounting is refused, the same expectations run with the injected fault
//! (`CHORUS_FAULTS=store_write_error`, active while a file of that name is in the data
//! directory), which the second test always runs.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::groups::{create_group, post_message};
use crate::support::store::on_cql_store;
use crate::support::*;

/// The fault point's name (`chorus_actors::faults::Point::STORE_WRITE_ERROR`).
const FAULT: &str = "store_write_error";

/// A tmpfs mounted on a directory; unmounted when dropped (after the server is gone).
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts an `size`-byte tmpfs on `dir`, if this machine lets us.
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .ok()?;
        if out.status.success() {
            Some(Tmpfs(dir.to_owned()))
        } else {
            eprintln!(
                "mounting a tmpfs was refused ({}); using the injected write error instead",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            None
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// How the test makes the disk sick and well again.
enum Sickness {
    /// A full tmpfs: a file fills it, removing it frees it.
    Full,
    /// The injected fault: its file in the data directory.
    Injected,
}

impl Sickness {
    fn make_sick(&self, dir: &Path) {
        match self {
            Sickness::Full => {
                let mut filler = std::fs::File::create(dir.join("filler")).expect("filler");
                let chunk = vec![7u8; 64 * 1024];
                while filler.write_all(&chunk).is_ok() {}
                // Whatever fits in less than a chunk, too.
                while filler.write_all(&[7u8; 512]).is_ok() {}
            }
            Sickness::Injected => {
                std::fs::write(dir.join(FAULT), b"").expect("fault file");
            }
        }
    }

    fn make_well(&self, dir: &Path) {
        let file = match self {
            Sickness::Full => "filler",
            Sickness::Injected => FAULT,
        };
        std::fs::remove_file(dir.join(file)).expect("remove the file that made the disk sick");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_with_503_keeps_serving_reads_and_recovers_when_freed() {
    if on_cql_store() {
        return;
    }
    let mut mounted = None;
    let server = Server::start_prepared(&[], &[(ENV_FAULTS, FAULT)], |dir| {
        mounted = Tmpfs::mount(dir, "8m");
    });
    let sickness = if mounted.is_some() {
        Sickness::Full
    } else {
        Sickness::Injected
    };
    sick_disk_round(server, sickness).await;
    drop(mounted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_write_error_refuses_writes_with_503_keeps_serving_reads_and_recovers() {
    if on_cql_store() {
        return;
    }
    let server = Server::start_prepared(&[], &[(ENV_FAULTS, FAULT)], |_| {});
    sick_disk_round(server, Sickness::Injected).await;
}

const ENV_FAULTS: &str = "CHORUS_FAULTS";

/// A 503 `unavailable` in the contract's shape, with a `Retry-After`.
fn assert_unavailable(r: &Resp, what: &str) {
    r.expect_error(503, "unavailable");
    let retry = r
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(
        retry.is_some_and(|s| s >= 1),
        "{what}: 503 without a Retry-After in seconds: {:?}",
        r.headers
    );
}

async fn set_note(s: &Server, a: &Acct, note: &str) -> Resp {
    patch(s, "/v1/me/profile", a.tok(), &json!({"note": note})).await
}

async fn note_of(s: &Server, a: &Acct) -> String {
    me(s, a).await["profile"]["note"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The group's messages (a read of the store: a page of its feed).
async fn message_ids(s: &Server, a: &Acct, gid: &str) -> Vec<String> {
    let r = get(s, &format!("/v1/groups/{gid}/messages"), a.tok()).await;
    r.expect(200)["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|m| m["message_id"].as_str().expect("message_id").to_owned())
        .collect()
}

async fn sick_disk_round(mut s: Server, sickness: Sickness) {
    let dir = s.data_dir.path().to_owned();
    let ann = new_acct(&s, "Ann").await;
    let gid = create_group(&s, &ann, "hikers").await;
    let mid = post_message(&s, &ann, &gid, "before the disk fills").await;
    set_note(&s, &ann, "acknowledged").await.expect(200);
    assert_eq!(get(&s, "/readyz", None).await.status.as_u16(), 200);

    sickness.make_sick(&dir);
    // A tmpfs page the journal already holds may take a write or two before it is full.
    let mut refused = None;
    for i in 0..200 {
        let r = set_note(&s, &ann, &format!("refused {i} {}", "x".repeat(900))).await;
        match r.status.as_u16() {
            200 => {}
            _ => {
                refused = Some(r);
                break;
            }
        }
    }
    let refused = refused.expect("a write on the full disk was refused");
    if let Sickness::Full = sickness {
        // The server's output is read on a thread of its own: give the line a moment.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !s.log_text().contains("No space left on device") {
            assert!(
                Instant::now() < deadline,
                "the refusal came from a full disk"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_unavailable(&refused, "the write that found the disk full");
    let last_ok = note_of(&s, &ann).await;

    // Every later write is refused at once, in the same shape; nothing of it is stored.
    let r = post(
        &s,
        "/v1/accounts",
        None,
        &json!({"password": PASSWORD, "profile": {"display_name": "Cy", "email": "cy@example.com"}}),
    )
    .await;
    assert_unavailable(&r, "a registration");
    assert_unavailable(
        &set_note(&s, &ann, "also refused").await,
        "a second profile write",
    );

    // Reads go on; liveness holds; readiness fails, saying why.
    let r = get(&s, "/readyz", None).await;
    assert_unavailable(&r, "/readyz");
    assert!(
        r.text.contains("refuses writes"),
        "readyz says why: {}",
        r.text
    );
    assert_healthy(&s).await;
    assert_eq!(me(&s, &ann).await["profile"]["display_name"], "Ann");
    assert_eq!(message_ids(&s, &ann, &gid).await, vec![mid.clone()]);

    sickness.make_well(&dir);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if get(&s, "/readyz", None).await.status.as_u16() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the store did not take writes again within 60 s of the disk recovering"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Writes work again; the refused registration took nothing (its email is free).
    set_note(&s, &ann, "after").await.expect(200);
    let (cy, _) = register(&s, "Cy", Some("cy@example.com"), None).await;
    login(&s, "cy@example.com", PASSWORD).await.expect(200);

    // What the store holds (after a restart, from disk): the acknowledged writes, none of
    // the refused ones.
    assert!(last_ok == "acknowledged" || last_ok.starts_with("refused "));
    s.restart();
    assert_eq!(note_of(&s, &ann).await, "after");
    assert_eq!(message_ids(&s, &ann, &gid).await, vec![mid]);
    assert_eq!(
        login(&s, "cy@example.com", PASSWORD).await.expect(200)["account_id"],
        json!(cy)
    );
}
