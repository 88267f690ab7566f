//! The client's address, which the rate limits count against ([`crate::limits`]).
//!
//! It is the TCP peer, unless the peer is one of `--trusted-proxies`: then it is read from
//! `X-Forwarded-For`, walked from the right (each proxy appends the address it got the
//! request from), skipping the trusted proxies, and the first address that is not one of
//! them is the client. Everything left of it was written by the client itself, so it is never
//! read. A malformed entry met on the walk means a proxy that does not write the header as
//! expected: the peer is used, as when the header is absent. If every entry is a trusted
//! proxy, the leftmost is the client. Without `--trusted-proxies` the header is ignored (any
//! client could write it).
//!
//! Addresses are compared and returned in canonical form: an IPv4-mapped IPv6 address (a
//! dual-stack listener's view of an IPv4 peer) is its IPv4 address.

use std::future::{Ready, ready};
use std::net::IpAddr;

use actix_web::dev::Payload;
use actix_web::http::header::HeaderMap;
use actix_web::{FromRequest, HttpRequest, web};
use ipnet::IpNet;

use super::AppState;
use crate::error::Error;

/// The header a trusted proxy names the client in.
pub const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The client address of a request (`None` only when it has no TCP peer), as an extractor.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequest for ClientIp {
    type Error = Error;
    type Future = Ready<Result<Self, Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let trusted = req
            .app_data::<web::Data<AppState>>()
            .map(|s| s.config.edge.trusted_proxies.as_slice())
            .unwrap_or_default();
        let peer = req.peer_addr().map(|a| a.ip());
        ready(Ok(ClientIp(client_ip(peer, req.headers(), trusted))))
    }
}

/// The client address of a request from `peer` with `headers` (see the module doc).
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = peer.map(|p| p.to_canonical())?;
    if !is_trusted(peer, trusted) {
        return Some(peer);
    }
    // Several header lines are one list, in order.
    let mut entries = Vec::new();
    for value in headers.get_all(X_FORWARDED_FOR) {
        let Ok(text) = value.to_str() else {
            return Some(peer);
        };
        entries.extend(text.split(',').map(str::trim));
    }
    let mut leftmost = None;
    for entry in entries.iter().rev() {
        let Ok(ip) = entry.parse::<IpAddr>() else {
            return Some(peer);
        };
        let ip = ip.to_canonical();
        if !is_trusted(ip, trusted) {
            return Some(ip);
        }
        leftmost = Some(ip);
    }
    Some(leftmost.unwrap_or(peer))
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().expect("cidr")).collect()
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(
                HeaderName::from_static(X_FORWARDED_FOR),
                HeaderValue::from_str(v).expect("header"),
            );
        }
        map
    }

    fn client(peer: &str, xff: &[&str], trusted: &[&str]) -> IpAddr {
        client_ip(Some(ip(peer)), &headers(xff), &nets(trusted)).expect("an address")
    }

    const PROXIES: &[&str] = &["10.0.0.0/8", "2001:db8:ffff::/48"];

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        assert_eq!(client("192.0.2.1", &["203.0.113.9"], &[]), ip("192.0.2.1"));
    }

    #[test]
    fn a_peer_that_is_not_trusted_is_the_client_whatever_it_says() {
        assert_eq!(
            client("192.0.2.1", &["203.0.113.9"], PROXIES),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn the_walk_from_the_right_skips_trusted_proxies() {
        // client -> proxy 10.0.0.2 -> proxy 10.0.0.1 (the peer)
        assert_eq!(
            client("10.0.0.1", &["203.0.113.9, 10.0.0.2"], PROXIES),
            ip("203.0.113.9")
        );
        // What the client wrote itself, left of its own address, is never read.
        assert_eq!(
            client(
                "10.0.0.1",
                &["198.51.100.7, 203.0.113.9, 10.0.0.2"],
                PROXIES
            ),
            ip("203.0.113.9")
        );
        // A forged trusted-looking entry left of the client changes nothing either.
        assert_eq!(
            client("10.0.0.1", &["10.9.9.9, 203.0.113.9"], PROXIES),
            ip("203.0.113.9")
        );
        // Several header lines are one list.
        assert_eq!(
            client(
                "10.0.0.1",
                &["203.0.113.9", "10.0.0.2, 2001:db8:ffff::1"],
                PROXIES
            ),
            ip("203.0.113.9")
        );
        assert_eq!(
            client("2001:db8:ffff::9", &["2001:db8:1:2::1"], PROXIES),
            ip("2001:db8:1:2::1")
        );
    }

    #[test]
    fn malformed_or_missing_headers_leave_the_peer() {
        for xff in [
            &["not an address"][..],
            &["203.0.113.9, , 10.0.0.2"][..],
            &["203.0.113.9, 10.0.0.2:8080"][..],
            &[""][..],
            &[][..],
        ] {
            assert_eq!(client("10.0.0.1", xff, PROXIES), ip("10.0.0.1"), "{xff:?}");
        }
        // Garbage left of the client is never reached.
        assert_eq!(
            client("10.0.0.1", &["garbage, 203.0.113.9"], PROXIES),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn only_trusted_entries_give_the_leftmost() {
        assert_eq!(
            client("10.0.0.1", &["10.0.0.3, 10.0.0.2"], PROXIES),
            ip("10.0.0.3")
        );
    }

    #[test]
    fn ipv4_mapped_addresses_are_ipv4() {
        assert_eq!(
            client("::ffff:10.0.0.1", &["::ffff:203.0.113.9"], PROXIES),
            ip("203.0.113.9")
        );
        assert_eq!(client("::ffff:192.0.2.1", &[], &[]), ip("192.0.2.1"));
    }
}
