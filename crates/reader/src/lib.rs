//! flightdeck-reader: the sidecar beside each inference engine.
//!
//! It waits for the engine, then runs `capacity` slots; each slot pulls one
//! request at a time from the gateway with the oldest waiting work, calls the
//! engine and streams the answer back (see docs/protocol.md). On SIGTERM it
//! stops pulling, finishes what it holds and exits, so rolling updates lose
//! nothing.

pub mod admin;
pub mod cli;
pub mod discovery;
pub mod engine;
pub mod error;
pub mod gateways;
pub mod metrics;
pub mod pull;
pub mod relay;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use flightdeck_protocol::pull::{HEADER_READER_ID, LEAVE_PATH};
use flightdeck_runtime::LogHandle;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use cli::Args;
pub use error::ReaderError;

use engine::Engine;
use gateways::Gateways;
use metrics::Metrics;

/// Everything a slot needs, shared by all slots.
pub struct Context {
    pub engine: Arc<Engine>,
    pub gateways: Arc<Gateways>,
    /// HTTP/2 (prior knowledge, cleartext) to the gateways: every long-poll
    /// and upload of this reader shares one connection per gateway.
    pub gateway_client: reqwest::Client,
    pub token: String,
    pub reader_id: String,
    /// `groups=` value of the lease query, built once.
    pub groups_query: String,
    pub long_poll_ms: u64,
    pub metrics: Arc<Metrics>,
    pub drain: Drain,
}

/// The reader's drain: requested by SIGTERM, over once nothing is in flight
/// or the grace period ran out; `GET /drain` waits for its end.
pub struct Drain {
    requested: watch::Sender<bool>,
    /// `Some(requests still in flight)` once the drain is over.
    finished: watch::Sender<Option<u64>>,
}

impl Default for Drain {
    fn default() -> Self {
        Self {
            requested: watch::Sender::new(false),
            finished: watch::Sender::new(None),
        }
    }
}

impl Drain {
    /// Starts the drain (idempotent).
    pub fn request(&self) {
        self.requested
            .send_if_modified(|requested| !std::mem::replace(requested, true));
    }

    pub fn is_requested(&self) -> bool {
        *self.requested.borrow()
    }

    fn finish(&self, in_flight: u64) {
        self.finished.send_replace(Some(in_flight));
    }

    /// Waits until the drain is over: the requests it left in flight.
    pub async fn finished(&self) -> Option<u64> {
        let mut finished = self.finished.subscribe();
        let result = finished.wait_for(Option::is_some).await;
        result.ok().and_then(|finished| *finished)
    }
}

impl Context {
    pub fn is_draining(&self) -> bool {
        self.drain.is_requested()
    }

    pub fn is_ready(&self) -> bool {
        !self.is_draining() && self.engine.is_ready() && self.gateways.any_connected()
    }
}

fn read_token(args: &Args) -> Result<String, ReaderError> {
    let token = match &args.reader_token_file {
        Some(path) => std::fs::read_to_string(path).map_err(|source| ReaderError::Io {
            context: format!("reading reader token {}", path.display()),
            source,
        })?,
        None => args.reader_token.clone().unwrap_or_default(),
    };
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err(ReaderError::Config(
            "a reader token is required (--reader-token-file or FLIGHTDECK_READER_TOKEN)".into(),
        ));
    }
    Ok(token)
}

fn default_reader_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "reader".into());
    format!("{host}-{:08x}", gateways::random_u64() as u32)
}

/// Runs the reader until SIGTERM/SIGINT; `log` is served on the admin port
/// (`/log-level`).
pub async fn run(args: Args, log: LogHandle) -> Result<(), ReaderError> {
    let admin = flightdeck_runtime::admin::bind(&args.admin_listen)
        .await
        .map_err(|error| ReaderError::Io {
            context: format!("binding {}", error.address),
            source: error.source,
        })?;
    serve(
        args,
        admin,
        Some(log),
        flightdeck_runtime::shutdown::signal(),
    )
    .await
}

