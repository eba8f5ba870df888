//! OpenAI request bodies: parsing with errors that name the offending field, and validation of
//! every parameter's range before anything reaches the engine.

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use super::error::ApiError;
use crate::engine::SamplingParams;

/// Parses a request body as a JSON object; malformed JSON is a 400.
pub fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::malformed(format!("request body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::malformed("request body must be a JSON object"));
    }
    Ok(value)
}

/// Reads one group of fields out of the body; a wrong type is a 400 naming the field.
/// (Groups are read in separate passes rather than through `#[serde(flatten)]`, which loses
/// the path of a bad field.)
pub fn typed<T: DeserializeOwned>(value: &Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // serde reports a missing field at the parent's path; name the field itself.
        let param = match inner.strip_prefix("missing field `") {
            Some(rest) => rest.trim_end_matches('`').to_string(),
            None if path == "." => String::new(),
            None => path,
        };
        let message = if param.is_empty() { inner } else { format!("invalid `{param}`: {inner}") };
        ApiError::invalid(param, message)
    })
}

#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Deserialize, Debug, Clone, Copy, Default)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// Sampling fields shared by chat and text completions.
#[derive(Deserialize, Debug, Default)]
pub struct SamplingFields {
    pub max_tokens: Option<u32>,
    pub max_completion_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<u32>,
    pub min_p: Option<f32>,
    pub n: Option<u32>,
    pub seed: Option<i64>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    pub logit_bias: Option<HashMap<String, f32>>,
    pub stop: Option<OneOrMany>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
}

#[derive(Deserialize, Debug)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Value>,
    /// Variables for the chat template (`enable_thinking`, …).
    pub chat_template_kwargs: Option<serde_json::Map<String, Value>>,
    pub reasoning_effort: Option<String>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<u32>,
}

#[derive(Deserialize, Debug)]
#[serde(untagged)]
pub enum Prompt {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenLists(Vec<Vec<u32>>),
}

#[derive(Deserialize, Debug)]
pub struct CompletionRequest {
    pub model: String,
    pub prompt: Prompt,
    /// Number of top alternatives per token (0–5), as in OpenAI's legacy API.
    pub logprobs: Option<u32>,
    pub echo: Option<bool>,
    pub suffix: Option<String>,
}

/// Validated settings for one request's generations.
pub struct Validated {
    pub params: SamplingParams,
    pub max_tokens: Option<u32>,
    pub n: u32,
    pub stop: Vec<String>,
    pub stream: bool,
    pub include_usage: bool,
}

const MAX_STOP: usize = 4;

/// Per-request bounds, set by `serve` flags; a breach is a 400 naming the flag and its value.
#[derive(Clone, Debug)]
pub struct RequestLimits {
    /// `--max-n`: most choices per request.
    pub max_n: u32,
    /// `--max-messages`: most chat messages per request.
    pub max_messages: usize,
    /// `--max-completion-tokens`: the largest `max_tokens` a request may ask for.
    pub max_completion_tokens: u32,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits { max_n: 16, max_messages: 2048, max_completion_tokens: 32768 }
    }
}

impl SamplingFields {
    /// Checks ranges; `top_logprobs` comes from the endpoint-specific field.
    pub fn validate(
        &self,
        n_vocab: u32,
        top_logprobs: Option<u32>,
        limits: &RequestLimits,
    ) -> Result<Validated, ApiError> {
        let range = |name: &str, v: Option<f32>, lo: f32, hi: f32| match v {
            Some(x) if !(lo..=hi).contains(&x) || x.is_nan() => {
                Err(ApiError::invalid(name, format!("`{name}` must be between {lo} and {hi}, got {x}")))
            }
            _ => Ok(()),
        };
        range("temperature", self.temperature, 0.0, 2.0)?;
        range("top_p", self.top_p, 0.0, 1.0)?;
        range("min_p", self.min_p, 0.0, 1.0)?;
        range("presence_penalty", self.presence_penalty, -2.0, 2.0)?;
        range("frequency_penalty", self.frequency_penalty, -2.0, 2.0)?;
        if self.top_p == Some(0.0) {
            return Err(ApiError::invalid("top_p", "`top_p` must be greater than 0"));
        }
        let n = self.n.unwrap_or(1);
        let max_n = limits.max_n;
        if !(1..=max_n).contains(&n) {
            return Err(ApiError::invalid("n", format!("`n` must be between 1 and {max_n} (--max-n), got {n}")));
        }
        let max_tokens = match (self.max_completion_tokens, self.max_tokens) {
            (Some(m), _) => Some(("max_completion_tokens", m)),
            (None, Some(m)) => Some(("max_tokens", m)),
            (None, None) => None,
        };
        match max_tokens {
            Some((name, 0)) => return Err(ApiError::invalid(name, format!("`{name}` must be at least 1"))),
            Some((name, m)) if m > limits.max_completion_tokens => {
                let cap = limits.max_completion_tokens;
                return Err(ApiError::invalid(
                    name,
                    format!("`{name}` is {m}, above this server's limit of {cap} (--max-completion-tokens)"),
                ));
            }
            _ => {}
        }
        let stop = self.stop.clone().map(OneOrMany::into_vec).unwrap_or_default();
        if stop.len() > MAX_STOP {
            return Err(ApiError::invalid("stop", format!("`stop` takes at most {MAX_STOP} strings")));
        }
        if stop.iter().any(String::is_empty) {
            return Err(ApiError::invalid("stop", "stop strings must not be empty"));
        }
        let mut logit_bias = Vec::new();
        for (key, &bias) in self.logit_bias.iter().flatten() {
            let param = format!("logit_bias.{key}");
            let token: u32 = key.parse().ok().filter(|&t| t < n_vocab).ok_or_else(|| {
                ApiError::invalid(&param, format!("`{key}` is not a token id of this model (0..{n_vocab})"))
            })?;
            if !(-100.0..=100.0).contains(&bias) {
                return Err(ApiError::invalid(param, format!("bias must be between -100 and 100, got {bias}")));
            }
            logit_bias.push((token, bias));
        }
        let stream = self.stream.unwrap_or(false);
        if self.stream_options.is_some() && !stream {
            return Err(ApiError::invalid("stream_options", "`stream_options` is only allowed with `stream: true`"));
        }
        Ok(Validated {
            params: SamplingParams {
                temperature: self.temperature.unwrap_or(1.0),
                top_p: self.top_p.unwrap_or(1.0),
                top_k: self.top_k.unwrap_or(0),
                min_p: self.min_p.unwrap_or(0.0),
                presence_penalty: self.presence_penalty.unwrap_or(0.0),
                frequency_penalty: self.frequency_penalty.unwrap_or(0.0),
                logit_bias,
                seed: self.seed.map(|s| s as u64),
                top_logprobs,
            },
            max_tokens: max_tokens.map(|(_, m)| m),
            n,
            stop,
            stream,
            include_usage: self.stream_options.is_some_and(|o| o.include_usage),
        })
    }
}

