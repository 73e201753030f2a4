//! The stack's status, computed from what the API server returned.
//!
//! Pure functions: the reconciler hands in the applied Deployments and the
//! status currently stored, and gets the status to store. The result is
//! deterministic: the same cluster state gives the same status, and a
//! condition's `lastTransitionTime` only moves when its `status` changes, so
//! an unchanged stack is never rewritten (and never retriggers itself).

use std::collections::BTreeMap;

use flightdeck_api::v1alpha1::{
    ApplicationStatus, GatewayStatus, InferenceStackStatus, CONDITION_DEGRADED,
    CONDITION_PROGRESSING, CONDITION_READY,
};
use k8s_openapi::{
    api::apps::v1::Deployment,
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};

/// Condition reasons the operator writes (CamelCase, stable: alerting and
/// `kubectl wait` rely on them).
pub mod reason {
    pub const ALL_REPLICAS_READY: &str = "AllReplicasReady";
    pub const REPLICAS_NOT_READY: &str = "ReplicasNotReady";
    pub const ROLLING_OUT: &str = "RollingOut";
    pub const ROLLOUT_COMPLETE: &str = "RolloutComplete";
    pub const RECONCILED: &str = "Reconciled";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const RECONCILE_FAILED: &str = "ReconcileFailed";
}

/// What the reconciler observed after applying everything.
pub struct Observed<'a> {
    pub generation: Option<i64>,
    pub gateway: &'a Deployment,
    pub applications: BTreeMap<&'a str, &'a Deployment>,
    /// `http://<stack>-gateway.<namespace>:<port>`.
    pub endpoint: String,
}

/// Replica counts of one Deployment, as the rollout sees them.
struct Rollout {
    desired: i32,
    ready: i32,
    settled: bool,
}

impl Rollout {
    fn of(deployment: &Deployment) -> Self {
        let desired = deployment
            .spec
            .as_ref()
            .and_then(|spec| spec.replicas)
            .unwrap_or(1);
        let status = deployment.status.clone().unwrap_or_default();
        let ready = status.ready_replicas.unwrap_or(0);
        let generation_seen =
            status.observed_generation.unwrap_or(0) >= deployment.metadata.generation.unwrap_or(0);
        let settled = generation_seen
            && status.updated_replicas.unwrap_or(0) >= desired
            && status.replicas.unwrap_or(0) <= desired
            && ready >= desired;
        Rollout {
            desired,
            ready,
            settled,
        }
    }
}

/// The status of a stack whose objects were all applied.
pub fn reconciled(
    observed: &Observed<'_>,
    previous: &InferenceStackStatus,
    now: Timestamp,
) -> InferenceStackStatus {
    let gateway = Rollout::of(observed.gateway);
    let applications: BTreeMap<&str, Rollout> = observed
        .applications
        .iter()
        .map(|(name, deployment)| (*name, Rollout::of(deployment)))
        .collect();

    let all = std::iter::once(("gateway", &gateway))
        .chain(applications.iter().map(|(name, rollout)| (*name, rollout)));
    let not_ready: Vec<String> = all
        .clone()
        .filter(|(_, rollout)| rollout.ready < rollout.desired)
        .map(|(name, rollout)| format!("{name} {}/{}", rollout.ready, rollout.desired))
        .collect();
    let rolling: Vec<&str> = all
        .filter(|(_, rollout)| !rollout.settled)
        .map(|(name, _)| name)
        .collect();

    let generation = observed.generation;
    let ready = if not_ready.is_empty() {
        condition(
            CONDITION_READY,
            true,
            reason::ALL_REPLICAS_READY,
            "every Deployment has all its replicas ready".into(),
            generation,
        )
    } else {
        condition(
            CONDITION_READY,
            false,
            reason::REPLICAS_NOT_READY,
            format!("waiting for ready replicas: {}", not_ready.join(", ")),
            generation,
        )
    };
    let progressing = if rolling.is_empty() {
        condition(
            CONDITION_PROGRESSING,
            false,
            reason::ROLLOUT_COMPLETE,
            "every Deployment runs the current pod template".into(),
            generation,
        )
    } else {
        condition(
            CONDITION_PROGRESSING,
            true,
            reason::ROLLING_OUT,
            format!("rolling out: {}", rolling.join(", ")),
            generation,
        )
    };
    let degraded = condition(
        CONDITION_DEGRADED,
        false,
        reason::RECONCILED,
        "every object of the stack is applied".into(),
        generation,
    );

    let application_status: BTreeMap<String, ApplicationStatus> = applications
        .iter()
        .map(|(name, rollout)| {
            (
                (*name).to_owned(),
                ApplicationStatus {
                    replicas: rollout.desired,
                    ready_replicas: rollout.ready,
                },
            )
        })
        .collect();
    InferenceStackStatus {
        observed_generation: generation,
        conditions: with_transitions(vec![ready, progressing, degraded], previous, now),
        gateway: Some(GatewayStatus {
            ready_replicas: gateway.ready,
            endpoint: Some(observed.endpoint.clone()),
        }),
        applications_ready: Some(InferenceStackStatus::applications_ready_summary(
            &application_status,
        )),
        applications: application_status,
    }
}

