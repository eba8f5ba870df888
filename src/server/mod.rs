//! The OpenAI-compatible HTTP API (axum). Handlers are thin: parse and validate the body
//! ([`request`]), hand jobs to the engine ([`generate`]), shape the answer. Every failure is an
//! [`ApiError`] in OpenAI's error shape.

mod chat;
mod completions;
pub mod connections;
pub mod constrain;
mod decoupled;
pub mod error;
mod generate;
mod host;
pub mod prompt;
pub mod reasoning;
pub mod request;
mod responses;
mod stream;
mod tools;
mod xml_calls;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};

use crate::chat_format::ChatFormat;
use crate::chat_template::ChatTemplate;
use crate::engine::Engine;
use constrain::Formats;
pub use error::ApiError;
use prompt::ControlTokens;

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub chat_template: Option<Arc<ChatTemplate>>,
    /// How this model writes tool calls and reasoning.
    pub chat_format: ChatFormat,
    /// The vocabulary's control tokens, which only the chat template's own text may produce.
    pub control_tokens: Arc<ControlTokens>,
    pub formats: Arc<Formats>,
    pub body_limit: usize,
    /// Bearer keys accepted on `/v1/*`; empty = no authentication.
    pub api_keys: Arc<Vec<String>>,
    /// Most sequences waiting for a slot; past it requests get a 429.
    pub max_queue: usize,
    /// Longest wait in the queue; past it the request gets a 503.
    pub queue_timeout: std::time::Duration,
    pub request_limits: Arc<request::RequestLimits>,
    /// Host names answered besides loopback ones; `None`: any Host.
    pub allowed_hosts: Option<host::AllowedHosts>,
    /// Streams still open at the shutdown deadline end with an error event.
    pub deadline: connections::Deadline,
}

/// The server's own settings (the engine has its own).
pub struct ServerConfig {
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    pub api_keys: Vec<String>,
    /// Most sequences waiting for a slot; past it requests get a 429.
    pub max_queue: usize,
    /// Longest wait in the queue; past it the request gets a 503.
    pub queue_timeout: std::time::Duration,
    /// Bounds on format compilation.
    pub limits: crate::format::Limits,
    /// Bounds on each request.
    pub request_limits: request::RequestLimits,
    /// The model's TPM, for `format_mode: "lookahead"`.
    pub tpm: Option<Arc<crate::tpm::Hmm>>,
    /// Host names answered besides loopback ones (the DNS-rebinding guard, [`host`]); `None`
    /// answers any Host, for a server meant to be reached by other names.
    pub allowed_hosts: Option<Vec<String>>,
    /// A chat template to use instead of the GGUF's (Jinja source).
    pub chat_template: Option<String>,
    /// The chat format, instead of the one detected from the template.
    pub chat_format: Option<ChatFormat>,
}

impl AppState {
    pub fn new(engine: Engine, config: ServerConfig) -> anyhow::Result<Self> {
        let ServerConfig {
            body_limit,
            api_keys,
            max_queue,
            queue_timeout,
            limits,
            request_limits,
            tpm,
            allowed_hosts,
            chat_template,
            chat_format,
        } = config;
        let info = &engine.info;
        let source = chat_template.or_else(|| info.chat_template.clone());
        let chat_format = chat_format.unwrap_or_else(|| ChatFormat::detect(source.as_deref().unwrap_or_default()));
        tracing::info!(chat_format = chat_format.name, "chat format");
        let chat_template = match &source {
            Some(source) => Some(Arc::new(ChatTemplate::new(source, &info.bos_token, &info.eos_token)?)),
            None => None,
        };
        let control_tokens = Arc::new(ControlTokens::from_model(&engine.model)?);
        let model = engine.model.clone();
        let tokenize = Arc::new(move |bytes: &[u8]| {
            model.vocab().tokenize(bytes, false, false).into_iter().map(|t| t.0 as u32).collect()
        });
        let formats = Arc::new(Formats::with_limits(info.vocab.clone(), tokenize, limits).with_tpm(tpm));
        Ok(AppState {
            engine: Arc::new(engine),
            chat_template,
            chat_format,
            control_tokens,
            formats,
            body_limit,
            api_keys: Arc::new(api_keys),
            max_queue,
            queue_timeout,
            request_limits: Arc::new(request_limits),
            allowed_hosts: allowed_hosts.as_deref().map(host::AllowedHosts::new),
            deadline: connections::Deadline::default(),
        })
    }
}

pub fn app(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/completions", post(completions::completions))
        .route("/v1/responses", post(responses::responses))
        .route("/v1/models", get(models))
        .route("/v1/models/{model}", get(model))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), require_api_key));
    let mut router = Router::new()
        .merge(v1)
        .route("/", get(playground))
        .route("/health", get(health))
        .route("/metrics", get(prometheus))
        .fallback(|| async { ApiError::not_found("no such route", None, "not_found") });
    if let Some(allowed) = state.allowed_hosts.clone() {
        router = router.layer(axum::middleware::from_fn_with_state(allowed, host::check_host));
    }
    router.layer(axum::middleware::from_fn(request_id)).layer(DefaultBodyLimit::max(state.body_limit)).with_state(state)
}

