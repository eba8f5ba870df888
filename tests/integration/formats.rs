//! Constrained generation end to end: real server, real model, formats through the OpenAI API.

use crate::common;

use conform::testdata::data_dir;
use std::sync::OnceLock;

use common::*;
use futures::StreamExt;
use serde_json::{json, Value};

/// The server's slots; a batch of requests keeps at most this many in flight.
const SLOTS: usize = 4;

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        Server::start(&[
            "--parallel",
            &SLOTS.to_string(),
            "--ctx-size",
            "2048",
            "--max-queue",
            "512",
            "--queue-timeout",
            "3600",
        ])
    })
}

/// Runs the requests `SLOTS` at a time; answers come in the order they finish. Sending them all
/// at once would put dozens of 200-token generations in the queue ahead of every later request
/// (this test's and the other tests' sharing the server), and each client timeout would cover
/// the whole queue rather than one request's own work.
async fn in_slots<T>(requests: impl IntoIterator<Item = impl std::future::Future<Output = T>>) -> Vec<T> {
    futures::stream::iter(requests).buffer_unordered(SLOTS).collect().await
}

fn choice(resp: &Value) -> &Value {
    &resp["choices"][0]
}

fn text(resp: &Value) -> &str {
    choice(resp)["message"]["content"].as_str().unwrap_or_else(|| panic!("no content: {resp}"))
}

