//! The slowest masks of one JSONSchemaBench schema along its valid instances, with what each
//! one's walk did: where a mask tail comes from.
//!
//! ```text
//! cargo run --release -p conform-format --example mask_tail -- TOKENIZER_JSON DATA_JSONL ID [RUNS]
//! ```
//!
//! `DATA_JSONL`: a JSONSchemaBench file; `ID`: a record's `id` in it. Instances are written as
//! `maskbench` writes them (compact, in schema order) and spelled by greedy longest match, so
//! token boundaries may differ from the model tokenizer's; the states visited are the same kind.
//! Each run compiles the schema afresh and steps through every instance; a step's time is its
//! fastest over the runs (the first visits repeat each run, noise does not). Prints the eight
//! slowest steps with the trie nodes walked, the walks and the automaton states built during
//! the step.

use std::sync::Arc;
use std::time::Instant;

use conform_format::format::{canonical_json_ordered, compile_schema, KeyOrder, Limits, SchemaOptions};
use conform_format::mask::{MaskIndex, Matcher};
use conform_format::vocab::Vocab;
use conform_format::TokEnv;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: mask_tail TOKENIZER_JSON DATA_JSONL ID [RUNS]");
        std::process::exit(2)
    }
    let runs: usize = args.get(3).map_or(15, |r| r.parse().expect("RUNS: a number"));
    let vocab = Arc::new(Vocab::from_tokenizer_json(std::path::Path::new(&args[0])).expect("a tokenizer.json"));
    let env = TokEnv::with_greedy_tokenizer(vocab.clone());
    let trie = env.trie().clone();
    let data = std::fs::read_to_string(&args[1]).expect("a JSONSchemaBench file");
    let record: serde_json::Value = data
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON lines"))
        .find(|r| r["id"] == args[2].as_str())
        .expect("no record with that id");
    let schema = &record["schema"];
    let seqs: Vec<Vec<u32>> = record["tests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["valid"] == true)
        .map(|t| env.tokenize(canonical_json_ordered(&t["data"], Some(schema), KeyOrder::Schema).as_bytes()))
        .collect();
    // per step: (fastest µs, nodes, walks, states interned, state, token)
    let mut best: Vec<(f64, u64, u64, usize, u32, u32)> = Vec::new();
    for _ in 0..runs {
        let (compiled, _) =
            compile_schema(schema, &SchemaOptions::default(), &Limits::default()).expect("the schema compiles");
        let compiled = Arc::new(compiled);
        let index = Arc::new(MaskIndex::new(compiled.clone(), vocab.clone(), trie.clone()).unwrap());
        let mut m = Matcher::new(index.clone());
        m.allowed(1 << 16);
        let mut i = 0;
        for seq in &seqs {
            m.reset();
            for &t in seq {
                let (s0, n0) = (index.stats(), compiled.state_count());
                let state = m.state();
                let t0 = Instant::now();
                let ok = m.allowed(1 << 16).contains(t) && m.accept(t).is_ok();
                let us = t0.elapsed().as_secs_f64() * 1e6;
                let s1 = index.stats();
                let row = (
                    us,
                    s1.nodes_visited - s0.nodes_visited,
                    s1.walks - s0.walks,
                    compiled.state_count() - n0,
                    state,
                    t,
                );
                if best.len() <= i {
                    best.push(row);
                } else if us < best[i].0 {
                    best[i] = row;
                }
                i += 1;
                if !ok {
                    break;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..best.len()).collect();
    order.sort_by(|&a, &b| best[b].0.total_cmp(&best[a].0));
    println!("{} steps; slowest (fastest of {runs} runs):", best.len());
    for &i in order.iter().take(8) {
        let (us, nodes, walks, new_states, state, t) = best[i];
        let text = String::from_utf8_lossy(vocab.token_bytes(t));
        println!("step {i:4} {us:8.0} µs  nodes {nodes:7}  walks {walks}  new states {new_states:5}  state {state}  token {text:?}");
    }
}
