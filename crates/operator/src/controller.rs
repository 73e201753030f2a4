//! The kube-runtime Controller for the kind named in watches.yaml.
//!
//! Stacks are watched as untyped objects (`DynamicObject`) and parsed in the
//! reconciler: a stack that does not deserialize is reported on that stack
//! instead of failing the watch of every stack (the list call itself would
//! fail on one bad item if the watch were typed).

use std::{future::Future, sync::Arc, time::Duration};

use flightdeck_api::watches::Watch;
use flightdeck_build::labels;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    api::{ApiResource, DynamicObject, ListParams},
    runtime::{controller, watcher, Controller},
    Api,
};

use crate::reconcile::{error_policy, reconcile, Context};

/// Lists the watched kind once (one item, with the label selector): the
/// start-up check that the API server serves the kind, lets this operator
/// list it, and accepts the selector.
pub async fn list_watched(ctx: &Context, watch: &Watch) -> Result<(), kube::Error> {
    let api: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &ctx.resource);
    let mut params = ListParams::default().limit(1);
    if let Some(selector) = &watch.label_selector {
        params = params.labels(selector);
    }
    api.list(&params).await.map(|_| ())
}

/// Why the watched kind cannot be listed yet, when waiting can fix it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotYetWatchable {
    /// 404: the CRD (or this version of it) is not installed yet. Installing
    /// the operator before its CRD is an ordinary order on a cluster.
    KindNotServed,
    /// 401/403: the operator's RBAC is not (yet) in place.
    NotPermitted,
    /// No useful answer: connection refused or reset, a timeout, 429, 5xx.
    ApiServerUnavailable,
}

impl NotYetWatchable {
    /// What `error` from [`list_watched`] means at start-up: `None` when
    /// waiting cannot help (400: the API server rejects watches.yaml's label
    /// selector), else what the operator is waiting for.
    pub fn of(error: &kube::Error) -> Option<Self> {
        match error {
            kube::Error::Api(status) => match status.code {
                400 => None,
                404 => Some(Self::KindNotServed),
                401 | 403 => Some(Self::NotPermitted),
                _ => Some(Self::ApiServerUnavailable),
            },
            _ => Some(Self::ApiServerUnavailable),
        }
    }

    /// What the operator waits for, for the log and `/readyz`.
    pub fn describe(self, resource: &ApiResource) -> String {
        let crd = format!("{}.{}", resource.plural, resource.group);
        match self {
            Self::KindNotServed => format!(
                "waiting for the CRD {crd} to serve {} {} (not installed yet?)",
                resource.api_version, resource.kind
            ),
            Self::NotPermitted => format!(
                "waiting for permission to list {crd} (the operator's RBAC is not in place yet?)"
            ),
            Self::ApiServerUnavailable => {
                format!("waiting for the API server to answer a list of {crd}")
            }
        }
    }
}

/// Runs the controller until `shutdown` resolves, then lets running
/// reconciles finish.
pub async fn run(
    ctx: Arc<Context>,
    watch: &Watch,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let stacks: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &ctx.resource);
    let mut stack_watch = watcher::Config::default();
    if let Some(selector) = &watch.label_selector {
        stack_watch = stack_watch.labels(selector);
    }
    // Only our own Deployments: a cluster's other Deployments never enter
    // this process's memory.
    let owned_watch = watcher::Config::default().labels(&labels::managed_selector());
    let controller = Controller::new_with(stacks, stack_watch, ctx.resource.clone())
        .owns(Api::<Deployment>::all(ctx.client.clone()), owned_watch)
        .with_config(controller::Config::default().concurrency(watch.max_concurrent_reconciles))
        .graceful_shutdown_on(shutdown);

    let store = controller.store();
    let metrics = ctx.metrics.clone();
    let gauge = tokio::spawn(async move {
        loop {
            metrics
                .stacks_managed
                .set(i64::try_from(store.state().len()).unwrap_or(i64::MAX));
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });

    controller
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok(_) => {}
                // Logged (and reported) by the reconciler itself.
                Err(controller::Error::ReconcilerFailed(_, _)) => {}
                // A Deployment owned by a stack this process does not
                // watch (another operator's selector): not ours.
                Err(controller::Error::ObjectNotFound(object)) => {
                    tracing::debug!(%object, "owner not watched by this operator");
                }
                Err(error) => tracing::warn!(%error, "controller watch error (retrying)"),
            }
        })
        .await;
    gauge.abort();
}

#[cfg(test)]
mod tests {
    use flightdeck_api::v1alpha1::InferenceStack;

    use super::*;

    fn api_error(code: u16) -> kube::Error {
        let status = kube::core::Status::failure("refused", "Refused").with_code(code);
        kube::Error::Api(Box::new(status))
    }

    #[test]
    fn a_missing_crd_or_permission_is_waited_for_and_a_bad_selector_is_not() {
        assert_eq!(
            NotYetWatchable::of(&api_error(404)),
            Some(NotYetWatchable::KindNotServed)
        );
        assert_eq!(
            NotYetWatchable::of(&api_error(403)),
            Some(NotYetWatchable::NotPermitted)
        );
        assert_eq!(
            NotYetWatchable::of(&api_error(503)),
            Some(NotYetWatchable::ApiServerUnavailable)
        );
        assert_eq!(
            NotYetWatchable::of(&kube::Error::LinesCodecMaxLineLengthExceeded),
            Some(NotYetWatchable::ApiServerUnavailable)
        );
        assert_eq!(NotYetWatchable::of(&api_error(400)), None);
    }

    #[test]
    fn the_wait_names_the_crd() {
        let resource = ApiResource::erase::<InferenceStack>(&());
        let text = NotYetWatchable::KindNotServed.describe(&resource);
        assert!(
            text.contains("CRD inferencestacks.flightdeck.dev to serve flightdeck.dev/v1alpha1 InferenceStack"),
            "{text}"
        );
    }
}
