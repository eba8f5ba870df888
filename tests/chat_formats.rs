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
        ("plain", vec![json!({"role": "system", "content": "Be brief."}), json!({"role": "user", "content": "Hi there!"})], None),
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
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "jinja")).collect();
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
    eprintln!("{} of {compared} renderings differ from the reference; {} the reference refuses", mismatches.len(), lenient.len());
    for m in mismatches.iter().chain(&lenient) {
        eprintln!("  {m}");
    }
    let family_mismatches: Vec<&String> =
        mismatches.iter().filter(|m| FAMILIES.iter().any(|(file, _)| m.starts_with(&format!("{file} /")))).collect();
    assert!(family_mismatches.is_empty(), "{family_mismatches:#?}");
}
