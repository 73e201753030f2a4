//! The process runtime shared by every Flightdeck binary (operator, gateway,
//! reader, test engine), so they log, stop and report health the same way.
//!
//! - [`logging`]: one `--log-format` enum, JSON or text on stderr, and a
//!   filter ([`LogHandle`]) that can be changed while the process runs.
//! - [`shutdown`]: the signal that starts a graceful stop (SIGTERM, Ctrl-C).
//! - [`admin`]: `/metrics`, `/healthz`, `/readyz` and `/log-level`, over a
//!   [`admin::Health`] that each binary implements.

pub mod admin;
pub mod logging;
pub mod shutdown;

pub use logging::{LogArgs, LogFormat, LogHandle};
