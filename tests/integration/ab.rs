//! `conform ab` end to end on the real model: against a running server (`--server`, with an API
//! key) and with its own in-process server, checking the report files. Generations are kept
//! short; the scoring itself is unit-tested in `src/ab`.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::Server;
use serde_json::Value;

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("conform-ab-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn ab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_conform")).arg("ab").args(args).output().expect("run conform ab")
}

fn read_report(dir: &Path) -> (Value, String) {
    let json = std::fs::read_to_string(dir.join("report.json")).expect("report.json");
    let html = std::fs::read_to_string(dir.join("report.html")).expect("report.html");
    (serde_json::from_str(&json).unwrap(), html)
}

fn check_report_shape(report: &Value, arms: &[&str], n: usize) {
    assert_eq!(report["n"], n);
    assert!(report["model"].as_str().is_some_and(|m| !m.is_empty()));
    for arm in arms {
        let stats = &report["arms"][arm];
        assert_eq!(stats["n"], n, "{arm}");
        for key in ["compliance", "accuracy_se", "mean_tokens", "tokens_per_s"] {
            assert!(stats[key].is_number(), "{arm}.{key}: {stats}");
        }
        assert!(stats["finish_reasons"].is_object());
        assert!(stats["tokens_per_s"].as_f64().unwrap() > 0.0);
    }
    let items = report["items"].as_array().unwrap();
    assert_eq!(items.len(), n * arms.len());
    for item in items {
        for key in ["id", "arm", "output", "compliant", "correct", "tokens", "finish_reason", "latency_s"] {
            assert!(item.get(key).is_some(), "{key}: {item}");
        }
    }
}

fn check_html(html: &str, arms: usize) {
    assert!(html.starts_with("<!doctype html>"));
    let charts: Vec<&str> = html.split("<svg").skip(1).collect();
    // Accuracy, compliance, the share of steps the format overrode (the mask arm reports its
    // cost), and one histogram per arm.
    assert_eq!(charts.len(), 3 + arms, "three bar charts and one histogram per arm");
    assert!(html.contains("Steps the format overrode"));
    assert!(charts.iter().all(|svg| svg.contains("<rect")), "every chart draws bars");
}

