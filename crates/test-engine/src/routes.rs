//! HTTP handlers: the OpenAI endpoints, /health and /stats.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Method, Uri};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::stream::{self, BoxStream, Stream, StreamExt, TryStreamExt};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::cli::Config;
use crate::embeddings;
use crate::error::EngineError;
use crate::generation::{generate, Piece, Plan, Timing};
use crate::protocol::{self, ChatRequest, CompletionRequest, EmbeddingRequest};
use crate::stats::{RequestGuard, Stats, StatsSnapshot};

/// Everything the handlers share: one engine, served by `router`.
pub struct Engine {
    models: Vec<String>,
    default_tokens: u32,
    timing: Timing,
    embedding_dim: usize,
    /// `--max-concurrency` slots; None when unlimited.
    slots: Option<Arc<Semaphore>>,
    max_concurrency: usize,
    reject_when_busy: bool,
    stats: Arc<Stats>,
    next_id: AtomicU64,
    /// `--load-seconds`: until then the engine acts as if loading its model.
    loaded_at: Instant,
}

impl Engine {
    pub fn new(config: &Config) -> Self {
        Self {
            models: config.served_models(),
            default_tokens: config.tokens,
            timing: Timing {
                ttft: Duration::from_millis(config.ttft_ms),
                token_delay: Duration::from_millis(config.token_delay_ms),
                fail_after_tokens: config.fail_after_tokens,
            },
            embedding_dim: config.embedding_dim,
            slots: (config.max_concurrency > 0)
                .then(|| Arc::new(Semaphore::new(config.max_concurrency))),
            max_concurrency: config.max_concurrency,
            reject_when_busy: config.reject_when_busy,
            stats: Arc::new(Stats::default()),
            next_id: AtomicU64::new(0),
            loaded_at: Instant::now() + Duration::from_secs(config.load_seconds),
        }
    }

    /// False while `--load-seconds` lasts.
    pub fn is_loaded(&self) -> bool {
        Instant::now() >= self.loaded_at
    }

    /// 503 `Loading model` while loading, counted as `unavailable`.
    fn check_loaded(&self) -> Result<(), EngineError> {
        if self.is_loaded() {
            Ok(())
        } else {
            self.stats.record_unavailable();
            Err(EngineError::Loading)
        }
    }

    /// What GET /stats would answer now.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    fn check_model(&self, model: &str) -> Result<(), EngineError> {
        self.check_loaded()?;
        if self.models.iter().any(|served| served == model) {
            Ok(())
        } else {
            Err(EngineError::UnknownModel(model.to_owned()))
        }
    }

    /// Takes a concurrency slot (waiting for one, or refusing with 429 under
    /// --reject-when-busy) and starts counting the request as in flight.
    async fn admit(&self) -> Result<RequestGuard, EngineError> {
        let Some(slots) = &self.slots else {
            return Ok(self.stats.begin(None));
        };
        let permit = if self.reject_when_busy {
            Arc::clone(slots).try_acquire_owned().ok()
        } else {
            // The semaphore is never closed, so this only fails if it were.
            Arc::clone(slots).acquire_owned().await.ok()
        };
        match permit {
            Some(permit) => Ok(self.stats.begin(Some(permit))),
            None => {
                self.stats.record_rejected();
                Err(EngineError::Overloaded {
                    limit: self.max_concurrency,
                })
            }
        }
    }

    fn id(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }
}

/// The engine's HTTP API: the OpenAI endpoints, /health, /stats and
/// /stats/reset.
pub fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings_handler))
        .route("/v1/models", get(models))
        .route("/health", get(health))
        .route("/stats", get(stats))
        .route("/stats/reset", post(reset_stats))
        .fallback(unknown_route)
        .with_state(engine)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

fn usage(prompt_tokens: u32, completion_tokens: u32) -> Value {
    json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": u64::from(prompt_tokens) + u64::from(completion_tokens),
    })
}

/// The two text-generation APIs differ only in the shape of their chunks.
#[derive(Clone, Copy)]
enum Api {
    Chat,
    Completion,
}

/// Fields every chunk / answer of one request repeats.
#[derive(Clone)]
struct Meta {
    api: Api,
    id: String,
    created: u64,
    model: String,
    prompt_tokens: u32,
    include_usage: bool,
}

