//! Log set-up: JSON lines for log collectors, readable text on a terminal,
//! and a filter that changes at run time.
//!
//! The filter starts from `RUST_LOG` (or [`DEFAULT_FILTER`]) and sits behind a
//! `tracing_subscriber::reload` layer, so `PUT /log-level` on the admin port
//! can turn on `debug` for one module of a running operator while a problem
//! is happening, without a restart that would make it go away.

use std::{
    io::IsTerminal,
    sync::{Arc, Mutex, PoisonError},
};

use thiserror::Error;
use tracing_subscriber::{
    fmt, layer::SubscriberExt, reload, util::SubscriberInitExt, EnvFilter, Layer, Registry,
};

/// Filter when `RUST_LOG` is unset: our own info logs, and only warnings from
/// the client and HTTP libraries (kube logs every watch restart, h2 every
/// stream it resets).
pub const DEFAULT_FILTER: &str = "info,kube=warn,hyper=warn,h2=warn,tower=warn";

/// `--log-format` of every binary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// JSON when stderr is not a terminal (in a pod), text otherwise.
    #[default]
    Auto,
    /// One JSON object per line, event fields flattened.
    Json,
    /// Human-readable lines.
    Text,
}

impl LogFormat {
    fn is_json(self) -> bool {
        match self {
            LogFormat::Json => true,
            LogFormat::Text => false,
            LogFormat::Auto => !std::io::stderr().is_terminal(),
        }
    }
}

/// `--log-format`, flattened into every binary's flags
/// (`#[command(flatten)] log: LogArgs`), so the flag and its variable are the
/// same everywhere.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::Args)]
pub struct LogArgs {
    /// Log format: auto (JSON unless stderr is a terminal), json or text.
    /// The filter comes from RUST_LOG; where the process has an admin port,
    /// `PUT /log-level` changes it at run time.
    #[arg(
        long,
        env = "FLIGHTDECK_LOG_FORMAT",
        value_enum,
        default_value = "auto"
    )]
    pub log_format: LogFormat,
}

impl LogArgs {
    /// [`init`] with this format.
    pub fn init(self) -> LogHandle {
        init(self.log_format)
    }
}

/// A filter directive string that `EnvFilter` does not accept.
#[derive(Debug, Error)]
#[error("invalid log filter {directives:?}: {source}")]
pub struct FilterError {
    pub directives: String,
    #[source]
    pub source: tracing_subscriber::filter::ParseError,
}

/// Reads and replaces the filter of the installed subscriber.
#[derive(Clone)]
pub struct LogHandle {
    reload: reload::Handle<EnvFilter, Registry>,
    /// The directives as given: `EnvFilter`'s Display reorders them.
    current: Arc<Mutex<String>>,
}

impl std::fmt::Debug for LogHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogHandle")
            .field("filter", &self.filter())
            .finish()
    }
}

impl LogHandle {
    /// The directives in force.
    pub fn filter(&self) -> String {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the filter, e.g. `info,flightdeck_operator::reconcile=debug`.
    /// An invalid string changes nothing.
    pub fn set(&self, directives: &str) -> Result<(), FilterError> {
        let directives = directives.trim();
        let filter = EnvFilter::try_new(directives).map_err(|source| FilterError {
            directives: directives.to_owned(),
            source,
        })?;
        // Only fails when the subscriber is gone (process exit): nothing to log to.
        let _ = self.reload.reload(filter);
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = directives.to_owned();
        tracing::info!(filter = directives, "log filter changed");
        Ok(())
    }
}

/// Installs the global subscriber (logs to stderr) and returns the handle of
/// its filter. The filter is `RUST_LOG` when it is set and valid, otherwise
/// [`DEFAULT_FILTER`]; an invalid `RUST_LOG` is reported once logging works.
///
/// A second call (tests) keeps the first subscriber; the handle it returns
/// then controls nothing.
pub fn init(format: LogFormat) -> LogHandle {
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let (directives, filter, rejected) = match from_env {
        Some(text) => match EnvFilter::try_new(&text) {
            Ok(filter) => (text, filter, None),
            Err(error) => (
                DEFAULT_FILTER.to_owned(),
                EnvFilter::new(DEFAULT_FILTER),
                Some((text, error)),
            ),
        },
        None => (
            DEFAULT_FILTER.to_owned(),
            EnvFilter::new(DEFAULT_FILTER),
            None,
        ),
    };
    let (filter, reload) = reload::Layer::new(filter);
    let output = fmt::layer().with_writer(std::io::stderr);
    let output = if format.is_json() {
        output
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed()
    } else {
        output.boxed()
    };
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .try_init();
    if let Some((text, error)) = rejected {
        tracing::warn!(rust_log = %text, %error, filter = DEFAULT_FILTER, "RUST_LOG is not a valid filter; using the default");
    }
    LogHandle {
        reload,
        current: Arc::new(Mutex::new(directives)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_filter_replaces_the_current_one_and_an_invalid_one_changes_nothing() {
        let handle = init(LogFormat::Text);
        handle.set("warn,flightdeck=debug").expect("valid filter");
        assert_eq!(handle.filter(), "warn,flightdeck=debug");
        let error = handle.set("info,[unclosed").expect_err("invalid filter");
        assert!(error.to_string().contains("[unclosed"), "{error}");
        assert_eq!(handle.filter(), "warn,flightdeck=debug");
    }

    #[test]
    fn auto_is_text_or_json_by_terminal_and_explicit_formats_are_kept() {
        assert!(LogFormat::Json.is_json());
        assert!(!LogFormat::Text.is_json());
    }
}
