//! Applications of an `InferenceStack`: one engine serving one model.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{Affinity, EnvVar, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::gateway::GatewaySpec;

/// One model served by one engine. Every pod runs the engine and a reader
/// sidecar that pulls requests for the application's consumer groups from
/// the gateway.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSpec {
    /// Inference engine. The operator knows each engine's image, command
    /// line, port and probes.
    pub engine: Engine,

    /// Engine container image; defaults to the operator's pinned image for
    /// the engine and device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image: Option<String>,

    /// Pods of this application. Each pod adds `readerConfig.maxBatchSize`
    /// request slots to its consumer groups.
    #[serde(default = "default_application_replicas")]
    #[schemars(range(min = 0))]
    pub replicas: i32,

    /// Consumer groups this application's readers pull from; defaults to the
    /// application's name. Applications that list the same group share its
    /// queue (e.g. one model on two GPU types: the faster pulls more).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"), length(min = 1, max = 63)))]
    pub consumer_groups: Vec<String>,

    /// Node labels the pods must match, e.g. a GPU product label.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    /// Tolerations of the pods, e.g. for tainted GPU nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,

    /// Scheduling affinity of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    /// Resources of the engine container, e.g. `limits: {memory: 16Gi}`. With
    /// `readerConfig.device: cuda` and no `nvidia.com/gpu` given, the engine
    /// requests and is limited to `readerConfig.tensorParallelSize` GPUs; a
    /// GPU request or limit below that is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Extra environment variables for the engine container (e.g. `HF_TOKEN`
    /// from a Secret for gated models).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,

    /// Extra command-line arguments appended to the engine's arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<String>,

    /// The model and how the engine runs it.
    pub reader_config: ReaderConfig,

    /// A PersistentVolumeClaim for downloaded model weights, so restarts do
    /// not download them again. Without it weights go to an emptyDir.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_cache: Option<ModelCacheSpec>,
}

fn default_application_replicas() -> i32 {
    1
}

impl ApplicationSpec {
    /// The consumer groups this application's readers pull from: the listed
    /// ones, or the application's own name when none are listed.
    pub fn effective_consumer_groups(&self, application_name: &str) -> Vec<String> {
        if self.consumer_groups.is_empty() {
            vec![application_name.to_owned()]
        } else {
            self.consumer_groups.clone()
        }
    }
}

/// Inference engines the operator knows how to run.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// vLLM's OpenAI-compatible server (`vllm serve`).
    Vllm,
    /// SGLang's server (`python3 -m sglang.launch_server`).
    Sglang,
    /// llama.cpp's `llama-server` (GGUF models; runs well on CPU).
    Llamacpp,
    /// Hugging Face Text Generation Inference (`text-generation-launcher`).
    Tgi,
}

impl Engine {
    /// The name used in the CRD and in the gateway's model list.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Vllm => "vllm",
            Self::Sglang => "sglang",
            Self::Llamacpp => "llamacpp",
            Self::Tgi => "tgi",
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Hardware the engine runs the model on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    /// NVIDIA GPUs (`nvidia.com/gpu`; the engine gets `tensorParallelSize`
    /// of them unless `resources` says otherwise).
    #[default]
    Cuda,
    /// CPU only.
    Cpu,
}

impl Device {
    /// The name used in the CRD.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cuda => "cuda",
            Self::Cpu => "cpu",
        }
    }
}

