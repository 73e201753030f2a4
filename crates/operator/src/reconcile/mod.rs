//! The reconcile pipeline of one InferenceStack:
//! read -> validate (pure) -> build (pure) -> apply -> delete orphans -> status.

pub mod apply;
pub mod backoff;
pub mod events;
pub mod orphans;
pub mod status;
pub mod token;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use flightdeck_api::v1alpha1::{validate, InferenceStack, InferenceStackStatus, ValidStack};
use flightdeck_build::{build, names, ApplicationObjects, BuildContext, StackObjects};
use k8s_openapi::{api::apps::v1::Deployment, jiff::Timestamp};
use kube::{
    api::{ApiResource, DynamicObject, Patch, PatchParams},
    runtime::{
        controller::Action,
        events::{Recorder, Reporter},
    },
    Api, Client, Resource, ResourceExt,
};

use crate::{
    error::{Category, ReconcileError},
    metrics::Metrics,
};
use apply::{Applier, FIELD_MANAGER};
use backoff::Backoff;
use events::StackEvents;
use orphans::OrphanSweeper;

/// Container images the operator puts in every stack.
#[derive(Clone, Debug)]
pub struct Images {
    pub gateway: String,
    pub reader: String,
}

/// Everything a reconcile needs, shared by all of them.
pub struct Context {
    pub client: Client,
    /// The reconciled kind, for status patches and Events.
    pub resource: ApiResource,
    pub images: Images,
    pub recorder: Recorder,
    pub metrics: Metrics,
    pub backoff: Backoff,
    /// How often a healthy stack is reconciled without any change.
    pub reconcile_period: Duration,
}

/// Name the operator reports its Events under.
pub const REPORTING_CONTROLLER: &str = "flightdeck-operator";

impl Context {
    /// The context of every reconcile, around `client` (the API server's, or
    /// a mocked one in tests). `instance` names this replica in its Events.
    pub fn new(
        client: Client,
        images: Images,
        instance: String,
        metrics: Metrics,
        reconcile_period: Duration,
    ) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: REPORTING_CONTROLLER.into(),
                instance: Some(instance),
            },
        );
        Self {
            client,
            resource: ApiResource::erase::<InferenceStack>(&()),
            images,
            recorder,
            metrics,
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(300)),
            reconcile_period,
        }
    }
}

/// Reconciles one stack; the controller calls this.
#[tracing::instrument(skip_all, fields(stack = %key_of(&object)))]
pub async fn reconcile(
    object: Arc<DynamicObject>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let timer = ctx.metrics.reconcile_duration.start_timer();
    let result = StackReconcile::new(&object, &ctx)?.run().await;
    timer.observe_duration();
    ctx.metrics.count_reconcile(
        result
            .as_ref()
            .map(|_| ())
            .map_err(ReconcileError::category),
    );
    let key = key_of(&object);
    match &result {
        Ok(_) => ctx.backoff.reset(&key),
        // Already reported (status + Event) when the status changed.
        Err(error) if error.category() == Category::InvalidSpec => {
            tracing::info!(%error, "invalid stack: waiting for a change");
        }
        Err(error) => {
            tracing::warn!(%error, category = error.category().as_str(), "reconcile failed");
            let events = StackEvents {
                recorder: &ctx.recorder,
                stack: object.object_ref(&ctx.resource),
            };
            events
                .warning(error.event_reason(), "Reconcile", error.to_string())
                .await;
        }
    }
    result
}

/// What the controller does after a failed reconcile: an invalid spec waits
/// for the object to change; anything else retries with per-object backoff.
pub fn error_policy(
    object: Arc<DynamicObject>,
    error: &ReconcileError,
    ctx: Arc<Context>,
) -> Action {
    match error.category() {
        Category::InvalidSpec => Action::await_change(),
        Category::Transient | Category::Forbidden | Category::Internal => {
            Action::requeue(ctx.backoff.next_delay(&key_of(&object)))
        }
    }
}

fn key_of(object: &DynamicObject) -> String {
    format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    )
}

/// One pass over one stack.
struct StackReconcile<'a> {
    ctx: &'a Context,
    object: &'a DynamicObject,
    namespace: String,
    name: String,
    generation: Option<i64>,
    /// The status as currently stored (default if absent or unreadable).
    previous: InferenceStackStatus,
    events: StackEvents<'a>,
}

impl<'a> StackReconcile<'a> {
    fn new(object: &'a DynamicObject, ctx: &'a Context) -> Result<Self, ReconcileError> {
        let namespace = object
            .namespace()
            .ok_or(ReconcileError::MissingMetadata { what: "namespace" })?;
        let name = object
            .metadata
            .name
            .clone()
            .ok_or(ReconcileError::MissingMetadata { what: "name" })?;
        let previous = object
            .data
            .get("status")
            .and_then(|status| serde_json::from_value(status.clone()).ok())
            .unwrap_or_default();
        Ok(Self {
            ctx,
            object,
            namespace,
            name,
            generation: object.metadata.generation,
            previous,
            events: StackEvents {
                recorder: &ctx.recorder,
                stack: object.object_ref(&ctx.resource),
            },
        })
    }

