//! `POST /v1/completions`: raw prompts (a string, several strings, or token ids), no template.

use axum::extract::State;
use axum::response::sse::Event as SseEvent;
use axum::response::{IntoResponse, Response};
use axum::Json;
use llama_cpp_2::token::LlamaToken;
use serde_json::{json, Value};

use super::constrain::{Format, Onset};
use super::error::ApiError;
use super::generate::{check_admittable, collect_all, compile_format, submit, token_text, Collected};
use super::request::{parse_json, typed, CompletionRequest, Prompt, SamplingFields};
use super::stream;
use super::{check_model, new_id, unix_now, AppState, Body};
use crate::engine::{Event, TokenLogprob};

pub async fn completions(State(state): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let body = parse_json(&body.0)?;
    let request: CompletionRequest = typed(&body)?;
    check_model(&state, &request.model)?;
    let validated =
        request.validate(&typed::<SamplingFields>(&body)?, state.engine.info.n_vocab, &state.request_limits)?;
    let format = compile_format(&state, &body).await?;
    // Tokenising a long prompt takes seconds: off the async workers.
    let prompt_state = state.clone();
    let prompts = tokio::task::spawn_blocking(move || prompt_tokens(&prompt_state, &request.prompt))
        .await
        .map_err(ApiError::internal)??;
    if validated.stream && prompts.len() > 1 {
        return Err(ApiError::invalid("prompt", "streaming takes a single prompt"));
    }
    // Each prompt of a list runs `n` times: all of them count against --max-n.
    check_admittable(&state, prompts.len() * validated.n as usize, "prompt")?;
    let mut receivers = Vec::new();
    for prompt in prompts {
        receivers.extend(submit(&state, prompt, &validated, format.as_ref(), Onset::Start, None, None).await?);
    }
    let id = new_id("cmpl");
    let created = unix_now();
    let model = state.engine.info.id.clone();
    let with_logprobs = validated.params.top_logprobs.is_some();

    if !validated.stream {
        let choices = collect_all(receivers).await?;
        let usage = usage_over_prompts(&choices, validated.n as usize);
        let choices: Vec<Value> =
            choices.iter().enumerate().map(|(i, c)| choice_json(i, c, with_logprobs, format.as_ref())).collect();
        return Ok(Json(json!({
            "id": id, "object": "text_completion", "created": created, "model": model,
            "choices": choices, "usage": usage,
        }))
        .into_response());
    }

    let n = receivers.len();
    let include_usage = validated.include_usage;
    let chunk = move |choice: Value, usage: Option<Value>| {
        let mut c = json!({"id": id, "object": "text_completion", "created": created, "model": model,
            "choices": if choice.is_null() { json!([]) } else { json!([choice]) }});
        if let Some(u) = usage {
            c["usage"] = u;
        }
        SseEvent::default().data(c.to_string())
    };
    let mut texts = vec![String::new(); n];
    let mut escapers: Vec<_> = (0..n).map(|_| format.as_ref().and_then(Format::escaper)).collect();
    let usage_chunk = chunk.clone();
    let on_event = move |i: usize, event: Event, out: &mut Vec<SseEvent>| {
        match event {
            Event::Token { text, logprob } if !text.is_empty() || logprob.is_some() => {
                let text = match &mut escapers[i] {
                    Some(escaper) => escaper.push(&text),
                    None => text,
                };
                texts[i].push_str(&text);
                let logprobs = logprob.map(|lp| legacy_logprobs(std::slice::from_ref(&lp)));
                out.push(chunk(json!({"index": i, "text": text, "logprobs": logprobs, "finish_reason": null}), None));
            }
            // Decoupled jobs are chat-only.
            Event::Token { .. } | Event::FormatStarts => {}
            Event::Done(summary) => {
                let mut choice =
                    json!({"index": i, "text": "", "logprobs": null, "finish_reason": summary.finish_reason});
                if let Some(format) = &format {
                    choice["format"] = format.report(&texts[i], &summary);
                }
                out.push(chunk(choice, None));
            }
            Event::Error(_) => unreachable!("the skeleton answers errors"),
        }
    };
    Ok(stream::sse(
        &state,
        receivers,
        Vec::new(),
        include_usage,
        move |usage| usage_chunk(Value::Null, Some(usage)),
        on_event,
    ))
}

/// The client's raw prompt, special tokens parsed: unlike chat, where client text stays text
/// (see `prompt.rs`), a completion prompt is the model's input verbatim, fill-in-the-middle
/// tokens such as `<|fim_prefix|>` included.
fn prompt_tokens(state: &AppState, prompt: &Prompt) -> Result<Vec<Vec<LlamaToken>>, ApiError> {
    let add_bos = state.engine.info.add_bos;
    let from_ids = |ids: &[u32]| -> Result<Vec<LlamaToken>, ApiError> {
        let n_vocab = state.engine.info.n_vocab;
        match ids.iter().find(|&&t| t >= n_vocab) {
            Some(bad) => Err(ApiError::invalid("prompt", format!("token id {bad} is out of range (0..{n_vocab})"))),
            None => Ok(ids.iter().map(|&t| LlamaToken(t as i32)).collect()),
        }
    };
    let prompts = match prompt {
        Prompt::Text(text) => vec![state.engine.tokenize(text, add_bos, true)],
        Prompt::Texts(texts) => texts.iter().map(|t| state.engine.tokenize(t, add_bos, true)).collect(),
        Prompt::Tokens(ids) => vec![from_ids(ids)?],
        Prompt::TokenLists(lists) => lists.iter().map(|ids| from_ids(ids)).collect::<Result<_, _>>()?,
    };
    if prompts.is_empty() || prompts.iter().any(Vec::is_empty) {
        return Err(ApiError::invalid("prompt", "`prompt` must not be empty"));
    }
    Ok(prompts)
}

fn choice_json(index: usize, c: &Collected, with_logprobs: bool, format: Option<&Format>) -> Value {
    let text = format.map_or_else(|| c.text.clone(), |f| f.delivered(&c.text));
    let mut choice = json!({
        "index": index,
        "text": text,
        "logprobs": with_logprobs.then(|| legacy_logprobs(&c.logprobs)),
        "finish_reason": c.summary.finish_reason,
    });
    if let Some(format) = format {
        choice["format"] = format.report(&text, &c.summary);
    }
    choice
}

/// The legacy completions logprobs shape: parallel arrays.
fn legacy_logprobs(tokens: &[TokenLogprob]) -> Value {
    let mut offset = 0;
    let mut text_offset = Vec::new();
    for lp in tokens {
        text_offset.push(offset);
        offset += token_text(&lp.token).len();
    }
    json!({
        "tokens": tokens.iter().map(|lp| token_text(&lp.token)).collect::<Vec<_>>(),
        "token_logprobs": tokens.iter().map(|lp| lp.logprob).collect::<Vec<_>>(),
        "top_logprobs": tokens.iter().map(|lp| {
            lp.top.iter().map(|(b, l)| (token_text(b), json!(l))).collect::<serde_json::Map<_, _>>()
        }).collect::<Vec<_>>(),
        "text_offset": text_offset,
    })
}

/// Each prompt counts once; its `n` choices add completion tokens.
fn usage_over_prompts(choices: &[Collected], n: usize) -> Value {
    let prompt: u32 = choices.iter().step_by(n).map(|c| c.summary.prompt_tokens).sum();
    let completion: u32 = choices.iter().map(|c| c.summary.completion_tokens).sum();
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}
