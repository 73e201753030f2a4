//! Handler tests through the router, without a socket.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::http::{header, Request, StatusCode};
use clap::Parser;
use serde_json::Value;
use tower::ServiceExt;

use super::{router, Engine};
use crate::cli::Args;

fn engine(extra: &[&str]) -> Arc<Engine> {
    let mut argv = vec![
        "flightdeck-test-engine",
        "--model",
        "m1",
        "--model",
        "m2",
        "--tokens",
        "4",
    ];
    argv.extend_from_slice(extra);
    Arc::new(Engine::new(&Args::parse_from(argv).engine))
}

async fn call(
    engine: &Arc<Engine>,
    method: &str,
    path: &str,
    body: &str,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .expect("valid request");
    let response = router(Arc::clone(engine))
        .oneshot(request)
        .await
        .expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.expect("body");
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("JSON body")
}

#[tokio::test]
async fn chat_answers_with_the_prompt_words() {
    let engine = engine(&[]);
    let (status, _, body) = call(
        &engine,
        "POST",
        "/v1/chat/completions",
        r#"{"model":"m1","messages":[{"role":"user","content":"hi there"}]}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let body = json(&body);
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "hi there hi there"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["completion_tokens"], 4);
    let stats = engine.stats.snapshot();
    assert_eq!((stats.started, stats.completed, stats.in_flight), (1, 1, 0));
}

#[tokio::test]
async fn streamed_chat_ends_with_usage_and_done() {
    let engine = engine(&[]);
    let (status, headers, body) = call(
        &engine,
        "POST",
        "/v1/chat/completions",
        r#"{"model":"m2","stream":true,"stream_options":{"include_usage":true},"max_tokens":3,
            "messages":[{"role":"user","content":"a b"}]}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/event-stream");
    let data: Vec<&str> = body
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1].iter().map(|d| json(d)).collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "a b a");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "length");
    let usage = &chunks[chunks.len() - 1];
    assert_eq!(usage["choices"].as_array().map(Vec::len), Some(0));
    assert_eq!(usage["usage"]["completion_tokens"], 3);
}

#[tokio::test]
async fn completion_and_streamed_completion_agree() {
    let engine = engine(&[]);
    let (_, _, plain) = call(
        &engine,
        "POST",
        "/v1/completions",
        r#"{"model":"m1","prompt":"x y z"}"#,
    )
    .await;
    assert_eq!(json(&plain)["choices"][0]["text"], "x y z x");
    let (_, _, streamed) = call(
        &engine,
        "POST",
        "/v1/completions",
        r#"{"model":"m1","prompt":"x y z","stream":true}"#,
    )
    .await;
    let text: String = streamed
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter(|data| *data != "[DONE]")
        .filter_map(|data| json(data)["choices"][0]["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, "x y z x");
}

#[tokio::test]
async fn embeddings_in_both_encodings() {
    let engine = engine(&[]);
    let (status, _, floats) = call(
        &engine,
        "POST",
        "/v1/embeddings",
        r#"{"model":"m1","input":["a","b"]}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let floats = json(&floats);
    assert_eq!(floats["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        floats["data"][0]["embedding"].as_array().map(Vec::len),
        Some(8)
    );
    let (_, _, b64) = call(
        &engine,
        "POST",
        "/v1/embeddings",
        r#"{"model":"m1","input":"a","encoding_format":"base64","dimensions":4}"#,
    )
    .await;
    let encoded = json(&b64)["data"][0]["embedding"].as_str().map(str::len);
    // 4 floats = 16 bytes = 24 base64 characters.
    assert_eq!(encoded, Some(24));
}

#[tokio::test]
async fn client_errors_are_openai_error_objects() {
    let engine = engine(&[]);
    let (status, _, body) = call(&engine, "POST", "/v1/chat/completions", "{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json(&body)["error"]["type"], "invalid_request_error");
    let (status, _, body) = call(
        &engine,
        "POST",
        "/v1/completions",
        r#"{"model":"nope","prompt":"x"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json(&body)["error"]["code"], "model_not_found");
    let (status, _, _) = call(&engine, "GET", "/v2/whatever", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn requests_above_max_concurrency_get_429() {
    let engine = engine(&[
        "--max-concurrency",
        "1",
        "--reject-when-busy",
        "--ttft-ms",
        "2000",
    ]);
    let slow = {
        let engine = Arc::clone(&engine);
        tokio::spawn(async move {
            call(
                &engine,
                "POST",
                "/v1/completions",
                r#"{"model":"m1","prompt":"x"}"#,
            )
            .await
        })
    };
    while engine.stats.snapshot().in_flight == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let (status, headers, body) = call(
        &engine,
        "POST",
        "/v1/completions",
        r#"{"model":"m1","prompt":"x"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers[header::RETRY_AFTER], "1");
    assert_eq!(json(&body)["error"]["type"], "rate_limit_error");
    slow.abort();
    let _ = slow.await;
    let stats = engine.stats.snapshot();
    assert_eq!(
        (stats.rejected, stats.cancelled, stats.in_flight),
        (1, 1, 0)
    );
}

#[tokio::test]
async fn models_lists_every_served_model() {
    let engine = engine(&[]);
    let (_, _, body) = call(&engine, "GET", "/v1/models", "").await;
    let ids: Vec<String> = json(&body)["data"]
        .as_array()
        .map(|models| {
            models
                .iter()
                .filter_map(|m| m["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(ids, vec!["m1", "m2"]);
}

#[tokio::test]
async fn requests_above_max_concurrency_wait_for_a_slot() {
    let engine = engine(&["--max-concurrency", "1", "--ttft-ms", "50"]);
    let body = r#"{"model":"m1","prompt":"q"}"#;
    let (first, second) = tokio::join!(
        call(&engine, "POST", "/v1/completions", body),
        call(&engine, "POST", "/v1/completions", body)
    );
    assert_eq!((first.0, second.0), (StatusCode::OK, StatusCode::OK));
    let stats = engine.stats.snapshot();
    assert_eq!(
        (stats.completed, stats.max_in_flight, stats.rejected),
        (2, 1, 0)
    );
}

#[tokio::test]
async fn a_loading_engine_answers_503_except_on_v1_models_like_llama_server() {
    let engine = engine(&["--load-seconds", "1"]);
    let (status, _, body) = call(&engine, "GET", "/health", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let body = json(&body);
    assert_eq!(body["error"]["code"], 503);
    assert_eq!(body["error"]["message"], "Loading model");
    let (status, _, _) = call(&engine, "GET", "/v1/models", "").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "llama-server lists models while loading"
    );
    let (status, _, _) = call(
        &engine,
        "POST",
        "/v1/chat/completions",
        r#"{"model":"m1","messages":[{"role":"user","content":"x"}]}"#,
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(engine.stats.snapshot().unavailable, 1);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _, _) = call(&engine, "GET", "/health", "").await;
    assert_eq!(status, StatusCode::OK, "loaded");
    let (status, _, _) = call(
        &engine,
        "POST",
        "/v1/chat/completions",
        r#"{"model":"m1","messages":[{"role":"user","content":"x"}]}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_alias_is_the_served_model_name() {
    let engine = engine(&["--alias", "smollm2"]);
    let (_, _, body) = call(&engine, "GET", "/v1/models", "").await;
    let ids: Vec<String> = json(&body)["data"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|m| m["id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(ids, ["smollm2"]);
}