    /// read -> validate -> reader token -> build -> apply -> sweep -> status.
    async fn run(self) -> Result<Action, ReconcileError> {
        // Parse here, not in the watch: a stack this version cannot read is
        // reported on that stack and never stalls the watch of the others.
        let stack = match parse_stack(self.object) {
            Ok(stack) => stack,
            Err(source) => {
                let message = format!("the object cannot be read as an InferenceStack: {source}");
                return self
                    .invalid(
                        message,
                        ReconcileError::Unreadable {
                            namespace: self.namespace.clone(),
                            name: self.name.clone(),
                            source,
                        },
                    )
                    .await;
            }
        };
        let stack = match validate(&stack) {
            Ok(stack) => stack,
            Err(fields) => {
                let message = fields
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                return self
                    .invalid(
                        message,
                        ReconcileError::InvalidSpec {
                            namespace: self.namespace.clone(),
                            name: self.name.clone(),
                            fields,
                        },
                    )
                    .await;
            }
        };

        let secret_name = names::reader_token_secret(stack.name());
        let token = token::ensure(&self.ctx.client, stack.namespace(), &secret_name).await?;
        let build_context = BuildContext {
            gateway_image: self.ctx.images.gateway.clone(),
            reader_image: self.ctx.images.reader.clone(),
            reader_token: token.token,
        };
        let objects = match build(&stack, &build_context) {
            Ok(objects) => objects,
            Err(source) => {
                return self
                    .invalid(
                        source.to_string(),
                        ReconcileError::Build {
                            namespace: self.namespace.clone(),
                            name: self.name.clone(),
                            source,
                        },
                    )
                    .await;
            }
        };
        let applied = match self.apply(&stack, objects).await {
            Ok(applied) => applied,
            Err(error) => {
                // Worth a Degraded condition too: the stack is only partly
                // applied. The Event and the retry happen in `reconcile`.
                let status = status::failed(
                    &self.previous,
                    self.generation,
                    status::reason::RECONCILE_FAILED,
                    &error.to_string(),
                    Timestamp::now(),
                );
                if let Err(status_error) = self.write_status(&status).await {
                    tracing::warn!(%status_error, "writing the Degraded status failed");
                }
                return Err(error);
            }
        };
        if token.generated {
            self.events
                .normal(
                    "ReaderTokenCreated",
                    "Create",
                    format!("generated the reader token in Secret {secret_name}"),
                )
                .await;
        }
        for deleted in &applied.deleted {
            self.events
                .normal(
                    "OrphanDeleted",
                    "Delete",
                    format!("deleted {deleted}: no longer in the spec"),
                )
                .await;
        }

        let observed = status::Observed {
            generation: self.generation,
            gateway: &applied.gateway,
            applications: applied
                .applications
                .iter()
                .map(|(name, deployment)| (name.as_str(), deployment))
                .collect(),
            endpoint: names::gateway_endpoint(
                stack.name(),
                stack.namespace(),
                stack.spec().gateway.service.port,
            ),
        };
        let status = status::reconciled(&observed, &self.previous, Timestamp::now());
        let generation_is_new = self.previous.observed_generation != self.generation;
        let became_ready = is_true(&status, flightdeck_api::v1alpha1::CONDITION_READY)
            && !is_true(&self.previous, flightdeck_api::v1alpha1::CONDITION_READY);
        if self.write_status(&status).await? {
            if generation_is_new {
                self.events
                    .normal(
                        "Reconciled",
                        "Apply",
                        format!(
                            "applied generation {} ({} applications)",
                            self.generation.unwrap_or_default(),
                            applied.applications.len()
                        ),
                    )
                    .await;
            }
            if became_ready {
                self.events
                    .normal(
                        "StackReady",
                        "Reconcile",
                        "every replica of the stack is ready".into(),
                    )
                    .await;
            }
        }
        Ok(Action::requeue(self.ctx.reconcile_period))
    }

