//! Observed state of an `InferenceStack`, written by the operator.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition type: the gateway and every application have all desired
/// replicas ready.
pub const CONDITION_READY: &str = "Ready";
/// Condition type: the operator applied a change that has not finished
/// rolling out.
pub const CONDITION_PROGRESSING: &str = "Progressing";
/// Condition type: the spec is invalid or a child object could not be
/// applied; the message says why.
pub const CONDITION_DEGRADED: &str = "Degraded";

/// What the operator last observed. It holds no timestamps other than the
/// conditions' transition times, so an unchanged stack is not rewritten.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InferenceStackStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready`, `Progressing` and `Degraded`, in the standard Kubernetes
    /// condition shape.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// The gateway's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewayStatus>,

    /// Each application's state, by application name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub applications: BTreeMap<String, ApplicationStatus>,

    /// Ready applications out of all, e.g. `2/3` (shown by `kubectl get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applications_ready: Option<String>,
}

impl InferenceStackStatus {
    /// The `applicationsReady` summary for `applications`: an application
    /// counts as ready when all its desired replicas are ready.
    pub fn applications_ready_summary(
        applications: &BTreeMap<String, ApplicationStatus>,
    ) -> String {
        let ready = applications
            .values()
            .filter(|app| app.ready_replicas >= app.replicas)
            .count();
        format!("{ready}/{}", applications.len())
    }
}

/// State of the gateway Deployment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayStatus {
    /// Gateway pods ready to serve.
    #[serde(default)]
    pub ready_replicas: i32,

    /// In-cluster URL of the client API, `http://<stack>-gateway.<namespace>:<port>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// State of one application's Deployment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationStatus {
    /// Desired pods.
    #[serde(default)]
    pub replicas: i32,

    /// Pods whose engine and reader are ready.
    #[serde(default)]
    pub ready_replicas: i32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_fully_ready_applications() {
        let mut apps = BTreeMap::new();
        apps.insert(
            "a".to_owned(),
            ApplicationStatus {
                replicas: 2,
                ready_replicas: 2,
            },
        );
        apps.insert(
            "b".to_owned(),
            ApplicationStatus {
                replicas: 2,
                ready_replicas: 1,
            },
        );
        apps.insert(
            "c".to_owned(),
            ApplicationStatus {
                replicas: 0,
                ready_replicas: 0,
            },
        );
        assert_eq!(
            InferenceStackStatus::applications_ready_summary(&apps),
            "2/3"
        );
    }
}
