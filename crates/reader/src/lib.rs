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
use std::sync::atomic::{AtomicBool, Ordering};
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
    draining: AtomicBool,
}

impl Context {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
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
        draining: AtomicBool::new(false),
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
    background.spawn(flightdeck_runtime::admin::serve(
        admin,
        Arc::new(admin::ReaderHealth(ctx.clone())),
        log,
    ));

    let (stop_tx, stop) = watch::channel(false);
    let mut slots = tokio::task::JoinSet::new();
    for _ in 0..args.capacity {
        slots.spawn(pull::run_slot(ctx.clone(), stop.clone()));
    }

    shutdown.await;
    tracing::info!(
        in_flight = metrics.in_flight.get(),
        "draining: no new pulls, finishing in-flight requests"
    );
    ctx.draining.store(true, Ordering::Release);
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
    background.shutdown().await;
    tracing::info!("reader stopped");
    Ok(())
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
