//! Runs one leased request on the engine and streams the answer back.
//!
//! The upload to the gateway starts as soon as the lease arrives (it is the
//! reader's acknowledgement) and carries a head line, then the engine's
//! bytes chunk by chunk as they come: nothing is buffered whole. If the
//! gateway ends the upload early (its client left), the body channel closes
//! and the engine request is dropped, which aborts it at the engine.

use std::time::Instant;

use bytes::Bytes;
use flightdeck_protocol::pull::{upload_path, UploadHead, HEADER_READER_ID};
use futures::StreamExt;
use reqwest::header::CONTENT_TYPE;
use tokio::sync::mpsc;

use crate::pull::Lease;
use crate::Context;

/// Chunks in flight between the engine and the upload.
const CHUNK_BUFFER: usize = 16;

type Chunk = Result<Bytes, std::io::Error>;

/// How a leased request ended, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// The gateway stopped the upload (client gone or timed out).
    Cancelled,
    /// The engine could not be reached: the lease was handed back unanswered.
    EngineUnreachable,
    /// The engine failed mid-answer; the client got an error event.
    EngineFailed,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
            Self::EngineUnreachable => "engine_unreachable",
            Self::EngineFailed => "engine_failed",
        }
    }
}

pub async fn relay_lease(ctx: &Context, lease: Lease) {
    ctx.metrics.in_flight.inc();
    let outcome = run(ctx, &lease).await;
    ctx.metrics.in_flight.dec();
    ctx.metrics
        .requests
        .with_label_values(&[outcome.label()])
        .inc();
    tracing::debug!(lease = lease.id, gateway = %lease.gateway, outcome = outcome.label(), "lease finished");
}

async fn run(ctx: &Context, lease: &Lease) -> Outcome {
    let (chunks, receiver) = mpsc::channel::<Chunk>(CHUNK_BUFFER);
    let body = reqwest::Body::wrap_stream(futures::stream::unfold(
        receiver,
        |mut receiver| async move { receiver.recv().await.map(|chunk| (chunk, receiver)) },
    ));
    let upload = ctx
        .gateway_client
        .post(format!("{}{}", lease.gateway, upload_path(lease.id)))
        .bearer_auth(&ctx.token)
        .header(HEADER_READER_ID, &ctx.reader_id)
        .body(body)
        .send();
    let upload = tokio::spawn(async move {
        match upload.await {
            Ok(response) => tracing::trace!(status = %response.status(), "upload answered"),
            Err(error) => tracing::debug!(%error, "upload ended with an error"),
        }
    });

    let started = Instant::now();
    let request = ctx
        .engine
        .client
        .post(format!("{}{}", ctx.engine.base, lease.path))
        .header(CONTENT_TYPE, "application/json")
        .body(lease.body.clone())
        .send();
    let response = tokio::select! {
        response = request => response,
        _ = chunks.closed() => return finish(upload, Outcome::Cancelled).await,
    };
    let response = match response {
        Ok(response) => response,
        Err(error) => {
            tracing::warn!(%error, engine = %ctx.engine.base, "engine unreachable; handing the lease back");
            ctx.engine.mark_unready();
            // An error before the head line tells the gateway to redeliver.
            let _ = chunks
                .send(Err(std::io::Error::other("engine unreachable")))
                .await;
            return finish(upload, Outcome::EngineUnreachable).await;
        }
    };
    ctx.metrics
        .engine_first_byte
        .observe(started.elapsed().as_secs_f64());
    let head = UploadHead {
        status: response.status().as_u16(),
        content_type: response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    if chunks.send(Ok(Bytes::from(head.to_line()))).await.is_err() {
        return finish(upload, Outcome::Cancelled).await;
    }
    let mut body = response.bytes_stream();
    let outcome = loop {
        tokio::select! {
            biased;
            chunk = body.next() => match chunk {
                Some(Ok(bytes)) => {
                    if chunks.send(Ok(bytes)).await.is_err() {
                        break Outcome::Cancelled;
                    }
                }
                Some(Err(error)) => {
                    tracing::warn!(%error, "engine failed mid-answer");
                    let _ = chunks.send(Err(std::io::Error::other("engine failed mid-answer"))).await;
                    break Outcome::EngineFailed;
                }
                None => break Outcome::Delivered,
            },
            _ = chunks.closed() => break Outcome::Cancelled,
        }
    };
    // Dropping the engine body here (on cancel) closes its connection, which
    // is how OpenAI-compatible engines learn to abort a request.
    drop(body);
    drop(chunks);
    finish(upload, outcome).await
}

async fn finish(upload: tokio::task::JoinHandle<()>, outcome: Outcome) -> Outcome {
    if outcome == Outcome::Cancelled {
        upload.abort();
    } else {
        let _ = upload.await;
    }
    outcome
}
