//! Identities that count (issue 15): a mutual contact match makes friends at once only when
//! each side matched an identifier of the other that counts: a phone, an email that is
//! verified (or on a server without SMTP), a Mastodon handle verified when linked; never a
//! webhook handle. Squatting someone's identifier therefore forces no friendship: the
//! squatter stays a suggestion and sees no email or phone of the victim.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::release::{
    Receiver, Script, SmtpSink, link_mastodon, link_webhook, mastodon_instance, prove,
};
use crate::support::smtp::link_email;
use crate::support::*;

const QUIET: Duration = Duration::from_millis(300);

async fn contacts(s: &Server, a: &Acct, list: Value) -> Vec<String> {
    let r = post(s, "/v1/me/contacts", a.tok(), &json!({"contacts": list})).await;
    let mut ids: Vec<String> = r.expect(200)["matched"]
        .as_array()
        .unwrap_or_else(|| panic!("no matched array: {}", r.text))
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

async fn suggestions(s: &Server, a: &Acct) -> Value {
    get(s, "/v1/friends/suggestions", a.tok())
        .await
        .expect(200)
        .clone()
}

fn phone(value: &str) -> Value {
    json!({"kind": "phone", "value": value})
}

/// Alice, who has Bob's webhook label "bob-blog" in her contacts, and her phone and email.
async fn alice(s: &Server) -> Acct {
    new_acct_with(s, "Alice", Some("alice@example.com"), Some("+15550400001")).await
}

/// A relay (`None` without aiosmtpd), a server that sends codes through it, and Alice.
async fn alice_with_smtp() -> Option<(SmtpSink, Server, Acct)> {
    let sink = SmtpSink::start(&[])?;
    let s = Server::start_with(&["--smtp-url", &sink.url()]);
    let a = alice(&s).await;
    Some((sink, s, a))
}

/// Neither is the other's friend, each is the other's suggestion, no `friend.added` reached
/// either, and `m` sees no email or phone of `victim`, anywhere.
async fn only_suggestions(s: &Server, victim: &Acct, m: &Acct, wv: &mut Ws, wm: &mut Ws) {
    expect_no_event(wv, QUIET).await;
    expect_no_event(wm, QUIET).await;
    assert_eq!(friend_ids(s, victim).await, Vec::<String>::new());
    assert_eq!(friend_ids(s, m).await, Vec::<String>::new());
    assert_eq!(item_ids(&suggestions(s, victim).await), vec![m.id.clone()]);
    let listed = suggestions(s, m).await;
    assert_eq!(item_ids(&listed), vec![victim.id.clone()]);
    let shown = get(s, &format!("/v1/accounts/{}", victim.id), m.tok()).await;
    for seen in [
        &listed["items"][0]["profile"],
        &shown.expect(200)["profile"],
    ] {
        assert!(seen.get("email").is_none(), "email shown: {seen}");
        assert!(seen.get("phone").is_none(), "phone shown: {seen}");
        assert_eq!(seen["display_name"], "Alice");
    }
}

#[tokio::test]
async fn a_squatted_webhook_handle_forces_no_friendship() {
    for squatter_first in [false, true] {
        let s = Server::start();
        let a = alice(&s).await;
        let m = new_acct(&s, "Mallory").await;
        // Mallory links a webhook under the label Alice knows as Bob's.
        link_webhook(&s, &m, "bob-blog", "http://127.0.0.1:9/hook", "sekrit").await;
        let (mut wa, _) = ws_connect(&s, &a).await;
        let (mut wm, _) = ws_connect(&s, &m).await;
        let alice_uploads =
            json!([{"kind": "platform", "platform": "webhook", "value": "Bob-Blog"}]);
        if squatter_first {
            assert_eq!(
                contacts(&s, &m, json!([phone("+1 555 040 0001")])).await,
                vec![a.id.clone()]
            );
            assert_eq!(contacts(&s, &a, alice_uploads).await, vec![m.id.clone()]);
        } else {
            assert_eq!(contacts(&s, &a, alice_uploads).await, vec![m.id.clone()]);
            assert_eq!(
                contacts(&s, &m, json!([phone("+1 555 040 0001")])).await,
                vec![a.id.clone()]
            );
        }
        only_suggestions(&s, &a, &m, &mut wa, &mut wm).await;
        // Uploading again changes nothing: the label still does not count.
        contacts(&s, &m, json!([phone("+15550400001")])).await;
        expect_no_event(&mut wa, QUIET).await;
        assert_eq!(friend_ids(&s, &a).await, Vec::<String>::new());
    }
}

#[tokio::test]
async fn a_squatted_unverified_email_forces_no_friendship() {
    let Some((sink, s, a)) = alice_with_smtp().await else {
        return;
    };
    // Mallory puts Bob's address in her profile and links Carol's as an email platform;
    // with an SMTP relay neither counts until a code sent there comes back.
    let m = new_acct_with(&s, "Mallory", Some("bob@example.com"), None).await;
    let link = link_email(&s, &m, "carol@example.com").await;
    let (mut wa, _) = ws_connect(&s, &a).await;
    let (mut wm, _) = ws_connect(&s, &m).await;
    let matched = contacts(
        &s,
        &a,
        json!([{"kind": "email", "value": "BOB@example.com"},
               {"kind": "platform", "platform": "email", "value": "carol@example.com"}]),
    )
    .await;
    assert_eq!(matched, vec![m.id.clone()]);
    assert_eq!(
        contacts(&s, &m, json!([phone("+15550400001")])).await,
        vec![a.id.clone()]
    );
    only_suggestions(&s, &a, &m, &mut wa, &mut wm).await;
    // Mallory cannot prove what she does not receive: asking for codes sends them to Bob and
    // Carol, and a guess is refused.
    post(&s, "/v1/me/email/code", m.tok(), &json!({}))
        .await
        .expect(202);
    post(
        &s,
        &format!("/v1/me/platforms/{link}/code"),
        m.tok(),
        &json!({}),
    )
    .await
    .expect(202);
    post(
        &s,
        "/v1/me/email/verify",
        m.tok(),
        &json!({"code": "123456"}),
    )
    .await
    .expect_error(400, "invalid_code");
    let sent = sink.wait_for(2, Duration::from_secs(10)).await;
    let mut to: Vec<&str> = sent
        .iter()
        .map(|m| m["rcpt_tos"][0].as_str().unwrap())
        .collect();
    to.sort();
    assert_eq!(to, ["bob@example.com", "carol@example.com"]);
    assert_eq!(friend_ids(&s, &a).await, Vec::<String>::new());
}

#[tokio::test]
async fn matching_phones_make_friends_at_once() {
    // The contract's rule holds for identifiers that count: phones always do (no SMS
    // gateway), with an SMTP relay too.
    let Some((_sink, s, a)) = alice_with_smtp().await else {
        return;
    };
    let b = new_acct_with(&s, "Bob", Some("bob@example.com"), Some("+15550400002")).await;
    let (mut wa, _) = ws_connect(&s, &a).await;
    let (mut wb, _) = ws_connect(&s, &b).await;
    assert_eq!(
        contacts(&s, &a, json!([phone("+15550400002")])).await,
        vec![b.id.clone()]
    );
    expect_no_event(&mut wa, QUIET).await;
    assert_eq!(
        contacts(&s, &b, json!([phone("+15550400001")])).await,
        vec![a.id.clone()]
    );
    assert_eq!(
        expect_event(&mut wa, "friend.added").await["data"]["account_id"],
        json!(b.id)
    );
    assert_eq!(
        expect_event(&mut wb, "friend.added").await["data"]["account_id"],
        json!(a.id)
    );
    assert_eq!(friend_ids(&s, &a).await, vec![b.id.clone()]);
    // Friends see each other's email and phone.
    let shown = get(&s, &format!("/v1/accounts/{}", a.id), b.tok()).await;
    assert_eq!(shown.expect(200)["profile"]["phone"], "+15550400001");
}

#[tokio::test]
async fn verified_emails_and_mastodon_handles_count() {
    let Some((sink, s, a)) = alice_with_smtp().await else {
        return;
    };
    let b = new_acct_with(&s, "Bob", Some("bob@example.com"), None).await;
    let c = new_acct(&s, "Cleo").await;
    // Bob proves his email; Cleo links her Mastodon account, verified by the instance.
    prove(&s, &b, "/v1/me/email", &sink, "bob@example.com").await;
    let instance = Receiver::start(Script::ByPath(mastodon_instance), None);
    link_mastodon(&s, &c, "@cleo@127.0.0.1", &instance.url("/as-cleo/"), "tok").await;
    let (mut wa, _) = ws_connect(&s, &a).await;

    let matched = contacts(
        &s,
        &a,
        json!([{"kind": "email", "value": "bob@example.com"},
               {"kind": "platform", "platform": "mastodon", "value": "@Cleo@127.0.0.1"}]),
    )
    .await;
    let mut want = vec![b.id.clone(), c.id.clone()];
    want.sort();
    assert_eq!(matched, want);
    contacts(&s, &b, json!([phone("+15550400001")])).await;
    let alices_email = json!([{"kind": "email", "value": "alice@example.com"}]);
    contacts(&s, &c, alices_email.clone()).await;
    // Alice's email is not verified, yet Cleo matched it: her own side does not count, so
    // only Bob is a friend.
    assert_eq!(
        expect_event(&mut wa, "friend.added").await["data"]["account_id"],
        json!(b.id)
    );
    expect_no_event(&mut wa, QUIET).await;
    assert_eq!(friend_ids(&s, &a).await, vec![b.id.clone()]);
    // Once Alice proves her email, Cleo's next upload counts.
    prove(&s, &a, "/v1/me/email", &sink, "alice@example.com").await;
    contacts(&s, &c, alices_email).await;
    assert_eq!(
        expect_event(&mut wa, "friend.added").await["data"]["account_id"],
        json!(c.id)
    );
}

#[tokio::test]
async fn without_smtp_emails_count_as_registered() {
    let s = Server::start();
    assert!(
        s.logged("emails taken as registered", Duration::from_secs(5))
            .await,
        "the start-up line says how emails count: {}",
        s.log_text()
    );
    let a = alice(&s).await;
    let b = new_acct_with(&s, "Bob", Some("bob@example.com"), None).await;
    assert_eq!(me(&s, &a).await["unverified"], json!([]));
    post(&s, "/v1/me/email/code", a.tok(), &json!({}))
        .await
        .expect_error(409, "not_verifiable");
    contacts(
        &s,
        &a,
        json!([{"kind": "email", "value": "bob@example.com"}]),
    )
    .await;
    contacts(
        &s,
        &b,
        json!([{"kind": "email", "value": "alice@example.com"}]),
    )
    .await;
    assert_eq!(friend_ids(&s, &a).await, vec![b.id.clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_rules_hold_across_cluster_nodes() {
    // Each account's proofs and codes live with its actor, on the node that owns it; the
    // other nodes forward to that one. Two nodes with one relay: Alice's requests go to node
    // 0 and Mallory's to node 1, and a code is asked for, paced and confirmed on either.
    let Some(sink) = SmtpSink::start(&[]) else {
        return;
    };
    let url = sink.url();
    let env: Vec<(usize, &str, &str)> = (0..2)
        .map(|i| (i, "CHORUS_SMTP_URL", url.as_str()))
        .collect();
    let Some(cluster) = crate::support::cluster::TestCluster::start_with(2, &env).await else {
        return;
    };
    let (n0, n1) = (cluster.node(0), cluster.node(1));
    let a = alice(n0).await;
    let m = new_acct_with(n1, "Mallory", Some("bob@example.com"), None).await;
    link_webhook(n1, &m, "bob-blog", "http://127.0.0.1:9/hook", "sekrit").await;
    let (mut wa, _) = ws_connect(n0, &a).await;
    let (mut wm, _) = ws_connect(n1, &m).await;
    contacts(
        n0,
        &a,
        json!([{"kind": "platform", "platform": "webhook", "value": "bob-blog"},
               {"kind": "email", "value": "bob@example.com"}]),
    )
    .await;
    contacts(n1, &m, json!([phone("+15550400001")])).await;
    only_suggestions(n0, &a, &m, &mut wa, &mut wm).await;

    let code =
        crate::support::smtp::ask_code(n0, &a, "/v1/me/email", &sink, "alice@example.com").await;
    post(n1, "/v1/me/email/code", a.tok(), &json!({}))
        .await
        .expect_error(429, "rate_limited");
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    let r = post(n1, "/v1/me/email/verify", a.tok(), &json!({"code": wrong})).await;
    r.expect_error(400, "invalid_code");
    assert!(r.text.contains("4 attempt"), "{}", r.text);
    post(n0, "/v1/me/email/verify", a.tok(), &json!({"code": wrong}))
        .await
        .expect_error(400, "invalid_code");
    post(n1, "/v1/me/email/verify", a.tok(), &json!({"code": code}))
        .await
        .expect(200);
    assert_eq!(me(n0, &a).await["unverified"], json!([]));
}
