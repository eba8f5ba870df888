//! Starts the real `conform` binary on the real default model, on a free port.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

pub const MODEL: &str = "qwen2.5-coder-0.5b-instruct";

pub struct Server {
    pub base: String,
    child: Child,
}

impl Server {
    /// Launches `conform serve` with extra flags and waits until it answers `/health`.
    /// The server exits when this process does (it watches its stdin).
    pub fn start(extra: &[&str]) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_conform"))
            .args(["serve", "--port", &port.to_string(), "--exit-with-stdin"])
            .args(extra)
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
        rx.recv_timeout(Duration::from_secs(120)).expect("server did not start");
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

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(300)).build().unwrap()
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
