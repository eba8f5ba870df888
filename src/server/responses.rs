//! `POST /v1/responses`: OpenAI's Responses API, stateless. The request is translated into a
//! chat-completions body and served by the same handler ([`chat::chat_completions`]), so both
//! endpoints share one request model and one generation path; the answer is translated back
//! into a `response` object (or its event stream).
//!
//! Stateless: `previous_response_id` is a 400, `store` is accepted and ignored, unknown
//! `include` values are ignored. With `stream: true` the chat handler streams and each of its
//! chunks becomes the Responses events it means ([`StreamedResponse`]): text deltas as the
//! model writes them, a function call once it is complete.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::{stream, StreamExt};
use serde_json::{json, Map, Value};

use super::chat;
use super::error::ApiError;
use super::request::parse_json;
use super::{unix_now, AppState, Body};

/// Fields copied unchanged into the chat body.
const PASSED: &[&str] = &[
    "model",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "stop",
    "parallel_tool_calls",
    "format_mode",
    "format_options",
    "guided_json",
    "guided_regex",
    "guided_choice",
    "guided_grammar",
];

pub async fn responses(State(state): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let body = parse_json(&body.0)?;
    let mut chat_body = translate(&body)?;
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if stream {
        chat_body["stream"] = json!(true);
        chat_body["stream_options"] = json!({"include_usage": true});
    }
    let bytes = serde_json::to_vec(&chat_body).map_err(ApiError::internal)?;
    let answer = chat::chat_completions(State(state), Body(bytes.into())).await?;
    if !stream {
        let raw = axum::body::to_bytes(answer.into_body(), usize::MAX).await.map_err(ApiError::internal)?;
        let completion: Value = serde_json::from_slice(&raw).map_err(ApiError::internal)?;
        return Ok(Json(response_json(&body, &completion)).into_response());
    }
    let mut response = StreamedResponse::new(body);
    let opening = response.opening();
    let mut lines = SseData::default();
    // `None` marks the end of the chat stream: a stream cut without `[DONE]` still ends.
    let frames = answer.into_body().into_data_stream().map(Some).chain(stream::once(async { None }));
    let events = frames.flat_map(move |frame| {
        let mut out = Vec::new();
        match frame {
            Some(Ok(bytes)) => {
                for data in lines.push(&bytes) {
                    out.extend(response.on_data(&data));
                }
            }
            Some(Err(e)) => out.extend(response.on_data(&ApiError::internal(e).body().to_string())),
            None => out.extend(response.on_data("[DONE]")),
        }
        stream::iter(out)
    });
    let events = stream::iter(opening).chain(events).map(|event| {
        let kind = event["type"].as_str().unwrap_or("").to_string();
        Ok::<_, Infallible>(SseEvent::default().event(kind).data(event.to_string()))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}

/// The chat-completions body a Responses request means.
fn translate(body: &Value) -> Result<Value, ApiError> {
    if body.get("previous_response_id").is_some_and(|v| !v.is_null()) {
        return Err(ApiError::invalid(
            "previous_response_id",
            "this server is stateless: it stores no responses, so `previous_response_id` is not supported; send the whole conversation in `input`",
        ));
    }
    if body.get("conversation").is_some_and(|v| !v.is_null()) {
        return Err(ApiError::invalid("conversation", "this server is stateless: `conversation` is not supported"));
    }
    let mut chat = Map::new();
    for key in PASSED {
        if let Some(v) = body.get(*key).filter(|v| !v.is_null()) {
            chat.insert(key.to_string(), v.clone());
        }
    }
    if let Some(v) = body.get("max_output_tokens").filter(|v| !v.is_null()) {
        chat.insert("max_tokens".into(), v.clone());
    }
    if let Some(effort) = body.pointer("/reasoning/effort").filter(|v| !v.is_null()) {
        chat.insert("reasoning_effort".into(), effort.clone());
    }
    let mut messages = Vec::new();
    match body.get("instructions") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => messages.push(json!({"role": "system", "content": s})),
        Some(_) => return Err(ApiError::invalid("instructions", "`instructions` must be a string")),
    }
    messages.extend(input_messages(body.get("input"))?);
    chat.insert("messages".into(), json!(messages));
    if let Some(format) = body.pointer("/text/format").filter(|v| !v.is_null()) {
        chat.insert("response_format".into(), response_format(format)?);
    }
    if let Some(tools) = body.get("tools").filter(|v| !v.is_null()) {
        let Some(list) = tools.as_array() else {
            return Err(ApiError::invalid("tools", "`tools` must be an array"));
        };
        let mut out = Vec::new();
        for (i, tool) in list.iter().enumerate() {
            let kind = tool.get("type").and_then(Value::as_str).unwrap_or("");
            if kind != "function" {
                return Err(ApiError::invalid(
                    format!("tools[{i}].type"),
                    format!("`tools[{i}].type` is {kind:?}: only \"function\" tools are served"),
                ));
            }
            let mut function = Map::new();
            for key in ["name", "description", "parameters", "strict"] {
                if let Some(v) = tool.get(key).filter(|v| !v.is_null()) {
                    function.insert(key.into(), v.clone());
                }
            }
            out.push(json!({"type": "function", "function": function}));
        }
        if !out.is_empty() {
            chat.insert("tools".into(), json!(out));
        }
    }
    if let Some(choice) = body.get("tool_choice").filter(|v| !v.is_null()) {
        let choice = match choice {
            Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") && o.contains_key("name") => {
                json!({"type": "function", "function": {"name": o["name"]}})
            }
            Value::String(_) => choice.clone(),
            _ => {
                return Err(ApiError::invalid(
                    "tool_choice",
                    "`tool_choice` must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"name\": …}",
                ))
            }
        };
        if chat.contains_key("tools") {
            chat.insert("tool_choice".into(), choice);
        }
    }
    Ok(Value::Object(chat))
}

