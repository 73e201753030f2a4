//! The "model map": how to run each inference engine.
//!
//! For every engine the operator knows its pinned container image (per
//! device), the command line built from `readerConfig`, where it caches
//! downloaded weights, and how to probe it. Every engine serves its
//! OpenAI-compatible API on 127.0.0.1:8000 inside the pod, reachable only by
//! the reader sidecar; the model is served under `servedModelName` (default
//! `modelName`), the name clients put in the request's `model` field.
//!
//! Because the engine listens on loopback, kubelet HTTP probes (which target
//! the pod IP) cannot reach it: the engine's startup and liveness probes run
//! a command inside the engine container, and pod readiness comes from the
//! reader, whose `/readyz` checks the engine.

use flightdeck_api::v1alpha1::{ApplicationSpec, Device, Engine, Task};

/// Port every engine listens on inside the pod.
pub const ENGINE_PORT: u16 = 8000;
/// Address every engine binds inside the pod: loopback, so only the reader
/// sidecar can reach it.
pub const ENGINE_HOST: &str = "127.0.0.1";
/// Where the model cache volume is mounted in the engine container.
pub const MODEL_CACHE_DIR: &str = "/model-cache";

/// vLLM's OpenAI server image (CUDA only).
pub const VLLM_IMAGE: &str = "vllm/vllm-openai:v0.11.0";
/// SGLang's image (CUDA build; runs on CPU only with a CPU build).
pub const SGLANG_IMAGE: &str = "lmsysorg/sglang:v0.5.12";
/// llama.cpp's `llama-server` image for CPU.
pub const LLAMACPP_CPU_IMAGE: &str = "ghcr.io/ggml-org/llama.cpp:server-b9603";
/// llama.cpp's `llama-server` image built with CUDA.
pub const LLAMACPP_CUDA_IMAGE: &str = "ghcr.io/ggml-org/llama.cpp:server-cuda12-b9603";
/// Text Generation Inference for NVIDIA GPUs.
pub const TGI_CUDA_IMAGE: &str = "ghcr.io/huggingface/text-generation-inference:3.3.6";
/// Text Generation Inference's CPU build.
pub const TGI_CPU_IMAGE: &str = "ghcr.io/huggingface/text-generation-inference:3.3.0-intel-cpu";

/// Seconds between startup probes. With `readerConfig.startupTimeoutSeconds`
/// this gives the probe's failure threshold.
pub const STARTUP_PERIOD_SECONDS: i32 = 10;

/// Everything the operator needs to run one application's engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineLaunch {
    /// Container image.
    pub image: String,
    /// Entry point; empty to use the image's own.
    pub command: Vec<String>,
    /// Arguments, including the application's `extraArgs` at the end.
    pub args: Vec<String>,
    /// Environment for the engine's caches (before the user's `env`).
    pub env: Vec<(String, String)>,
    /// Command that exits 0 when the engine answers its health endpoint.
    pub probe_command: Vec<String>,
    /// Whether the engine needs a large `/dev/shm` (PyTorch workers share
    /// tensors through it; the container runtime's 64 MiB is too small).
    pub needs_shared_memory: bool,
    /// Seconds between startup probes.
    pub startup_period_seconds: i32,
    /// Startup probe failures allowed while the model downloads and loads.
    pub startup_failure_threshold: i32,
}

/// The pinned default image of `engine` on `device`.
pub fn default_image(engine: Engine, device: Device) -> &'static str {
    match (engine, device) {
        (Engine::Vllm, _) => VLLM_IMAGE,
        (Engine::Sglang, _) => SGLANG_IMAGE,
        (Engine::Llamacpp, Device::Cpu) => LLAMACPP_CPU_IMAGE,
        (Engine::Llamacpp, Device::Cuda) => LLAMACPP_CUDA_IMAGE,
        (Engine::Tgi, Device::Cpu) => TGI_CPU_IMAGE,
        (Engine::Tgi, Device::Cuda) => TGI_CUDA_IMAGE,
    }
}

/// How to run `app`'s engine in a pod: on [`ENGINE_HOST`]:[`ENGINE_PORT`].
pub fn launch(app: &ApplicationSpec) -> EngineLaunch {
    launch_on(app, ENGINE_HOST, ENGINE_PORT)
}

