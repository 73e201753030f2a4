//! Builder tests from the YAML fixtures in `examples/`.

use std::collections::BTreeMap;

use flightdeck_api::v1alpha1::{validate, InferenceStack, ValidStack};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Deserialize;

use crate::*;

const UID: &str = "6f0c1a2e-0000-4000-8000-000000000001";

fn fixture(file: &str) -> InferenceStack {
    let path = format!("{}/../../examples/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("reading {path}: {err}"));
    let mut stack: InferenceStack =
        serde_yaml::from_str(&text).unwrap_or_else(|err| panic!("parsing {path}: {err}"));
    stack
        .metadata
        .namespace
        .get_or_insert_with(|| "default".to_owned());
    stack.metadata.uid = Some(UID.to_owned());
    validate(&stack).unwrap_or_else(|errors| panic!("{path} is invalid: {errors:?}"));
    stack
}

/// `stack` (a fixture, possibly changed by the test) as the builders take it.
fn valid(stack: &InferenceStack) -> ValidStack {
    validate(stack).unwrap_or_else(|errors| panic!("invalid: {errors:?}"))
}

fn ctx() -> BuildContext {
    BuildContext {
        gateway_image: "example.com/gateway:test".to_owned(),
        reader_image: "example.com/reader:test".to_owned(),
        reader_token: "token-1".to_owned(),
    }
}

fn built(stack: &InferenceStack) -> StackObjects {
    build(&valid(stack), &ctx()).expect("builds")
}

fn pod(deployment: &Deployment) -> &PodSpec {
    deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.template.spec.as_ref())
        .expect("pod spec")
}

fn container<'a>(deployment: &'a Deployment, name: &str) -> &'a Container {
    pod(deployment)
        .containers
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("container {name}"))
}

fn hash(deployment: &Deployment) -> String {
    deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.template.metadata.as_ref())
        .and_then(|meta| meta.annotations.as_ref())
        .and_then(|annotations| annotations.get(labels::CONFIG_HASH_ANNOTATION))
        .cloned()
        .expect("config hash annotation")
}

fn env(container: &Container) -> BTreeMap<String, String> {
    container
        .env
        .iter()
        .flatten()
        .filter_map(|var| Some((var.name.clone(), var.value.clone()?)))
        .collect()
}

fn all_metadata(
    objects: &StackObjects,
) -> Vec<&k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta> {
    let mut metas = vec![
        &objects.service_account.metadata,
        &objects.reader_token.metadata,
        &objects.gateway_config.metadata,
        &objects.gateway_deployment.metadata,
        &objects.gateway_service.metadata,
        &objects.gateway_readers_service.metadata,
    ];
    metas.extend(objects.gateway_ingress.as_ref().map(|i| &i.metadata));
    for app in objects.applications.values() {
        metas.push(&app.deployment.metadata);
        metas.extend(app.model_cache.as_ref().map(|c| &c.metadata));
    }
    metas
}

