//! Credentials: argon2id password hashes, bearer tokens and community server keys. (Which
//! credential a request carries, and whose it is, is read in one place:
//! [`crate::http::auth`]; how often a client may try, in [`crate::limits`].)
//!
//! A password hash is the most expensive thing a client can ask for without an account (19
//! MiB and tens of milliseconds of a core at the default cost), so at most
//! `--password-hash-concurrency` run at once: past that, account creation and login answer
//! 503 `unavailable` with `Retry-After` at once instead of queueing on the blocking pool
//! (about 512 threads, each of which would hold its 19 MiB).
//!
//! Tokens and server keys are 256 random bits, given to the client once and stored only as
//! SHA-256 hashes (a fast hash is right here: the input has full entropy, so there is nothing
//! to brute force). The store looks a token up by half its hash and compares the other half
//! in constant time.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::PasswordHashCost;
use crate::error::{Error, Result};

/// Shortest accepted password.
pub const MIN_PASSWORD: usize = 8;
/// Longest accepted password (argon2 input is bounded so a huge body is not hashed).
pub const MAX_PASSWORD: usize = 1024;

/// `Retry-After` of a request refused because every password-hash slot is taken: a hash
/// takes well under a second, so one is free again by then.
pub const HASH_BUSY_RETRY_AFTER_SECS: u64 = 1;

/// Hashes and checks passwords with argon2id at the configured cost, at most
/// `concurrency` at once ([`Passwords::hash`], [`Passwords::verify`]).
#[derive(Clone)]
pub struct Passwords {
    argon: Argon2<'static>,
    slots: Arc<Semaphore>,
}

impl Passwords {
    pub fn new(cost: PasswordHashCost, concurrency: usize) -> Result<Self> {
        let params = Params::new(cost.memory_kib, cost.iterations, 1, None)
            .map_err(|e| Error::Config(format!("password hash cost: {e}")))?;
        Ok(Passwords {
            argon: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
        })
    }

    /// A PHC string of `password`, on the blocking pool; [`Error::Busy`] at once when every
    /// slot is taken.
    pub async fn hash(&self, password: String) -> Result<String> {
        let slot = self.slot()?;
        let me = self.clone();
        blocking(slot, move || me.hash_now(&password)).await?
    }

    /// Whether `password` matches `phc`, on the blocking pool; [`Error::Busy`] at once when
    /// every slot is taken.
    pub async fn verify(&self, password: String, phc: String) -> Result<bool> {
        let slot = self.slot()?;
        let me = self.clone();
        blocking(slot, move || me.verify_now(&password, &phc)).await
    }

    fn slot(&self) -> Result<OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().map_err(|_| {
            crate::metrics::rejected(crate::metrics::PASSWORD_HASH);
            Error::Busy {
                what: "too many password checks are running; retry shortly",
                retry_after: HASH_BUSY_RETRY_AFTER_SECS,
            }
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
    pub fn hash_now(&self, password: &str) -> Result<String> {
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
    pub fn verify_now(&self, password: &str, phc: &str) -> bool {
        PasswordHash::new(phc)
            .map(|parsed| {
                self.argon
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    }
}

/// Runs `f` on the blocking pool holding `slot` until it returns: a client that hangs up
/// does not free the slot of a hash still running.
async fn blocking<T: Send + 'static>(
    slot: OwnedSemaphorePermit,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    actix_web::web::block(move || {
        let _slot = slot;
        f()
    })
    .await
    .map_err(|e| Error::Internal(format!("blocking pool: {e}")))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_round_trip_at_low_cost() {
        let pw = Passwords::new(
            PasswordHashCost {
                memory_kib: 64,
                iterations: 1,
            },
            1,
        )
        .expect("params");
        let phc = pw.hash_now("correct horse").expect("hash");
        assert!(phc.starts_with("$argon2id$"));
        assert!(pw.verify_now("correct horse", &phc));
        assert!(!pw.verify_now("wrong horse", &phc));
        assert!(!pw.verify_now("correct horse", "not a phc string"));
    }

    #[test]
    fn tokens_are_long_and_distinct() {
        let (a, ha) = new_token();
        let (b, _) = new_token();
        assert_ne!(a, b);
        assert!(a.len() >= 43, "256 bits in base64url");
        assert_eq!(token_hash(&a), ha);
    }

    #[actix_web::test]
    async fn past_the_cap_a_hash_is_refused_at_once() {
        let pw = Passwords::new(
            PasswordHashCost {
                memory_kib: 64,
                iterations: 1,
            },
            1,
        )
        .expect("params");
        let held = pw.slot().expect("the one slot");
        let busy = pw.hash("correct horse".into()).await;
        assert!(
            matches!(busy, Err(Error::Busy { retry_after: 1, .. })),
            "{busy:?}"
        );
        let busy = pw.verify("correct horse".into(), "x".into()).await;
        assert!(matches!(busy, Err(Error::Busy { .. })), "{busy:?}");
        drop(held);
        let phc = pw.hash("correct horse".into()).await.expect("a free slot");
        assert!(pw.verify("correct horse".into(), phc).await.expect("slot"));
    }
}
