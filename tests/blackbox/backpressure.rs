//! Bounds on the way to a socket: a device that never reads loses its TCP connection within
//! the write timeout, and publishing under overload answers 503 `unavailable` with
//! `Retry-After` and stores nothing.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::groups::{add_member, create_group, walk_pages};
use crate::support::*;
use futures_util::{StreamExt, stream};
use serde_json::{Value, json};

/// Opens a WebSocket by hand on a plain socket and reads the `101` answer (and nothing more).
fn raw_ws(server: &Server, token: &str) -> TcpStream {
    let mut sock = TcpStream::connect(&server.addr).expect("connect");
    let request = format!(
        "GET /v1/ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Authorization: Bearer {token}\r\n\r\n",
        server.addr
    );
    sock.write_all(request.as_bytes()).expect("handshake");
    // Read the response head byte by byte so nothing after it is consumed.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        sock.read_exact(&mut byte).expect("response head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    sock
}

/// The state of the TCP socket from local port `port` to remote port `remote`, from
/// /proc/net/tcp (`01` is ESTABLISHED); `None` once the kernel has forgotten it. Both ports,
/// since on a busy machine an older connection of another test that happened to use the same
/// local port may still be listed (in TIME_WAIT, `06`).
fn tcp_state(port: u16, remote: u16) -> Option<String> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let (local, remote) = (format!(":{port:04X}"), format!(":{remote:04X}"));
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        (cols.get(1)?.ends_with(&local) && cols.get(2)?.ends_with(&remote))
            .then(|| cols.get(3).map(|s| s.to_string()))?
    })
}

#[tokio::test]
async fn a_device_that_never_reads_is_reset_within_the_write_timeout() {
    let s = Server::start_with(&["--ws-mailbox", "16", "--ws-write-timeout-ms", "1000"]);
    let reader = new_acct(&s, "NeverReads").await;
    let writer = new_acct(&s, "Writer").await;
    make_friends(&s, &writer, &reader).await;
    let sock = raw_ws(&s, &reader.token);
    let port = sock.local_addr().expect("local addr").port();
    let remote = sock.peer_addr().expect("peer addr").port();
    assert_eq!(tcp_state(port, remote).as_deref(), Some("01"));

    // Megabytes of events toward a socket nobody reads: the kernel buffers fill, the
    // mailbox overflows, the close frame cannot go out.
    for i in 0..300 {
        let mut fields = serde_json::Map::new();
        for f in 0..30 {
            fields.insert(format!("f{f}"), json!(format!("{i:05}{}", "w".repeat(995))));
        }
        let r = patch(&s, "/v1/me/profile", writer.tok(), &Value::Object(fields)).await;
        assert_eq!(r.status.as_u16(), 200, "patch {i}: {}", r.text);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while tcp_state(port, remote).as_deref() == Some("01") {
        assert!(
            Instant::now() < deadline,
            "the connection of a device that never reads is still established"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The server reset it: reading ends in an error, not in a clean close.
    let mut sock = sock;
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut buf = vec![0u8; 1 << 16];
    let ended = loop {
        match sock.read(&mut buf) {
            Ok(0) => break "eof",
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break "reset",
            Err(e) => panic!("reading the dropped connection: {e}"),
        }
    };
    assert_eq!(ended, "reset");
    // Everyone else is served; the device catches up with resume.
    assert_healthy(&s).await;
    let (mut ws, hello) = ws_connect(&s, &reader).await;
    let head = hello_seq(&hello);
    assert!(head > 300, "300 profile changes are in the log: {hello}");
    send_json(&mut ws, &json!({"type": "resume", "since": head - 2})).await;
    let evs = collect_events(&mut ws, 2).await;
    assert_eq!(evs[1]["seq"], head);
    assert_eq!(evs[1]["type"], "profile.updated");
    assert_eq!(
        evs[1]["data"]["changes"]["f0"],
        json!(format!("00299{}", "w".repeat(995)))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_past_the_fan_out_budget_answers_503_and_stores_nothing() {
    // A budget of one recipient: any group event still on its way to sockets makes the
    // next publish wait.
    let s = Server::start_with(&["--fanout-budget", "1"]);
    let owner = new_acct(&s, "Owner").await;
    let gid = create_group(&s, &owner, "busy").await;
    let mut sockets = Vec::new();
    for i in 0..40 {
        let m = new_acct(&s, &format!("M{i}")).await;
        add_member(&s, &owner, &gid, &m).await;
        sockets.push(ws_connect(&s, &m).await.0);
    }
    let path = format!("/v1/groups/{gid}/messages");
    let answers: Vec<(usize, Resp)> = stream::iter(0..400)
        .map(|i| {
            let (s, path, owner) = (&s, &path, &owner);
            async move {
                let body = json!({"text": format!("m{i}")});
                (i, post(s, path, owner.tok(), &body).await)
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let mut accepted = std::collections::BTreeSet::new();
    let mut refused = std::collections::BTreeSet::new();
    for (i, r) in answers {
        match r.status.as_u16() {
            201 => {
                accepted.insert(format!("m{i}"));
            }
            503 => {
                r.expect_error(503, "unavailable");
                assert_eq!(
                    r.headers.get("retry-after").and_then(|v| v.to_str().ok()),
                    Some("1")
                );
                refused.insert(format!("m{i}"));
            }
            other => panic!("publish {i}: {other} {}", r.text),
        }
    }
    eprintln!("{} accepted, {} refused", accepted.len(), refused.len());
    assert!(!accepted.is_empty());
    // History holds exactly the accepted messages.
    let stored: std::collections::BTreeSet<String> = walk_pages(&s, &owner, &path, 100)
        .await
        .iter()
        .map(|m| m["text"].as_str().expect("text").to_owned())
        .collect();
    assert_eq!(stored, accepted, "every 201 is stored and no 503 is");
    assert_healthy(&s).await;
    drop(sockets);
}