fn assert_valid(schema: &Value, output: &str, context: &str) {
    let instance: Value =
        serde_json::from_str(output).unwrap_or_else(|e| panic!("{context}: not JSON ({e}): {output}"));
    let validator = jsonschema::options().should_validate_formats(true).build(schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(&instance).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{context}: {output} violates the schema: {errors:?}");
}

#[tokio::test]
async fn json_schema_output_is_valid_complete_and_reported() {
    let schema = json!({"type": "object", "properties": {
        "name": {"type": "string"}, "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "email": {"type": "string", "format": "email"}}, "required": ["name", "age", "email"]});
    let body = chat_body(
        "Invent a person.",
        json!({"max_tokens": 80,
        "response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": true}}}),
    );
    let (status, resp) = post(server(), "/v1/chat/completions", &body).await;
    assert_eq!(status, 200, "{resp}");
    assert_valid(&schema, text(&resp), "person");
    assert_eq!(choice(&resp)["finish_reason"], "stop");
    let format = &choice(&resp)["format"];
    assert_eq!(format["mode"], "mask");
    assert_eq!(format["compliant"], true);
    // `{"name":"` is forced: fast-forward appends it without sampling.
    assert!(format["forced_tokens"].as_u64().unwrap() >= 2, "{format}");
}

#[tokio::test]
async fn a_tight_budget_still_closes_the_output() {
    let schema = json!({"type": "object", "properties": {"story": {"type": "string"}}, "required": ["story"]});
    let body = chat_body("Write a long story about a dragon.", json!({"max_tokens": 15, "guided_json": schema}));
    let (status, resp) = post(server(), "/v1/chat/completions", &body).await;
    assert_eq!(status, 200, "{resp}");
    assert_valid(&schema, text(&resp), "story");
    assert_eq!(choice(&resp)["finish_reason"], "stop");
    assert!(resp["usage"]["completion_tokens"].as_u64().unwrap() <= 15);
}

/// A recursive schema compiles to a stack automaton (no unrolling): sampled outputs validate
/// and close, also when the budget cuts into the tree.
#[tokio::test]
async fn recursive_schema_outputs_validate_and_close() {
    let schema = json!({"$defs": {"dir": {"type": "object", "properties": {
        "name": {"type": "string", "maxLength": 20},
        "children": {"type": "array", "items": {"$ref": "#/$defs/dir"}, "maxItems": 3}},
        "required": ["name", "children"]}}, "$ref": "#/$defs/dir"});
    // Flexible whitespace lets the model indent as it likes to, so it nests (compact JSON
    // makes this model close every `children` at once).
    let prompt =
        "Give the directory tree of a web project as JSON. Each node is {\"name\": ..., \"children\": [...]}. \
        The root \"app\" contains \"src\" (which contains \"components\" and \"utils\") and \"tests\".";
    for max_tokens in [200, 40] {
        let body = chat_body(
            prompt,
            json!({"max_tokens": max_tokens, "n": 2, "temperature": 0.7, "seed": 7,
            "guided_json": schema, "format_options": {"whitespace": 16}}),
        );
        let (status, resp) = post(server(), "/v1/chat/completions", &body).await;
        assert_eq!(status, 200, "{resp}");
        for c in resp["choices"].as_array().unwrap() {
            let out = c["message"]["content"].as_str().unwrap();
            assert_valid(&schema, out, &format!("tree, max_tokens {max_tokens}"));
            assert_eq!(c["finish_reason"], "stop", "{out}");
            assert_eq!(c["format"]["compliant"], true);
        }
    }
}

#[tokio::test]
async fn regex_and_choice_formats() {
    let body = chat_body(
        "What is the date of the first moon landing?",
        json!({"guided_regex": r"\d{4}-\d{2}-\d{2}", "max_tokens": 20}),
    );
    let (status, resp) = post(server(), "/v1/chat/completions", &body).await;
    assert_eq!(status, 200, "{resp}");
    let out = text(&resp);
    assert!(out.len() == 10 && out.as_bytes()[4] == b'-' && out.as_bytes()[7] == b'-', "{out}");

    let body = chat_body("Is Paris in France?", json!({"guided_choice": ["yes", "no"]}));
    let (_, resp) = post(server(), "/v1/chat/completions", &body).await;
    assert!(["yes", "no"].contains(&text(&resp)), "{resp}");
    assert_eq!(choice(&resp)["finish_reason"], "stop");

    let body = json!({"model": MODEL, "prompt": "The colour of the sky is", "max_tokens": 10,
        "temperature": 0, "guided_choice": [" blue", " green"]});
    let (_, resp) = post(server(), "/v1/completions", &body).await;
    assert_eq!(choice(&resp)["text"], " blue");
}

#[tokio::test]
async fn json_object_mode_streams_and_works_with_n() {
    let body = chat_body(
        "Describe a car as JSON.",
        json!({"response_format": {"type": "json_object"},
        "max_tokens": 40, "n": 2, "temperature": 0.8, "seed": 3, "stream": true}),
    );
    let resp = client().post(server().url("/v1/chat/completions")).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let payloads = sse_payloads(resp).await;
    assert_eq!(payloads.last().unwrap(), "[DONE]");
    let mut texts = vec![String::new(); 2];
    let mut formats = vec![Value::Null; 2];
    for p in &payloads[..payloads.len() - 1] {
        let chunk: Value = serde_json::from_str(p).unwrap();
        let c = &chunk["choices"][0];
        let i = c["index"].as_u64().unwrap() as usize;
        if let Some(t) = c["delta"]["content"].as_str() {
            texts[i].push_str(t);
        }
        if !c["format"].is_null() {
            formats[i] = c["format"].clone();
        }
    }
    for (t, f) in texts.iter().zip(&formats) {
        let v: Value = serde_json::from_str(t).unwrap_or_else(|e| panic!("{e}: {t}"));
        assert!(v.is_object());
        assert_eq!(f["compliant"], true, "{f}");
    }
}

#[tokio::test]
async fn free_mode_decodes_unconstrained_and_reports_compliance() {
    let body = chat_body("Say hello.", json!({"guided_regex": "[0-9]+", "format_mode": "free", "max_tokens": 8}));
    let (status, resp) = post(server(), "/v1/chat/completions", &body).await;
    assert_eq!(status, 200, "{resp}");
    let format = &choice(&resp)["format"];
    assert_eq!(format["mode"], "free");
    let digits_only = !text(&resp).is_empty() && text(&resp).bytes().all(|b| b.is_ascii_digit());
    assert_eq!(format["compliant"], digits_only, "{resp}");
    assert_eq!(format["compliant"], false, "a greeting is not a number: {resp}");
}

#[tokio::test]
async fn bad_formats_are_400s_with_reasons() {
    let chat = "/v1/chat/completions";
    let cases = [
        (json!({"guided_regex": "(ab"}), "guided_regex", "invalid_format"),
        (json!({"guided_choice": []}), "guided_choice", "invalid_format"),
        (
            json!({"guided_json": {"type": "object", "properties": {"a": {"type": "string", "maxLenght": 3}}}, "format_options": {"unknown_keywords": "error"}}),
            "guided_json",
            "unsupported_schema_keyword",
        ),
        (
            json!({"guided_json": {"type": "object", "properties": {"a": {"$dynamicRef": "#node"}}}}),
            "guided_json",
            "unsupported_schema_keyword",
        ),
        (json!({"guided_regex": "(a|b)*a(a|b){40}"}), "guided_regex", "format_too_complex"),
        (json!({"guided_grammar": "root ::= \"a\" item"}), "guided_grammar", "invalid_format"),
        (
            json!({"response_format": {"type": "grammar", "grammar": "root ::= e\ne ::= e \"+\" | \"1\""}}),
            "response_format.grammar",
            "invalid_format",
        ),
        (json!({"response_format": {"type": "grammar"}}), "response_format.grammar", "invalid_format"),
    ];
    for (extra, param, code) in cases {
        let (status, resp) = post(server(), chat, &chat_body("x", extra.clone())).await;
        assert_eq!(status, 400, "{extra} -> {resp}");
        assert_eq!(resp["error"]["param"], param, "{resp}");
        assert_eq!(resp["error"]["code"], code, "{resp}");
    }
    let (_, resp) = post(server(), chat, &chat_body("x", json!({"guided_regex": "(ab"}))).await;
    assert!(resp["error"]["message"].as_str().unwrap().contains("at byte 0"), "{resp}");
    let (_, resp) = post(server(), chat, &chat_body("x", json!({"guided_json": {"properties": {"a": {"maxLenght": 3}}}, "format_options": {"unknown_keywords": "error"}}))).await;
    let message = resp["error"]["message"].as_str().unwrap();
    assert!(message.contains("maxLenght") && message.contains("#/properties/a/maxLenght"), "{message}");

    for (extra, param) in [
        (json!({"guided_regex": "a", "guided_choice": ["a"]}), "guided_choice"),
        (json!({"response_format": {"type": "xml"}}), "response_format.type"),
        (
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}),
            "response_format.json_schema.schema",
        ),
        (json!({"guided_regex": "a", "format_mode": "fast"}), "format_mode"),
        (json!({"format_mode": "free"}), "format_mode"),
        (json!({"guided_json": "{not json"}), "guided_json"),
    ] {
        let (status, resp) = post(server(), chat, &chat_body("x", extra.clone())).await;
        assert_eq!(status, 400, "{extra} -> {resp}");
        assert_eq!(resp["error"]["param"], param, "{resp}");
    }
}

