//! Hostile requests against the real server: each gets a 200 or a 4xx naming what it broke,
//! and the server answers a normal request afterwards. Nothing is timed: the work a request
//! may cause is bounded by limits whose names the errors carry (see crates/conform-format/tests/hostile.rs for the
//! compile-level cases and their work counters). The HTTP layer's part: slow and idle
//! connections, more connections than the cap, bodies not declared JSON, foreign Host headers
//! (DNS rebinding); there a test waits (with a generous guard) for what the server is bound to
//! do, such as closing a connection, and asserts that it happened.

use crate::common;

use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Default body limit (8 MiB), so inputs up to the sizes an attacker can send reach the compiler.
fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER
        .get_or_init(|| Server::start(&["--parallel", "2", "--max-queue", "16", "--max-n", "32", "--ctx-size", "512"]))
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
        let message =
            refused(s, &chat_body("x", json!({"guided_grammar": g, "max_tokens": 4})), 400, "guided_grammar").await;
        assert!(message.contains("nest"), "{name}: {message}");
    }
    // Mutually recursive: more recursive rules than call codes, so recursion is unrolled.
    let mut g = String::from("root ::= m0\n");
    for i in 0..3_400 {
        g.push_str(&format!("m{i} ::= \"(\" m{} \")\" | \"x\"\n", (i + 1) % 3_400));
    }
    let (status, resp) =
        post(s, "/v1/chat/completions", &chat_body("x", json!({"guided_grammar": g, "max_tokens": 4}))).await;
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
    refused(s, &chat_body("x", json!({"tools": tools, "max_tokens": 2})), 400, "tools[0].function.parameters.type")
        .await;
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

// ------------------------------------------------------------------ connections and exposure

/// Short header timeout and a small connection cap, so both are quick to reach.
fn strict() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        Server::start(&["--parallel", "1", "--ctx-size", "1024", "--header-timeout", "1", "--max-connections", "20"])
    })
}

/// The default cap, a header timeout no test outlives, and one extra allowed Host.
fn lenient() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        Server::start(&[
            "--parallel",
            "1",
            "--ctx-size",
            "1024",
            "--header-timeout",
            "600",
            "--allowed-host",
            "Box.Lan",
        ])
    })
}

fn address(server: &Server) -> String {
    server.base.trim_start_matches("http://").to_string()
}

/// Reads until the server closes the connection (end of file or reset); panics past the guard.
async fn closed_by_server(mut stream: impl AsyncReadExt + Unpin) {
    let mut buf = [0u8; 1024];
    let wait = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(PATIENCE, wait).await.expect("the server never closed the connection");
}

/// Sends a request head one byte a second, never finishing it.
async fn slowloris(address: String) {
    let stream = TcpStream::connect(address).await.unwrap();
    let (reader, mut writer) = stream.into_split();
    let trickle = tokio::spawn(async move {
        let head = b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";
        for &byte in head.iter().chain(std::iter::repeat(&b'a')) {
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    closed_by_server(reader).await;
    trickle.abort();
}

/// 300 idle connections and 5 slow ones against a cap of 20: the slow and idle ones are closed
/// (they would be held forever without a header timeout), `/health` waits its turn behind
/// them and answers, and the model still serves a request that takes longer than the header
/// timeout.
#[tokio::test]
async fn slow_and_idle_connections_are_closed_and_the_server_keeps_answering() {
    let server = strict();
    let slow: Vec<_> = (0..5).map(|_| tokio::spawn(slowloris(address(server)))).collect();
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(TcpStream::connect(address(server)).await.unwrap());
    }
    // Past the cap: this one waits, unaccepted, until earlier connections are closed.
    let health = tokio::spawn(async { client().get(strict().url("/health")).send().await.unwrap().status() });
    let idle: Vec<_> = idle.into_iter().map(|stream| tokio::spawn(closed_by_server(stream))).collect();
    for task in slow.into_iter().chain(idle) {
        task.await.unwrap();
    }
    assert_eq!(health.await.unwrap(), 200);
    let (status, resp) = post(server, "/v1/chat/completions", &chat_body("Say ok.", json!({"max_tokens": 5}))).await;
    assert_eq!(status, 200, "{resp}");
    assert!(resp["choices"][0]["message"]["content"].is_string(), "{resp}");
}

/// Under the cap, idle connections cost a slot each and nothing else: `/health` answers while
/// 300 of them are held open (the header timeout here is longer than the test).
#[tokio::test]
async fn health_answers_while_many_idle_connections_are_open_under_the_cap() {
    let server = lenient();
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(TcpStream::connect(address(server)).await.unwrap());
    }
    assert_eq!(health(server).await["status"], "ok");
    drop(idle);
}

/// A POST not declared JSON gets 415 in OpenAI's shape, on every API route: a web page can send
/// `text/plain` cross-origin without a preflight, so accepting it would let any page drive a
/// local server.
#[tokio::test]
async fn bodies_not_declared_json_get_415() {
    let server = lenient();
    let body = chat_body("Say ok.", json!({"max_tokens": 3})).to_string();
    for path in ["/v1/chat/completions", "/v1/completions", "/v1/responses"] {
        for content_type in [Some("text/plain"), Some("application/x-www-form-urlencoded"), None] {
            let mut request = client().post(server.url(path)).body(body.clone());
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            let resp = request.send().await.unwrap();
            assert_eq!(resp.status(), 415, "{path} with {content_type:?}");
            let error: Value = resp.json().await.unwrap();
            assert_eq!(error["error"]["code"], "unsupported_media_type", "{error}");
            assert_eq!(error["error"]["type"], "invalid_request_error", "{error}");
        }
    }
    // Parameters after the media type are fine.
    let resp = client()
        .post(server.url("/v1/chat/completions"))
        .header("content-type", "Application/JSON; charset=utf-8")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// A server on loopback answers loopback Host names and those given with `--allowed-host`;
/// another name (a page that rebound its DNS name to 127.0.0.1) gets 403 naming it.
#[tokio::test]
async fn a_loopback_server_answers_only_loopback_and_allowed_hosts() {
    let server = lenient();
    let port = address(server).rsplit_once(':').unwrap().1.to_string();
    let get = |host: String| async move {
        client().get(lenient().url("/v1/models")).header("host", host).send().await.unwrap()
    };
    for host in ["evil.example".to_string(), format!("evil.example:{port}"), format!("localhost.evil.example:{port}")] {
        let resp = get(host.clone()).await;
        assert_eq!(resp.status(), 403, "{host}");
        let error: Value = resp.json().await.unwrap();
        assert_eq!(error["error"]["code"], "host_not_allowed", "{error}");
        assert!(error["error"]["message"].as_str().unwrap().contains(&host), "{error}");
    }
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        "box.lan".to_string(),
        format!("BOX.LAN:{port}"),
    ] {
        assert_eq!(get(host.clone()).await.status(), 200, "{host}");
    }
}
