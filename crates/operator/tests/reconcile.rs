//! The reconciler against a mocked API server: every request it sends, in
//! order, with what it sends and what it gets back. No cluster needed (the
//! real-API-server scenarios are in e2e.rs).

mod api_server;

use std::{panic, sync::Arc, time::Duration};

use api_server::{respond, respond_failure, ApiServerVerifier};
use flightdeck_operator::{
    error::{Category, ReconcileError},
    metrics::Metrics,
    reconcile::{error_policy, reconcile},
};
use http::{Method, StatusCode};
use kube::{api::DynamicObject, runtime::controller::Action};
use serde_json::{json, Value};

/// The stack's children, where the API server keeps them.
const CORE: &str = "/api/v1/namespaces/llm";
const APPS: &str = "/apis/apps/v1/namespaces/llm";
const NETWORKING: &str = "/apis/networking.k8s.io/v1/namespaces/llm";
const TOKEN_SECRET: &str = "/api/v1/namespaces/llm/secrets/demo-reader-token";

/// A stack as the API server stores it: two applications, one with a model
/// cache, and an Ingress.
fn stack(spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "flightdeck.dev/v1alpha1",
        "kind": "InferenceStack",
        "metadata": {"name": "demo", "namespace": "llm", "uid": "stack-uid", "generation": 2},
        "spec": spec,
    }))
    .expect("a DynamicObject")
}

fn demo_spec() -> Value {
    json!({
        "gateway": {"ingress": {"host": "llm.example.com"}},
        "applications": {
            "llama": {
                "engine": "vllm",
                "readerConfig": {"modelName": "unsloth/Llama-3.2-1B-Instruct"},
                "modelCache": {"size": "1Gi"},
            },
            "smol": {
                "engine": "llamacpp",
                "readerConfig": {"modelName": "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF", "device": "cpu"},
            },
        },
    })
}

/// What one reconcile against the mocked API server came to.
struct Reconciled<T> {
    result: Result<Action, ReconcileError>,
    /// What `error_policy` decides after a failure.
    policy: Option<Action>,
    metrics: Metrics,
    /// What the scenario returned.
    seen: T,
}

impl<T> Reconciled<T> {
    fn metric(&self, series: &str) -> Option<f64> {
        self.metrics.render().lines().find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok()).flatten()
        })
    }
}

/// Runs one reconcile of `object` while `scenario` plays the API server.
/// Once the scenario is over, any further request fails the test (the
/// verifier waits until the context, and so every client, is dropped).
async fn run<T, F>(
    object: DynamicObject,
    scenario: impl FnOnce(ApiServerVerifier) -> F,
) -> Reconciled<T>
where
    F: std::future::Future<Output = (ApiServerVerifier, T)> + Send + 'static,
    T: Send + 'static,
{
    let (ctx, server) = api_server::context();
    let object = Arc::new(object);
    let playing = scenario(server);
    let server = tokio::spawn(async move {
        let (server, seen) = playing.await;
        server.done().await;
        seen
    });
    let result = tokio::time::timeout(
        Duration::from_secs(20),
        reconcile(object.clone(), ctx.clone()),
    )
    .await;
    let policy = match &result {
        Ok(Err(error)) => Some(error_policy(object, error, ctx.clone())),
        _ => None,
    };
    let metrics = ctx.metrics.clone();
    assert_eq!(
        Arc::strong_count(&ctx),
        1,
        "the reconcile kept a reference to its context"
    );
    drop(ctx);
    // A failed expectation explains a stuck reconcile better than the
    // timeout does: report it first.
    let seen = match server.await {
        Ok(seen) => seen,
        Err(error) => panic::resume_unwind(error.into_panic()),
    };
    Reconciled {
        result: result.expect("the reconcile finished"),
        policy,
        metrics,
        seen,
    }
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|conditions| conditions.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"))
}

#[tokio::test]
async fn a_forbidden_apply_degrades_the_stack_and_warns() {
    let outcome = run(stack(demo_spec()), |mut server| async move {
        let (_, send) = server.expect(Method::GET, TOKEN_SECRET).await;
        respond_failure(
            send,
            404,
            "NotFound",
            "secrets \"demo-reader-token\" not found",
        );
        let (call, send) = server
            .expect(
                Method::PATCH,
                &format!("{CORE}/serviceaccounts/demo-flightdeck"),
            )
            .await;
        assert_eq!(call.body["kind"], "ServiceAccount");
        respond_failure(
            send,
            403,
            "Forbidden",
            "serviceaccounts \"demo-flightdeck\" is forbidden: User cannot patch resource",
        );
        let status = server.expect_status_patch().await;
        let event = server.expect_event("Warning", "ApiCallFailed").await;
        assert!(
            event["note"]
                .as_str()
                .is_some_and(|note| note.contains("apply ServiceAccount llm/demo-flightdeck")),
            "{event}"
        );
        (server, status)
    })
    .await;

    let degraded = condition(&outcome.seen, "Degraded");
    assert_eq!(degraded["status"], "True");
    assert_eq!(degraded["reason"], "ReconcileFailed");
    assert!(
        degraded["message"]
            .as_str()
            .is_some_and(|message| message.contains("forbidden")),
        "{degraded}"
    );
    let error = outcome
        .result
        .as_ref()
        .expect_err("a forbidden apply fails the reconcile");
    assert_eq!(error.category(), Category::Forbidden);
    assert!(
        outcome
            .policy
            .as_ref()
            .is_some_and(|policy| *policy != Action::await_change()),
        "a forbidden apply is retried: {:?}",
        outcome.policy
    );
    assert_eq!(
        outcome.metric("flightdeck_operator_reconcile_failures_total{category=\"forbidden\"}"),
        Some(1.0)
    );
}

