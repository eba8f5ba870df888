//! `POST /v1/chat/completions`: render the model's chat template, generate, answer as one JSON
//! object or as server-sent events.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::stream::{self, StreamExt};
use serde_json::{json, Value};

use super::error::ApiError;
use super::constrain::Format;
use super::generate::{collect_all, compile_format, merged, submit, token_text, Collected};
use super::request::{parse_json, typed, ChatRequest, SamplingFields};
use super::{check_model, new_id, unix_now, AppState, Body};
use crate::engine::{Event, Summary, TokenLogprob};

pub async fn chat_completions(State(state): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let body = parse_json(&body.0)?;
    let request: ChatRequest = typed(&body)?;
    check_model(&state, &request.model)?;
    let validated = request.validate(&typed::<SamplingFields>(&body)?, state.engine.info.n_vocab)?;
    let format = compile_format(&state, &body).await?;
    let template = state
        .chat_template
        .as_ref()
        .ok_or_else(|| ApiError::invalid("messages", "this model has no chat template; use /v1/completions"))?;
    let prompt_text = template
        .render(&request.messages, request.tools.as_deref())
        .map_err(|e| ApiError::invalid("messages", format!("the chat template rejected the messages: {e}")))?;
    let prompt = state.engine.tokenize(&prompt_text, false, true);
    let receivers = submit(&state, prompt, &validated, format.as_ref())?;
    let id = new_id("chatcmpl");
    let created = unix_now();
    let model = state.engine.info.id.clone();
    let with_logprobs = validated.params.top_logprobs.is_some();

    if !validated.stream {
        let choices = collect_all(receivers).await?;
        let usage = usage(choices.iter().map(|c| &c.summary));
        let choices: Vec<Value> = choices
            .iter()
            .enumerate()
            .map(|(i, c)| choice_json(i, c, with_logprobs, format.as_ref()))
            .collect();
        return Ok(Json(json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": choices, "usage": usage,
        }))
        .into_response());
    }

    let n = receivers.len();
    let include_usage = validated.include_usage;
    let chunk = move |choices: Value, usage: Option<Value>| {
        let mut c = json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": choices,
        });
        if let Some(u) = usage {
            c["usage"] = u;
        }
        SseEvent::default().data(c.to_string())
    };
    let opening: Vec<SseEvent> = (0..n)
        .map(|i| chunk(json!([{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}]), None))
        .collect();
    let mut summaries: Vec<Option<Summary>> = vec![None; n];
    let mut texts = vec![String::new(); n];
    let events = merged(receivers).filter_map(move |(i, event)| {
        let out = match event {
            Event::Token { text, logprob } => {
                if text.is_empty() && logprob.is_none() {
                    None
                } else {
                    texts[i].push_str(&text);
                    let logprobs = logprob.map(|lp| json!({"content": [logprob_json(&lp)]}));
                    Some(chunk(json!([{"index": i, "delta": {"content": text}, "logprobs": logprobs, "finish_reason": null}]), None))
                }
            }
            Event::Done(summary) => {
                let mut choice = json!({"index": i, "delta": {}, "logprobs": null, "finish_reason": summary.finish_reason});
                if let Some(format) = &format {
                    choice["format"] = format.report(&texts[i], summary.forced_tokens);
                }
                let finish = chunk(json!([choice]), None);
                summaries[i] = Some(summary);
                let mut events = vec![finish];
                if include_usage && summaries.iter().all(Option::is_some) {
                    events.push(chunk(json!([]), Some(usage(summaries.iter().flatten()))));
                }
                return futures::future::ready(Some(stream::iter(events)));
            }
            Event::Error(message) => {
                tracing::error!("generation failed mid-stream: {message}");
                Some(SseEvent::default().data(ApiError::internal(message).body().to_string()))
            }
        };
        futures::future::ready(out.map(|e| stream::iter(vec![e])))
    });
    let stream = stream::iter(opening)
        .chain(events.flatten())
        .chain(stream::once(async { SseEvent::default().data("[DONE]") }))
        .map(Ok::<_, Infallible>);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

fn choice_json(index: usize, c: &Collected, with_logprobs: bool, format: Option<&Format>) -> Value {
    let logprobs = with_logprobs.then(|| json!({"content": c.logprobs.iter().map(logprob_json).collect::<Vec<_>>()}));
    let mut choice = json!({
        "index": index,
        "message": {"role": "assistant", "content": c.text},
        "logprobs": logprobs,
        "finish_reason": c.summary.finish_reason,
    });
    if let Some(format) = format {
        choice["format"] = format.report(&c.text, c.summary.forced_tokens);
    }
    choice
}

fn logprob_json(lp: &TokenLogprob) -> Value {
    json!({
        "token": token_text(&lp.token),
        "logprob": lp.logprob,
        "bytes": lp.token,
        "top_logprobs": lp.top.iter().map(|(bytes, logprob)| json!({
            "token": token_text(bytes), "logprob": logprob, "bytes": bytes,
        })).collect::<Vec<_>>(),
    })
}

/// OpenAI counts the prompt once, however many choices.
pub fn usage<'a>(summaries: impl Iterator<Item = &'a Summary>) -> Value {
    let (mut prompt, mut completion) = (0, 0);
    for s in summaries {
        prompt = s.prompt_tokens;
        completion += s.completion_tokens;
    }
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}
