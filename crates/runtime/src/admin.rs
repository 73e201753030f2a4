//! The admin endpoints every binary serves the same way:
//!
//! - `GET /healthz`: 200 while the process serves HTTP (liveness);
//! - `GET /readyz`: 200 `ready`, or 503 with the reason ([`Health::readiness`]);
//! - `GET /metrics`: Prometheus text ([`Health::metrics`]);
//! - `GET /log-level`: the log filter in force; `PUT /log-level` with a filter
//!   in the body (`info,flightdeck_operator::reconcile=debug`) replaces it
//!   until the next change or restart. 400 with the parse error when invalid.
//!
//! `/log-level` is only mounted where the listener is not reachable by
//! clients (the operator's and the reader's admin ports): anyone who can
//! reach it can make the process log more.

use std::sync::Arc;

use axum::{
    extract::State,
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use thiserror::Error;
use tokio::net::TcpListener;

use crate::logging::LogHandle;

/// What a binary reports on its admin endpoints.
pub trait Health: Send + Sync + 'static {
    /// `Ok` when the process should receive work; otherwise why not.
    fn readiness(&self) -> Result<(), String>;
    /// Prometheus text exposition of the process's metrics.
    fn metrics(&self) -> Vec<u8>;
}

/// The admin port could not be bound.
#[derive(Debug, Error)]
#[error("binding the admin listener {address}: {source}")]
pub struct BindError {
    pub address: String,
    #[source]
    pub source: std::io::Error,
}

/// Binds `address`; callers bind before anything slow (leader election,
/// engine start), so a port conflict fails the process at once.
pub async fn bind(address: &str) -> Result<TcpListener, BindError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| BindError {
            address: address.to_owned(),
            source,
        })
}

#[derive(Clone)]
struct AdminState {
    health: Arc<dyn Health>,
    log: Option<LogHandle>,
}

/// `/healthz`, `/readyz`, `/metrics`, and `/log-level` when `log` is given.
/// The router has no state of its own left, so it merges into any other.
pub fn router<S>(health: Arc<dyn Health>, log: Option<LogHandle>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let with_log = log.is_some();
    let mut router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics));
    if with_log {
        router = router.route("/log-level", get(get_log_level).put(put_log_level));
    }
    router.with_state(AdminState { health, log })
}

/// Serves [`router`] on `listener` until the process ends; errors are logged.
pub async fn serve(listener: TcpListener, health: Arc<dyn Health>, log: Option<LogHandle>) {
    if let Err(error) = axum::serve(listener, router::<()>(health, log)).await {
        tracing::error!(%error, "admin server stopped");
    }
}

async fn readyz(State(state): State<AdminState>) -> Response {
    match state.health.readiness() {
        Ok(()) => "ready".into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason).into_response(),
    }
}

async fn metrics(State(state): State<AdminState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        state.health.metrics(),
    )
        .into_response()
}

async fn get_log_level(State(state): State<AdminState>) -> Response {
    match state.log {
        Some(log) => format!("{}\n", log.filter()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn put_log_level(State(state): State<AdminState>, body: String) -> Response {
    let Some(log) = state.log else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match log.set(&body) {
        Ok(()) => format!("{}\n", log.filter()).into_response(),
        Err(error) => (StatusCode::BAD_REQUEST, format!("{error}\n")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::{to_bytes, Body};
    use axum::http::{Method, Request};
    use tower::ServiceExt;

    use super::*;
    use crate::logging::{init, LogFormat};

    struct Fixed(Result<(), String>);

    impl Health for Fixed {
        fn readiness(&self) -> Result<(), String> {
            self.0.clone()
        }
        fn metrics(&self) -> Vec<u8> {
            b"up 1\n".to_vec()
        }
    }

    async fn call(router: Router, method: Method, path: &str, body: &str) -> (StatusCode, String) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::from(body.to_owned()))
            .expect("request");
        let response = router.oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = to_bytes(response.into_body(), 1 << 16).await.expect("body");
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn readiness_and_metrics_come_from_the_binary() {
        let ready = router(Arc::new(Fixed(Ok(()))), None);
        assert_eq!(
            call(ready.clone(), Method::GET, "/readyz", "").await,
            (StatusCode::OK, "ready".into())
        );
        assert_eq!(
            call(ready.clone(), Method::GET, "/healthz", "").await,
            (StatusCode::OK, "ok".into())
        );
        assert_eq!(
            call(ready.clone(), Method::GET, "/metrics", "").await,
            (StatusCode::OK, "up 1\n".into())
        );
        assert_eq!(
            call(ready, Method::GET, "/log-level", "").await.0,
            StatusCode::NOT_FOUND
        );

        let waiting = router(Arc::new(Fixed(Err("engine not ready".into()))), None);
        assert_eq!(
            call(waiting, Method::GET, "/readyz", "").await,
            (StatusCode::SERVICE_UNAVAILABLE, "engine not ready".into())
        );
    }

    #[tokio::test]
    async fn the_log_filter_changes_at_run_time() {
        let log = init(LogFormat::Text);
        let admin = router(Arc::new(Fixed(Ok(()))), Some(log.clone()));
        let (status, body) = call(
            admin.clone(),
            Method::PUT,
            "/log-level",
            "warn,flightdeck_runtime=debug\n",
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, "warn,flightdeck_runtime=debug\n");
        assert_eq!(log.filter(), "warn,flightdeck_runtime=debug");

        let (status, body) = call(admin.clone(), Method::PUT, "/log-level", "info,[oops").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("[oops"), "{body}");
        assert_eq!(
            call(admin, Method::GET, "/log-level", "").await.1,
            "warn,flightdeck_runtime=debug\n"
        );
    }
}
