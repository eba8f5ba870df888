//! Starts the real `conform` binary on the real default model, on a free port; and the one
//! llama.cpp backend of this test process, for tests that load a model's vocabulary in-process.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

pub const MODEL: &str = "qwen2.5-coder-0.5b-instruct";

/// How long a test waits for something the server is bound to do (start, answer, free a slot).
/// Only a hang guard, never a speed check: on a loaded CI machine (two cores shared with other
/// tests' servers) a 40-token request has taken over 30 s, so every wait is minutes long and
/// a test asserts what happened (counters, statuses), never how long it took.
pub const PATIENCE: Duration = Duration::from_secs(3600);

pub struct Server {
    pub base: String,
    child: Child,
}

impl Server {
    /// Launches `conform serve` with extra flags and waits until it answers `/health`.
    /// The server exits when this process does (it watches its stdin).
    ///
    /// A request queued behind others' work waits up to an hour for a slot (the server's
    /// default, 300 s, is a timer that load can beat); `--queue-timeout` in `extra` overrides it.
    pub fn start(extra: &[&str]) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_conform"))
            .args(["serve", "--port", &port.to_string(), "--exit-with-stdin"])
            .args(extra)
            .env("CONFORM_QUEUE_TIMEOUT", PATIENCE.as_secs().to_string())
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn conform");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("serving") {
                    let _ = tx.send(());
                }
                if std::env::var_os("CONFORM_TEST_LOG").is_some() {
                    eprintln!("[server] {line}");
                }
            }
        });
        // A server that exits early closes stderr, which ends the wait at once.
        rx.recv_timeout(Duration::from_secs(600)).expect("server did not start");
        Server { base: format!("http://127.0.0.1:{port}"), child }
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit status.
    /// (Polls rather than `wait`, which would close stdin and trigger `--exit-with-stdin`.)
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// An HTTP client whose timeout is only a hang guard ([`PATIENCE`]): a request may queue behind
/// other tests' work on a loaded machine, and its timeout covers the wait and the generation.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(PATIENCE).build().unwrap()
}

pub async fn post(server: &Server, path: &str, body: &Value) -> (u16, Value) {
    let resp = client().post(server.url(path)).json(body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

pub fn chat_body(content: &str, extra: Value) -> Value {
    let mut body = json!({"model": MODEL, "messages": [{"role": "user", "content": content}], "temperature": 0});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// Reads an SSE response into its `data:` payloads, in order.
pub async fn sse_payloads(resp: reqwest::Response) -> Vec<String> {
    let text = resp.text().await.unwrap();
    text.lines().filter_map(|l| l.strip_prefix("data: ")).map(str::to_string).collect()
}

pub async fn health(server: &Server) -> Value {
    client().get(server.url("/health")).send().await.unwrap().json().await.unwrap()
}

/// The value of a line of `/metrics` that starts with `prefix` (a counter with its labels,
/// e.g. `conform_requests_total{route="/v1/chat/completions",status="429"}`); 0 when absent
/// (a labelled counter appears on its first count).
pub async fn metric(server: &Server, prefix: &str) -> f64 {
    let text = client().get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find(|l| l.starts_with(prefix) && l[prefix.len()..].starts_with(' '))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap_or_else(|e| panic!("{l}: {e}")))
        .unwrap_or(0.0)
}

/// Polls `/health` until `done` holds for it; panics (naming `what`) only past [`PATIENCE`].
pub async fn wait_for_health(server: &Server, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let start = std::time::Instant::now();
    loop {
        let h = health(server).await;
        if done(&h) {
            return h;
        }
        assert!(start.elapsed() < PATIENCE, "{what}: still {h} after {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// llama.cpp's backend initialises once per process: every test that loads a model in-process
/// shares this one.
pub fn backend() -> &'static llama_cpp_2::llama_backend::LlamaBackend {
    static BACKEND: std::sync::OnceLock<llama_cpp_2::llama_backend::LlamaBackend> = std::sync::OnceLock::new();
    BACKEND.get_or_init(|| {
        let mut backend = llama_cpp_2::llama_backend::LlamaBackend::init().unwrap();
        backend.void_logs();
        backend
    })
}
