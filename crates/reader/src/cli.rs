//! Command-line flags; each has the environment variable named in
//! `flightdeck_protocol::reader_env`, which the operator sets.

use std::path::PathBuf;

use clap::Parser;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "flightdeck-reader",
    version,
    about = "Pulls requests from Flightdeck gateways and runs them on a local engine"
)]
pub struct Args {
    /// Comma-separated base URLs of the gateways' reader ports.
    #[arg(long, env = "FLIGHTDECK_GATEWAY_URLS", value_delimiter = ',')]
    pub gateway_urls: Vec<String>,
    /// `host:port` of the gateways' headless Service; every address is pulled from.
    #[arg(long, env = "FLIGHTDECK_GATEWAY_SERVICE")]
    pub gateway_service: Option<String>,
    /// Comma-separated consumer groups to pull for.
    #[arg(
        long,
        env = "FLIGHTDECK_CONSUMER_GROUPS",
        value_delimiter = ',',
        required = true
    )]
    pub consumer_groups: Vec<String>,
    /// Base URL of the engine's OpenAI-compatible API.
    #[arg(
        long,
        env = "FLIGHTDECK_ENGINE_URL",
        default_value = "http://127.0.0.1:8000"
    )]
    pub engine_url: String,
    /// Requests run on the engine at once (readerConfig.maxBatchSize).
    #[arg(long, env = "FLIGHTDECK_CAPACITY", default_value_t = 8)]
    pub capacity: u32,
    /// File holding the per-stack reader token.
    #[arg(long, env = "FLIGHTDECK_READER_TOKEN_FILE")]
    pub reader_token_file: Option<PathBuf>,
    /// The reader token itself (used when no token file is given).
    #[arg(long, env = "FLIGHTDECK_READER_TOKEN", hide_env_values = true)]
    pub reader_token: Option<String>,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "FLIGHTDECK_ADMIN_LISTEN", default_value = "0.0.0.0:9090")]
    pub admin_listen: String,
    /// Name this reader gives itself towards gateways (default: host name and a random suffix).
    #[arg(long, env = "FLIGHTDECK_READER_ID")]
    pub reader_id: Option<String>,
    /// Longest long-poll for work, in milliseconds.
    #[arg(long, env = "FLIGHTDECK_LONG_POLL_MS", default_value_t = 20_000)]
    pub long_poll_ms: u64,
    /// On SIGTERM, how long in-flight requests may take to finish.
    #[arg(long, env = "FLIGHTDECK_SHUTDOWN_GRACE_SECONDS", default_value_t = 600)]
    pub shutdown_grace_seconds: u64,
    #[command(flatten)]
    pub log: flightdeck_runtime::LogArgs,
}
