//! The CLI's error type: one variant per thing that can go wrong, each with
//! the context (file, command) a user needs to act on it.

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum CliError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid InferenceStack: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("{path} holds no InferenceStack document")]
    Empty { path: PathBuf },
    #[error("{path} is a {kind}, not an InferenceStack (apiVersion flightdeck.dev/v1alpha1)")]
    WrongKind { path: PathBuf, kind: String },
    #[error("{path}: InferenceStack {name} is invalid:\n{}", .errors.join("\n"))]
    Invalid {
        path: PathBuf,
        name: String,
        errors: Vec<String>,
    },
    #[error("building the objects of InferenceStack {name}: {source}")]
    Build {
        name: String,
        #[source]
        source: flightdeck_build::BuildError,
    },
    #[error("merging the CRD versions: {0}")]
    MergeCrds(String),
    #[error("serialising {what} to YAML: {source}")]
    Yaml {
        what: String,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("writing to stdout: {0}")]
    Stdout(#[source] std::io::Error),
    #[error("the checked-in CRD copies are out of date:\n{}\nregenerate them with `cargo run -p flightdeck-cli -- crd --write` (or `make generate`)", .stale.join("\n"))]
    StaleCrd { stale: Vec<String> },
    #[error(transparent)]
    Up(#[from] crate::up::UpError),
    #[error("{path} has no `{begin}` ... `{end}` markers for the generated reference")]
    NoReferenceMarkers {
        path: PathBuf,
        begin: &'static str,
        end: &'static str,
    },
    #[error("the InferenceStack reference in {path} is out of date; regenerate it with `cargo run -p flightdeck-cli -- reference --write`")]
    StaleReference { path: PathBuf },
    #[error(transparent)]
    Olm(#[from] crate::olm::OlmError),
}
