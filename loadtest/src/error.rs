//! The harness's one error type.

/// What can stop a load run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    #[error("WebSocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The server answered something the harness did not expect.
    #[error("{0}")]
    Unexpected(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
