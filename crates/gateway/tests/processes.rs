//! Rolling updates and crashes with real processes: gateways are the
//! `flightdeck-gateway` binary, readers are this test binary re-executed as
//! a reader (`reader_process_entry` runs `flightdeck_reader::run`, what the
//! reader binary's main runs), so SIGTERM and SIGKILL hit real processes
//! with their own sockets. Engines are the test engine, in this process.
//!
//! What a rollout must not lose: a reader stopped with SIGTERM finishes what
//! it holds; a reader killed with SIGKILL loses nothing it had not started
//! (the gateway redelivers it at once) and cuts the streams it was sending
//! with a final SSE error event; a gateway stopped with SIGTERM answers
//! every request it accepted while readers keep pulling from both.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flightdeck_protocol::gateway_config::Task;
use futures::StreamExt;
use serde_json::json;

mod common;
use common::{Engine, TempDir};

const TOKEN: &str = "process-token";
const MODEL: &str = "smollm2";
/// Carries the reader's arguments (unit-separated) to the re-executed test
/// binary; without it `reader_process_entry` does nothing.
const READER_ARGS_ENV: &str = "FLIGHTDECK_TEST_READER_ARGS";

/// The child side: runs a reader until SIGTERM, as the reader binary does.
#[test]
fn reader_process_entry() {
    let Ok(args) = std::env::var(READER_ARGS_ENV) else {
        return;
    };
    let mut argv = vec!["flightdeck-reader".to_owned()];
    argv.extend(args.split('\u{1f}').map(str::to_owned));
    let args = <flightdeck_reader::Args as clap::Parser>::parse_from(argv);
    let log = args.log.init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime
        .block_on(flightdeck_reader::run(args, log))
        .expect("the reader runs and stops cleanly");
}

/// A child process killed (SIGKILL) when dropped, whatever the test did;
/// its log is printed if the test failed and removed otherwise.
struct Process {
    child: Child,
    name: String,
    log: std::path::PathBuf,
}