impl Meta {
    fn object(&self, streaming: bool) -> &'static str {
        match (self.api, streaming) {
            (Api::Chat, true) => "chat.completion.chunk",
            (Api::Chat, false) => "chat.completion",
            (Api::Completion, _) => "text_completion",
        }
    }

    fn chunk(&self, choices: Value) -> Value {
        json!({
            "id": self.id,
            "object": self.object(true),
            "created": self.created,
            "model": self.model,
            "choices": choices,
        })
    }

    fn token_chunk(&self, text: &str) -> Value {
        self.chunk(match self.api {
            Api::Chat => json!([{"index": 0, "delta": {"content": text}, "logprobs": null, "finish_reason": null}]),
            Api::Completion => json!([{"index": 0, "text": text, "logprobs": null, "finish_reason": null}]),
        })
    }

    fn final_chunk(&self, finish_reason: &str) -> Value {
        self.chunk(match self.api {
            Api::Chat => {
                json!([{"index": 0, "delta": {}, "logprobs": null, "finish_reason": finish_reason}])
            }
            Api::Completion => {
                json!([{"index": 0, "text": "", "logprobs": null, "finish_reason": finish_reason}])
            }
        })
    }

    fn usage_chunk(&self, completion_tokens: u32) -> Value {
        let mut chunk = self.chunk(json!([]));
        chunk["usage"] = usage(self.prompt_tokens, completion_tokens);
        chunk
    }

    fn answer(&self, text: &str, finish_reason: &str, completion_tokens: u32) -> Value {
        let choice = match self.api {
            Api::Chat => {
                json!({"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": null, "finish_reason": finish_reason})
            }
            Api::Completion => {
                json!({"index": 0, "text": text, "logprobs": null, "finish_reason": finish_reason})
            }
        };
        json!({
            "id": self.id,
            "object": self.object(false),
            "created": self.created,
            "model": self.model,
            "choices": [choice],
            "usage": usage(self.prompt_tokens, completion_tokens),
        })
    }
}

fn event(value: &Value) -> Event {
    Event::default().data(value.to_string())
}

/// The SSE events of one streamed answer, ending with `data: [DONE]`.
fn sse_events(
    meta: Meta,
    plan: Plan,
    pieces: impl Stream<Item = Result<Piece, EngineError>> + Send + 'static,
) -> BoxStream<'static, Result<Event, EngineError>> {
    let opening = match meta.api {
        Api::Chat => vec![Ok(event(&meta.chunk(json!([{
            "index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null
        }]))))],
        Api::Completion => Vec::new(),
    };
    let body = pieces.flat_map(move |piece| {
        let events: Vec<Result<Event, EngineError>> = match piece {
            Ok(Piece::Token(text)) => vec![Ok(event(&meta.token_chunk(&text)))],
            Ok(Piece::Done) => {
                let mut closing = vec![Ok(event(&meta.final_chunk(plan.finish_reason())))];
                if meta.include_usage {
                    closing.push(Ok(event(&meta.usage_chunk(plan.tokens))));
                }
                closing.push(Ok(Event::default().data("[DONE]")));
                closing
            }
            Err(err) => vec![Err(err)],
        };
        stream::iter(events)
    });
    stream::iter(opening).chain(body).boxed()
}

/// Runs one generation request, streamed or not.
async fn run_generation(engine: &Engine, meta: Meta, plan: Plan, streaming: bool) -> Response {
    let guard = match engine.admit().await {
        Ok(guard) => guard,
        Err(err) => return err.into_response(),
    };
    let pieces = generate(plan.clone(), engine.timing, guard);
    if streaming {
        return Sse::new(sse_events(meta, plan, pieces)).into_response();
    }
    match pieces.try_collect::<Vec<Piece>>().await {
        Ok(pieces) => {
            let text: String = pieces
                .into_iter()
                .filter_map(|piece| match piece {
                    Piece::Token(text) => Some(text),
                    Piece::Done => None,
                })
                .collect();
            Json(meta.answer(&text, plan.finish_reason(), plan.tokens)).into_response()
        }
        // An engine that dies mid-answer sends no status line it could not
        // keep: abort the body so the caller sees a broken connection.
        Err(err) => Response::new(Body::from_stream(stream::once(async move {
            Err::<Bytes, EngineError>(err)
        }))),
    }
}

