//! `S-gateway` ConfigMap: the gateway's `gateway.json`.
//!
//! The gateway mounts the ConfigMap as a directory and reloads the file when
//! it changes, so routing changes need no restart of queued work.

use std::collections::BTreeMap;

use flightdeck_api::v1alpha1::{Task, ValidStack};
use flightdeck_protocol::gateway_config::{
    self, GatewayConfig, ModelRoute, QueueSettings, GATEWAY_CONFIG_FILE,
};
use k8s_openapi::api::core::v1::ConfigMap;

use crate::labels::Component;
use crate::meta::StackRef;
use crate::{names, BuildError};

/// The gateway's routing table and queue limits for `stack`: every
/// application's served model name routes to its consumer groups; several
/// applications serving the same name add their groups to one route. The
/// route's task is what the model serves (`validate()` guarantees that
/// applications sharing a name share the task), so the gateway can refuse
/// the other task's endpoints itself.
pub fn gateway_config(stack: &ValidStack) -> GatewayConfig {
    let queue = &stack.spec().gateway.queue;
    let mut models: BTreeMap<String, ModelRoute> = BTreeMap::new();
    for (name, app) in &stack.spec().applications {
        let route = models
            .entry(app.reader_config.served_model_name().to_owned())
            .or_insert_with(|| ModelRoute {
                consumer_groups: Vec::new(),
                engine: Some(app.engine.to_string()),
                task: route_task(app.reader_config.task),
            });
        for group in app.effective_consumer_groups(name) {
            if !route.consumer_groups.contains(&group) {
                route.consumer_groups.push(group);
            }
        }
        // One name served by different engines has no single engine.
        if route.engine.as_deref() != Some(app.engine.as_str()) {
            route.engine = None;
        }
    }
    for route in models.values_mut() {
        route.consumer_groups.sort();
    }
    GatewayConfig {
        queue: QueueSettings {
            // Validation keeps these positive; clamp rather than wrap if not.
            max_depth: u32::try_from(queue.max_depth.max(1)).unwrap_or(1),
            request_timeout_seconds: u32::try_from(queue.request_timeout_seconds.max(1))
                .unwrap_or(1),
            max_redeliveries: u32::try_from(queue.max_redeliveries.max(0)).unwrap_or(0),
        },
        models,
    }
}

/// The wire form of an application's task.
fn route_task(task: Task) -> gateway_config::Task {
    match task {
        Task::Generate => gateway_config::Task::Generate,
        Task::Embed => gateway_config::Task::Embed,
    }
}

/// `gateway.json` exactly as the ConfigMap holds it (pretty, with a final
/// newline, so `kubectl get cm -o yaml` reads well).
pub fn gateway_config_json(stack: &ValidStack) -> Result<String, BuildError> {
    let mut json = serde_json::to_string_pretty(&gateway_config(stack)).map_err(|source| {
        BuildError::Serialize {
            what: GATEWAY_CONFIG_FILE,
            source,
        }
    })?;
    json.push('\n');
    Ok(json)
}

/// The ConfigMap with `gateway.json`.
pub fn gateway_config_map(owner: &StackRef, config_json: &str) -> ConfigMap {
    ConfigMap {
        metadata: owner.metadata(names::gateway(&owner.name), Component::Config, None),
        data: Some(BTreeMap::from([(
            GATEWAY_CONFIG_FILE.to_owned(),
            config_json.to_owned(),
        )])),
        ..ConfigMap::default()
    }
}