/// `input` (a string, or a list of items) as chat messages.
fn input_messages(input: Option<&Value>) -> Result<Vec<Value>, ApiError> {
    let items = match input {
        None | Some(Value::Null) => return Err(ApiError::invalid("input", "missing field `input`")),
        Some(Value::String(s)) => return Ok(vec![json!({"role": "user", "content": s})]),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(ApiError::invalid("input", "`input` must be a string or an array of items")),
    };
    let mut messages: Vec<Value> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let field = |name: &str| format!("input[{i}].{name}");
        let kind = item.get("type").and_then(Value::as_str).unwrap_or("message");
        match kind {
            "message" => {
                let role = item
                    .get("role")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ApiError::invalid(field("role"), format!("`{}` is required", field("role"))))?;
                let role = match role {
                    "user" | "assistant" | "system" => role,
                    "developer" => "system",
                    _ => {
                        return Err(ApiError::invalid(
                            field("role"),
                            format!("`{}` must be user, assistant, system or developer", field("role")),
                        ))
                    }
                };
                let content = match item.get("content") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(parts)) => {
                        let mut text = String::new();
                        for (k, part) in parts.iter().enumerate() {
                            match part.get("type").and_then(Value::as_str) {
                                Some("input_text" | "output_text" | "text") => {
                                    text.push_str(part.get("text").and_then(Value::as_str).unwrap_or(""))
                                }
                                other => {
                                    return Err(ApiError::invalid(
                                        format!("input[{i}].content[{k}].type"),
                                        format!("content part type {other:?} is not supported: only text parts"),
                                    ))
                                }
                            }
                        }
                        text
                    }
                    _ => {
                        return Err(ApiError::invalid(
                            field("content"),
                            format!("`{}` must be a string or an array of text parts", field("content")),
                        ))
                    }
                };
                messages.push(json!({"role": role, "content": content}));
            }
            "function_call" => {
                let call = json!({
                    "id": item.get("call_id").cloned().unwrap_or(Value::Null),
                    "type": "function",
                    "function": {"name": item.get("name").cloned().unwrap_or(Value::Null), "arguments": item.get("arguments").cloned().unwrap_or(json!("{}"))},
                });
                // Consecutive calls belong to one assistant turn.
                match messages.last_mut() {
                    Some(last) if last["role"] == "assistant" && last.get("tool_calls").is_some() => {
                        last["tool_calls"].as_array_mut().expect("an array").push(call)
                    }
                    _ => messages.push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
                }
            }
            "function_call_output" => {
                let output = match item.get("output") {
                    Some(Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                    None => {
                        return Err(ApiError::invalid(field("output"), format!("`{}` is required", field("output"))))
                    }
                };
                messages.push(json!({"role": "tool", "tool_call_id": item.get("call_id").cloned().unwrap_or(Value::Null), "content": output}));
            }
            "reasoning" => {}
            other => {
                return Err(ApiError::invalid(field("type"), format!("input item type {other:?} is not supported")))
            }
        }
    }
    Ok(messages)
}

