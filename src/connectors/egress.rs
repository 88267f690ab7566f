//! The egress policy: a link may only send a user's activity (and its secret) to a public
//! address, so that nobody can point Chorus at its own loopback, the private network around
//! it, or a cloud metadata service (169.254.169.254) and read what comes back.
//!
//! It is checked twice:
//! - **When a link is made** ([`Egress::check_link`]): a URL whose host is, or resolves to,
//!   a non-public address is a 400, and nothing is stored. A host that does not resolve now
//!   is taken (it may be set up later); the second check covers it.
//! - **When a release connects**: a host name is resolved once, by [`PolicyResolver`], the
//!   HTTP client's resolver, which refuses the whole answer if any address in it is not public,
//!   and the client connects to the addresses it checked: no second lookup, so a name that
//!   answers a public address at link time and 127.0.0.1 now (DNS rebinding) gets nowhere.
//!   An address written in the URL never reaches a resolver, so [`Egress::check_url`] checks
//!   it before the request goes. Redirects are never followed, and proxies from the
//!   environment are not used (a proxy would resolve the name itself, unchecked).
//!
//! `--allow-private-destinations` turns both checks off (development and tests, whose
//! receivers listen on 127.0.0.1).
//!
//! Both lookups also tell [`ResolvedHosts`] what each name resolved to, the key of the
//! releaser's cap per destination host.
//!
//! "Public" is decided by [`is_public`] from the IANA special-purpose registries, IPv4 and
//! IPv6, including the IPv6 forms that carry an IPv4 address (mapped, NAT64, 6to4): the
//! embedded address decides.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

use super::hosts::ResolvedHosts;
use crate::error::{Error, Result};

/// `last_error` of a release whose destination is not a public address now.
pub const NOT_ALLOWED: &str = "destination not allowed: not a public address";

/// Where connectors may connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Egress {
    allow_private: bool,
}

impl Egress {
    /// Public addresses only (the default).
    pub const PUBLIC_ONLY: Egress = Egress {
        allow_private: false,
    };
    /// Anywhere, plain-http Mastodon included (`--allow-private-destinations`).
    pub const ANYWHERE: Egress = Egress {
        allow_private: true,
    };

    pub fn new(allow_private: bool) -> Self {
        Egress { allow_private }
    }

    /// Whether the policy is off (`--allow-private-destinations`).
    pub fn allows_private(self) -> bool {
        self.allow_private
    }

    fn allows(self, ip: IpAddr) -> bool {
        self.allow_private || is_public(ip)
    }

    /// The link-time check of `url` (the config field `field`): a 400 naming the field if
    /// its host is, or now resolves to, an address the policy refuses. Resolution is bounded
    /// by `timeout`; a host that does not resolve passes (checked again at connect time).
    /// What the name resolved to is remembered in `hosts`.
    pub async fn check_link(
        self,
        url: &Url,
        field: &str,
        timeout: Duration,
        hosts: &ResolvedHosts,
    ) -> Result<()> {
        if self.allow_private {
            return Ok(());
        }
        let refused = || {
            Error::invalid(format!(
                "config.{field} must point at a public address: loopback, private, \
                 link-local and other special-purpose addresses are refused"
            ))
        };
        match url.host() {
            Some(Host::Ipv4(ip)) if !is_public(IpAddr::V4(ip)) => Err(refused()),
            Some(Host::Ipv6(ip)) if !is_public(IpAddr::V6(ip)) => Err(refused()),
            Some(Host::Domain(name)) => {
                let port = url.port_or_known_default().unwrap_or(0);
                match tokio::time::timeout(timeout, tokio::net::lookup_host((name, port))).await {
                    Ok(Ok(addrs)) => {
                        let addrs: Vec<SocketAddr> = addrs.collect();
                        hosts.record(name, addrs.iter().map(SocketAddr::ip));
                        if addrs.iter().any(|a| !is_public(a.ip())) {
                            Err(refused())
                        } else {
                            Ok(())
                        }
                    }
                    // Unknown now, or too slow to say: the connect-time check decides.
                    Ok(Err(_)) | Err(_) => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    /// The connect-time check of an address written in the URL (a host name is checked by
    /// [`PublicOnly`] instead, as it resolves).
    pub fn check_url(self, url: &Url) -> std::result::Result<(), NotAllowed> {
        let literal = match url.host() {
            Some(Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(Host::Ipv6(ip)) => IpAddr::V6(ip),
            _ => return Ok(()),
        };
        if self.allows(literal) {
            Ok(())
        } else {
            Err(NotAllowed)
        }
    }

    /// The resolver the HTTP client uses under this policy, telling `hosts` what each name
    /// resolved to.
    pub fn resolver(self, hosts: Arc<ResolvedHosts>) -> Arc<PolicyResolver> {
        Arc::new(PolicyResolver {
            egress: self,
            hosts,
        })
    }
}

/// A destination the policy refuses (carried through the HTTP client's error chain, where
/// [`super::describe_network_error`] finds it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAllowed;

impl fmt::Display for NotAllowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(NOT_ALLOWED)
    }
}

impl std::error::Error for NotAllowed {}

/// The HTTP client's resolver: the system's lookup (as the client's own default), whose
/// answer is refused whole, under the policy, if any address in it is not public. Every
/// answer is remembered in [`ResolvedHosts`].
#[derive(Debug, Clone)]
pub struct PolicyResolver {
    egress: Egress,
    hosts: Arc<ResolvedHosts>,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let (egress, hosts) = (self.egress, self.hosts.clone());
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            hosts.record(&host, addrs.iter().map(SocketAddr::ip));
            if egress.allow_private {
                return Ok(Box::new(addrs.into_iter()) as Addrs);
            }
            public_only(addrs)
                .map(|addrs| Box::new(addrs.into_iter()) as Addrs)
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
        })
    }
}

