//! Command line of `flightdeck-test-engine`, and the engine settings it
//! shares with code that embeds the engine (`Config`).

use std::net::SocketAddr;

use clap::Parser;

/// A deterministic OpenAI-compatible engine for data-path tests and
/// benchmarks: its answers are a pure function of the prompt, so a test can
/// assert exact content after the request went through gateway and reader.
#[derive(Clone, Debug, Parser)]
#[command(name = "flightdeck-test-engine", version, about)]
pub struct Args {
    /// Address to serve the OpenAI API, /health and /stats on.
    #[arg(long, env = "TEST_ENGINE_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub engine: Config,
    #[command(flatten)]
    pub log: flightdeck_runtime::LogArgs,
}

/// How the engine answers: models, pace, concurrency and injected faults.
/// `Config::default()` equals the command line's defaults.
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
pub struct Config {
    /// Model name served (repeatable); requests naming another model get 404.
    #[arg(long = "model", default_value = "test-model")]
    pub models: Vec<String>,
    /// Delay before the first token, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub ttft_ms: u64,
    /// Delay between two tokens, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub token_delay_ms: u64,
    /// Answer length in tokens when the request sets no max_tokens.
    #[arg(long, default_value_t = 16)]
    pub tokens: u32,
    /// Requests generated at once (an engine's batch size). Requests above
    /// it wait for a slot, as vLLM's or llama.cpp's scheduler queues them,
    /// unless --reject-when-busy is set. 0: unlimited.
    #[arg(long, default_value_t = 0)]
    pub max_concurrency: usize,
    /// Above --max-concurrency, answer 429 with `Retry-After: 1` at once
    /// instead of queueing.
    #[arg(long)]
    pub reject_when_busy: bool,
    /// After this many tokens of an answer, abort the connection without
    /// finishing the body, like an engine that crashed mid-answer.
    #[arg(long)]
    pub fail_after_tokens: Option<u32>,
    /// Length of the vectors /v1/embeddings returns (unless `dimensions` asks).
    #[arg(long, default_value_t = 8)]
    pub embedding_dim: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            models: vec!["test-model".to_owned()],
            ttft_ms: 0,
            token_delay_ms: 0,
            tokens: 16,
            max_concurrency: 0,
            reject_when_busy: false,
            fail_after_tokens: None,
            embedding_dim: 8,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_config_is_the_command_line_default() {
        let args = Args::parse_from(["flightdeck-test-engine"]);
        assert_eq!(args.engine, Config::default());
    }

    #[test]
    fn engine_flags_land_in_the_config() {
        let args = Args::parse_from([
            "flightdeck-test-engine",
            "--model",
            "a",
            "--model",
            "b",
            "--token-delay-ms",
            "5",
            "--fail-after-tokens",
            "3",
        ]);
        assert_eq!(args.engine.models, ["a", "b"]);
        assert_eq!(args.engine.token_delay_ms, 5);
        assert_eq!(args.engine.fail_after_tokens, Some(3));
    }
}