#[test]
fn names_labels_and_owner_references() {
    let stack = fixture("gpu-vllm.yaml");
    let objects = built(&stack);
    let names: Vec<String> = all_metadata(&objects)
        .iter()
        .map(|meta| meta.name.clone().expect("named"))
        .collect();
    assert_eq!(
        names,
        vec![
            "demo-flightdeck",
            "demo-reader-token",
            "demo-gateway",
            "demo-gateway",
            "demo-gateway",
            "demo-gateway-readers",
            "demo-gateway",
            "demo-llama-1b",
            "demo-llama-1b-model-cache",
        ]
    );
    for meta in all_metadata(&objects) {
        assert_eq!(meta.namespace.as_deref(), Some("llm"));
        let labels = meta.labels.as_ref().expect("labels");
        assert_eq!(labels["app.kubernetes.io/name"], "flightdeck");
        assert_eq!(labels["app.kubernetes.io/instance"], "demo");
        assert_eq!(
            labels["app.kubernetes.io/managed-by"],
            "flightdeck-operator"
        );
        assert_eq!(labels["flightdeck.dev/stack"], "demo");
        let owners = meta.owner_references.as_ref().expect("owner references");
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].api_version, "flightdeck.dev/v1alpha1");
        assert_eq!(owners[0].kind, "InferenceStack");
        assert_eq!(owners[0].name, "demo");
        assert_eq!(owners[0].uid, UID);
        assert_eq!(owners[0].controller, Some(true));
    }
    let app = &objects.applications["llama-1b"];
    let app_labels = app.deployment.metadata.labels.as_ref().expect("labels");
    assert_eq!(app_labels["flightdeck.dev/application"], "llama-1b");
    assert_eq!(app_labels["app.kubernetes.io/component"], "reader");
    let gateway_labels = objects
        .gateway_deployment
        .metadata
        .labels
        .as_ref()
        .expect("labels");
    assert_eq!(gateway_labels["app.kubernetes.io/component"], "gateway");
    assert!(!gateway_labels.contains_key("flightdeck.dev/application"));
    let config_labels = objects
        .gateway_config
        .metadata
        .labels
        .as_ref()
        .expect("labels");
    assert_eq!(config_labels["app.kubernetes.io/component"], "config");
}

#[test]
fn services_have_named_tcp_ports() {
    let objects = built(&fixture("gpu-vllm.yaml"));
    let client = objects.gateway_service.spec.as_ref().expect("spec");
    assert_eq!(client.type_.as_deref(), Some("ClusterIP"));
    let port = &client.ports.as_ref().expect("ports")[0];
    assert_eq!(
        (port.name.as_deref(), port.port, port.protocol.as_deref()),
        (Some("http"), 8080, Some("TCP"))
    );
    assert_eq!(
        client.selector.as_ref().expect("selector")["app.kubernetes.io/component"],
        "gateway"
    );
    let readers = objects.gateway_readers_service.spec.as_ref().expect("spec");
    assert_eq!(readers.cluster_ip.as_deref(), Some("None"));
    // Draining gateways stay in the readers' DNS until they are gone.
    assert_eq!(readers.publish_not_ready_addresses, Some(true));
    let port = &readers.ports.as_ref().expect("ports")[0];
    assert_eq!(
        (port.name.as_deref(), port.port, port.protocol.as_deref()),
        (Some("readers"), 8081, Some("TCP"))
    );
    for deployment in [
        &objects.gateway_deployment,
        &objects.applications["llama-1b"].deployment,
    ] {
        for c in &pod(deployment).containers {
            for p in c.ports.iter().flatten() {
                assert_eq!(
                    p.protocol.as_deref(),
                    Some("TCP"),
                    "{} port {:?}",
                    c.name,
                    p.name
                );
            }
        }
    }
}

