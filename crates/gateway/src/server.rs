//! The two listeners, their routers and the shutdown order.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::Router;
use flightdeck_protocol::pull::{LEASE_PATH, LEAVE_PATH, UPLOAD_PATH};
use flightdeck_runtime::admin;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::{ApiKeys, ReaderToken};
use crate::cli::Args;
use crate::client_api;
use crate::config_watch::ConfigWatcher;
use crate::error::GatewayError;
use crate::metrics::Metrics;
use crate::reader_api;
use crate::state::{AppState, SharedState};

/// The client-facing router (also used by the handler tests).
pub fn client_router(state: SharedState) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(client_api::chat_completions))
        .route("/v1/completions", post(client_api::completions))
        .route("/v1/embeddings", post(client_api::embeddings))
        .route("/v1/models", get(client_api::list_models))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        // No /log-level here: the client port is what the Ingress exposes.
        .merge(admin::router(Arc::new(GatewayHealth(state.clone())), None))
        .fallback(client_api::not_found)
        .method_not_allowed_fallback(client_api::method_not_allowed)
        .with_state(state)
}

/// Ready once a configuration was loaded, until shutdown starts.
struct GatewayHealth(SharedState);

impl admin::Health for GatewayHealth {
    fn readiness(&self) -> Result<(), String> {
        if self.0.is_shutting_down() {
            Err("shutting down".into())
        } else if self.0.is_ready() {
            Ok(())
        } else {
            Err("no configuration loaded yet".into())
        }
    }

    fn metrics(&self) -> Vec<u8> {
        self.0.broker.refresh_gauges();
        self.0.metrics.render()
    }
}

/// The reader pull API router.
pub fn reader_router(state: SharedState) -> Router {
    Router::new()
        .route(LEASE_PATH, post(reader_api::lease))
        .route(UPLOAD_PATH, post(reader_api::upload))
        .route(LEAVE_PATH, post(reader_api::leave))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(client_api::not_found)
        .with_state(state)
}

/// Requests by route template (never the raw path) and status code.
async fn count_requests(
    State(state): State<SharedState>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(request).await;
    state
        .metrics
        .requests
        .with_label_values(&[route.as_str(), response.status().as_str()])
        .inc();
    response
}

/// Builds the shared state from the flags.
pub fn build_state(args: &Args) -> Result<SharedState, GatewayError> {
    let token = match &args.reader_token_file {
        Some(path) => Some(
            std::fs::read_to_string(path).map_err(|source| GatewayError::Io {
                context: format!("reading reader token {}", path.display()),
                source,
            })?,
        ),
        None => args.reader_token.clone(),
    };
    if token
        .as_deref()
        .map(str::trim)
        .unwrap_or_default()
        .is_empty()
    {
        tracing::warn!("no reader token configured: the pull API refuses every reader");
    }
    let api_keys = match &args.api_keys_dir {
        Some(dir) => ApiKeys::load_dir(dir)?,
        None => ApiKeys::default(),
    };
    let metrics = Arc::new(Metrics::new()?);
    Ok(Arc::new(AppState::new(
        metrics,
        ReaderToken::new(token.as_deref()),
        api_keys,
        args.max_body_bytes,
    )))
}

async fn bind(addr: &str) -> Result<TcpListener, GatewayError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| GatewayError::Io {
            context: format!("binding {addr}"),
            source,
        })
}

/// Runs the gateway until SIGTERM/SIGINT.
pub async fn run(args: Args) -> Result<(), GatewayError> {
    let state = build_state(&args)?;
    let client = bind(&args.listen).await?;
    let reader = bind(&args.reader_listen).await?;
    tracing::info!(client = %args.listen, reader = %args.reader_listen, "gateway listening");
    serve(
        state,
        client,
        reader,
        args.config.clone(),
        args.api_keys_dir.clone(),
        flightdeck_runtime::shutdown::signal(),
        ShutdownTiming {
            delay: Duration::from_secs(args.shutdown_delay_seconds),
            grace: Duration::from_secs(args.shutdown_grace_seconds),
        },
    )
    .await
}

/// How [`serve`] stops once its shutdown future resolves.
#[derive(Clone, Copy, Debug)]
pub struct ShutdownTiming {
    /// New client requests are still accepted this long (the pod is
    /// leaving its Services' endpoints meanwhile).
    pub delay: Duration,
    /// Everything, the delay included, is over by then.
    pub grace: Duration,
}

