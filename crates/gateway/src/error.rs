//! One error type for everything the gateway answers with.
//!
//! Each variant knows its HTTP status and its OpenAI-style `type`/`code`, so a
//! handler returns `Result<_, GatewayError>` and the client always gets
//! `{"error":{"message","type","param","code"}}`. Once a stream has started
//! the same error is sent as an SSE `data:` event instead ([`GatewayError::sse_event`]).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("invalid request: {message}")]
    BadRequest {
        message: String,
        param: Option<&'static str>,
    },
    #[error("missing or invalid API key")]
    Unauthorized,
    #[error("missing or invalid reader token")]
    ReaderUnauthorized,
    #[error("the model `{model}` does not exist")]
    ModelNotFound { model: String },
    /// The model exists but serves the other task: OpenAI answers a model
    /// on the wrong endpoint ("This is a chat model and not supported in the
    /// v1/completions endpoint") with 404, `invalid_request_error`,
    /// `param: model`.
    #[error("the model `{model}` does not serve {path}; it serves {serves}")]
    RouteNotServed {
        model: String,
        path: &'static str,
        serves: &'static str,
    },
    #[error("no route for {method} {path}")]
    RouteNotFound { method: String, path: String },
    #[error("{path} does not accept {method}")]
    MethodNotAllowed { method: String, path: String },
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the queue for consumer group `{group}` is full ({depth} waiting); retry later")]
    QueueFull {
        group: String,
        depth: usize,
        retry_after_seconds: u64,
    },
    #[error("no reader answered within {seconds} s")]
    Timeout { seconds: u64 },
    #[error("the request was handed to readers {attempts} times and every reader went away before answering")]
    RedeliveriesExhausted { attempts: u32 },
    #[error("the reader serving this request failed mid-answer: {reason}")]
    ReaderLost { reason: String },
    #[error("the gateway is shutting down")]
    ShuttingDown,
    #[error("the gateway has no valid configuration yet")]
    NotConfigured,
    #[error("lease {lease} is unknown or expired")]
    LeaseUnknown { lease: u64 },
    #[error("reading the request body failed: {reason}")]
    BodyRead { reason: String },
    // Start-up failures: never sent to clients in practice, but one enum keeps
    // every failure of the crate in one place.
    #[error("registering metric failed: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("configuration {path}: {reason}")]
    Config { path: String, reason: String },
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorObject<'a>,
}

#[derive(Serialize)]
struct ErrorObject<'a> {
    message: String,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

impl GatewayError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } | Self::BodyRead { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized | Self::ReaderUnauthorized => StatusCode::UNAUTHORIZED,
            Self::ModelNotFound { .. }
            | Self::RouteNotServed { .. }
            | Self::RouteNotFound { .. }
            | Self::LeaseUnknown { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::QueueFull { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::RedeliveriesExhausted { .. } | Self::ShuttingDown | Self::NotConfigured => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::ReaderLost { .. } => StatusCode::BAD_GATEWAY,
            Self::Metrics(_) | Self::Io { .. } | Self::Config { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// OpenAI's `error.type` for this error.
    fn kind(&self) -> &'static str {
        match self {
            Self::BadRequest { .. }
            | Self::BodyRead { .. }
            | Self::ModelNotFound { .. }
            | Self::RouteNotServed { .. }
            | Self::RouteNotFound { .. }
            | Self::MethodNotAllowed { .. }
            | Self::PayloadTooLarge { .. }
            | Self::LeaseUnknown { .. } => "invalid_request_error",
            Self::Unauthorized | Self::ReaderUnauthorized => "authentication_error",
            Self::QueueFull { .. } => "rate_limit_error",
            Self::Timeout { .. } => "timeout_error",
            Self::RedeliveriesExhausted { .. }
            | Self::ShuttingDown
            | Self::NotConfigured
            | Self::ReaderLost { .. }
            | Self::Metrics(_)
            | Self::Io { .. }
            | Self::Config { .. } => "server_error",
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { .. } | Self::BodyRead { .. } => "invalid_request",
            Self::Unauthorized => "invalid_api_key",
            Self::ReaderUnauthorized => "invalid_reader_token",
            Self::ModelNotFound { .. } => "model_not_found",
            Self::RouteNotServed { .. } => "model_not_supported",
            Self::RouteNotFound { .. } => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::PayloadTooLarge { .. } => "request_too_large",
            Self::QueueFull { .. } => "queue_full",
            Self::Timeout { .. } => "timeout",
            Self::RedeliveriesExhausted { .. } => "redeliveries_exhausted",
            Self::ReaderLost { .. } => "reader_lost",
            Self::ShuttingDown => "shutting_down",
            Self::NotConfigured => "not_configured",
            Self::LeaseUnknown { .. } => "lease_unknown",
            Self::Metrics(_) | Self::Io { .. } | Self::Config { .. } => "internal_error",
        }
    }

    fn param(&self) -> Option<&'static str> {
        match self {
            Self::BadRequest { param, .. } => *param,
            Self::ModelNotFound { .. } | Self::RouteNotServed { .. } => Some("model"),
            _ => None,
        }
    }

    /// The OpenAI-style JSON error object.
    pub fn to_json(&self) -> Vec<u8> {
        let body = ErrorBody {
            error: ErrorObject {
                message: self.to_string(),
                kind: self.kind(),
                param: self.param(),
                code: Some(self.code()),
            },
        };
        serde_json::to_vec(&body).unwrap_or_else(|_| br#"{"error":{"message":"internal error","type":"server_error","param":null,"code":null}}"#.to_vec())
    }

    /// The error as one SSE event, for streams that already started: OpenAI
    /// clients raise an `APIError` on a `data:` event carrying `error`.
    pub fn sse_event(&self) -> Bytes {
        let json = self.to_json();
        let mut event = Vec::with_capacity(json.len() + 8);
        event.extend_from_slice(b"data: ");
        event.extend_from_slice(&json);
        event.extend_from_slice(b"\n\n");
        Bytes::from(event)
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status(),
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            self.to_json(),
        )
            .into_response();
        if let Self::QueueFull {
            retry_after_seconds,
            ..
        } = &self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_seconds));
        }
        if matches!(self, Self::Unauthorized | Self::ReaderUnauthorized) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_openai_shape() {
        let err = GatewayError::ModelNotFound {
            model: "gpt-9".into(),
        };
        let value: serde_json::Value = serde_json::from_slice(&err.to_json()).expect("json");
        let error = &value["error"];
        assert_eq!(error["type"], "invalid_request_error");
        assert_eq!(error["code"], "model_not_found");
        assert_eq!(error["param"], "model");
        assert!(error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("gpt-9"));
    }

    #[test]
    fn sse_event_is_one_data_line() {
        let event = GatewayError::ReaderLost {
            reason: "reset".into(),
        }
        .sse_event();
        let text = std::str::from_utf8(&event).expect("utf8");
        assert!(text.starts_with("data: {\"error\""));
        assert!(text.ends_with("\n\n"));
        assert_eq!(text.matches('\n').count(), 2);
    }
}