#[tokio::test]
async fn a_format_that_cannot_fit_max_tokens_is_refused_up_front() {
    // Qwen spells digits one token each, so fifty digits need fifty tokens.
    let body = chat_body("x", json!({"guided_regex": "[0-9]{50}", "max_tokens": 10}));
    let (status, resp) = post(server(), "/v1/chat/completions", &body).await;
    assert_eq!(status, 400, "{resp}");
    assert_eq!(resp["error"]["code"], "format_exceeds_max_tokens");
    assert!(resp["error"]["message"].as_str().unwrap().contains("50"), "{resp}");
}

#[tokio::test]
async fn lenient_mode_lists_what_it_ignored() {
    let schema = json!({"type": "object", "properties": {"a": {"type": "integer", "javaType": "Long"}, "b": {"type": "string", "format": "url"}}, "required": ["a"]});
    let body = chat_body(
        "Give a number.",
        json!({"guided_json": schema, "format_options": {"lenient": true}, "max_tokens": 12}),
    );
    let (status, resp) = post(server(), "/v1/chat/completions", &body).await;
    assert_eq!(status, 200, "{resp}");
    let ignored = choice(&resp)["format"]["ignored"].as_array().unwrap();
    assert!(ignored.iter().any(|i| i.as_str().unwrap().contains("javaType")), "{ignored:?}");
    assert_valid(&schema, text(&resp), "lenient");

    // By default keywords of no JSON Schema draft are skipped as annotations and listed; every
    // real constraint is kept. `unknown_keywords: "error"` refuses them.
    for options in [json!({}), json!({"format_options": {"unknown_keywords": "ignore"}})] {
        let mut body = chat_body("Give a number.", json!({"guided_json": schema, "max_tokens": 12}));
        body.as_object_mut().unwrap().extend(options.as_object().unwrap().clone());
        let (status, resp) = post(server(), "/v1/chat/completions", &body).await;
        assert_eq!(status, 200, "{resp}");
        let ignored = choice(&resp)["format"]["ignored"].as_array().unwrap();
        assert!(ignored.iter().any(|i| i.as_str().unwrap().contains("javaType")), "{ignored:?}");
        assert!(
            ignored.iter().any(|i| i.as_str().unwrap().contains("format `url`")),
            "a format of no draft is an annotation too: {ignored:?}"
        );
        assert_valid(&schema, text(&resp), "unknown keywords ignored");
    }
    let body = chat_body("x", json!({"guided_json": schema, "format_options": {"unknown_keywords": "error"}}));
    let (status, resp) = post(server(), "/v1/chat/completions", &body).await;
    assert_eq!((status, resp["error"]["code"].as_str()), (400, Some("unsupported_schema_keyword")), "{resp}");
    let draft_keyword = json!({"type": "object", "not": {"type": "object", "required": ["a"]}, "properties": {"a": {"type": "integer", "javaType": "Long"}}, "dependentSchemas": {"a": {"$dynamicRef": "#x"}}});
    let body = chat_body("x", json!({"guided_json": draft_keyword}));
    let (status, resp) = post(server(), "/v1/chat/completions", &body).await;
    assert_eq!(status, 400, "an unsupported draft keyword still fails: {resp}");
    let body = chat_body("x", json!({"guided_json": schema, "format_options": {"unknown_keywords": "maybe"}}));
    let (status, resp) = post(server(), "/v1/chat/completions", &body).await;
    assert_eq!(status, 400, "{resp}");
    assert_eq!(resp["error"]["param"], "format_options.unknown_keywords", "{resp}");
}