/// Serves both listeners until `shutdown` resolves, then drains, in this
/// order:
///
/// 1. `/readyz` answers 503 at once, so the pod leaves its Services;
/// 2. client requests are still accepted for `timing.delay`: kube-proxy
///    and DNS take a moment to stop sending them here, and one that
///    arrives meanwhile is served like any other;
/// 3. the client listener stops accepting and every client request still
///    queued or in flight gets its answer, while readers keep pulling and
///    uploading on the reader listener;
/// 4. once no client request is left (or `timing.grace`, counted from the
///    signal, is over), waiting long-polls end and the reader listener
///    closes last.
pub async fn serve(
    state: SharedState,
    client: TcpListener,
    reader: TcpListener,
    config_path: PathBuf,
    api_keys_dir: Option<PathBuf>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    timing: ShutdownTiming,
) -> Result<(), GatewayError> {
    let mut watcher = ConfigWatcher::new(config_path, api_keys_dir);
    watcher.poll(&state);
    tokio::spawn(watcher.run(state.clone()));
    tokio::spawn(expire_leases(state.clone()));

    let (client_stop_tx, client_stop) = watch::channel(false);
    let (reader_stop_tx, reader_stop) = watch::channel(false);
    let client_app = client_router(state.clone());
    let client_server = tokio::spawn(async move {
        axum::serve(
            // SSE chunks are small: without TCP_NODELAY, Nagle's algorithm
            // and delayed ACKs hold tokens back for up to 40 ms.
            client.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            }),
            client_app,
        )
        .with_graceful_shutdown(wait_for(client_stop))
        .await
    });
    let reader_server = tokio::spawn(serve_reader_api(
        reader,
        reader_router(state.clone()),
        reader_stop,
    ));

    shutdown.await;
    let deadline = Instant::now() + timing.grace;
    state.begin_shutdown();
    tracing::info!(
        outstanding = state.broker.outstanding(),
        delay_seconds = timing.delay.as_secs_f64(),
        "shutting down: unready; accepting requests until the delay is over"
    );
    tokio::time::sleep_until(deadline.min(Instant::now() + timing.delay).into()).await;
    state.refuse_new_requests();
    tracing::info!(
        outstanding = state.broker.outstanding(),
        "shutting down: no new requests; draining queued and in-flight ones"
    );
    let _ = client_stop_tx.send(true);
    let mut client_server = client_server;
    if tokio::time::timeout_at(deadline.into(), &mut client_server)
        .await
        .is_err()
    {
        tracing::warn!(
            outstanding = state.broker.outstanding(),
            "grace period over; dropping what is left"
        );
        client_server.abort();
    }
    state.close_reader_api();
    state.broker.wake_all_waiters();
    let _ = reader_stop_tx.send(true);
    let mut reader_server = reader_server;
    if tokio::time::timeout(Duration::from_secs(2), &mut reader_server)
        .await
        .is_err()
    {
        reader_server.abort();
    }
    tracing::info!("gateway stopped");
    Ok(())
}

/// Concurrent HTTP/2 streams per reader connection. Each reader slot uses at
/// most two (a long-poll, then an upload), and a reader with a large batch
/// size (vLLM: 256) must never wait for a stream: hyper's default of 200
/// would stall uploads behind idle long-polls.
const READER_MAX_STREAMS: u32 = 4096;

/// Serves the reader API with HTTP/1.1 and h2c on one port, with HTTP/2
/// limits sized for many concurrent long-polls and uploads per connection,
/// and keep-alive PINGs so a vanished reader's uploads fail (and redeliver)
/// instead of hanging.
async fn serve_reader_api(listener: TcpListener, router: Router, stop: watch::Receiver<bool>) {
    let mut builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    builder
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .max_concurrent_streams(READER_MAX_STREAMS)
        .keep_alive_interval(Some(Duration::from_secs(10)))
        .keep_alive_timeout(Duration::from_secs(20));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut stopped = std::pin::pin!(wait_for(stop));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: wait, do not spin.
                        tracing::warn!(%error, "accepting a reader connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let service = hyper_util::service::TowerToHyperService::new(router.clone());
                let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service).into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, "reader connection ended");
                    }
                });
            }
            _ = &mut stopped => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(2), graceful.shutdown()).await;
}

async fn wait_for(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

async fn expire_leases(state: SharedState) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    loop {
        ticker.tick().await;
        state.broker.expire_leases(Instant::now());
    }
}
