//! Writing instructions as formats (`response_format: {"type": "instructions"}`), end to end:
//! real server, real model, outputs scored by the IFEval-faithful checker, which is separate
//! from the automata that constrained them.

use crate::common;

use std::sync::OnceLock;

use common::*;
use conform::format::instructions::{check, parse_list};
use conform::testdata::data_dir;
use rand::{seq::SliceRandom, SeedableRng};
use serde_json::{json, Value};

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| Server::start(&["--parallel", "4", "--ctx-size", "1024"]))
}

fn with_instructions(prompt: &str, list: Value, max_tokens: u32) -> Value {
    chat_body(
        prompt,
        json!({"max_tokens": max_tokens, "seed": 1, "response_format": {"type": "instructions", "instructions": list}}),
    )
}

#[tokio::test]
async fn bad_instructions_are_400_naming_the_field() {
    let cases = [
        (
            json!([{"id": "punctuation:no_comma"}, {"id": "keywords:nope"}]),
            "response_format.instructions[1].id",
            "invalid_format",
        ),
        (
            json!([{"id": "length_constraints:number_words", "num_words": 5, "relation": "about"}]),
            "response_format.instructions[0].relation",
            "invalid_format",
        ),
        (
            json!([{"id": "change_case:english_lowercase"}, {"id": "change_case:english_capital"}]),
            "response_format.instructions",
            "contradictory_instructions",
        ),
    ];
    for (list, param, code) in cases {
        let (status, resp) = post(server(), "/v1/chat/completions", &with_instructions("Hi.", list, 20)).await;
        assert_eq!(status, 400, "{resp}");
        assert_eq!(resp["error"]["param"], param, "{resp}");
        assert_eq!(resp["error"]["code"], code, "{resp}");
    }
    // A minimum that cannot fit the budget is refused up front, saying what it needs.
    let list = json!([{"id": "length_constraints:number_words", "num_words": 200, "relation": "at least"}]);
    let (status, resp) = post(server(), "/v1/chat/completions", &with_instructions("Hi.", list, 20)).await;
    assert_eq!(status, 400, "{resp}");
    assert!(resp["error"]["message"].as_str().unwrap().contains("tokens"), "{resp}");
}

#[tokio::test]
async fn instructions_combine_with_a_regex() {
    let list = json!([{"id": "punctuation:no_comma"}, {"id": "startend:end_checker", "end_phrase": "Done."}]);
    let mut body = with_instructions("List three colors, separated by commas.", list.clone(), 40);
    body["guided_regex"] = json!("[A-Za-z ,.]+");
    let (status, resp) = post(server(), "/v1/chat/completions", &body).await;
    assert_eq!(status, 200, "{resp}");
    let choice = &resp["choices"][0];
    assert_eq!(choice["finish_reason"], "stop", "{resp}");
    let text = choice["message"]["content"].as_str().unwrap();
    let instructions = parse_list(&list).unwrap();
    assert!(check::follows_all(&instructions, text), "{text:?}");
    assert!(text.bytes().all(|b| b.is_ascii_alphabetic() || b" ,.".contains(&b)), "{text:?}");
}

/// Counts small enough that a short generation can meet them (tests keep outputs short).
fn fits_a_short_answer(kwargs: &[Value]) -> bool {
    kwargs.iter().all(|k| {
        let small = |name: &str, max: u64| k.get(name).and_then(Value::as_u64).is_none_or(|n| n <= max);
        small("num_words", 40)
            && small("num_sentences", 4)
            && small("num_paragraphs", 3)
            && small("num_highlights", 3)
            && small("num_placeholders", 3)
            && small("num_bullets", 4)
            && small("num_sections", 3)
            && small("capital_frequency", 6)
            && small("let_frequency", 8)
            && small("frequency", 3)
            && k.get("prompt_to_repeat").and_then(Value::as_str).is_none_or(|p| p.len() < 200)
    })
}

#[tokio::test]
async fn seeded_dev_prompts_follow_every_instruction() {
    let text = std::fs::read_to_string(data_dir().join("ifeval/input_data_dev.jsonl")).unwrap();
    let mut items: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|item| fits_a_short_answer(item["kwargs"].as_array().unwrap()))
        .collect();
    items.shuffle(&mut rand::rngs::StdRng::seed_from_u64(11));
    let mut checked = 0;
    for item in items.iter().take(4) {
        let list: Vec<Value> = item["instruction_id_list"]
            .as_array()
            .unwrap()
            .iter()
            .zip(item["kwargs"].as_array().unwrap())
            .map(|(id, kwargs)| {
                let mut entry = kwargs.as_object().cloned().unwrap_or_default();
                entry.retain(|_, v| !v.is_null());
                entry.insert("id".into(), id.clone());
                Value::Object(entry)
            })
            .collect();
        let prompt = item["prompt"].as_str().unwrap();
        let (status, resp) = post(server(), "/v1/chat/completions", &with_instructions(prompt, json!(list), 150)).await;
        assert_eq!(status, 200, "{prompt}: {resp}");
        let choice = &resp["choices"][0];
        assert_eq!(choice["finish_reason"], "stop", "{resp}");
        assert_eq!(choice["format"]["compliant"], true, "{resp}");
        let out = choice["message"]["content"].as_str().unwrap();
        let instructions = parse_list(&json!(list)).unwrap();
        for i in &instructions {
            assert!(check::follows(i, out), "key {}: {i:?} not followed by {out:?}", item["key"]);
        }
        checked += 1;
    }
    assert_eq!(checked, 4);
}
