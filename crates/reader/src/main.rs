use clap::Parser;
use flightdeck_reader::{run, Args};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let log = args.log.init();
    match run(args, log).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "reader failed");
            eprintln!("flightdeck-reader: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
