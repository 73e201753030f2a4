//! The gateway's run-time configuration: queue limits and the routing table.
//!
//! The operator renders this as `gateway.json` in the stack's gateway
//! ConfigMap; `flightdeck up` writes the same file for local runs. The gateway
//! watches the file and reloads it without dropping queued or in-flight work.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// File name of the configuration inside the gateway ConfigMap / config dir.
pub const GATEWAY_CONFIG_FILE: &str = "gateway.json";

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayConfig {
    pub queue: QueueSettings,
    /// Client-visible model name -> where requests for it are queued.
    pub models: BTreeMap<String, ModelRoute>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueueSettings {
    /// Requests waiting per consumer group before the gateway answers 429.
    pub max_depth: u32,
    /// A request not answered (first byte) within this many seconds gets 504.
    pub request_timeout_seconds: u32,
    /// How often a leased request goes back to its queue when its reader
    /// vanishes before the first byte, before the client gets 503.
    #[serde(default = "default_max_redeliveries")]
    pub max_redeliveries: u32,
}

fn default_max_redeliveries() -> u32 {
    3
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            max_depth: 1024,
            request_timeout_seconds: 300,
            max_redeliveries: default_max_redeliveries(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelRoute {
    /// Consumer groups whose readers serve this model. A request goes to the
    /// group with the shortest queue.
    pub consumer_groups: Vec<String>,
    /// The engine kind behind the model (informational, shown in /v1/models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// What the model serves; the gateway answers an OpenAI-style 404 for a
    /// route the model does not serve instead of relaying it to an engine
    /// that lacks it (llama-server without `--embeddings`, TGI, ...).
    #[serde(default)]
    pub task: Task,
}

/// What an application's model serves: text generation (chat and
/// completions) or embeddings. An engine started for one does not serve the
/// other's routes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// `/v1/chat/completions` and `/v1/completions`.
    #[default]
    Generate,
    /// `/v1/embeddings`.
    Embed,
}

impl GatewayConfig {
    /// Every consumer group named by any route, sorted and de-duplicated.
    pub fn consumer_groups(&self) -> Vec<String> {
        let mut groups: Vec<String> = self
            .models
            .values()
            .flat_map(|route| route.consumer_groups.iter().cloned())
            .collect();
        groups.sort();
        groups.dedup();
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_shape() {
        let config: GatewayConfig = serde_json::from_str(
            r#"{"queue":{"maxDepth":8,"requestTimeoutSeconds":30},
                "models":{"smollm2":{"consumerGroups":["cpu","gpu"],"engine":"llamacpp"}}}"#,
        )
        .expect("valid config");
        assert_eq!(config.queue.max_redeliveries, 3);
        assert_eq!(
            config.models["smollm2"].task,
            Task::Generate,
            "task defaults to generate"
        );
        assert_eq!(config.consumer_groups(), vec!["cpu", "gpu"]);
    }

    #[test]
    fn rejects_unknown_fields() {
        let err = serde_json::from_str::<GatewayConfig>(
            r#"{"queue":{"maxDepth":8,"requestTimeoutSeconds":30,"bogus":1},"models":{}}"#,
        )
        .expect_err("unknown field must fail");
        assert!(err.to_string().contains("bogus"));
    }
}
