//! flightdeck-gateway: the OpenAI-compatible front of a Flightdeck stack.
//!
//! Clients call the OpenAI endpoints; each request waits in the bounded queue
//! of a consumer group until a reader that has free capacity pulls it, and
//! the reader's streamed upload is relayed back to the client. The pull
//! protocol is in [`protocol`] and docs/protocol.md.

pub mod auth;
pub mod broker;
pub mod cli;
pub mod client_api;
pub mod config_watch;
pub mod error;
pub mod metrics;
pub mod protocol;
pub mod reader_api;
pub mod relay;
pub mod routes;
pub mod server;
pub mod state;

pub use cli::Args;
pub use error::GatewayError;
pub use server::{client_router, reader_router, run, serve};

/// Sets up `tracing` logs as JSON (in-cluster) or text, filtered by `RUST_LOG`.
pub fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == "text" {
        builder.try_init()
    } else {
        builder.json().try_init()
    };
}
