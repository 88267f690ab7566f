//! The address each destination host name resolved to, so that the releaser's cap per
//! destination ([`chorus_actors::release::Connector::destination`]) counts one host once,
//! whatever names its links use: many names for one black-hole address share one cap.
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

    /// The destination key of the host `name`: the address it last resolved to, or the
    /// name until it has.
    pub fn key(&self, name: &str) -> String {
        let name = normalise(name);
        match self.names.get(&name) {
            Some(ip) => ip.to_string(),
            None => name,
        }
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

    #[test]
    fn names_of_one_address_share_its_key() {
        let hosts = ResolvedHosts::default();
        assert_eq!(hosts.key("a.example"), "a.example", "not resolved yet");
        hosts.record("a.example", [ip("203.0.113.9"), ip("198.51.100.7")]);
        hosts.record("B.example.", [ip("198.51.100.7")]);
        hosts.record("c.example", [ip("::ffff:198.51.100.7")]);
        for name in ["a.example", "b.example", "c.example", "A.EXAMPLE."] {
            assert_eq!(hosts.key(name), "198.51.100.7", "{name}");
        }
        // A later answer replaces the earlier one; an empty one changes nothing.
        hosts.record("a.example", [ip("203.0.113.9")]);
        hosts.record("a.example", []);
        assert_eq!(hosts.key("a.example"), "203.0.113.9");
    }

    #[test]
    fn a_flood_of_names_is_bounded() {
        let hosts = ResolvedHosts::default();
        for n in 0..MAX_NAMES + 10 {
            hosts.record(&format!("h{n}.example"), [ip("203.0.113.1")]);
        }
        assert!(hosts.names.len() <= MAX_NAMES);
        assert_eq!(
            hosts.key(&format!("h{}.example", MAX_NAMES + 9)),
            "203.0.113.1"
        );
    }
}
