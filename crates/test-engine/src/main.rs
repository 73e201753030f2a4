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
    let listen = args.listen_address();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| EngineError::Bind {
            addr: listen,
            source,
        })?;
    let config = &args.engine;
    let unused = args.llama.unused();
    if !unused.is_empty() {
        tracing::info!(flags = ?unused, "llama-server flags accepted but not used by the test engine");
    }
    tracing::info!(
        listen = %listen,
        models = ?config.served_models(),
        load_seconds = config.load_seconds,
        ttft_ms = config.ttft_ms,
        token_delay_ms = config.token_delay_ms,
        tokens = config.tokens,
        max_concurrency = config.max_concurrency,
        "test engine serving"
    );
    let engine = Arc::new(Engine::new(config));
    serve(listener, engine, flightdeck_runtime::shutdown::signal()).await
}
