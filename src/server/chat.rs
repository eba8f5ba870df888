//! `POST /v1/chat/completions`: render the model's chat template, generate, answer as one JSON
//! object or as server-sent events. Tool calls are parsed out of the text (see [`tools`]).

use axum::extract::State;
use axum::response::sse::Event as SseEvent;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::constrain::{Format, FormatFields, FormatMode, Onset};
use super::decoupled::{self, Plan, Splice};
use super::error::ApiError;
use super::generate::{collect_all, compile_fields, submit, token_text, Collected};
use super::reasoning::{ReasoningStream, Think};
use super::request::{parse_json, typed, ChatRequest, SamplingFields};
use super::stream::{self, usage};
use super::tools::{self, ToolChoice, ToolStream, Tools};
use super::xml_calls::RawStrings;
use super::{check_model, new_id, unix_now, AppState, Body};
use crate::chat_format::{CallSyntax, PromptReasoning, Reasoning};
use crate::chat_template::ChatTemplate;
use crate::engine::{Event, FinishReason, Summary, TokenLogprob};
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc::UnboundedReceiver as Receiver;

pub async fn chat_completions(State(state): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let body = parse_json(&body.0)?;
    let request: ChatRequest = typed(&body)?;
    check_model(&state, &request.model)?;
    let mut validated =
        request.validate(&typed::<SamplingFields>(&body)?, state.engine.info.n_vocab, &state.request_limits)?;
    let fields: FormatFields = typed(&body)?;
    let tools = tools::read(&body, &state.chat_format, state.formats.limits(), fields.names_a_format())?;
    let plan = Plan::read(&fields)?;
    if plan.is_some() && tools.is_some() {
        return Err(ApiError::invalid("format_mode", "`format_mode: \"decoupled\"` does not combine with `tools`"));
    }
    // The tool-call opener, when this vocabulary spells it as one token.
    let call_syntax = state.chat_format.call_syntax();
    let opener = match call_syntax.and_then(|s| s.marker()).map(|m| state.engine.tokenize(m, false, true)).as_deref() {
        Some([t]) => Some(t.0 as u32),
        _ => None,
    };
    if let (Some(t), Some(ToolChoice::None)) = (opener, tools.as_ref().map(|t| &t.choice)) {
        validated.params.logit_bias.push((t, f32::NEG_INFINITY));
    }
    let ChatFormats { format, delivered, calls: tool_format, onset, calls_or_answer } =
        ChatFormats::compile(&state, fields, tools.as_ref(), plan.as_ref(), opener).await?;
    let with_tools = tools.as_ref().is_some_and(|t| t.choice != ToolChoice::None);
    // A whole output that is a JSON call is a call, except where a JSON answer may stand instead.
    let json_calls = !calls_or_answer || call_syntax.is_none();
    let template = state
        .chat_template
        .clone()
        .ok_or_else(|| ApiError::invalid("messages", "this model has no chat template; use /v1/completions"))?;
    let raw_strings = tools.as_ref().map(|t| t.raw_strings.clone()).unwrap_or_default();
    let shown_tools = tools.map(|t| t.rendered);
    let follow_up = plan.as_ref().map(|p| p.follow_up.clone());
    let prompt_state = state.clone();
    let constraint = format.as_ref().or(tool_format.as_ref());
    let kwargs = template_kwargs(&request);
    let reasoning = state.chat_format.reasoning.filter(|_| plan.is_none());
    let constrained = constraint.is_some();
    let (prompt, bridge, reasoning) = tokio::task::spawn_blocking(move || {
        chat_prompt(
            &prompt_state,
            &template,
            &request.messages,
            shown_tools,
            follow_up.as_deref(),
            &kwargs,
            reasoning,
            constrained,
        )
    })
    .await
    .map_err(ApiError::internal)??;
    // A format after reasoning starts once the section closes (the prompt opened it).
    let think = reasoning.filter(|_| constrained).map(|(r, _)| Think {
        marker: r.close,
        close: state.engine.tokenize(r.close, false, true).iter().map(|t| t.0 as u32).collect(),
    });
    let decoupled = plan.as_ref().zip(bridge.as_deref());
    let receivers = submit(&state, prompt, &validated, constraint, onset, decoupled, think.as_ref()).await?;
    let shown = Shown {
        format,
        calls: tool_format,
        with_tools,
        call_syntax,
        json_calls,
        raw_strings,
        reasoning,
        plan,
        delivered,
    };
    let id = new_id("chatcmpl");
    let created = unix_now();
    let model = state.engine.info.id.clone();
    let with_logprobs = validated.params.top_logprobs.is_some();
    if validated.stream {
        return Ok(streamed(&state, receivers, shown, validated.include_usage, (id, created, model)));
    }
    let choices = collect_all(receivers).await?;
    let usage = usage(choices.iter().map(|c| &c.summary));
    let choices: Vec<Value> =
        choices.iter().enumerate().map(|(i, c)| choice_json(i, c, with_logprobs, &shown)).collect();
    Ok(Json(json!({
        "id": id, "object": "chat.completion", "created": created, "model": model,
        "choices": choices, "usage": usage,
    }))
    .into_response())
}

