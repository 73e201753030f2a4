//! The engine's one error type; request errors render as OpenAI error objects.

use std::net::SocketAddr;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("invalid request body: {0}")]
    InvalidBody(String),
    #[error("the model `{0}` does not exist")]
    UnknownModel(String),
    #[error("no route for {method} {path}")]
    UnknownRoute { method: String, path: String },
    /// `--load-seconds`: the model is still loading (llama-server's 503).
    #[error("Loading model")]
    Loading,
    #[error("engine at capacity: {limit} requests in flight")]
    Overloaded { limit: usize },
    /// `--fail-after-tokens`: the answer is cut off on purpose.
    #[error("injected failure after {tokens} tokens")]
    InjectedFailure { tokens: u32 },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("serving HTTP failed: {0}")]
    Serve(std::io::Error),
}

impl EngineError {
    fn status(&self) -> StatusCode {
        match self {
            EngineError::InvalidBody(_) => StatusCode::BAD_REQUEST,
            EngineError::UnknownModel(_) | EngineError::UnknownRoute { .. } => {
                StatusCode::NOT_FOUND
            }
            EngineError::Overloaded { .. } => StatusCode::TOO_MANY_REQUESTS,
            EngineError::Loading => StatusCode::SERVICE_UNAVAILABLE,
            EngineError::InjectedFailure { .. }
            | EngineError::Bind { .. }
            | EngineError::Serve(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn kind(&self) -> (&'static str, Option<&'static str>) {
        match self {
            EngineError::InvalidBody(_) => ("invalid_request_error", None),
            EngineError::UnknownModel(_) => ("invalid_request_error", Some("model_not_found")),
            EngineError::UnknownRoute { .. } => ("invalid_request_error", Some("unknown_url")),
            EngineError::Overloaded { .. } => ("rate_limit_error", Some("engine_overloaded")),
            _ => ("server_error", None),
        }
    }
}

impl IntoResponse for EngineError {
    fn into_response(self) -> Response {
        if matches!(self, EngineError::Loading) {
            // llama-server's answer, byte for byte in shape: a numeric code.
            let body = json!({"error": {
                "code": 503,
                "message": "Loading model",
                "type": "unavailable_error",
            }});
            return (self.status(), Json(body)).into_response();
        }
        let (kind, code) = self.kind();
        let body = json!({"error": {
            "message": self.to_string(),
            "type": kind,
            "param": null,
            "code": code,
        }});
        let mut response = (self.status(), Json(body)).into_response();
        if matches!(self, EngineError::Overloaded { .. }) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
