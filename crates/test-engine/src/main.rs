//! `flightdeck-test-engine`: the command line over `flightdeck_test_engine`.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use flightdeck_test_engine::{serve, Args, Engine, EngineError};

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    args.log.init();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), EngineError> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| EngineError::Bind {
            addr: args.listen,
            source,
        })?;
    let config = &args.engine;
    tracing::info!(
        listen = %args.listen,
        models = ?config.models,
        ttft_ms = config.ttft_ms,
        token_delay_ms = config.token_delay_ms,
        tokens = config.tokens,
        max_concurrency = config.max_concurrency,
        "test engine serving"
    );
    let engine = Arc::new(Engine::new(config));
    serve(listener, engine, flightdeck_runtime::shutdown::signal()).await
}
