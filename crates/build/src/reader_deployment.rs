//! `S-A` Deployment: one application's engine with its reader sidecar.
//!
//! The engine serves on 127.0.0.1:8000 inside the pod; the reader pulls
//! requests for the application's consumer groups from every gateway pod and
//! forwards them to the engine. Pod readiness is the reader's `/readyz`,
//! which checks the engine too.
//!
//! A roll loses nothing: a new pod starts before an old one stops
//! (`maxSurge: 1`, `maxUnavailable: 0`), and a stopping pod drains. The
//! reader gets SIGTERM, stops pulling and finishes what it took within
//! `readerConfig.drainTimeoutSeconds`; the engine must outlive that, so its
//! preStop hook (which the kubelet runs before it signals the container)
//! waits on the reader's `GET /drain` (see [`DRAIN_PATH`]). An HTTP hook
//! needs nothing inside the engine image, so it works with images that have
//! no shell. The pod's grace period covers the drain plus
//! [`DRAIN_MARGIN_SECONDS`] for the engine's own exit.

use std::collections::BTreeMap;

use flightdeck_api::v1alpha1::{ApplicationSpec, Device, ValidStack, NVIDIA_GPU};
use flightdeck_protocol::reader_env::{
    ADMIN_LISTEN, CAPACITY, CONSUMER_GROUPS, ENGINE_URL, GATEWAY_SERVICE, READER_ADMIN_PORT,
    READER_TOKEN,
};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, ExecAction, HTTPGetAction, Lifecycle,
    LifecycleHandler, PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SecretKeySelector, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use crate::config_hash::{config_hash, sha256_hex};
use crate::engines::{self, EngineLaunch, ENGINE_HOST, ENGINE_PORT, MODEL_CACHE_DIR};
use crate::gateway_deployment::{container_port, env_value, http_probe, non_empty};
use crate::labels::{selector_labels, Component, CONFIG_HASH_ANNOTATION};
use crate::meta::StackRef;
use crate::security::restricted_container;
use crate::{names, BuildContext, BuildError};

/// Name of the reader's admin port (metrics, health).
pub const ADMIN_PORT_NAME: &str = "admin";
/// Name of the engine's port (informational: it listens on loopback).
pub const ENGINE_PORT_NAME: &str = "engine";

/// The reader's drain endpoint on its admin port ([`READER_ADMIN_PORT`]),
/// the engine container's preStop hook. The contract with the reader:
/// `GET /drain` has no side effect; it answers `200` once the reader is
/// draining (it got SIGTERM) and has no request in flight, and at once when
/// the engine is not ready (a lone engine restart after a failed probe:
/// nothing in flight can finish on a dead engine, and the restart must not
/// wait). Until then it holds the request open; the kubelet waits for the
/// hook (its HTTP client has no timeout of its own) within the pod's grace
/// period. If the reader has already exited, the hook fails at once, which
/// the kubelet logs and then stops the engine: also right, nothing is left
/// in flight.
pub const DRAIN_PATH: &str = "/drain";
/// Seconds of the pod's grace period beyond the reader's drain: the
/// reader's goodbye to the gateways before the drain and the engine's own
/// exit after it.
pub const DRAIN_MARGIN_SECONDS: i64 = 10;
/// The reader's drain window (its `--shutdown-grace-seconds`, see
/// crates/reader/src/cli.rs). Set on the pod's reader only, not in
/// [`reader_env`]: `flightdeck up` stops a local reader at once.
pub const SHUTDOWN_GRACE_SECONDS: &str = "FLIGHTDECK_SHUTDOWN_GRACE_SECONDS";

/// The reader's settings for application `application` of `stack`, as
/// `(variable, value)` pairs: the headless gateway Service, its consumer
/// groups, the engine URL, its capacity (`maxBatchSize`) and the admin
/// address. The reader token is not among them: in a pod it comes from the
/// Secret. `flightdeck up` reuses these and swaps the addresses.
pub fn reader_env(
    stack: &ValidStack,
    application: &str,
) -> Result<Vec<(String, String)>, BuildError> {
    let app = stack.spec().applications.get(application).ok_or_else(|| {
        BuildError::UnknownApplication {
            stack: stack.name().to_owned(),
            application: application.to_owned(),
        }
    })?;
    Ok(vec![
        (
            GATEWAY_SERVICE.to_owned(),
            names::gateway_readers_address(stack.name(), stack.namespace()),
        ),
        (
            CONSUMER_GROUPS.to_owned(),
            app.effective_consumer_groups(application).join(","),
        ),
        (
            ENGINE_URL.to_owned(),
            format!("http://{ENGINE_HOST}:{ENGINE_PORT}"),
        ),
        (
            CAPACITY.to_owned(),
            app.reader_config.max_batch_size.to_string(),
        ),
        (
            ADMIN_LISTEN.to_owned(),
            format!("0.0.0.0:{READER_ADMIN_PORT}"),
        ),
    ])
}

