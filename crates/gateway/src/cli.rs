//! Command-line flags (each with an environment variable, as the operator sets them).

use std::path::PathBuf;

use clap::Parser;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "flightdeck-gateway",
    version,
    about = "OpenAI-compatible gateway with pull-based consumer-group queues"
)]
pub struct Args {
    /// Client API (OpenAI endpoints, /healthz, /readyz, /metrics).
    #[arg(long, env = "FLIGHTDECK_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: String,
    /// Reader pull API only; never exposed by the Ingress.
    #[arg(long, env = "FLIGHTDECK_READER_LISTEN", default_value = "0.0.0.0:8081")]
    pub reader_listen: String,
    /// GatewayConfig JSON file; reloaded when it changes.
    #[arg(
        long,
        env = "FLIGHTDECK_GATEWAY_CONFIG",
        default_value = "/etc/flightdeck/gateway.json"
    )]
    pub config: PathBuf,
    /// File holding the per-stack reader token.
    #[arg(long, env = "FLIGHTDECK_READER_TOKEN_FILE")]
    pub reader_token_file: Option<PathBuf>,
    /// The reader token itself (used when no token file is given).
    #[arg(long, env = "FLIGHTDECK_READER_TOKEN", hide_env_values = true)]
    pub reader_token: Option<String>,
    /// Directory whose regular files each hold one client API key.
    #[arg(long, env = "FLIGHTDECK_API_KEYS_DIR")]
    pub api_keys_dir: Option<PathBuf>,
    /// Largest client request body in bytes (413 above).
    #[arg(long, env = "FLIGHTDECK_MAX_BODY_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// On SIGTERM, how long the gateway may take to stop, counted from the
    /// signal: the shutdown delay, then queued and in-flight requests finish.
    #[arg(long, env = "FLIGHTDECK_SHUTDOWN_GRACE_SECONDS", default_value_t = 25)]
    pub shutdown_grace_seconds: u64,
    /// On SIGTERM, how long new client requests are still accepted after
    /// /readyz turned 503: kube-proxy and DNS need a moment to take the pod
    /// out of its Services, and a request that arrives meanwhile must be
    /// served, not refused.
    #[arg(long, env = "FLIGHTDECK_SHUTDOWN_DELAY_SECONDS", default_value_t = 5)]
    pub shutdown_delay_seconds: u64,
    #[command(flatten)]
    pub log: flightdeck_runtime::LogArgs,
}
