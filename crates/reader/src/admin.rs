//! /healthz, /readyz and /metrics of the reader.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::Context;

pub fn router(ctx: Arc<Context>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(ctx)
}

/// Ready = the engine answers and at least one gateway took our pulls, and
/// we are not draining.
async fn readyz(State(ctx): State<Arc<Context>>) -> Response {
    if ctx.is_ready() {
        "ready".into_response()
    } else {
        let reason = if ctx.is_draining() {
            "draining"
        } else if !ctx.engine.is_ready() {
            "engine not ready"
        } else {
            "no gateway connected"
        };
        (StatusCode::SERVICE_UNAVAILABLE, reason).into_response()
    }
}

async fn metrics(State(ctx): State<Arc<Context>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        ctx.metrics.render(),
    )
        .into_response()
}
