//! flightdeck-gateway: the OpenAI-compatible front of a Flightdeck stack.
//!
//! Clients call the OpenAI endpoints; each request waits in the bounded queue
//! of a consumer group until a reader that has free capacity pulls it, and
//! the reader's streamed upload is relayed back to the client. The pull
//! protocol is in `flightdeck_protocol::pull` and docs/protocol.md.

pub mod auth;
pub mod broker;
pub mod cli;
pub mod client_api;
pub mod config_watch;
pub mod error;
pub mod metrics;
pub mod reader_api;
pub mod relay;
pub mod routes;
pub mod server;
pub mod state;
pub mod tokens;

pub use cli::Args;
pub use error::GatewayError;
pub use server::{client_router, reader_router, run, serve, ShutdownTiming};