impl ChatRequest {
    pub fn validate(
        &self,
        sampling: &SamplingFields,
        n_vocab: u32,
        limits: &RequestLimits,
    ) -> Result<Validated, ApiError> {
        if self.messages.is_empty() {
            return Err(ApiError::invalid("messages", "`messages` must not be empty"));
        }
        if self.messages.len() > limits.max_messages {
            let (n, cap) = (self.messages.len(), limits.max_messages);
            return Err(ApiError::invalid(
                "messages",
                format!("{n} messages, above this server's limit of {cap} (--max-messages)"),
            ));
        }
        for (i, m) in self.messages.iter().enumerate() {
            let role = m.get("role").and_then(Value::as_str);
            if !matches!(role, Some("system" | "developer" | "user" | "assistant" | "tool")) {
                return Err(ApiError::invalid(
                    format!("messages[{i}].role"),
                    "each message needs a `role` of system, developer, user, assistant or tool",
                ));
            }
            match m.get("content") {
                None | Some(Value::Null) if role == Some("assistant") => {}
                Some(Value::String(_)) => {}
                Some(Value::Array(parts)) if parts.iter().all(|p| p.get("text").is_some_and(Value::is_string)) => {}
                _ => {
                    return Err(ApiError::invalid(
                        format!("messages[{i}].content"),
                        "`content` must be a string or a list of text parts",
                    ))
                }
            }
        }
        let top_logprobs = match (self.logprobs.unwrap_or(false), self.top_logprobs) {
            (_, Some(k)) if k > 20 => {
                return Err(ApiError::invalid("top_logprobs", "`top_logprobs` must be between 0 and 20"))
            }
            (false, Some(_)) => {
                return Err(ApiError::invalid("top_logprobs", "`top_logprobs` requires `logprobs: true`"))
            }
            (true, k) => Some(k.unwrap_or(0)),
            (false, None) => None,
        };
        sampling.validate(n_vocab, top_logprobs, limits)
    }
}

impl CompletionRequest {
    pub fn validate(
        &self,
        sampling: &SamplingFields,
        n_vocab: u32,
        limits: &RequestLimits,
    ) -> Result<Validated, ApiError> {
        if let Some(k) = self.logprobs.filter(|&k| k > 5) {
            return Err(ApiError::invalid("logprobs", format!("`logprobs` must be between 0 and 5, got {k}")));
        }
        if self.echo == Some(true) {
            return Err(ApiError::invalid("echo", "`echo` is not supported"));
        }
        if self.suffix.is_some() {
            return Err(ApiError::invalid("suffix", "`suffix` is not supported by this model"));
        }
        sampling.validate(n_vocab, self.logprobs, limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<(T, SamplingFields), ApiError> {
        let value = parse_json(body)?;
        Ok((typed(&value)?, typed(&value)?))
    }

    #[test]
    fn wrong_types_name_the_field() {
        let e = parse_body::<ChatRequest>(br#"{"model": "m", "messages": [], "temperature": "hot"}"#).unwrap_err();
        assert!(e.message.contains("temperature"), "{}", e.message);
        assert_eq!(e.param.as_deref(), Some("temperature"));
        let e = parse_body::<ChatRequest>(br#"{"messages": []}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("model"));
        let e = parse_body::<ChatRequest>(b"{not json").unwrap_err();
        assert!(e.message.contains("not valid JSON"));
    }

    #[test]
    fn ranges_are_checked() {
        let (req, s): (ChatRequest, _) =
            parse_body(br#"{"model": "m", "messages": [{"role": "user", "content": "x"}], "top_p": 1.5}"#).unwrap();
        assert_eq!(req.validate(&s, 100, &RequestLimits::default()).err().unwrap().param.as_deref(), Some("top_p"));
        let (req, s): (ChatRequest, _) =
            parse_body(br#"{"model": "m", "messages": [{"role": "user", "content": "x"}], "logit_bias": {"100": 1}}"#)
                .unwrap();
        assert_eq!(
            req.validate(&s, 100, &RequestLimits::default()).err().unwrap().param.as_deref(),
            Some("logit_bias.100")
        );
    }
}
