//! The playground page at `/`, driven by a real headless Chromium (through ChromeDriver)
//! against the real server:
//! the page loads, submits (its `run=1` link parameter presses Run), streams both arms and
//! shows each arm's compliance and token count.

use crate::common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// A headless Chromium session through ChromeDriver (WebDriver over HTTP), so the test can wait
/// for the page's streams to end instead of guessing a time.
struct Browser {
    driver: std::process::Child,
    base: String,
    session: String,
}

impl Browser {
    async fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver not found: `make test` installs Debian's chromium and chromium-driver");
        let base = format!("http://127.0.0.1:{port}");
        // WebDriver's own timeouts (page load 300 s, scripts 30 s by default) are hang guards
        // too: as long as the test's.
        let patience_ms = PATIENCE.as_millis() as u64;
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "timeouts": {"pageLoad": patience_ms, "script": patience_ms},
            "goog:chromeOptions": {"args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]}}}});
        // Until the driver listens (a refused connection fails at once); on a loaded machine
        // that can take far longer than usual, so only a driver that exited or a hang fails.
        let start = Instant::now();
        loop {
            if let Ok(resp) = client().post(format!("{base}/session")).json(&capabilities).send().await {
                let body: Value = resp.json().await.unwrap();
                let session =
                    body["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {body}")).to_string();
                return Browser { driver, base, session };
            }
            if let Some(status) = driver.try_wait().unwrap() {
                panic!("chromedriver exited ({status}) before it listened");
            }
            assert!(start.elapsed() < PATIENCE, "chromedriver did not start within {PATIENCE:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn command(&self, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}/{path}", self.base, self.session);
        let body: Value = client().post(url).json(&body).send().await.unwrap().json().await.unwrap();
        body["value"].clone()
    }

    async fn script(&self, script: &str) -> Value {
        self.command("execute/sync", json!({"script": script, "args": []})).await
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[tokio::test]
async fn the_page_runs_both_arms_side_by_side() {
    let server = Server::start(&["--parallel", "2", "--ctx-size", "512"]);
    // The page itself: served open (no key needed), self-contained.
    let page = client().get(server.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(!html.contains("http://") && !html.contains("https://"), "the page must not load external assets");

    let query = [
        ("prompt", "Give a date in 2024."),
        ("kind", "regex"),
        ("format", "2024-(0[1-9]|1[0-2])-[0-2][0-9]"),
        ("max_tokens", "16"),
        ("run", "1"),
    ];
    let url = reqwest::Url::parse_with_params(&server.url("/"), &query).unwrap();
    let browser = Browser::start().await;
    browser.command("url", json!({"url": url.as_str()})).await;
    // Waits on the page's own "done" mark; the deadline is only a hang guard.
    let start = Instant::now();
    while browser.script("return document.body.dataset.done || null").await != json!("true") {
        assert!(start.elapsed() < PATIENCE, "the page did not finish both arms within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let dom = browser.script("return document.documentElement.outerHTML").await.as_str().unwrap().to_string();
    for arm in ["free", "mask"] {
        let start = dom.find(&format!("id=\"arm-{arm}\"")).unwrap_or_else(|| panic!("no {arm} column"));
        let column = &dom[start..];
        let column = &column[..column.find("</div></div>").unwrap_or(column.len())];
        assert!(column.contains("data-state=\"done\""), "{arm}: {column}");
        assert!(column.contains("tokens, finish:"), "{arm} shows no token count: {column}");
    }
    // The mask arm is guaranteed; its output is shown and reported compliant.
    let mask = &dom[dom.find("id=\"arm-mask\"").unwrap()..];
    assert!(mask.contains("data-compliant=\"true\""), "{mask}");
    let output_text = mask.split("<div class=\"out\">").nth(1).unwrap().split("</div>").next().unwrap();
    let date = regex::Regex::new(r"^2024-(0[1-9]|1[0-2])-[0-2][0-9]$").unwrap();
    assert!(date.is_match(output_text), "{output_text:?}");
}
