//! `format_mode: "lookahead"` on the real server and model, with the committed TPM: outputs
//! comply and close, the response says which mode ran, same seed same output; a model without a
//! TPM answers 400; a TPM from another model or a damaged file stops the server at start-up.

use crate::common;

use std::process::Command;

use common::{chat_body, post, Server, MODEL};
use serde_json::{json, Value};

const TPM: &str = "models/qwen2.5-coder-0.5b-instruct.tpm";

fn answer_schema() -> Value {
    json!({"type": "object", "properties": {"reasoning": {"type": "string"}, "answer": {"type": "integer"}}, "required": ["reasoning", "answer"]})
}

fn math(extra: Value) -> Value {
    let mut body = chat_body(
        "A box holds 3 red and 4 blue pens. How many pens are in 5 boxes?",
        json!({
            "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": answer_schema()}},
            "format_mode": "lookahead",
            "max_tokens": 48,
            "temperature": 0.8,
            "seed": 5,
        }),
    );
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

fn check_output(choice: &Value) -> Value {
    let content = choice["message"]["content"].as_str().unwrap();
    let parsed: Value = serde_json::from_str(content).unwrap_or_else(|e| panic!("not JSON ({e}): {content}"));
    assert!(parsed["reasoning"].is_string() && parsed["answer"].is_i64(), "{parsed}");
    assert_eq!(choice["finish_reason"], "stop", "{choice}");
    assert_eq!(choice["format"]["compliant"], true);
    parsed
}

#[tokio::test]
async fn lookahead_outputs_comply_close_and_repeat_with_the_seed() {
    let server = Server::start(&[]);
    // Tight budget: the model's natural answer does not fit in 48 tokens, the output still closes.
    let (status, first) = post(&server, "/v1/chat/completions", &math(json!({"n": 2}))).await;
    assert_eq!(status, 200, "{first}");
    for choice in first["choices"].as_array().unwrap() {
        check_output(choice);
        assert_eq!(choice["format"]["mode"], "lookahead", "{choice}");
        assert_eq!(choice["format"]["lookahead"]["tpm"], "distilled");
        assert_eq!(choice["format"]["lookahead"]["weight"], 0.25);
    }
    // Same seed, same output (one sequence at a time: a batch's arithmetic depends on its
    // neighbours, see README).
    let (_, one) = post(&server, "/v1/chat/completions", &math(json!({}))).await;
    let (_, again) = post(&server, "/v1/chat/completions", &math(json!({}))).await;
    check_output(&one["choices"][0]);
    assert_eq!(
        one["choices"][0]["message"]["content"], again["choices"][0]["message"]["content"],
        "same seed, same output"
    );

    // The uniform TPM (the ablation) and a streamed request.
    let (status, uniform) =
        post(&server, "/v1/chat/completions", &math(json!({"format_options": {"tpm": "uniform"}}))).await;
    assert_eq!(status, 200, "{uniform}");
    check_output(&uniform["choices"][0]);
    assert_eq!(uniform["choices"][0]["format"]["lookahead"]["tpm"], "uniform");

    let resp = common::client()
        .post(server.url("/v1/chat/completions"))
        .json(&math(json!({"stream": true})))
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    for payload in common::sse_payloads(resp).await {
        if payload == "[DONE]" {
            continue;
        }
        let chunk: Value = serde_json::from_str(&payload).unwrap();
        if let Some(delta) = chunk["choices"][0]["delta"]["content"].as_str() {
            text.push_str(delta);
        }
    }
    let parsed: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("streamed output is not JSON ({e}): {text}"));
    assert!(parsed["answer"].is_i64());

    // Past the lookahead caps the mask runs alone, and the response says so.
    let big = chat_body(
        "Write a long word.",
        json!({
            "guided_json": {"type": "string", "maxLength": 3000},
            "format_mode": "lookahead",
            "max_tokens": 8,
        }),
    );
    let (status, fallback) = post(&server, "/v1/chat/completions", &big).await;
    assert_eq!(status, 200, "{fallback}");
    let format = &fallback["choices"][0]["format"];
    assert_eq!(format["mode"], "mask", "{format}");
    assert!(format["lookahead"]["fallback"].as_str().unwrap().contains("cap"), "{format}");
    assert_eq!(format["compliant"], true);

    let (status, bad) = post(&server, "/v1/chat/completions", &math(json!({"format_options": {"tpm": "other"}}))).await;
    assert_eq!(status, 400, "{bad}");
    let (status, bad) =
        post(&server, "/v1/chat/completions", &math(json!({"format_options": {"lookahead_weight": 5}}))).await;
    assert_eq!(status, 400, "{bad}");
    assert_eq!(bad["error"]["param"], "format_options.lookahead_weight");
}

#[tokio::test]
async fn a_model_without_a_tpm_refuses_lookahead() {
    let server = Server::start(&["--model", "gemma-3-270m"]);
    let body = json!({
        "model": "gemma-3-270m",
        "prompt": "The answer is",
        "guided_regex": "[0-9]+",
        "format_mode": "lookahead",
        "max_tokens": 4,
    });
    let (status, error) = post(&server, "/v1/completions", &body).await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["error"]["param"], "format_mode");
    assert_eq!(error["error"]["code"], "lookahead_unavailable");
    assert!(error["error"]["message"].as_str().unwrap().contains("conform distill"));
    // The uniform TPM needs no distillation.
    let body = json!({"model": "gemma-3-270m", "prompt": "The answer is", "guided_regex": " [0-9]{1,3}",
        "format_mode": "lookahead", "format_options": {"tpm": "uniform"}, "max_tokens": 4});
    let (status, ok) = post(&server, "/v1/completions", &body).await;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(ok["choices"][0]["format"]["mode"], "lookahead");
    assert_eq!(ok["choices"][0]["format"]["compliant"], true);
}

/// Runs `conform serve` with a TPM that must be refused; returns its stderr.
fn refused_at_start(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_conform")).args(["serve", "--port", "0"]).args(args).output().unwrap();
    assert!(!out.status.success(), "the server started with {args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_tpm_from_another_model_or_a_damaged_file_is_refused() {
    let err = refused_at_start(&["--model", "gemma-3-270m", "--tpm", TPM]);
    assert!(err.contains("distilled from another model"), "{err}");

    let dir = std::env::temp_dir().join(format!("conform-lookahead-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let damaged = dir.join("damaged.tpm");
    let mut bytes = std::fs::read(TPM).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&damaged, &bytes).unwrap();
    let err = refused_at_start(&["--model", MODEL, "--tpm", damaged.to_str().unwrap()]);
    assert!(err.contains("checksum"), "{err}");
    let err = refused_at_start(&["--model", MODEL, "--tpm", dir.join("missing.tpm").to_str().unwrap()]);
    assert!(err.contains("missing.tpm"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