/// `text.format` as a chat `response_format`.
fn response_format(format: &Value) -> Result<Value, ApiError> {
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(json!({"type": "text"})),
        Some("json_object") => Ok(json!({"type": "json_object"})),
        Some("json_schema") => {
            let mut schema = Map::new();
            for key in ["name", "schema", "strict", "description"] {
                if let Some(v) = format.get(key).filter(|v| !v.is_null()) {
                    schema.insert(key.into(), v.clone());
                }
            }
            Ok(json!({"type": "json_schema", "json_schema": schema}))
        }
        _ => Err(ApiError::invalid(
            "text.format.type",
            "`text.format.type` must be \"text\", \"json_object\" or \"json_schema\"",
        )),
    }
}

/// The `response` object for a finished chat completion.
fn response_json(request: &Value, completion: &Value) -> Value {
    let choice = &completion["choices"][0];
    let message = &choice["message"];
    let mut output = Vec::new();
    if let Some(reasoning) = message.get("reasoning_content").and_then(Value::as_str) {
        output.push(reasoning_item(&new_id("rs"), reasoning, "completed"));
    }
    let text = message["content"].as_str().unwrap_or("");
    if !text.is_empty() || message.get("tool_calls").is_none() {
        output.push(message_item(&new_id("msg"), text, "completed"));
    }
    for call in message["tool_calls"].as_array().into_iter().flatten() {
        output.push(call_item(&new_id("fc"), call, "completed"));
    }
    let ended = Ended {
        model: completion["model"].clone(),
        cut: choice["finish_reason"] == "length",
        usage: completion["usage"].clone(),
        format: choice.get("format").cloned(),
    };
    response_object(request, &new_id("resp"), unix_now(), output, Some(&ended))
}

/// How a generation ended: what the final `response` object reports beside its output.
struct Ended {
    model: Value,
    cut: bool,
    /// The chat `usage` object.
    usage: Value,
    /// The constrained choice's `format` report.
    format: Option<Value>,
}

/// The `response` object: `ended` is None while it is in progress.
fn response_object(request: &Value, id: &str, created: u64, output: Vec<Value>, ended: Option<&Ended>) -> Value {
    let field = |k: &str, default: Value| request.get(k).filter(|v| !v.is_null()).cloned().unwrap_or(default);
    let cut = ended.is_some_and(|e| e.cut);
    let usage = ended.map(|e| &e.usage).filter(|u| !u.is_null()).map(|usage| {
        json!({
            "input_tokens": usage["prompt_tokens"],
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": usage["completion_tokens"],
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage["total_tokens"],
        })
    });
    let mut response = json!({
        "id": id,
        "object": "response",
        "created_at": created,
        "status": match ended { None => "in_progress", Some(_) if cut => "incomplete", Some(_) => "completed" },
        "error": null,
        "incomplete_details": if cut { json!({"reason": "max_output_tokens"}) } else { Value::Null },
        "model": ended.map_or_else(|| field("model", Value::Null), |e| e.model.clone()),
        "output": output,
        "usage": usage,
        "instructions": field("instructions", Value::Null),
        "max_output_tokens": field("max_output_tokens", Value::Null),
        "parallel_tool_calls": field("parallel_tool_calls", json!(true)),
        "previous_response_id": null,
        "store": false,
        "temperature": field("temperature", json!(1.0)),
        "top_p": field("top_p", json!(1.0)),
        "text": field("text", json!({"format": {"type": "text"}})),
        "tool_choice": field("tool_choice", json!("auto")),
        "tools": field("tools", json!([])),
        "truncation": "disabled",
        "metadata": field("metadata", json!({})),
    });
    if let Some(report) = ended.and_then(|e| e.format.clone()) {
        response["format"] = report;
    }
    response
}