#[test]
fn gateway_deployment_mounts_config_token_and_api_keys() {
    let objects = built(&fixture("gpu-vllm.yaml"));
    let deployment = &objects.gateway_deployment;
    assert_eq!(deployment.spec.as_ref().and_then(|s| s.replicas), Some(2));
    let gateway = container(deployment, "gateway");
    assert_eq!(gateway.image.as_deref(), Some("example.com/gateway:test"));
    let env = env(gateway);
    assert_eq!(
        env["FLIGHTDECK_GATEWAY_CONFIG"],
        "/etc/flightdeck/gateway.json"
    );
    assert_eq!(
        env["FLIGHTDECK_API_KEYS_DIR"],
        "/var/run/flightdeck/api-keys"
    );
    assert_eq!(env["FLIGHTDECK_LISTEN"], "0.0.0.0:8080");
    assert_eq!(env["FLIGHTDECK_READER_LISTEN"], "0.0.0.0:8081");
    let token = gateway
        .env
        .iter()
        .flatten()
        .find(|var| var.name == "FLIGHTDECK_READER_TOKEN")
        .and_then(|var| var.value_from.as_ref())
        .and_then(|from| from.secret_key_ref.as_ref())
        .expect("token from the Secret");
    assert_eq!(
        (token.name.as_str(), token.key.as_str()),
        ("demo-reader-token", "token")
    );
    let volumes = pod(deployment).volumes.as_ref().expect("volumes");
    assert_eq!(
        volumes[0].config_map.as_ref().map(|c| c.name.as_str()),
        Some("demo-gateway")
    );
    assert_eq!(
        volumes[1]
            .secret
            .as_ref()
            .and_then(|s| s.secret_name.as_deref()),
        Some("gateway-keys")
    );
    let security = gateway.security_context.as_ref().expect("security context");
    assert_eq!(security.run_as_non_root, Some(true));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(
        security.capabilities.as_ref().and_then(|c| c.drop.clone()),
        Some(vec!["ALL".to_owned()])
    );
    let readiness = gateway
        .readiness_probe
        .as_ref()
        .and_then(|p| p.http_get.as_ref())
        .expect("readiness");
    assert_eq!(readiness.path.as_deref(), Some("/readyz"));
    let liveness = gateway
        .liveness_probe
        .as_ref()
        .and_then(|p| p.http_get.as_ref())
        .expect("liveness");
    assert_eq!(liveness.path.as_deref(), Some("/healthz"));
    assert_eq!(
        pod(deployment)
            .image_pull_secrets
            .as_ref()
            .map(|s| s[0].name.clone()),
        Some("regcred".to_owned())
    );
    // Without apiKeys the gateway is open and mounts no key Secret.
    let open = built(&fixture("quickstart.yaml"));
    assert!(!env_has(
        container(&open.gateway_deployment, "gateway"),
        "FLIGHTDECK_API_KEYS_DIR"
    ));
    assert_eq!(
        pod(&open.gateway_deployment).volumes.as_ref().map(Vec::len),
        Some(1)
    );
}

fn env_has(container: &Container, name: &str) -> bool {
    container.env.iter().flatten().any(|var| var.name == name)
}

#[test]
fn ingress_routes_the_client_service_with_tls() {
    let objects = built(&fixture("gpu-vllm.yaml"));
    let ingress = objects.gateway_ingress.expect("ingress");
    assert_eq!(
        ingress.metadata.annotations.as_ref().expect("annotations")
            ["traefik.ingress.kubernetes.io/router.entrypoints"],
        "websecure"
    );
    let spec = ingress.spec.expect("spec");
    assert_eq!(spec.ingress_class_name.as_deref(), Some("traefik"));
    let rule = &spec.rules.expect("rules")[0];
    assert_eq!(rule.host.as_deref(), Some("llm.example.com"));
    let backend = rule.http.as_ref().expect("http").paths[0]
        .backend
        .service
        .as_ref()
        .expect("service");
    assert_eq!(backend.name, "demo-gateway");
    assert_eq!(backend.port.as_ref().and_then(|p| p.number), Some(8080));
    let tls = &spec.tls.expect("tls")[0];
    assert_eq!(tls.secret_name.as_deref(), Some("llm-tls"));
    assert!(built(&fixture("quickstart.yaml")).gateway_ingress.is_none());
}

