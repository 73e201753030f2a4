//! Handler tests: the client and reader routers driven with `oneshot`, no
//! sockets. They cover every error path a client can hit and one complete
//! lease/upload round trip through the handlers.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::response::Response;
use axum::Router;
use bytes::Bytes;
use flightdeck_gateway::auth::{ApiKeys, ReaderToken};
use flightdeck_gateway::metrics::Metrics;
use flightdeck_gateway::state::{AppState, SharedState};
use flightdeck_gateway::{client_router, reader_router};
use flightdeck_protocol::gateway_config::{GatewayConfig, ModelRoute, Task};
use tower::ServiceExt;

const TOKEN: &str = "reader-secret";

fn config(max_depth: u32, timeout_seconds: u32) -> GatewayConfig {
    let mut config = GatewayConfig::default();
    config.queue.max_depth = max_depth;
    config.queue.request_timeout_seconds = timeout_seconds;
    config.queue.max_redeliveries = 1;
    config.models.insert(
        "smollm2".into(),
        ModelRoute {
            consumer_groups: vec!["cpu".into()],
            engine: Some("llamacpp".into()),
            ..Default::default()
        },
    );
    config.models.insert(
        "tiny".into(),
        ModelRoute {
            consumer_groups: vec!["cpu".into()],
            engine: None,
            ..Default::default()
        },
    );
    config
}

fn state_with(config: &GatewayConfig, keys: ApiKeys, max_body: usize) -> SharedState {
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let state = Arc::new(AppState::new(
        metrics,
        ReaderToken::new(Some(TOKEN)),
        keys,
        max_body,
    ));
    state.apply_config(config);
    state
}

fn state() -> SharedState {
    state_with(&config(8, 30), ApiKeys::default(), 1024)
}

fn chat(body: &str) -> Request<Body> {
    Request::post("/v1/chat/completions")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("request")
}

async fn send(router: Router, request: Request<Body>) -> Response {
    router.oneshot(request).await.expect("infallible")
}

async fn json(response: Response) -> serde_json::Value {
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    serde_json::from_slice(&bytes).expect("json body")
}

