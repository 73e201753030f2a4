//! The local engine: readiness, and the client used to call it.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use tokio::sync::watch;

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
    /// Whether the engine serves requests; slots wait on it.
    ready: watch::Sender<bool>,
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
            ready: watch::Sender::new(false),
        })
    }

    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Follows readiness changes (slots wait on it, the reader leaves its
    /// gateways' long-polls when it turns false).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.ready.subscribe()
    }

    /// Marks the engine down after a failed call; the watcher brings it back.
    pub fn mark_unready(&self) {
        self.ready.send_replace(false);
    }

    /// Whether the engine serves requests now: `GET /health` answers 200.
    ///
    /// `/health` is the one signal every supported engine gives for "the
    /// model is loaded": vLLM, SGLang and TGI serve it once they can answer,
    /// and llama-server answers 503 `{"error":{"code":503,"message":"Loading
    /// model",...}}` on it (and on every completion route) while it loads,
    /// while its `/v1/models` already answers 200. So a 200 from
    /// `/v1/models` must not count while `/health` says otherwise, or every
    /// pod start relays the engine's 503s to clients for the whole load.
    ///
    /// Only when `/health` is 404 (an OpenAI-compatible server without the
    /// route, e.g. a custom engine in `applications.X.image`) does a 200
    /// from `/v1/models` count: the server is up and routing, and without
    /// the fallback such an engine would never be used at all.
    pub async fn check(&self) -> bool {
        match self.get_status("/health").await {
            Some(StatusCode::OK) => true,
            Some(StatusCode::NOT_FOUND) => {
                self.get_status("/v1/models").await == Some(StatusCode::OK)
            }
            _ => false,
        }
    }

    async fn get_status(&self, path: &str) -> Option<StatusCode> {
        let request = self
            .client
            .get(format!("{}{path}", self.base))
            .timeout(Duration::from_secs(5));
        request.send().await.ok().map(|response| response.status())
    }

    /// Keeps `ready` current: fast polls until the engine is up, then slow ones.
    pub async fn watch(self: Arc<Self>, metrics: Arc<Metrics>) {
        loop {
            let ready = self.check().await;
            let was = self.ready.send_replace(ready);
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
