//! `flightdeck-operator`: see [`flightdeck_operator`] and `--help`.

use std::process::ExitCode;

use clap::Parser;
use flightdeck_operator::{cli::Cli, runtime};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = cli.log.init();
    match runtime::run(cli, log).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "flightdeck-operator stopped");
            ExitCode::FAILURE
        }
    }
}
