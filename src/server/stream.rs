//! The streaming skeleton both generation endpoints share: the events of all choices merged as
//! they come, each turned into chunks by the endpoint, a failed generation as an error object,
//! usage once every choice is done (when asked), `[DONE]` last, and the stream cut at the
//! server's shutdown deadline.

use std::convert::Infallible;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc::UnboundedReceiver;

use super::error::ApiError;
use super::generate::merged;
use super::AppState;
use crate::engine::{Event, Summary};

/// Server-sent events for `receivers` (one per choice). `opening` goes first; `on_event` writes
/// the chunks of one choice's token, format-start or done event (`Event::Error` never reaches
/// it); `usage_chunk` wraps the usage object once all choices are done, if `include_usage`.
pub fn sse(
    state: &AppState,
    receivers: Vec<UnboundedReceiver<Event>>,
    opening: Vec<SseEvent>,
    include_usage: bool,
    usage_chunk: impl Fn(Value) -> SseEvent + Send + 'static,
    mut on_event: impl FnMut(usize, Event, &mut Vec<SseEvent>) + Send + 'static,
) -> Response {
    let mut summaries: Vec<Option<Summary>> = vec![None; receivers.len()];
    let events = merged(receivers).map(move |(i, event)| {
        let mut out = Vec::new();
        match event {
            Event::Error(message) => {
                tracing::error!("generation failed mid-stream: {message}");
                out.push(SseEvent::default().data(ApiError::internal(message).body().to_string()));
            }
            Event::Done(summary) => {
                summaries[i] = Some(summary.clone());
                on_event(i, Event::Done(summary), &mut out);
                if include_usage && summaries.iter().all(Option::is_some) {
                    out.push(usage_chunk(usage(summaries.iter().flatten())));
                }
            }
            event => on_event(i, event, &mut out),
        }
        stream::iter(out)
    });
    let stream =
        stream::iter(opening).chain(events.flatten()).chain(stream::once(async { SseEvent::default().data("[DONE]") }));
    let stream = state.deadline.cut(stream).map(Ok::<_, Infallible>);
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

/// The `usage` object of choices that share one prompt: OpenAI counts the prompt once, however
/// many choices.
pub fn usage<'a>(summaries: impl Iterator<Item = &'a Summary>) -> Value {
    let (mut prompt, mut completion) = (0, 0);
    for s in summaries {
        prompt = s.prompt_tokens;
        completion += s.completion_tokens;
    }
    serde_json::json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}
