//! The routing table built from a `GatewayConfig`: model name -> consumer
//! groups, plus the pre-rendered `/v1/models` answer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flightdeck_protocol::gateway_config::GatewayConfig;
use serde::{Deserialize, Serialize};

/// Immutable snapshot; a reload swaps in a new one.
#[derive(Debug, Default)]
pub struct RoutingTable {
    models: HashMap<String, Vec<Arc<str>>>,
    models_json: Bytes,
    pub request_timeout: Duration,
}

#[derive(Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: Vec<ModelEntry<'a>>,
}

#[derive(Serialize)]
struct ModelEntry<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'a str,
}

impl RoutingTable {
    pub fn from_config(config: &GatewayConfig) -> Self {
        let models = config
            .models
            .iter()
            .map(|(name, route)| {
                let groups = route
                    .consumer_groups
                    .iter()
                    .map(|g| Arc::from(g.as_str()))
                    .collect();
                (name.clone(), groups)
            })
            .collect();
        // BTreeMap iteration: the list is sorted by model name.
        let list = ModelList {
            object: "list",
            data: config
                .models
                .iter()
                .map(|(name, route)| ModelEntry {
                    id: name,
                    object: "model",
                    created: 0,
                    owned_by: route.engine.as_deref().unwrap_or("flightdeck"),
                })
                .collect(),
        };
        let models_json = serde_json::to_vec(&list)
            .map(Bytes::from)
            .unwrap_or_default();
        Self {
            models,
            models_json,
            request_timeout: Duration::from_secs(u64::from(config.queue.request_timeout_seconds)),
        }
    }

    /// The consumer groups serving `model`.
    pub fn groups(&self, model: &str) -> Option<&[Arc<str>]> {
        self.models
            .get(model)
            .map(Vec::as_slice)
            .filter(|groups| !groups.is_empty())
    }

    /// `GET /v1/models` body (OpenAI list shape).
    pub fn models_json(&self) -> Bytes {
        self.models_json.clone()
    }
}

/// The only fields the gateway reads from a client body. Everything else is
/// skipped by the parser (still validated as JSON) and relayed unchanged.
#[derive(Deserialize)]
pub struct RoutingFields<'a> {
    #[serde(borrow)]
    pub model: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    pub stream: Option<bool>,
}