#[test]
fn reader_deployment_runs_engine_and_sidecar() {
    let objects = built(&fixture("gpu-vllm.yaml"));
    let app = &objects.applications["llama-1b"];
    let deployment = &app.deployment;
    let pod = pod(deployment);
    assert_eq!(
        pod.node_selector.as_ref().expect("nodeSelector")["nvidia.com/gpu.product"],
        "NVIDIA-GeForce-RTX-3060"
    );
    assert_eq!(
        pod.tolerations.as_ref().expect("tolerations")[0]
            .key
            .as_deref(),
        Some("nvidia.com/gpu")
    );
    assert_eq!(pod.service_account_name.as_deref(), Some("demo-flightdeck"));

    let engine = container(deployment, "engine");
    assert_eq!(engine.image.as_deref(), Some(crate::engines::VLLM_IMAGE));
    assert_eq!(
        engine.command,
        Some(vec!["vllm".to_owned(), "serve".to_owned()])
    );
    let args = engine.args.clone().expect("args");
    assert_eq!(args[0], "unsloth/Llama-3.2-1B-Instruct");
    assert!(args.windows(2).any(|w| w == ["--host", "127.0.0.1"]));
    assert!(args.windows(2).any(|w| w == ["--port", "8000"]));
    assert!(args
        .windows(2)
        .any(|w| w == ["--served-model-name", "unsloth/Llama-3.2-1B-Instruct"]));
    assert!(args.windows(2).any(|w| w == ["--max-num-seqs", "32"]));
    assert!(args.windows(2).any(|w| w == ["--max-model-len", "4096"]));
    let limits = engine
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .expect("limits");
    assert_eq!(limits["nvidia.com/gpu"].0, "1");
    let engine_env = env(engine);
    assert_eq!(engine_env["HF_HOME"], "/model-cache/huggingface");
    assert!(env_has(engine, "HF_TOKEN"));
    let mounts: Vec<(&str, &str)> = engine
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| (m.name.as_str(), m.mount_path.as_str()))
        .collect();
    assert_eq!(
        mounts,
        vec![("model-cache", "/model-cache"), ("shm", "/dev/shm")]
    );
    assert!(engine
        .startup_probe
        .as_ref()
        .and_then(|p| p.exec.as_ref())
        .is_some());

    let reader = container(deployment, "reader");
    assert_eq!(reader.image.as_deref(), Some("example.com/reader:test"));
    let reader_env = env(reader);
    assert_eq!(
        reader_env["FLIGHTDECK_GATEWAY_SERVICE"],
        "demo-gateway-readers.llm.svc:8081"
    );
    assert_eq!(reader_env["FLIGHTDECK_CONSUMER_GROUPS"], "llama-1b");
    assert_eq!(reader_env["FLIGHTDECK_ENGINE_URL"], "http://127.0.0.1:8000");
    assert_eq!(reader_env["FLIGHTDECK_CAPACITY"], "32");
    assert_eq!(reader_env["FLIGHTDECK_ADMIN_LISTEN"], "0.0.0.0:9090");
    assert!(env_has(reader, "FLIGHTDECK_READER_TOKEN"));
    let readiness = reader
        .readiness_probe
        .as_ref()
        .and_then(|p| p.http_get.as_ref())
        .expect("readiness");
    assert_eq!(readiness.path.as_deref(), Some("/readyz"));

    let volumes = pod.volumes.as_ref().expect("volumes");
    assert_eq!(
        volumes[0]
            .persistent_volume_claim
            .as_ref()
            .map(|c| c.claim_name.as_str()),
        Some("demo-llama-1b-model-cache")
    );
    let claim = app
        .model_cache
        .as_ref()
        .expect("model cache")
        .spec
        .as_ref()
        .expect("spec");
    assert_eq!(claim.storage_class_name.as_deref(), Some("fast"));
    assert_eq!(claim.access_modes, Some(vec!["ReadWriteOnce".to_owned()]));
    assert_eq!(
        claim
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .expect("requests")["storage"]
            .0,
        "20Gi"
    );
}

