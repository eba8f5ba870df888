//! Hostile requests against the real server: each gets a 200 or a 4xx naming what it broke,
//! and the server answers a normal request afterwards. Nothing is timed: the work a request
//! may cause is bounded by limits whose names the errors carry (see tests/hostile.rs for the
//! compile-level cases and their work counters).

mod common;

use std::process::{Command, Stdio};
use std::sync::OnceLock;

use common::{chat_body, client, post, Server, MODEL};
use serde_json::{json, Value};

/// Default body limit (8 MiB), so inputs up to the sizes an attacker can send reach the compiler.
fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| Server::start(&["--parallel", "2", "--max-queue", "16", "--max-n", "32", "--ctx-size", "512"]))
}

/// A short greedy chat must still work: the server survived what came before.
async fn still_serves(server: &Server) {
    let (status, resp) = post(server, "/v1/chat/completions", &chat_body("Say hi.", json!({"max_tokens": 4}))).await;
    assert_eq!(status, 200, "{resp}");
}

/// Posts `body`, expects `status` with an OpenAI error naming `param`; returns the message.
async fn refused(server: &Server, body: &Value, status: u16, param: &str) -> String {
    let (got, resp) = post(server, "/v1/chat/completions", body).await;
    let message = resp["error"]["message"].as_str().unwrap_or_default().to_string();
    assert_eq!(got, status, "{resp}");
    assert_eq!(resp["error"]["param"], param, "{resp}");
    assert!(message.len() < 4096, "the error echoes {} bytes", message.len());
    message
}

fn words(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("w{i:05}q")).collect()
}

#[tokio::test]
async fn grammar_rule_chains_are_400s_not_crashes() {
    let s = server();
    for (name, n) in [("chain", 5_000), ("long chain", 40_000)] {
        let mut g = String::from("root ::= r0\n");
        for i in 0..n {
            g.push_str(&format!("r{i} ::= \"x\" r{}\n", i + 1));
        }
        g.push_str(&format!("r{n} ::= \"y\"\n"));
        let message = refused(s, &chat_body("x", json!({"guided_grammar": g, "max_tokens": 4})), 400, "guided_grammar").await;
        assert!(message.contains("nest"), "{name}: {message}");
    }
    // Mutually recursive: more recursive rules than call codes, so recursion is unrolled.
    let mut g = String::from("root ::= m0\n");
    for i in 0..3_400 {
        g.push_str(&format!("m{i} ::= \"(\" m{} \")\" | \"x\"\n", (i + 1) % 3_400));
    }
    let (status, resp) = post(s, "/v1/chat/completions", &chat_body("x", json!({"guided_grammar": g, "max_tokens": 4}))).await;
    assert!(status == 200 || status == 400, "{status} {resp}");
    still_serves(s).await;
}

#[tokio::test]
async fn long_instruction_lists_are_bounded() {
    let s = server();
    let rf = |list: Value| json!({"response_format": {"type": "instructions", "instructions": list}, "max_tokens": 8});
    let forbidden = json!([{"id": "keywords:forbidden_words", "forbidden_words": words(5_000)}]);
    let message = refused(s, &chat_body("x", rf(forbidden)), 400, "response_format").await;
    assert!(message.contains("max_listed_words"), "{message}");
    let keywords = json!([{"id": "keywords:existence", "keywords": words(200)}]);
    let message = refused(s, &chat_body("x", rf(keywords)), 400, "response_format").await;
    assert!(message.contains("max_product_components"), "{message}");
    let mut list: Vec<Value> = (0..1_000).map(|_| json!({"id": "punctuation:no_comma"})).collect();
    list.push(json!({"id": "change_case:english_lowercase"}));
    list.push(json!({"id": "change_case:english_capital"}));
    refused(s, &chat_body("x", rf(Value::Array(list))), 400, "response_format").await;
    // A list of ordinary size still works, forbidden words and all.
    let ok = json!([{"id": "keywords:forbidden_words", "forbidden_words": words(100)}, {"id": "punctuation:no_comma"}]);
    let (status, resp) = post(s, "/v1/chat/completions", &chat_body("Say hi.", rf(ok))).await;
    assert_eq!(status, 200, "{resp}");
}

#[tokio::test]
async fn requests_that_can_never_be_admitted_are_400s() {
    let s = server();
    // 2 slots + 16 queued: n = 19 can never all run, so a retryable 429 would be a lie.
    let message = refused(s, &chat_body("x", json!({"n": 19, "max_tokens": 2})), 400, "n").await;
    assert!(message.contains("18 fit"), "{message}");
    // A prompt list runs `n` times per prompt: 5 prompts x n = 4 is 20 generations.
    let body = json!({"model": MODEL, "prompt": ["a", "b", "c", "d", "e"], "n": 4, "max_tokens": 2});
    let (status, resp) = post(s, "/v1/completions", &body).await;
    assert_eq!(status, 400, "{resp}");
    assert_eq!(resp["error"]["param"], "prompt", "{resp}");
    let body = json!({"model": MODEL, "prompt": ["a", "b"], "n": 2, "max_tokens": 2, "temperature": 0});
    let (status, resp) = post(s, "/v1/completions", &body).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["choices"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn huge_inputs_are_not_echoed_back() {
    let s = server();
    let pattern = format!("({}", "a".repeat(400_000));
    // `refused` checks that the message is short.
    refused(s, &chat_body("x", json!({"guided_regex": pattern, "max_tokens": 2})), 400, "guided_regex").await;
}

#[tokio::test]
async fn non_object_tool_parameters_are_refused() {
    let s = server();
    let tools = json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]);
    refused(s, &chat_body("x", json!({"tools": tools, "max_tokens": 2})), 400, "tools[0].function.parameters.type").await;
}

// ------------------------------------------------------------------ authentication

/// `conform serve` with `args` and `env` must refuse to start, saying why.
fn refuses_to_start(args: &[&str], env: &[(&str, &str)], why: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_conform"))
        .args(["serve", "--port", "0"])
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run conform");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with {args:?} {env:?}");
    assert!(stderr.contains(why), "{stderr}");
}

#[test]
fn empty_api_keys_refuse_to_start() {
    refuses_to_start(&["--api-key", ""], &[], "--api-key is empty");
    refuses_to_start(&["--api-key", "  "], &[], "--api-key is empty");
    refuses_to_start(&[], &[("CONFORM_API_KEY", " , ")], "CONFORM_API_KEY is set but holds no key");
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive_and_empty_credentials_never_match() {
    static KEYED: OnceLock<Server> = OnceLock::new();
    let keyed = KEYED.get_or_init(|| Server::start(&["--parallel", "1", "--ctx-size", "256", "--api-key", "k1"]));
    let models = keyed.url("/v1/models");
    let status = |auth: Option<&'static str>| {
        let models = models.clone();
        async move {
            let mut req = client().get(models);
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            req.send().await.unwrap().status().as_u16()
        }
    };
    assert_eq!(status(Some("Bearer k1")).await, 200);
    assert_eq!(status(Some("bearer k1")).await, 200);
    assert_eq!(status(Some("BEARER k1")).await, 200);
    for bad in [None, Some("Bearer "), Some("Bearer"), Some(""), Some("Basic k1"), Some("Bearer k2"), Some("k1")] {
        assert_eq!(status(bad).await, 401, "{bad:?}");
    }
}
