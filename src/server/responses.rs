//! `POST /v1/responses`: OpenAI's Responses API, stateless. The request is translated into a
//! chat-completions body and served by the same handler ([`chat::chat_completions`]), so both
//! endpoints share one request model and one generation path; the answer is translated back
//! into a `response` object (or its event stream).
//!
//! Stateless: `previous_response_id` is a 400, `store` is accepted and ignored, unknown
//! `include` values are ignored. With `stream: true` the events are written from the finished
//! generation (the documented sequence, the text in one delta).

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::stream;
use serde_json::{json, Map, Value};

use super::chat;
use super::error::ApiError;
use super::request::parse_json;
use super::{unix_now, AppState, Body};

/// Fields copied unchanged into the chat body.
const PASSED: &[&str] = &[
    "model", "temperature", "top_p", "top_k", "min_p", "seed", "presence_penalty", "frequency_penalty",
    "logit_bias", "stop", "parallel_tool_calls", "format_mode", "format_options", "guided_json", "guided_regex",
    "guided_choice", "guided_grammar",
];

pub async fn responses(State(state): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let body = parse_json(&body.0)?;
    let chat_body = translate(&body)?;
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let bytes = serde_json::to_vec(&chat_body).map_err(ApiError::internal)?;
    let answer = chat::chat_completions(State(state), Body(bytes.into())).await?;
    let raw = axum::body::to_bytes(answer.into_body(), usize::MAX).await.map_err(ApiError::internal)?;
    let completion: Value = serde_json::from_slice(&raw).map_err(ApiError::internal)?;
    let response = response_json(&body, &completion);
    if !stream {
        return Ok(Json(response).into_response());
    }
    let events = events(response).into_iter().map(Ok::<_, Infallible>);
    Ok(Sse::new(stream::iter(events)).keep_alive(KeepAlive::default()).into_response())
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
            _ => return Err(ApiError::invalid("tool_choice", "`tool_choice` must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"name\": …}")),
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
                let role = item.get("role").and_then(Value::as_str).ok_or_else(|| ApiError::invalid(field("role"), format!("`{}` is required", field("role"))))?;
                let role = match role {
                    "user" | "assistant" | "system" => role,
                    "developer" => "system",
                    _ => return Err(ApiError::invalid(field("role"), format!("`{}` must be user, assistant, system or developer", field("role")))),
                };
                let content = match item.get("content") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(parts)) => {
                        let mut text = String::new();
                        for (k, part) in parts.iter().enumerate() {
                            match part.get("type").and_then(Value::as_str) {
                                Some("input_text" | "output_text" | "text") => text.push_str(part.get("text").and_then(Value::as_str).unwrap_or("")),
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
                    _ => return Err(ApiError::invalid(field("content"), format!("`{}` must be a string or an array of text parts", field("content")))),
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
                    None => return Err(ApiError::invalid(field("output"), format!("`{}` is required", field("output")))),
                };
                messages.push(json!({"role": "tool", "tool_call_id": item.get("call_id").cloned().unwrap_or(Value::Null), "content": output}));
            }
            "reasoning" => {}
            other => return Err(ApiError::invalid(field("type"), format!("input item type {other:?} is not supported"))),
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
        _ => Err(ApiError::invalid("text.format.type", "`text.format.type` must be \"text\", \"json_object\" or \"json_schema\"")),
    }
}

/// The `response` object for a finished chat completion.
fn response_json(request: &Value, completion: &Value) -> Value {
    let choice = &completion["choices"][0];
    let message = &choice["message"];
    let mut output = Vec::new();
    let text = message["content"].as_str().unwrap_or("");
    if !text.is_empty() || message.get("tool_calls").is_none() {
        output.push(json!({
            "type": "message", "id": new_id("msg"), "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }));
    }
    for call in message["tool_calls"].as_array().into_iter().flatten() {
        output.push(json!({
            "type": "function_call", "id": new_id("fc"), "call_id": call["id"],
            "name": call["function"]["name"], "arguments": call["function"]["arguments"], "status": "completed",
        }));
    }
    let cut = choice["finish_reason"] == "length";
    let usage = &completion["usage"];
    let field = |k: &str, default: Value| request.get(k).filter(|v| !v.is_null()).cloned().unwrap_or(default);
    let mut response = json!({
        "id": new_id("resp"),
        "object": "response",
        "created_at": unix_now(),
        "status": if cut { "incomplete" } else { "completed" },
        "error": null,
        "incomplete_details": if cut { json!({"reason": "max_output_tokens"}) } else { Value::Null },
        "model": completion["model"],
        "output": output,
        "usage": {
            "input_tokens": usage["prompt_tokens"],
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": usage["completion_tokens"],
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage["total_tokens"],
        },
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
    if let Some(report) = choice.get("format") {
        response["format"] = report.clone();
    }
    response
}

/// An id in OpenAI's Responses spelling: `resp_…`, `msg_…`, `fc_…`.
fn new_id(prefix: &str) -> String {
    super::new_id(prefix).replacen('-', "_", 1)
}

/// The documented event sequence for a finished response.
fn events(response: Value) -> Vec<SseEvent> {
    let mut events = Vec::new();
    let mut push = |mut event: Value| {
        let kind = event["type"].as_str().unwrap_or("").to_string();
        event["sequence_number"] = json!(events.len());
        events.push(SseEvent::default().event(kind).data(event.to_string()));
    };
    let mut pending = response.clone();
    pending["status"] = json!("in_progress");
    pending["output"] = json!([]);
    pending["usage"] = Value::Null;
    pending["incomplete_details"] = Value::Null;
    push(json!({"type": "response.created", "response": pending}));
    push(json!({"type": "response.in_progress", "response": pending}));
    for (index, item) in response["output"].as_array().into_iter().flatten().enumerate() {
        let id = item["id"].clone();
        let mut added = item.clone();
        added["status"] = json!("in_progress");
        match item["type"].as_str() {
            Some("message") => {
                added["content"] = json!([]);
                push(json!({"type": "response.output_item.added", "output_index": index, "item": added}));
                let part = &item["content"][0];
                let text = part["text"].as_str().unwrap_or("");
                let at = |t: &str| json!({"type": t, "item_id": id, "output_index": index, "content_index": 0});
                let mut e = at("response.content_part.added");
                e["part"] = json!({"type": "output_text", "text": "", "annotations": []});
                push(e);
                if !text.is_empty() {
                    let mut e = at("response.output_text.delta");
                    e["delta"] = json!(text);
                    e["logprobs"] = json!([]);
                    push(e);
                }
                let mut e = at("response.output_text.done");
                e["text"] = json!(text);
                e["logprobs"] = json!([]);
                push(e);
                let mut e = at("response.content_part.done");
                e["part"] = part.clone();
                push(e);
            }
            _ => {
                added["arguments"] = json!("");
                push(json!({"type": "response.output_item.added", "output_index": index, "item": added}));
                let arguments = item["arguments"].clone();
                push(json!({"type": "response.function_call_arguments.delta", "item_id": id, "output_index": index, "delta": arguments}));
                push(json!({"type": "response.function_call_arguments.done", "item_id": id, "output_index": index, "name": item["name"], "arguments": arguments}));
            }
        }
        push(json!({"type": "response.output_item.done", "output_index": index, "item": item}));
    }
    let last = if response["status"] == "incomplete" { "response.incomplete" } else { "response.completed" };
    push(json!({"type": last, "response": response}));
    events
}