/// How to run `app`'s engine listening on `host:port` (`flightdeck up` picks
/// its own ports).
pub fn launch_on(app: &ApplicationSpec, host: &str, port: u16) -> EngineLaunch {
    let reader = &app.reader_config;
    let image = app
        .image
        .clone()
        .unwrap_or_else(|| default_image(app.engine, reader.device).to_owned());
    let (command, mut args) = match app.engine {
        Engine::Vllm => (words(&["vllm", "serve"]), vllm_args(app, host, port)),
        Engine::Sglang => (
            words(&["python3", "-m", "sglang.launch_server"]),
            sglang_args(app, host, port),
        ),
        // The llama.cpp and TGI images' entry points are the servers
        // themselves (`llama-server`, `text-generation-launcher`).
        Engine::Llamacpp => (Vec::new(), llamacpp_args(app, host, port)),
        Engine::Tgi => (Vec::new(), tgi_args(app, host, port)),
    };
    args.extend(app.extra_args.iter().cloned());
    let health_url = format!("http://{host}:{port}/health");
    let probe_command = match app.engine {
        // The vLLM and SGLang images are Python images without curl.
        Engine::Vllm | Engine::Sglang => vec![
            "python3".to_owned(),
            "-c".to_owned(),
            format!(
                "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('{health_url}', timeout=5).status == 200 else 1)"
            ),
        ],
        Engine::Llamacpp | Engine::Tgi => vec![
            "curl".to_owned(),
            "-fsS".to_owned(),
            "--max-time".to_owned(),
            "5".to_owned(),
            "-o".to_owned(),
            "/dev/null".to_owned(),
            health_url,
        ],
    };
    EngineLaunch {
        image,
        command,
        args,
        env: cache_env(app.engine),
        probe_command,
        needs_shared_memory: matches!(app.engine, Engine::Vllm | Engine::Sglang | Engine::Tgi),
        startup_period_seconds: STARTUP_PERIOD_SECONDS,
        startup_failure_threshold: startup_failure_threshold(reader.startup_timeout_seconds),
    }
}

/// Startup probes that may fail before the engine counts as stuck: the
/// startup window in probe periods, rounded up so the engine gets at least
/// the time asked for.
pub fn startup_failure_threshold(startup_timeout_seconds: i32) -> i32 {
    // Validation keeps the window positive and far from i32::MAX.
    let seconds = startup_timeout_seconds.max(1);
    (seconds + STARTUP_PERIOD_SECONDS - 1) / STARTUP_PERIOD_SECONDS
}

/// Environment that points the engine's downloads at the model cache.
pub fn cache_env(engine: Engine) -> Vec<(String, String)> {
    let mut env = vec![(
        "HF_HOME".to_owned(),
        format!("{MODEL_CACHE_DIR}/huggingface"),
    )];
    match engine {
        Engine::Llamacpp => env.push((
            "LLAMA_CACHE".to_owned(),
            format!("{MODEL_CACHE_DIR}/llama.cpp"),
        )),
        // TGI downloads to HUGGINGFACE_HUB_CACHE (default /data).
        Engine::Tgi => env.push((
            "HUGGINGFACE_HUB_CACHE".to_owned(),
            format!("{MODEL_CACHE_DIR}/huggingface/hub"),
        )),
        Engine::Vllm | Engine::Sglang => {}
    }
    env
}

fn vllm_args(app: &ApplicationSpec, host: &str, port: u16) -> Vec<String> {
    let reader = &app.reader_config;
    let mut args = vec![
        reader.model_name.clone(),
        "--host".to_owned(),
        host.to_owned(),
        "--port".to_owned(),
        port.to_string(),
        "--served-model-name".to_owned(),
        reader.served_model_name().to_owned(),
        "--max-num-seqs".to_owned(),
        reader.max_batch_size.to_string(),
        "--tensor-parallel-size".to_owned(),
        reader.tensor_parallel_size.to_string(),
    ];
    if let Some(length) = reader.max_sequence_length {
        args.extend(["--max-model-len".to_owned(), length.to_string()]);
    }
    if let Some(quantization) = &reader.quantization {
        args.extend(["--quantization".to_owned(), quantization.clone()]);
    }
    if reader.task == Task::Embed {
        // vLLM 0.10+ (`--task embed` is deprecated there): the pooling
        // runner serves /v1/embeddings; it converts a generative
        // architecture by itself (`--convert auto`).
        args.extend(["--runner".to_owned(), "pooling".to_owned()]);
    }
    args
}