#[test]
fn quickstart_runs_llama_cpp_on_cpu() {
    let objects = built(&fixture("quickstart.yaml"));
    let deployment = &objects.applications["smollm2"].deployment;
    assert_eq!(
        deployment.metadata.name.as_deref(),
        Some("quickstart-smollm2")
    );
    let engine = container(deployment, "engine");
    assert_eq!(
        engine.image.as_deref(),
        Some(crate::engines::LLAMACPP_CPU_IMAGE)
    );
    assert_eq!(engine.command, None);
    let args = engine.args.clone().expect("args");
    assert!(args
        .windows(2)
        .any(|w| w == ["--hf-repo", "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"]));
    assert!(args.windows(2).any(|w| w == ["--alias", "smollm2"]));
    assert!(args.windows(2).any(|w| w == ["--n-gpu-layers", "0"]));
    assert!(args.windows(2).any(|w| w == ["--parallel", "4"]));
    assert!(args.windows(2).any(|w| w == ["--ctx-size", "8192"]));
    // No PVC: the cache is an emptyDir; llama.cpp needs no shared memory.
    assert!(objects.applications["smollm2"].model_cache.is_none());
    let volumes = pod(deployment).volumes.as_ref().expect("volumes");
    assert_eq!(volumes.len(), 1);
    assert!(volumes[0].empty_dir.is_some());
    let config = objects.gateway_config.data.as_ref().expect("data")["gateway.json"].clone();
    let parsed: flightdeck_protocol::gateway_config::GatewayConfig =
        serde_json::from_str(&config).expect("gateway.json parses");
    assert_eq!(parsed.models["smollm2"].consumer_groups, vec!["smollm2"]);
    assert_eq!(parsed.models["smollm2"].engine.as_deref(), Some("llamacpp"));
    assert_eq!(
        (parsed.queue.max_depth, parsed.queue.request_timeout_seconds),
        (64, 120)
    );
}

#[test]
fn shared_consumer_group_routes_one_model() {
    let stack = valid(&fixture("multi-app.yaml"));
    let config = gateway_config(&stack);
    assert_eq!(config.models.len(), 1);
    assert_eq!(config.models["llama-1b"].consumer_groups, vec!["llama-1b"]);
    assert_eq!(config.consumer_groups(), vec!["llama-1b"]);
    for application in ["llama-3060", "llama-4090"] {
        let env: BTreeMap<String, String> = reader_env(&stack, application)
            .expect("env")
            .into_iter()
            .collect();
        assert_eq!(env["FLIGHTDECK_CONSUMER_GROUPS"], "llama-1b");
    }
    let objects = build(&stack, &ctx()).expect("builds");
    let capacity = |app: &str| {
        env(container(&objects.applications[app].deployment, "reader"))["FLIGHTDECK_CAPACITY"]
            .clone()
    };
    assert_eq!(
        (capacity("llama-3060"), capacity("llama-4090")),
        ("16".to_owned(), "64".to_owned())
    );
    assert!(matches!(
        reader_env(&stack, "missing"),
        Err(BuildError::UnknownApplication { .. })
    ));
}

#[test]
fn reader_config_change_rolls_only_its_application() {
    let stack = fixture("multi-app.yaml");
    let before = built(&stack);
    let mut changed = stack.clone();
    if let Some(app) = changed.spec.applications.get_mut("llama-4090") {
        app.reader_config.max_batch_size = 48;
    }
    let after = built(&changed);
    assert_ne!(
        hash(&before.applications["llama-4090"].deployment),
        hash(&after.applications["llama-4090"].deployment)
    );
    assert_eq!(
        hash(&before.applications["llama-3060"].deployment),
        hash(&after.applications["llama-3060"].deployment)
    );
    // gateway.json does not change (same routes), so the gateway stays.
    assert_eq!(
        hash(&before.gateway_deployment),
        hash(&after.gateway_deployment)
    );
}

#[test]
fn gateway_change_rolls_only_the_gateway() {
    let stack = fixture("multi-app.yaml");
    let before = built(&stack);
    let mut changed = stack.clone();
    changed.spec.gateway.queue.max_depth = 10;
    let after = built(&changed);
    assert_ne!(
        hash(&before.gateway_deployment),
        hash(&after.gateway_deployment)
    );
    for app in ["llama-3060", "llama-4090"] {
        assert_eq!(
            hash(&before.applications[app].deployment),
            hash(&after.applications[app].deployment)
        );
    }
    // A new served model changes gateway.json and so the gateway's hash,
    // but not the existing applications'.
    let mut added = stack.clone();
    let mut extra = stack.spec.applications["llama-4090"].clone();
    extra.consumer_groups = vec!["other".to_owned()];
    extra.reader_config.served_model_name = Some("other".to_owned());
    added.spec.applications.insert("other".to_owned(), extra);
    let grown = built(&added);
    assert_ne!(
        hash(&before.gateway_deployment),
        hash(&grown.gateway_deployment)
    );
    assert_eq!(
        hash(&before.applications["llama-3060"].deployment),
        hash(&grown.applications["llama-3060"].deployment)
    );
}

