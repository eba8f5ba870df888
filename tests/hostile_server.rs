//! Hostile clients at the HTTP layer: slow and idle connections, more connections than the cap,
//! bodies not declared JSON, foreign Host headers (DNS rebinding).
//!
//! Nothing here is timed: a test waits (with a generous guard) for what the server is bound to
//! do, such as closing a connection, and asserts that it happened.

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Short header timeout and a small connection cap, so both are quick to reach.
fn strict() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| Server::start(&["--parallel", "1", "--ctx-size", "1024", "--header-timeout", "1", "--max-connections", "20"]))
}

/// The default cap, a header timeout no test outlives, and one extra allowed Host.
fn lenient() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| Server::start(&["--parallel", "1", "--ctx-size", "1024", "--header-timeout", "600", "--allowed-host", "Box.Lan"]))
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
    let get = |host: String| async move { client().get(lenient().url("/v1/models")).header("host", host).send().await.unwrap() };
    for host in ["evil.example".to_string(), format!("evil.example:{port}"), format!("localhost.evil.example:{port}")] {
        let resp = get(host.clone()).await;
        assert_eq!(resp.status(), 403, "{host}");
        let error: Value = resp.json().await.unwrap();
        assert_eq!(error["error"]["code"], "host_not_allowed", "{error}");
        assert!(error["error"]["message"].as_str().unwrap().contains(&host), "{error}");
    }
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}"), format!("[::1]:{port}"), "box.lan".to_string(), format!("BOX.LAN:{port}")] {
        assert_eq!(get(host.clone()).await.status(), 200, "{host}");
    }
}