/// `addrs` if every one is public.
fn public_only(addrs: Vec<SocketAddr>) -> std::result::Result<Vec<SocketAddr>, NotAllowed> {
    if addrs.iter().all(|a| is_public(a.ip())) {
        Ok(addrs)
    } else {
        Err(NotAllowed)
    }
}

/// Whether `ip` is a public unicast address: not loopback, private, shared (CGNAT),
/// link-local, multicast, unspecified, broadcast, documentation, benchmarking or reserved.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => is_public_v6(ip),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let special = a == 0 // "this network", 0.0.0.0 included
        || a == 10 // private
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || a == 127 // loopback
        || (a == 169 && b == 254) // link-local, cloud metadata services
        || (a == 172 && (16..32).contains(&b)) // private
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // documentation (TEST-NET-1)
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast (deprecated)
        || (a == 192 && b == 168) // private
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // documentation (TEST-NET-2)
        || (a == 203 && b == 0 && c == 113) // documentation (TEST-NET-3)
        || a >= 224; // multicast, reserved, broadcast
    !special
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    // Forms that carry an IPv4 address: that address decides.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4); // ::ffff:a.b.c.d
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return is_public_v4(low_v4(&s)); // NAT64 well-known prefix 64:ff9b::/96
    }
    if s[0] == 0x2002 {
        let [a, b] = s[1].to_be_bytes();
        let [c, d] = s[2].to_be_bytes();
        return is_public_v4(Ipv4Addr::new(a, b, c, d)); // 6to4 2002::/16
    }
    // Global unicast is 2000::/3; everything outside it (::1, ::, IPv4-compatible,
    // 100::/64, fc00::/7, fe80::/10, fec0::/10, ff00::/8, …) is not public.
    let global_unicast = s[0] & 0xe000 == 0x2000;
    // 2001::/23: IETF protocol assignments (Teredo, …); 2001:db8::/32 and 3fff::/20:
    // documentation.
    let special =
        (s[0] == 0x2001 && (s[1] < 0x0200 || s[1] == 0x0db8)) || (s[0] & 0xfff0 == 0x3ff0);
    global_unicast && !special
}