/// Runs the reader with an already bound admin listener until `shutdown`.
pub async fn serve(
    args: Args,
    admin: TcpListener,
    log: Option<LogHandle>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ReaderError> {
    let groups: Vec<String> = args
        .consumer_groups
        .iter()
        .map(|g| g.trim().to_string())
        .filter(|g| !g.is_empty())
        .collect();
    if groups.is_empty() {
        return Err(ReaderError::Config(
            "at least one consumer group is required".into(),
        ));
    }
    if args.capacity == 0 {
        return Err(ReaderError::Config("capacity must be at least 1".into()));
    }
    let urls = discovery::normalize_urls(&args.gateway_urls);
    if urls.is_empty() && args.gateway_service.is_none() {
        return Err(ReaderError::Config(
            "--gateway-urls or --gateway-service is required".into(),
        ));
    }
    let token = read_token(&args)?;
    let metrics = Arc::new(Metrics::new()?);
    metrics.capacity.set(i64::from(args.capacity));
    let gateway_client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .http2_adaptive_window(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .http2_keep_alive_timeout(Duration::from_secs(10))
        .http2_keep_alive_while_idle(true)
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(ReaderError::Client)?;
    let ctx = Arc::new(Context {
        engine: Arc::new(Engine::new(&args.engine_url, args.capacity)?),
        gateways: Arc::new(Gateways::default()),
        gateway_client,
        token,
        reader_id: args.reader_id.clone().unwrap_or_else(default_reader_id),
        groups_query: groups.join(","),
        long_poll_ms: args.long_poll_ms.max(1),
        metrics: metrics.clone(),
        drain: Drain::default(),
    });
    tracing::info!(reader = %ctx.reader_id, groups = %ctx.groups_query, capacity = args.capacity, engine = %ctx.engine.base, "reader starting");

    let mut background = tokio::task::JoinSet::new();
    background.spawn(ctx.engine.clone().watch(metrics.clone()));
    match &args.gateway_service {
        Some(service) if urls.is_empty() => {
            background.spawn(discovery::watch_service(
                service.clone(),
                ctx.gateways.clone(),
            ));
        }
        _ => ctx.gateways.set(&urls),
    }
    background.spawn(leave_while_engine_unready(ctx.clone()));
    let (admin_stop_tx, admin_stop) = watch::channel(false);
    let admin = tokio::spawn(admin::serve(admin, ctx.clone(), log, async move {
        let mut admin_stop = admin_stop;
        let _ = admin_stop.wait_for(|stop| *stop).await;
    }));

    let (stop_tx, stop) = watch::channel(false);
    let mut slots = tokio::task::JoinSet::new();
    for _ in 0..args.capacity {
        slots.spawn(pull::run_slot(ctx.clone(), stop.clone()));
    }

    shutdown.await;
    ctx.drain.request();
    tracing::info!(
        in_flight = metrics.in_flight.get(),
        "draining: no new pulls, finishing in-flight requests"
    );
    // Leave first, so the gateways answer our waiting long-polls with 204
    // and hand them nothing more; then the slots stop.
    leave_all(&ctx).await;
    let _ = stop_tx.send(true);
    let grace = Duration::from_secs(args.shutdown_grace_seconds);
    if tokio::time::timeout(grace, async { while slots.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        tracing::warn!(
            in_flight = metrics.in_flight.get(),
            "grace period over; abandoning in-flight requests"
        );
    }
    let left = u64::try_from(metrics.in_flight.get()).unwrap_or(0);
    ctx.drain.finish(left);
    // Let a `/drain` that was just answered reach the kubelet, then stop.
    let _ = admin_stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(2), admin).await;
    slots.abort_all();
    background.shutdown().await;
    tracing::info!("reader stopped");
    Ok(())
}

/// Ends our waiting long-polls on every gateway whenever the engine stops
/// answering its health check: a poll that got work now would hand it to an
/// engine that cannot run it. Slots pull again once the engine is back.
async fn leave_while_engine_unready(ctx: Arc<Context>) {
    let mut ready = ctx.engine.subscribe();
    let mut was_ready = *ready.borrow_and_update();
    while ready.changed().await.is_ok() {
        let now_ready = *ready.borrow_and_update();
        if was_ready && !now_ready && !ctx.is_draining() {
            tracing::info!("engine not ready; ending waiting long-polls");
            leave_all(&ctx).await;
        }
        was_ready = now_ready;
    }
}

/// Tells every gateway we leave, so our waiting long-polls end without work.
async fn leave_all(ctx: &Context) {
    let calls = ctx.gateways.bases().into_iter().map(|base| {
        let request = ctx
            .gateway_client
            .post(format!("{base}{LEAVE_PATH}"))
            .bearer_auth(&ctx.token)
            .header(HEADER_READER_ID, &ctx.reader_id)
            .timeout(Duration::from_secs(2))
            .send();
        async move {
            if let Err(error) = request.await {
                tracing::debug!(gateway = %base, %error, "leave failed");
            }
        }
    });
    futures::future::join_all(calls).await;
}
