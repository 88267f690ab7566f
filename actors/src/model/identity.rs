//! Identities that count: which identifiers prove who holds them, and the codes that prove
//! one.
//!
//! A mutual contact match makes two accounts friends at once (the contract), and friends see
//! each other's email and phone. An identifier anyone may claim without proof would let a
//! squatter force that friendship: claim the handle or the email a victim has in their
//! contacts, upload the victim's phone, and be matched both ways. So a match takes part in a
//! mutual match only when the identifier it matched **counts**:
//!
//! - it is proven: a code sent to it came back ([`Proof::Verified`]: a profile email, an
//!   email link), or the platform itself vouched when the link was made (a Mastodon link,
//!   checked with the token's `verify_credentials`);
//! - or this server has no way to prove identifiers of its kind ([`Provable`]): then it takes
//!   them as registered, since nothing could do better. Phones are such today (no SMS
//!   gateway), and emails are on a server without an SMTP relay.
//!
//! A platform handle that nothing can prove (a webhook's, which is the user's own label)
//! never counts. A match on an identifier that does not count is still a suggestion.
//!
//! The seam that proves identifiers is `Courier` (`actor/courier.rs`): it says which kinds
//! this server can prove ([`Provable`]) and sends the codes. An SMS connector plugs in there,
//! and phones then count only once proven, like emails.

use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{AccountRecord, Claim, LinkRecord};

/// The platform whose handle is an email address: proven by a code, like a profile email.
pub const EMAIL_PLATFORM: &str = "email";

/// Kinds of identifier a code can be sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdKind {
    Email,
    Phone,
}

impl IdKind {
    /// The profile field that holds an identifier of this kind.
    pub fn field(self) -> &'static str {
        match self {
            IdKind::Email => "email",
            IdKind::Phone => "phone",
        }
    }

    /// The claim of a profile value of this kind (already normalised).
    pub fn claim(self, value: &str) -> Claim {
        match self {
            IdKind::Email => Claim::email(value),
            IdKind::Phone => Claim::phone(value),
        }
    }
}

/// What a code proves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CodeTarget {
    /// The profile's identifier of this kind (its email).
    Profile(IdKind),
    /// A link's handle (an email link's address), by link id.
    Link(String),
}

/// Which kinds of identifier this server can prove (send a code to). Those it cannot are
/// taken as registered. `Default`: none (no courier).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Provable {
    pub email: bool,
    pub phone: bool,
}

impl Provable {
    pub fn can(self, kind: IdKind) -> bool {
        match kind {
            IdKind::Email => self.email,
            IdKind::Phone => self.phone,
        }
    }
}

/// Where the proof that an identifier is its holder's stands. Stored (serde) with the
/// account record (profile identifiers) and the link record; absent reads as `Unproven`, so
/// records written before proofs existed load as unproven.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Proof {
    /// Nothing proved it.
    #[default]
    Unproven,
    /// A code was sent to it; confirming the code proves it.
    Pending(PendingCode),
    /// Proven: by a code, or by the platform when the link was made.
    Verified,
}

impl Proof {
    pub fn is_unproven(&self) -> bool {
        *self == Proof::Unproven
    }

    pub fn is_verified(&self) -> bool {
        *self == Proof::Verified
    }
}

/// A code sent to an identifier and not yet confirmed. Only its salted SHA-256 is stored:
/// whoever reads the store does not read the code (though six digits are quickly tried
/// against the hash; the code lives minutes, and a reader of the store has more than that).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingCode {
    /// 16 random bytes, hex.
    pub salt: String,
    /// SHA-256 of the salt (hex text) and the code, hex.
    pub hash: String,
    pub sent_ms: u64,
    /// After this, the code is refused and a new one must be asked for.
    pub expires_ms: u64,
    /// Wrong codes still accepted before this one is spent.
    pub attempts_left: u32,
    /// Start of the 24 h window the codes sent to this identifier are counted in, and how
    /// many were sent in it, this one included: carried from code to code, so that guesses
    /// are bounded per day (`--verify-codes-per-day` × `--verify-code-attempts`), not only
    /// per code. Records from before the window load as a window of their own.
    #[serde(default)]
    pub day_start_ms: u64,
    #[serde(default)]
    pub day_codes: u32,
}

