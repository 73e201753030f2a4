//! Gateway and reader together, in-process but over real loopback sockets,
//! against a tiny OpenAI-style engine defined here: the whole data path
//! (client -> gateway queue -> reader long-poll -> engine -> streamed upload
//! -> client), including cancellation and several gateways.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use clap::Parser;
use flightdeck_protocol::gateway_config::{GatewayConfig, ModelRoute};
use futures::StreamExt;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const TOKEN: &str = "e2e-token";

#[derive(Default)]
struct EngineStats {
    requests: AtomicUsize,
    /// Streams the engine started but whose client (the reader) went away.
    cancelled: AtomicUsize,
}

/// Counts a stream as cancelled unless it ran to the end.
struct CancelProbe {
    stats: Arc<EngineStats>,
    finished: bool,
}

impl Drop for CancelProbe {
    fn drop(&mut self) {
        if !self.finished {
            self.stats.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

async fn engine_chat(State(stats): State<Arc<EngineStats>>, body: Bytes) -> Response {
    stats.requests.fetch_add(1, Ordering::SeqCst);
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let tokens = request["max_tokens"].as_u64().unwrap_or(5) as usize;
    let delay = Duration::from_millis(request["delay_ms"].as_u64().unwrap_or(10));
    if request["stream"].as_bool() != Some(true) {
        let answer = serde_json::json!({
            "id": "chatcmpl-e2e", "object": "chat.completion", "model": request["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "tok ".repeat(tokens)}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": tokens, "total_tokens": tokens + 3}
        });
        return (
            [(header::CONTENT_TYPE, "application/json")],
            answer.to_string(),
        )
            .into_response();
    }
    let probe = CancelProbe {
        stats,
        finished: false,
    };
    let stream = futures::stream::unfold((0usize, probe), move |(i, mut probe)| async move {
        if i > tokens {
            return None;
        }
        tokio::time::sleep(delay).await;
        let event = if i == tokens {
            probe.finished = true;
            "data: [DONE]\n\n".to_string()
        } else {
            format!("data: {{\"id\":\"chatcmpl-e2e\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"tok{i} \"}}}}]}}\n\n")
        };
        Some((Ok::<_, std::io::Error>(Bytes::from(event)), (i + 1, probe)))
    });
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn start_engine() -> (String, Arc<EngineStats>) {
    let stats = Arc::new(EngineStats::default());
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/v1/chat/completions", post(engine_chat))
        .with_state(stats.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind engine");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, stats)
}

struct Gateway {
    client_url: String,
    reader_url: String,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<Result<(), flightdeck_gateway::GatewayError>>,
    config_path: PathBuf,
    _dir: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir() -> TempDir {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "fd-e2e-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    TempDir(dir)
}

async fn start_gateway() -> Gateway {
    let dir = temp_dir();
    let mut config = GatewayConfig::default();
    config.queue.max_depth = 1024;
    config.queue.request_timeout_seconds = 30;
    config.models.insert(
        "smollm2".into(),
        ModelRoute {
            consumer_groups: vec!["cpu".into()],
            engine: None,
        },
    );
    let config_path = dir.0.join("gateway.json");
    std::fs::write(&config_path, serde_json::to_vec(&config).expect("json")).expect("write config");
    let args = flightdeck_gateway::Args::parse_from([
        "flightdeck-gateway",
        "--config",
        config_path.to_str().expect("utf8 path"),
        "--reader-token",
        TOKEN,
        "--shutdown-grace-seconds",
        "5",
    ]);
    let state = flightdeck_gateway::server::build_state(&args).expect("state");
    let client = TcpListener::bind("127.0.0.1:0").await.expect("bind client");
    let reader = TcpListener::bind("127.0.0.1:0").await.expect("bind reader");
    let client_url = format!("http://{}", client.local_addr().expect("addr"));
    let reader_url = format!("http://{}", reader.local_addr().expect("addr"));
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(flightdeck_gateway::serve(
        state,
        client,
        reader,
        config_path.clone(),
        None,
        async move {
            let _ = stopped.await;
        },
        Duration::from_secs(5),
    ));
    Gateway {
        client_url,
        reader_url,
        stop: Some(stop),
        done,
        config_path,
        _dir: dir,
    }
}

struct Reader {
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<Result<(), flightdeck_reader::ReaderError>>,
}

async fn start_reader(gateways: &[&Gateway], engine: &str, capacity: u32) -> Reader {
    let urls: Vec<&str> = gateways.iter().map(|g| g.reader_url.as_str()).collect();
    let capacity = capacity.to_string();
    let args = flightdeck_reader::Args::parse_from([
        "flightdeck-reader",
        "--gateway-urls",
        &urls.join(","),
        "--consumer-groups",
        "cpu",
        "--engine-url",
        engine,
        "--capacity",
        &capacity,
        "--reader-token",
        TOKEN,
        "--long-poll-ms",
        "2000",
    ]);
    let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(flightdeck_reader::serve(args, admin, None, async move {
        let _ = stopped.await;
    }));
    Reader {
        stop: Some(stop),
        done,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

async fn chat(gateway: &Gateway, body: serde_json::Value) -> reqwest::Response {
    client()
        .post(format!("{}/v1/chat/completions", gateway.client_url))
        .json(&body)
        .send()
        .await
        .expect("gateway answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_streaming_and_streaming_answers_come_back_as_the_engine_sent_them() {
    let (engine, stats) = start_engine().await;
    let gateway = start_gateway().await;
    let _reader = start_reader(&[&gateway], &engine, 2).await;

    let response = chat(
        &gateway,
        serde_json::json!({"model": "smollm2", "messages": [], "max_tokens": 3}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let value: serde_json::Value = response.json().await.expect("json");
    assert_eq!(value["choices"][0]["message"]["content"], "tok tok tok ");
    assert_eq!(value["usage"]["completion_tokens"], 3);

    let response = chat(
        &gateway,
        serde_json::json!({"model": "smollm2", "stream": true, "max_tokens": 4, "delay_ms": 30}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let mut chunks = response.bytes_stream();
    let first = chunks.next().await.expect("a first chunk").expect("bytes");
    assert!(
        !first.windows(6).any(|w| w == b"[DONE]"),
        "the first token arrives before the answer is complete"
    );
    let mut text = String::from_utf8(first.to_vec()).expect("utf8");
    while let Some(chunk) = chunks.next().await {
        text.push_str(std::str::from_utf8(&chunk.expect("bytes")).expect("utf8"));
    }
    for i in 0..4 {
        assert!(
            text.contains(&format!("tok{i} ")),
            "token {i} missing in {text}"
        );
    }
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert_eq!(stats.requests.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_cancels_the_engine_request() {
    let (engine, stats) = start_engine().await;
    let gateway = start_gateway().await;
    let _reader = start_reader(&[&gateway], &engine, 1).await;

    let response = chat(
        &gateway,
        serde_json::json!({"model": "smollm2", "stream": true, "max_tokens": 500, "delay_ms": 20}),
    )
    .await;
    let mut chunks = response.bytes_stream();
    let _first = chunks.next().await.expect("first chunk").expect("bytes");
    drop(chunks);
    let mut waited = Duration::ZERO;
    while stats.cancelled.load(Ordering::SeqCst) == 0 {
        assert!(
            waited < Duration::from_secs(10),
            "the engine never saw the cancellation"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    }
    // The slot is free again: the next request is served.
    let response = chat(
        &gateway,
        serde_json::json!({"model": "smollm2", "max_tokens": 1}),
    )
    .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_reader_serves_every_gateway() {
    let (engine, stats) = start_engine().await;
    let first = start_gateway().await;
    let second = start_gateway().await;
    let _reader = start_reader(&[&first, &second], &engine, 1).await;

    let mut calls = Vec::new();
    for i in 0..6 {
        let gateway = if i % 2 == 0 { &first } else { &second };
        calls.push(chat(
            gateway,
            serde_json::json!({"model": "smollm2", "max_tokens": 2, "stream": i % 3 == 0}),
        ));
    }
    for response in futures::future::join_all(calls).await {
        assert_eq!(response.status(), 200);
        let body = response.text().await.expect("body");
        assert!(body.contains("tok"), "{body}");
    }
    assert_eq!(stats.requests.load(Ordering::SeqCst), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reader_shutdown_finishes_the_stream_it_holds() {
    let (engine, _stats) = start_engine().await;
    let mut gateway = start_gateway().await;
    let mut reader = start_reader(&[&gateway], &engine, 1).await;

    let response = chat(
        &gateway,
        serde_json::json!({"model": "smollm2", "stream": true, "max_tokens": 10, "delay_ms": 30}),
    )
    .await;
    let mut chunks = response.bytes_stream();
    let mut text = String::from_utf8(chunks.next().await.expect("first").expect("bytes").to_vec())
        .expect("utf8");
    if let Some(stop) = reader.stop.take() {
        let _ = stop.send(());
    }
    while let Some(chunk) = chunks.next().await {
        text.push_str(std::str::from_utf8(&chunk.expect("bytes")).expect("utf8"));
    }
    assert!(
        text.ends_with("data: [DONE]\n\n"),
        "the in-flight stream completes: {text}"
    );
    let finished = tokio::time::timeout(Duration::from_secs(10), &mut reader.done).await;
    assert!(
        matches!(finished, Ok(Ok(Ok(())))),
        "the reader exits cleanly after draining"
    );
    if let Some(stop) = gateway.stop.take() {
        let _ = stop.send(());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_shutdown_finishes_in_flight_streams() {
    let (engine, _stats) = start_engine().await;
    let mut gateway = start_gateway().await;
    let _reader = start_reader(&[&gateway], &engine, 1).await;

    let response = chat(
        &gateway,
        serde_json::json!({"model": "smollm2", "stream": true, "max_tokens": 10, "delay_ms": 30}),
    )
    .await;
    let mut chunks = response.bytes_stream();
    let mut text = String::from_utf8(chunks.next().await.expect("first").expect("bytes").to_vec())
        .expect("utf8");
    if let Some(stop) = gateway.stop.take() {
        let _ = stop.send(());
    }
    while let Some(chunk) = chunks.next().await {
        text.push_str(std::str::from_utf8(&chunk.expect("bytes")).expect("utf8"));
    }
    assert!(
        text.ends_with("data: [DONE]\n\n"),
        "the in-flight stream completes: {text}"
    );
    let finished = tokio::time::timeout(Duration::from_secs(10), &mut gateway.done).await;
    assert!(
        matches!(finished, Ok(Ok(Ok(())))),
        "the gateway exits after draining"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_config_file_is_applied_without_a_restart() {
    let gateway = start_gateway().await;
    let mut config = GatewayConfig::default();
    config.models.insert(
        "smollm2".into(),
        ModelRoute {
            consumer_groups: vec!["cpu".into()],
            engine: None,
        },
    );
    config.models.insert(
        "qwen".into(),
        ModelRoute {
            consumer_groups: vec!["gpu".into()],
            engine: Some("vllm".into()),
        },
    );
    // Replace the file the way a ConfigMap update does: write aside, rename over.
    let staged = gateway.config_path.with_extension("new");
    std::fs::write(&staged, serde_json::to_vec(&config).expect("json")).expect("write");
    std::fs::rename(&staged, &gateway.config_path).expect("rename");
    let mut waited = Duration::ZERO;
    loop {
        let models: serde_json::Value = client()
            .get(format!("{}/v1/models", gateway.client_url))
            .send()
            .await
            .expect("models")
            .json()
            .await
            .expect("json");
        let ids: Vec<&str> = models["data"]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|m| m["id"].as_str())
            .collect();
        if ids == ["qwen", "smollm2"] {
            break;
        }
        assert!(
            waited < Duration::from_secs(10),
            "config not reloaded: {ids:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += Duration::from_millis(100);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_batch_reader_runs_all_its_slots_over_one_connection() {
    // 240 slots: their long-polls and uploads all share one HTTP/2
    // connection to the gateway (vLLM batch sizes reach 256).
    let (engine, stats) = start_engine().await;
    let gateway = start_gateway().await;
    let _reader = start_reader(&[&gateway], &engine, 240).await;
    let calls = (0..240).map(|_| {
        chat(&gateway, serde_json::json!({"model": "smollm2", "stream": true, "max_tokens": 3, "delay_ms": 200}))
    });
    let responses = futures::future::join_all(calls).await;
    for response in responses {
        assert_eq!(response.status(), 200);
        let text = response.text().await.expect("body");
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    }
    assert_eq!(stats.requests.load(Ordering::SeqCst), 240);
}
