//! What chat and text completions share: checking the prompt against the context window,
//! submitting one engine job per choice, and collecting or merging their event streams.

use std::sync::atomic::Ordering;

use futures::stream::{self, Stream, StreamExt};
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::constrain::{Format, FormatFields, Onset};
use super::decoupled::Plan;
use super::error::ApiError;
use super::reasoning::{ReasoningConstraint, Think};
use super::request::{typed, Validated};
use super::AppState;
use crate::engine::{Event, Job, Summary, TokenConstraint, TokenLogprob};

/// Reads and compiles the request's format, off the async threads (big schemas take a while).
pub async fn compile_format(state: &AppState, body: &serde_json::Value) -> Result<Option<Format>, ApiError> {
    compile_fields(state, typed(body)?).await
}

/// [`compile_format`] for format fields already read (and possibly rewritten).
pub async fn compile_fields(state: &AppState, fields: FormatFields) -> Result<Option<Format>, ApiError> {
    let formats = state.formats.clone();
    tokio::task::spawn_blocking(move || formats.compile(&fields)).await.map_err(ApiError::internal)?
}

/// Starts `n` generations of one prompt; choice `i` uses seed `seed + i` so choices differ but
/// the whole response stays reproducible. `onset` says when the format starts to hold the
/// output (tool calls under "auto" only once the model calls). Returns once every choice has a slot: a request still queued after
/// `queue_timeout` gets a 503 (its jobs leave the queue, since their receivers are dropped),
/// and the status is still ours to choose because no response has started. A `decoupled`
/// request writes freely first; its `bridge` (prompt between the free text and the format)
/// takes room in the context window too.
/// Refuses with a 400 (naming `field`) a request of `generations` sequences that could never
/// be admitted: more than `--max-n`, or more than the slots and the queue hold together (a
/// 429 would tell its client to retry forever).
pub fn check_admittable(state: &AppState, generations: usize, field: &'static str) -> Result<(), ApiError> {
    let max_n = state.request_limits.max_n as usize;
    let capacity = state.engine.config.parallel as usize + state.max_queue;
    let bound = max_n.min(capacity);
    if generations > bound {
        let why = if generations > max_n {
            format!("--max-n is {max_n}")
        } else {
            format!("{capacity} fit in the slots and the queue")
        };
        return Err(ApiError::invalid(
            field,
            format!("this request asks for {generations} generations, but at most {bound} can run ({why})"),
        ));
    }
    Ok(())
}

