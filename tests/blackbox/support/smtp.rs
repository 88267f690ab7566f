//! The SMTP relay a release by email goes to: the aiosmtpd sink of `chorus_testkit`
//! (`None` when aiosmtpd is missing, unless `CHORUS_REQUIRE_SMTP_SINK` is set), and linking
//! an email address.

use serde_json::json;

pub use chorus_testkit::SmtpSink;

use super::accounts::Acct;
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
