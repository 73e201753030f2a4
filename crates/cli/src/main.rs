//! `flightdeck`: the command line of the Flightdeck operator project.
//!
//! A small dispatcher; each subcommand lives in its own module.

mod crd;
mod error;
mod olm;
mod output;
mod reference;
mod render;
mod up;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use error::CliError;

#[derive(Debug, Parser)]
#[command(
    name = "flightdeck",
    version,
    about = "Deploy open-source LLMs on Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the InferenceStack CRD (every served version), or write the
    /// checked-in copies with --write.
    Crd(crd::CrdArgs),
    /// Print every Kubernetes object the operator would apply for an
    /// InferenceStack file, without a cluster.
    Render(render::RenderArgs),
    /// Run the stack an InferenceStack file describes on this machine, without
    /// Kubernetes: engines, gateway and readers as local processes.
    Up(up::UpArgs),
    /// Print the InferenceStack field reference (Markdown) generated from the
    /// CRD, or rewrite it in README.md with --write (--check fails on drift).
    Reference(reference::ReferenceArgs),
    /// Write the OLM registry+v1 bundle (bundle/, bundle.Dockerfile) from
    /// config/ and a version (--check fails on drift).
    Bundle(olm::BundleArgs),
    /// Render the OLM file-based catalog from its semver template
    /// (--check fails on drift).
    Catalog(olm::CatalogArgs),
}

fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Crd(args) => crd::run(&args),
        Command::Render(args) => render::run(&args),
        Command::Up(args) => up::run(args),
        Command::Reference(args) => reference::run(&args),
        Command::Bundle(args) => Ok(olm::run_bundle(&args)?),
        Command::Catalog(args) => Ok(olm::run_catalog(&args)?),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