/// What constrains a chat completion: the response format (decoupled: also the format its
/// delivered text is checked against), and the tool calls' format with when it starts.
struct ChatFormats {
    format: Option<Format>,
    delivered: Option<Format>,
    calls: Option<Format>,
    onset: Onset,
    /// Under `tool_choice: "auto"` beside a response format: the output is a call or the answer.
    calls_or_answer: bool,
}

impl ChatFormats {
    /// Compiles them (off the async workers where compiling can take a while).
    async fn compile(
        state: &AppState,
        fields: FormatFields,
        tools: Option<&Tools>,
        plan: Option<&Plan>,
        opener: Option<u32>,
    ) -> Result<ChatFormats, ApiError> {
        // With tools, `format_mode` says how calls are decoded: "mask" (the default) or "free"
        // (unconstrained, only parsed: the baseline of an A/B). A response format beside tools is
        // the final answer: under "auto" the output is either calls or that answer, under
        // "required" or a named function it waits for a later turn, under "none" it holds alone.
        let tool_calls_only = tools.is_some() && !fields.names_a_format();
        let choice = tools.as_ref().map(|t| t.choice.clone());
        let fields_name_a_format = fields.names_a_format();
        let calls_or_answer = tools.is_some() && fields_name_a_format && choice == Some(ToolChoice::Auto);
        let answer_later = tools.is_some()
            && fields.names_a_format()
            && matches!(choice, Some(ToolChoice::Required | ToolChoice::Named(_)));
        let free_calls = match fields.format_mode {
            _ if !(tool_calls_only || calls_or_answer || answer_later) => false,
            None | Some(FormatMode::Mask) => false,
            Some(FormatMode::Free) => true,
            Some(_) => {
                return Err(ApiError::invalid(
                    "format_mode",
                    "with `tools`, `format_mode` must be \"mask\" or \"free\"",
                ))
            }
        };
        if tool_calls_only && fields.format_options.is_some() {
            return Err(ApiError::invalid(
                "format_options",
                "`format_options` apply to response formats, not to tool calls",
            ));
        }
        let (format, delivered) = match plan {
            // Decoupled: the mask holds the answer's format; the delivered text (the free text
            // spliced in) is checked against the request's own.
            Some(plan) => {
                let delivered = match plan.delivered.clone() {
                    Some(fields) => compile_fields(state, fields).await?,
                    None => None,
                };
                (compile_fields(state, plan.answer.clone()).await?, delivered)
            }
            None if tool_calls_only || answer_later => (None, None),
            // Compiled with the calls below, or not at all when decoding is free.
            None if calls_or_answer => (None, None),
            None => (compile_fields(state, fields.clone()).await?, None),
        };
        let (calls, onset) = match tools.and_then(|t| t.call_rules.clone().map(|r| (r, &t.choice))) {
            // Free calls are only parsed: nothing to compile.
            Some(_) if free_calls => (None, Onset::Start),
            Some((rules, _)) if calls_or_answer => {
                let formats = state.formats.clone();
                let compiled = tokio::task::spawn_blocking(move || {
                    let rules = tools::calls_or_answer(rules, |first| formats.answer_rules(&fields, first))?;
                    formats.compile_internal("response_format", rules)
                })
                .await
                .map_err(ApiError::internal)??;
                // Constrained from the first token: whatever the model writes is a call or the answer.
                (Some(compiled), Onset::Start)
            }
            Some((rules, choice)) => {
                let formats = state.formats.clone();
                let compiled = tokio::task::spawn_blocking(move || formats.compile_internal("tools", rules))
                    .await
                    .map_err(ApiError::internal)??;
                // Under "auto" the constraint waits for the model to start a call.
                let onset = if *choice == ToolChoice::Auto { Onset::WhenCalled(opener) } else { Onset::Start };
                (Some(compiled), onset)
            }
            None => (None, Onset::Start),
        };
        Ok(ChatFormats { format, delivered, calls, onset, calls_or_answer })
    }
}

