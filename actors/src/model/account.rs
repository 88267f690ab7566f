//! Accounts: profiles, records as stored, platform links, uniqueness claims, the views
//! clients get, and normalisation of the personal info that logins and contact matching
//! compare.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::identity::{Proof, Provable};
use crate::error::{Error, Result, StoreError};

/// An account id: 32 lowercase hex characters (128 random bits), opaque to clients.
pub type AccountId = String;

/// Personal info: string fields only. `display_name` is always present; `email` and `phone`
/// are shown to friends only.
pub type Profile = BTreeMap<String, String>;

/// Fields that only friends (and the account itself) may see.
pub const PRIVATE_FIELDS: [&str; 2] = ["email", "phone"];

/// The durable record of an account (everything but its edges and event log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRecord {
    pub account_id: AccountId,
    /// PHC string (argon2id); never leaves the server.
    pub password_hash: String,
    pub profile: Profile,
    /// Rises by one per accepted profile change.
    pub profile_version: u64,
    pub created_ms: u64,
    /// Proofs of the profile's identifiers (email, phone), by claim
    /// ([`super::identity`]); only those the profile holds now are kept.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub proofs: BTreeMap<String, Proof>,
}

impl AccountRecord {
    /// The profile as `viewer_is_close` (a friend or the account itself) may see it.
    pub fn visible_profile(&self, viewer_is_close: bool) -> Profile {
        if viewer_is_close {
            return self.profile.clone();
        }
        self.profile
            .iter()
            .filter(|(k, _)| !PRIVATE_FIELDS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The uniqueness claims this record's personal info holds (login by email or phone).
    pub fn login_claims(&self) -> Vec<Claim> {
        login_claims_of(&self.profile)
    }
}

/// The login claims a profile implies.
pub fn login_claims_of(profile: &Profile) -> Vec<Claim> {
    let mut claims = Vec::new();
    if let Some(email) = profile.get("email") {
        claims.push(Claim::email(email));
    }
    if let Some(phone) = profile.get("phone") {
        claims.push(Claim::phone(phone));
    }
    claims
}

/// A platform account linked to a communication account. Neither `config` nor `secret` is
/// ever echoed to clients.
///
/// The link's secret (a webhook's signing secret, a Mastodon access token) is kept apart
/// from `config`, sealed by the server ([`LinkRecord::secret`]): the domain stores and hands
/// it on, but never reads it. A record written before secrets were sealed has no `secret`
/// and keeps the plaintext in `config` under one of [`LEGACY_SECRET_FIELDS`]; such a record
/// still reads, and the account's actor seals it when it next activates ([`LinkSealer`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRecord {
    pub link_id: String,
    pub platform: String,
    /// As given by the user (display form).
    pub handle: String,
    /// What the connector needs besides the secret (a URL); nothing secret.
    pub config: serde_json::Value,
    /// The secret, sealed (encrypted and authenticated) under the server's key; `None` for
    /// a platform without one (email) and in the copy a release keeps
    /// ([`LinkRecord::public`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub created_ms: u64,
    /// Whether the handle is proven to be the account's ([`super::identity`]): a Mastodon
    /// link when made, an email link by a code; a webhook handle never.
    #[serde(default, skip_serializing_if = "Proof::is_unproven")]
    pub proof: Proof,
}

/// The `config` fields that held a link's secret in plaintext before secrets were sealed:
/// a webhook's `secret`, a Mastodon `access_token`.
pub const LEGACY_SECRET_FIELDS: [&str; 2] = ["secret", "access_token"];

impl LinkRecord {
    /// The claim that makes (platform, handle) unique across accounts.
    pub fn claim(&self) -> Claim {
        Claim::handle(&self.platform, &self.handle)
    }

    /// The link without its secret, sealed or (in a record from before sealing) plain: what
    /// a release keeps of it. An attempt looks the secret up by `link_id` when it runs, so
    /// the secret is stored once, and goes with the link when it is unlinked.
    pub fn public(&self) -> LinkRecord {
        let mut link = self.clone();
        link.secret = None;
        // A code waiting for its confirmation is as secret as the link's own.
        if matches!(link.proof, Proof::Pending(_)) {
            link.proof = Proof::Unproven;
        }
        if let Some(config) = link.config.as_object_mut() {
            for field in LEGACY_SECRET_FIELDS {
                config.remove(field);
            }
        }
        link
    }

