//! End-to-end scenarios: the real operator binary against a real API server.
//!
//! Ignored by a plain `cargo test` (they need a cluster); run them with
//! `tests/operator/run.sh`, which starts a local kube-apiserver + etcd +
//! kube-controller-manager, installs the CRD and RBAC, and passes
//! `--ignored`. They also run against any cluster KUBECONFIG points at.

mod support;

use std::{collections::BTreeMap, time::Duration};

use flightdeck_api::v1alpha1::InferenceStack;
use flightdeck_protocol::gateway_config::GatewayConfig;
use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        coordination::v1::Lease,
        core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service, ServiceAccount},
        events::v1::Event,
        networking::v1::Ingress,
    },
    apimachinery::pkg::apis::meta::v1::Condition,
};
use kube::{
    api::{DeleteParams, ListParams, Patch, PatchParams},
    Api, Resource, ResourceExt,
};
use serde_json::json;
use support::{
    child_labels, wait_for, Operator, OperatorOptions, TestEnv, TestResult, CRD_NAME,
    GATEWAY_IMAGE, LEASE_NAMESPACE, READER_IMAGE,
};

const WAIT: Duration = Duration::from_secs(60);

/// A stack with two applications, a model cache and an Ingress.
const DEMO: &str = r#"
apiVersion: flightdeck.dev/v1alpha1
kind: InferenceStack
metadata: {name: demo}
spec:
  gateway:
    replicas: 2
    ingress: {host: llm.example.com}
  applications:
    llama:
      engine: vllm
      replicas: 1
      readerConfig: {modelName: unsloth/Llama-3.2-1B-Instruct, maxBatchSize: 8}
      modelCache: {size: 1Gi}
    smol:
      engine: llamacpp
      replicas: 2
      readerConfig: {modelName: HuggingFaceTB/SmolLM2-135M-Instruct-GGUF, device: cpu}
"#;

fn small(name: &str) -> String {
    format!(
        "apiVersion: flightdeck.dev/v1alpha1\nkind: InferenceStack\nmetadata: {{name: {name}}}\n\
         spec:\n  applications:\n    smol:\n      engine: llamacpp\n      \
         readerConfig: {{modelName: HuggingFaceTB/SmolLM2-135M-Instruct-GGUF, device: cpu}}\n"
    )
}

async fn deployment(env: &TestEnv, name: &str) -> Deployment {
    let api: Api<Deployment> = env.api();
    wait_for(&format!("Deployment {name}"), WAIT, || async {
        api.get_opt(name).await.ok().flatten()
    })
    .await
}

fn condition<'a>(stack: &'a InferenceStack, type_: &str) -> Option<&'a Condition> {
    stack
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

/// Waits until the stack's status satisfies `check`.
async fn stack_where(
    env: &TestEnv,
    name: &str,
    what: &str,
    check: impl Fn(&InferenceStack) -> bool,
) -> InferenceStack {
    let stacks = env.stacks();
    wait_for(what, WAIT, || async {
        let stack = stacks.get(name).await.ok()?;
        check(&stack).then_some(stack)
    })
    .await
}

fn config_hash(deployment: &Deployment) -> String {
    deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.template.metadata.as_ref())
        .and_then(|meta| meta.annotations.as_ref())
        .and_then(|annotations| annotations.get("flightdeck.dev/config-hash"))
        .cloned()
        .unwrap_or_else(|| panic!("{} has no config-hash annotation", deployment.name_any()))
}

fn images(deployment: &Deployment) -> Vec<String> {
    deployment
        .spec
        .iter()
        .flat_map(|spec| spec.template.spec.iter())
        .flat_map(|pod| pod.containers.iter())
        .filter_map(|container| container.image.clone())
        .collect()
}