/// The choices as server-sent events: reasoning, content and tool calls as deltas, delivered
/// text escaped and spliced as it streams, each choice's `format` report in its last chunk.
fn streamed(
    state: &AppState,
    receivers: Vec<Receiver<Event>>,
    shown: Shown,
    include_usage: bool,
    (id, created, model): (String, u64, String),
) -> Response {
    let n = receivers.len();
    let with_tools = shown.with_tools;
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
    let delta = |i: usize, delta: Value, logprobs: Option<Value>| json!([{"index": i, "delta": delta, "logprobs": logprobs, "finish_reason": null}]);
    let opening: Vec<SseEvent> =
        (0..n).map(|i| chunk(delta(i, json!({"role": "assistant", "content": ""}), None), None)).collect();
    // The delivered content of each choice so far (what its format is checked against).
    let mut texts = vec![String::new(); n];
    let mut tool_streams: Vec<ToolStream> =
        (0..n).map(|_| ToolStream::new(shown.call_syntax, shown.json_calls, shown.raw_strings.clone())).collect();
    let mut reasoning_streams: Vec<Option<ReasoningStream>> =
        (0..n).map(|_| shown.reasoning.map(|(r, opened)| ReasoningStream::new(r, opened))).collect();
    // Decoupled choices: still writing freely, and their free text's field, if it has one.
    let mut writing_freely = vec![shown.plan.is_some(); n];
    let mut splices: Vec<Option<Splice>> =
        (0..n).map(|_| shown.plan.as_ref().and_then(|p| p.field.clone()).map(Splice::new)).collect();
    // Raw strings (`format_options.strings`) are escaped as they stream.
    let mut escapers: Vec<_> = (0..n).map(|_| shown.format.as_ref().and_then(Format::escaper)).collect();
    let usage_chunk = chunk.clone();
    let on_event = move |i: usize, event: Event, out: &mut Vec<SseEvent>| match event {
        Event::Token { text, logprob } => {
            let mut logprobs = logprob.map(|lp| json!({"content": [logprob_json(&lp)]}));
            let text = match &mut reasoning_streams[i] {
                Some(split) => {
                    let (reasoning, content) = split.push(&text);
                    if !reasoning.is_empty() || logprobs.is_some() {
                        out.push(chunk(delta(i, json!({"reasoning_content": reasoning}), logprobs.take()), None));
                    }
                    content
                }
                None => text,
            };
            let text = match &mut escapers[i] {
                Some(escaper) if !writing_freely[i] => escaper.push(&text),
                _ => text,
            };
            let (key, piece) = match &mut splices[i] {
                Some(splice) if writing_freely[i] => ("content", splice.free(&text)),
                Some(splice) => ("content", splice.answer(&text)),
                None if writing_freely[i] => ("reasoning_content", text),
                None if with_tools => ("content", tool_streams[i].push(&text)),
                None => ("content", text),
            };
            if key == "content" {
                texts[i].push_str(&piece);
            }
            if !piece.is_empty() || logprobs.is_some() {
                out.push(chunk(delta(i, json!({key: piece}), logprobs), None));
            }
        }
        Event::FormatStarts => {
            writing_freely[i] = false;
            if let Some(splice) = &mut splices[i] {
                let piece = splice.free_ends();
                texts[i].push_str(&piece);
                out.push(chunk(delta(i, json!({"content": piece}), None), None));
            }
        }
        Event::Done(summary) => {
            if let Some((reasoning, content)) = reasoning_streams[i].as_mut().map(ReasoningStream::finish) {
                if !reasoning.is_empty() {
                    out.push(chunk(delta(i, json!({"reasoning_content": reasoning}), None), None));
                }
                if !content.is_empty() {
                    let piece = if with_tools { tool_streams[i].push(&content) } else { content };
                    texts[i].push_str(&piece);
                    out.push(chunk(delta(i, json!({"content": piece}), None), None));
                }
            }
            let mut finish_reason = json!(summary.finish_reason);
            if shown.with_tools {
                let (rest, calls) = std::mem::take(&mut tool_streams[i]).finish();
                if !rest.is_empty() {
                    out.push(chunk(delta(i, json!({"content": rest}), None), None));
                }
                if !calls.is_empty() {
                    let indexed: Vec<Value> = calls
                        .into_iter()
                        .enumerate()
                        .map(|(k, mut c)| {
                            c["index"] = json!(k);
                            c
                        })
                        .collect();
                    out.push(chunk(delta(i, json!({"tool_calls": indexed}), None), None));
                    finish_reason = json!(tool_finish_reason(&summary));
                }
            }
            let mut choice = json!({"index": i, "delta": {}, "logprobs": null, "finish_reason": finish_reason});
            if let Some(report) = shown.report(&texts[i], &summary) {
                choice["format"] = report;
            }
            out.push(chunk(json!([choice]), None));
        }
        Event::Error(_) => unreachable!("the skeleton answers errors"),
    };
    stream::sse(state, receivers, opening, include_usage, move |usage| usage_chunk(json!([]), Some(usage)), on_event)
}