/// The window codes per identifier are counted in.
pub const CODE_DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// Digits of a code.
pub const CODE_DIGITS: usize = 6;

/// A code as a client sends it back: [`CODE_DIGITS`] ASCII digits (checked before it costs
/// an attempt).
pub fn check_code(code: &str) -> crate::error::Result<()> {
    if code.len() == CODE_DIGITS && code.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(crate::error::Error::invalid(format!(
            "code must be {CODE_DIGITS} digits"
        )))
    }
}

impl PendingCode {
    /// A fresh code (six digits) and its stored form, sent at `now_ms`, good for `ttl_ms`
    /// and `attempts` tries.
    pub fn issue(now_ms: u64, ttl_ms: u64, attempts: u32) -> (String, PendingCode) {
        let code = format!("{:06}", rand::rng().random_range(0..1_000_000u32));
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let salt = hex(&salt);
        let pending = PendingCode {
            hash: digest(&salt, &code),
            salt,
            sent_ms: now_ms,
            expires_ms: now_ms.saturating_add(ttl_ms),
            attempts_left: attempts,
            day_start_ms: now_ms,
            day_codes: 1,
        };
        (code, pending)
    }

    /// When the next code may be sent after this one, if `per_day` codes were sent in its
    /// window already (`None`: it may, as far as the daily budget goes).
    pub fn day_full_until(&self, per_day: u32) -> Option<u64> {
        (self.day_codes >= per_day).then(|| self.day_start_ms.saturating_add(CODE_DAY_MS))
    }

    /// This code, sent at `now_ms`, counted in `last`'s window while that lasts.
    pub fn counted_after(mut self, last: &PendingCode, now_ms: u64) -> PendingCode {
        if now_ms < last.day_start_ms.saturating_add(CODE_DAY_MS) {
            self.day_start_ms = last.day_start_ms;
            self.day_codes = last.day_codes.saturating_add(1);
        }
        self
    }