/// A fixed, seeded sample of JSONSchemaBench dev schemas from every subset that has compiling
/// schemas: each output parses, validates and ends with `stop`, also with a budget that cuts
/// the model's natural answer short.
#[tokio::test]
async fn jsonschemabench_sample_validates_end_to_end() {
    let limits = conform::format::Limits::default();
    let mut sample = Vec::new();
    let mut files: Vec<_> =
        std::fs::read_dir(data_dir().join("jsonschemabench")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let mut taken = 0;
        // Every 7th line is a fixed, spread-out sample; keep the first few that compile.
        for line in text.lines().step_by(7) {
            let row: Value = serde_json::from_str(line).unwrap();
            let schema = row["schema"].clone();
            let options = conform::format::SchemaOptions::default();
            if conform::format::compile_schema(&schema, &options, &limits).is_ok()
                && jsonschema::options().should_validate_formats(true).build(&schema).is_ok()
            {
                sample.push((row["id"].as_str().unwrap().to_string(), schema));
                taken += 1;
                if taken == 4 {
                    break;
                }
            }
        }
    }
    assert!(sample.len() >= 50, "only {} schemas sampled", sample.len());

    let run = |id: String, schema: Value, max_tokens: u32| async move {
        let body =
            chat_body("Produce one realistic JSON instance.", json!({"guided_json": schema, "max_tokens": max_tokens}));
        let (status, resp) = post(server(), "/v1/chat/completions", &body).await;
        (id, schema, status, resp)
    };
    let natural = in_slots(sample.iter().map(|(id, s)| run(id.clone(), s.clone(), 200))).await;
    let mut tight = Vec::new();
    for (id, schema, status, resp) in &natural {
        if *status == 400 && resp["error"]["code"] == "format_exceeds_max_tokens" {
            continue; // the shortest instance of this schema is longer than 200 tokens
        }
        assert_eq!(*status, 200, "{id}: {resp}");
        assert_eq!(choice(resp)["finish_reason"], "stop", "{id}: {resp}");
        assert_valid(schema, text(resp), id);
        let used = resp["usage"]["completion_tokens"].as_u64().unwrap() as u32;
        if used >= 8 {
            tight.push((id.clone(), schema.clone(), used / 2));
        }
    }
    assert!(tight.len() >= 20, "too few schemas with room to cut: {}", tight.len());
    let cut = in_slots(tight.into_iter().map(|(id, s, m)| run(id, s, m))).await;
    let mut checked = 0;
    for (id, schema, status, resp) in &cut {
        if *status == 400 {
            // Refused up front: the message says how many tokens the format needs.
            assert_eq!(resp["error"]["code"], "format_exceeds_max_tokens", "{id}: {resp}");
            continue;
        }
        assert_eq!(*status, 200, "{id}: {resp}");
        assert_eq!(choice(resp)["finish_reason"], "stop", "{id}: {resp}");
        assert_valid(schema, text(resp), &format!("{id} (tight)"));
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} tight runs");
    eprintln!("{} schemas end to end, {checked} also under a halved budget", natural.len());
}

