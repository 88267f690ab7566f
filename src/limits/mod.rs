//! Rate limits at the edge: what a request is counted against ([`Limits`]), how a bucket is
//! named ([`Key`]), and where the buckets live ([`Limiter`]).
//!
//! | request | counted against, in this order |
//! |---|---|
//! | `POST /v1/sessions` | the client address (`--login-attempts-per-address` a minute), then the login (`--login-attempts-per-account` a minute) |
//! | `POST /v1/accounts` | the client address (`--account-creations-per-hour`, `--account-creation-burst`) |
//! | `POST /v1/me/contacts` | the client address (`--contact-uploads-per-hour`, `--contact-upload-burst`) |
//!
//! Past a limit the answer is 429 `rate_limited` with `Retry-After`, before anything is
//! hashed, looked up or stored. The address is counted first: a client out of its address
//! quota cannot also use up the quota of logins it tries.
//!
//! **Keys.** A client address (as [`crate::http::client`] reads it, proxies included) is one
//! bucket per IPv4 address and per IPv6 /64: a host is usually given a whole /64, so a bucket
//! per IPv6 address would give it 2^64 of them. An IPv4-mapped IPv6 address is its IPv4
//! address. A login is keyed on what the lookup reads from it
//! ([`chorus_actors::model::login_claim`]: an email or phone normalised), so `" Ann@x.org"`
//! and `"ann@x.org"`, or `"+1 555-010 0000"` and `"+15550100000"`, share one bucket; any
//! other login (an account id) is keyed on its trimmed, lower-cased text. Each key's text is
//! hashed (SHA-256, its first 128 bits): an entry is small whatever was sent, and no login
//! crosses the network in clear in cluster mode.
//!
//! **Where.** [`LocalLimiter`] keeps the buckets in this process. In cluster mode
//! [`ClusterLimiter`] counts each key on one node, the owner of its hash under the cluster's
//! placement, so N nodes give a client the quota of one (module [`cluster`]).

pub mod cluster;
pub mod local;

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use async_trait::async_trait;
use chorus_actors::model::login_claim;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use self::cluster::ClusterLimiter;
pub use self::local::LocalLimiter;
use crate::error::{Error, Result};

/// What a bucket counts; each has its own quota and its own table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    /// Login attempts per login.
    Login,
    /// Login attempts per client address.
    LoginAddress,
    /// Account creations per client address.
    AccountCreation,
    /// Contact uploads per client address.
    ContactUpload,
}

impl Bucket {
    pub const ALL: [Bucket; 4] = [
        Bucket::Login,
        Bucket::LoginAddress,
        Bucket::AccountCreation,
        Bucket::ContactUpload,
    ];

    /// Its name between nodes.
    pub fn token(self) -> &'static str {
        match self {
            Bucket::Login => "login",
            Bucket::LoginAddress => "login_address",
            Bucket::AccountCreation => "account_creation",
            Bucket::ContactUpload => "contact_upload",
        }
    }

    pub fn from_token(token: &str) -> Option<Bucket> {
        Bucket::ALL.into_iter().find(|b| b.token() == token)
    }
}

/// One bucket: what it counts and the 128-bit hash of its key's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub bucket: Bucket,
    pub hash: u128,
}

impl Key {
    /// The bucket of `text` (a key's text, [`address_key`] or [`login_key`]).
    pub fn new(bucket: Bucket, text: &str) -> Key {
        let digest = Sha256::digest(text.as_bytes());
        let mut first = [0u8; 16];
        first.copy_from_slice(digest.get(..16).unwrap_or(&[0; 16]));
        Key {
            bucket,
            hash: u128::from_be_bytes(first),
        }
    }

    /// The hash as 32 hex digits (the id its owner is placed by, in cluster mode).
    pub fn hex(&self) -> String {
        format!("{:032x}", self.hash)
    }

    /// The inverse of [`Key::hex`].
    pub fn from_hex(bucket: Bucket, hex: &str) -> Option<Key> {
        if hex.len() != 32 {
            return None;
        }
        let hash = u128::from_str_radix(hex, 16).ok()?;
        Some(Key { bucket, hash })
    }
}

/// The text of a client address's key: `ip:<IPv4>` or `ip:<IPv6 /64>`.
pub fn address_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => {
            let net = u128::from(v6) & !(u128::MAX >> 64);
            format!("ip:{}/64", Ipv6Addr::from(net))
        }
    }
}

/// The text of a login's key: the claim the lookup reads (`email:…`, `phone:…`), or
/// `id:<trimmed, lower-cased login>`.
pub fn login_key(login: &str) -> String {
    match login_claim(login) {
        Some(claim) => claim.0,
        None => format!("id:{}", login.trim().to_lowercase()),
    }
}