/// The prompt's tokens, and for a decoupled request (`follow_up`) the bridge's. Client strings
/// are marked before rendering, so only the template's own text makes control tokens
/// ([`prompt`]). Blocking work (a multi-megabyte message takes seconds): run it off the async
/// workers.
/// Also returns where the prompt leaves the family's reasoning section (`reasoning`): `None`
/// when the template closed it (thinking off), else the markers and whether the output starts
/// inside the section. A `constrained` output gets the section opened, so the format knows
/// where the reasoning is.
#[allow(clippy::too_many_arguments)]
fn chat_prompt(
    state: &AppState,
    template: &ChatTemplate,
    messages: &[Value],
    mut tools: Option<Vec<Value>>,
    follow_up: Option<&str>,
    kwargs: &serde_json::Map<String, Value>,
    reasoning: Option<Reasoning>,
    constrained: bool,
) -> Result<(Vec<LlamaToken>, Option<Vec<LlamaToken>>, Option<(Reasoning, bool)>), ApiError> {
    let control = &state.control_tokens;
    let messages: Vec<Value> = messages.iter().map(|m| control.mark_message(m)).collect();
    let rejected =
        |e: minijinja::Error| ApiError::invalid("messages", format!("the chat template rejected the messages: {e}"));
    let tokens = |text: &str| control.tokenize(text, |plain| state.engine.tokenize(plain, false, false));
    let Some(follow_up) = follow_up else {
        tools.iter_mut().flatten().for_each(|t| control.mark(t));
        let mut prompt = template.render_with(&messages, tools.as_deref(), kwargs).map_err(rejected)?;
        let reasoning = reasoning.and_then(|r| match r.prompt_state(&prompt) {
            PromptReasoning::Closed => None,
            PromptReasoning::Opened => Some((r, true)),
            PromptReasoning::NotStarted if constrained => {
                prompt.push_str(r.open);
                prompt.push('\n');
                Some((r, true))
            }
            PromptReasoning::NotStarted => Some((r, false)),
        });
        return Ok((tokens(&prompt), None, reasoning));
    };
    let (prompt, bridge) =
        template.render_continued(&messages, &control.mark_str(follow_up)).map_err(rejected)?.ok_or_else(|| {
            ApiError::invalid(
                "format_mode",
                "this model's chat template does not write an answer verbatim, so it cannot be decoupled",
            )
        })?;
    Ok((tokens(&prompt), Some(tokens(&bridge)), None))
}