async fn chat_completions(State(engine): State<Arc<Engine>>, body: Bytes) -> Response {
    let request: ChatRequest = match protocol::parse(&body) {
        Ok(request) => request,
        Err(err) => return err.into_response(),
    };
    if let Err(err) = engine.check_model(&request.model) {
        return err.into_response();
    }
    let plan = Plan::new(
        &request.prompt_text(),
        engine.default_tokens,
        request.max_completion_tokens.or(request.max_tokens),
    );
    let meta = Meta {
        api: Api::Chat,
        id: engine.id("chatcmpl"),
        created: unix_now(),
        model: request.model.clone(),
        prompt_tokens: request.prompt_words(),
        include_usage: request
            .stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage),
    };
    run_generation(&engine, meta, plan, request.stream.unwrap_or(false)).await
}

async fn completions(State(engine): State<Arc<Engine>>, body: Bytes) -> Response {
    let request: CompletionRequest = match protocol::parse(&body) {
        Ok(request) => request,
        Err(err) => return err.into_response(),
    };
    if let Err(err) = engine.check_model(&request.model) {
        return err.into_response();
    }
    let prompt = request.prompt.texts().join(" ");
    let plan = Plan::new(&prompt, engine.default_tokens, request.max_tokens);
    let meta = Meta {
        api: Api::Completion,
        id: engine.id("cmpl"),
        created: unix_now(),
        model: request.model.clone(),
        prompt_tokens: u32::try_from(prompt.split_whitespace().count()).unwrap_or(u32::MAX),
        include_usage: request
            .stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage),
    };
    run_generation(&engine, meta, plan, request.stream.unwrap_or(false)).await
}

async fn embeddings_handler(State(engine): State<Arc<Engine>>, body: Bytes) -> Response {
    let request: EmbeddingRequest = match protocol::parse(&body) {
        Ok(request) => request,
        Err(err) => return err.into_response(),
    };
    if let Err(err) = engine.check_model(&request.model) {
        return err.into_response();
    }
    let base64 = match request.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return EngineError::InvalidBody(format!(
                "encoding_format must be float or base64, not {other}"
            ))
            .into_response()
        }
    };
    let mut guard = match engine.admit().await {
        Ok(guard) => guard,
        Err(err) => return err.into_response(),
    };
    if !engine.timing.ttft.is_zero() {
        tokio::time::sleep(engine.timing.ttft).await;
    }
    let dim = request
        .dimensions
        .unwrap_or(engine.embedding_dim)
        .clamp(1, 4096);
    let texts = request.input.texts();
    let words: usize = texts
        .iter()
        .map(|text| text.split_whitespace().count())
        .sum();
    let data: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let vector = embeddings::embed(text, dim);
            let embedding = if base64 {
                json!(embeddings::to_base64(&vector))
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    guard.completed();
    let words = u32::try_from(words).unwrap_or(u32::MAX);
    Json(json!({
        "object": "list",
        "data": data,
        "model": request.model,
        "usage": {"prompt_tokens": words, "total_tokens": words},
    }))
    .into_response()
}

async fn models(State(engine): State<Arc<Engine>>) -> Json<Value> {
    let data: Vec<Value> = engine
        .models
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "flightdeck-test-engine"}))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

/// llama-server's /health: 503 `Loading model` until the model is loaded.
async fn health(State(engine): State<Arc<Engine>>) -> Response {
    if engine.is_loaded() {
        Json(json!({"status": "ok"})).into_response()
    } else {
        EngineError::Loading.into_response()
    }
}

async fn stats(State(engine): State<Arc<Engine>>) -> Json<StatsSnapshot> {
    Json(engine.stats.snapshot())
}

async fn reset_stats(State(engine): State<Arc<Engine>>) -> Json<StatsSnapshot> {
    engine.stats.reset();
    Json(engine.stats.snapshot())
}

async fn unknown_route(method: Method, uri: Uri) -> EngineError {
    EngineError::UnknownRoute {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}

#[cfg(test)]
mod tests;
