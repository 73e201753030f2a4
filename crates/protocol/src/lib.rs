//! The contract between Flightdeck's processes, with no Kubernetes client in
//! it, so the data plane (gateway, reader) links only serde.
//!
//! - [`pull`]: the gateway <-> reader pull protocol (paths, headers, the
//!   upload head line, queue heads); docs/protocol.md has the semantics.
//! - [`gateway_config`]: the file the operator (or `flightdeck up`) writes and
//!   the gateway reads and reloads at run time.
//! - [`reader_env`]: the environment through which the operator (or
//!   `flightdeck up`) configures the reader sidecar, and the well-known ports.

pub mod gateway_config;
pub mod pull;
pub mod reader_env;
