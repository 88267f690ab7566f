//! The SMTP relay a release by email goes to: the aiosmtpd sink of `chorus_testkit`
//! (`None` when aiosmtpd is missing, unless `CHORUS_REQUIRE_SMTP_SINK` is set), linking an
//! email address, and proving one with the code the sink got.

use serde_json::json;

pub use chorus_testkit::SmtpSink;

use super::accounts::Acct;
use super::http::post;
use super::receivers::link;
use super::server::Server;

/// Links the email address `to`; returns the link id. The server needs `--smtp-url`.
pub async fn link_email(s: &Server, a: &Acct, to: &str) -> String {
    link(
        s,
        a,
        &json!({"platform": "email", "handle": to, "config": {}}),
    )
    .await
}

/// The `Message-ID:` header line of a raw message.
pub fn message_id_line(data: &str) -> Option<String> {
    data.lines()
        .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
        .map(str::to_string)
}

/// How long a test waits for a verification code to arrive.
const CODE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// `POST {path}/code` then the code `sink` got for `to` (the newest one, once it arrives).
pub async fn ask_code(s: &Server, a: &Acct, path: &str, sink: &SmtpSink, to: &str) -> String {
    let before = sink.messages().len();
    post(s, &format!("{path}/code"), a.tok(), &json!({}))
        .await
        .expect(202);
    let got = sink.wait_for(before + 1, CODE_WAIT).await;
    code_in(&got, to).unwrap_or_else(|| panic!("no code for {to} in {got:?}"))
}

/// The code of the newest verification message to `to` among `messages`.
pub fn code_in(messages: &[serde_json::Value], to: &str) -> Option<String> {
    messages.iter().rev().find_map(|m| {
        let to_them = m["rcpt_tos"]
            .as_array()
            .is_some_and(|r| r.iter().any(|t| t == to));
        let code = m["subject"].as_str()?.strip_prefix("Your Chorus code: ")?;
        to_them.then(|| code.to_owned())
    })
}

/// Proves `path` (`/v1/me/email` or `/v1/me/platforms/{link_id}`) with the code `sink` got.
pub async fn prove(s: &Server, a: &Acct, path: &str, sink: &SmtpSink, to: &str) {
    let code = ask_code(s, a, path, sink, to).await;
    post(
        s,
        &format!("{path}/verify"),
        a.tok(),
        &json!({"code": code}),
    )
    .await
    .expect(200);
}

/// Links the email address `to` and proves it with the code `sink` got (an unproven email
/// link is released nothing while the server has an SMTP relay).
pub async fn link_proven_email(s: &Server, a: &Acct, to: &str, sink: &SmtpSink) -> String {
    let link = link_email(s, a, to).await;
    prove(s, a, &format!("/v1/me/platforms/{link}"), sink, to).await;
    link
}
