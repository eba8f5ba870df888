//! Closure through the engine's own constraint object: on seeded random walks with tight
//! budgets — sampling any allowed token, then fast-forwarding with a tokenizer that may spell
//! forced bytes in more tokens than the budget's own path — the mask is never empty and the
//! output is complete when the budget runs out.

use crate::mask_support;

use std::sync::Arc;

use conform::engine::{FinishReason, Summary};
use conform::server::constrain::{FormatFields, Formats};
use mask_support::{greedy_tokenize, qwen3};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

#[test]
fn tight_budgets_always_close_with_greedy_fast_forward() {
    let loaded = qwen3();
    let (vocab, trie) = (loaded.vocab.clone(), loaded.trie.clone());
    let tokenize_vocab = vocab.clone();
    walks(Formats::new(vocab, Arc::new(move |bytes: &[u8]| greedy_tokenize(&tokenize_vocab, &trie, bytes))), None);
}

/// Lookahead reweights and trims the mask's tokens but must keep every guarantee: walks under
/// the uniform TPM close just the same.
#[test]
fn lookahead_keeps_the_closure_guarantee() {
    let loaded = qwen3();
    let (vocab, trie) = (loaded.vocab.clone(), loaded.trie.clone());
    let tokenize_vocab = vocab.clone();
    let formats = Formats::new(vocab, Arc::new(move |bytes: &[u8]| greedy_tokenize(&tokenize_vocab, &trie, bytes)));
    walks(formats, Some(json!({"format_mode": "lookahead", "format_options": {"tpm": "uniform"}})));
}

/// The worst tokenizer for fast-forward: one token per forced byte.
#[test]
fn tight_budgets_always_close_with_bytewise_fast_forward() {
    let vocab = qwen3().vocab.clone();
    let singles = vocab.single_byte_tokens();
    walks(
        Formats::new(
            vocab,
            Arc::new(move |bytes: &[u8]| bytes.iter().map(|&b| singles[b as usize].unwrap()).collect()),
        ),
        None,
    );
}

/// Random walks under each case's format; `mode` adds request fields (e.g. lookahead).
fn walks(formats: Formats, mode: Option<serde_json::Value>) {
    let vocab = qwen3().vocab.clone();
    let cases = [
        json!({"guided_json": {"type": "object", "properties": {
            "type": {"type": "string", "pattern": "wifi"}, "name": {"type": "string", "pattern": "[a-z][a-z0-9]*"},
            "limit": {"type": "integer", "minimum": 1}}, "required": ["type", "name"]}}),
        json!({"guided_json": {"type": "array", "items": {"enum": ["alpha", "beta gamma"]}, "minItems": 2}}),
        json!({"guided_regex": "<tool_call>\n\\{\"name\": \"(get|set)_value\", \"arguments\": \\{\"k\": [0-9]{1,3}\\}\\}\n</tool_call>"}),
        json!({"response_format": {"type": "json_object"}}),
        // JSON laid out as the model writes it: whitespace never lengthens the shortest closure.
        json!({"guided_json": {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}}}, "required": ["tags"]},
            "format_options": {"whitespace": "natural"}}),
        // Recursive formats: the distances of the stack automaton decide the budget.
        json!({"guided_json": {"$defs": {"node": {"type": "object", "properties": {
            "v": {"type": "integer"}, "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}}, "required": ["v", "kids"]}},
            "$ref": "#/$defs/node"}}),
        json!({"guided_grammar": "root ::= \"(\" root \")\" | \"[\" root \"]\" | \"x\""}),
    ];
    let mut rng = StdRng::seed_from_u64(11);
    for mut case in cases {
        if let Some(mode) = &mode {
            case.as_object_mut().unwrap().extend(mode.as_object().unwrap().clone());
        }
        let fields: FormatFields = serde_json::from_value(case.clone()).unwrap();
        let format = formats.compile(&fields).unwrap().unwrap();
        let shortest = format.shortest_tokens();
        for slack in [0, 1, 3, 10, 40] {
            let budget = shortest + slack;
            let mut constraint = format.constraint().unwrap();
            let mut text = Vec::new();
            let mut used = 0;
            while used < budget && !constraint.is_finished() {
                let mut logits = vec![0f32; vocab.len()];
                constraint.mask(&mut logits, budget - used - 1);
                let allowed: Vec<u32> =
                    (0..vocab.len() as u32).filter(|&t| logits[t as usize].is_finite() && !vocab.is_eog(t)).collect();
                let eog_allowed = vocab.eog_tokens().iter().any(|&t| logits[t as usize].is_finite());
                assert!(
                    !allowed.is_empty() || eog_allowed,
                    "{case}: dead end at budget {budget}, used {used}, text {:?}",
                    String::from_utf8_lossy(&text)
                );
                if allowed.is_empty() || (eog_allowed && rng.gen_bool(0.1)) {
                    break;
                }
                let t = allowed[rng.gen_range(0..allowed.len())];
                constraint.accept(t).unwrap();
                text.extend_from_slice(vocab.token_bytes(t));
                used += 1;
                for f in constraint.forced_tokens(budget - used) {
                    text.extend_from_slice(vocab.token_bytes(f));
                    used += 1;
                }
                assert!(used <= budget);
            }
            assert!(
                constraint.is_accepting(),
                "{case}: incomplete at budget {budget}: {:?}",
                String::from_utf8_lossy(&text)
            );
            let summary = Summary {
                finish_reason: FinishReason::Stop,
                prompt_tokens: 0,
                completion_tokens: used,
                forced_tokens: 0,
                budget_spent: false,
                compliant: Some(true),
                format_cost: None,
                free_tokens: 0,
            };
            assert!(format.report(&String::from_utf8_lossy(&text), &summary)["compliant"] == true);
        }
    }
}