/// The IPv4 address in the last 32 bits.
fn low_v4(s: &[u16; 8]) -> Ipv4Addr {
    let [a, b] = s[6].to_be_bytes();
    let [c, d] = s[7].to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn special_purpose_addresses_are_not_public() {
        for bad in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.1.2.3",
            "169.254.169.254",
            "169.254.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:0.0.0.0",
            "64:ff9b::127.0.0.1",
            "64:ff9b::10.1.2.3",
            "64:ff9b:1::1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "100::1",
            "2001::1",
            "2001:0:4136:e378::1",
            "2001:db8::1",
            "3fff::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "ff0e::1",
            "5f00::1",
        ] {
            assert!(!is_public(ip(bad)), "{bad} taken for public");
        }
    }

    #[test]
    fn public_addresses_are() {
        for good in [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "169.253.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.0.1.1",
            "192.169.0.1",
            "198.17.255.255",
            "198.20.0.1",
            "203.0.114.1",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "2a00:1450:4001::1",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "2002:0808:0808::1",
            "2001:200::1",
        ] {
            assert!(is_public(ip(good)), "{good} taken for not public");
        }
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[tokio::test]
    async fn links_to_private_destinations_are_refused() {
        let t = Duration::from_secs(5);
        for bad in [
            "http://127.0.0.1:9001/hook",
            "http://[::1]/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::ffff:127.0.0.1]:80/",
            "http://[::ffff:a9fe:a9fe]/",
            // Other spellings of 127.0.0.1 the URL parser folds into one.
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "https://10.1.2.3/",
            "https://localhost:8443/",
        ] {
            let err = Egress::PUBLIC_ONLY
                .check_link(&url(bad), "url", t, &ResolvedHosts::default())
                .await
                .unwrap_err();
            assert_eq!(err.code(), "invalid_input", "{bad}");
            assert!(
                err.to_string()
                    .starts_with("config.url must point at a public"),
                "{bad}: {err}"
            );
            // The policy off takes them all.
            assert!(
                Egress::ANYWHERE
                    .check_link(&url(bad), "url", t, &ResolvedHosts::default())
                    .await
                    .is_ok()
            );
        }
        // Public literals, and names that do not resolve (here: a reserved TLD), pass.
        for good in [
            "https://8.8.8.8/hook",
            "https://[2606:4700::1]/",
            "https://hooks.invalid/x",
        ] {
            assert!(
                Egress::PUBLIC_ONLY
                    .check_link(&url(good), "url", t, &ResolvedHosts::default())
                    .await
                    .is_ok(),
                "{good}"
            );
        }
    }

    #[test]
    fn literal_urls_are_checked_before_connecting() {
        assert_eq!(
            Egress::PUBLIC_ONLY.check_url(&url("http://127.0.0.1:1/")),
            Err(NotAllowed)
        );
        assert_eq!(
            Egress::PUBLIC_ONLY.check_url(&url("http://[::ffff:10.0.0.1]/")),
            Err(NotAllowed)
        );
        // Names are left to the resolver.
        assert_eq!(
            Egress::PUBLIC_ONLY.check_url(&url("http://localhost/")),
            Ok(())
        );
        assert_eq!(
            Egress::PUBLIC_ONLY.check_url(&url("http://8.8.8.8/")),
            Ok(())
        );
        assert_eq!(
            Egress::ANYWHERE.check_url(&url("http://127.0.0.1/")),
            Ok(())
        );
    }

    #[tokio::test]
    async fn the_resolver_refuses_an_answer_with_any_private_address() {
        let hosts = Arc::new(ResolvedHosts::default());
        let name: Name = "localhost".parse().unwrap();
        let resolver = Egress::PUBLIC_ONLY.resolver(hosts.clone());
        let err = match resolver.resolve(name).await {
            Ok(addrs) => panic!("localhost resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e,
        };
        assert!(err.downcast_ref::<NotAllowed>().is_some(), "{err}");
        // Refused or not, what the name resolved to keys its destination.
        assert_eq!(hosts.key(url::Host::Domain("localhost")), "127.0.0.1");
        // With the policy off the answer is taken.
        let name: Name = "localhost".parse().unwrap();
        let open = Egress::ANYWHERE.resolver(hosts.clone());
        assert!(open.resolve(name).await.is_ok());
        let sa = |s: &str| -> SocketAddr { s.parse().unwrap() };
        // One private address among public ones refuses the whole answer.
        assert_eq!(
            public_only(vec![sa("8.8.8.8:0"), sa("10.0.0.1:0")]),
            Err(NotAllowed)
        );
        assert_eq!(
            public_only(vec![sa("8.8.8.8:0"), sa("[2001:4860::1]:0")]),
            Ok(vec![sa("8.8.8.8:0"), sa("[2001:4860::1]:0")])
        );
    }
}
