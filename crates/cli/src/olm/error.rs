//! Errors of the OLM renderers. Each names the file or object at fault so a
//! failed `make bundle` / `make catalog` says what to fix.

use std::path::PathBuf;

/// Everything that can stop `flightdeck bundle` or `flightdeck catalog`.
#[derive(Debug, thiserror::Error)]
pub enum OlmError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid YAML: {source}")]
    Yaml {
        path: PathBuf,
        source: serde_yaml::Error,
    },
    #[error("cannot serialize {what} as YAML: {source}")]
    Serialize {
        what: String,
        source: serde_yaml::Error,
    },
    #[error("cannot serialize {what} as JSON: {source}")]
    Json {
        what: String,
        source: serde_json::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error(transparent)]
    Watches(#[from] flightdeck_api::watches::WatchesError),
    #[error("version {version:?} is not semantic versioning ({context}): {source}")]
    Version {
        version: String,
        context: String,
        source: semver::Error,
    },
    #[error("{count} generated file(s) are out of date: {files}; regenerate with `{command}` and commit the result")]
    Drift {
        count: usize,
        files: String,
        command: &'static str,
    },
}

impl OlmError {
    /// An input file that parsed but does not say what the renderer needs.
    pub fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}