    /// Whether this record keeps a plaintext secret in `config` (written before sealing).
    pub fn has_plain_secret(&self) -> bool {
        self.config
            .as_object()
            .is_some_and(|c| LEGACY_SECRET_FIELDS.iter().any(|f| c.contains_key(*f)))
    }
}

/// Seals the plaintext secret of a link written before secrets were sealed (implemented by
/// the server's connectors, which hold the key): the record to store instead, or `None` if
/// it cannot (the account's actor then keeps the record as it is and tries again on its
/// next activation).
pub trait LinkSealer: Send + Sync + 'static {
    fn seal_legacy(&self, link: &LinkRecord) -> Option<LinkRecord>;
}

/// A globally unique key owned by one account: a login email or phone, or a platform handle.
/// The store grants it atomically with the rest of a write, or rejects the whole write.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Claim(pub String);

impl Claim {
    /// A login email (already normalised by [`normalize_email`]).
    pub fn email(normalized: &str) -> Self {
        Claim(format!("email:{normalized}"))
    }
    /// A login phone in E.164.
    pub fn phone(normalized: &str) -> Self {
        Claim(format!("phone:{normalized}"))
    }
    /// A (platform, handle) pair; the handle is normalised per platform here.
    pub fn handle(platform: &str, handle: &str) -> Self {
        Claim(format!(
            "handle:{platform}:{}",
            normalize_handle(platform, handle)
        ))
    }
    /// The conflict code a taken claim of this kind answers with.
    pub fn taken_code(&self) -> &'static str {
        if self.0.starts_with("email:") {
            "email_taken"
        } else if self.0.starts_with("phone:") {
            "phone_taken"
        } else {
            "handle_taken"
        }
    }
}

impl From<StoreError> for Error {
    /// A claim held by another account is the client's conflict (`email_taken`,
    /// `phone_taken`, `handle_taken`); any other store failure is the server's.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::ClaimTaken(key) => {
                let claim = Claim(key);
                Error::conflict(claim.taken_code(), format!("{} is already taken", claim.0))
            }
            other => Error::Storage(other),
        }
    }
}

/// The claim a login of `POST /v1/sessions` names, normalised: an email (it has an `@`) or a
/// phone (it starts with `+`); `None` for anything else (an account id) and for a login that
/// does not normalise. The one reading of a login: the lookup uses it, and so does the
/// server's login rate limit, so that `" Ann@example.com"` and `"ann@example.com"` are one
/// login to both.
pub fn login_claim(login: &str) -> Option<Claim> {
    if login.contains('@') {
        normalize_email(login).ok().map(|e| Claim::email(&e))
    } else if login.trim_start().starts_with('+') {
        normalize_phone(login).ok().map(|p| Claim::phone(&p))
    } else {
        None
    }
}

/// Lower-cased and trimmed; must look like `local@domain`.
pub fn normalize_email(raw: &str) -> Result<String> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@')
        });
    if valid {
        Ok(email)
    } else {
        Err(Error::invalid(format!("{raw:?} is not an email address")))
    }
}

/// E.164: a leading `+` and 8 to 15 digits once spaces, dashes, dots and parentheses are removed.
pub fn normalize_phone(raw: &str) -> Result<String> {
    let compact: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let digits = compact.strip_prefix('+').unwrap_or("");
    let valid = (8..=15).contains(&digits.len())
        && digits.chars().all(|c| c.is_ascii_digit())
        && !digits.starts_with('0');
    if valid {
        Ok(compact)
    } else {
        Err(Error::invalid(format!(
            "{raw:?} is not a phone number in E.164 form (+ and 8 to 15 digits)"
        )))
    }
}

/// Platform handles compare case-insensitively and without a leading `@`, on every platform
/// the server knows today (webhook ids, fediverse handles, email addresses). White space
/// around or after the `@`s goes too, so a normal form normalises to itself (fuzz/normalize
/// found `"@ x"` -> `" x"` -> `"x"`).
pub fn normalize_handle(_platform: &str, handle: &str) -> String {
    handle
        .trim_start_matches(|c: char| c == '@' || c.is_whitespace())
        .trim_end()
        .to_lowercase()
}