/// The model an application serves and the engine settings for it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReaderConfig {
    /// The model the engine loads: a Hugging Face repository id such as
    /// `unsloth/Llama-3.2-1B-Instruct` (for llama.cpp a GGUF repository,
    /// optionally with `:QUANT`, e.g. `bartowski/SmolLM2-135M-Instruct-GGUF:Q4_K_M`),
    /// or an absolute path inside the engine container. Unless
    /// `servedModelName` is set, it is also the name clients put in the
    /// request's `model` field.
    #[schemars(length(min = 1, max = 512))]
    pub model_name: String,

    /// The name clients use in the `model` field and the engine serves the
    /// model under; defaults to `modelName`. Applications with the same
    /// served name are alternatives for one model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub served_model_name: Option<String>,

    /// Hardware to run on. vLLM and SGLang need a CPU build of their image
    /// (set `image`) for `cpu`.
    #[serde(default)]
    pub device: Device,

    /// Requests the engine runs at once (its batch size); also how many
    /// requests the reader takes from the gateway at a time.
    #[serde(default = "default_max_batch_size")]
    #[schemars(range(min = 1, max = 4096))]
    pub max_batch_size: i32,

    /// Longest sequence (prompt plus answer) in tokens; the engine's default
    /// (usually the model's own limit) when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_sequence_length: Option<i32>,

    /// Quantization method passed to the engine (e.g. `awq`, `gptq`, `fp8`,
    /// `bitsandbytes`); unset for the model's own format. llama.cpp takes the
    /// quantization from the GGUF file instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^[a-z0-9][a-z0-9_-]*$"), length(max = 64))]
    pub quantization: Option<String>,

    /// GPUs one model replica is split across (tensor parallelism). On
    /// `cuda` the engine gets as many `nvidia.com/gpu` unless `resources`
    /// names another number (which must not be smaller).
    #[serde(default = "default_tensor_parallel_size")]
    #[schemars(range(min = 1, max = 64))]
    pub tensor_parallel_size: i32,

    /// What the model serves: `generate` (`/v1/chat/completions` and
    /// `/v1/completions`) or `embed` (`/v1/embeddings`). The engine is
    /// started for that task (llama.cpp `--embeddings`, SGLang
    /// `--is-embedding`, vLLM `--runner pooling`; TGI serves no embeddings),
    /// and the gateway answers a clear error for the other task's routes
    /// instead of passing them to an engine that lacks them. Applications
    /// with the same served model name must have the same task.
    #[serde(default)]
    pub task: Task,

    /// Seconds the engine may take to start (download and load the model)
    /// before Kubernetes restarts it; the engine's startup probe allows this
    /// long (in steps of 10 s, rounded up). Raise it for large models on a
    /// cold cache.
    #[serde(default = "default_startup_timeout_seconds")]
    #[schemars(range(min = 60, max = 86400))]
    pub startup_timeout_seconds: i32,

    /// Seconds a stopping pod (a roll, a scale-down, a drain of its node)
    /// keeps answering the requests it has already taken: the reader stops
    /// pulling new work at once, the engine keeps running until the reader
    /// has finished, and the pod's termination grace period is a few seconds
    /// longer. Defaults to `spec.gateway.queue.requestTimeoutSeconds`; give
    /// long streamed answers as long as they take. 0 stops at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 86400))]
    pub drain_timeout_seconds: Option<i32>,
}

fn default_max_batch_size() -> i32 {
    16
}

fn default_tensor_parallel_size() -> i32 {
    1
}

fn default_startup_timeout_seconds() -> i32 {
    DEFAULT_STARTUP_TIMEOUT_SECONDS
}

/// `readerConfig.startupTimeoutSeconds` when unset: 30 minutes, for large
/// weight downloads on a cold cache.
pub const DEFAULT_STARTUP_TIMEOUT_SECONDS: i32 = 1800;
/// Bounds of `readerConfig.startupTimeoutSeconds`: an engine needs at least
/// a minute to load even a small model; a day covers any download.
pub const STARTUP_TIMEOUT_SECONDS_RANGE: std::ops::RangeInclusive<i32> = 60..=86400;
/// Bounds of the drain windows (`readerConfig.drainTimeoutSeconds`,
/// `gateway.drainTimeoutSeconds`).
pub const DRAIN_TIMEOUT_SECONDS_RANGE: std::ops::RangeInclusive<i32> = 0..=86400;
/// The extended resource NVIDIA's device plugin advertises GPUs as.
pub const NVIDIA_GPU: &str = "nvidia.com/gpu";

/// What an application's model serves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Text generation: `/v1/chat/completions` and `/v1/completions`.
    #[default]
    Generate,
    /// Embeddings: `/v1/embeddings`.
    Embed,
}

impl Task {
    /// The name used in the CRD.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generate => "generate",
            Self::Embed => "embed",
        }
    }
}

impl ReaderConfig {
    /// The model name clients send and the engine serves.
    pub fn served_model_name(&self) -> &str {
        self.served_model_name
            .as_deref()
            .unwrap_or(&self.model_name)
    }

    /// The drain window in seconds: `drainTimeoutSeconds`, or the gateway's
    /// request timeout (the longest a request waits for its first byte, so
    /// an answer in progress may well take that long).
    pub fn effective_drain_timeout_seconds(&self, gateway: &GatewaySpec) -> i32 {
        self.drain_timeout_seconds
            .unwrap_or(gateway.queue.request_timeout_seconds)
    }
}

/// A PersistentVolumeClaim that keeps downloaded model weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelCacheSpec {
    /// Size of the claim, e.g. `20Gi`.
    pub size: Quantity,

    /// StorageClass of the claim; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub storage_class_name: Option<String>,

    /// Access mode of the claim. All pods of the application share it, so
    /// with more than one replica spread over nodes use `ReadWriteMany` (and a
    /// storage class that supports it). Cannot change once the claim exists.
    #[serde(default)]
    pub access_mode: CacheAccessMode,
}

/// How the model cache volume may be mounted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum CacheAccessMode {
    /// Mounted read-write by the pods of one node.
    #[default]
    ReadWriteOnce,
    /// Mounted read-write by pods on many nodes.
    ReadWriteMany,
}

impl CacheAccessMode {
    /// The value Kubernetes expects in `PersistentVolumeClaim.spec.accessModes`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadWriteOnce => "ReadWriteOnce",
            Self::ReadWriteMany => "ReadWriteMany",
        }
    }
}
