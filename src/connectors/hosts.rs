//! The releaser's key of a destination host ([`ResolvedHosts::key`], the one normalisation of
//! hosts for [`chorus_actors::release::Connector::destination`]) and the address each host
//! name resolved to, so that the cap per destination counts one host once, whatever names or
//! address forms its links use: many names for one black-hole address share one cap.
//!
//! Resolution is not done for the key: the key of a name is the address the name last
//! resolved to in the egress policy's own lookups (when a link is made, and as each attempt
//! connects), and the name itself until it has resolved. So a link's first releases, before
//! any lookup of its name, count under the name; the per-account cap bounds those.
//!
//! The smallest address of an answer stands for the host, so that a name whose answers
//! rotate (round-robin DNS) keeps one key.

use std::net::IpAddr;

use dashmap::DashMap;

/// Names remembered at most; past it the memory starts again (a name then counts under
/// itself until its next lookup), so a flood of names cannot grow it.
const MAX_NAMES: usize = 65_536;

/// Host name (lower case, without a trailing dot) -> the address it last resolved to.
#[derive(Debug, Default)]
pub struct ResolvedHosts {
    names: DashMap<String, IpAddr>,
}

impl ResolvedHosts {
    /// Remembers what `name` resolved to (nothing if `addrs` is empty).
    pub fn record(&self, name: &str, addrs: impl IntoIterator<Item = IpAddr>) {
        let Some(ip) = addrs.into_iter().map(|ip| ip.to_canonical()).min() else {
            return;
        };
        let name = normalise(name);
        if self.names.len() >= MAX_NAMES && !self.names.contains_key(&name) {
            self.names.clear();
        }
        self.names.insert(name, ip);
    }

    /// The releaser's per-destination key of a URL's host: the host alone, never the port or
    /// the scheme, so that 32 ports of one black-hole host are one destination, not 32. An
    /// address is keyed by its canonical form (an IPv4-mapped IPv6 address as the IPv4 one,
    /// as [`Self::record`] keeps what names resolved to); a name by the address it last
    /// resolved to, or by the name itself (lower case, without a trailing dot) until it has.
    pub fn key(&self, host: url::Host<&str>) -> String {
        let ip = match host {
            url::Host::Domain(name) => {
                let name = normalise(name);
                return match self.names.get(&name) {
                    Some(ip) => ip.to_string(),
                    None => name,
                };
            }
            url::Host::Ipv4(ip) => IpAddr::V4(ip),
            url::Host::Ipv6(ip) => IpAddr::V6(ip),
        };
        ip.to_canonical().to_string()
    }
}

fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn key(hosts: &ResolvedHosts, name: &str) -> String {
        hosts.key(url::Host::Domain(name))
    }

    #[test]
    fn names_of_one_address_share_its_key() {
        let hosts = ResolvedHosts::default();
        assert_eq!(key(&hosts, "a.example"), "a.example", "not resolved yet");
        hosts.record("a.example", [ip("203.0.113.9"), ip("198.51.100.7")]);
        hosts.record("B.example.", [ip("198.51.100.7")]);
        hosts.record("c.example", [ip("::ffff:198.51.100.7")]);
        for name in ["a.example", "b.example", "c.example", "A.EXAMPLE."] {
            assert_eq!(key(&hosts, name), "198.51.100.7", "{name}");
        }
        // A later answer replaces the earlier one; an empty one changes nothing.
        hosts.record("a.example", [ip("203.0.113.9")]);
        hosts.record("a.example", []);
        assert_eq!(key(&hosts, "a.example"), "203.0.113.9");
        // An address is its own key, in the form names' answers are kept in.
        let mapped = url::Host::Ipv6("::ffff:198.51.100.7".parse().unwrap());
        assert_eq!(hosts.key(mapped), "198.51.100.7");
    }

    #[test]
    fn a_flood_of_names_is_bounded() {
        let hosts = ResolvedHosts::default();
        for n in 0..MAX_NAMES + 10 {
            hosts.record(&format!("h{n}.example"), [ip("203.0.113.1")]);
        }
        assert!(hosts.names.len() <= MAX_NAMES);
        assert_eq!(
            key(&hosts, &format!("h{}.example", MAX_NAMES + 9)),
            "203.0.113.1"
        );
    }
}
