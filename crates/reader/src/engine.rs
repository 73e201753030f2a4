//! The local engine: readiness, and the client used to call it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::ReaderError;
use crate::metrics::Metrics;

/// How often readiness is re-checked once the engine is up.
const RECHECK_INTERVAL: Duration = Duration::from_secs(5);
const STARTUP_POLL: Duration = Duration::from_millis(500);

pub struct Engine {
    /// Base URL without a trailing slash.
    pub base: String,
    /// HTTP/1.1 with keep-alive: engines (vLLM, llama.cpp, ...) speak h1, and a
    /// pool of warm connections saves a handshake per request.
    pub client: reqwest::Client,
    ready: AtomicBool,
}

impl Engine {
    pub fn new(base: &str, capacity: u32) -> Result<Self, ReaderError> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(capacity as usize)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(ReaderError::Client)?;
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            client,
            ready: AtomicBool::new(false),
        })
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Marks the engine down after a failed call; the watcher brings it back.
    pub fn mark_unready(&self) {
        self.ready.store(false, Ordering::Release);
    }

    /// `GET /health` or `GET /v1/models` answering 200, whichever works.
    pub async fn check(&self) -> bool {
        for path in ["/health", "/v1/models"] {
            let request = self
                .client
                .get(format!("{}{path}", self.base))
                .timeout(Duration::from_secs(5));
            if let Ok(response) = request.send().await {
                if response.status().is_success() {
                    return true;
                }
            }
        }
        false
    }

    /// Keeps `ready` current: fast polls until the engine is up, then slow ones.
    pub async fn watch(self: Arc<Self>, metrics: Arc<Metrics>) {
        loop {
            let ready = self.check().await;
            let was = self.ready.swap(ready, Ordering::AcqRel);
            metrics.engine_ready.set(i64::from(ready));
            if ready != was {
                tracing::info!(engine = %self.base, ready, "engine readiness changed");
            }
            tokio::time::sleep(if ready {
                RECHECK_INTERVAL
            } else {
                STARTUP_POLL
            })
            .await;
        }
    }
}