/// An account as another account (or itself) sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AccountView {
    #[schema(value_type = String)]
    pub account_id: AccountId,
    #[schema(value_type = BTreeMap<String, String>)]
    pub profile: Profile,
    pub profile_version: u64,
    /// In `GET /v1/friends` only: whether the friend has a device connected (any node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
    /// In `GET /v1/friends` only: how many devices the friend has connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<usize>,
}

impl AccountView {
    /// `record` as a viewer sees it: email and phone only if `close` (itself or a friend).
    pub fn of(record: &AccountRecord, close: bool) -> Self {
        AccountView {
            account_id: record.account_id.clone(),
            profile: record.visible_profile(close),
            profile_version: record.profile_version,
            online: None,
            devices: None,
        }
    }

    /// With the account's presence (the friend list's view).
    pub fn with_presence(mut self, devices: usize) -> Self {
        self.online = Some(devices > 0);
        self.devices = Some(devices);
        self
    }
}

/// One online member of a group, for `GET /v1/groups/{gid}/presence`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OnlineMember {
    #[schema(value_type = String)]
    pub account_id: AccountId,
    /// Devices connected, on every node.
    pub devices: usize,
}

/// A platform link as clients see it: never its config (which may hold secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LinkView {
    pub link_id: String,
    pub platform: String,
    pub handle: String,
    /// `active`: activities are released to it; `unverified`: an email address that awaits
    /// its code, released nothing until confirmed.
    pub status: LinkStatus,
}

/// See [`LinkView::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkStatus {
    Active,
    Unverified,
}

impl LinkView {
    /// `l` as its owner sees it on a server that can prove `provable`.
    pub fn of(l: &LinkRecord, provable: Provable) -> Self {
        LinkView {
            link_id: l.link_id.clone(),
            platform: l.platform.clone(),
            handle: l.handle.clone(),
            status: if l.releases(provable) {
                LinkStatus::Active
            } else {
                LinkStatus::Unverified
            },
        }
    }
}

/// `GET /v1/me`: the account's own full view.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MeView {
    #[schema(value_type = String)]
    pub account_id: AccountId,
    #[schema(value_type = BTreeMap<String, String>)]
    pub profile: Profile,
    pub profile_version: u64,
    pub platforms: Vec<LinkView>,
    /// Profile fields (`email`) whose identifier does not count for contact matching until
    /// proven with a code ([`super::identity`]).
    pub unverified: Vec<String>,
}

/// Which relation of an account to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Relation {
    Friends,
    IncomingRequests,
    Suggestions,
}

/// The status of a friend request once sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    Pending,
    Friends,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_normalise_to_e164() {
        assert_eq!(
            normalize_phone("+1 (555) 010-0000").ok().as_deref(),
            Some("+15550100000")
        );
        assert!(normalize_phone("5550100000").is_err());
        assert!(normalize_phone("+12").is_err());
        assert!(normalize_phone("+1555abc0000").is_err());
    }

    #[test]
    fn handles_normalise_once_and_for_all() {
        for raw in ["@ x", " @@Bob ", "@ @x", "\u{a0}@Ann"] {
            let once = normalize_handle("webhook", raw);
            assert_eq!(normalize_handle("webhook", &once), once, "{raw:?}");
        }
        assert_eq!(normalize_handle("webhook", "@ x"), "x");
    }

    #[test]
    fn emails_lowercase_and_need_an_at() {
        assert_eq!(
            normalize_email(" Ann@Example.COM ").ok().as_deref(),
            Some("ann@example.com")
        );
        assert!(normalize_email("no-at.example.com").is_err());
        assert!(normalize_email("a@b@c.d").is_err());
    }

    #[test]
    fn private_fields_hidden_from_strangers() {
        let mut profile = Profile::new();
        profile.insert("display_name".into(), "Ann".into());
        profile.insert("email".into(), "ann@example.com".into());
        let rec = AccountRecord {
            account_id: "a".into(),
            password_hash: String::new(),
            profile,
            profile_version: 1,
            created_ms: 0,
            proofs: BTreeMap::new(),
        };
        assert!(!rec.visible_profile(false).contains_key("email"));
        assert!(rec.visible_profile(true).contains_key("email"));
    }
}
