//! The routing table built from a `GatewayConfig`: model name -> consumer
//! groups, plus the pre-rendered `/v1/models` answer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flightdeck_protocol::gateway_config::{GatewayConfig, Task};
use serde::{Deserialize, Serialize};

/// Immutable snapshot; a reload swaps in a new one.
#[derive(Debug, Default)]
pub struct RoutingTable {
    models: HashMap<String, Route>,
    models_json: Bytes,
    pub request_timeout: Duration,
}

/// Where one model's requests go, and which client routes it serves.
#[derive(Debug)]
struct Route {
    groups: Vec<Arc<str>>,
    task: Task,
}

/// What a client route needs the model to serve.
pub fn task_of(path: &str) -> Task {
    if path == "/v1/embeddings" {
        Task::Embed
    } else {
        Task::Generate
    }
}

/// Why a request has no consumer group to go to.
#[derive(Debug, PartialEq, Eq)]
pub enum NoRoute {
    /// No such model.
    UnknownModel,
    /// The model exists but serves the other task (embeddings vs generation).
    WrongTask(Task),
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
                (
                    name.clone(),
                    Route {
                        groups,
                        task: route.task,
                    },
                )
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
            .map(|route| route.groups.as_slice())
            .filter(|groups| !groups.is_empty())
    }

    /// The consumer groups serving `model` on the client route `path`: an
    /// embedding model serves only /v1/embeddings, a generation model only
    /// the chat and completions routes.
    pub fn groups_for(&self, model: &str, path: &str) -> Result<&[Arc<str>], NoRoute> {
        let groups = self.groups(model).ok_or(NoRoute::UnknownModel)?;
        match self.models.get(model).map(|route| route.task) {
            Some(task) if task != task_of(path) => Err(NoRoute::WrongTask(task)),
            _ => Ok(groups),
        }
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