fn sglang_args(app: &ApplicationSpec, host: &str, port: u16) -> Vec<String> {
    let reader = &app.reader_config;
    let mut args = vec![
        "--model-path".to_owned(),
        reader.model_name.clone(),
        "--host".to_owned(),
        host.to_owned(),
        "--port".to_owned(),
        port.to_string(),
        "--served-model-name".to_owned(),
        reader.served_model_name().to_owned(),
        "--max-running-requests".to_owned(),
        reader.max_batch_size.to_string(),
        "--tp-size".to_owned(),
        reader.tensor_parallel_size.to_string(),
    ];
    if let Some(length) = reader.max_sequence_length {
        args.extend(["--context-length".to_owned(), length.to_string()]);
    }
    if let Some(quantization) = &reader.quantization {
        args.extend(["--quantization".to_owned(), quantization.clone()]);
    }
    if reader.device == Device::Cpu {
        args.extend(["--device".to_owned(), "cpu".to_owned()]);
    }
    if reader.task == Task::Embed {
        args.push("--is-embedding".to_owned());
    }
    args
}

fn llamacpp_args(app: &ApplicationSpec, host: &str, port: u16) -> Vec<String> {
    let reader = &app.reader_config;
    // An absolute path is a GGUF file in the container; anything else is a
    // Hugging Face repository (`user/repo[:QUANT]`) that llama-server
    // downloads into LLAMA_CACHE.
    let model_flag = if reader.model_name.starts_with('/') {
        "--model"
    } else {
        "--hf-repo"
    };
    let mut args = vec![
        model_flag.to_owned(),
        reader.model_name.clone(),
        "--host".to_owned(),
        host.to_owned(),
        "--port".to_owned(),
        port.to_string(),
        "--alias".to_owned(),
        reader.served_model_name().to_owned(),
        "--parallel".to_owned(),
        reader.max_batch_size.to_string(),
        "--n-gpu-layers".to_owned(),
        match reader.device {
            Device::Cuda => "999".to_owned(),
            Device::Cpu => "0".to_owned(),
        },
    ];
    if let Some(length) = reader.max_sequence_length {
        // llama-server splits --ctx-size evenly across its --parallel slots;
        // give every slot the full sequence length.
        let total = i64::from(length) * i64::from(reader.max_batch_size);
        args.extend(["--ctx-size".to_owned(), total.to_string()]);
    }
    if reader.task == Task::Embed {
        // Without it llama-server answers /v1/embeddings with an error.
        args.push("--embeddings".to_owned());
        if let Some(length) = reader.max_sequence_length {
            // Embedding models see a whole input at once: it must fit in
            // one micro-batch (default 512 tokens), or llama-server refuses
            // longer inputs.
            args.extend([
                "--batch-size".to_owned(),
                length.to_string(),
                "--ubatch-size".to_owned(),
                length.to_string(),
            ]);
        }
    }
    args
}

fn tgi_args(app: &ApplicationSpec, host: &str, port: u16) -> Vec<String> {
    let reader = &app.reader_config;
    // TGI's OpenAI endpoints accept any `model` value, so the served name
    // needs no flag.
    let mut args = vec![
        "--model-id".to_owned(),
        reader.model_name.clone(),
        "--hostname".to_owned(),
        host.to_owned(),
        "--port".to_owned(),
        port.to_string(),
        "--max-concurrent-requests".to_owned(),
        reader.max_batch_size.to_string(),
    ];
    if reader.device == Device::Cuda {
        args.extend([
            "--num-shard".to_owned(),
            reader.tensor_parallel_size.to_string(),
        ]);
    }
    if let Some(length) = reader.max_sequence_length {
        args.extend(["--max-total-tokens".to_owned(), length.to_string()]);
        if length > 1 {
            args.extend(["--max-input-tokens".to_owned(), (length - 1).to_string()]);
        }
    }
    if let Some(quantization) = &reader.quantization {
        args.extend(["--quantize".to_owned(), quantization.clone()]);
    }
    args
}

fn words(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

#[cfg(test)]
mod tests;
