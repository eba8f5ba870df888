//! Chat formats of real model families (templates from llama-cpp-python's source distribution,
//! fetched by `models/templates.py`): each template is detected as its family, and renders
//! conversations exactly as the reference renderer (Jinja2 configured as transformers does,
//! `tests/render_reference.py`) renders them.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use conform::chat_format::ChatFormat;
use conform::chat_template::{normalise_message, ChatTemplate};
use serde_json::{json, Value};

fn templates() -> PathBuf {
    let out = Command::new("python3").arg("models/templates.py").output().expect("python3 runs");
    assert!(out.status.success(), "models/templates.py: {}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn template(name: &str) -> String {
    std::fs::read_to_string(templates().join(format!("{name}.jinja"))).unwrap()
}

/// The families the server constrains, by the templates that define them.
const FAMILIES: &[(&str, &str)] = &[
    ("Qwen-Qwen2.5-7B-Instruct", "hermes"),
    ("NousResearch-Hermes-3-Llama-3.1-8B-tool_use", "hermes"),
    ("ibm-granite-granite-4.0", "hermes"),
    ("Qwen-Qwen3-0.6B", "qwen3"),
    ("Qwen-QwQ-32B", "qwen3"),
    ("meta-llama-Llama-3.1-8B-Instruct", "llama3"),
    ("meta-llama-Llama-3.2-3B-Instruct", "llama3"),
    ("meta-llama-Llama-3.3-70B-Instruct", "llama3"),
    ("mistralai-Mistral-Nemo-Instruct-2407", "mistral-nemo"),
    ("Mistral-Small-3.2-24B-Instruct-2506", "mistral"),
    ("unsloth-mistral-Devstral-Small-2507", "mistral"),
    ("mistralai-Ministral-3-14B-Reasoning-2512", "mistral"),
    ("ibm-granite-granite-3.3-2B-Instruct", "granite3"),
    ("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", "deepseek-r1"),
    ("deepseek-ai-DeepSeek-R1-Distill-Llama-8B", "deepseek-r1"),
    ("Qwen3-Coder", "qwen3-coder"),
    ("Qwen3.5-4B", "qwen3-coder"),
    ("NVIDIA-Nemotron-3-Nano-30B-A3B-BF16", "qwen3-coder"),
    ("openai-gpt-oss-120b", "gpt-oss"),
    ("google-gemma-2-2b-it", "generic"),
    ("microsoft-Phi-3.5-mini-instruct", "generic"),
];

#[test]
fn real_templates_are_detected_as_their_family() {
    for (file, family) in FAMILIES {
        let format = ChatFormat::detect(&template(file));
        assert_eq!(format.name, *family, "{file}");
    }
    // Reasoning where the family thinks, not where its template never does.
    assert!(ChatFormat::detect(&template("Qwen-Qwen3-0.6B")).reasoning.is_some());
    assert!(ChatFormat::detect(&template("mistralai-Ministral-3-14B-Reasoning-2512")).reasoning.is_some());
    assert!(ChatFormat::detect(&template("unsloth-mistral-Devstral-Small-2507")).reasoning.is_none());
    assert!(ChatFormat::detect(&template("Qwen-Qwen2.5-7B-Instruct")).reasoning.is_none());
}

fn weather_tool() -> Value {
    json!({"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}})
}

/// Conversations every template should take: plain turns, tools offered, and a whole tool round
/// (call, result, answer).
fn conversations() -> Vec<(&'static str, Vec<Value>, Option<Vec<Value>>)> {
    let call = json!({"id": "call12345", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}});
    vec![
        (
            "plain",
            vec![json!({"role": "system", "content": "Be brief."}), json!({"role": "user", "content": "Hi there!"})],
            None,
        ),
        ("tools offered", vec![json!({"role": "user", "content": "Weather in Oslo?"})], Some(vec![weather_tool()])),
        (
            "tool round",
            vec![
                json!({"role": "system", "content": "You help."}),
                json!({"role": "user", "content": "Weather in Oslo?"}),
                json!({"role": "assistant", "content": "", "tool_calls": [call]}),
                json!({"role": "tool", "tool_call_id": "call12345", "content": "{\"temp\": 3}"}),
                json!({"role": "assistant", "content": "It is 3 degrees."}),
                json!({"role": "user", "content": "Thanks!"}),
            ],
            Some(vec![weather_tool()]),
        ),
    ]
}

fn reference(source: &str, messages: &[Value], tools: Option<&[Value]>) -> Result<String, String> {
    let job = json!({"template": source, "messages": messages, "tools": tools, "kwargs": {}, "bos_token": "<s>", "eos_token": "</s>"});
    let mut child = Command::new("python3")
        .arg("tests/render_reference.py")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), job.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("render_reference.py: {e}"));
    match answer.get("text").and_then(Value::as_str) {
        Some(text) => Ok(text.to_string()),
        None => Err(answer["error"].as_str().unwrap_or_default().to_string()),
    }
}