#[tokio::test]
async fn gsm8k_against_a_running_server() {
    // One thread: on a shared 2-core machine, llama.cpp's spinning thread pool slows to a crawl when
    // another process competes for the cores.
    // One slot and no queue: with two requests in flight one is refused (429) and must be retried.
    // `conform ab` sends a refused request again until a deadline of an hour, so however slow the
    // request holding the slot is, the retry is never recorded as the item's error.
    let server = Server::start(&[
        "--parallel",
        "1",
        "--max-queue",
        "0",
        "--ctx-size",
        "1024",
        "--threads",
        "1",
        "--api-key",
        "ab-key",
    ]);
    let data = conform::testdata::data_dir().join("gsm8k/test_dev.jsonl");
    let dir = out_dir("gsm8k");
    let args: Vec<String> = [
        "--suite",
        "gsm8k",
        "--data",
        data.to_str().unwrap(),
        "--arms",
        "free,mask",
        "--limit",
        "2",
        "--max-tokens",
        "64",
        "--concurrency",
        "2",
        "--server",
        server.base.as_str(),
        "--api-key",
        "ab-key",
        "--out",
        dir.to_str().unwrap(),
    ]
    .map(String::from)
    .into();
    let output =
        tokio::task::spawn_blocking(move || ab(&args.iter().map(String::as_str).collect::<Vec<_>>())).await.unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    // The server's own counters: the two requests in flight against one slot and no queue met a
    // 429 (the first is admitted at once, the second is sent before the first can have generated
    // its answer), and every one of the 2 items x 2 arms was answered exactly once.
    let chat = |status: &str| format!("conform_requests_total{{route=\"/v1/chat/completions\",status=\"{status}\"}}");
    let refused = common::metric(&server, &chat("429")).await;
    assert!(refused >= 1.0, "no request was refused, so none was retried");
    eprintln!("{refused} refusals (429), each retried");
    assert_eq!(common::metric(&server, &chat("200")).await, 4.0, "{refused} refusals");
    let (report, html) = read_report(&dir);
    check_report_shape(&report, &["free", "mask"], 2);
    assert_eq!(report["suite"], "gsm8k");
    assert_eq!(report["model"], common::MODEL, "the model comes from the server's /v1/models");
    assert_eq!(report["arms"]["mask"]["compliance"], 1.0, "{report}");
    for arm in ["free", "mask"] {
        assert_eq!(report["arms"][arm]["errors"], 0, "a 429 is retried, not recorded");
    }
    for item in report["items"].as_array().unwrap().iter().filter(|i| i["arm"] == "mask") {
        let answer: Value = serde_json::from_str(item["output"].as_str().unwrap()).unwrap();
        assert!(answer["answer"].is_i64(), "{item}");
        let cost = &item["format_cost"];
        assert!(cost["sampled_steps"].as_u64().unwrap() > 0 && cost["nats"].as_f64().unwrap() >= 0.0, "{item}");
    }
    // The format's cost per arm: the mask arm's, and none for free decoding.
    assert!(report["arms"]["mask"]["format_cost"]["nats_per_step"].is_f64(), "{}", report["arms"]);
    assert!(report["arms"]["free"].get("format_cost").is_none());
    check_html(&html, 2);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("mask") && stdout.contains("100.0%"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn custom_suite_in_process() {
    let dir = out_dir("custom");
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("tasks.jsonl");
    std::fs::write(
        &data,
        [
            r#"{"id": "capital", "prompt": "What is the capital of France?", "format": {"choice": ["Paris", "London", "Rome"]}, "expected": "Paris"}"#,
            r#"{"id": "year", "prompt": "In which year did Apollo 11 land on the Moon?", "format": {"regex": "[0-9]{4}"}, "expected": "1969"}"#,
            r#"{"prompt": "Give a small prime number.", "format": {"json_schema": {"type": "object", "properties": {"prime": {"type": "integer"}}, "required": ["prime"]}}}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let out = dir.join("out");
    let output = ab(&[
        "--suite",
        "custom",
        "--data",
        data.to_str().unwrap(),
        "--arms",
        "mask,free",
        "--max-tokens",
        "24",
        "--prompt",
        "task",
        "--ctx-size",
        "512",
        "--parallel",
        "2",
        "--threads",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let (report, html) = read_report(&out);
    check_report_shape(&report, &["mask", "free"], 3);
    assert_eq!(report["suite"], "custom");
    let mask = &report["arms"]["mask"];
    assert_eq!(mask["compliance"], 1.0, "{report}");
    assert_eq!(mask["scored"], 2, "the item without `expected` is not scored");
    let items = report["items"].as_array().unwrap();
    assert_eq!(items[0]["id"], "capital");
    assert_eq!(items[0]["arm"], "mask", "items follow task order, then arm order");
    assert_eq!(items[0]["output"], "Paris");
    assert_eq!(items[0]["correct"], true);
    assert_eq!(items[4]["id"], "item-3");
    assert_eq!(items[4]["correct"], Value::Null);
    check_html(&html, 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_arms_and_data_are_refused_before_loading() {
    let output =
        ab(&["--suite", "gsm8k", "--arms", "lookahead,lookahead", "--data", "x.jsonl", "--out", "/nonexistent"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("listed twice"), "{stderr}");
    // A BFCL category with several calls per item fails on reading, before any model loads.
    let data = conform::testdata::data_dir().join("bfcl/parallel.jsonl");
    // The model path does not exist: had it been opened first, the error would name it instead.
    let output = ab(&[
        "--suite",
        "bfcl",
        "--data",
        data.to_str().unwrap(),
        "--out",
        "/nonexistent",
        "--model",
        "/nonexistent.gguf",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("one call per question"), "{stderr}");
    assert!(!stderr.contains("nonexistent.gguf"), "the model was looked for before the data was read: {stderr}");
}

/// BFCL through the tools API: a parallel item (two calls expected) and an irrelevance item (no
/// call expected). The mask arm's calls all parse and validate, whatever the model does.
#[test]
fn bfcl_tools_suite_counts_calls_per_arm() {
    let dir = out_dir("bfcl-tools");
    std::fs::create_dir_all(&dir).unwrap();
    let bfcl = conform::testdata::data_dir().join("bfcl");
    let first = |category: &str| {
        std::fs::read_to_string(bfcl.join(format!("{category}.jsonl"))).unwrap().lines().next().unwrap().to_string()
    };
    let data = dir.join("bfcl.jsonl");
    std::fs::write(&data, [first("parallel"), first("irrelevance")].join("\n")).unwrap();
    let output = ab(&[
        "--suite",
        "bfcl-tools",
        "--data",
        data.to_str().unwrap(),
        "--arms",
        "free,mask",
        "--max-tokens",
        "120",
        "--ctx-size",
        "2048",
        "--threads",
        "1",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let (report, html) = read_report(&dir);
    check_report_shape(&report, &["free", "mask"], 2);
    let mask = &report["arms"]["mask"];
    assert_eq!(mask["compliance"], 1.0, "{report}");
    let calls = &mask["tool_calls"];
    assert!(calls["made"].as_u64().unwrap() >= 1, "the parallel item requires a call: {calls}");
    assert_eq!((calls["parse"].as_f64(), calls["valid"].as_f64()), (Some(1.0), Some(1.0)), "{calls}");
    assert!(report["arms"]["free"]["tool_calls"]["made"].is_u64());
    for item in report["items"].as_array().unwrap() {
        let transcript: Value = serde_json::from_str(item["output"].as_str().unwrap()).unwrap();
        assert!(transcript["tool_calls"].is_array(), "{item}");
        assert_eq!(item["tool_calls"].as_array().unwrap().len(), 3, "{item}");
    }
    check_html(&html, 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ifeval_suite_in_process_scores_each_instruction() {
    let dir = out_dir("ifeval");
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("ifeval.jsonl");
    let lines = [
        r#"{"key": 1, "prompt": "Describe a lake in two sentences. Do not use any commas.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}"#,
        r#"{"key": 2, "prompt": "Say hello in lowercase letters only and end with the phrase 'bye now'.", "instruction_id_list": ["change_case:english_lowercase", "startend:end_checker"], "kwargs": [{}, {"end_phrase": "bye now"}]}"#,
    ];
    std::fs::write(&data, lines.join("\n")).unwrap();
    let output = ab(&[
        "--suite",
        "ifeval",
        "--data",
        data.to_str().unwrap(),
        "--arms",
        "free,mask",
        "--max-tokens",
        "48",
        "--ctx-size",
        "1024",
        "--threads",
        "1",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let (report, html) = read_report(&dir);
    check_report_shape(&report, &["free", "mask"], 2);
    let mask = &report["arms"]["mask"];
    assert_eq!(mask["compliance"], 1.0, "{report}");
    assert_eq!(mask["accuracy"], 1.0, "prompt-level strict accuracy: {report}");
    let level = &mask["instruction_level"];
    assert_eq!(level["n"], 3, "{level}");
    assert_eq!(level["accuracy"], 1.0, "{level}");
    assert_eq!(level["by_id"]["startend:end_checker"], serde_json::json!([1, 1]));
    assert!(report["arms"]["free"]["instruction_level"]["n"] == 3);
    let items = report["items"].as_array().unwrap();
    assert!(items.iter().all(|i| i["instructions"].is_array()), "every item lists its instructions");
    check_html(&html, 2);
    assert!(html.contains("<h2>Instructions followed</h2>"), "the page shows the per-instruction table");
    assert!(html.contains("<td class=\"l\">startend:end_checker</td>"));
    let _ = std::fs::remove_dir_all(&dir);
}