/// The playground: one prompt and format, free and mask arms streamed side by side. One
/// self-contained page (no external assets); it calls the API like any client.
async fn playground() -> axum::response::Html<&'static str> {
    axum::response::Html(include_str!("playground.html"))
}

/// Tags each request with an id (the client's `x-request-id`, or a new one), echoes it in the
/// response and logs the request under it.
async fn request_id(mut request: Request, next: axum::middleware::Next) -> axum::response::Response {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(String::from)
        .unwrap_or_else(|| new_id("req"));
    let value =
        axum::http::HeaderValue::from_str(&id).unwrap_or_else(|_| axum::http::HeaderValue::from_static("invalid"));
    request.headers_mut().insert("x-request-id", value.clone());
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let route = route_label(&path);
    let start = std::time::Instant::now();
    let span = tracing::info_span!("request", id = %id, %method, %path);
    let mut response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    span.in_scope(|| {
        tracing::info!(status = response.status().as_u16(), ms = start.elapsed().as_millis() as u64, "answered")
    });
    crate::metrics::metrics().request(route, response.status().as_u16());
    response.headers_mut().insert("x-request-id", value);
    response
}

/// The route a path belongs to, for metric labels: never the raw path, so unknown paths and
/// model ids cannot grow the label set.
fn route_label(path: &str) -> &'static str {
    match path {
        "/v1/chat/completions" => "/v1/chat/completions",
        "/v1/completions" => "/v1/completions",
        "/v1/responses" => "/v1/responses",
        "/v1/models" => "/v1/models",
        "/health" => "/health",
        "/metrics" => "/metrics",
        p if p.starts_with("/v1/models/") => "/v1/models/{model}",
        _ => "unmatched",
    }
}

/// `Authorization: Bearer <key>` on `/v1/*` when keys are configured; `/health` stays open.
async fn require_api_key(
    State(state): State<AppState>,
    request: Request,
    next: axum::middleware::Next,
) -> Result<axum::response::Response, ApiError> {
    if state.api_keys.is_empty() {
        return Ok(next.run(request).await);
    }
    // The scheme is case-insensitive (RFC 9110 §11.1); a missing or empty credential never matches.
    let given = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim())
        .filter(|key| !key.is_empty());
    // Compare against every key in full, so timing says nothing about which bytes matched.
    let matched = given.is_some_and(|given| {
        state
            .api_keys
            .iter()
            .filter(|key| !key.is_empty())
            .fold(false, |any, key| any | constant_time_eq(given.as_bytes(), key.as_bytes()))
    });
    if matched {
        Ok(next.run(request).await)
    } else {
        Err(ApiError {
            status: axum::http::StatusCode::UNAUTHORIZED,
            message: "missing or invalid API key (send `Authorization: Bearer <key>`)".into(),
            kind: "invalid_request_error",
            param: None,
            code: Some("invalid_api_key"),
        })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, &x) in b.iter().enumerate() {
        diff |= (x ^ a.get(i).copied().unwrap_or(0)) as usize;
    }
    diff == 0
}

/// The raw body of a POST to the API: declared `application/json` (else 415), within the body
/// limit (else 413), both answered in OpenAI's shape.
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let content_type =
            req.headers().get(axum::http::header::CONTENT_TYPE).map(|v| String::from_utf8_lossy(v.as_bytes()));
        // Parameters such as `charset=utf-8` may follow the media type.
        let media_type = content_type.as_deref().and_then(|t| t.split(';').next()).map(str::trim);
        if !media_type.is_some_and(|t| t.eq_ignore_ascii_case("application/json")) {
            return Err(ApiError::unsupported_media_type(content_type.as_deref()));
        }
        match Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(Body(bytes)),
            Err(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::too_large()),
            Err(e) => Err(ApiError::malformed(e.body_text())),
        }
    }
}

async fn health(State(state): State<AppState>) -> Json<Value> {
    let stats = &state.engine.stats;
    Json(json!({
        "status": "ok",
        "active_sequences": stats.active.load(Ordering::Relaxed),
        "queued": stats.queued.load(Ordering::Relaxed),
        "weight_buffers": state.engine.info.weight_buffers,
        "chat_format": state.chat_format.name,
    }))
}

async fn prometheus(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    let stats = &state.engine.stats;
    let body = crate::metrics::metrics().render(&[
        ("conform_queue_depth", "Sequences waiting for a slot.", stats.queued.load(Ordering::Relaxed) as u64),
        ("conform_active_sequences", "Sequences holding a slot.", stats.active.load(Ordering::Relaxed) as u64),
    ]);
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

fn model_json(state: &AppState) -> Value {
    json!({"id": state.engine.info.id, "object": "model", "created": 0, "owned_by": "conform"})
}

async fn models(State(state): State<AppState>) -> Json<Value> {
    Json(json!({"object": "list", "data": [model_json(&state)]}))
}

async fn model(
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_model(&state, &id)?;
    Ok(Json(model_json(&state)))
}

pub fn check_model(state: &AppState, requested: &str) -> Result<(), ApiError> {
    if requested == state.engine.info.id {
        Ok(())
    } else {
        Err(ApiError::not_found(
            format!("the model `{requested}` does not exist; this server serves `{}`", state.engine.info.id),
            Some("model"),
            "model_not_found",
        ))
    }
}

pub fn new_id(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{:x}{n:04x}", unix_now())
}

pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
