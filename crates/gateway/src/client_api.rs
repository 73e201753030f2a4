//! The OpenAI-compatible client API: parse only what routing needs, queue the
//! untouched body, and answer with what the engine produced.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::broker::ClientEvent;
use crate::error::GatewayError;
use crate::relay;
use crate::routes::{NoRoute, RoutingFields};
use crate::state::SharedState;
use crate::tokens::TokenSink;
use flightdeck_protocol::gateway_config::Task;

/// Events buffered between a reader's upload and the client: enough to keep
/// the upload busy while the client socket drains, small enough that a slow
/// client pushes back on the engine.
const EVENT_BUFFER: usize = 32;

pub async fn chat_completions(State(state): State<SharedState>, request: Request) -> Response {
    relay_request(state, "/v1/chat/completions", request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

pub async fn completions(State(state): State<SharedState>, request: Request) -> Response {
    relay_request(state, "/v1/completions", request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

pub async fn embeddings(State(state): State<SharedState>, request: Request) -> Response {
    relay_request(state, "/v1/embeddings", request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

pub async fn list_models(
    State(state): State<SharedState>,
    headers: HeaderMap,
) -> Result<Response, GatewayError> {
    check_api_key(&state, &headers)?;
    let body = state.routes().models_json();
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

/// Unknown paths get an OpenAI-style 404 rather than an empty body.
pub async fn not_found(method: Method, uri: Uri) -> GatewayError {
    GatewayError::RouteNotFound {
        method: method.to_string(),
        path: uri.path().to_string(),
    }
}

/// A known path with the wrong method gets an OpenAI-style 405.
pub async fn method_not_allowed(method: Method, uri: Uri) -> GatewayError {
    GatewayError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_string(),
    }
}

fn check_api_key(state: &SharedState, headers: &HeaderMap) -> Result<(), GatewayError> {
    state
        .api_keys
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .check(headers)
}

async fn relay_request(
    state: SharedState,
    path: &'static str,
    request: Request,
) -> Result<Response, GatewayError> {
    if state.is_refusing() {
        return Err(GatewayError::ShuttingDown);
    }
    let (parts, body) = request.into_parts();
    check_api_key(&state, &parts.headers)?;
    let body = read_body(body, &parts.headers, state.max_body_bytes).await?;
    let model = parse_model(&body)?;
    let routes = state.routes();
    let groups = routes
        .groups_for(&model, path)
        .map_err(|no_route| match no_route {
            NoRoute::UnknownModel => GatewayError::ModelNotFound {
                model: model.clone(),
            },
            NoRoute::WrongTask(task) => GatewayError::RouteNotServed {
                model: model.clone(),
                path,
                serves: match task {
                    Task::Generate => "/v1/chat/completions and /v1/completions",
                    Task::Embed => "/v1/embeddings",
                },
            },
        })?;
    let group: Arc<str> = state
        .broker
        .shortest(groups)
        .cloned()
        .ok_or(GatewayError::NotConfigured)?;

    let started = Instant::now();
    let (events, mut receiver) = mpsc::channel(EVENT_BUFFER);
    let job_id = state.broker.enqueue(&group, path, body, events)?;
    let mut queued = AbandonOnDrop {
        state: &state,
        group: &group,
        job_id: Some(job_id),
    };

    let timeout = routes.request_timeout;
    let first = match tokio::time::timeout(timeout, receiver.recv()).await {
        Ok(first) => first,
        Err(_) => {
            return Err(GatewayError::Timeout {
                seconds: timeout.as_secs(),
            })
        }
    };
    // From here the job is leased or finished: nothing to take out of a queue.
    queued.job_id = None;
    match first {
        Some(ClientEvent::Head(head)) => {
            state
                .metrics
                .time_to_first_byte
                .with_label_values(&[group.as_ref()])
                .observe(started.elapsed().as_secs_f64());
            let tokens = TokenSink::new(state.metrics.clone(), model, group.clone());
            relay::respond(head, receiver, tokens).await
        }
        Some(ClientEvent::Failed(error)) => Err(error),
        Some(ClientEvent::Chunk(_) | ClientEvent::End) | None => Err(GatewayError::ReaderLost {
            reason: "the reader ended the answer before its head".into(),
        }),
    }
}

/// Takes a queued job back out of its queue when the client goes away (the
/// handler future is dropped) or gives up waiting.
struct AbandonOnDrop<'a> {
    state: &'a SharedState,
    group: &'a Arc<str>,
    job_id: Option<u64>,
}

impl Drop for AbandonOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(job_id) = self.job_id {
            self.state.broker.abandon(self.group, job_id);
        }
    }
}

/// Reads the body up to `limit` bytes; more is 413, without reading it all.
async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, GatewayError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(GatewayError::PayloadTooLarge { limit });
    }
    let mut collected = BytesMut::with_capacity(declared.map_or(1024, |len| len as usize));
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|err| GatewayError::BodyRead {
            reason: err.to_string(),
        })?;
        if collected.len() + chunk.len() > limit {
            return Err(GatewayError::PayloadTooLarge { limit });
        }
        if collected.is_empty() && chunk.len() == declared.unwrap_or(0) as usize {
            // The whole body in one chunk (the common case): no copy.
            return Ok(chunk);
        }
        collected.extend_from_slice(&chunk);
    }
    Ok(collected.freeze())
}

/// Extracts `model` (and validates `stream`'s type) without building a tree
/// of the whole body.
fn parse_model(body: &[u8]) -> Result<String, GatewayError> {
    let fields: RoutingFields<'_> = serde_json::from_slice(body).map_err(|err| {
        let message = match err.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                format!("the body is not valid JSON: {err}")
            }
            _ => format!("the body has the wrong shape: {err}"),
        };
        GatewayError::BadRequest {
            message,
            param: None,
        }
    })?;
    match fields.model {
        Some(model) if !model.is_empty() => Ok(model.into_owned()),
        _ => Err(GatewayError::BadRequest {
            message: "you must provide a model parameter".into(),
            param: Some("model"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_is_extracted_and_types_checked() {
        assert_eq!(
            parse_model(br#"{"model":"m","messages":[{"role":"user"}]}"#)
                .ok()
                .as_deref(),
            Some("m")
        );
        assert!(matches!(
            parse_model(br#"{"messages":[]}"#),
            Err(GatewayError::BadRequest {
                param: Some("model"),
                ..
            })
        ));
        assert!(matches!(
            parse_model(br#"{"model":7}"#),
            Err(GatewayError::BadRequest { .. })
        ));
        assert!(matches!(
            parse_model(br#"{"model":"m","stream":"yes"}"#),
            Err(GatewayError::BadRequest { .. })
        ));
        assert!(matches!(
            parse_model(br#"{"model":"m""#),
            Err(GatewayError::BadRequest { .. })
        ));
        assert!(matches!(
            parse_model(br#"[1,2]"#),
            Err(GatewayError::BadRequest { .. })
        ));
    }

    #[test]
    fn escaped_model_names_are_decoded() {
        assert_eq!(
            parse_model(br#"{"model":"a\/b"}"#).ok().as_deref(),
            Some("a/b")
        );
    }
}
