//! Gateway and reader together, in-process but over real loopback sockets,
//! against the real test engine (`flightdeck_test_engine`, the same code as
//! the `flightdeck-test-engine` binary): the whole data path (client ->
//! gateway queue -> reader long-poll -> engine -> streamed upload -> client),
//! including cancellation, several gateways and the token counters.

use std::path::PathBuf;
use std::time::Duration;

use axum::http::header;
use clap::Parser;
use flightdeck_protocol::gateway_config::{GatewayConfig, ModelRoute, Task};
use futures::StreamExt;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

mod common;
use common::{Engine, TempDir};

const TOKEN: &str = "e2e-token";
const MODEL: &str = "smollm2";
/// An embedding model (`task: embed`) served by the same engine.
const EMBED_MODEL: &str = "embedder";

/// The test engine serving `smollm2`, with the given pace.
async fn start_engine(ttft_ms: u64, token_delay_ms: u64) -> Engine {
    start_engine_with(flightdeck_test_engine::Config {
        ttft_ms,
        token_delay_ms,
        ..flightdeck_test_engine::Config::default()
    })
    .await
}

/// The test engine serving `smollm2` and `embedder`, configured by `config`.
async fn start_engine_with(config: flightdeck_test_engine::Config) -> Engine {
    common::start_engine(&[MODEL, EMBED_MODEL], config).await
}

struct Gateway {
    client_url: String,
    reader_url: String,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<Result<(), flightdeck_gateway::GatewayError>>,
    config_path: PathBuf,
    _dir: TempDir,
}

async fn start_gateway() -> Gateway {
    let dir = TempDir::new("fd-e2e");
    let config_path = common::write_gateway_config(
        &dir.0,
        &[(MODEL, Task::Generate), (EMBED_MODEL, Task::Embed)],
        1024,
        30,
    );
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
        flightdeck_gateway::ShutdownTiming {
            delay: Duration::from_millis(200),
            grace: Duration::from_secs(5),
        },
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
    admin_url: String,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<Result<(), flightdeck_reader::ReaderError>>,
}

async fn start_reader(gateways: &[&Gateway], engine: &Engine, capacity: u32) -> Reader {
    let urls: Vec<&str> = gateways.iter().map(|g| g.reader_url.as_str()).collect();
    let capacity = capacity.to_string();
    let args = flightdeck_reader::Args::parse_from([
        "flightdeck-reader",
        "--gateway-urls",
        &urls.join(","),
        "--consumer-groups",
        "cpu",
        "--engine-url",
        &engine.url,
        "--capacity",
        &capacity,
        "--reader-token",
        TOKEN,
        "--long-poll-ms",
        "2000",
    ]);
    let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
    let admin_url = format!("http://{}", admin.local_addr().expect("addr"));
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(flightdeck_reader::serve(args, admin, None, async move {
        let _ = stopped.await;
    }));
    Reader {
        admin_url,
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

/// A chat request for `max_tokens` tokens answering `prompt`.
fn chat_body(prompt: &str, max_tokens: u32, stream: bool) -> serde_json::Value {
    json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "stream": stream,
    })
}

