//! The reconcile pipeline of one InferenceStack:
//! read -> validate (pure) -> build (pure) -> apply -> delete orphans -> status.

pub mod apply;
pub mod backoff;
pub mod events;
pub mod orphans;
pub mod status;
pub mod token;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::Duration,
};

use flightdeck_api::v1alpha1::{validate, InferenceStack, InferenceStackStatus};
use k8s_openapi::{
    api::{apps::v1::Deployment, core::v1::PersistentVolumeClaim, networking::v1::Ingress},
    apimachinery::pkg::apis::meta::v1::OwnerReference,
    jiff::Timestamp,
};
use kube::{
    api::{ApiResource, DynamicObject, Patch, PatchParams},
    runtime::{controller::Action, events::Recorder},
    Api, Client, Resource, ResourceExt,
};

use flightdeck_build::{build, ApplicationObjects, BuildContext, StackObjects};

use crate::{
    error::{Category, Error, Result},
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
    /// The watched kind (from watches.yaml), for status patches and Events.
    pub resource: ApiResource,
    pub images: Images,
    pub recorder: Recorder,
    pub metrics: Metrics,
    pub backoff: Backoff,
    /// How often a healthy stack is reconciled without any change.
    pub reconcile_period: Duration,
}

/// Reconciles one stack; the controller calls this.
#[tracing::instrument(skip_all, fields(stack = %key_of(&object)))]
pub async fn reconcile(object: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Action> {
    let timer = ctx.metrics.reconcile_duration.start_timer();
    let result = StackReconcile::new(&object, &ctx)?.run().await;
    timer.observe_duration();
    ctx.metrics
        .count_reconcile(result.as_ref().map(|_| ()).map_err(Error::category));
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
pub fn error_policy(object: Arc<DynamicObject>, error: &Error, ctx: Arc<Context>) -> Action {
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
    fn new(object: &'a DynamicObject, ctx: &'a Context) -> Result<Self> {
        let namespace = object
            .namespace()
            .ok_or(Error::MissingMetadata { what: "namespace" })?;
        let name = object
            .metadata
            .name
            .clone()
            .ok_or(Error::MissingMetadata { what: "name" })?;
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

    async fn run(self) -> Result<Action> {
        // Parse here, not in the watch: a stack this version cannot read is
        // reported on that stack and never stalls the watch of the others.
        let stack = match parse_stack(self.object) {
            Ok(stack) => stack,
            Err(message) => {
                return self
                    .invalid(
                        message.clone(),
                        Error::Unreadable {
                            namespace: self.namespace.clone(),
                            name: self.name.clone(),
                            message,
                        },
                    )
                    .await;
            }
        };
        if let Err(fields) = validate(&stack) {
            let fields: Vec<(String, String)> = fields
                .into_iter()
                .map(|field| (field.path, field.message))
                .collect();
            let message = fields
                .iter()
                .map(|(path, message)| format!("{path}: {message}"))
                .collect::<Vec<_>>()
                .join("; ");
            return self
                .invalid(
                    message,
                    Error::InvalidSpec {
                        namespace: self.namespace.clone(),
                        name: self.name.clone(),
                        fields,
                    },
                )
                .await;
        }

        let secret_name = format!("{}-reader-token", self.name);
        let token = token::ensure(&self.ctx.client, &self.namespace, &secret_name).await?;
        let build_context = BuildContext {
            gateway_image: self.ctx.images.gateway.clone(),
            reader_image: self.ctx.images.reader.clone(),
            reader_token: token.token,
        };
        let objects = match build(&stack, &build_context) {
            Ok(objects) => objects,
            Err(error) => {
                let message = error.to_string();
                return self
                    .invalid(
                        message.clone(),
                        Error::Build {
                            namespace: self.namespace.clone(),
                            name: self.name.clone(),
                            message,
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
            endpoint: format!(
                "http://{}-gateway.{}:{}",
                self.name, self.namespace, stack.spec.gateway.service.port
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

    /// Applies every built object (concurrently), then deletes the children
    /// the spec no longer names.
    async fn apply(&self, stack: &InferenceStack, objects: StackObjects) -> Result<Applied> {
        let owner = owner_reference(stack)?;
        let applier = Applier {
            client: &self.ctx.client,
            metrics: &self.ctx.metrics,
            namespace: &self.namespace,
            owner: &owner,
        };
        // No `..`: a kind added to StackObjects but not applied here is a
        // compile error, not a silently missing object.
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

        let mut wanted_deployments = BTreeSet::from([gateway_deployment.name_any()]);
        let mut wanted_claims = BTreeSet::new();
        let wanted_ingresses: BTreeSet<String> =
            gateway_ingress.iter().map(|i| i.name_any()).collect();
        for ApplicationObjects {
            deployment,
            model_cache,
        } in applications.values()
        {
            wanted_deployments.insert(deployment.name_any());
            wanted_claims.extend(model_cache.iter().map(|claim| claim.name_any()));
        }

        let ingress = async {
            match gateway_ingress {
                Some(ingress) => applier.apply(ingress).await.map(Some),
                None => Ok(None),
            }
        };
        let (_, _, _, gateway, _, _, _) = tokio::try_join!(
            applier.apply(service_account),
            applier.apply(reader_token),
            applier.apply(gateway_config),
            applier.apply(gateway_deployment),
            applier.apply(gateway_service),
            applier.apply(gateway_readers_service),
            ingress,
        )?;
        let applications = futures::future::try_join_all(applications.into_iter().map(
            |(
                application,
                ApplicationObjects {
                    deployment,
                    model_cache,
                },
            )| {
                let applier = &applier;
                async move {
                    // The claim first: the pods mount it.
                    if let Some(claim) = model_cache {
                        applier.apply(claim).await?;
                    }
                    let deployment = applier.apply(deployment).await?;
                    Ok::<_, Error>((application, deployment))
                }
            },
        ))
        .await?
        .into_iter()
        .collect::<BTreeMap<_, _>>();

        let uid = stack.metadata.uid.clone().unwrap_or_default();
        let sweeper = OrphanSweeper {
            client: &self.ctx.client,
            metrics: &self.ctx.metrics,
            namespace: &self.namespace,
            stack_name: &self.name,
            stack_uid: &uid,
        };
        let mut deleted = sweeper.sweep::<Deployment>(&wanted_deployments).await?;
        deleted.extend(
            sweeper
                .sweep::<PersistentVolumeClaim>(&wanted_claims)
                .await?,
        );
        deleted.extend(sweeper.sweep::<Ingress>(&wanted_ingresses).await?);
        Ok(Applied {
            gateway,
            applications,
            deleted,
        })
    }

    /// Reports an invalid stack: Degraded status (and an Event when that is
    /// news), then the error, which makes the controller wait for a change.
    async fn invalid(&self, message: String, error: Error) -> Result<Action> {
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
    async fn write_status(&self, status: &InferenceStackStatus) -> Result<bool> {
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
        .map_err(|source| Error::Kube {
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

/// Reads a watched object as an InferenceStack; the error says why not.
fn parse_stack(object: &DynamicObject) -> Result<InferenceStack, String> {
    serde_json::to_value(object)
        .and_then(serde_json::from_value)
        .map_err(|error| format!("the object cannot be read as an InferenceStack: {error}"))
}

fn owner_reference(stack: &InferenceStack) -> Result<OwnerReference> {
    stack
        .controller_owner_ref(&())
        .ok_or(Error::MissingMetadata { what: "uid" })
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
    fn a_readable_object_parses_with_its_metadata() {
        let stack = parse_stack(&object(serde_json::json!({"applications": {"smol": {
            "engine": "llamacpp", "readerConfig": {"modelName": "m"}}}})))
        .expect("parses");
        assert_eq!(stack.metadata.uid.as_deref(), Some("u-1"));
        assert!(stack.spec.applications.contains_key("smol"));
        assert!(owner_reference(&stack).expect("owner").controller == Some(true));
    }

    #[test]
    fn an_unreadable_object_is_an_error_naming_the_value_not_a_panic() {
        let message = parse_stack(&object(serde_json::json!({"applications": {"smol": {
            "engine": "mystery", "readerConfig": {"modelName": "m"}}}})))
        .expect_err("unknown engine");
        assert!(message.contains("mystery"), "{message}");
    }
}
