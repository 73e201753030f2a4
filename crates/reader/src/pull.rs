//! One slot: ask a gateway for work, run it, repeat. A reader runs
//! `capacity` slots, so it never holds more requests than it has room for,
//! across all gateways together.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flightdeck_protocol::pull::{
    Heads, HEADER_ENGINE_PATH, HEADER_HEADS, HEADER_LEASE_ID, HEADER_READER_ID, LEASE_PATH,
};
use reqwest::StatusCode;
use tokio::sync::watch;

use crate::error::ReaderError;
use crate::gateways::{Choice, Failure};
use crate::relay::relay_lease;
use crate::Context;

/// A request leased from a gateway.
#[derive(Debug)]
pub struct Lease {
    pub gateway: Arc<str>,
    pub id: u64,
    pub path: &'static str,
    pub body: Bytes,
}

/// Engine paths a lease may name; anything else is refused.
const ENGINE_PATHS: [&str; 3] = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"];

pub async fn run_slot(ctx: Arc<Context>, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() || ctx.is_draining() {
            return;
        }
        if !ctx.engine.is_ready() {
            // No lease while the engine cannot answer (still loading, or
            // down): the request would only come back as the engine's 503.
            let mut ready = ctx.engine.subscribe();
            tokio::select! {
                _ = ready.wait_for(|ready| *ready) => {},
                _ = stop.changed() => {},
            }
            continue;
        }
        let (base, wait_ms) = match ctx.gateways.choose(ctx.long_poll_ms) {
            Choice::Poll { base, wait_ms } => (base, wait_ms),
            Choice::Sleep(delay) => {
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {},
                    _ = stop.changed() => {},
                }
                continue;
            }
        };
        let result = tokio::select! {
            result = lease(&ctx, &base, wait_ms) => Some(result),
            _ = stop.changed() => None,
        };
        ctx.gateways.poll_done(&base, wait_ms);
        match result {
            None => return,
            Some(Ok(Some(lease))) => relay_lease(&ctx, lease).await,
            Some(Ok(None)) => {}
            Some(Err(error)) => {
                ctx.metrics
                    .lease_errors
                    .with_label_values(&[base.as_ref()])
                    .inc();
                ctx.metrics
                    .gateway_connected
                    .with_label_values(&[base.as_ref()])
                    .set(0);
                match ctx.gateways.record_failure(&base) {
                    Failure::BackOff(delay) => {
                        tracing::warn!(%error, gateway = %base, retry_in_ms = delay.as_millis() as u64, "pull failed")
                    }
                    // The other slots that were polling the same gateway:
                    // one warning per outage is enough.
                    Failure::Repeated | Failure::Forgotten => {
                        tracing::debug!(%error, gateway = %base, "pull failed")
                    }
                }
            }
        }
    }
}

/// One long-poll. `Ok(None)`: no work within `wait_ms`.
async fn lease(ctx: &Context, base: &Arc<str>, wait_ms: u64) -> Result<Option<Lease>, ReaderError> {
    let gateway_error = |reason: String| ReaderError::Gateway {
        gateway: base.to_string(),
        reason,
    };
    let url = format!(
        "{base}{LEASE_PATH}?groups={}&waitMs={wait_ms}",
        ctx.groups_query
    );
    let response = ctx
        .gateway_client
        .post(url)
        .bearer_auth(&ctx.token)
        .header(HEADER_READER_ID, &ctx.reader_id)
        .timeout(Duration::from_millis(wait_ms) + Duration::from_secs(10))
        .send()
        .await
        .map_err(|err| gateway_error(err.to_string()))?;
    let heads = response
        .headers()
        .get(HEADER_HEADS)
        .and_then(|v| v.to_str().ok())
        .map(Heads::decode);
    match response.status() {
        StatusCode::OK => {}
        StatusCode::NO_CONTENT => {
            mark_connected(ctx, base, heads.as_ref());
            return Ok(None);
        }
        StatusCode::UNAUTHORIZED => {
            return Err(ReaderError::Unauthorized {
                gateway: base.to_string(),
            })
        }
        status => return Err(gateway_error(format!("lease answered {status}"))),
    }
    let id = response
        .headers()
        .get(HEADER_LEASE_ID)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| gateway_error("lease without a lease id".into()))?;
    let path = response
        .headers()
        .get(HEADER_ENGINE_PATH)
        .and_then(|v| v.to_str().ok())
        .and_then(|path| ENGINE_PATHS.into_iter().find(|known| *known == path))
        .ok_or_else(|| gateway_error("lease names no known engine path".into()))?;
    let body = response
        .bytes()
        .await
        .map_err(|err| gateway_error(format!("reading the lease body: {err}")))?;
    mark_connected(ctx, base, heads.as_ref());
    Ok(Some(Lease {
        gateway: base.clone(),
        id,
        path,
        body,
    }))
}

fn mark_connected(ctx: &Context, base: &str, heads: Option<&Heads>) {
    if ctx.gateways.record_success(base, heads) {
        tracing::info!(gateway = %base, "connected to gateway");
        ctx.metrics
            .gateway_connected
            .with_label_values(&[base])
            .set(1);
    }
}
