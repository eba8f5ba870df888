#![no_main]
//! Fuzz target: the request parser. Arbitrary bytes as the body of `/v1/chat/completions` and
//! `/v1/completions`: JSON parsing, the typed field groups, range validation of every sampling
//! parameter, and `tools` / `tool_choice` (their parameter schemas compiled into the tool-call
//! regex).
//!
//! Checked: no panic; every refusal is a client error (4xx) in OpenAI's shape, with a message,
//! and a `param` when it is a 400 about a field; an accepted request's values are in range.

// The format engine is a library (conform-format). The server's parsing modules live in the
// `conform` crate, which links llama.cpp, so they are compiled in place here; they refer to the
// engine and to each other via `crate::` and `super::`.
use conform_format::format;
#[allow(dead_code)]
#[path = "../../src/chat_format.rs"]
mod chat_format;
#[allow(dead_code)]
#[path = "../../src/server/error.rs"]
mod error;
#[allow(dead_code)]
#[path = "../../src/server/request.rs"]
mod request;
#[allow(dead_code)]
#[path = "../../src/engine/sampling.rs"]
mod sampling;
#[allow(dead_code)]
#[path = "../../src/server/tools.rs"]
mod tools;
#[allow(dead_code)]
#[path = "../../src/server/xml_calls.rs"]
mod xml_calls;

mod engine {
    pub use crate::sampling::SamplingParams;
}

/// `tools.rs` names parsed calls with the server's id helper.
fn new_id(prefix: &str) -> String {
    format!("{prefix}-fuzz")
}

use libfuzzer_sys::fuzz_target;
use request::{ChatRequest, CompletionRequest, RequestLimits, SamplingFields};

/// The default model's vocabulary size (token ids in `logit_bias` are checked against it).
const N_VOCAB: u32 = 151_936;

fn refused(e: &error::ApiError) {
    assert!(e.status.is_client_error(), "{} for {e:?}", e.status);
    assert!(!e.message.is_empty());
    let body = e.body();
    assert!(body["error"]["message"].is_string() && body["error"]["type"].is_string());
}

fn accepted(v: &request::Validated, limits: &RequestLimits) {
    let p = &v.params;
    assert!((0.0..=2.0).contains(&p.temperature), "temperature {}", p.temperature);
    assert!(p.top_p > 0.0 && p.top_p <= 1.0, "top_p {}", p.top_p);
    assert!((0.0..=1.0).contains(&p.min_p));
    assert!(p.logit_bias.iter().all(|&(t, _)| t < N_VOCAB));
    assert!(v.n >= 1 && v.n <= limits.max_n);
    assert!(v.max_tokens.is_none_or(|m| m <= limits.max_completion_tokens));
}

fuzz_target!(|data: &[u8]| {
    let body = match request::parse_json(data) {
        Ok(body) => body,
        Err(e) => return refused(&e),
    };
    let limits = RequestLimits::default();
    let sampling = request::typed::<SamplingFields>(&body);
    let chat = request::typed::<ChatRequest>(&body);
    let completion = request::typed::<CompletionRequest>(&body);
    for outcome in [
        sampling
            .as_ref()
            .map_err(|e| e)
            .and_then(|s| chat.as_ref().map_err(|e| e).map(|c| c.validate(s, N_VOCAB, &limits))),
        sampling
            .as_ref()
            .map_err(|e| e)
            .and_then(|s| completion.as_ref().map_err(|e| e).map(|c| c.validate(s, N_VOCAB, &limits))),
    ] {
        match outcome {
            Err(e) => refused(e),
            Ok(Err(e)) => refused(&e),
            Ok(Ok(v)) => accepted(&v, &limits),
        }
    }
    // Both with and without an answer format beside the tools (auto calls then take the tagged surface only).
    for with_answer_format in [false, true] {
        match tools::read(
            &body,
            &chat_format::ChatFormat::named("hermes").unwrap(),
            &format::Limits::default(),
            with_answer_format,
        ) {
            Err(e) => refused(&e),
            Ok(Some(t)) => assert!(t.call_rules.is_some() || t.choice == tools::ToolChoice::None),
            Ok(None) => {}
        }
    }
});
