//! The kube-runtime Controller for the kind named in watches.yaml.
//!
//! Stacks are watched as untyped objects (`DynamicObject`) and parsed in the
//! reconciler: a stack that does not deserialize is reported on that stack
//! instead of failing the watch of every stack (the list call itself would
//! fail on one bad item if the watch were typed).

use std::{future::Future, sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    api::{DynamicObject, ListParams},
    runtime::{controller, watcher, Controller},
    Api,
};

use crate::{
    error::{Error, Result},
    reconcile::{
        error_policy,
        orphans::{MANAGED_BY, MANAGED_BY_LABEL},
        reconcile, Context,
    },
    watches::Watch,
};

/// Checks that the kind is served and the selector is valid, by listing
/// once: better a clear refusal at start than a watch retrying forever.
pub async fn check_access(ctx: &Context, watch: &Watch) -> Result<()> {
    let api: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &ctx.resource);
    let mut params = ListParams::default().limit(1);
    if let Some(selector) = &watch.label_selector {
        params = params.labels(selector);
    }
    api.list(&params)
        .await
        .map(|_| ())
        .map_err(|source| Error::Kube {
            verb: "list",
            kind: ctx.resource.kind.clone(),
            namespace: "(all)".into(),
            name: watch.label_selector.clone().unwrap_or_default(),
            source: Box::new(source),
        })
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
    let owned_watch =
        watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
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