/// The application's Deployment. Its pod template hash covers this
/// application's spec, the engine's image and command line, the reader's
/// settings and the reader token, and nothing of other applications.
pub fn reader_deployment(
    owner: &StackRef,
    stack: &ValidStack,
    application: &str,
    app: &ApplicationSpec,
    ctx: &BuildContext,
) -> Result<Deployment, BuildError> {
    let launch = engines::launch(app);
    let settings = reader_env(stack, application)?;
    // Replicas are not configuration: scaling must not roll the pods.
    let mut configuration = app.clone();
    configuration.replicas = 0;
    let hash = config_hash(
        "the application configuration hash",
        &json!({
            "application": configuration,
            "engine": {
                "image": launch.image,
                "command": launch.command,
                "args": launch.args,
                "env": launch.env,
            },
            "reader": settings,
            "readerTokenSha256": sha256_hex(ctx.reader_token.as_bytes()),
        }),
    )?;
    let selector = selector_labels(&owner.name, Component::Reader, Some(application));

    let mut reader_env_vars: Vec<EnvVar> = settings
        .into_iter()
        .map(|(name, value)| env_value(&name, value))
        .collect();
    let drain_seconds = app
        .reader_config
        .effective_drain_timeout_seconds(&stack.spec().gateway);
    reader_env_vars.push(env_value(SHUTDOWN_GRACE_SECONDS, drain_seconds.to_string()));
    reader_env_vars.push(secret_env(
        READER_TOKEN,
        &names::reader_token_secret(&owner.name),
        names::READER_TOKEN_KEY,
    ));
    let reader = Container {
        name: "reader".to_owned(),
        image: Some(ctx.reader_image.clone()),
        env: Some(reader_env_vars),
        ports: Some(vec![container_port(ADMIN_PORT_NAME, READER_ADMIN_PORT)]),
        readiness_probe: Some(http_probe("/readyz", ADMIN_PORT_NAME, 5, 3)),
        liveness_probe: Some(http_probe("/healthz", ADMIN_PORT_NAME, 10, 3)),
        security_context: Some(restricted_container()),
        ..Container::default()
    };

    let mut volumes = vec![model_cache_volume(owner, application, app)];
    if launch.needs_shared_memory {
        volumes.push(Volume {
            name: "shm".to_owned(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".to_owned()),
                size_limit: None,
            }),
            ..Volume::default()
        });
    }
    let engine = engine_container(app, &launch);

    Ok(Deployment {
        metadata: owner.metadata(
            names::application_deployment(&owner.name, application),
            Component::Reader,
            Some(application),
        ),
        spec: Some(DeploymentSpec {
            replicas: Some(app.replicas),
            strategy: Some(no_loss_rolling_update()),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                match_expressions: None,
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(selector),
                    annotations: Some(BTreeMap::from([(CONFIG_HASH_ANNOTATION.to_owned(), hash)])),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![engine, reader],
                    termination_grace_period_seconds: Some(
                        i64::from(drain_seconds.max(0)) + DRAIN_MARGIN_SECONDS,
                    ),
                    volumes: Some(volumes),
                    service_account_name: Some(names::service_account(&owner.name)),
                    automount_service_account_token: Some(false),
                    node_selector: (!app.node_selector.is_empty())
                        .then(|| app.node_selector.clone()),
                    tolerations: non_empty(app.tolerations.clone()),
                    affinity: app.affinity.clone(),
                    image_pull_secrets: non_empty(stack.spec().image_pull_secrets.clone()),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    })
}

/// The engine container: image, command line and cache settings from the
/// model map, the user's env and resources.
fn engine_container(app: &ApplicationSpec, launch: &EngineLaunch) -> Container {
    let mut env: Vec<EnvVar> = launch
        .env
        .iter()
        .map(|(name, value)| env_value(name, value.clone()))
        .collect();
    // The user's variables come last so they can override the cache paths.
    env.extend(app.env.iter().cloned());
    let mut mounts = vec![VolumeMount {
        name: "model-cache".to_owned(),
        mount_path: MODEL_CACHE_DIR.to_owned(),
        ..VolumeMount::default()
    }];
    if launch.needs_shared_memory {
        mounts.push(VolumeMount {
            name: "shm".to_owned(),
            mount_path: "/dev/shm".to_owned(),
            ..VolumeMount::default()
        });
    }
    let exec_probe = |period_seconds: i32, failure_threshold: i32| Probe {
        exec: Some(ExecAction {
            command: Some(launch.probe_command.clone()),
        }),
        period_seconds: Some(period_seconds),
        timeout_seconds: Some(10),
        failure_threshold: Some(failure_threshold),
        ..Probe::default()
    };
    Container {
        name: "engine".to_owned(),
        image: Some(launch.image.clone()),
        command: non_empty(launch.command.clone()),
        args: non_empty(launch.args.clone()),
        env: Some(env),
        ports: Some(vec![container_port(ENGINE_PORT_NAME, ENGINE_PORT)]),
        resources: engine_resources(app),
        volume_mounts: Some(mounts),
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                // The kubelet sends HTTP hooks to the pod IP (a `host` of
                // 127.0.0.1 would be the node itself); the reader's admin
                // port listens on every address. The port is a number: a
                // named port resolves among this container's ports only.
                http_get: Some(HTTPGetAction {
                    path: Some(DRAIN_PATH.to_owned()),
                    port: IntOrString::Int(i32::from(READER_ADMIN_PORT)),
                    scheme: Some("HTTP".to_owned()),
                    ..HTTPGetAction::default()
                }),
                ..LifecycleHandler::default()
            }),
            post_start: None,
            stop_signal: None,
        }),
        startup_probe: Some(exec_probe(
            launch.startup_period_seconds,
            launch.startup_failure_threshold,
        )),
        liveness_probe: Some(exec_probe(30, 3)),
        ..Container::default()
    }
}

