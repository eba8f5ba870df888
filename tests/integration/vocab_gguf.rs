//! The reference check that cannot drift, on the real GGUF vocabularies of both tokenizer
//! families: byte-level BPE (Qwen, 151k) and SentencePiece with byte fallback (Gemma 3, 262k).
//! On seeded random walks through real format automata, the computed mask equals running every
//! token's bytes through the automaton one by one.

use std::sync::{Arc, OnceLock};

use conform::format::{self, Compiled, Limits, SchemaOptions};
use conform::mask::{ByteAutomaton, MaskIndex, Matcher};
use conform::vocab::{TokenTrie, Vocab};
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

struct Loaded {
    vocab: Arc<Vocab>,
    trie: Arc<TokenTrie>,
}

fn load(name: &str) -> Loaded {
    let (_, path) = conform::manifest::resolve(Some(name)).unwrap();
    let model =
        LlamaModel::load_from_file(crate::common::backend(), path, &LlamaModelParams::default().with_vocab_only(true))
            .unwrap();
    let vocab = Arc::new(conform::engine::model_vocab(&model));
    let trie = Arc::new(TokenTrie::new(&vocab));
    Loaded { vocab, trie }
}

fn qwen() -> &'static Loaded {
    static V: OnceLock<Loaded> = OnceLock::new();
    V.get_or_init(|| load("qwen2.5-coder-0.5b-instruct"))
}

fn gemma() -> &'static Loaded {
    static V: OnceLock<Loaded> = OnceLock::new();
    V.get_or_init(|| load("gemma-3-270m"))
}

#[test]
fn both_vocabularies_decode_to_exact_bytes() {
    for (loaded, n) in [(qwen(), 151_000), (gemma(), 262_000)] {
        let v = &loaded.vocab;
        assert!(v.len() > n, "{}", v.len());
        // Every single byte is a token, so byte counts bound token counts (closure needs it).
        assert!(v.has_all_bytes());
        assert!(!v.eog_tokens().is_empty());
        assert!(v.eog_tokens().iter().all(|&t| v.token_bytes(t).is_empty()));
    }
    // SentencePiece: "▁" became a space and "<0x0A>" a newline byte; no token text keeps them.
    let g = &gemma().vocab;
    let has = |b: &[u8]| (0..g.len() as u32).any(|t| g.token_bytes(t) == b);
    assert!(has(b" the") && has(b"\n") && has(&[0xFF]));
    assert!(!(0..g.len() as u32).any(|t| g.token_bytes(t).windows(3).any(|w| w == "▁".as_bytes())));
    let q = &qwen().vocab;
    assert_eq!(q.token_bytes(15), b"0");
}

/// The mask for `state` with budget `remaining_after`, by brute force over every token
/// (the budget in the index's token distance, checked on its own in crates/conform-format/tests/masks.rs).
fn brute_force(a: &Compiled, index: &MaskIndex, vocab: &Vocab, state: u32, remaining_after: u32) -> Vec<u32> {
    (0..vocab.len() as u32)
        .filter(|&t| {
            if vocab.is_eog(t) {
                return ByteAutomaton::is_accepting(a, state);
            }
            let bytes = vocab.token_bytes(t);
            if bytes.is_empty() {
                return false;
            }
            let mut s = state;
            for &b in bytes {
                match ByteAutomaton::next(a, s, b) {
                    Some(n) => s = n,
                    None => return false,
                }
            }
            ByteAutomaton::min_bytes_to_accept(a, s) != u32::MAX && index.shortest_tokens(s) <= remaining_after
        })
        .collect()
}

fn check_walks(loaded: &Loaded, automaton: Compiled, seed: u64) {
    let a = Arc::new(automaton);
    let index = Arc::new(MaskIndex::new(a.clone(), loaded.vocab.clone(), loaded.trie.clone()).unwrap());
    let mut rng = StdRng::seed_from_u64(seed);
    for _walk in 0..3 {
        let mut matcher = Matcher::new(index.clone());
        let mut budget: u32 = 40;
        let mut text = Vec::new();
        while budget > 0 && !matcher.is_finished() {
            let remaining_after = budget - 1;
            let expected = brute_force(&a, &index, &loaded.vocab, matcher.state(), remaining_after);
            let got: Vec<u32> = matcher.allowed(remaining_after).iter().collect();
            let got_eog: Vec<u32> = if matcher.is_accepting() { loaded.vocab.eog_tokens().to_vec() } else { vec![] };
            let mut got_all: Vec<u32> = got.iter().copied().chain(got_eog).collect();
            got_all.sort_unstable();
            got_all.dedup();
            assert_eq!(got_all, expected, "state {} budget {remaining_after}", matcher.state());
            let text_tokens: Vec<u32> = expected.iter().copied().filter(|&t| !loaded.vocab.is_eog(t)).collect();
            if text_tokens.is_empty() {
                break;
            }
            let t = text_tokens[rng.gen_range(0..text_tokens.len())];
            matcher.accept(t).unwrap();
            text.extend_from_slice(loaded.vocab.token_bytes(t));
            budget -= 1;
        }
        // The budget rule closes every walk: the text is complete when the budget runs out.
        assert!(matcher.is_accepting(), "walk ended incomplete: {:?}", String::from_utf8_lossy(&text));
        assert!(a.accepts(&text));
    }
}

fn automata() -> Vec<Compiled> {
    let limits = Limits::default();
    let schema = json!({"type": "object", "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "tags": {"type": "array", "items": {"enum": ["a", "b c", "ü"]}, "maxItems": 3}},
        "required": ["name", "age"]});
    // Recursive: compiled to a network of rule automata, not a DFA.
    let tree = json!({"$defs": {"node": {"type": "object", "properties": {
        "v": {"type": "integer"}, "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2}},
        "required": ["v"]}}, "$ref": "#/$defs/node"});
    let tree = format::compile_schema(&tree, &SchemaOptions::default(), &limits).unwrap().0;
    assert!(matches!(tree, Compiled::Recursive(_)));
    vec![
        format::compile_schema(&schema, &SchemaOptions::default(), &limits).unwrap().0,
        Compiled::Dfa(format::compile_regex(r"[A-Z][a-z]{2,8}( [a-z]+){0,3}\.", &limits).unwrap()),
        Compiled::Dfa(format::compile_choice(&["yes", "no", "maybe not"], &limits).unwrap()),
        tree,
    ]
}

#[test]
fn masks_equal_brute_force_on_qwen_byte_level_bpe() {
    for (i, a) in automata().into_iter().enumerate() {
        check_walks(qwen(), a, 100 + i as u64);
    }
}

#[test]
fn masks_equal_brute_force_on_gemma_sentencepiece() {
    for (i, a) in automata().into_iter().enumerate() {
        check_walks(gemma(), a, 200 + i as u64);
    }
}