    /// Applies every built object in dependency order, then deletes the
    /// children of every applied kind that the spec no longer names.
    ///
    /// Dependency order: what a pod refers to exists before the pod's
    /// Deployment does (its ServiceAccount, the token Secret, the gateway's
    /// ConfigMap, the Service readers resolve, the model cache claim), and
    /// the Ingress comes last, after the Service it routes to. One object at
    /// a time: the order is then what the API server sees, and a failure
    /// stops the pass before anything that depends on the failed object.
    async fn apply(
        &self,
        stack: &ValidStack,
        objects: StackObjects,
    ) -> Result<Applied, ReconcileError> {
        let mut applier = Applier::new(&self.ctx.client, &self.ctx.metrics, stack.namespace());
        // No `..`: a kind added to StackObjects but not applied here is a
        // compile error (an unused binding), not a silently missing object;
        // and what is applied goes through `applier`, whose record is all
        // the sweep works from.
        let StackObjects {
            service_account,
            reader_token,
            gateway_config,
            gateway_deployment,
            gateway_service,
            gateway_readers_service,
            gateway_ingress,
            applications,
        } = objects;
        let mut application_deployments = BTreeMap::new();
        let mut model_caches = Vec::new();
        for (
            application,
            ApplicationObjects {
                deployment,
                model_cache,
            },
        ) in applications
        {
            application_deployments.insert(application, deployment);
            model_caches.extend(model_cache);
        }

        applier.apply(service_account).await?;
        applier.apply(reader_token).await?;
        applier.apply(gateway_config).await?;
        applier.apply(gateway_service).await?;
        applier.apply(gateway_readers_service).await?;
        applier.apply_all(model_caches).await?;
        let gateway = applier.apply(gateway_deployment).await?;
        let mut applications = BTreeMap::new();
        for (application, deployment) in application_deployments {
            applications.insert(application, applier.apply(deployment).await?);
        }
        applier.apply_all(gateway_ingress).await?;

        let sweeper = OrphanSweeper {
            client: &self.ctx.client,
            metrics: &self.ctx.metrics,
            namespace: stack.namespace(),
            stack_name: stack.name(),
            stack_uid: stack.uid(),
        };
        let deleted = sweeper.sweep(&applier.into_record()).await?;
        Ok(Applied {
            gateway,
            applications,
            deleted,
        })
    }

    /// Reports an invalid stack: Degraded status (and an Event when that is
    /// news), then the error, which makes the controller wait for a change.
    async fn invalid(
        &self,
        message: String,
        error: ReconcileError,
    ) -> Result<Action, ReconcileError> {
        let status = status::failed(
            &self.previous,
            self.generation,
            status::reason::INVALID_SPEC,
            &message,
            Timestamp::now(),
        );
        if self.write_status(&status).await? {
            self.events
                .warning(error.event_reason(), "Validate", message)
                .await;
        }
        Err(error)
    }

    /// Writes `status` with an apply patch, only if it differs from the
    /// stored one. Returns whether it wrote.
    async fn write_status(&self, status: &InferenceStackStatus) -> Result<bool, ReconcileError> {
        if *status == self.previous {
            return Ok(false);
        }
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.ctx.client.clone(), &self.namespace, &self.ctx.resource);
        let patch = serde_json::json!({
            "apiVersion": self.ctx.resource.api_version,
            "kind": self.ctx.resource.kind,
            "status": status,
        });
        self.ctx
            .metrics
            .count_write("patch", &format!("{}/status", self.ctx.resource.kind));
        api.patch_status(
            &self.name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(|source| ReconcileError::Kube {
            verb: "patch status",
            kind: self.ctx.resource.kind.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            source: Box::new(source),
        })?;
        Ok(true)
    }
}

/// What applying returned: the stored Deployments (with their status) and
/// the orphans deleted.
struct Applied {
    gateway: Deployment,
    applications: BTreeMap<String, Deployment>,
    deleted: Vec<String>,
}

/// Reads a watched object as an InferenceStack.
fn parse_stack(object: &DynamicObject) -> Result<InferenceStack, serde_json::Error> {
    serde_json::to_value(object).and_then(serde_json::from_value)
}

fn is_true(status: &InferenceStackStatus, type_: &str) -> bool {
    status
        .conditions
        .iter()
        .any(|condition| condition.type_ == type_ && condition.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(spec: serde_json::Value) -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "flightdeck.dev/v1alpha1",
            "kind": "InferenceStack",
            "metadata": {"name": "demo", "namespace": "llm", "uid": "u-1", "generation": 2},
            "spec": spec,
        }))
        .expect("a DynamicObject")
    }

    #[test]
    fn a_readable_object_parses_and_validates_with_its_metadata() {
        let stack = parse_stack(&object(serde_json::json!({"applications": {"smol": {
            "engine": "llamacpp", "readerConfig": {"modelName": "m", "device": "cpu"}}}})))
        .expect("parses");
        let valid = validate(&stack).expect("valid");
        assert_eq!(
            (valid.name(), valid.namespace(), valid.uid()),
            ("demo", "llm", "u-1")
        );
        assert!(valid.spec().applications.contains_key("smol"));
    }

    #[test]
    fn an_unreadable_object_is_an_error_naming_the_value_not_a_panic() {
        let error = parse_stack(&object(serde_json::json!({"applications": {"smol": {
            "engine": "mystery", "readerConfig": {"modelName": "m"}}}})))
        .expect_err("unknown engine");
        assert!(error.to_string().contains("mystery"), "{error}");
    }
}