/// `format_options.whitespace: "natural"` lets the model lay JSON out as it does unprompted
/// (newlines and indentation): the output still validates, and the format's cost to the model,
/// reported on the choice, falls against compact JSON's.
#[tokio::test]
async fn natural_whitespace_costs_the_model_less_than_compact() {
    let schema = json!({"type": "object", "required": ["name", "age", "hobbies"], "properties": {
        "name": {"type": "string"}, "age": {"type": "integer"}, "hobbies": {"type": "array", "items": {"type": "string"}}}});
    let mut costs = Vec::new();
    for whitespace in ["compact", "natural"] {
        let body = chat_body(
            "Give me a person named Ann aged 31 with her hobbies as JSON.",
            json!({"max_tokens": 80,
            "response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": schema}},
            "format_options": {"whitespace": whitespace}}),
        );
        let (status, resp) = post(server(), "/v1/chat/completions", &body).await;
        assert_eq!(status, 200, "{resp}");
        let out = text(&resp);
        assert_valid(&schema, out, whitespace);
        assert_eq!(out.contains('\n'), whitespace == "natural", "{out}");
        let format = &choice(&resp)["format"];
        let steps = format["sampled_steps"].as_u64().unwrap();
        assert!(steps > 0 && format["overridden_steps"].as_u64().unwrap() <= steps, "{format}");
        costs.push(format["cost_nats"].as_f64().unwrap());
    }
    assert!(costs[0] >= 0.0 && costs[1] < costs[0], "compact {} nats, natural {} nats", costs[0], costs[1]);
    let body = chat_body("x", json!({"guided_json": schema, "format_options": {"whitespace": "pretty"}}));
    let (status, resp) = post(server(), "/v1/chat/completions", &body).await;
    assert_eq!((status, resp["error"]["param"].as_str()), (400, Some("format_options.whitespace")), "{resp}");
}