/// The families' templates render every conversation exactly as the reference does (or both
/// refuse it); over all ~70 templates, the mismatches are listed. Where the reference refuses
/// and conform renders (a template that iterates `tools` when there are none), conform is only
/// more lenient: listed, not a failure.
#[test]
fn templates_render_as_the_reference_renderer_does() {
    let dir = templates();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jinja"))
        .collect();
    files.sort();
    assert!(files.len() >= 60, "{} templates in {}", files.len(), dir.display());
    let mut mismatches = Vec::new();
    let mut lenient = Vec::new();
    let mut compared = 0;
    for path in &files {
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        let source = std::fs::read_to_string(path).unwrap();
        let ours = ChatTemplate::new(&source, "<s>", "</s>");
        for (label, messages, tools) in conversations() {
            // The reference sees what transformers would: arguments as objects.
            let normalised: Vec<Value> = messages.iter().map(normalise_message).collect();
            let want = reference(&source, &normalised, tools.as_deref());
            let got = match &ours {
                Ok(t) => t.render(&messages, tools.as_deref()).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            compared += 1;
            let same = match (&got, &want) {
                (Ok(a), Ok(b)) => a == b,
                (Err(_), Err(_)) => true,
                (Ok(_), Err(e)) => {
                    lenient.push(format!("{name} / {label}: the reference refuses ({e})"));
                    true
                }
                (Err(_), Ok(_)) => false,
            };
            if !same {
                mismatches.push(format!("{name} / {label}: ours {got:?}\n    reference {want:?}"));
            }
        }
    }
    eprintln!(
        "{} of {compared} renderings differ from the reference; {} the reference refuses",
        mismatches.len(),
        lenient.len()
    );
    for m in mismatches.iter().chain(&lenient) {
        eprintln!("  {m}");
    }
    let family_mismatches: Vec<&String> =
        mismatches.iter().filter(|m| FAMILIES.iter().any(|(file, _)| m.starts_with(&format!("{file} /")))).collect();
    assert!(family_mismatches.is_empty(), "{family_mismatches:#?}");
}

// End to end: the default model served with another family's template. The model writes what
// it can in that family's words (its own are Qwen's); the format holds whatever it writes to the
// family's syntax, and the server parses it back.

use crate::common;

use common::{chat_body, health, post, Server};

fn serve_with(template_file: &str) -> Server {
    let path = templates().join(format!("{template_file}.jinja"));
    Server::start(&["--parallel", "2", "--ctx-size", "2048", "--chat-template-file", path.to_str().unwrap()])
}

fn add_tool() -> Value {
    json!({"type": "function", "function": {"name": "add", "description": "Adds two integers.",
        "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}}})
}

/// A required call comes back as `tool_calls`, one call with arguments valid for its tool.
/// (That the call format is the family's syntax is checked in `tools.rs`'s unit tests.)
async fn calls_in_family_syntax(template_file: &str, family: &str) {
    let server = serve_with(template_file);
    assert_eq!(health(&server).await["chat_format"], family);
    let body = chat_body(
        "Add 17 and 25 with the tool.",
        json!({"max_tokens": 80, "tools": [add_tool(), weather_tool()], "tool_choice": "required", "parallel_tool_calls": false}),
    );
    let (status, r) = post(&server, "/v1/chat/completions", &body).await;
    assert_eq!(status, 200, "{family}: {r}");
    let choice = &r["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{family}: {r}");
    let calls = choice["message"]["tool_calls"].as_array().unwrap_or_else(|| panic!("{family}: no calls in {r}"));
    assert_eq!(calls.len(), 1, "{family}: {r}");
    let name = calls[0]["function"]["name"].as_str().unwrap();
    let arguments: Value = serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
    match name {
        "add" => assert!(arguments["a"].is_i64() && arguments["b"].is_i64(), "{family}: {arguments}"),
        "get_weather" => assert!(arguments["city"].is_string(), "{family}: {arguments}"),
        other => panic!("{family}: called {other}"),
    }
    assert_eq!(choice["format"]["mode"], "mask", "{family}: {r}");
}

#[tokio::test]
async fn llama3_calls_are_json_with_parameters() {
    calls_in_family_syntax("meta-llama-Llama-3.1-8B-Instruct", "llama3").await;
}

#[tokio::test]
async fn mistral_nemo_calls_are_a_tool_calls_list() {
    calls_in_family_syntax("mistralai-Mistral-Nemo-Instruct-2407", "mistral-nemo").await;
}

#[tokio::test]
async fn mistral_calls_are_name_then_args() {
    calls_in_family_syntax("unsloth-mistral-Devstral-Small-2507", "mistral").await;
}

#[tokio::test]
async fn granite3_calls_follow_the_tool_call_token() {
    calls_in_family_syntax("ibm-granite-granite-3.3-2B-Instruct", "granite3").await;
}

#[tokio::test]
async fn deepseek_r1_calls_are_fenced_blocks_in_its_tokens() {
    calls_in_family_syntax("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", "deepseek-r1").await;
}

#[tokio::test]
async fn qwen3_coder_calls_are_xml_parameters() {
    calls_in_family_syntax("Qwen3-Coder", "qwen3-coder").await;
}

/// A thinking template: the reasoning comes back apart from the answer, the JSON Schema holds
/// what follows it even when the budget cuts the thinking short (the marker is forced in time),
/// streamed reasoning arrives as `reasoning_content` deltas, and thinking turned off through
/// `chat_template_kwargs` leaves no reasoning.
#[tokio::test]
async fn qwen3_reasoning_then_a_valid_json_answer() {
    let server = serve_with("Qwen-Qwen3-0.6B");
    assert_eq!(health(&server).await["chat_format"], "qwen3");
    let schema = json!({"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"], "additionalProperties": false});
    let format = json!({"type": "json_schema", "json_schema": {"name": "sum", "schema": schema, "strict": true}});
    for max_tokens in [24, 120] {
        let body = chat_body(
            "What is 17 + 25? Think it through, then answer.",
            json!({"max_tokens": max_tokens, "response_format": format}),
        );
        let (status, r) = post(&server, "/v1/chat/completions", &body).await;
        assert_eq!(status, 200, "{r}");
        let message = &r["choices"][0]["message"];
        let answer: Value =
            serde_json::from_str(message["content"].as_str().unwrap()).unwrap_or_else(|e| panic!("{e}: {r}"));
        assert!(answer["answer"].is_i64(), "{r}");
        assert!(message["reasoning_content"].is_string(), "{r}");
        assert!(!message["content"].as_str().unwrap().contains("think>"), "{r}");
        assert_eq!(r["choices"][0]["format"]["compliant"], true, "{r}");
        assert!(r["usage"]["completion_tokens"].as_u64().unwrap() <= max_tokens, "{r}");
    }
    // Streamed: reasoning deltas first, then content deltas that together are the JSON answer.
    let body = chat_body("What is 2 + 3?", json!({"max_tokens": 40, "response_format": format, "stream": true}));
    let resp = common::client().post(server.url("/v1/chat/completions")).json(&body).send().await.unwrap();
    let (mut reasoning, mut content) = (String::new(), String::new());
    for payload in common::sse_payloads(resp).await {
        let Ok(chunk) = serde_json::from_str::<Value>(&payload) else { continue };
        let delta = &chunk["choices"][0]["delta"];
        reasoning.push_str(delta["reasoning_content"].as_str().unwrap_or_default());
        content.push_str(delta["content"].as_str().unwrap_or_default());
    }
    assert!(!reasoning.is_empty(), "no reasoning deltas");
    let answer: Value = serde_json::from_str(&content).unwrap_or_else(|e| panic!("{e}: {content:?}"));
    assert!(answer["answer"].is_i64(), "{content}");
    // The Responses API: the reasoning is an item of its own before the message.
    let body = json!({"model": common::MODEL, "input": "What is 2 + 3?", "max_output_tokens": 40, "temperature": 0,
        "text": {"format": {"type": "json_schema", "name": "sum", "schema": schema, "strict": true}}});
    let (status, r) = post(&server, "/v1/responses", &body).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["output"][0]["type"], "reasoning", "{r}");
    assert_eq!(r["output"][1]["type"], "message", "{r}");
    let answer: Value = serde_json::from_str(r["output"][1]["content"][0]["text"].as_str().unwrap())
        .unwrap_or_else(|e| panic!("{e}: {r}"));
    assert!(answer["answer"].is_i64(), "{r}");
    // Thinking off: the template closes the section itself; no reasoning comes back.
    let body = chat_body(
        "What is 2 + 3?",
        json!({"max_tokens": 20, "response_format": format, "chat_template_kwargs": {"enable_thinking": false}}),
    );
    let (status, r) = post(&server, "/v1/chat/completions", &body).await;
    assert_eq!(status, 200, "{r}");
    assert!(r["choices"][0]["message"].get("reasoning_content").is_none(), "{r}");
    let answer: Value = serde_json::from_str(r["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert!(answer["answer"].is_i64(), "{r}");
}

/// A family whose call syntax is not constrained yet refuses tools with a 400 naming it, and
/// `--chat-format` overrides the detection.
#[tokio::test]
async fn an_unconstrained_family_refuses_tools_clearly() {
    let server = serve_with("openai-gpt-oss-120b");
    let body = chat_body("Add 1 and 2.", json!({"max_tokens": 40, "tools": [add_tool()], "tool_choice": "required"}));
    let (status, r) = post(&server, "/v1/chat/completions", &body).await;
    assert_eq!(status, 400, "{r}");
    assert_eq!(r["error"]["param"], "tools", "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("gpt-oss"), "{r}");
    // Without tools the template serves as usual.
    let (status, r) = post(&server, "/v1/chat/completions", &chat_body("Say hi.", json!({"max_tokens": 4}))).await;
    assert_eq!(status, 200, "{r}");
    let path = templates().join("openai-gpt-oss-120b.jinja");
    let generic = Server::start(&[
        "--ctx-size",
        "2048",
        "--chat-template-file",
        path.to_str().unwrap(),
        "--chat-format",
        "generic",
    ]);
    assert_eq!(health(&generic).await["chat_format"], "generic");
    let (status, r) = post(&generic, "/v1/chat/completions", &body).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["choices"][0]["message"]["tool_calls"][0]["function"]["name"], "add", "{r}");
}

/// Another family's real weights: SmolLM2's template (ChatML, no tools) is of no known family,
/// so it gets the generic chat format, and tools come back as calls written as JSON objects.
#[tokio::test]
async fn smollm2_serves_tools_and_schemas_through_the_generic_format() {
    let server = Server::start(&["--model", "smollm2-135m-instruct", "--parallel", "2", "--ctx-size", "2048"]);
    assert_eq!(health(&server).await["chat_format"], "generic");
    let model = "smollm2-135m-instruct";
    let mut body = chat_body(
        "Add 17 and 25 with the tool.",
        json!({"max_tokens": 60, "tools": [add_tool()], "tool_choice": "required"}),
    );
    body["model"] = json!(model);
    let (status, r) = post(&server, "/v1/chat/completions", &body).await;
    assert_eq!(status, 200, "{r}");
    let call = &r["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "add", "{r}");
    let arguments: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert!(arguments["a"].is_i64() && arguments["b"].is_i64(), "{r}");
    let schema = json!({"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}, "population": {"type": "integer"}},
        "required": ["city", "population"], "additionalProperties": false});
    let mut body = chat_body(
        "Name a big city and its population as JSON.",
        json!({"max_tokens": 60, "response_format": {"type": "json_schema", "json_schema": {"name": "city", "schema": schema, "strict": true}}}),
    );
    body["model"] = json!(model);
    let (status, r) = post(&server, "/v1/chat/completions", &body).await;
    assert_eq!(status, 200, "{r}");
    let answer: Value = serde_json::from_str(r["choices"][0]["message"]["content"].as_str().unwrap())
        .unwrap_or_else(|e| panic!("{e}: {r}"));
    assert!(answer["city"].is_string() && answer["population"].is_i64(), "{r}");
}
