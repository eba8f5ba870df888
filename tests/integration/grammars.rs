//! The shipped GBNF grammars (`grammars/`) end to end: real server, real model, and every output
//! checked by an independent parser written here (not by the automaton that produced it).

use crate::common;

use std::sync::OnceLock;

use common::*;
use serde_json::{json, Value};

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| Server::start(&["--parallel", "4", "--ctx-size", "1024"]))
}

fn grammar(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("grammars").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Generates with the grammar (both API spellings alternate) and returns the output text.
async fn generate(file: &str, prompt: &str, max_tokens: u32, via_response_format: bool) -> String {
    let text = grammar(file);
    let extra = if via_response_format {
        json!({"max_tokens": max_tokens, "response_format": {"type": "grammar", "grammar": text}})
    } else {
        json!({"max_tokens": max_tokens, "guided_grammar": text})
    };
    let (status, resp) = post(server(), "/v1/chat/completions", &chat_body(prompt, extra)).await;
    assert_eq!(status, 200, "{file}: {resp}");
    let choice = &resp["choices"][0];
    assert_eq!(choice["finish_reason"], "stop", "{file}: the output must close within max_tokens: {resp}");
    assert_eq!(choice["format"]["compliant"], true, "{file}: {resp}");
    choice["message"]["content"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn json_grammar_outputs_parse() {
    let out = generate("json.gbnf", "Describe a cat as a JSON object.", 60, true).await;
    serde_json::from_str::<Value>(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
}

#[tokio::test]
async fn string_array_grammar_outputs_arrays_of_strings() {
    let out = generate("string_array.gbnf", "List three fruits as a JSON array.", 40, false).await;
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    assert!(v.as_array().is_some_and(|a| a.iter().all(Value::is_string)), "{out}");
}

/// A recursive-descent evaluator for `+ - * /` with parentheses (integers, checked division).
fn eval(s: &[u8]) -> Option<i128> {
    fn expr(s: &[u8], i: &mut usize) -> Option<i128> {
        let mut v = term(s, i)?;
        while let Some(&op @ (b'+' | b'-')) = s.get(*i) {
            *i += 1;
            let r = term(s, i)?;
            v = if op == b'+' { v.checked_add(r)? } else { v.checked_sub(r)? };
        }
        Some(v)
    }
    fn term(s: &[u8], i: &mut usize) -> Option<i128> {
        let mut v = factor(s, i)?;
        while let Some(&op @ (b'*' | b'/')) = s.get(*i) {
            *i += 1;
            let r = factor(s, i)?;
            // Division by zero still parses; the grammar is about syntax.
            v = if op == b'*' { v.checked_mul(r)? } else { v.checked_div(r).unwrap_or(0) };
        }
        Some(v)
    }
    fn factor(s: &[u8], i: &mut usize) -> Option<i128> {
        if s.get(*i) == Some(&b'(') {
            *i += 1;
            let v = expr(s, i)?;
            (s.get(*i) == Some(&b')')).then(|| *i += 1)?;
            return Some(v);
        }
        let start = *i;
        while s.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        std::str::from_utf8(&s[start..*i]).ok()?.parse().ok()
    }
    let mut i = 0;
    let v = expr(s, &mut i)?;
    (i == s.len()).then_some(v)
}

#[tokio::test]
async fn arithmetic_grammar_outputs_evaluate() {
    assert_eq!(eval(b"1+2*(3-4)/1"), Some(-1));
    assert_eq!(eval(b"1+"), None);
    let out = generate("arithmetic.gbnf", "Write an arithmetic expression that equals 10.", 20, false).await;
    assert!(eval(out.as_bytes()).is_some(), "does not parse as arithmetic: {out}");
}

#[tokio::test]
async fn iso8601_grammar_outputs_real_timestamps() {
    let out = generate("iso8601_list.gbnf", "Give two timestamps from 2024.", 40, true).await;
    for stamp in out.split(", ") {
        let b = stamp.as_bytes();
        assert_eq!(b.len(), 20, "{stamp}");
        let num = |r: std::ops::Range<usize>| stamp[r].parse::<u32>().unwrap_or_else(|_| panic!("{stamp}"));
        assert!((b[4], b[7], b[10], b[13], b[16], b[19]) == (b'-', b'-', b'T', b':', b':', b'Z'), "{stamp}");
        assert!((1..=12).contains(&num(5..7)) && (1..=31).contains(&num(8..10)), "{stamp}");
        assert!(num(11..13) < 24 && num(14..16) < 60 && num(17..19) < 60, "{stamp}");
    }
}

#[tokio::test]
async fn chess_grammar_outputs_numbered_san_moves() {
    let out = generate("chess_moves.gbnf", "Write the first moves of a chess game.", 30, false).await;
    let is_square = |s: &[u8]| s.len() == 2 && (b'a'..=b'h').contains(&s[0]) && (b'1'..=b'8').contains(&s[1]);
    let is_move = |m: &str| {
        let m = m.trim_end_matches(['+', '#']);
        if m == "O-O" || m == "O-O-O" {
            return true;
        }
        let m = m.split('=').next().unwrap().as_bytes();
        m.len() >= 2 && is_square(&m[m.len() - 2..])
    };
    let mut tokens = out.split(' ').peekable();
    let mut pairs = 0;
    while let Some(number) = tokens.next() {
        assert!(
            number.ends_with('.') && number[..number.len() - 1].parse::<u32>().is_ok(),
            "move number {number:?} in {out}"
        );
        let first = tokens.next().unwrap_or_else(|| panic!("{out}"));
        assert!(is_move(first), "{first:?} in {out}");
        if tokens.peek().is_some_and(|t| !t.ends_with('.')) {
            let second = tokens.next().unwrap();
            assert!(is_move(second), "{second:?} in {out}");
        }
        pairs += 1;
    }
    assert!(pairs >= 1, "{out}");
}

#[tokio::test]
async fn sql_grammar_outputs_select_statements() {
    let out = generate("sql_select.gbnf", "Select the names of users older than 30.", 40, true).await;
    let rest = out.strip_prefix("SELECT ").unwrap_or_else(|| panic!("{out}"));
    assert!(rest.ends_with(';'), "{out}");
    let (columns, rest) = rest.split_once(" FROM ").unwrap_or_else(|| panic!("{out}"));
    assert!(
        columns == "*"
            || columns
                .split(", ")
                .all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')),
        "{out}"
    );
    let table = rest.split([' ', ';']).next().unwrap();
    assert!(!table.is_empty() && table.as_bytes()[0].is_ascii_lowercase() || table.starts_with('_'), "{out}");
}

#[tokio::test]
async fn c_grammar_outputs_balanced_statements() {
    let out = generate("c_statements.gbnf", "Write C code that sums 1 to 10.", 60, false).await;
    for line in out.lines() {
        assert!(line.ends_with(';') || line.ends_with('}'), "{line:?} in {out}");
        let opens = line.matches('{').count() as i32 - line.matches('}').count() as i32;
        let parens = line.matches('(').count() as i32 - line.matches(')').count() as i32;
        assert_eq!((opens, parens), (0, 0), "unbalanced: {line:?}");
    }
}