fn assert_child<K: Resource>(child: &K, stack: &InferenceStack) {
    let name = child.meta().name.clone().unwrap_or_default();
    let labels = child.meta().labels.clone().unwrap_or_default();
    for (key, value) in child_labels(&stack.name_any()) {
        assert_eq!(labels.get(key), Some(&value), "{name}: label {key}");
    }
    let owners = child.meta().owner_references.clone().unwrap_or_default();
    let owner = owners
        .iter()
        .find(|owner| Some(&owner.uid) == stack.metadata.uid.as_ref())
        .unwrap_or_else(|| panic!("{name} has no owner reference to the stack: {owners:?}"));
    assert_eq!(owner.kind, "InferenceStack");
    assert_eq!(owner.api_version, "flightdeck.dev/v1alpha1");
    assert_eq!(owner.controller, Some(true), "{name}: controller owner");
}

/// Makes a Deployment's pods ready, as a kubelet would (this cluster has
/// none). With the deployment controller running, the pods exist (Pending):
/// their status is set Ready and the ReplicaSet and Deployment controllers
/// carry it up to the Deployment's status. Without it (no pods ever), the
/// Deployment's status is set directly.
async fn simulate_ready(env: &TestEnv, name: &str) {
    let deployment = deployment(env, name).await;
    let replicas = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let selector = deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.selector.match_labels.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(",");
    let pods: Api<Pod> = env.api();
    let params = ListParams::default().labels(&selector);
    let found = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if let Ok(list) = pods.list(&params).await {
                if list.items.len() >= replicas as usize {
                    return list.items;
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await;
    match found {
        Ok(found) => {
            let now = k8s_openapi::jiff::Timestamp::now().to_string();
            let ready = json!({"status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
            ]}});
            for pod in found {
                pods.patch_status(
                    &pod.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&ready),
                )
                .await
                .expect("patch Pod status");
            }
        }
        Err(_) => {
            let api: Api<Deployment> = env.api();
            let status = json!({"status": {
                "observedGeneration": deployment.metadata.generation,
                "replicas": replicas, "updatedReplicas": replicas,
                "readyReplicas": replicas, "availableReplicas": replicas,
            }});
            api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
                .await
                .expect("patch Deployment status");
        }
    }
}

