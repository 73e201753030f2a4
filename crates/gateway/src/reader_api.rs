//! The pull API readers use (on its own listener, never behind the Ingress).
//! Protocol and reasons: docs/protocol.md.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{Buf, BytesMut};
use futures::StreamExt;

use crate::broker::{ClientEvent, LeaseGrant, LeaseOutcome};
use crate::error::GatewayError;
use crate::state::SharedState;
use flightdeck_protocol::pull::{
    LeaseQuery, UploadHead, HEADER_ENGINE_PATH, HEADER_GROUP, HEADER_HEADS, HEADER_LEASE_ID,
    HEADER_READER_ID, MAX_HEAD_LINE, MAX_WAIT_MS,
};

fn reader_id(headers: &HeaderMap) -> &str {
    headers
        .get(HEADER_READER_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("anonymous")
}

/// `POST /v1/reader/lease?groups=a,b&waitMs=N`: one request, or 204 after
/// `waitMs` without work. Both carry the heads of the reader's groups.
pub async fn lease(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Query(query): Query<LeaseQuery>,
) -> Result<Response, GatewayError> {
    state.reader_token.check(&headers)?;
    let groups: Vec<Arc<str>> = query
        .groups
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(Arc::from)
        .collect();
    if groups.is_empty() {
        return Err(GatewayError::BadRequest {
            message: "groups must name at least one consumer group".into(),
            param: Some("groups"),
        });
    }
    let reader = reader_id(&headers);
    // Long-polls wait while the gateway drains (a new request in the
    // shutdown delay, or a redelivered one, must reach a reader at once);
    // only once it closes the reader API do they answer at once.
    let wait = !state.is_closing_reader_api() && query.wait_ms > 0;
    let grant = match state.broker.lease_or_wait(reader, &groups, wait) {
        LeaseOutcome::Granted(grant) => Some(grant),
        LeaseOutcome::Empty => None,
        LeaseOutcome::Wait {
            waiter_id,
            mut receiver,
        } => {
            let wait_for = Duration::from_millis(query.wait_ms.min(MAX_WAIT_MS));
            match tokio::time::timeout(wait_for, &mut receiver).await {
                Ok(Ok(grant)) => Some(grant),
                // Woken without work (reader leaving, gateway stopping).
                Ok(Err(_)) => None,
                Err(_) => {
                    state.broker.cancel_wait(waiter_id);
                    // A grant may have landed between the timeout and the cancel.
                    receiver.try_recv().ok()
                }
            }
        }
    };
    let heads = state.broker.heads(&groups).encode();
    Ok(lease_response(grant, &heads))
}

fn lease_response(grant: Option<LeaseGrant>, heads: &str) -> Response {
    let mut response = match &grant {
        Some(grant) => {
            let mut response = Response::new(Body::from(grant.body.clone()));
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            headers.insert(
                HeaderName::from_static(HEADER_LEASE_ID),
                HeaderValue::from(grant.lease_id),
            );
            headers.insert(
                HeaderName::from_static(HEADER_ENGINE_PATH),
                HeaderValue::from_static(grant.path),
            );
            if let Ok(group) = HeaderValue::from_str(&grant.group) {
                headers.insert(HeaderName::from_static(HEADER_GROUP), group);
            }
            response
        }
        None => StatusCode::NO_CONTENT.into_response(),
    };
    if let Ok(value) = HeaderValue::from_str(heads) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(HEADER_HEADS), value);
    }
    response
}

/// `POST /v1/reader/leases/{id}/response`: a head line, then the engine's
/// bytes, relayed to the waiting client as they arrive.
pub async fn upload(
    State(state): State<SharedState>,
    Path(lease_id): Path<u64>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, GatewayError> {
    state.reader_token.check(&headers)?;
    let job = state
        .broker
        .start_upload(lease_id, reader_id(&headers))
        .ok_or(GatewayError::LeaseUnknown { lease: lease_id })?;
    let mut stream = body.into_data_stream();

    // Phase 1, before the first byte: a vanished reader means redelivery.
    let mut buffer = BytesMut::new();
    let newline = loop {
        tokio::select! {
            _ = job.events.closed() => return Ok(outcome(StatusCode::CONFLICT, "cancelled")),
            next = stream.next() => match next {
                Some(Ok(chunk)) => {
                    buffer.extend_from_slice(&chunk);
                    if let Some(pos) = buffer.iter().position(|b| *b == b'\n') {
                        break pos;
                    }
                    if buffer.len() > MAX_HEAD_LINE {
                        let _ = job.events.try_send(ClientEvent::Failed(GatewayError::ReaderLost { reason: "the reader sent an oversized head line".into() }));
                        return Err(GatewayError::BadRequest { message: "head line too long".into(), param: None });
                    }
                }
                Some(Err(_)) | None => {
                    tracing::info!(lease = lease_id, group = %job.group, "reader went away before the first byte; redelivering");
                    state.broker.redeliver(job);
                    return Ok(outcome(StatusCode::OK, "redelivered"));
                }
            }
        }
    };
    let head: UploadHead = match serde_json::from_slice(&buffer[..newline]) {
        Ok(head) => head,
        Err(err) => {
            let _ = job
                .events
                .try_send(ClientEvent::Failed(GatewayError::ReaderLost {
                    reason: format!("malformed head line: {err}"),
                }));
            return Err(GatewayError::BadRequest {
                message: format!("malformed head line: {err}"),
                param: None,
            });
        }
    };
    buffer.advance(newline + 1);
    if job.events.send(ClientEvent::Head(head)).await.is_err() {
        return Ok(outcome(StatusCode::CONFLICT, "cancelled"));
    }
    if !buffer.is_empty()
        && job
            .events
            .send(ClientEvent::Chunk(buffer.freeze()))
            .await
            .is_err()
    {
        return Ok(outcome(StatusCode::CONFLICT, "cancelled"));
    }

    // Phase 2, after the first byte: relay; a failure ends the client's answer
    // with an error, and a client that left ends the upload early, which the
    // reader takes as "cancel the engine request".
    loop {
        tokio::select! {
            biased;
            next = stream.next() => match next {
                Some(Ok(chunk)) => {
                    if job.events.send(ClientEvent::Chunk(chunk)).await.is_err() {
                        return Ok(outcome(StatusCode::CONFLICT, "cancelled"));
                    }
                }
                Some(Err(err)) => {
                    let reason = format!("upload broke: {err}");
                    let _ = job.events.send(ClientEvent::Failed(GatewayError::ReaderLost { reason })).await;
                    return Ok(outcome(StatusCode::OK, "failed"));
                }
                None => {
                    let _ = job.events.send(ClientEvent::End).await;
                    return Ok(outcome(StatusCode::OK, "delivered"));
                }
            },
            _ = job.events.closed() => return Ok(outcome(StatusCode::CONFLICT, "cancelled")),
        }
    }
}

fn outcome(status: StatusCode, outcome: &'static str) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        format!("{{\"outcome\":\"{outcome}\"}}"),
    )
        .into_response()
}

/// `POST /v1/reader/leave`: the reader stops pulling; its waiting long-polls
/// answer 204 at once so none of them can take work it would not run.
pub async fn leave(
    State(state): State<SharedState>,
    headers: HeaderMap,
) -> Result<Response, GatewayError> {
    state.reader_token.check(&headers)?;
    state.broker.leave(reader_id(&headers));
    Ok(StatusCode::NO_CONTENT.into_response())
}
