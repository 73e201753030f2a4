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
    /// Host (IP address) to listen on, replacing --listen's: llama-server's
    /// flag, so the operator's llama.cpp command line starts this engine.
    #[arg(long)]
    pub host: Option<std::net::IpAddr>,
    /// Port to listen on, replacing --listen's (llama-server's flag).
    #[arg(long)]
    pub port: Option<u16>,
    #[command(flatten)]
    pub engine: Config,
    #[command(flatten)]
    pub llama: LlamaServerFlags,
    #[command(flatten)]
    pub log: flightdeck_runtime::LogArgs,
}

impl Args {
    /// The address to bind: --listen, with --host and --port applied.
    pub fn listen_address(&self) -> SocketAddr {
        let mut address = self.listen;
        if let Some(host) = self.host {
            address.set_ip(host);
        }
        if let Some(port) = self.port {
            address.set_port(port);
        }
        address
    }
}

/// llama-server flags the operator's llama.cpp command line passes
/// (crates/build/src/engines.rs `llamacpp_args`) that mean nothing to a
/// test engine: accepted so that an `engine: llamacpp` application with the
/// test engine's image starts, and logged at start-up as unused. The
/// meaningful ones map onto engine settings: `--alias` is the served model
/// name, `--parallel` is `--max-concurrency`, `--host`/`--port` the address.
#[derive(Clone, Debug, Default, PartialEq, Eq, clap::Args)]
pub struct LlamaServerFlags {
    /// Hugging Face repository llama-server would download (not used).
    #[arg(long)]
    pub hf_repo: Option<String>,
    /// Layers llama-server would offload to a GPU (not used).
    #[arg(long)]
    pub n_gpu_layers: Option<String>,
    /// llama-server's context size over all slots (not used).
    #[arg(long)]
    pub ctx_size: Option<u64>,
}

impl LlamaServerFlags {
    /// `flag value` of each flag given, for the start-up log.
    pub fn unused(&self) -> Vec<String> {
        let mut unused = Vec::new();
        if let Some(repo) = &self.hf_repo {
            unused.push(format!("--hf-repo {repo}"));
        }
        if let Some(layers) = &self.n_gpu_layers {
            unused.push(format!("--n-gpu-layers {layers}"));
        }
        if let Some(size) = self.ctx_size {
            unused.push(format!("--ctx-size {size}"));
        }
        unused
    }
}

/// How the engine answers: models, pace, concurrency and injected faults.
/// `Config::default()` equals the command line's defaults.
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
pub struct Config {
    /// Model name served (repeatable); requests naming another model get 404.
    #[arg(long = "model", default_value = "test-model")]
    pub models: Vec<String>,
    /// The served model name, replacing every --model: llama-server's flag
    /// (there --model is a GGUF path and --alias the name clients use).
    #[arg(long)]
    pub alias: Option<String>,
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
    /// unless --reject-when-busy is set. 0: unlimited. `--parallel` is
    /// llama-server's name for it.
    #[arg(long, visible_alias = "parallel", default_value_t = 0)]
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
    /// Act as an engine still loading its model for this many seconds after
    /// start, as llama-server does: /health and the generation and
    /// embedding routes answer 503 `Loading model`, while /v1/models
    /// already answers 200.
    #[arg(long, default_value_t = 0)]
    pub load_seconds: u64,
}

impl Config {
    /// The model names served: the --alias if given, else every --model.
    pub fn served_models(&self) -> Vec<String> {
        match &self.alias {
            Some(alias) => vec![alias.clone()],
            None => self.models.clone(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            models: vec!["test-model".to_owned()],
            alias: None,
            ttft_ms: 0,
            token_delay_ms: 0,
            tokens: 16,
            max_concurrency: 0,
            reject_when_busy: false,
            fail_after_tokens: None,
            embedding_dim: 8,
            load_seconds: 0,
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

    #[test]
    fn the_operators_llama_server_command_line_starts_the_test_engine() {
        // What crates/build/src/engines.rs `llamacpp_args` renders, plus
        // extraArgs.
        let args = Args::try_parse_from([
            "flightdeck-test-engine",
            "--hf-repo",
            "test/model",
            "--host",
            "127.0.0.1",
            "--port",
            "8000",
            "--alias",
            "smollm2",
            "--parallel",
            "4",
            "--n-gpu-layers",
            "0",
            "--ctx-size",
            "8192",
            "--token-delay-ms",
            "50",
        ])
        .expect("llama-server flags parse");
        assert_eq!(args.listen_address().to_string(), "127.0.0.1:8000");
        assert_eq!(args.engine.served_models(), ["smollm2"]);
        assert_eq!(args.engine.max_concurrency, 4);
        assert_eq!(
            args.llama.unused(),
            [
                "--hf-repo test/model",
                "--n-gpu-layers 0",
                "--ctx-size 8192"
            ]
        );
        let plain = Args::parse_from(["flightdeck-test-engine", "--port", "9001"]);
        assert_eq!(plain.listen_address().to_string(), "127.0.0.1:9001");
        assert_eq!(plain.engine.served_models(), ["test-model"]);
    }
}