impl Process {
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} {}", self.name);
    }

    fn sigterm(&self) {
        self.signal("-TERM");
    }

    fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the exit; its status code.
    async fn exited(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{} did not exit within {within:?}", self.name);
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- last lines of {} ({}):", self.name, self.log.display());
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// A fresh log file for one child process: its path and its stderr.
fn log_file(name: &str) -> (std::path::PathBuf, Stdio) {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "fd-processes-{}-{}-{name}.log",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let file = std::fs::File::create(&path).expect("log file");
    (path, Stdio::from(file))
}

/// A port the kernel just handed out (the race with another binder is
/// acceptable on loopback).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

async fn wait_ready(url: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(response) = client().get(url).send().await {
            if response.status() == 200 {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{what} never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn start_engine(config: flightdeck_test_engine::Config) -> Engine {
    common::start_engine(&[MODEL], config).await
}

struct Gateway {
    process: Process,
    client_url: String,
    reader_url: String,
    _dir: TempDir,
}

async fn start_gateway(name: &str) -> Gateway {
    let dir = TempDir::new("fd-processes-gw");
    let config_path = common::write_gateway_config(&dir.0, &[(MODEL, Task::Generate)], 4096, 60);
    let (client_port, reader_port) = (free_port(), free_port());
    let (log, stderr) = log_file(name);
    let child = Command::new(env!("CARGO_BIN_EXE_flightdeck-gateway"))
        .args([
            "--listen",
            &format!("127.0.0.1:{client_port}"),
            "--reader-listen",
            &format!("127.0.0.1:{reader_port}"),
            "--config",
            config_path.to_str().expect("utf8"),
            "--reader-token",
            TOKEN,
            "--shutdown-delay-seconds",
            "2",
            "--shutdown-grace-seconds",
            "30",
        ])
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("gateway starts");
    let gateway = Gateway {
        process: Process {
            child,
            name: name.to_owned(),
            log,
        },
        client_url: format!("http://127.0.0.1:{client_port}"),
        reader_url: format!("http://127.0.0.1:{reader_port}"),
        _dir: dir,
    };
    wait_ready(&format!("{}/readyz", gateway.client_url), name).await;
    gateway
}

struct Reader {
    process: Process,
    admin_url: String,
}

async fn start_reader(name: &str, gateways: &[&Gateway], engine: &Engine, capacity: u32) -> Reader {
    let admin_port = free_port();
    let urls: Vec<&str> = gateways.iter().map(|g| g.reader_url.as_str()).collect();
    let args = [
        "--gateway-urls".to_owned(),
        urls.join(","),
        "--consumer-groups".to_owned(),
        "cpu".to_owned(),
        "--engine-url".to_owned(),
        engine.url.clone(),
        "--capacity".to_owned(),
        capacity.to_string(),
        "--reader-token".to_owned(),
        TOKEN.to_owned(),
        "--long-poll-ms".to_owned(),
        "5000".to_owned(),
        "--admin-listen".to_owned(),
        format!("127.0.0.1:{admin_port}"),
        "--reader-id".to_owned(),
        name.to_owned(),
        "--shutdown-grace-seconds".to_owned(),
        "30".to_owned(),
    ];
    let exe = std::env::current_exe().expect("test binary");
    let (log, stderr) = log_file(name);
    let child = Command::new(exe)
        .args([
            "reader_process_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(READER_ARGS_ENV, args.join("\u{1f}"))
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("reader starts");
    let reader = Reader {
        process: Process {
            child,
            name: name.to_owned(),
            log,
        },
        admin_url: format!("http://127.0.0.1:{admin_port}"),
    };
    wait_ready(&format!("{}/readyz", reader.admin_url), name).await;
    reader
}

fn chat_body(prompt: &str, max_tokens: u32, stream: bool) -> serde_json::Value {
    json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "stream": stream,
    })
}

fn expected(prompt: &str, tokens: u32) -> String {
    vec![prompt; tokens as usize].join(" ")
}

/// How one client request ended.
#[derive(Debug, PartialEq, Eq)]
enum Ending {
    /// The full, right answer.
    Answered,
    /// A stream that ended with the gateway's SSE error event.
    ErrorEvent(String),
    /// Refused before it was queued (503 shutting_down, connection refused).
    Refused(String),
    /// Anything else: a wrong or truncated answer, an error status.
    Broken(String),
}

/// Sends one chat request (prompt `p<i>`) and classifies how it ended.
async fn request(url: &str, i: usize, tokens: u32, stream: bool) -> Ending {
    let prompt = format!("p{i}");
    let response = match client()
        .post(format!("{url}/v1/chat/completions"))
        .json(&chat_body(&prompt, tokens, stream))
        .send()
        .await
    {
        Ok(response) => response,
        Err(error) if error.is_connect() => return Ending::Refused(error.to_string()),
        Err(error) => return Ending::Broken(format!("request {i}: {error}")),
    };
    let status = response.status();
    if status == 503 {
        return Ending::Refused(response.text().await.unwrap_or_default());
    }
    let mut text = String::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(bytes) => text.push_str(&String::from_utf8_lossy(&bytes)),
            Err(error) => return Ending::Broken(format!("request {i}: body broke: {error}")),
        }
    }
    if status != 200 {
        return Ending::Broken(format!("request {i}: {status} {text}"));
    }
    let answer = if stream {
        if let Some(error) = text
            .lines()
            .filter_map(|line| line.strip_prefix("data: "))
            .find(|data| data.starts_with("{\"error\""))
        {
            return Ending::ErrorEvent(error.to_owned());
        }
        if !text.ends_with("data: [DONE]\n\n") {
            return Ending::Broken(format!("request {i}: stream without [DONE]: {text}"));
        }
        text.lines()
            .filter_map(|line| line.strip_prefix("data: "))
            .filter(|data| *data != "[DONE]")
            .filter_map(|data| {
                let chunk: serde_json::Value = serde_json::from_str(data).ok()?;
                chunk["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect::<String>()
    } else {
        let value: serde_json::Value = match serde_json::from_str(&text) {
            Ok(value) => value,
            Err(_) => return Ending::Broken(format!("request {i}: not JSON: {text}")),
        };
        value["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    if answer == expected(&prompt, tokens) {
        Ending::Answered
    } else {
        Ending::Broken(format!("request {i}: wrong answer {answer:?}"))
    }
}

/// `total` requests, `concurrency` at a time, spread over `urls` by
/// `pick(i, elapsed)`; every other one streams.
async fn load(
    total: usize,
    concurrency: usize,
    tokens: u32,
    pick: impl Fn(usize, Duration) -> String,
) -> Vec<Ending> {
    let started = Instant::now();
    let pick = &pick;
    futures::stream::iter(0..total)
        .map(|i| async move {
            let url = pick(i, started.elapsed());
            request(&url, i, tokens, i.is_multiple_of(2)).await
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

async fn gateway_metric(gateway: &Gateway, series: &str) -> f64 {
    let text = common::metrics_text(&gateway.client_url).await;
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_to_a_reader_under_load_loses_nothing() {
    let engine = start_engine(flightdeck_test_engine::Config {
        token_delay_ms: 20,
        ..Default::default()
    })
    .await;
    let gateway = start_gateway("gateway").await;
    let mut first = start_reader("reader-a", &[&gateway], &engine, 4).await;
    let _second = start_reader("reader-b", &[&gateway], &engine, 4).await;
    let url = gateway.client_url.clone();
    let stop = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        first.process.sigterm();
    };
    let (endings, ()) = tokio::join!(load(120, 16, 10, |_, _| url.clone()), stop);
    let lost: Vec<&Ending> = endings.iter().filter(|e| **e != Ending::Answered).collect();
    assert!(
        lost.is_empty(),
        "{} of 120 not answered: {lost:?}",
        lost.len()
    );
    assert_eq!(first.process.exited(Duration::from_secs(10)).await, Some(0));
    assert_eq!(engine.engine.stats().cancelled, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_a_reader_redelivers_what_it_had_not_started_and_cuts_streams_with_an_error_event(
) {
    // Engine A runs 4 requests at once and queues 4 more without answering
    // (no head yet): of reader A's 8 leases, 4 stream and 4 wait.
    let slow = start_engine(flightdeck_test_engine::Config {
        token_delay_ms: 100,
        max_concurrency: 4,
        ..Default::default()
    })
    .await;
    let fast = start_engine(flightdeck_test_engine::Config::default()).await;
    let gateway = start_gateway("gateway").await;
    let mut doomed = start_reader("reader-a", &[&gateway], &slow, 8).await;
    let url = gateway.client_url.clone();
    let requests = futures::future::join_all((0..8).map(|i| request(&url, i, 100, true)));
    let kill = async {
        let deadline = Instant::now() + Duration::from_secs(10);
        while slow.engine.stats().in_flight < 4
            || gateway_metric(&gateway, "flightdeck_gateway_in_flight{group=\"cpu\"}").await < 8.0
        {
            assert!(Instant::now() < deadline, "reader A never held all 8");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _rescuer = start_reader("reader-b", &[&gateway], &fast, 8).await;
        doomed.process.sigkill();
        let killed = Instant::now();
        let series = "flightdeck_gateway_redeliveries_total{group=\"cpu\"}";
        while gateway_metric(&gateway, series).await < 4.0 {
            assert!(
                killed.elapsed() < Duration::from_secs(10),
                "never redelivered"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let redelivered_after = killed.elapsed();
        eprintln!("4 un-started requests redelivered {redelivered_after:?} after SIGKILL");
        // Keep reader B until every request is answered.
        (redelivered_after, _rescuer)
    };
    let (endings, (redelivered_after, _rescuer)) = tokio::join!(requests, kill);
    let answered = endings.iter().filter(|e| **e == Ending::Answered).count();
    let cut: Vec<&String> = endings
        .iter()
        .filter_map(|e| match e {
            Ending::ErrorEvent(event) => Some(event),
            _ => None,
        })
        .collect();
    assert_eq!(
        (answered, cut.len()),
        (4, 4),
        "4 redelivered and answered by reader B, 4 cut: {endings:?}"
    );
    for event in cut {
        assert!(event.contains("\"code\":\"reader_lost\""), "{event}");
    }
    assert!(
        redelivered_after < Duration::from_secs(2),
        "redelivery took {redelivered_after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_to_one_of_two_gateways_under_load_loses_nothing() {
    let engine = start_engine(flightdeck_test_engine::Config {
        token_delay_ms: 20,
        ..Default::default()
    })
    .await;
    let mut leaving = start_gateway("gateway-a").await;
    let staying = start_gateway("gateway-b").await;
    let _first = start_reader("reader-a", &[&leaving, &staying], &engine, 4).await;
    let _second = start_reader("reader-b", &[&leaving, &staying], &engine, 4).await;
    let (a, b) = (leaving.client_url.clone(), staying.client_url.clone());
    // SIGTERM at 1 s; clients stop choosing gateway A 1 s later, as they
    // would once the Service dropped it, well inside its 2 s delay.
    let pick = |i: usize, elapsed: Duration| {
        if i.is_multiple_of(2) && elapsed < Duration::from_millis(2000) {
            a.clone()
        } else {
            b.clone()
        }
    };
    let stop = async {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        leaving.process.sigterm();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let status = client()
            .get(format!("{}/readyz", leaving.client_url))
            .send()
            .await
            .map(|response| response.status().as_u16());
        assert_eq!(status.ok(), Some(503), "unready at once");
    };
    let (endings, ()) = tokio::join!(load(240, 16, 10, pick), stop);
    let refused = endings
        .iter()
        .filter(|e| matches!(e, Ending::Refused(_)))
        .count();
    let lost: Vec<&Ending> = endings
        .iter()
        .filter(|e| !matches!(e, Ending::Answered | Ending::Refused(_)))
        .collect();
    assert!(lost.is_empty(), "{} of 240 lost: {lost:?}", lost.len());
    assert_eq!(refused, 0, "no request refused during the shutdown delay");
    assert_eq!(
        leaving.process.exited(Duration::from_secs(30)).await,
        Some(0)
    );
}
