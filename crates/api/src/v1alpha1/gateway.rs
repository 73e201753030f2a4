//! Gateway settings of an `InferenceStack`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use flightdeck_protocol::reader_env::GATEWAY_CLIENT_PORT;

/// The gateway: OpenAI-compatible endpoints for clients and one bounded queue
/// per consumer group for readers to pull from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySpec {
    /// Gateway pods. Readers pull from every gateway pod, so any replica can
    /// take client requests. 0 stops the gateway.
    #[serde(default = "default_gateway_replicas")]
    #[schemars(range(min = 0))]
    pub replicas: i32,

    /// Gateway container image; defaults to the image the operator was
    /// released with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image: Option<String>,

    /// CPU and memory for the gateway container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// The Service clients reach the gateway through.
    #[serde(default)]
    pub service: GatewayServiceSpec,

    /// Optional Ingress for the client API. The readers' pull API is never
    /// exposed through it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,

    /// Queue limits, per consumer group.
    #[serde(default)]
    pub queue: QueueSpec,

    /// Client API keys. When set, clients must send `Authorization: Bearer
    /// <key>` with one of the keys in the Secret; without it the gateway is
    /// open to anyone who can reach it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_keys: Option<ApiKeysSpec>,

    /// Seconds a stopping gateway pod (a roll, a scale-down) keeps serving
    /// the client requests it has already accepted, queued and streaming,
    /// after it stopped taking new ones. Defaults to
    /// `queue.requestTimeoutSeconds`; give long streamed answers as long as
    /// they take. 0 stops at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 86400))]
    pub drain_timeout_seconds: Option<i32>,
}

fn default_gateway_replicas() -> i32 {
    1
}

impl Default for GatewaySpec {
    fn default() -> Self {
        Self {
            replicas: default_gateway_replicas(),
            image: None,
            resources: None,
            service: GatewayServiceSpec::default(),
            ingress: None,
            queue: QueueSpec::default(),
            api_keys: None,
            drain_timeout_seconds: None,
        }
    }
}

impl GatewaySpec {
    /// The drain window in seconds: `drainTimeoutSeconds`, or the request
    /// timeout (a queued request may wait that long for its first byte).
    pub fn effective_drain_timeout_seconds(&self) -> i32 {
        self.drain_timeout_seconds
            .unwrap_or(self.queue.request_timeout_seconds)
    }
}

/// How the gateway's client port is published.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayServiceSpec {
    /// Kubernetes Service type.
    #[serde(default, rename = "type")]
    pub type_: ServiceType,

    /// Port of the Service (the gateway container itself always listens on
    /// 8080).
    #[serde(default = "default_service_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
}

fn default_service_port() -> i32 {
    i32::from(GATEWAY_CLIENT_PORT)
}

impl Default for GatewayServiceSpec {
    fn default() -> Self {
        Self {
            type_: ServiceType::default(),
            port: default_service_port(),
        }
    }
}

/// Kubernetes Service type for the gateway.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ServiceType {
    /// Reachable inside the cluster only.
    #[default]
    ClusterIP,
    /// Also published on a port of every node.
    NodePort,
    /// Also published through the cloud provider's load balancer.
    LoadBalancer,
}

impl ServiceType {
    /// The value Kubernetes expects in `Service.spec.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClusterIP => "ClusterIP",
            Self::NodePort => "NodePort",
            Self::LoadBalancer => "LoadBalancer",
        }
    }
}

/// An Ingress in front of the gateway's client port.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// IngressClass to use; the cluster's default class when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub class_name: Option<String>,

    /// Host name clients use, e.g. `llm.example.com`.
    #[schemars(length(min = 1, max = 253))]
    pub host: String,

    /// TLS for the host; the certificate lives in a Secret of the stack's
    /// namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<IngressTls>,

    /// Annotations for the Ingress, e.g. for the controller's timeouts. Long
    /// streamed answers need generous read timeouts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// TLS settings of the Ingress.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressTls {
    /// Secret of type kubernetes.io/tls holding the certificate for the host.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}

/// Queue limits. Each consumer group has its own bounded queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueSpec {
    /// Requests that may wait per consumer group; beyond that clients get
    /// `429 Too Many Requests` with `Retry-After`.
    #[serde(default = "default_max_depth")]
    #[schemars(range(min = 1))]
    pub max_depth: i32,

    /// Seconds a request may wait for its first answer byte before the
    /// client gets `504`.
    #[serde(default = "default_request_timeout_seconds")]
    #[schemars(range(min = 1))]
    pub request_timeout_seconds: i32,

    /// How often a request goes back to the head of its queue when the
    /// reader that took it disappears before answering; after that the client
    /// gets `503`.
    #[serde(default = "default_max_redeliveries")]
    #[schemars(range(min = 0))]
    pub max_redeliveries: i32,
}

fn default_max_depth() -> i32 {
    1024
}

fn default_request_timeout_seconds() -> i32 {
    300
}

fn default_max_redeliveries() -> i32 {
    3
}

impl Default for QueueSpec {
    fn default() -> Self {
        Self {
            max_depth: default_max_depth(),
            request_timeout_seconds: default_request_timeout_seconds(),
            max_redeliveries: default_max_redeliveries(),
        }
    }
}

/// Where the client API keys live.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeysSpec {
    /// Secret in the stack's namespace; every key of it holds one accepted
    /// client API key. Keys are re-read when the Secret changes.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}
