//! What the gateway's test binaries share: a test engine on a loopback port,
//! a temporary directory removed on drop, and the `gateway.json` they write.
//! (Each file under tests/ is its own crate; this module is compiled into
//! those that say `mod common;`.)

#![allow(dead_code)] // not every test binary uses every helper

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use flightdeck_protocol::gateway_config::{GatewayConfig, ModelRoute, Task};
use tokio::net::TcpListener;

/// A test engine served on a loopback port for the rest of the test.
pub struct Engine {
    pub url: String,
    pub engine: Arc<flightdeck_test_engine::Engine>,
}

impl Engine {
    pub fn stats(&self) -> flightdeck_test_engine::StatsSnapshot {
        self.engine.stats()
    }
}

/// The test engine serving `models`, configured by `config` otherwise.
pub async fn start_engine(models: &[&str], config: flightdeck_test_engine::Config) -> Engine {
    let engine = Arc::new(flightdeck_test_engine::Engine::new(
        &flightdeck_test_engine::Config {
            models: models.iter().map(|&model| model.to_owned()).collect(),
            ..config
        },
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind engine");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(flightdeck_test_engine::serve(
        listener,
        Arc::clone(&engine),
        std::future::pending(),
    ));
    Engine { url, engine }
}

/// The Prometheus text a server's `/metrics` answers (`base` without a
/// trailing slash).
pub async fn metrics_text(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text")
}

/// A directory under the system's temp dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "{prefix}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `dir/gateway.json` routing each `(model, task)` to group `cpu`;
/// returns its path.
pub fn write_gateway_config(
    dir: &Path,
    models: &[(&str, Task)],
    max_depth: u32,
    request_timeout_seconds: u32,
) -> PathBuf {
    let mut config = GatewayConfig::default();
    config.queue.max_depth = max_depth;
    config.queue.request_timeout_seconds = request_timeout_seconds;
    for &(model, task) in models {
        config.models.insert(
            model.to_owned(),
            ModelRoute {
                consumer_groups: vec!["cpu".into()],
                engine: None,
                task,
            },
        );
    }
    let path = dir.join("gateway.json");
    std::fs::write(&path, serde_json::to_vec(&config).expect("json")).expect("write config");
    path
}
