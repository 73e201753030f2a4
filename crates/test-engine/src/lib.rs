//! `flightdeck-test-engine`: a deterministic OpenAI-compatible engine for the
//! data-path scenarios and benchmarks (see `generation` for the answer rule,
//! `stats` for what GET /stats reports).
//!
//! The binary is a thin main over this library; tests embed the same engine
//! in-process:
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use flightdeck_test_engine::{serve, Config, Engine};
//!
//! let engine = Arc::new(Engine::new(&Config {
//!     models: vec!["smollm2".into()],
//!     token_delay_ms: 10,
//!     ..Config::default()
//! }));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let url = format!("http://{}", listener.local_addr()?);
//! tokio::spawn(serve(listener, Arc::clone(&engine), std::future::pending::<()>()));
//! // ... send requests to `url`, then read `engine.stats()`.
//! # Ok(()) }
//! ```

mod cli;
mod embeddings;
mod error;
mod generation;
mod protocol;
mod routes;
mod stats;

use std::future::Future;
use std::sync::Arc;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;

pub use crate::cli::{Args, Config};
pub use crate::error::EngineError;
pub use crate::routes::{router, Engine};
pub use crate::stats::StatsSnapshot;

/// Serves `engine` on `listener` until `shutdown` resolves, then finishes
/// the answers in progress.
///
/// Accepted connections get TCP_NODELAY: SSE events are small writes, and
/// without it Nagle's algorithm and the peer's delayed ACKs hold an event
/// back for up to 40 ms on a reused keep-alive connection.
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), EngineError> {
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on an engine connection");
        }
    });
    axum::serve(listener, router(engine))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(EngineError::Serve)
}
