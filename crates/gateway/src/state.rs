//! Shared state of both listeners.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use crate::auth::{ApiKeys, ReaderToken};
use crate::broker::Broker;
use crate::metrics::Metrics;
use crate::routes::RoutingTable;

pub struct AppState {
    pub broker: Broker,
    pub metrics: Arc<Metrics>,
    routes: RwLock<Arc<RoutingTable>>,
    pub api_keys: RwLock<ApiKeys>,
    pub reader_token: ReaderToken,
    /// Largest client body accepted (413 above).
    pub max_body_bytes: usize,
    configured: AtomicBool,
    /// SIGTERM arrived: /readyz fails so the pod leaves its Services.
    shutting_down: AtomicBool,
    /// The shutdown delay is over: new client requests get 503.
    refusing: AtomicBool,
    /// Every client request is answered: reader long-polls end at once.
    closing_reader_api: AtomicBool,
}

pub type SharedState = Arc<AppState>;

impl AppState {
    pub fn new(
        metrics: Arc<Metrics>,
        reader_token: ReaderToken,
        api_keys: ApiKeys,
        max_body_bytes: usize,
    ) -> Self {
        Self {
            broker: Broker::new(metrics.clone()),
            metrics,
            routes: RwLock::new(Arc::new(RoutingTable::default())),
            api_keys: RwLock::new(api_keys),
            reader_token,
            max_body_bytes,
            configured: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            refusing: AtomicBool::new(false),
            closing_reader_api: AtomicBool::new(false),
        }
    }

    /// The current routing snapshot (cheap: one Arc clone).
    pub fn routes(&self) -> Arc<RoutingTable> {
        self.routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Applies a configuration: queues first (so a new model's group exists
    /// before the route to it), then the routing table.
    pub fn apply_config(&self, config: &flightdeck_protocol::gateway_config::GatewayConfig) {
        self.broker.apply_config(config);
        let table = Arc::new(RoutingTable::from_config(config));
        *self.routes.write().unwrap_or_else(|p| p.into_inner()) = table;
        self.configured.store(true, Ordering::Release);
    }

    pub fn set_api_keys(&self, keys: ApiKeys) {
        *self.api_keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
    }

    pub fn is_ready(&self) -> bool {
        self.configured.load(Ordering::Acquire) && !self.shutting_down.load(Ordering::Acquire)
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Fails /readyz; requests are still accepted (see `refuse_new_requests`).
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }

    /// New client requests get 503 `shutting_down` from now on.
    pub fn refuse_new_requests(&self) {
        self.begin_shutdown();
        self.refusing.store(true, Ordering::Release);
    }

    /// The last step of a shutdown: long-polls no longer wait.
    pub fn close_reader_api(&self) {
        self.refuse_new_requests();
        self.closing_reader_api.store(true, Ordering::Release);
    }

    pub fn is_closing_reader_api(&self) -> bool {
        self.closing_reader_api.load(Ordering::Acquire)
    }

    pub fn is_refusing(&self) -> bool {
        self.refusing.load(Ordering::Acquire)
    }
}
