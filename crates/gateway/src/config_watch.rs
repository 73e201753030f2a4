//! Loads the gateway configuration and the client API keys, and reloads both
//! when they change. Kubernetes replaces a mounted ConfigMap or Secret through
//! a symlink swap that inotify on the file itself misses, so the files are
//! simply re-read every couple of seconds (they are tiny) and applied when
//! their bytes differ.

use std::path::{Path, PathBuf};
use std::time::Duration;

use flightdeck_protocol::gateway_config::GatewayConfig;

use crate::auth::ApiKeys;
use crate::error::GatewayError;
use crate::state::SharedState;

pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Reads and parses the configuration file.
pub fn load_config(path: &Path) -> Result<(Vec<u8>, GatewayConfig), GatewayError> {
    let bytes = std::fs::read(path).map_err(|source| GatewayError::Io {
        context: format!("reading {}", path.display()),
        source,
    })?;
    let config = serde_json::from_slice(&bytes).map_err(|err| GatewayError::Config {
        path: path.display().to_string(),
        reason: err.to_string(),
    })?;
    Ok((bytes, config))
}

/// Watches the configuration file and the API key directory.
pub struct ConfigWatcher {
    config_path: PathBuf,
    api_keys_dir: Option<PathBuf>,
    last_config: Option<Vec<u8>>,
    last_keys_error: bool,
}

impl ConfigWatcher {
    pub fn new(config_path: PathBuf, api_keys_dir: Option<PathBuf>) -> Self {
        Self {
            config_path,
            api_keys_dir,
            last_config: None,
            last_keys_error: false,
        }
    }

    /// One pass: applies whatever changed. A broken file keeps the previous
    /// configuration (and is logged once per change).
    pub fn poll(&mut self, state: &SharedState) {
        match load_config(&self.config_path) {
            Ok((bytes, config)) => {
                if self.last_config.as_deref() != Some(bytes.as_slice()) {
                    state.apply_config(&config);
                    state
                        .metrics
                        .config_reloads
                        .with_label_values(&["ok"])
                        .inc();
                    tracing::info!(models = config.models.len(), groups = ?config.consumer_groups(), "configuration applied");
                    self.last_config = Some(bytes);
                }
            }
            Err(error) => {
                let marker = error.to_string().into_bytes();
                if self.last_config.as_deref() != Some(marker.as_slice()) {
                    state
                        .metrics
                        .config_reloads
                        .with_label_values(&["error"])
                        .inc();
                    tracing::error!(%error, "configuration not applied; keeping the previous one");
                    self.last_config = Some(marker);
                }
            }
        }
        if let Some(dir) = &self.api_keys_dir {
            match ApiKeys::load_dir(dir) {
                Ok(keys) => {
                    state.set_api_keys(keys);
                    self.last_keys_error = false;
                }
                Err(error) => {
                    if !self.last_keys_error {
                        tracing::error!(%error, "API keys not reloaded; keeping the previous ones");
                    }
                    self.last_keys_error = true;
                }
            }
        }
    }

    /// Polls forever.
    pub async fn run(mut self, state: SharedState) {
        let mut ticker = tokio::time::interval(POLL_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            self.poll(&state);
        }
    }
}