/// What a bucket says to one more attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Allow,
    /// Over the limit: retry after this many seconds (at least 1).
    Wait(u64),
}

/// Where the buckets live: counts one attempt against `key`.
#[async_trait]
pub trait Limiter: Send + Sync + 'static {
    async fn check(&self, key: Key) -> Verdict;

    /// Drops the entries of keys back at full quota (the server calls it every
    /// [`local::PRUNE_EVERY_SECS`]).
    fn prune(&self);
}

/// The rules of the table above, over a [`Limiter`]. Cheap to clone.
#[derive(Clone)]
pub struct Limits {
    limiter: Arc<dyn Limiter>,
}

impl Limits {
    pub fn new(limiter: Arc<dyn Limiter>) -> Limits {
        Limits { limiter }
    }

    /// One login attempt for `login` from `address`.
    pub async fn login(&self, login: &str, address: Option<IpAddr>) -> Result<()> {
        self.address(Bucket::LoginAddress, address).await?;
        self.count(Key::new(Bucket::Login, &login_key(login))).await
    }

    /// One account creation from `address`.
    pub async fn account_creation(&self, address: Option<IpAddr>) -> Result<()> {
        self.address(Bucket::AccountCreation, address).await
    }

    /// One contact upload from `address`.
    pub async fn contact_upload(&self, address: Option<IpAddr>) -> Result<()> {
        self.address(Bucket::ContactUpload, address).await
    }

    /// A request without an address (no TCP peer: never over the listener) is not counted.
    async fn address(&self, bucket: Bucket, address: Option<IpAddr>) -> Result<()> {
        match address {
            Some(ip) => self.count(Key::new(bucket, &address_key(ip))).await,
            None => Ok(()),
        }
    }

    async fn count(&self, key: Key) -> Result<()> {
        match self.limiter.check(key).await {
            Verdict::Allow => Ok(()),
            Verdict::Wait(secs) => {
                crate::metrics::rejected(key.bucket.token());
                Err(Error::RateLimited(secs))
            }
        }
    }

    pub fn prune(&self) {
        self.limiter.prune();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn ipv6_is_keyed_per_64_and_ipv4_per_address() {
        assert_eq!(
            address_key(ip("2001:db8:1:2:aaaa::1")),
            address_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"))
        );
        assert_eq!(address_key(ip("2001:db8:1:2::7")), "ip:2001:db8:1:2::/64");
        assert_ne!(
            address_key(ip("2001:db8:1:2::1")),
            address_key(ip("2001:db8:1:3::1"))
        );
        assert_ne!(address_key(ip("192.0.2.1")), address_key(ip("192.0.2.2")));
        assert_eq!(address_key(ip("192.0.2.1")), "ip:192.0.2.1");
    }

    #[test]
    fn an_ipv4_mapped_address_counts_as_ipv4() {
        assert_eq!(address_key(ip("::ffff:192.0.2.1")), "ip:192.0.2.1");
        // ...and not as the /64 of every mapped address.
        assert_ne!(
            address_key(ip("::ffff:192.0.2.1")),
            address_key(ip("::ffff:192.0.2.2"))
        );
    }

    #[test]
    fn logins_are_keyed_as_the_lookup_reads_them() {
        let ann = login_key("ann@example.com");
        assert_eq!(ann, "email:ann@example.com");
        for variant in [" ann@example.com", "ANN@Example.com ", "\tann@example.com"] {
            assert_eq!(login_key(variant), ann, "{variant:?}");
        }
        let bob = login_key("+15550100000");
        assert_eq!(bob, "phone:+15550100000");
        for variant in ["+1 555-010 0000", " +1 (555) 010.0000", "+1555 0100000"] {
            assert_eq!(login_key(variant), bob, "{variant:?}");
        }
        assert_eq!(login_key(" SomeId "), "id:someid");
        // Not normalisable as an email or a phone: its own text, never a claim's key.
        assert_eq!(login_key("+12"), "id:+12");
    }

    #[test]
    fn keys_round_trip_through_hex() {
        let key = Key::new(Bucket::Login, "email:ann@example.com");
        let hex = key.hex();
        assert_eq!(hex.len(), 32);
        assert_eq!(Key::from_hex(Bucket::Login, &hex), Some(key));
        assert_eq!(Key::from_hex(Bucket::Login, "xyz"), None);
        for b in Bucket::ALL {
            assert_eq!(Bucket::from_token(b.token()), Some(b));
        }
    }
}