#[test]
fn scaling_rolls_nothing() {
    let stack = fixture("multi-app.yaml");
    let before = built(&stack);
    let mut scaled = stack.clone();
    scaled.spec.gateway.replicas = 5;
    if let Some(app) = scaled.spec.applications.get_mut("llama-3060") {
        app.replicas = 7;
    }
    let after = built(&scaled);
    assert_eq!(
        after
            .gateway_deployment
            .spec
            .as_ref()
            .and_then(|s| s.replicas),
        Some(5)
    );
    assert_eq!(
        hash(&before.gateway_deployment),
        hash(&after.gateway_deployment)
    );
    let app = &after.applications["llama-3060"].deployment;
    assert_eq!(app.spec.as_ref().and_then(|s| s.replicas), Some(7));
    assert_eq!(
        hash(&before.applications["llama-3060"].deployment),
        hash(app)
    );
}

#[test]
fn build_is_deterministic() {
    let stack = fixture("gpu-vllm.yaml");
    assert_eq!(built(&stack), built(&stack));
}

#[test]
fn reader_token_secret_holds_the_token() {
    let objects = built(&fixture("quickstart.yaml"));
    let data = objects.reader_token.data.expect("data");
    assert_eq!(data["token"].0, b"token-1".to_vec());
    assert_eq!(
        objects.service_account.automount_service_account_token,
        Some(false)
    );
}

#[test]
fn context_debug_redacts_the_token() {
    let shown = format!("{:?}", ctx());
    assert!(!shown.contains("token-1"), "{shown}");
    assert!(shown.contains("example.com/gateway:test"));
}

fn strategy(deployment: &Deployment) -> (String, IntOrString, IntOrString) {
    let strategy = deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.strategy.clone())
        .expect("strategy");
    let rolling = strategy.rolling_update.expect("rollingUpdate");
    (
        strategy.type_.expect("type"),
        rolling.max_surge.expect("maxSurge"),
        rolling.max_unavailable.expect("maxUnavailable"),
    )
}

#[test]
fn reader_pods_roll_and_stop_without_losing_requests() {
    let stack = fixture("quickstart.yaml");
    let objects = built(&stack);
    let deployment = &objects.applications["smollm2"].deployment;
    assert_eq!(
        strategy(deployment),
        (
            "RollingUpdate".to_owned(),
            IntOrString::Int(1),
            IntOrString::Int(0)
        )
    );
    // The drain defaults to the gateway's request timeout (120 s here); the
    // pod's grace is the drain plus the margin.
    assert_eq!(
        env(container(deployment, "reader"))["FLIGHTDECK_SHUTDOWN_GRACE_SECONDS"],
        "120"
    );
    assert_eq!(pod(deployment).termination_grace_period_seconds, Some(130));
    // The engine outlives the reader's drain: its preStop hook waits on the
    // reader's /drain, on the pod IP, by port number.
    let hook = container(deployment, "engine")
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref())
        .and_then(|h| h.http_get.as_ref())
        .expect("engine preStop httpGet");
    assert_eq!(hook.path.as_deref(), Some("/drain"));
    assert_eq!(hook.port, IntOrString::Int(9090));
    assert_eq!(hook.host, None);
    assert_eq!(hook.scheme.as_deref(), Some("HTTP"));
    assert!(container(deployment, "reader").lifecycle.is_none());

    // An explicit drain wins, and changes only its application.
    let mut changed = stack.clone();
    if let Some(app) = changed.spec.applications.get_mut("smollm2") {
        app.reader_config.drain_timeout_seconds = Some(900);
    }
    let after = built(&changed);
    let deployment = &after.applications["smollm2"].deployment;
    assert_eq!(
        env(container(deployment, "reader"))["FLIGHTDECK_SHUTDOWN_GRACE_SECONDS"],
        "900"
    );
    assert_eq!(pod(deployment).termination_grace_period_seconds, Some(910));
    assert_eq!(
        hash(&objects.gateway_deployment),
        hash(&after.gateway_deployment)
    );
}

