//! Turns the reader's upload events into the client's response.
//!
//! Event streams (`text/event-stream`) are relayed chunk by chunk; if the
//! reader fails after the first byte the stream ends with an SSE error event,
//! never a silent truncation. Other answers (JSON) are collected first, so a
//! reader failure mid-body can still become a clean 502.
//!
//! Both paths count the answer's tokens on the way (`crate::tokens`).

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures::stream;
use tokio::sync::mpsc;

use crate::broker::ClientEvent;
use crate::error::GatewayError;
use crate::tokens::{StreamTally, TokenSink};
use flightdeck_protocol::pull::UploadHead;

pub async fn respond(
    head: UploadHead,
    mut events: mpsc::Receiver<ClientEvent>,
    tokens: TokenSink,
) -> Result<Response, GatewayError> {
    let status = StatusCode::from_u16(head.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = head.content_type.as_deref().unwrap_or("application/json");
    let streaming = content_type.starts_with("text/event-stream");
    let body = if streaming {
        Body::from_stream(sse_stream(events, tokens.stream()))
    } else {
        let mut collected = BytesMut::new();
        loop {
            match events.recv().await {
                Some(ClientEvent::Chunk(chunk)) => collected.extend_from_slice(&chunk),
                Some(ClientEvent::End) => break,
                Some(ClientEvent::Failed(error)) => return Err(error),
                Some(ClientEvent::Head(_)) | None => {
                    return Err(GatewayError::ReaderLost {
                        reason: "the upload ended before the answer was complete".into(),
                    })
                }
            }
        }
        if status.is_success() {
            tokens.count_json(&collected);
        }
        Body::from(collected.freeze())
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let value =
        HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("application/json"));
    response.headers_mut().insert(header::CONTENT_TYPE, value);
    if streaming {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    Ok(response)
}

/// Chunks as they come, tallied on the way; an error or a vanished upload
/// becomes a final SSE error event. The tally adds its counts when the
/// stream ends or the client drops it.
fn sse_stream(
    events: mpsc::Receiver<ClientEvent>,
    tally: StreamTally,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    stream::unfold(Some((events, tally)), |state| async move {
        let (mut events, mut tally) = state?;
        match events.recv().await {
            Some(ClientEvent::Chunk(chunk)) => {
                tally.scan(&chunk);
                Some((Ok(chunk), Some((events, tally))))
            }
            Some(ClientEvent::End) => None,
            Some(ClientEvent::Failed(error)) => Some((Ok(error.sse_event()), None)),
            Some(ClientEvent::Head(_)) | None => {
                let error = GatewayError::ReaderLost {
                    reason: "the upload ended before the answer was complete".into(),
                };
                Some((Ok(error.sse_event()), None))
            }
        }
    })
}