/// Rolls that never lower serving capacity: one extra pod at a time, and an
/// old pod goes only once its replacement is ready. (On a cluster with no
/// spare GPU for the extra pod the roll waits for one; the old pods keep
/// serving meanwhile.)
pub(super) fn no_loss_rolling_update() -> DeploymentStrategy {
    DeploymentStrategy {
        type_: Some("RollingUpdate".to_owned()),
        rolling_update: Some(RollingUpdateDeployment {
            max_surge: Some(IntOrString::Int(1)),
            max_unavailable: Some(IntOrString::Int(0)),
        }),
    }
}

/// The engine container's resources: the user's, plus on `cuda`
/// `nvidia.com/gpu: tensorParallelSize` as request and limit when the user
/// named no GPU count (vLLM, SGLang and TGI fail at start without the GPUs
/// they split the model across). A GPU request without a limit gets the
/// limit (Kubernetes requires both, equal, for extended resources);
/// `validate()` has refused counts below `tensorParallelSize`. The reader
/// sidecar requests nothing, as before: `resources` is the engine's.
fn engine_resources(app: &ApplicationSpec) -> Option<ResourceRequirements> {
    if app.reader_config.device != Device::Cuda {
        return app.resources.clone();
    }
    let mut resources = app.resources.clone().unwrap_or_default();
    let limits = resources.limits.get_or_insert_with(BTreeMap::new);
    let requests = resources.requests.get_or_insert_with(BTreeMap::new);
    match (limits.get(NVIDIA_GPU), requests.get(NVIDIA_GPU)) {
        (None, None) => {
            let count = Quantity(app.reader_config.tensor_parallel_size.to_string());
            limits.insert(NVIDIA_GPU.to_owned(), count.clone());
            requests.insert(NVIDIA_GPU.to_owned(), count);
        }
        (None, Some(request)) => {
            let request = request.clone();
            limits.insert(NVIDIA_GPU.to_owned(), request);
        }
        // A limit alone: Kubernetes defaults the request to it.
        (Some(_), _) => {}
    }
    if resources.requests.as_ref().is_some_and(BTreeMap::is_empty) {
        resources.requests = None;
    }
    Some(resources)
}

/// The model cache: the application's claim, or an emptyDir that lives as
/// long as the pod.
fn model_cache_volume(owner: &StackRef, application: &str, app: &ApplicationSpec) -> Volume {
    match &app.model_cache {
        Some(_) => Volume {
            name: "model-cache".to_owned(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: names::model_cache_claim(&owner.name, application),
                read_only: None,
            }),
            ..Volume::default()
        },
        None => Volume {
            name: "model-cache".to_owned(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    }
}

/// An environment variable read from a Secret key.
pub(super) fn secret_env(variable: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: variable.to_owned(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_owned(),
                key: key.to_owned(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
    }
}