fn message_item(id: &str, text: &str, status: &str) -> Value {
    json!({
        "type": "message", "id": id, "status": status, "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    })
}

/// A `reasoning` output item: a thinking model's reasoning section, as text (open models' shape).
fn reasoning_item(id: &str, text: &str, status: &str) -> Value {
    json!({"type": "reasoning", "id": id, "status": status, "summary": [], "content": [{"type": "reasoning_text", "text": text}]})
}

/// A `function_call` output item for a chat tool call.
fn call_item(id: &str, call: &Value, status: &str) -> Value {
    json!({
        "type": "function_call", "id": id, "call_id": call["id"],
        "name": call["function"]["name"], "arguments": call["function"]["arguments"], "status": status,
    })
}

/// An id in OpenAI's Responses spelling: `resp_…`, `msg_…`, `fc_…`.
fn new_id(prefix: &str) -> String {
    super::new_id(prefix).replacen('-', "_", 1)
}

/// The `data:` payloads of an SSE byte stream, whatever its framing into chunks.
#[derive(Default)]
struct SseData {
    pending: String,
}

impl SseData {
    fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.pending.push_str(&String::from_utf8_lossy(bytes));
        let mut out = Vec::new();
        while let Some(end) = self.pending.find("\n\n") {
            let event: String = self.pending.drain(..end + 2).collect();
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            if !data.is_empty() {
                out.push(data.join("\n"));
            }
        }
        out
    }
}

/// A Responses event stream built from a chat-completions stream, chunk by chunk, in OpenAI's
/// documented sequence: `response.created`, `response.in_progress`, per output item
/// `response.output_item.added` … `response.output_item.done` (text: `content_part.added`,
/// `output_text.delta`s, `output_text.done`, `content_part.done`; calls:
/// `function_call_arguments.delta`/`.done`), then `response.completed` (`response.incomplete`
/// when the budget cut it, `error` then `response.failed` when generation failed).
struct StreamedResponse {
    request: Value,
    id: String,
    created: u64,
    sequence: usize,
    /// Finished output items, in order.
    output: Vec<Value>,
    /// The message item being written: its id and text so far.
    message: Option<(String, String)>,
    /// The reasoning item being written: its id and text so far.
    reasoning: Option<(String, String)>,
    finish_reason: Option<Value>,
    format: Option<Value>,
    usage: Value,
    model: Value,
    finished: bool,
}

impl StreamedResponse {
    fn new(request: Value) -> StreamedResponse {
        let model = request.get("model").cloned().unwrap_or(Value::Null);
        StreamedResponse {
            request,
            id: new_id("resp"),
            created: unix_now(),
            sequence: 0,
            output: Vec::new(),
            message: None,
            reasoning: None,
            finish_reason: None,
            format: None,
            usage: Value::Null,
            model,
            finished: false,
        }
    }

    fn event(&mut self, mut event: Value) -> Value {
        event["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        event
    }

    fn snapshot(&self, ended: Option<&Ended>) -> Value {
        response_object(&self.request, &self.id, self.created, self.output.clone(), ended)
    }

    fn opening(&mut self) -> Vec<Value> {
        let pending = self.snapshot(None);
        vec![
            self.event(json!({"type": "response.created", "response": pending})),
            self.event(json!({"type": "response.in_progress", "response": pending})),
        ]
    }

    /// The events one chat stream payload means.
    fn on_data(&mut self, data: &str) -> Vec<Value> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        if data == "[DONE]" {
            self.finish(&mut out);
            return out;
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            return out;
        };
        if let Some(error) = chunk.get("error") {
            self.fail(error, &mut out);
            return out;
        }
        if let Some(model) = chunk.get("model").filter(|m| !m.is_null()) {
            self.model = model.clone();
        }
        if let Some(usage) = chunk.get("usage").filter(|u| !u.is_null()) {
            self.usage = usage.clone();
        }
        let Some(choice) = chunk.pointer("/choices/0") else {
            return out;
        };
        let delta = &choice["delta"];
        if let Some(text) = delta.get("reasoning_content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            self.think(text, &mut out);
        }
        if let Some(text) = delta.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            self.text(text, &mut out);
        }
        for call in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
            self.call(call, &mut out);
        }
        if let Some(reason) = choice.get("finish_reason").filter(|r| !r.is_null()) {
            self.finish_reason = Some(reason.clone());
        }
        if let Some(report) = choice.get("format") {
            self.format = Some(report.clone());
        }
        out
    }

    fn part_event(&self, kind: &str, item_id: &str) -> Value {
        json!({"type": kind, "item_id": item_id, "output_index": self.output.len(), "content_index": 0})
    }

    /// Reasoning text, in a reasoning item that stays open until the answer starts.
    fn think(&mut self, text: &str, out: &mut Vec<Value>) {
        if self.reasoning.is_none() {
            let id = new_id("rs");
            let item = json!({"type": "response.output_item.added", "output_index": self.output.len(), "item": reasoning_item(&id, "", "in_progress")});
            out.push(self.event(item));
            self.reasoning = Some((id, String::new()));
        }
        let (id, written) = self.reasoning.as_mut().expect("opened above");
        written.push_str(text);
        let id = id.clone();
        let mut e = self.part_event("response.reasoning_text.delta", &id);
        e["delta"] = json!(text);
        out.push(self.event(e));
    }

    fn close_reasoning(&mut self, out: &mut Vec<Value>) {
        let Some((id, text)) = self.reasoning.take() else {
            return;
        };
        let mut e = self.part_event("response.reasoning_text.done", &id);
        e["text"] = json!(text);
        out.push(self.event(e));
        self.push_item(reasoning_item(&id, &text, "completed"), out);
    }

    fn open_message(&mut self, out: &mut Vec<Value>) {
        self.close_reasoning(out);
        if self.message.is_none() {
            let id = new_id("msg");
            let mut added = message_item(&id, "", "in_progress");
            added["content"] = json!([]);
            let item = json!({"type": "response.output_item.added", "output_index": self.output.len(), "item": added});
            out.push(self.event(item));
            let mut part = self.part_event("response.content_part.added", &id);
            part["part"] = json!({"type": "output_text", "text": "", "annotations": []});
            out.push(self.event(part));
            self.message = Some((id, String::new()));
        }
    }

    fn text(&mut self, text: &str, out: &mut Vec<Value>) {
        self.open_message(out);
        let (id, written) = self.message.as_mut().expect("opened above");
        written.push_str(text);
        let id = id.clone();
        let mut e = self.part_event("response.output_text.delta", &id);
        e["delta"] = json!(text);
        e["logprobs"] = json!([]);
        out.push(self.event(e));
    }

    fn close_message(&mut self, out: &mut Vec<Value>) {
        let Some((id, text)) = self.message.take() else {
            return;
        };
        let mut e = self.part_event("response.output_text.done", &id);
        e["text"] = json!(text);
        e["logprobs"] = json!([]);
        out.push(self.event(e));
        let mut e = self.part_event("response.content_part.done", &id);
        e["part"] = json!({"type": "output_text", "text": text, "annotations": []});
        out.push(self.event(e));
        self.push_item(message_item(&id, &text, "completed"), out);
    }

    fn push_item(&mut self, item: Value, out: &mut Vec<Value>) {
        let done = json!({"type": "response.output_item.done", "output_index": self.output.len(), "item": item});
        out.push(self.event(done));
        self.output.push(item);
    }

    /// A tool call: the chat stream gives each one whole, once it is complete.
    fn call(&mut self, call: &Value, out: &mut Vec<Value>) {
        self.close_reasoning(out);
        self.close_message(out);
        let id = new_id("fc");
        let item = call_item(&id, call, "completed");
        let mut added = call_item(&id, call, "in_progress");
        added["arguments"] = json!("");
        let index = self.output.len();
        out.push(self.event(json!({"type": "response.output_item.added", "output_index": index, "item": added})));
        let arguments = item["arguments"].clone();
        out.push(self.event(json!({"type": "response.function_call_arguments.delta", "item_id": id, "output_index": index, "delta": arguments})));
        out.push(self.event(json!({"type": "response.function_call_arguments.done", "item_id": id, "output_index": index, "name": item["name"], "arguments": arguments})));
        self.push_item(item, out);
    }

    fn finish(&mut self, out: &mut Vec<Value>) {
        self.close_reasoning(out);
        let answered = self.message.is_some() || self.output.iter().any(|item| item["type"] != "reasoning");
        if !answered {
            // An empty answer is still one (empty) message, as in the non-streamed response.
            self.open_message(out);
        }
        self.close_message(out);
        let ended = Ended {
            model: self.model.clone(),
            cut: self.finish_reason.as_ref().is_some_and(|r| r == "length"),
            usage: self.usage.clone(),
            format: self.format.clone(),
        };
        let response = self.snapshot(Some(&ended));
        let kind = if ended.cut { "response.incomplete" } else { "response.completed" };
        out.push(self.event(json!({"type": kind, "response": response})));
        self.finished = true;
    }

    fn fail(&mut self, error: &Value, out: &mut Vec<Value>) {
        self.close_reasoning(out);
        self.close_message(out);
        out.push(self.event(
            json!({"type": "error", "code": error["code"], "message": error["message"], "param": error["param"]}),
        ));
        let mut response = self.snapshot(None);
        response["status"] = json!("failed");
        response["error"] =
            json!({"code": error["code"].as_str().unwrap_or("server_error"), "message": error["message"]});
        out.push(self.event(json!({"type": "response.failed", "response": response})));
        self.finished = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types(events: &[Value]) -> Vec<&str> {
        events.iter().map(|e| e["type"].as_str().unwrap()).collect()
    }

    #[test]
    fn sse_payloads_survive_any_framing() {
        let stream = "data: {\"a\":1}\n\n: keep-alive\n\ndata: [DONE]\n\n";
        for cut in 0..stream.len() {
            let mut lines = SseData::default();
            let mut got = lines.push(&stream.as_bytes()[..cut]);
            got.extend(lines.push(&stream.as_bytes()[cut..]));
            assert_eq!(got, ["{\"a\":1}", "[DONE]"], "cut at {cut}");
        }
    }

    #[test]
    fn reasoning_streams_as_its_own_item_before_the_answer() {
        let mut r = StreamedResponse::new(json!({"model": "m", "input": "hi"}));
        let mut events = r.opening();
        for data in [
            json!({"model": "m", "choices": [{"index": 0, "delta": {"reasoning_content": "2+3 "}, "finish_reason": null}]}),
            json!({"model": "m", "choices": [{"index": 0, "delta": {"reasoning_content": "is 5"}, "finish_reason": null}]}),
            json!({"model": "m", "choices": [{"index": 0, "delta": {"content": "{\"a\": 5}"}, "finish_reason": null}]}),
            json!({"model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        ] {
            events.extend(r.on_data(&data.to_string()));
        }
        events.extend(r.on_data("[DONE]"));
        assert_eq!(
            types(&events),
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.reasoning_text.delta",
                "response.reasoning_text.delta",
                "response.reasoning_text.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        let done = &events.last().unwrap()["response"];
        assert_eq!(done["output"][0]["type"], "reasoning");
        assert_eq!(done["output"][0]["content"][0]["text"], "2+3 is 5");
        assert_eq!(done["output"][1]["content"][0]["text"], "{\"a\": 5}");
        assert_eq!(events[9]["output_index"], 1, "the message is the second item");
    }

    #[test]
    fn a_chat_stream_becomes_the_documented_event_sequence() {
        let mut r = StreamedResponse::new(json!({"model": "m", "input": "hi"}));
        let mut events = r.opening();
        for data in [
            json!({"model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]}),
            json!({"model": "m", "choices": [{"index": 0, "delta": {"content": "I will "}, "finish_reason": null}]}),
            json!({"model": "m", "choices": [{"index": 0, "delta": {"content": "call."}, "finish_reason": null}]}),
            json!({"model": "m", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}, "finish_reason": null}]}),
            json!({"model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls", "format": {"mode": "mask"}}]}),
            json!({"model": "m", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}),
        ] {
            events.extend(r.on_data(&data.to_string()));
        }
        events.extend(r.on_data("[DONE]"));
        events.extend(r.on_data("[DONE]")); // a second end adds nothing
        assert_eq!(
            types(&events),
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        let numbers: Vec<u64> = events.iter().map(|e| e["sequence_number"].as_u64().unwrap()).collect();
        assert_eq!(numbers, (0..events.len() as u64).collect::<Vec<_>>());
        let done = &events.last().unwrap()["response"];
        assert_eq!(done["id"], events[0]["response"]["id"]);
        assert_eq!(done["output"][0]["content"][0]["text"], "I will call.");
        assert_eq!(done["output"][0]["id"], events[2]["item"]["id"]);
        assert_eq!(done["output"][1]["call_id"], "call_1");
        assert_eq!(done["usage"]["total_tokens"], 7);
        assert_eq!(done["format"]["mode"], "mask");
    }

    #[test]
    fn a_cut_stream_is_incomplete_and_a_failed_one_says_so() {
        let mut r = StreamedResponse::new(json!({"model": "m"}));
        let mut events =
            r.on_data(&json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}).to_string());
        events.extend(r.on_data("[DONE]"));
        assert_eq!(
            types(&events),
            [
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.incomplete",
            ]
        );
        assert_eq!(events.last().unwrap()["response"]["incomplete_details"]["reason"], "max_output_tokens");

        let mut r = StreamedResponse::new(json!({"model": "m"}));
        let mut events = r.on_data(&json!({"choices": [{"index": 0, "delta": {"content": "a"}}]}).to_string());
        events.extend(r.on_data(
            &json!({"error": {"message": "boom", "type": "server_error", "param": null, "code": null}}).to_string(),
        ));
        events.extend(r.on_data("[DONE]"));
        assert_eq!(&types(&events)[events.len() - 2..], ["error", "response.failed"]);
        assert_eq!(events.last().unwrap()["response"]["status"], "failed");
    }
}