#[tokio::test]
#[ignore = "needs a Kubernetes API server: run tests/operator/run.sh"]
async fn applying_a_stack_creates_every_child_with_owner_references() -> TestResult {
    let env = TestEnv::new("children").await;
    let operator = env.operator();
    let stack = env.create_stack(DEMO).await;
    let ns = env.namespace.clone();

    let gateway = deployment(&env, "demo-gateway").await;
    assert_child(&gateway, &stack);
    assert_eq!(gateway.spec.as_ref().and_then(|s| s.replicas), Some(2));
    assert!(
        images(&gateway).contains(&GATEWAY_IMAGE.to_owned()),
        "{:?}",
        images(&gateway)
    );

    for (app, replicas) in [("llama", 1), ("smol", 2)] {
        let deployment = deployment(&env, &format!("demo-{app}")).await;
        assert_child(&deployment, &stack);
        assert_eq!(
            deployment
                .labels()
                .get("flightdeck.dev/application")
                .map(String::as_str),
            Some(app)
        );
        assert_eq!(
            deployment.spec.as_ref().and_then(|s| s.replicas),
            Some(replicas)
        );
        assert!(images(&deployment).contains(&READER_IMAGE.to_owned()));
        assert!(!config_hash(&deployment).is_empty());
    }

    let service_account = Api::<ServiceAccount>::namespaced(env.client.clone(), &ns)
        .get("demo-flightdeck")
        .await?;
    assert_child(&service_account, &stack);

    let secret = Api::<Secret>::namespaced(env.client.clone(), &ns)
        .get("demo-reader-token")
        .await?;
    assert_child(&secret, &stack);
    let token = secret
        .data
        .unwrap_or_default()
        .remove("token")
        .expect("token key");
    assert!(token.0.len() >= 32, "reader token too short");

    let config_map = Api::<ConfigMap>::namespaced(env.client.clone(), &ns)
        .get("demo-gateway")
        .await?;
    assert_child(&config_map, &stack);
    let config: GatewayConfig = serde_json::from_str(
        config_map
            .data
            .unwrap_or_default()
            .get("gateway.json")
            .expect("gateway.json"),
    )?;
    assert!(
        config.models.contains_key("unsloth/Llama-3.2-1B-Instruct"),
        "{config:?}"
    );

    let services = Api::<Service>::namespaced(env.client.clone(), &ns);
    let client_service = services.get("demo-gateway").await?;
    assert_child(&client_service, &stack);
    let port = &client_service
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default()[0];
    assert_eq!((port.name.as_deref(), port.port), (Some("http"), 8080));
    let readers = services.get("demo-gateway-readers").await?;
    assert_child(&readers, &stack);
    let spec = readers.spec.clone().unwrap_or_default();
    assert_eq!(
        spec.cluster_ip.as_deref(),
        Some("None"),
        "headless readers Service"
    );
    let port = &spec.ports.unwrap_or_default()[0];
    assert_eq!((port.name.as_deref(), port.port), (Some("readers"), 8081));

    let ingress = Api::<Ingress>::namespaced(env.client.clone(), &ns)
        .get("demo-gateway")
        .await?;
    assert_child(&ingress, &stack);
    let claim = Api::<PersistentVolumeClaim>::namespaced(env.client.clone(), &ns)
        .get("demo-llama-model-cache")
        .await?;
    assert_child(&claim, &stack);

    // Every write went through the one field manager.
    for managed in gateway.managed_fields() {
        if managed.operation.as_deref() == Some("Apply") {
            assert_eq!(managed.manager.as_deref(), Some("flightdeck-operator"));
        }
    }
    drop(operator);
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
#[ignore = "needs a Kubernetes API server: run tests/operator/run.sh"]
async fn status_reports_ready_replicas_and_the_endpoint() -> TestResult {
    let env = TestEnv::new("status").await;
    let _operator = env.operator();
    env.create_stack(DEMO).await;
    let stack = stack_where(&env, "demo", "Progressing status", |s| {
        condition(s, "Ready").is_some_and(|c| c.status == "False")
    })
    .await;
    let status = stack.status.clone().expect("status");
    assert_eq!(status.observed_generation, stack.metadata.generation);
    assert_eq!(
        status
            .gateway
            .as_ref()
            .and_then(|g| g.endpoint.clone())
            .as_deref(),
        Some(format!("http://demo-gateway.{}:8080", env.namespace).as_str())
    );
    assert_eq!(status.applications["smol"].replicas, 2);
    assert_eq!(status.applications["smol"].ready_replicas, 0);
    let ready = condition(&stack, "Ready").expect("Ready");
    assert_eq!(ready.reason, "ReplicasNotReady");
    assert!(ready.message.contains("gateway 0/2"), "{}", ready.message);
    assert_eq!(
        condition(&stack, "Degraded").map(|c| c.status.as_str()),
        Some("False")
    );

    for name in ["demo-gateway", "demo-llama", "demo-smol"] {
        simulate_ready(&env, name).await;
    }
    let stack = stack_where(&env, "demo", "Ready=True", |s| {
        condition(s, "Ready").is_some_and(|c| c.status == "True")
    })
    .await;
    let status = stack.status.clone().expect("status");
    assert_eq!(status.gateway.as_ref().map(|g| g.ready_replicas), Some(2));
    assert_eq!(status.applications["smol"].ready_replicas, 2);
    assert_eq!(status.applications["llama"].ready_replicas, 1);
    assert_eq!(status.applications_ready.as_deref(), Some("2/2"));
    assert_eq!(
        condition(&stack, "Progressing").map(|c| c.status.as_str()),
        Some("False")
    );
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
#[ignore = "needs a Kubernetes API server: run tests/operator/run.sh"]
async fn changing_reader_config_rolls_only_that_application() -> TestResult {
    let env = TestEnv::new("rollout").await;
    let _operator = env.operator();
    env.create_stack(DEMO).await;
    let before: BTreeMap<&str, String> = [
        (
            "demo-llama",
            config_hash(&deployment(&env, "demo-llama").await),
        ),
        (
            "demo-smol",
            config_hash(&deployment(&env, "demo-smol").await),
        ),
    ]
    .into();
    let gateway_before = deployment(&env, "demo-gateway").await;

    env.patch_stack(
        "demo",
        json!({"spec": {"applications": {"llama": {"readerConfig": {"maxBatchSize": 16}}}}}),
    )
    .await;
    let api: Api<Deployment> = env.api();
    let llama = wait_for("demo-llama's config hash to change", WAIT, || async {
        let deployment = api.get("demo-llama").await.ok()?;
        (config_hash(&deployment) != before["demo-llama"]).then_some(deployment)
    })
    .await;
    assert_ne!(config_hash(&llama), before["demo-llama"]);
    // Give a wrongly rolled sibling time to show up before checking.
    stack_where(&env, "demo", "the new generation observed", |s| {
        s.status.as_ref().and_then(|st| st.observed_generation) == s.metadata.generation
    })
    .await;
    let smol = deployment(&env, "demo-smol").await;
    assert_eq!(
        config_hash(&smol),
        before["demo-smol"],
        "an unrelated application rolled"
    );
    let gateway = deployment(&env, "demo-gateway").await;
    assert_eq!(
        gateway.spec.as_ref().map(|s| &s.template),
        gateway_before.spec.as_ref().map(|s| &s.template),
        "the gateway rolled for an application-only change"
    );
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
#[ignore = "needs a Kubernetes API server: run tests/operator/run.sh"]
async fn removing_an_application_deletes_its_deployment_and_cache() -> TestResult {
    let env = TestEnv::new("remove-app").await;
    let _operator = env.operator();
    env.create_stack(DEMO).await;
    deployment(&env, "demo-llama").await;
    deployment(&env, "demo-smol").await;
    let claims: Api<PersistentVolumeClaim> = env.api();
    wait_for("model cache PVC", WAIT, || async {
        claims
            .get_opt("demo-llama-model-cache")
            .await
            .ok()
            .flatten()
    })
    .await;

    // Remove one application and the Ingress.
    env.patch_stack(
        "demo",
        json!({"spec": {"applications": {"llama": null}, "gateway": {"ingress": null}}}),
    )
    .await;
    let deployments: Api<Deployment> = env.api();
    wait_for("demo-llama deleted", WAIT, || async {
        match deployments.get_opt("demo-llama").await {
            Ok(None) => Some(()),
            Ok(Some(d)) if d.metadata.deletion_timestamp.is_some() => Some(()),
            _ => None,
        }
    })
    .await;
    wait_for("its PVC deleted", WAIT, || async {
        match claims.get_opt("demo-llama-model-cache").await {
            Ok(None) => Some(()),
            Ok(Some(c)) if c.metadata.deletion_timestamp.is_some() => Some(()),
            _ => None,
        }
    })
    .await;
    let ingresses: Api<Ingress> = env.api();
    wait_for("Ingress deleted", WAIT, || async {
        ingresses
            .get_opt("demo-gateway")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    assert!(
        deployments.get_opt("demo-smol").await?.is_some(),
        "the other application stays"
    );
    let stack = stack_where(&env, "demo", "status without llama", |s| {
        s.status
            .as_ref()
            .is_some_and(|st| !st.applications.contains_key("llama"))
    })
    .await;
    assert!(stack
        .status
        .expect("status")
        .applications
        .contains_key("smol"));
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
#[ignore = "needs a Kubernetes API server: run tests/operator/run.sh"]
async fn deleting_the_stack_garbage_collects_its_children() -> TestResult {
    let env = TestEnv::new("delete").await;
    let _operator = env.operator();
    env.create_stack(DEMO).await;
    deployment(&env, "demo-smol").await;
    env.stacks()
        .delete("demo", &DeleteParams::background())
        .await?;
    let deployments: Api<Deployment> = env.api();
    let services: Api<Service> = env.api();
    let params = ListParams::default().labels("flightdeck.dev/stack=demo");
    wait_for(
        "children garbage-collected",
        Duration::from_secs(90),
        || async {
            let left = deployments.list(&params).await.ok()?.items.len()
                + services.list(&params).await.ok()?.items.len();
            (left == 0).then_some(())
        },
    )
    .await;
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
#[ignore = "needs a Kubernetes API server: run tests/operator/run.sh"]
async fn api_server_rejects_a_schema_violation_with_its_field_path() -> TestResult {
    let env = TestEnv::new("schema").await;
    let error = env
        .create_raw_stack(json!({
            "apiVersion": "flightdeck.dev/v1alpha1", "kind": "InferenceStack",
            "metadata": {"name": "bad", "namespace": env.namespace},
            "spec": {"applications": {"smol": {
                "engine": "llamacpp", "replicas": -1,
                "readerConfig": {"modelName": "m"}}}}
        }))
        .await
        .expect_err("replicas: -1 must be rejected by the schema");
    let message = error.to_string();
    assert!(
        message.contains("spec.applications.smol.replicas"),
        "{message}"
    );

    let error = env
        .create_raw_stack(json!({
            "apiVersion": "flightdeck.dev/v1alpha1", "kind": "InferenceStack",
            "metadata": {"name": "bad", "namespace": env.namespace},
            "spec": {"applications": {"smol": {
                "engine": "mystery", "readerConfig": {"modelName": "m"}}}}
        }))
        .await
        .expect_err("an unknown engine must be rejected by the schema");
    assert!(
        error.to_string().contains("spec.applications.smol.engine"),
        "{error}"
    );
    env.cleanup().await;
    Ok(())
}

/// An application name the 1.20 API server accepts (it drops CEL rules) but
/// `validate()` refuses: reported as Degraded with the path, and the other
/// stacks are reconciled regardless.
#[tokio::test]
#[ignore = "needs a Kubernetes API server: run tests/operator/run.sh"]
async fn an_invalid_stack_is_degraded_with_its_path_and_does_not_stop_the_others() -> TestResult {
    let env = TestEnv::new("invalid").await;
    let _operator = env.operator();
    env.create_stack(&small("first")).await;
    let bad_app = "Not_A_Dns_Label";
    let bad = small("broken").replace("smol:", &format!("{bad_app}:"));
    env.create_stack(&bad).await;
    env.create_stack(&small("second")).await;

    deployment(&env, "first-smol").await;
    deployment(&env, "second-smol").await;
    let broken = stack_where(&env, "broken", "broken stack Degraded", |s| {
        condition(s, "Degraded").is_some_and(|c| c.status == "True")
    })
    .await;
    let degraded = condition(&broken, "Degraded").expect("Degraded");
    assert_eq!(degraded.reason, "InvalidSpec");
    assert!(
        degraded
            .message
            .contains(&format!("spec.applications.{bad_app}")),
        "{}",
        degraded.message
    );
    let deployments: Api<Deployment> = env.api();
    assert!(
        deployments.get_opt("broken-gateway").await?.is_none(),
        "nothing applied for an invalid stack"
    );

    let events: Api<Event> = env.api();
    wait_for("an InvalidSpec Event", WAIT, || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("InvalidSpec")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("broken")
            })
            .then_some(())
    })
    .await;

    // Fixing it recovers the stack.
    let stacks = env.stacks();
    let mut fixed = stacks.get("broken").await?;
    let app = fixed.spec.applications.remove(bad_app).expect("bad app");
    fixed.spec.applications.insert("smol".into(), app);
    fixed.metadata.managed_fields = None;
    stacks
        .replace("broken", &Default::default(), &fixed)
        .await?;
    deployment(&env, "broken-smol").await;
    stack_where(&env, "broken", "Degraded=False after the fix", |s| {
        condition(s, "Degraded").is_some_and(|c| c.status == "False")
    })
    .await;
    env.cleanup().await;
    Ok(())
}

/// Resource versions of the stack and everything labelled for it.
async fn versions(env: &TestEnv, stack: &str) -> BTreeMap<String, String> {
    let params = ListParams::default().labels(&format!("flightdeck.dev/stack={stack}"));
    let mut versions = BTreeMap::new();
    macro_rules! collect {
        ($kind:ty) => {
            for item in env.api::<$kind>().list(&params).await.expect("list") {
                versions.insert(
                    format!("{}/{}", stringify!($kind), item.name_any()),
                    item.resource_version().unwrap_or_default(),
                );
            }
        };
    }
    collect!(Deployment);
    collect!(Service);
    collect!(ConfigMap);
    collect!(Secret);
    collect!(ServiceAccount);
    collect!(PersistentVolumeClaim);
    collect!(Ingress);
    let stack = env.stacks().get(stack).await.expect("stack");
    versions.insert(
        "InferenceStack".into(),
        stack.resource_version().unwrap_or_default(),
    );
    versions
}

#[tokio::test]
#[ignore = "needs a Kubernetes API server: run tests/operator/run.sh"]
async fn a_restarted_operator_makes_no_writes_when_nothing_changed() -> TestResult {
    let env = TestEnv::new("idle").await;
    let operator = env.operator();
    env.create_stack(DEMO).await;
    stack_where(&env, "demo", "first status", |s| {
        s.status.as_ref().and_then(|st| st.observed_generation) == s.metadata.generation
    })
    .await;
    // Settled: two snapshots a while apart agree.
    let settled = wait_for("a settled stack", WAIT, || async {
        let first = versions(&env, "demo").await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        (versions(&env, "demo").await == first).then_some(first)
    })
    .await;
    assert!(
        operator.terminate().success(),
        "operator exits cleanly on SIGTERM"
    );

    let restarted = env.operator();
    wait_for("the restarted operator reconciled", WAIT, || async {
        let done = restarted
            .metric("flightdeck_operator_reconciles_total{result=\"success\"}")
            .await?;
        (done >= 1.0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        versions(&env, "demo").await,
        settled,
        "a restart rewrote something"
    );
    let status_writes = restarted
        .metric(
            "flightdeck_operator_api_writes_total{kind=\"InferenceStack/status\",verb=\"patch\"}",
        )
        .await;
    assert_eq!(
        status_writes,
        None,
        "status written without a change:\n{}",
        restarted.log_text()
    );
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
#[ignore = "needs a Kubernetes API server: run tests/operator/run.sh"]
async fn operators_with_disjoint_selectors_never_touch_each_others_stacks() -> TestResult {
    let env = TestEnv::new("selectors").await;
    let (label_a, label_b) = (format!("{}-a", env.id), format!("{}-b", env.id));
    let operator_a = Operator::start(OperatorOptions {
        gateway_image: "gateway:a".into(),
        ..OperatorOptions::new(&label_a)
    });
    let operator_b = Operator::start(OperatorOptions {
        gateway_image: "gateway:b".into(),
        ..OperatorOptions::new(&label_b)
    });
    env.create_stack_for(&label_a, &small("alpha")).await;
    env.create_stack_for(&label_b, &small("beta")).await;
    let alpha = deployment(&env, "alpha-gateway").await;
    let beta = deployment(&env, "beta-gateway").await;
    assert_eq!(images(&alpha), vec!["gateway:a".to_owned()]);
    assert_eq!(images(&beta), vec!["gateway:b".to_owned()]);
    for operator in [&operator_a, &operator_b] {
        wait_for("stacks_managed = 1", WAIT, || async {
            (operator
                .metric("flightdeck_operator_stacks_managed")
                .await?
                == 1.0)
                .then_some(())
        })
        .await;
    }
    // A later change to alpha is still only operator A's.
    env.patch_stack("alpha", json!({"spec": {"gateway": {"replicas": 3}}}))
        .await;
    let deployments: Api<Deployment> = env.api();
    let alpha = wait_for("alpha scaled", WAIT, || async {
        let d = deployments.get("alpha-gateway").await.ok()?;
        (d.spec.as_ref()?.replicas == Some(3)).then_some(d)
    })
    .await;
    assert_eq!(images(&alpha), vec!["gateway:a".to_owned()]);
    assert_eq!(
        images(&deployment(&env, "beta-gateway").await),
        vec!["gateway:b".to_owned()]
    );
    env.cleanup().await;
    Ok(())
}

async fn lease_holder(env: &TestEnv, name: &str) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), LEASE_NAMESPACE);
    leases.get_opt(name).await.ok()??.spec?.holder_identity
}

#[tokio::test]
#[ignore = "needs a Kubernetes API server: run tests/operator/run.sh"]
async fn a_standby_replica_waits_for_the_lease_then_takes_over() -> TestResult {
    let env = TestEnv::new("leader").await;
    let options = OperatorOptions::new(&env.id);
    let first = Operator::start(options.clone());
    first.wait_ready().await;
    wait_for("first replica leads", WAIT, || async {
        (first.metric("flightdeck_operator_leader").await? == 1.0).then_some(())
    })
    .await;
    let second = Operator::start(options.clone());
    second.wait_ready().await;
    env.create_stack(&small("led")).await;
    deployment(&env, "led-gateway").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(second.metric("flightdeck_operator_leader").await, Some(0.0));
    assert_eq!(
        second
            .metric("flightdeck_operator_reconciles_total{result=\"success\"}")
            .await,
        Some(0.0),
        "the standby reconciled"
    );
    let holder = lease_holder(&env, &options.lease_name)
        .await
        .expect("lease holder");

    // Graceful stop releases the lease: the standby takes over at once.
    assert!(first.terminate().success());
    wait_for("standby leads", Duration::from_secs(30), || async {
        (second.metric("flightdeck_operator_leader").await? == 1.0).then_some(())
    })
    .await;
    assert_ne!(lease_holder(&env, &options.lease_name).await, Some(holder));
    env.patch_stack("led", json!({"spec": {"gateway": {"replicas": 2}}}))
        .await;
    let deployments: Api<Deployment> = env.api();
    wait_for("the new leader reconciles", WAIT, || async {
        (deployments.get("led-gateway").await.ok()?.spec?.replicas == Some(2)).then_some(())
    })
    .await;

    // A crashed leader (no release) is replaced after the lease expires.
    let third = Operator::start(options.clone());
    third.wait_ready().await;
    drop(second); // SIGKILL
    wait_for("takeover after expiry", Duration::from_secs(40), || async {
        (third.metric("flightdeck_operator_leader").await? == 1.0).then_some(())
    })
    .await;
    env.cleanup().await;
    Ok(())
}

/// Waits until the operator's log and /readyz both say it waits for the CRD.
async fn waiting_for_the_crd(operator: &Operator) {
    wait_for("the operator waits for the CRD", WAIT, || async {
        let (status, reason) = operator.readyz().await?;
        let waiting = format!("waiting for the CRD {CRD_NAME}");
        (status == 503 && reason.contains(&waiting) && operator.log_text().contains(&waiting))
            .then_some(())
    })
    .await;
}

/// Installing the operator before its CRD is an ordinary order (a chart
/// without `crds/`, a GitOps sync): the operator waits for the CRD, saying
/// so in its log and on /readyz, stops cleanly on SIGTERM while it waits,
/// and reconciles once the CRD is installed.
#[tokio::test]
#[ignore = "needs a Kubernetes API server: run tests/operator/run.sh"]
async fn an_operator_started_before_its_crd_waits_for_it() -> TestResult {
    let env = TestEnv::exclusive("crd-later").await;
    env.remove_crd().await;

    let mut stopped_while_waiting =
        Operator::start(OperatorOptions::new(&format!("{}-stop", env.id)));
    let mut operator = env.operator();
    waiting_for_the_crd(&stopped_while_waiting).await;
    waiting_for_the_crd(&operator).await;
    // Still waiting a while later: no exit, no crash loop.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        stopped_while_waiting.is_running() && operator.is_running(),
        "an operator exited while waiting for the CRD:\n{}",
        operator.log_text()
    );
    let log = stopped_while_waiting.log_text();
    assert!(
        stopped_while_waiting.terminate().success(),
        "SIGTERM while waiting is a clean stop:\n{log}"
    );

    env.install_crd().await;
    wait_for(
        "ready once the CRD is served",
        Duration::from_secs(90),
        || async { (operator.readyz().await?.0 == 200).then_some(()) },
    )
    .await;
    assert!(
        operator
            .log_text()
            .contains("the watched kind is served: starting"),
        "{}",
        operator.log_text()
    );
    env.create_stack(&small("late")).await;
    let gateway = deployment(&env, "late-gateway").await;
    assert_eq!(images(&gateway), vec![GATEWAY_IMAGE.to_owned()]);
    assert!(operator.terminate().success());
    env.cleanup().await;
    Ok(())
}
