//! Prints the token masks of one format along one token sequence, as JSON lines: the reference
//! the Python package's masks are compared with (tests/python_package_test.py).
//!
//! ```text
//! cargo run --release -p conform-format --example dump_masks -- \
//!     TOKENIZER_JSON KIND SPEC TOKENS [--whitespace compact|natural|flexible] [--max-tokens N]
//! ```
//!
//! * `KIND`: `json_schema` (SPEC: the schema's JSON), `regex`, `choice` (SPEC: a JSON list of
//!   strings) or `grammar` (SPEC: GBNF).
//! * `TOKENS`: comma-separated token ids to accept in turn (may be empty).
//! * `--max-tokens N`: at step `i` the mask is the one for `N - i` tokens left (the token
//!   sampled at that step included); without it, no budget.
//!
//! One line per step, before each token is accepted and once after the last:
//! `{"step", "count", "accepting", "finished", "first_ids", "mask_hex"}`, where `mask_hex` is
//! the bitmask as the Python package fills it (`ceil(vocab / 32)` little-endian 32-bit words,
//! bit `i % 32` of word `i / 32` = token `i` allowed), in hex, and `first_ids` its first 16
//! allowed ids. A token the constraint refuses ends the run with a non-zero status.
//!
//! It goes through the engine's front door, as an embedder would: a [`TokEnv`], a [`Compiler`]
//! under the default [`Limits`], a [`Spec`], and the grammar's [`Constraint`](conform_format::Constraint).

use std::fmt::Write as _;
use std::sync::Arc;

use conform_format::vocab::Vocab;
use conform_format::{Compiler, Limits, SchemaOptions, Spec, TokEnv, Whitespace};

fn usage() -> ! {
    eprintln!("usage: dump_masks TOKENIZER_JSON json_schema|regex|choice|grammar SPEC TOKENS [--whitespace W] [--max-tokens N]");
    std::process::exit(2)
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut whitespace = Whitespace::Compact;
    let mut max_tokens: Option<u64> = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--whitespace" if i + 1 < args.len() => {
                whitespace = match args[i + 1].as_str() {
                    "compact" => Whitespace::Compact,
                    "natural" => Whitespace::NATURAL,
                    "flexible" => Whitespace::Flexible { max: 2 },
                    _ => usage(),
                };
                args.drain(i..i + 2);
            }
            "--max-tokens" if i + 1 < args.len() => {
                max_tokens = Some(args[i + 1].parse().unwrap_or_else(|_| usage()));
                args.drain(i..i + 2);
            }
            _ => i += 1,
        }
    }
    let [tokenizer, kind, spec, tokens] = &args[..] else { usage() };
    let tokens: Vec<u32> =
        tokens.split(',').filter(|t| !t.is_empty()).map(|t| t.trim().parse().unwrap_or_else(|_| usage())).collect();

    let vocab = Vocab::from_tokenizer_json(tokenizer).unwrap_or_else(|e| {
        eprintln!("dump_masks: {e}");
        std::process::exit(1)
    });
    let n_bytes = vocab.len().div_ceil(32) * 4;
    let compiler = Compiler::new(TokEnv::with_greedy_tokenizer(Arc::new(vocab)), Limits::default());

    let spec = match kind.as_str() {
        "json_schema" => {
            let schema: serde_json::Value = serde_json::from_str(spec).unwrap_or_else(|e| {
                eprintln!("dump_masks: the schema is not valid JSON: {e}");
                std::process::exit(1)
            });
            Spec::json_schema(&schema, &SchemaOptions { whitespace, ..SchemaOptions::default() })
        }
        "regex" => Spec::Regex(spec.clone()),
        "choice" => Spec::Choice(serde_json::from_str(spec).unwrap_or_else(|_| usage())),
        "grammar" => Spec::Grammar(spec.clone()),
        _ => usage(),
    };
    let (grammar, _) = compiler.compile(&spec).unwrap_or_else(|e| {
        eprintln!("dump_masks: {e}");
        std::process::exit(1)
    });
    let mut constraint = grammar.constraint();

    let mut out = std::io::stdout().lock();
    for step in 0..=tokens.len() {
        // Tokens that may follow the one sampled at this step; no token at all once the budget is spent.
        let remaining_after = match max_tokens {
            None => Some(u32::MAX),
            Some(n) => (n as usize).checked_sub(step + 1).map(|r| u32::try_from(r).unwrap_or(u32::MAX)),
        };
        let (count, first_ids, hex) = match remaining_after {
            Some(r) => {
                let set = constraint.allowed(r);
                let mut bytes: Vec<u8> = set.words().iter().flat_map(|w| w.to_le_bytes()).collect();
                bytes.resize(n_bytes, 0);
                let mut hex = String::with_capacity(2 * n_bytes);
                for b in &bytes {
                    write!(hex, "{b:02x}").unwrap();
                }
                (set.count(), set.iter().take(16).collect::<Vec<u32>>(), hex)
            }
            None => (0, Vec::new(), "00".repeat(n_bytes)),
        };
        let line = serde_json::json!({
            "step": step,
            "count": count,
            "accepting": constraint.is_accepting(),
            "finished": constraint.is_finished(),
            "first_ids": first_ids,
            "mask_hex": hex,
        });
        use std::io::Write as _;
        writeln!(out, "{line}").unwrap();
        if let Some(&t) = tokens.get(step) {
            if let Err(e) = constraint.commit(t) {
                eprintln!("dump_masks: step {step}: {e}");
                std::process::exit(1);
            }
        }
    }
}
