//! The reader's one error type.

#[derive(Debug, thiserror::Error)]
pub enum ReaderError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("building the HTTP client failed: {0}")]
    Client(#[source] reqwest::Error),
    #[error("registering metric failed: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("gateway {gateway}: {reason}")]
    Gateway { gateway: String, reason: String },
    #[error("gateway {gateway} refused the reader token (401)")]
    Unauthorized { gateway: String },
}
