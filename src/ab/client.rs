//! The one road to a model: an OpenAI-compatible `/v1/chat/completions` endpoint, whether our
//! own server (started in-process by `conform ab`) or anyone else's.

use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

use super::format::{RawCall, ToolTranscript};

/// How long one request may take, and how long a request refused for load (429, 503) keeps
/// being sent again: a refusal means other requests hold the server's slots, and on a loaded
/// machine they may take minutes, so a count of retries would make the outcome depend on the
/// server's speed. An hour is far above any generation this harness asks for.
const REQUEST_DEADLINE: Duration = Duration::from_secs(3600);

pub struct Endpoint {
    base: String,
    api_key: Option<String>,
    http: reqwest::Client,
}

/// One completion, or the server's refusal (kept as the item's result, not a fatal error: an
/// unsupported schema on one item must not end the run).
pub struct Reply {
    pub content: String,
    /// The message's `tool_calls`, in OpenAI's shape.
    pub tool_calls: Vec<Value>,
    pub finish_reason: String,
    pub completion_tokens: u64,
    pub error: Option<String>,
    /// What the format cost the model, from the choice's `format` object (conform's extension;
    /// absent for free decoding and other servers).
    pub format_cost: Option<FormatCost>,
}

/// The cost a constrained answer reports (see `engine::cost`).
#[derive(serde::Serialize, Clone, Copy, Debug, Default, PartialEq)]
pub struct FormatCost {
    /// Σ −ln(allowed probability mass) over the sampled steps.
    pub nats: f64,
    pub sampled_steps: u64,
    /// Steps whose most likely token the format did not allow.
    pub overridden_steps: u64,
}

impl FormatCost {
    fn of(format: &Value) -> Option<FormatCost> {
        Some(FormatCost {
            nats: format.get("cost_nats")?.as_f64()?,
            sampled_steps: format.get("sampled_steps")?.as_u64()?,
            overridden_steps: format.get("overridden_steps")?.as_u64()?,
        })
    }
}

impl Reply {
    /// The answer as a [`ToolTranscript`] (JSON): the text and each call's name and arguments.
    pub fn tool_transcript(&self) -> String {
        let tool_calls = self
            .tool_calls
            .iter()
            .map(|c| RawCall {
                name: c["function"]["name"].as_str().unwrap_or_default().to_string(),
                arguments: c["function"]["arguments"].as_str().unwrap_or_default().to_string(),
            })
            .collect();
        let content = (!self.content.is_empty()).then(|| self.content.clone());
        serde_json::to_string(&ToolTranscript { content, tool_calls }).expect("serialisable")
    }
}

impl Endpoint {
    /// `base` is the server's root (`http://host:port`) or its `/v1` URL.
    pub fn new(base: &str, api_key: Option<String>) -> anyhow::Result<Endpoint> {
        let base = base.trim_end_matches('/').trim_end_matches("/v1").to_string();
        // Requests queue behind each other at the server; a long generation is not a failure.
        let http = reqwest::Client::builder().timeout(REQUEST_DEADLINE).build()?;
        Ok(Endpoint { base, api_key, http })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.api_key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    /// The first model the server lists.
    pub async fn first_model(&self) -> anyhow::Result<String> {
        let list: Value =
            self.request(reqwest::Method::GET, "/v1/models").send().await?.error_for_status()?.json().await?;
        list["data"][0]["id"].as_str().map(String::from).context("the server lists no model (give --model)")
    }

    pub async fn chat(&self, body: &Value) -> anyhow::Result<Reply> {
        let deadline = tokio::time::Instant::now() + REQUEST_DEADLINE;
        let mut response = self.request(reqwest::Method::POST, "/v1/chat/completions").json(body).send().await?;
        // A busy server says when to come back (429 queue full, 503 queue timeout); a refusal
        // for load is not the arm's result, so it is sent again until the deadline.
        while matches!(response.status().as_u16(), 429 | 503) && tokio::time::Instant::now() < deadline {
            let wait = response.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(1);
            tokio::time::sleep(Duration::from_secs(wait.clamp(1, 60))).await;
            response = self.request(reqwest::Method::POST, "/v1/chat/completions").json(body).send().await?;
        }
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            let error: Option<Value> = serde_json::from_str(&text).ok();
            let message = error.as_ref().and_then(|e| e["error"]["message"].as_str()).unwrap_or(&text);
            return Ok(Reply {
                content: String::new(),
                tool_calls: Vec::new(),
                finish_reason: "error".into(),
                completion_tokens: 0,
                error: Some(format!("{status}: {message}")),
                format_cost: None,
            });
        }
        let value: Value = serde_json::from_str(&text).with_context(|| format!("{status}: not JSON: {text:.200}"))?;
        let choice = &value["choices"][0];
        Ok(Reply {
            content: choice["message"]["content"].as_str().unwrap_or_default().to_string(),
            tool_calls: choice["message"]["tool_calls"].as_array().cloned().unwrap_or_default(),
            finish_reason: choice["finish_reason"].as_str().unwrap_or("unknown").to_string(),
            completion_tokens: value["usage"]["completion_tokens"].as_u64().unwrap_or(0),
            error: None,
            format_cost: FormatCost::of(&choice["format"]),
        })
    }
}
