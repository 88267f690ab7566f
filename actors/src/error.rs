//! The domain crate's error type, and the storage error it carries.
//!
//! Variants are chosen by what a client can do about them, so the server maps each to one
//! HTTP status without inspecting messages: `Invalid` is 400, `NotFound` 404, `Forbidden` 403,
//! `Conflict` 409; `Storage` and `Unavailable` are the server's fault (500/503).
//!
//! An error crosses between the nodes of a cluster as a [`WireError`] (an actor's answer to
//! a forwarded message, `crate::actor::remote`): the `&'static str` codes travel as text and
//! come back through the tables of known codes here ([`CODES`], [`THINGS`]).

use serde::{Deserialize, Serialize};

/// Everything that can go wrong in the domain.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is well formed but breaks a rule (`code` is the contract's snake_case code).
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// The addressed account, link or request does not exist (or is not visible to the caller).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// The write would break a uniqueness or state rule (`code` e.g. `email_taken`).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// The store failed; the write did not happen.
    #[error("storage: {0}")]
    Storage(StoreError),
    /// An actor could not be reached (shutting down, or it stopped twice in a row).
    #[error("actor unavailable: {0}")]
    Unavailable(String),
    /// A bug: the actor handling the request panicked (it is replaced on the next message).
    /// The server's fault, so the client is told no more than that.
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    /// A 400 with the generic `invalid_input` code.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::Invalid {
            code: "invalid_input",
            message: message.into(),
        }
    }

    /// A 409 with a specific code.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Error::Conflict {
            code,
            message: message.into(),
        }
    }
}

/// What a storage implementation reports. Kept inside [`Error`] so a store failure can travel
/// through actor replies unchanged; `From<StoreError>` (beside [`crate::model::Claim`]) turns
/// a taken claim into the client's conflict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum StoreError {
    /// A uniqueness claim in the write is held by someone else; nothing was written.
    #[error("claim {0:?} is held by another owner")]
    ClaimTaken(String),
    /// The engine failed (corruption, closed, a bug). The write did not happen.
    #[error("{0}")]
    Backend(String),
    /// The engine cannot take writes for now: its disk is full or failing (fjall), or the
    /// cluster did not answer in time or has too few replicas up (ScyllaDB). The write did
    /// not happen (fjall), or may have happened (ScyllaDB timeout); either way it may be
    /// retried later. The server answers 503 `unavailable` with `Retry-After`.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The actor's log is not where its write expected it: an earlier write whose answer was
    /// lost (a timeout) landed after all, or another writer moved it. Nothing of this write
    /// was stored; the actor must reload its state from the store before writing again.
    #[error(
        "log moved under this write: log {log} is at {}, the write expected {expected}; \
         nothing was written; reload from the store",
        .head.map_or_else(|| "nothing".to_owned(), |h| h.to_string())
    )]
    LogMoved {
        log: String,
        expected: u64,
        head: Option<u64>,
    },
    /// The write named an epoch of its actor that is no longer the newest: another node took
    /// the actor over (cluster mode, [`crate::actor::place`]). Nothing of this write was
    /// stored. The writer must drop the actor; the client retries and reaches the new owner
    /// (503 `unavailable` with `Retry-After`).
    #[error("write fenced: {log} is held at epoch {now}, this write had epoch {epoch}")]
    Fenced { log: String, epoch: u64, now: u64 },
    /// A stored record could not be decoded.
    #[error("corrupt record {key}: {reason}")]
    Corrupt { key: String, reason: String },
    /// A key (or, in ScyllaDB, a key column) longer than the engine takes. Checked before
    /// anything of the write is stored (or the read sent), so the engine never sees it: the
    /// embedded engine asserts on a key over 65,535 bytes (a panic), a cluster refuses one.
    /// The edge's limits keep every client input far below this; reaching it is a bug.
    #[error("a key of {len} bytes in {table} is over the engine's limit of {max} bytes")]
    KeyTooLong {
        table: String,
        len: usize,
        max: usize,
    },
}

/// Every `code` of [`Error::Invalid`] and [`Error::Conflict`] the domain (and the server's
/// checks it hands in, such as a connector's `unknown_platform`) produces: an error that
/// crossed between nodes gets its `&'static str` back from here. A code missing here comes
/// back as [`Error::Internal`], so the test `every_code_in_the_crate_is_known` keeps the
/// list complete.
pub const CODES: &[&str] = &[
    "invalid_input",
    "unknown_platform",
    "email_taken",
    "phone_taken",
    "handle_taken",
    "already_friends",
    "already_requested",
    "already_bound",
    "request_expired",
    "owner_cannot_leave",
    "idempotency_key_reused",
    "limit_reached",
    "resync_required",
    "not_verifiable",
    "already_verified",
    "code_expired",
    "invalid_code",
];

/// Every thing [`Error::NotFound`] names, for the same purpose as [`CODES`].
pub const THINGS: &[&str] = &[
    "account",
    "activity",
    "binding",
    "binding request",
    "community",
    "friend",
    "friend request",
    "group",
    "link",
    "member",
    "resource",
    "route",
];

/// An [`Error`] as it crosses between nodes: the same variants, every text owned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum WireError {
    Invalid { code: String, message: String },
    NotFound { what: String },
    Forbidden { message: String },
    Conflict { code: String, message: String },
    Storage { store: StoreError },
    Unavailable { message: String },
    Internal { message: String },
}

/// `text` as the entry of `known` it equals, if any.
fn known(known: &'static [&'static str], text: &str) -> Option<&'static str> {
    known.iter().copied().find(|k| *k == text)
}

impl Error {
    /// This error as it crosses to another node.
    pub fn to_wire(&self) -> WireError {
        match self {
            Error::Invalid { code, message } => WireError::Invalid {
                code: (*code).to_owned(),
                message: message.clone(),
            },
            Error::NotFound(what) => WireError::NotFound {
                what: (*what).to_owned(),
            },
            Error::Forbidden(message) => WireError::Forbidden {
                message: message.clone(),
            },
            Error::Conflict { code, message } => WireError::Conflict {
                code: (*code).to_owned(),
                message: message.clone(),
            },
            Error::Storage(e) => WireError::Storage { store: e.clone() },
            Error::Unavailable(message) => WireError::Unavailable {
                message: message.clone(),
            },
            Error::Internal(message) => WireError::Internal {
                message: message.clone(),
            },
        }
    }

    /// The error another node answered. A code or thing this build does not know (a newer
    /// node's) is the server's fault here, [`Error::Internal`], never a guess.
    pub fn from_wire(wire: WireError) -> Self {
        let unknown = |what: &str, text: &str| {
            tracing::error!(
                what,
                text,
                "an error from another node names an unknown code"
            );
            Error::Internal(format!("unknown {what} {text:?} from another node"))
        };
        match wire {
            WireError::Invalid { code, message } => match known(CODES, &code) {
                Some(code) => Error::Invalid { code, message },
                None => unknown("code", &code),
            },
            WireError::NotFound { what } => match known(THINGS, &what) {
                Some(what) => Error::NotFound(what),
                None => unknown("thing", &what),
            },
            WireError::Forbidden { message } => Error::Forbidden(message),
            WireError::Conflict { code, message } => match known(CODES, &code) {
                Some(code) => Error::Conflict { code, message },
                None => unknown("code", &code),
            },
            WireError::Storage { store } => Error::Storage(store),
            WireError::Unavailable { message } => Error::Unavailable(message),
            WireError::Internal { message } => Error::Internal(message),
        }
    }
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