pub async fn submit(
    state: &AppState,
    prompt: Vec<LlamaToken>,
    request: &Validated,
    format: Option<&Format>,
    onset: Onset,
    decoupled: Option<(&Plan, &[LlamaToken])>,
    think: Option<&Think>,
) -> Result<Vec<mpsc::UnboundedReceiver<Event>>, ApiError> {
    let ctx_size = state.engine.config.ctx_size;
    let prompt_len = (prompt.len() + decoupled.map_or(0, |(_, bridge)| bridge.len())) as u32;
    if prompt_len >= ctx_size {
        return Err(ApiError::invalid(
            "messages",
            format!("this model's context window is {ctx_size} tokens, but the prompt has {prompt_len} tokens"),
        )
        .with_code("context_length_exceeded"));
    }
    let room = ctx_size - prompt_len;
    let max_tokens = match request.max_tokens {
        Some(m) if m > room => {
            return Err(ApiError::invalid(
                "max_tokens",
                format!(
                    "this model's context window is {ctx_size} tokens; the prompt has {prompt_len} and \
                     {m} were requested for the completion"
                ),
            )
            .with_code("context_length_exceeded"))
        }
        Some(m) => m,
        None => room,
    };
    // A format that waits for a call (tool calls under "auto") only engages if it still fits.
    let upfront = if onset == Onset::Start { format } else { None };
    let answer_needs = upfront.map_or(0, Format::shortest_tokens);
    // A reasoning section ahead of a format ends with its marker, which the budget must hold too.
    let think = think.filter(|_| format.is_some());
    let marker_needs = think.map_or(0, |t| t.close.len() as u32);
    if let Some(needed) = upfront.map(|_| answer_needs + marker_needs).filter(|&n| n > max_tokens) {
        return Err(ApiError::invalid(
            "max_tokens",
            format!(
                "the requested format needs at least {needed} tokens to complete, but only {max_tokens} are allowed"
            ),
        )
        .with_code("format_exceeds_max_tokens"));
    }
    check_admittable(state, request.n as usize, "n")?;
    // Sequences beyond the free slots wait in the engine's queue; bound it.
    let stats = &state.engine.stats;
    // Queue first, then slots (the engine updates them in the other order), so a job moving
    // from one to the other is counted once or twice, never missed.
    let waiting = stats.queued.load(Ordering::SeqCst);
    let free = (state.engine.config.parallel as usize).saturating_sub(stats.active.load(Ordering::SeqCst));
    if (waiting + request.n as usize).saturating_sub(free) > state.max_queue {
        return Err(ApiError::busy(waiting, state.max_queue));
    }
    let mut receivers = Vec::with_capacity(request.n as usize);
    let mut admissions = Vec::with_capacity(request.n as usize);
    for i in 0..request.n {
        let (events, rx) = mpsc::unbounded_channel();
        let (admitted, admission) = tokio::sync::oneshot::channel();
        admissions.push(admission);
        let mut params = request.params.clone();
        params.seed = params.seed.map(|s| s.wrapping_add(i as u64));
        state
            .engine
            .submit(Job {
                prompt: prompt.clone(),
                params,
                max_tokens,
                stop: request.stop.clone(),
                constraint: match (format, onset) {
                    (Some(f), Onset::WhenCalled(opener)) => Some(f.auto_calls_constraint(opener)),
                    (Some(f), Onset::Start) => f.constraint(),
                    (None, _) => None,
                }
                .map(|inner| match think {
                    Some(t) => Box::new(ReasoningConstraint::new(
                        inner,
                        state.engine.info.vocab.clone(),
                        t.marker,
                        t.close.clone(),
                        answer_needs,
                    )) as Box<dyn TokenConstraint>,
                    None => inner,
                }),
                free_first: decoupled.map(|(plan, bridge)| {
                    plan.free_first(bridge.to_vec(), max_tokens, format.map_or(0, Format::shortest_tokens))
                }),
                events,
                admitted: Some(admitted),
            })
            .map_err(ApiError::internal)?;
        receivers.push(rx);
    }
    // A dropped sender (engine gone) is not a wait: the receivers report what happened.
    let all_admitted = futures::future::join_all(admissions);
    if tokio::time::timeout(state.queue_timeout, all_admitted).await.is_err() {
        return Err(ApiError::queue_timeout(state.queue_timeout));
    }
    Ok(receivers)
}

/// A finished choice.
pub struct Collected {
    pub text: String,
    /// A decoupled choice's free text (`text` is then its formatted part).
    pub free_text: Option<String>,
    pub logprobs: Vec<TokenLogprob>,
    pub summary: Summary,
}

pub async fn collect(mut rx: mpsc::UnboundedReceiver<Event>) -> Result<Collected, ApiError> {
    let mut text = String::new();
    let mut free_text = None;
    let mut logprobs = Vec::new();
    while let Some(event) = rx.recv().await {
        match event {
            Event::Token { text: piece, logprob } => {
                text.push_str(&piece);
                logprobs.extend(logprob);
            }
            Event::FormatStarts => free_text = Some(std::mem::take(&mut text)),
            Event::Done(summary) => return Ok(Collected { text, free_text, logprobs, summary }),
            Event::Error(message) => return Err(ApiError::internal(message)),
        }
    }
    Err(ApiError::internal("the engine dropped a request"))
}

pub async fn collect_all(receivers: Vec<mpsc::UnboundedReceiver<Event>>) -> Result<Vec<Collected>, ApiError> {
    futures::future::try_join_all(receivers.into_iter().map(collect)).await
}

/// All choices' events as one stream, each tagged with its choice index.
pub fn merged(receivers: Vec<mpsc::UnboundedReceiver<Event>>) -> impl Stream<Item = (usize, Event)> {
    stream::select_all(
        receivers.into_iter().enumerate().map(|(i, rx)| UnboundedReceiverStream::new(rx).map(move |e| (i, e)).boxed()),
    )
}

/// Token bytes as text, the way OpenAI shows partial UTF-8 in logprobs.
pub fn token_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
