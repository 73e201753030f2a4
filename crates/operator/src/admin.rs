//! Admin HTTP server: `/metrics`, `/healthz`, `/readyz`.
//!
//! `/healthz` answers as long as the process serves HTTP. `/readyz` answers
//! 200 once the operator has reached the API server and listed its kind (a
//! standby replica waiting for the lease is ready too: it is healthy, just
//! not the leader; `flightdeck_operator_leader` tells them apart).

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::get, Router};
use tokio::net::TcpListener;

use crate::{
    error::{Error, Result},
    metrics::Metrics,
};

/// Shared state of the admin endpoints.
#[derive(Clone)]
pub struct AdminState {
    pub metrics: Metrics,
    pub ready: Arc<AtomicBool>,
}

/// Binds `address` (fails fast, before leader election) and returns the
/// server future.
pub async fn bind(
    address: &str,
    state: AdminState,
) -> Result<impl std::future::Future<Output = std::io::Result<()>>> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| Error::Admin {
            address: address.to_owned(),
            source,
        })?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state);
    Ok(async move { axum::serve(listener, app).await })
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}
