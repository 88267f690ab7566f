//! Credentials: argon2id password hashes, bearer tokens and community server keys, and
//! login rate limits. (Which credential a request carries, and whose it is, is read in one
//! place: [`crate::http::auth`].)
//!
//! Tokens and server keys are 256 random bits, given to the client once and stored only as
//! SHA-256 hashes (a fast hash is right here: the input has full entropy, so there is nothing
//! to brute force). The store looks a token up by half its hash and compares the other half
//! in constant time.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::config::{Config, PasswordHashCost};
use crate::error::{Error, Result};

/// Shortest accepted password.
pub const MIN_PASSWORD: usize = 8;
/// Longest accepted password (argon2 input is bounded so a huge body is not hashed).
pub const MAX_PASSWORD: usize = 1024;

/// Hashes and checks passwords with argon2id at the configured cost.
#[derive(Clone)]
pub struct Passwords {
    argon: Argon2<'static>,
}

impl Passwords {
    pub fn new(cost: PasswordHashCost) -> Result<Self> {
        let params = Params::new(cost.memory_kib, cost.iterations, 1, None)
            .map_err(|e| Error::Config(format!("password hash cost: {e}")))?;
        Ok(Passwords {
            argon: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
        })
    }

    /// Checks the length rules.
    pub fn check_policy(password: &str) -> Result<()> {
        let n = password.chars().count();
        if n < MIN_PASSWORD || password.len() > MAX_PASSWORD {
            return Err(Error::invalid(format!(
                "a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters"
            )));
        }
        Ok(())
    }

    /// A PHC string. CPU-heavy: call from a blocking thread.
    pub fn hash(&self, password: &str) -> Result<String> {
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let salt = SaltString::encode_b64(&salt).map_err(|e| Error::Internal(e.to_string()))?;
        self.argon
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::Internal(format!("password hash: {e}")))
    }

    /// True if `password` matches `phc`. The parameters stored in `phc` are used, so hashes
    /// made at another cost still verify. CPU-heavy: call from a blocking thread.
    pub fn verify(&self, password: &str, phc: &str) -> bool {
        PasswordHash::new(phc)
            .map(|parsed| {
                self.argon
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    }
}

/// A new bearer token and the hash to store.
pub fn new_token() -> (String, [u8; 32]) {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let token = URL_SAFE_NO_PAD.encode(raw);
    let hash = token_hash(&token);
    (token, hash)
}

/// SHA-256 of the token text.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Most login names, and most client addresses, whose recent attempts are tracked. An entry
/// is recent for at most a minute and [`LoginLimits::prune`] runs every
/// [`LOGIN_PRUNE_EVERY_SECS`], so only a flood of distinct names or addresses reaches it;
/// then a login whose name or address is not tracked yet answers 429 until the next prune
/// (failing closed: the limit is never skipped; tokens already given keep working).
pub const MAX_TRACKED_LOGINS: usize = 100_000;
/// How often the server drops the limiters' entries that are back at full quota.
pub const LOGIN_PRUNE_EVERY_SECS: u64 = 10;

/// Login attempt limits per login name and per client address. A login name is tracked by
/// a 128-bit hash of its lower-cased text, so an entry is small whatever was sent.
#[derive(Clone)]
pub struct LoginLimits {
    per_login: Arc<DefaultKeyedRateLimiter<u128>>,
    per_address: Arc<DefaultKeyedRateLimiter<IpAddr>>,
}

impl LoginLimits {
    pub fn new(config: &Config) -> Self {
        let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        LoginLimits {
            per_login: Arc::new(RateLimiter::keyed(quota(config.login_attempts_per_account))),
            per_address: Arc::new(RateLimiter::keyed(quota(config.login_attempts_per_address))),
        }
    }

    /// Counts one attempt; `RateLimited` with the seconds to wait if over either limit.
    pub fn check(&self, login: &str, address: Option<IpAddr>) -> Result<()> {
        let wait = |not_until: governor::NotUntil<governor::clock::QuantaInstant>| {
            let secs = not_until
                .wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                ))
                .as_secs()
                .max(1);
            Error::RateLimited(secs)
        };
        if let Some(ip) = address {
            Self::room_for(&self.per_address)?;
            self.per_address.check_key(&ip).map_err(wait)?;
        }
        let digest = Sha256::digest(login.to_lowercase().as_bytes());
        let mut key = [0u8; 16];
        key.copy_from_slice(digest.get(..16).unwrap_or_default());
        Self::room_for(&self.per_login)?;
        self.per_login
            .check_key(&u128::from_be_bytes(key))
            .map_err(wait)?;
        Ok(())
    }

    /// Refuses (429, until the next prune) while a limiter tracks [`MAX_TRACKED_LOGINS`].
    fn room_for<K: std::hash::Hash + Eq + Clone>(
        limiter: &DefaultKeyedRateLimiter<K>,
    ) -> Result<()> {
        if limiter.len() >= MAX_TRACKED_LOGINS {
            return Err(Error::RateLimited(LOGIN_PRUNE_EVERY_SECS));
        }
        Ok(())
    }

    /// Drops the state of keys that are back at full quota (call now and then).
    pub fn prune(&self) {
        self.per_login.retain_recent();
        self.per_address.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_round_trip_at_low_cost() {
        let pw = Passwords::new(PasswordHashCost {
            memory_kib: 64,
            iterations: 1,
        })
        .expect("params");
        let phc = pw.hash("correct horse").expect("hash");
        assert!(phc.starts_with("$argon2id$"));
        assert!(pw.verify("correct horse", &phc));
        assert!(!pw.verify("wrong horse", &phc));
        assert!(!pw.verify("correct horse", "not a phc string"));
    }

    #[test]
    fn tokens_are_long_and_distinct() {
        let (a, ha) = new_token();
        let (b, _) = new_token();
        assert_ne!(a, b);
        assert!(a.len() >= 43, "256 bits in base64url");
        assert_eq!(token_hash(&a), ha);
    }

    #[test]
    fn login_limit_trips() {
        let cfg = Config {
            login_attempts_per_account: 2,
            ..Config::default()
        };
        let limits = LoginLimits::new(&cfg);
        assert!(limits.check("ann", None).is_ok());
        assert!(limits.check("ANN", None).is_ok());
        assert!(matches!(
            limits.check("ann", None),
            Err(Error::RateLimited(_))
        ));
        assert!(limits.check("bob", None).is_ok());
    }

    #[test]
    fn a_flood_of_names_is_bounded_and_refused_past_the_bound() {
        let limits = LoginLimits::new(&Config::default());
        for i in 0..MAX_TRACKED_LOGINS {
            limits
                .check(&format!("user{i}"), None)
                .expect("under the bound");
        }
        assert!(matches!(
            limits.check("one-more", None),
            Err(Error::RateLimited(LOGIN_PRUNE_EVERY_SECS))
        ));
        assert_eq!(limits.per_login.len(), MAX_TRACKED_LOGINS);
    }
}