    /// Is `code` this one? Compares every byte of the hashes, whatever differs first.
    pub fn matches(&self, code: &str) -> bool {
        let given = digest(&self.salt, code);
        given.len() == self.hash.len()
            && given
                .bytes()
                .zip(self.hash.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    /// Still good at `now_ms`?
    pub fn live(&self, now_ms: u64) -> bool {
        now_ms < self.expires_ms && self.attempts_left > 0
    }
}

fn digest(salt: &str, code: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(b".");
    h.update(code.as_bytes());
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a contact match on a claim says about its holder, known from the claim alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weight {
    /// It counts, whoever holds it (a kind this server takes as registered).
    Counts,
    /// It never counts: a webhook handle, the user's own label that nothing proves.
    Label,
    /// It depends on the holder's proof: ask the holder.
    AskHolder,
}

/// The platform whose handles are the user's own labels: nothing proves them.
pub const LABEL_PLATFORM: &str = "webhook";

/// How much a match on `claim` weighs before asking its holder, on a server that can prove
/// `provable`.
pub fn weigh(claim: &Claim, provable: Provable) -> Weight {
    let by_kind = |kind: IdKind| {
        if provable.can(kind) {
            Weight::AskHolder
        } else {
            Weight::Counts
        }
    };
    let key = claim.0.as_str();
    if key.starts_with("phone:") {
        by_kind(IdKind::Phone)
    } else if key.starts_with("email:") {
        by_kind(IdKind::Email)
    } else if let Some(rest) = key.strip_prefix("handle:") {
        match rest.split_once(':').map(|(platform, _)| platform) {
            Some(LABEL_PLATFORM) => Weight::Label,
            Some(EMAIL_PLATFORM) => by_kind(IdKind::Email),
            _ => Weight::AskHolder,
        }
    } else {
        Weight::Label
    }
}

impl AccountRecord {
    /// The proof of a profile identifier (by its claim).
    pub fn proof(&self, claim: &Claim) -> &Proof {
        static UNPROVEN: Proof = Proof::Unproven;
        self.proofs.get(&claim.0).unwrap_or(&UNPROVEN)
    }

    /// The identifier of `kind` in the profile, as its claim, if the profile has one.
    pub fn identifier(&self, kind: IdKind) -> Option<Claim> {
        self.profile.get(kind.field()).map(|v| kind.claim(v))
    }

    /// Does this profile hold `claim` as an identifier that counts?
    pub fn counts(&self, claim: &Claim, provable: Provable) -> bool {
        [IdKind::Email, IdKind::Phone].into_iter().any(|kind| {
            self.identifier(kind).as_ref() == Some(claim)
                && (!provable.can(kind) || self.proof(claim).is_verified())
        })
    }

    /// Profile fields whose identifier does not count until proven (`GET /v1/me`).
    pub fn unverified(&self, provable: Provable) -> Vec<&'static str> {
        [IdKind::Email, IdKind::Phone]
            .into_iter()
            .filter(|kind| provable.can(*kind))
            .filter(|kind| {
                self.identifier(*kind)
                    .is_some_and(|c| !self.proof(&c).is_verified())
            })
            .map(IdKind::field)
            .collect()
    }

    /// Keeps only the proofs of identifiers the profile still holds (a changed email must be
    /// proven again; its pending code is void).
    pub fn prune_proofs(&mut self) {
        let held: Vec<Claim> = [IdKind::Email, IdKind::Phone]
            .into_iter()
            .filter_map(|kind| self.identifier(kind))
            .collect();
        self.proofs
            .retain(|claim, _| held.iter().any(|c| c.0 == *claim));
    }
}

impl LinkRecord {
    /// The kind of identifier the handle is, when a code proves it (an email link).
    pub fn code_kind(&self) -> Option<IdKind> {
        (self.platform == EMAIL_PLATFORM).then_some(IdKind::Email)
    }

    /// Does the handle count for a mutual match? When proven, or when it is an address of a
    /// kind this server cannot prove. A webhook handle is never proven.
    pub fn counts(&self, provable: Provable) -> bool {
        self.proof.is_verified() || self.code_kind().is_some_and(|k| !provable.can(k))
    }

    /// Are activities released to it? Not to an address that awaits its code: an
    /// unconfirmed address would make the server mail anyone's text to anyone.
    pub fn releases(&self, provable: Provable) -> bool {
        self.proof.is_verified() || self.code_kind().is_none_or(|k| !provable.can(k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Profile;
    use serde_json::json;

    const SMTP: Provable = Provable {
        email: true,
        phone: false,
    };
    const NONE: Provable = Provable {
        email: false,
        phone: false,
    };

    fn link(platform: &str, proof: Proof) -> LinkRecord {
        LinkRecord {
            link_id: "l".into(),
            platform: platform.into(),
            handle: "ann@example.com".into(),
            config: json!({}),
            secret: None,
            created_ms: 0,
            proof,
        }
    }

    fn record(email: Option<&str>, phone: Option<&str>) -> AccountRecord {
        let mut profile = Profile::new();
        profile.insert("display_name".into(), "Ann".into());
        if let Some(e) = email {
            profile.insert("email".into(), e.into());
        }
        if let Some(p) = phone {
            profile.insert("phone".into(), p.into());
        }
        AccountRecord {
            account_id: "a".into(),
            password_hash: String::new(),
            profile,
            profile_version: 1,
            created_ms: 0,
            proofs: Default::default(),
        }
    }

    #[test]
    fn codes_are_six_digits_checked_by_hash() {
        let (code, pending) = PendingCode::issue(1000, 600_000, 5);
        assert_eq!(code.len(), CODE_DIGITS);
        assert!(code.chars().all(|c| c.is_ascii_digit()));
        assert!(!pending.hash.contains(&code));
        assert!(pending.matches(&code));
        assert!(!pending.matches("x"));
        let other = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
        assert!(!pending.matches(&other));
        assert!(pending.live(1000) && !pending.live(601_000));
        let spent = PendingCode {
            attempts_left: 0,
            ..pending.clone()
        };
        assert!(!spent.live(1000));
        // Codes are counted per identifier in a 24 h window, carried from code to code.
        assert_eq!((pending.day_start_ms, pending.day_codes), (1000, 1));
        assert_eq!(pending.day_full_until(2), None);
        let (_, second) = PendingCode::issue(5000, 600_000, 5);
        let second = second.counted_after(&pending, 5000);
        assert_eq!((second.day_start_ms, second.day_codes), (1000, 2));
        assert_eq!(second.day_full_until(2), Some(1000 + CODE_DAY_MS));
        let later = 1000 + CODE_DAY_MS;
        let (_, next_day) = PendingCode::issue(later, 600_000, 5);
        let next_day = next_day.counted_after(&second, later);
        assert_eq!((next_day.day_start_ms, next_day.day_codes), (later, 1));
    }

    #[test]
    fn weights_by_kind_and_server() {
        let w = |c: Claim, p| weigh(&c, p);
        assert_eq!(w(Claim::phone("+15550100000"), SMTP), Weight::Counts);
        assert_eq!(w(Claim::email("a@b.c"), NONE), Weight::Counts);
        assert_eq!(w(Claim::email("a@b.c"), SMTP), Weight::AskHolder);
        assert_eq!(w(Claim::handle("webhook", "ann"), NONE), Weight::Label);
        assert_eq!(w(Claim::handle("email", "a@b.c"), NONE), Weight::Counts);
        assert_eq!(w(Claim::handle("email", "a@b.c"), SMTP), Weight::AskHolder);
        assert_eq!(
            w(Claim::handle("mastodon", "ann@m.example"), NONE),
            Weight::AskHolder
        );
    }

    #[test]
    fn profile_identifiers_count_when_proven_or_unprovable() {
        let mut rec = record(Some("ann@example.com"), Some("+15550100000"));
        let email = Claim::email("ann@example.com");
        let phone = Claim::phone("+15550100000");
        assert!(rec.counts(&email, NONE));
        assert!(!rec.counts(&email, SMTP));
        assert!(rec.counts(&phone, SMTP));
        assert!(!rec.counts(&Claim::email("bob@example.com"), NONE));
        assert_eq!(rec.unverified(SMTP), ["email"]);
        assert!(rec.unverified(NONE).is_empty());
        rec.proofs.insert(email.0.clone(), Proof::Verified);
        assert!(rec.counts(&email, SMTP));
        assert!(rec.unverified(SMTP).is_empty());
        // A new email voids the old proof.
        rec.profile
            .insert("email".into(), "ann@elsewhere.example".into());
        rec.prune_proofs();
        assert!(rec.proofs.is_empty());
        assert!(!rec.counts(&Claim::email("ann@elsewhere.example"), SMTP));
    }

    #[test]
    fn links_count_and_release_by_proof() {
        assert!(!link("webhook", Proof::Unproven).counts(NONE));
        assert!(link("webhook", Proof::Unproven).releases(SMTP));
        assert!(!link("mastodon", Proof::Unproven).counts(NONE));
        assert!(link("mastodon", Proof::Verified).counts(SMTP));
        assert!(!link("email", Proof::Unproven).counts(SMTP));
        assert!(!link("email", Proof::Unproven).releases(SMTP));
        assert!(link("email", Proof::Unproven).counts(NONE));
        assert!(link("email", Proof::Verified).releases(SMTP));
    }

    #[test]
    fn records_without_proofs_load_unproven() {
        let old = json!({"link_id": "l", "platform": "email", "handle": "a@b.c",
                         "config": {}, "created_ms": 0});
        let l: LinkRecord = serde_json::from_value(old).unwrap();
        assert!(l.proof.is_unproven());
        // And an unproven link is stored as before.
        let back = serde_json::to_value(&l).unwrap();
        assert!(back.get("proof").is_none());
        let pending = link("email", Proof::Pending(PendingCode::issue(0, 1, 1).1));
        let again: LinkRecord =
            serde_json::from_value(serde_json::to_value(&pending).unwrap()).unwrap();
        assert_eq!(again, pending);
    }
}