/// Asserts the OpenAI error shape and returns `error.code`.
async fn error_code(response: Response) -> String {
    let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
    assert_eq!(
        content_type.as_ref().and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let value = json(response).await;
    let error = value.get("error").expect("error object");
    for field in ["message", "type", "param", "code"] {
        assert!(
            error.get(field).is_some(),
            "error.{field} missing in {value}"
        );
    }
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    error["code"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn malformed_requests_are_400() {
    let state = state();
    for body in [
        r#"{"model":"smollm2""#,
        r#"{"messages":[]}"#,
        r#"{"model":42}"#,
        r#"{"model":"smollm2","stream":"yes"}"#,
        "[]",
        "",
    ] {
        let response = send(client_router(state.clone()), chat(body)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "body {body:?}");
        assert_eq!(error_code(response).await, "invalid_request");
    }
}

#[tokio::test]
async fn unknown_model_is_404_with_param_model() {
    let response = send(
        client_router(state()),
        chat(r#"{"model":"gpt-9","messages":[]}"#),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let value = json(response).await;
    assert_eq!(value["error"]["code"], "model_not_found");
    assert_eq!(value["error"]["param"], "model");
}

#[tokio::test]
async fn unknown_path_is_an_openai_404() {
    let request = Request::get("/v1/nothing")
        .body(Body::empty())
        .expect("request");
    let response = send(client_router(state()), request).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(response).await, "not_found");
}

#[tokio::test]
async fn wrong_method_is_an_openai_405() {
    let request = Request::get("/v1/chat/completions")
        .body(Body::empty())
        .expect("request");
    let response = send(client_router(state()), request).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_code(response).await, "method_not_allowed");
}

#[tokio::test]
async fn oversized_body_is_413() {
    let big = format!(r#"{{"model":"smollm2","prompt":"{}"}}"#, "x".repeat(2048));
    let response = send(client_router(state()), chat(&big)).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(response).await, "request_too_large");
    // Without a Content-Length the limit still holds.
    let chunks = futures::stream::iter(
        (0..64).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 64]))),
    );
    let request = Request::post("/v1/completions")
        .body(Body::from_stream(chunks))
        .expect("request");
    let response = send(client_router(state()), request).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn api_keys_are_enforced_when_configured() {
    let keys = ApiKeys::new(vec![b"sk-good".to_vec()]);
    let state = state_with(&config(8, 30), keys, 1024);
    let response = send(client_router(state.clone()), chat(r#"{"model":"smollm2"}"#)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(response).await, "invalid_api_key");
    let mut request = Request::get("/v1/models")
        .body(Body::empty())
        .expect("request");
    request.headers_mut().insert(
        header::AUTHORIZATION,
        "Bearer sk-bad".parse().expect("header"),
    );
    assert_eq!(
        send(client_router(state.clone()), request).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let mut request = Request::get("/v1/models")
        .body(Body::empty())
        .expect("request");
    request.headers_mut().insert(
        header::AUTHORIZATION,
        "Bearer sk-good".parse().expect("header"),
    );
    assert_eq!(
        send(client_router(state), request).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn models_lists_every_routed_model() {
    let response = send(
        client_router(state()),
        Request::get("/v1/models")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let value = json(response).await;
    assert_eq!(value["object"], "list");
    let ids: Vec<&str> = value["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, vec!["smollm2", "tiny"]);
    assert_eq!(value["data"][0]["object"], "model");
    assert_eq!(value["data"][0]["owned_by"], "llamacpp");
}

#[tokio::test]
async fn full_queue_is_429_with_retry_after() {
    let state = state_with(&config(1, 30), ApiKeys::default(), 1024);
    let waiting = tokio::spawn(send(
        client_router(state.clone()),
        chat(r#"{"model":"smollm2"}"#),
    ));
    while state.broker.depth("cpu") != Some(1) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let response = send(client_router(state.clone()), chat(r#"{"model":"tiny"}"#)).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    assert_eq!(error_code(response).await, "queue_full");
    waiting.abort();
    let _ = waiting.await;
    // The aborted client's request left the queue with it.
    assert_eq!(state.broker.depth("cpu"), Some(0));
}

#[tokio::test]
async fn unanswered_request_is_504_after_the_timeout() {
    let state = state_with(&config(8, 1), ApiKeys::default(), 1024);
    let started = std::time::Instant::now();
    let response = send(client_router(state.clone()), chat(r#"{"model":"smollm2"}"#)).await;
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(error_code(response).await, "timeout");
    assert_eq!(
        state.broker.depth("cpu"),
        Some(0),
        "timed-out request is not served later"
    );
}

#[tokio::test]
async fn reader_api_needs_the_token() {
    let state = state();
    let request = Request::post("/v1/reader/lease?groups=cpu&waitMs=0")
        .body(Body::empty())
        .expect("request");
    let response = send(reader_router(state.clone()), request).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(response).await, "invalid_reader_token");
    let request = Request::post("/v1/reader/lease?groups=cpu&waitMs=0")
        .header(header::AUTHORIZATION, "Bearer wrong")
        .body(Body::empty())
        .expect("request");
    assert_eq!(
        send(reader_router(state), request).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

fn lease_request(wait_ms: u64) -> Request<Body> {
    Request::post(format!("/v1/reader/lease?groups=cpu&waitMs={wait_ms}"))
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header("x-flightdeck-reader-id", "test-reader")
        .body(Body::empty())
        .expect("request")
}

fn upload_request(lease: &str, body: Body) -> Request<Body> {
    Request::post(format!("/v1/reader/leases/{lease}/response"))
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(body)
        .expect("request")
}

async fn lease_one(state: &SharedState) -> (String, Bytes) {
    let response = send(reader_router(state.clone()), lease_request(2000)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["x-flightdeck-path"],
        "/v1/chat/completions"
    );
    let lease = response.headers()["x-flightdeck-lease"]
        .to_str()
        .expect("ascii")
        .to_string();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (lease, body)
}

#[tokio::test]
async fn lease_and_upload_relay_the_engine_answer_unchanged() {
    let state = state();
    let client_body =
        r#"{"model":"smollm2","messages":[{"role":"user","content":"hi"}],"temperature":0.5}"#;
    let client = tokio::spawn(send(client_router(state.clone()), chat(client_body)));
    let (lease, body) = lease_one(&state).await;
    assert_eq!(
        body,
        Bytes::from(client_body),
        "the body reaches the reader byte for byte"
    );
    let answer =
        "{\"status\":201,\"contentType\":\"application/json\"}\n{\"id\":\"x\",\"choices\":[]}";
    let upload = send(
        reader_router(state.clone()),
        upload_request(&lease, Body::from(answer)),
    )
    .await;
    assert_eq!(upload.status(), StatusCode::OK);
    let response = client.await.expect("client task");
    assert_eq!(response.status(), StatusCode::CREATED);
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    assert_eq!(bytes, Bytes::from_static(b"{\"id\":\"x\",\"choices\":[]}"));
}

#[tokio::test]
async fn empty_queue_lease_is_204_with_heads() {
    let response = send(reader_router(state()), lease_request(0)).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(response.headers()["x-flightdeck-heads"], "cpu=0/0");
}

#[tokio::test]
async fn reader_lost_before_first_byte_redelivers_then_503() {
    let state = state();
    let client = tokio::spawn(send(
        client_router(state.clone()),
        chat(r#"{"model":"smollm2"}"#),
    ));
    for _ in 0..2 {
        let (lease, _) = lease_one(&state).await;
        let broken =
            futures::stream::iter(vec![Err::<Bytes, _>(std::io::Error::other("reader died"))]);
        let upload = send(
            reader_router(state.clone()),
            upload_request(&lease, Body::from_stream(broken)),
        )
        .await;
        assert_eq!(upload.status(), StatusCode::OK);
    }
    // maxRedeliveries is 1: the second loss ends the request.
    let response = client.await.expect("client task");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(response).await, "redeliveries_exhausted");
}

#[tokio::test]
async fn reader_lost_mid_stream_ends_with_an_sse_error_event() {
    let state = state();
    let client = tokio::spawn(send(
        client_router(state.clone()),
        chat(r#"{"model":"smollm2","stream":true}"#),
    ));
    let (lease, _) = lease_one(&state).await;
    let parts: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from_static(
            b"{\"status\":200,\"contentType\":\"text/event-stream\"}\n",
        )),
        Ok(Bytes::from_static(
            b"data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n",
        )),
        Err(std::io::Error::other("reader died")),
    ];
    let _ = send(
        reader_router(state.clone()),
        upload_request(&lease, Body::from_stream(futures::stream::iter(parts))),
    )
    .await;
    let response = client.await.expect("client task");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    let text = String::from_utf8(bytes.to_vec()).expect("utf8");
    assert!(text.starts_with("data: {\"choices\""), "{text}");
    assert!(
        text.contains("data: {\"error\""),
        "stream must end with an error event: {text}"
    );
    assert!(text.contains("reader_lost"));
}

#[tokio::test]
async fn reader_lost_mid_body_of_a_json_answer_is_502() {
    let state = state();
    let client = tokio::spawn(send(
        client_router(state.clone()),
        chat(r#"{"model":"smollm2"}"#),
    ));
    let (lease, _) = lease_one(&state).await;
    let parts: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from_static(
            b"{\"status\":200,\"contentType\":\"application/json\"}\n{\"id\":",
        )),
        Err(std::io::Error::other("reader died")),
    ];
    let _ = send(
        reader_router(state.clone()),
        upload_request(&lease, Body::from_stream(futures::stream::iter(parts))),
    )
    .await;
    let response = client.await.expect("client task");
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(error_code(response).await, "reader_lost");
}

#[tokio::test]
async fn upload_for_an_unknown_lease_is_404() {
    let response = send(
        reader_router(state()),
        upload_request("999", Body::from("{\"status\":200}\n")),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(response).await, "lease_unknown");
}

#[tokio::test]
async fn metrics_expose_queue_depth_and_requests_by_route() {
    let state = state();
    let _ = send(client_router(state.clone()), chat(r#"{"model":"gpt-9"}"#)).await;
    let response = send(
        client_router(state),
        Request::get("/metrics")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    let text = String::from_utf8(bytes.to_vec()).expect("utf8");
    assert!(
        text.contains("flightdeck_gateway_queue_depth{group=\"cpu\"} 0"),
        "{text}"
    );
    assert!(
        text.contains(
            "flightdeck_gateway_requests_total{code=\"404\",route=\"/v1/chat/completions\"} 1"
        ),
        "{text}"
    );
}

/// `smollm2` generates; `embedder` (same consumer group) embeds.
fn state_with_an_embedding_model() -> SharedState {
    let mut config = config(8, 30);
    config.models.insert(
        "embedder".into(),
        ModelRoute {
            consumer_groups: vec!["cpu".into()],
            engine: Some("vllm".into()),
            task: Task::Embed,
        },
    );
    state_with(&config, ApiKeys::default(), 1024)
}

fn post(path: &str, body: &str) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("request")
}

#[tokio::test]
async fn a_route_the_model_does_not_serve_is_an_openai_404_and_never_queued() {
    let state = state_with_an_embedding_model();
    let cases = [
        (
            "/v1/embeddings",
            r#"{"model":"smollm2","input":"x"}"#,
            "the model `smollm2` does not serve /v1/embeddings",
        ),
        (
            "/v1/chat/completions",
            r#"{"model":"embedder","messages":[{"role":"user","content":"x"}]}"#,
            "the model `embedder` does not serve /v1/chat/completions",
        ),
        (
            "/v1/completions",
            r#"{"model":"embedder","prompt":"x"}"#,
            "the model `embedder` does not serve /v1/completions",
        ),
    ];
    for (path, body, message) in cases {
        let response = send(client_router(state.clone()), post(path, body)).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let value = json(response).await;
        let error = &value["error"];
        assert_eq!(error["type"], "invalid_request_error", "{value}");
        assert_eq!(error["param"], "model", "{value}");
        assert_eq!(error["code"], "model_not_supported", "{value}");
        assert!(
            error["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(message)),
            "{value}"
        );
        assert_eq!(state.broker.depth("cpu"), Some(0), "{path} was queued");
    }
    // The routes each model serves are queued as before, and /v1/models
    // lists every model whatever its task.
    let serve = |request| {
        let router = client_router(state.clone());
        tokio::spawn(async move { send(router, request).await })
    };
    let embed = serve(post(
        "/v1/embeddings",
        r#"{"model":"embedder","input":"x"}"#,
    ));
    let chat = serve(post(
        "/v1/chat/completions",
        r#"{"model":"smollm2","messages":[{"role":"user","content":"x"}]}"#,
    ));
    let mut waited = Duration::ZERO;
    while state.broker.depth("cpu") != Some(2) {
        assert!(waited < Duration::from_secs(5), "both requests are queued");
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += Duration::from_millis(10);
    }
    embed.abort();
    chat.abort();
    let response = send(
        client_router(state),
        Request::get("/v1/models")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    let value = json(response).await;
    let ids: Vec<&str> = value["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, vec!["embedder", "smollm2", "tiny"]);
}