#[tokio::test]
async fn an_invalid_spec_writes_one_status_and_applies_nothing() {
    let mut spec = demo_spec();
    spec["applications"]["Not_A_Dns_Label"] = spec["applications"]["smol"].clone();
    let outcome = run(stack(spec.clone()), |mut server| async move {
        let status = server.expect_status_patch().await;
        server.expect_event("Warning", "InvalidSpec").await;
        (server, status)
    })
    .await;

    let degraded = condition(&outcome.seen, "Degraded");
    assert_eq!(
        (&degraded["status"], &degraded["reason"]),
        (&json!("True"), &json!("InvalidSpec"))
    );
    assert!(
        degraded["message"]
            .as_str()
            .is_some_and(|m| m.contains("spec.applications.Not_A_Dns_Label")),
        "{degraded}"
    );
    let error = outcome.result.as_ref().expect_err("invalid");
    assert_eq!(error.category(), Category::InvalidSpec);
    assert_eq!(outcome.policy, Some(Action::await_change()));

    // Reconciled again with that status stored: nothing to write, no Event.
    let mut again = stack(spec);
    again.data["status"] = outcome.seen;
    let outcome = run(again, |server| async move { (server, ()) }).await;
    assert!(matches!(
        outcome.result,
        Err(ReconcileError::InvalidSpec { .. })
    ));
}

#[tokio::test]
async fn a_healthy_stack_is_applied_in_dependency_order_and_orphans_are_swept() {
    let outcome = run(stack(demo_spec()), |mut server| async move {
        // The stored token is reused: applying never rotates it.
        let (_, send) = server.expect(Method::GET, TOKEN_SECRET).await;
        respond(
            send,
            StatusCode::OK,
            &json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "demo-reader-token", "namespace": "llm"},
                "data": {"token": "c3RvcmVkLXRva2Vu"}}),
        );

        let mut applied = Vec::new();
        for path in [
            format!("{CORE}/serviceaccounts/demo-flightdeck"),
            format!("{CORE}/secrets/demo-reader-token"),
            format!("{CORE}/configmaps/demo-gateway"),
            format!("{CORE}/services/demo-gateway"),
            format!("{CORE}/services/demo-gateway-readers"),
            format!("{CORE}/persistentvolumeclaims/demo-llama-model-cache"),
            format!("{APPS}/deployments/demo-gateway"),
            format!("{APPS}/deployments/demo-llama"),
            format!("{APPS}/deployments/demo-smol"),
            format!("{NETWORKING}/ingresses/demo-gateway"),
        ] {
            let call = server.expect_apply(&path).await;
            let owner = &call.body["metadata"]["ownerReferences"][0];
            assert_eq!(
                (&owner["uid"], &owner["controller"]),
                (&json!("stack-uid"), &json!(true)),
                "{path}"
            );
            assert_eq!(
                call.body["metadata"]["labels"]["flightdeck.dev/stack"], "demo",
                "{path}"
            );
            applied.push(call.body);
        }

        // Every applied kind is swept, the last applied first.
        server
            .expect_orphan_list(
                &format!("{NETWORKING}/ingresses"),
                "demo",
                &[("demo-gateway", "stack-uid")],
            )
            .await;
        server
            .expect_orphan_list(
                &format!("{APPS}/deployments"),
                "demo",
                &[
                    ("demo-gateway", "stack-uid"),
                    ("demo-llama", "stack-uid"),
                    ("demo-removed", "stack-uid"),
                    ("demo-smol", "stack-uid"),
                    // Labelled for the stack but controlled by another
                    // object: never deleted.
                    ("demo-adopted", "someone-else"),
                ],
            )
            .await;
        let (_, send) = server
            .expect(Method::DELETE, &format!("{APPS}/deployments/demo-removed"))
            .await;
        respond(
            send,
            StatusCode::OK,
            &json!({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Success"}),
        );
        for kind in [
            "persistentvolumeclaims",
            "services",
            "configmaps",
            "secrets",
            "serviceaccounts",
        ] {
            server
                .expect_orphan_list(&format!("{CORE}/{kind}"), "demo", &[])
                .await;
        }

        server.expect_event("Normal", "OrphanDeleted").await;
        let status = server.expect_status_patch().await;
        server.expect_event("Normal", "Reconciled").await;
        (server, (applied, status))
    })
    .await;
    let (applied, status) = &outcome.seen;

    assert_eq!(
        outcome.result.as_ref().expect("reconciled"),
        &Action::requeue(Duration::from_secs(600))
    );
    assert_eq!(
        applied[1]["data"]["token"], "c3RvcmVkLXRva2Vu",
        "the stored reader token is kept"
    );
    assert_eq!(status["observedGeneration"], 2);
    assert_eq!(
        status["gateway"]["endpoint"],
        "http://demo-gateway.llm:8080"
    );
    assert_eq!(condition(status, "Degraded")["status"], "False");
    assert_eq!(condition(status, "Ready")["status"], "False");
    assert_eq!(
        outcome.metric("flightdeck_operator_api_writes_total{kind=\"Deployment\",verb=\"delete\"}"),
        Some(1.0)
    );
    assert_eq!(
        outcome.metric("flightdeck_operator_reconciles_total{result=\"success\"}"),
        Some(1.0)
    );
}
