//! `flightdeck-test-engine`: a deterministic OpenAI-compatible engine for the
//! data-path scenarios and benchmarks (see `generation` for the answer rule,
//! `stats` for what GET /stats reports).

mod cli;
mod embeddings;
mod error;
mod generation;
mod protocol;
mod routes;
mod stats;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::Args;
use crate::error::EngineError;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match serve(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> Result<(), EngineError> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| EngineError::Bind {
            addr: args.listen,
            source,
        })?;
    tracing::info!(
        listen = %args.listen,
        models = ?args.models,
        ttft_ms = args.ttft_ms,
        token_delay_ms = args.token_delay_ms,
        tokens = args.tokens,
        max_concurrency = args.max_concurrency,
        "test engine serving"
    );
    let app = routes::router(Arc::new(routes::Engine::new(&args)));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(EngineError::Serve)
}

/// SIGTERM or Ctrl-C; running answers finish, new connections are refused.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(err) => {
                tracing::warn!("cannot watch SIGTERM: {err}");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