#[test]
fn gateway_pods_roll_and_stop_without_losing_requests() {
    let stack = fixture("gpu-vllm.yaml");
    let deployment = built(&stack).gateway_deployment;
    assert_eq!(
        strategy(&deployment),
        (
            "RollingUpdate".to_owned(),
            IntOrString::Int(1),
            IntOrString::Int(0)
        )
    );
    let gateway = env(container(&deployment, "gateway"));
    assert_eq!(gateway["FLIGHTDECK_SHUTDOWN_DELAY_SECONDS"], "5");
    assert_eq!(gateway["FLIGHTDECK_SHUTDOWN_GRACE_SECONDS"], "300");
    // delay + drain (the request timeout) + margin
    assert_eq!(pod(&deployment).termination_grace_period_seconds, Some(315));

    let mut changed = stack.clone();
    changed.spec.gateway.drain_timeout_seconds = Some(0);
    let deployment = built(&changed).gateway_deployment;
    assert_eq!(
        env(container(&deployment, "gateway"))["FLIGHTDECK_SHUTDOWN_GRACE_SECONDS"],
        "0"
    );
    assert_eq!(pod(&deployment).termination_grace_period_seconds, Some(15));
}

fn gpus(container: &Container) -> (Option<String>, Option<String>) {
    let resources = container.resources.clone().unwrap_or_default();
    let get = |list: Option<BTreeMap<String, Quantity>>| {
        list.and_then(|l| l.get("nvidia.com/gpu").map(|q| q.0.clone()))
    };
    (get(resources.limits), get(resources.requests))
}

#[test]
fn cuda_engines_get_their_gpus() {
    let mut stack = fixture("gpu-vllm.yaml");
    let engine_of = |stack: &InferenceStack| {
        container(&built(stack).applications["llama-1b"].deployment, "engine").clone()
    };
    // The user's limit stands (Kubernetes defaults the request to it).
    assert_eq!(gpus(&engine_of(&stack)), (Some("1".to_owned()), None));

    // None given: tensorParallelSize as request and limit, the user's other
    // resources kept; the reader sidecar gets none.
    let app = stack.spec.applications.get_mut("llama-1b").expect("app");
    app.reader_config.tensor_parallel_size = 2;
    app.resources = Some(ResourceRequirements {
        limits: Some(BTreeMap::from([(
            "memory".to_owned(),
            Quantity("16Gi".to_owned()),
        )])),
        ..ResourceRequirements::default()
    });
    let engine = engine_of(&stack);
    assert_eq!(gpus(&engine), (Some("2".to_owned()), Some("2".to_owned())));
    let limits = engine.resources.and_then(|r| r.limits).expect("limits");
    assert_eq!(limits["memory"].0, "16Gi");
    let objects = built(&stack);
    assert!(
        container(&objects.applications["llama-1b"].deployment, "reader")
            .resources
            .is_none()
    );

    // A request alone gets its limit (Kubernetes requires both).
    let app = stack.spec.applications.get_mut("llama-1b").expect("app");
    app.resources = Some(ResourceRequirements {
        requests: Some(BTreeMap::from([(
            "nvidia.com/gpu".to_owned(),
            Quantity("4".to_owned()),
        )])),
        ..ResourceRequirements::default()
    });
    assert_eq!(
        gpus(&engine_of(&stack)),
        (Some("4".to_owned()), Some("4".to_owned()))
    );

    // CPU applications get no GPU.
    let quickstart = built(&fixture("quickstart.yaml"));
    assert_eq!(
        gpus(container(
            &quickstart.applications["smollm2"].deployment,
            "engine"
        )),
        (None, None)
    );
}

