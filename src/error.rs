//! The server crate's error enum, and how every error becomes the contract's error shape
//! `{"error": {"code", "message"}}` with a fitting status.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use chorus_actors::{Error as Domain, StoreError};
use serde::Serialize;

/// `Retry-After` of a write the store refused because it cannot take writes now (a full or
/// failing disk, an unreachable cluster): long enough for an operator's fix or a cluster's
/// recovery not to be hammered, short enough for a client to notice it soon.
pub const STORE_RETRY_AFTER_SECS: u64 = 5;

/// Everything the server can answer with, besides success.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A rule of the domain (validation, not found, conflict, storage).
    #[error(transparent)]
    Domain(#[from] Domain),
    /// Malformed JSON, wrong types, missing fields (400 `bad_json`).
    #[error("{0}")]
    BadJson(String),
    /// No or an invalid bearer token (401 `unauthorized`).
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// Wrong login or password (401 `invalid_credentials`).
    #[error("wrong login or password")]
    InvalidCredentials,
    /// Body over the limit (413 `body_too_large`).
    #[error("request body is larger than {0} bytes")]
    BodyTooLarge(usize),
    /// Too many attempts (429 `rate_limited`).
    #[error("too many attempts; retry in {0} s")]
    RateLimited(u64),
    /// Expected overload: a bounded resource (the password-hash slots) is all taken now (503
    /// `unavailable` with `Retry-After`; the message is shown, and it is not logged as a
    /// failure: a flood would fill the log).
    #[error("{what}")]
    Busy {
        what: &'static str,
        retry_after: u64,
    },
    /// A bad configuration at start-up.
    #[error("configuration: {0}")]
    Config(String),
    /// Start-up or I/O failure of the server itself.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// A 400 `invalid_input`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::Domain(Domain::invalid(message))
    }

    /// The contract's snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Domain(d) => match d {
                Domain::Invalid { code, .. } | Domain::Conflict { code, .. } => code,
                Domain::NotFound(_) => "not_found",
                Domain::Forbidden(_) => "forbidden",
                Domain::Storage(StoreError::Unavailable(_) | StoreError::Fenced { .. })
                | Domain::Unavailable(_) => "unavailable",
                Domain::Storage(_) => "storage_error",
                Domain::Internal(_) => "internal",
            },
            Error::BadJson(_) => "bad_json",
            Error::Unauthorized => "unauthorized",
            Error::InvalidCredentials => "invalid_credentials",
            Error::BodyTooLarge(_) => "body_too_large",
            Error::RateLimited(_) => "rate_limited",
            Error::Busy { .. } => "unavailable",
            Error::Config(_) | Error::Internal(_) => "internal",
        }
    }
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        match self {
            Error::Domain(d) => match d {
                Domain::Invalid { .. } => StatusCode::BAD_REQUEST,
                Domain::NotFound(_) => StatusCode::NOT_FOUND,
                Domain::Forbidden(_) => StatusCode::FORBIDDEN,
                Domain::Conflict { .. } => StatusCode::CONFLICT,
                Domain::Storage(StoreError::Unavailable(_) | StoreError::Fenced { .. })
                | Domain::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                Domain::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
                Domain::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            Error::BadJson(_) => StatusCode::BAD_REQUEST,
            Error::Unauthorized | Error::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Error::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Error::Config(_) | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let busy = matches!(self, Error::Busy { .. });
        if status.is_server_error() && !busy {
            tracing::error!(error = %self, "request failed");
        }
        // Server-side failures say what kind, not the internals.
        let message = if status.is_server_error() && !busy {
            "the server could not complete the request".to_owned()
        } else {
            self.to_string()
        };
        let mut builder = HttpResponse::build(status);
        if let Error::RateLimited(secs)
        | Error::Busy {
            retry_after: secs, ..
        } = self
        {
            builder.insert_header(("Retry-After", secs.to_string()));
        }
        // Overload (the fan-out budget spent) or an actor briefly out of reach: come back
        // in a second; so is an actor that moved to another node under a write (fenced: the
        // retry reaches its new owner). A store that cannot take writes (full or failing
        // disk) needs longer.
        match self {
            Error::Domain(Domain::Unavailable(_) | Domain::Storage(StoreError::Fenced { .. })) => {
                builder.insert_header(("Retry-After", "1"));
            }
            Error::Domain(Domain::Storage(StoreError::Unavailable(_))) => {
                builder.insert_header(("Retry-After", STORE_RETRY_AFTER_SECS.to_string()));
            }
            _ => {}
        }
        if let Error::Unauthorized = self {
            builder.insert_header(("WWW-Authenticate", "Bearer"));
        }
        builder.json(ErrorBody::new(self.code(), message))
    }
}

/// The contract's error shape, `{"error": {"code", "message"}}`, of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong: a stable snake_case `code` (docs/api.md lists them) and human text.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    #[schema(example = "invalid_input")]
    pub code: String,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}

/// Shorthand for handlers.
pub type Result<T, E = Error> = std::result::Result<T, E>;
