//! What the reader serves on its admin port: the shared endpoints of
//! `flightdeck_runtime::admin` (ready when the engine answers, at least one
//! gateway took our pulls, and we are not draining), plus `GET /drain`.
//!
//! `GET /drain` is the engine container's preStop hook. The kubelet runs
//! every container's preStop hook at once when a pod is deleted and sends
//! each container SIGTERM when its own hook returns; an engine stopped while
//! the reader still streams its answers would cut them. So the engine's
//! hook calls `/drain`, which answers only once the reader's own SIGTERM
//! drain is over (no new leases, nothing in flight, or
//! `--shutdown-grace-seconds` ran out): the engine gets SIGTERM after the
//! last answer it owes.
//!
//! `/drain` never starts a drain itself: the kubelet runs the same hook when
//! it restarts only the engine after a failed liveness probe, and a reader
//! that drained then would stay unready for the life of the pod. In that
//! case the engine is not answering (the reader's own health check failed
//! first), so `/drain` answers at once.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use flightdeck_runtime::admin::Health;
use flightdeck_runtime::LogHandle;
use tokio::net::TcpListener;

use crate::Context;

pub struct ReaderHealth(pub Arc<Context>);

impl Health for ReaderHealth {
    fn readiness(&self) -> Result<(), String> {
        let ctx = &self.0;
        if ctx.is_ready() {
            Ok(())
        } else if ctx.is_draining() {
            Err("draining".into())
        } else if !ctx.engine.is_ready() {
            Err("engine not ready".into())
        } else {
            Err("no gateway connected".into())
        }
    }

    fn metrics(&self) -> Vec<u8> {
        self.0.metrics.render()
    }
}

/// The shared admin endpoints and `/drain`.
pub fn router(ctx: Arc<Context>, log: Option<LogHandle>) -> Router {
    flightdeck_runtime::admin::router::<()>(Arc::new(ReaderHealth(ctx.clone())), log)
        .merge(Router::new().route("/drain", get(drain)).with_state(ctx))
}

/// Serves [`router`] until `stop` resolves, then lets requests in progress
/// (a `/drain` answered just now) finish.
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<Context>,
    log: Option<LogHandle>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) {
    if let Err(error) = axum::serve(listener, router(ctx, log))
        .with_graceful_shutdown(stop)
        .await
    {
        tracing::error!(%error, "admin server stopped");
    }
}

/// `GET /drain`: answers when the reader's drain is over: 200 `drained`, or
/// 503 with the number of requests the grace period abandoned (the kubelet
/// then records a FailedPreStopHook event, which is worth seeing). With the
/// engine down and no drain under way there is nothing to wait for: 200 at
/// once.
async fn drain(State(ctx): State<Arc<Context>>) -> Response {
    if !ctx.drain.is_requested() && !ctx.engine.is_ready() {
        return (StatusCode::OK, "engine not ready; nothing to drain\n").into_response();
    }
    match ctx.drain.finished().await {
        Some(0) => (StatusCode::OK, "drained\n").into_response(),
        Some(left) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("grace period over with {left} requests in flight\n"),
        )
            .into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "reader stopped\n").into_response(),
    }
}