/// The status of a stack that could not be reconciled: `Degraded` with the
/// reason; what was last observed of its workloads is kept (the previous
/// generation's pods still serve).
pub fn failed(
    previous: &InferenceStackStatus,
    generation: Option<i64>,
    failure_reason: &str,
    message: &str,
    now: Timestamp,
) -> InferenceStackStatus {
    let kept = |type_: &str| {
        previous
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
            .cloned()
            .unwrap_or_else(|| {
                condition(type_, false, failure_reason, message.to_owned(), generation)
            })
    };
    let conditions = vec![
        kept(CONDITION_READY),
        kept(CONDITION_PROGRESSING),
        condition(
            CONDITION_DEGRADED,
            true,
            failure_reason,
            message.to_owned(),
            generation,
        ),
    ];
    InferenceStackStatus {
        observed_generation: generation,
        conditions: with_transitions(conditions, previous, now),
        ..previous.clone()
    }
}

fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: if status { "True" } else { "False" }.to_owned(),
        reason: reason.to_owned(),
        message,
        observed_generation: generation,
        // Filled in by `with_transitions`.
        last_transition_time: Time(Timestamp::UNIX_EPOCH),
    }
}

/// Sets each condition's `lastTransitionTime`: kept from `previous` when
/// the condition's status is unchanged, `now` (whole seconds, as the API
/// server stores it) otherwise.
fn with_transitions(
    mut conditions: Vec<Condition>,
    previous: &InferenceStackStatus,
    now: Timestamp,
) -> Vec<Condition> {
    let now = Timestamp::from_second(now.as_second()).unwrap_or(now);
    for condition in &mut conditions {
        let before = previous
            .conditions
            .iter()
            .find(|c| c.type_ == condition.type_);
        condition.last_transition_time = match before {
            Some(before) if before.status == condition.status => {
                before.last_transition_time.clone()
            }
            _ => Time(now),
        };
    }
    conditions
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn deployment(desired: i32, ready: i32, generation: i64, observed: i64) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                generation: Some(generation),
                ..ObjectMeta::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(desired),
                ..DeploymentSpec::default()
            }),
            status: Some(DeploymentStatus {
                observed_generation: Some(observed),
                replicas: Some(desired),
                updated_replicas: Some(desired),
                ready_replicas: Some(ready),
                ..DeploymentStatus::default()
            }),
        }
    }

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).expect("valid time")
    }

    fn find<'a>(status: &'a InferenceStackStatus, type_: &str) -> &'a Condition {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
            .expect("condition present")
    }

    #[test]
    fn ready_when_every_deployment_is_ready() {
        let gateway = deployment(2, 2, 1, 1);
        let app = deployment(1, 1, 3, 3);
        let observed = Observed {
            generation: Some(4),
            gateway: &gateway,
            applications: BTreeMap::from([("llama", &app)]),
            endpoint: "http://demo-gateway.llm:8080".into(),
        };
        let status = reconciled(&observed, &InferenceStackStatus::default(), at(100));
        assert_eq!(status.observed_generation, Some(4));
        assert_eq!(find(&status, CONDITION_READY).status, "True");
        assert_eq!(find(&status, CONDITION_PROGRESSING).status, "False");
        assert_eq!(find(&status, CONDITION_DEGRADED).status, "False");
        let gateway_status = status.gateway.clone().expect("gateway status");
        assert_eq!(gateway_status.ready_replicas, 2);
        assert_eq!(
            gateway_status.endpoint.as_deref(),
            Some("http://demo-gateway.llm:8080")
        );
        assert_eq!(
            status.applications["llama"],
            ApplicationStatus {
                replicas: 1,
                ready_replicas: 1
            }
        );
        assert_eq!(status.applications_ready.as_deref(), Some("1/1"));
    }

    #[test]
    fn names_what_is_not_ready_and_still_rolling() {
        let gateway = deployment(2, 2, 1, 1);
        let app = deployment(3, 1, 2, 1);
        let observed = Observed {
            generation: Some(2),
            gateway: &gateway,
            applications: BTreeMap::from([("llama", &app)]),
            endpoint: "http://demo-gateway.llm:8080".into(),
        };
        let status = reconciled(&observed, &InferenceStackStatus::default(), at(100));
        let ready = find(&status, CONDITION_READY);
        assert_eq!(ready.status, "False");
        assert_eq!(ready.message, "waiting for ready replicas: llama 1/3");
        assert_eq!(
            find(&status, CONDITION_PROGRESSING).message,
            "rolling out: llama"
        );
        assert_eq!(status.applications_ready.as_deref(), Some("0/1"));
    }

    #[test]
    fn transition_time_moves_only_when_the_status_flips() {
        let gateway = deployment(1, 0, 1, 1);
        let observed = Observed {
            generation: Some(1),
            gateway: &gateway,
            applications: BTreeMap::new(),
            endpoint: "http://s-gateway.n:8080".into(),
        };
        let first = reconciled(&observed, &InferenceStackStatus::default(), at(100));
        let again = reconciled(&observed, &first, at(200));
        assert_eq!(first, again, "an unchanged stack gives an identical status");

        let ready_gateway = deployment(1, 1, 1, 1);
        let observed = Observed {
            gateway: &ready_gateway,
            ..observed
        };
        let flipped = reconciled(&observed, &again, at(300));
        assert_eq!(
            find(&flipped, CONDITION_READY).last_transition_time,
            Time(at(300))
        );
        assert_eq!(
            find(&flipped, CONDITION_DEGRADED).last_transition_time,
            Time(at(100))
        );
    }

    #[test]
    fn failure_marks_degraded_and_keeps_what_was_observed() {
        let gateway = deployment(1, 1, 1, 1);
        let observed = Observed {
            generation: Some(1),
            gateway: &gateway,
            applications: BTreeMap::new(),
            endpoint: "http://s-gateway.n:8080".into(),
        };
        let healthy = reconciled(&observed, &InferenceStackStatus::default(), at(100));
        let message = "spec.applications.a.replicas: must be at least 0";
        let broken = failed(&healthy, Some(2), reason::INVALID_SPEC, message, at(200));
        let degraded = find(&broken, CONDITION_DEGRADED);
        assert_eq!(
            (degraded.status.as_str(), degraded.reason.as_str()),
            ("True", "InvalidSpec")
        );
        assert_eq!(degraded.message, message);
        assert_eq!(degraded.last_transition_time, Time(at(200)));
        assert_eq!(
            find(&broken, CONDITION_READY),
            find(&healthy, CONDITION_READY)
        );
        assert_eq!(broken.gateway, healthy.gateway);
        assert_eq!(broken.observed_generation, Some(2));
        assert_eq!(
            failed(&broken, Some(2), reason::INVALID_SPEC, message, at(300)),
            broken
        );
    }
}
