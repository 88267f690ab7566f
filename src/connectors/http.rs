//! One HTTP attempt (webhook, Mastodon) and what it comes to, in the words a release's
//! `last_error` shows its author.
//!
//! Those words are fixed: the status of an answer ("HTTP 500"), never its body, and one
//! reason for every failure short of an answer ([`NO_ANSWER`]), so that a link cannot be
//! used to read what a server answers, nor to tell a closed port (refused) from a filtered
//! one (timed out). The details go to the server's log (debug level), for its operator.

use std::time::Duration;

use chorus_actors::release::AttemptOutcome;

use super::egress::{Egress, NOT_ALLOWED, NotAllowed};
use super::retry_after;

/// `last_error` of an attempt that got no HTTP answer: the name did not resolve, the
/// connection was refused, reset or timed out, TLS failed, or the answer did not come in
/// time.
pub const NO_ANSWER: &str = "no answer (could not connect, or timed out)";

/// Sends one request under the egress policy and reads the answer
/// ([`AttemptOutcome::from_http`] on its status alone).
pub async fn send(
    client: &reqwest::Client,
    egress: Egress,
    request: reqwest::RequestBuilder,
) -> AttemptOutcome {
    let request = match request.build() {
        Ok(request) => request,
        Err(e) => return request_error(&e),
    };
    // An address written in the URL reaches no resolver: checked here instead.
    if egress.check_url(request.url()).is_err() {
        return not_allowed();
    }
    let response = match client.execute(request).await {
        Ok(response) => response,
        Err(e) => return request_error(&e),
    };
    let status = response.status().as_u16();
    let retry_after = retry_after::from_response(status, response.headers());
    // The body is not read: nothing of it may reach `last_error`.
    AttemptOutcome::from_http(status, retry_after, "")
}

fn not_allowed() -> AttemptOutcome {
    AttemptOutcome::Fail {
        error: NOT_ALLOWED.into(),
    }
}

/// A request that got no HTTP answer. A destination the egress policy refused fails for
/// good, as does a request that could not even be built (a header value the stored config
/// makes invalid); anything else is the network's fault and worth another try.
fn request_error(e: &reqwest::Error) -> AttemptOutcome {
    if find::<NotAllowed>(e).is_some() {
        return not_allowed();
    }
    tracing::debug!(error = %root_cause(e), connect = e.is_connect(), timeout = e.is_timeout(), "release attempt got no answer");
    if e.is_builder() {
        return AttemptOutcome::Fail {
            error: "the request could not be built from the link's config".into(),
        };
    }
    AttemptOutcome::Retry {
        error: NO_ANSWER.into(),
        after: None,
    }
}

/// The first error of type `T` in `e`'s chain of sources, looking inside `io::Error`s too
/// (whose `source` skips the error they wrap).
pub fn find<'a, T: std::error::Error + 'static>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(found) = err.downcast_ref::<T>() {
            return Some(found);
        }
        if let Some(found) = err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .and_then(|inner| inner.downcast_ref::<T>())
        {
            return Some(found);
        }
        current = err.source();
    }
    None
}

/// The innermost error's message: reqwest's own wrappers ("error sending request for url
/// (...)") repeat the URL, which may carry a secret path, and say little.
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut current = e;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// "10s", "1500ms".
pub fn human_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_short() {
        assert_eq!(human_duration(Duration::from_secs(10)), "10s");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn errors_are_found_down_the_chain() {
        let io = std::io::Error::other(NotAllowed);
        assert!(find::<NotAllowed>(&io).is_some());
        assert_eq!(root_cause(&io), NOT_ALLOWED);
        let plain = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(find::<NotAllowed>(&plain).is_none());
    }
}