/// The text of a streamed chat or completions answer: its content pieces in
/// order. Panics on a data line that is not JSON.
fn streamed_text(sse: &str) -> String {
    sse.lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter(|data| *data != "[DONE]")
        .map(|data| {
            let chunk: serde_json::Value = serde_json::from_str(data).expect("JSON event");
            let choice = &chunk["choices"][0];
            choice["delta"]["content"]
                .as_str()
                .or(choice["text"].as_str())
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// Reads the stream to its end.
async fn body_text(response: reqwest::Response) -> String {
    let mut text = String::new();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        text.push_str(std::str::from_utf8(&chunk.expect("bytes")).expect("utf8"));
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_streaming_and_streaming_answers_come_back_as_the_engine_sent_them() {
    let engine = start_engine(0, 30).await;
    let gateway = start_gateway().await;
    let _reader = start_reader(&[&gateway], &engine, 2).await;

    let response = chat(&gateway, chat_body("a b", 3, false)).await;
    assert_eq!(response.status(), 200);
    let value: serde_json::Value = response.json().await.expect("json");
    assert_eq!(value["choices"][0]["message"]["content"], "a b a");
    assert_eq!(value["usage"]["completion_tokens"], 3);

    let response = chat(&gateway, chat_body("x y", 4, true)).await;
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
    assert_eq!(streamed_text(&text), "x y x y", "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let stats = engine.stats();
    assert_eq!((stats.started, stats.completed), (2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_cancels_the_engine_request() {
    let engine = start_engine(0, 20).await;
    let gateway = start_gateway().await;
    let _reader = start_reader(&[&gateway], &engine, 1).await;

    let response = chat(&gateway, chat_body("long", 500, true)).await;
    let mut chunks = response.bytes_stream();
    let _first = chunks.next().await.expect("first chunk").expect("bytes");
    drop(chunks);
    let mut waited = Duration::ZERO;
    while engine.stats().cancelled == 0 {
        assert!(
            waited < Duration::from_secs(10),
            "the engine never saw the cancellation"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    }
    // The slot is free again: the next request is served.
    let response = chat(&gateway, chat_body("short", 1, false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(engine.stats().completed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_reader_serves_every_gateway() {
    let engine = start_engine(0, 10).await;
    let first = start_gateway().await;
    let second = start_gateway().await;
    let _reader = start_reader(&[&first, &second], &engine, 1).await;

    let mut calls = Vec::new();
    for i in 0..6 {
        let gateway = if i % 2 == 0 { &first } else { &second };
        calls.push(chat(gateway, chat_body(&format!("w{i}"), 2, i % 3 == 0)));
    }
    for (i, response) in futures::future::join_all(calls)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(response.status(), 200);
        let body = response.text().await.expect("body");
        let text = if i % 3 == 0 {
            streamed_text(&body)
        } else {
            let value: serde_json::Value = serde_json::from_str(&body).expect("json");
            value["choices"][0]["message"]["content"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(text, format!("w{i} w{i}"), "request {i}: {body}");
    }
    assert_eq!(engine.stats().started, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reader_shutdown_finishes_the_stream_it_holds() {
    let engine = start_engine(0, 30).await;
    let mut gateway = start_gateway().await;
    let mut reader = start_reader(&[&gateway], &engine, 1).await;

    let response = chat(&gateway, chat_body("drain", 10, true)).await;
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
    assert_eq!(streamed_text(&text), ["drain"; 10].join(" "));
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
    let engine = start_engine(0, 30).await;
    let mut gateway = start_gateway().await;
    let _reader = start_reader(&[&gateway], &engine, 1).await;

    let response = chat(&gateway, chat_body("drain", 10, true)).await;
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
    assert_eq!(streamed_text(&text), ["drain"; 10].join(" "));
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
            ..Default::default()
        },
    );
    config.models.insert(
        "qwen".into(),
        ModelRoute {
            consumer_groups: vec!["gpu".into()],
            engine: Some("vllm".into()),
            ..Default::default()
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
    let engine = start_engine(200, 0).await;
    let gateway = start_gateway().await;
    let _reader = start_reader(&[&gateway], &engine, 240).await;
    let calls = (0..240).map(|_| chat(&gateway, chat_body("batch", 3, true)));
    let responses = futures::future::join_all(calls).await;
    for response in responses {
        assert_eq!(response.status(), 200);
        let text = response.text().await.expect("body");
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        assert_eq!(streamed_text(&text), "batch batch batch");
    }
    assert_eq!(engine.stats().started, 240);
}

/// The value of `name{group="cpu",model="smollm2"}` on the gateway's
/// /metrics (0 while the series does not exist yet).
async fn token_counter(gateway: &Gateway, name: &str) -> u64 {
    model_token_counter(gateway, name, MODEL).await
}

/// The value of `name{group="cpu",model=<model>}`.
async fn model_token_counter(gateway: &Gateway, name: &str, model: &str) -> u64 {
    let model_label = format!("model=\"{model}\"");
    let text = common::metrics_text(&gateway.client_url).await;
    text.lines()
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix('{'))
        .filter_map(|rest| rest.split_once("} "))
        .filter(|(labels, _)| {
            let mut labels: Vec<&str> = labels.split(',').collect();
            labels.sort_unstable();
            labels == [r#"group="cpu""#, model_label.as_str()]
        })
        .map(|(_, value)| value.trim().parse::<u64>().expect("a counter value"))
        .next()
        .unwrap_or(0)
}

/// Waits until the prompt and completion counters read `expected` (a stream
/// adds its counts as its last bytes leave the gateway).
async fn expect_tokens(gateway: &Gateway, expected: (u64, u64), what: &str) {
    let mut waited = Duration::ZERO;
    loop {
        let counts = (
            token_counter(gateway, "flightdeck_gateway_prompt_tokens_total").await,
            token_counter(gateway, "flightdeck_gateway_completion_tokens_total").await,
        );
        if counts == expected {
            return;
        }
        assert!(
            waited < Duration::from_secs(5),
            "{what}: (prompt, completion) tokens are {counts:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_counters_follow_the_engine_usage_or_the_stream() {
    let engine = start_engine(0, 0).await;
    let gateway = start_gateway().await;
    let _reader = start_reader(&[&gateway], &engine, 2).await;
    expect_tokens(&gateway, (0, 0), "before any request").await;

    // A JSON answer: its usage object (the test engine counts prompt words).
    let response = chat(&gateway, chat_body("a b c", 4, false)).await;
    let value: serde_json::Value = response.json().await.expect("json");
    assert_eq!(value["usage"]["prompt_tokens"], 3);
    expect_tokens(&gateway, (3, 4), "non-streamed answer with usage").await;

    // A stream whose client asked for usage: the final usage chunk.
    let mut body = chat_body("a b", 5, true);
    body["stream_options"] = json!({"include_usage": true});
    let text = body_text(chat(&gateway, body).await).await;
    assert!(text.contains(r#""completion_tokens":5"#), "{text}");
    expect_tokens(&gateway, (5, 9), "stream with include_usage").await;

    // A stream without usage: one token per content piece (the opening
    // role-only chunk is none).
    let text = body_text(chat(&gateway, chat_body("q", 6, true)).await).await;
    assert!(!text.contains("usage"), "{text}");
    assert_eq!(streamed_text(&text), "q q q q q q");
    expect_tokens(&gateway, (5, 15), "chat stream without usage").await;

    // Completions stream text pieces the same way.
    let response = client()
        .post(format!("{}/v1/completions", gateway.client_url))
        .json(&json!({"model": MODEL, "prompt": "p", "max_tokens": 2, "stream": true}))
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(streamed_text(&body_text(response).await), "p p");
    expect_tokens(&gateway, (5, 17), "completions stream without usage").await;

    // Embeddings carry prompt tokens only.
    let response = client()
        .post(format!("{}/v1/embeddings", gateway.client_url))
        .json(&json!({"model": EMBED_MODEL, "input": "one two three four"}))
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(response.status(), 200);
    let mut waited = Duration::ZERO;
    loop {
        let counts = (
            model_token_counter(
                &gateway,
                "flightdeck_gateway_prompt_tokens_total",
                EMBED_MODEL,
            )
            .await,
            model_token_counter(
                &gateway,
                "flightdeck_gateway_completion_tokens_total",
                EMBED_MODEL,
            )
            .await,
        );
        if counts == (4, 0) {
            break;
        }
        assert!(
            waited < Duration::from_secs(5),
            "embeddings: tokens are {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    }
    expect_tokens(&gateway, (5, 17), "generation counters untouched").await;
}

/// GET `url`: status and body.
async fn get(url: &str) -> (u16, String) {
    let response = client().get(url).send().await.expect("answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loading_engine_gets_no_work_and_no_client_sees_its_503() {
    // As llama-server while it loads: /health 503, /v1/models 200.
    let engine = start_engine_with(flightdeck_test_engine::Config {
        load_seconds: 3,
        ..flightdeck_test_engine::Config::default()
    })
    .await;
    let gateway = start_gateway().await;
    let reader = start_reader(&[&gateway], &engine, 2).await;
    let started = std::time::Instant::now();
    let checks = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (status, body) = get(&format!("{}/readyz", reader.admin_url)).await;
        assert_eq!((status, body.as_str()), (503, "engine not ready"));
        // The engine restarted alone (a failed liveness probe) runs the same
        // preStop hook: with nothing to wait for, /drain answers at once.
        let (status, _) = tokio::time::timeout(
            Duration::from_secs(1),
            get(&format!("{}/drain", reader.admin_url)),
        )
        .await
        .expect("/drain answers at once while the engine is down");
        assert_eq!(status, 200);
        let (_, metrics) = get(&format!("{}/metrics", gateway.client_url)).await;
        assert!(
            metrics.contains("flightdeck_gateway_queue_depth{group=\"cpu\"} 1"),
            "the request waits in the gateway's queue, not leased: {metrics}"
        );
    };
    let (response, ()) = tokio::join!(chat(&gateway, chat_body("a b", 3, false)), checks);
    assert_eq!(response.status(), 200, "no 503 reaches the client");
    let value: serde_json::Value = response.json().await.expect("json");
    assert_eq!(value["choices"][0]["message"]["content"], "a b a");
    assert!(started.elapsed() >= Duration::from_millis(2500));
    assert_eq!(
        engine.stats().unavailable,
        0,
        "the reader sent nothing while loading"
    );
    let (status, _) = get(&format!("{}/readyz", reader.admin_url)).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_answers_once_the_in_flight_requests_are_done() {
    let engine = start_engine(0, 50).await;
    let gateway = start_gateway().await;
    let mut reader = start_reader(&[&gateway], &engine, 2).await;
    // Two streams of 2 s each, both running on the reader.
    let streams = async {
        let responses = futures::future::join_all(
            (0..2).map(|i| chat(&gateway, chat_body(&format!("s{i}"), 40, true))),
        )
        .await;
        let mut texts = Vec::new();
        for response in responses {
            texts.push(body_text(response).await);
        }
        (texts, std::time::Instant::now())
    };
    let stop = reader.stop.take();
    let drain = async {
        while engine.stats().in_flight < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The engine's preStop hook calls /drain as the kubelet SIGTERMs the
        // reader; a /drain alone starts nothing and keeps waiting.
        let url = format!("{}/drain", reader.admin_url);
        let hook = tokio::spawn(async move { get(&url).await });
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!hook.is_finished(), "/drain answered before any SIGTERM");
        let (status, _) = get(&format!("{}/readyz", reader.admin_url)).await;
        assert_eq!(status, 200, "a /drain alone does not drain the reader");
        let asked = std::time::Instant::now();
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
        let (status, body) = hook.await.expect("the /drain call");
        (status, body, asked, std::time::Instant::now())
    };
    let ((texts, streams_done), (status, body, asked, drained)) = tokio::join!(streams, drain);
    assert_eq!((status, body.as_str()), (200, "drained\n"));
    assert!(
        drained + Duration::from_millis(200) >= streams_done,
        "/drain answered before the streams ended"
    );
    assert!(
        drained - asked >= Duration::from_millis(500),
        "it waited for them"
    );
    for (i, text) in texts.iter().enumerate() {
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        assert_eq!(streamed_text(text), vec![format!("s{i}"); 40].join(" "));
    }
    let finished = tokio::time::timeout(Duration::from_secs(5), &mut reader.done).await;
    assert!(matches!(finished, Ok(Ok(Ok(())))), "exits after its drain");
}
