use clap::Parser;
use flightdeck_gateway::{run, Args};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    args.log.init();
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "gateway failed");
            eprintln!("flightdeck-gateway: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
