//! The `InferenceStack` resource and its top-level spec.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::LocalObjectReference;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::application::ApplicationSpec;
use super::gateway::GatewaySpec;
use super::status::InferenceStackStatus;

/// An InferenceStack deploys open-source LLMs behind one OpenAI-compatible
/// gateway. Clients name a model in the request's `model` field; the gateway
/// queues the request for the consumer groups serving that model, and reader
/// sidecars next to each inference engine pull work from those queues.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "flightdeck.dev",
    version = "v1alpha1",
    kind = "InferenceStack",
    plural = "inferencestacks",
    singular = "inferencestack",
    namespaced,
    status = "InferenceStackStatus",
    derive = "PartialEq",
    shortname = "istack",
    category = "flightdeck",
    doc = "An InferenceStack deploys open-source LLMs (vLLM, SGLang, llama.cpp, TGI) behind one OpenAI-compatible gateway.",
    // Raw JSON columns: the structured `printcolumn(...)` form repeats
    // attribute keys, which clippy's duplicated_attributes lint rejects.
    printcolumn = r#"{"name":"Ready","type":"string","description":"Whether the gateway and every application have all their replicas ready","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Endpoint","type":"string","description":"In-cluster URL of the gateway's OpenAI-compatible API","jsonPath":".status.gateway.endpoint"}"#,
    printcolumn = r#"{"name":"Applications","type":"string","description":"Ready applications out of all applications","jsonPath":".status.applicationsReady"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct InferenceStackSpec {
    /// The gateway: the OpenAI-compatible entry point for clients, and the
    /// queues that readers pull work from. Every field has a default.
    #[serde(default)]
    pub gateway: GatewaySpec,

    /// Applications by name. Each application runs one engine serving one
    /// model, with a reader sidecar in every pod. The name is a DNS label of
    /// at most 40 characters; it names the Deployment `<stack>-<name>`.
    //
    // Only the length is a CEL rule: a per-character rule (a regex over every
    // key) risks exceeding the API server's CEL cost budget, which would make
    // the whole CRD uninstallable. The DNS-label form is checked by
    // `validate()`: the operator reports a Degraded condition naming the key.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-validations" = [
        {
            "rule": "self.all(name, size(name) <= 40)",
            "message": "application names must be at most 40 characters"
        }
    ]))]
    pub applications: BTreeMap<String, ApplicationSpec>,

    /// Secrets for pulling the gateway, reader and engine images, added to
    /// every pod the stack runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
}
