//! Reading a platform's `Retry-After` (RFC 9110 §10.2.3): delta-seconds or an HTTP-date.
//!
//! Only 429 and 503 carry a wish worth honouring; on other statuses the header is ignored so a
//! misbehaving platform cannot stretch the retry schedule of an ordinary 500.

use std::time::{Duration, SystemTime};

/// Parses a `Retry-After` value relative to `now`. A date in the past means "now" (zero);
/// anything unreadable is `None`, so the releaser falls back to its own backoff.
pub fn parse(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a u64 is garbage, not "forever".
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The wait a response asks for, if its status is one where `Retry-After` means "come back
/// later" (429, 503).
pub fn from_response(status: u16, headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    if !matches!(status, 429 | 503) {
        return None;
    }
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    parse(value, SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    #[test]
    fn delta_seconds() {
        let now = SystemTime::now();
        assert_eq!(parse("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(parse("120", now), Some(Duration::from_secs(120)));
    }

    #[test]
    fn http_dates_future_and_past() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            parse("Sun, 06 Nov 1994 08:50:37 GMT", now),
            Some(Duration::from_secs(60))
        );
        // The obsolete RFC 850 form is still an HTTP-date.
        assert_eq!(
            parse("Sunday, 06-Nov-94 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn garbage_is_none() {
        let now = SystemTime::now();
        for bad in [
            "",
            "  ",
            "-1",
            "1.5",
            "soon",
            "7s",
            "99999999999999999999999",
            "Sun, 32 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn only_429_and_503_are_honoured() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(from_response(429, &headers), Some(Duration::from_secs(7)));
        assert_eq!(from_response(503, &headers), Some(Duration::from_secs(7)));
        assert_eq!(from_response(500, &headers), None);
        assert_eq!(from_response(301, &headers), None);
        assert_eq!(from_response(429, &HeaderMap::new()), None);
    }
}
