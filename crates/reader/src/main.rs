use clap::Parser;
use flightdeck_reader::{init_logging, run, Args};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    init_logging(&args.log_format);
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "reader failed");
            eprintln!("flightdeck-reader: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
