//! Environment variables through which the reader sidecar is configured.
//!
//! The operator's reader container and `flightdeck up` both set these, and the
//! reader's CLI reads them (each also has a `--flag` form), so the names live
//! in one place.

/// Comma-separated gateway base URLs for the pull protocol, e.g.
/// `http://127.0.0.1:8081,http://127.0.0.1:9081` (local runs).
pub const GATEWAY_URLS: &str = "FLIGHTDECK_GATEWAY_URLS";
/// `host:port` of the gateway's headless Service; every address it resolves
/// to is a gateway pod to pull from (re-resolved periodically).
pub const GATEWAY_SERVICE: &str = "FLIGHTDECK_GATEWAY_SERVICE";
/// Comma-separated consumer groups this reader pulls for.
pub const CONSUMER_GROUPS: &str = "FLIGHTDECK_CONSUMER_GROUPS";
/// Base URL of the engine's OpenAI-compatible API, e.g. `http://127.0.0.1:8000`.
pub const ENGINE_URL: &str = "FLIGHTDECK_ENGINE_URL";
/// Requests the engine runs at once (readerConfig.maxBatchSize).
pub const CAPACITY: &str = "FLIGHTDECK_CAPACITY";
/// The per-stack reader token (from the operator's Secret).
pub const READER_TOKEN: &str = "FLIGHTDECK_READER_TOKEN";
/// Address of the reader's own /metrics, /healthz and /readyz.
pub const ADMIN_LISTEN: &str = "FLIGHTDECK_ADMIN_LISTEN";

/// Port of the gateway's client API (OpenAI endpoints, health, metrics).
pub const GATEWAY_CLIENT_PORT: u16 = 8080;
/// Port of the gateway's reader (pull) API; never exposed by the Ingress.
pub const GATEWAY_READER_PORT: u16 = 8081;
/// Port of the reader's admin endpoints.
pub const READER_ADMIN_PORT: u16 = 9090;