#[test]
fn every_route_says_what_its_model_serves() {
    let stack = valid(&fixture("chat-and-embeddings.yaml"));
    let config = gateway_config(&stack);
    use flightdeck_protocol::gateway_config::Task;
    assert_eq!(config.models["smollm2"].task, Task::Generate);
    assert_eq!(config.models["nomic-embed"].task, Task::Embed);
    let json = gateway_config_json(&stack).expect("json");
    assert!(json.contains("\"task\": \"embed\""), "{json}");
    let objects = built(&fixture("chat-and-embeddings.yaml"));
    let args = container(&objects.applications["nomic-embed"].deployment, "engine")
        .args
        .clone()
        .expect("args");
    assert!(args.contains(&"--embeddings".to_owned()), "{args:?}");
}

/// Every llama.cpp model the project ships (examples, the OLM sample and
/// thereby the CSV's alm-examples, the chart's default values) is a GGUF
/// file or a GGUF repository. llama-server only loads GGUF; a safetensors
/// repository makes the pod crash-loop. `validate()` cannot refuse this in
/// general (`--hf-repo` takes any repository that has GGUF files, many
/// without "GGUF" in the name), so the shipped files are checked here.
#[test]
fn shipped_llama_cpp_models_are_gguf() {
    fn walk(value: &serde_yaml::Value, file: &str, found: &mut Vec<String>) {
        match value {
            serde_yaml::Value::Mapping(map) => {
                if map.get("engine").and_then(|e| e.as_str()) == Some("llamacpp") {
                    let model = map
                        .get("readerConfig")
                        .and_then(|r| r.get("modelName"))
                        .and_then(|m| m.as_str())
                        .unwrap_or_else(|| {
                            panic!("{file}: llamacpp application without modelName")
                        });
                    let repo = model.split(':').next().unwrap_or(model);
                    let gguf = if model.starts_with('/') {
                        model.ends_with(".gguf")
                    } else {
                        repo.to_ascii_lowercase().contains("gguf")
                    };
                    assert!(
                        gguf,
                        "{file}: llama.cpp model {model:?} is no GGUF file or repository"
                    );
                    found.push(format!("{file}: {model}"));
                }
                for child in map.values() {
                    walk(child, file, found);
                }
            }
            serde_yaml::Value::Sequence(items) => {
                for child in items {
                    walk(child, file, found);
                }
            }
            // The CSV carries its examples as a JSON string annotation.
            serde_yaml::Value::String(text) if text.trim_start().starts_with('[') => {
                if let Ok(parsed) = serde_yaml::from_str::<serde_yaml::Value>(text) {
                    walk(&parsed, file, found);
                }
            }
            _ => {}
        }
    }
    let root = format!("{}/../..", env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![
        "config/samples/flightdeck_v1alpha1_inferencestack.yaml".to_owned(),
        "bundle/manifests/flightdeck-operator.clusterserviceversion.yaml".to_owned(),
        "charts/inference-stack/values.yaml".to_owned(),
    ];
    let examples = std::fs::read_dir(format!("{root}/examples")).expect("examples/");
    for entry in examples.flatten() {
        files.push(format!("examples/{}", entry.file_name().to_string_lossy()));
    }
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(format!("{root}/{file}"))
            .unwrap_or_else(|err| panic!("reading {file}: {err}"));
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_yaml::Value::deserialize(document)
                .unwrap_or_else(|err| panic!("parsing {file}: {err}"));
            walk(&value, file, &mut found);
        }
    }
    for file in &files[..3] {
        assert!(
            found.iter().any(|f| f.starts_with(file.as_str())),
            "{file} runs no llama.cpp model any more: {found:#?}"
        );
    }
}
