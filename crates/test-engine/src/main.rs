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

use crate::cli::Args;
use crate::error::EngineError;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    flightdeck_runtime::logging::init(args.log_format);
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
        .with_graceful_shutdown(flightdeck_runtime::shutdown::signal())
        .await
        .map_err(EngineError::Serve)
}