/// The template variables a request sets: `chat_template_kwargs` as given, and
/// `reasoning_effort` (as GPT-OSS's template reads it; `"none"` also turns thinking off where a
/// template has `enable_thinking`).
fn template_kwargs(request: &ChatRequest) -> serde_json::Map<String, Value> {
    let mut kwargs = request.chat_template_kwargs.clone().unwrap_or_default();
    if let Some(effort) = &request.reasoning_effort {
        kwargs.entry("reasoning_effort").or_insert_with(|| json!(effort));
        if effort == "none" {
            kwargs.entry("enable_thinking").or_insert(json!(false));
        }
    }
    kwargs
}

/// "tool_calls" when the model ended its calls itself; "length" when the budget cut them, even
/// where the calls so far are complete.
fn tool_finish_reason(summary: &Summary) -> &'static str {
    if summary.finish_reason == FinishReason::Stop && !summary.budget_spent {
        "tool_calls"
    } else {
        "length"
    }
}

/// What a response shows besides the text: the formats that ran, for their reports, and how
/// the text is shaped (tool calls parsed out; a decoupled choice's free text placed).
struct Shown {
    format: Option<Format>,
    calls: Option<Format>,
    with_tools: bool,
    /// The family's call syntax, where it has its own.
    call_syntax: Option<CallSyntax>,
    /// Whole outputs that are JSON calls are calls ([`tools::parse_calls`]).
    json_calls: bool,
    /// Parameters an XML-parameter call writes as raw strings.
    raw_strings: RawStrings,
    /// The family's reasoning markers, and whether the prompt opened the section.
    reasoning: Option<(Reasoning, bool)>,
    plan: Option<Plan>,
    /// A decoupled request's own format, when its answer's differs (the free text spliced in).
    delivered: Option<Format>,
}

impl Shown {
    /// The `format` object of a choice whose delivered content is `content`.
    fn report(&self, content: &str, summary: &Summary) -> Option<Value> {
        if let Some(plan) = &self.plan {
            let mut report = self.delivered.as_ref().or(self.format.as_ref())?.report(content, summary);
            decoupled::report(&mut report, summary.free_tokens, plan.field.as_deref());
            return Some(report);
        }
        match (&self.format, &self.calls) {
            (Some(format), _) => Some(format.report(content, summary)),
            (None, Some(calls)) => Some(calls.cost_report(summary)),
            (None, None) => None,
        }
    }
}

fn choice_json(index: usize, c: &Collected, with_logprobs: bool, shown: &Shown) -> Value {
    let logprobs = with_logprobs.then(|| json!({"content": c.logprobs.iter().map(logprob_json).collect::<Vec<_>>()}));
    let (reasoning, answer) = match shown.reasoning {
        Some((r, opened)) => r.split(&c.text, opened),
        None => (None, c.text.as_str()),
    };
    let text = shown.format.as_ref().map_or_else(|| answer.to_string(), |f| f.delivered(answer));
    let mut message = json!({"role": "assistant", "content": text});
    if let (Some(plan), Some(free_text)) = (&shown.plan, &c.free_text) {
        match &plan.field {
            Some(field) => message["content"] = json!(Splice::whole(field, free_text, &text)),
            None => message["reasoning_content"] = json!(free_text),
        }
    }
    let mut choice = json!({
        "index": index,
        "message": message,
        "logprobs": logprobs,
        "finish_reason": c.summary.finish_reason,
    });
    if shown.with_tools {
        let (content, calls) =
            tools::parse_calls(answer, shown.call_syntax.as_ref(), shown.json_calls, &shown.raw_strings);
        if !calls.is_empty() {
            choice["message"] = json!({"role": "assistant", "content": content, "tool_calls": calls});
            choice["finish_reason"] = json!(tool_finish_reason(&c.summary));
        }
    }
    if let Some(reasoning) = reasoning {
        choice["message"]["reasoning_content"] = json!(reasoning);
    }
    let content = choice["message"]["content"].as_str().unwrap_or_default().to_string();
    if let Some(report) = shown.report(&content, &c.summary) {
        choice["format"] = report;
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
