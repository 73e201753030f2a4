//! Log set-up: JSON lines for log collectors, readable text on a terminal.

use std::io::IsTerminal;

use tracing_subscriber::{fmt, EnvFilter};

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// JSON when stderr is not a terminal (in a pod), text otherwise.
    Auto,
    Json,
    Text,
}

/// Default filter when `RUST_LOG` is unset: our own info logs, and only
/// warnings from the client libraries (they log every watch restart).
const DEFAULT_FILTER: &str = "info,kube=warn,hyper=warn,tower=warn";

/// Installs the global subscriber. Logs go to stderr.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // A second init (tests) keeps the first subscriber: ignore the error.
    if json {
        let _ = builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init();
    } else {
        let _ = builder.try_init();
    }
}
