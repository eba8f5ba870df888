//! Mask benchmark on the default model's vocabulary over JSONSchemaBench (dev half).
//!
//! For a deterministic subset of schemas (every `CONFORM_BENCH_EVERY`-th line of every
//! `jsonschemabench/*.jsonl`, default 10) it measures
//!
//! * compile time: `format::compile_schema` + `MaskIndex::new`, as the server does;
//! * per-token mask time: `Matcher::apply` on a logits buffer of the vocabulary size, over
//!   seeded random walks (at each step a uniformly random allowed token is accepted, until the
//!   matcher is finished or 60 tokens). "all" includes first visits of a state (the trie walk);
//!   "cached" only masks whose state was already in the index's cache.
//!
//! Prints a table and writes `bench/results/mask.json`. Run with `make bench-mask` or
//! `cargo bench --bench mask`. Environment: `CONFORM_DATA` (data dir, default
//! `../shared/data`), `CONFORM_BENCH_EVERY` (10), `CONFORM_BENCH_WALKS` (walks per schema, 4),
//! `CONFORM_BENCH_STEPS` (60), `CONFORM_BENCH_SEED` (0), `CONFORM_MODELS` (models dir).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use conform::format::{compile_schema, FormatError, Limits, SchemaOptions};
use conform::mask::{MaskIndex, Matcher};
use conform::testdata::data_dir;
use conform::vocab::{TokenTrie, Vocab};
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

#[path = "percentile.rs"]
mod percentile;
use percentile::pct;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// The default model's vocabulary, exactly as the server builds it.
fn default_vocab() -> (String, Vocab) {
    let mut backend = LlamaBackend::init().expect("llama backend");
    backend.void_logs();
    let (id, path) = conform::manifest::resolve(None).expect("default model (run `make model`)");
    let params = LlamaModelParams::default().with_vocab_only(true);
    let model = LlamaModel::load_from_file(&backend, &path, &params).expect("loading the default model");
    (id, conform::engine::model_vocab(&model))
}

fn summary(v: &mut [f64], ps: &[f64]) -> Value {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mut o = serde_json::Map::new();
    o.insert("n".into(), json!(v.len()));
    for &p in ps {
        o.insert(format!("p{p}"), json!(pct(v, p)));
    }
    o.insert("max".into(), json!(v.last().copied().unwrap_or(f64::NAN)));
    o.insert("mean".into(), json!(if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 }));
    Value::Object(o)
}

fn error_kind(e: &FormatError) -> String {
    match e {
        FormatError::UnsupportedKeyword { keyword, .. } => format!("unsupported `{keyword}`"),
        FormatError::TooComplex { .. } => "too complex".into(),
        FormatError::InvalidSchema { .. } => "invalid schema".into(),
        FormatError::InvalidRegex { .. } => "invalid regex".into(),
        FormatError::EmptyLanguage { .. } => "empty language".into(),
        FormatError::EmptyChoice => "empty choice".into(),
        FormatError::InvalidGrammar { .. } => "invalid grammar".into(),
        FormatError::InvalidInstruction { .. } => "invalid instruction".into(),
        FormatError::Contradictory { .. } => "contradictory".into(),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let every: usize = env_or("CONFORM_BENCH_EVERY", 10).max(1);
    let walks: u64 = env_or("CONFORM_BENCH_WALKS", 4);
    let steps: u32 = env_or("CONFORM_BENCH_STEPS", 60);
    let seed: u64 = env_or("CONFORM_BENCH_SEED", 0);
    // Tokens that may still follow the next one; large so the budget does not shape masks
    // early in a walk (as with a generous max_tokens).
    let budget: u32 = env_or("CONFORM_BENCH_BUDGET", 4096);

    let t_vocab = Instant::now();
    let (model_id, vocab) = default_vocab();
    let vocab = Arc::new(vocab);
    let trie = Arc::new(TokenTrie::new(&vocab));
    let vocab_load = t_vocab.elapsed();
    eprintln!(
        "vocab of {model_id}: {} ids, {} text tokens, trie {} nodes, loaded in {:.2?}",
        vocab.len(),
        vocab.n_text_tokens(),
        trie.num_nodes(),
        vocab_load
    );

    let dir = data_dir().join("jsonschemabench");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e} (set CONFORM_DATA)", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();

    let opts = SchemaOptions::default();
    let limits = Limits::default();
    let mut compile_ms: Vec<f64> = Vec::new();
    let mut mask_all_us: Vec<f64> = Vec::new();
    let mut mask_cached_us: Vec<f64> = Vec::new();
    let mut mask_first_us: Vec<f64> = Vec::new();
    let mut failures: BTreeMap<String, u32> = BTreeMap::new();
    let (mut total, mut compiled, mut walks_done, mut walks_finished, mut empty_masks) = (0u32, 0u32, 0u64, 0u64, 0u64);
    let mut slowest_compile = (0.0f64, String::new());
    let mut slowest_mask = (0.0f64, String::new());
    let mut logits = vec![0f32; vocab.len()];
    let t_all = Instant::now();

    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (li, line) in text.lines().enumerate() {
            if li % every != 0 {
                continue;
            }
            let Ok(rec) = serde_json::from_str::<Value>(line) else { continue };
            let id = rec["id"].as_str().unwrap_or("?").to_string();
            total += 1;
            let t0 = Instant::now();
            let compiled_res = compile_schema(&rec["schema"], &opts, &limits).map(|(a, _ignored)| {
                MaskIndex::new(Arc::new(a), vocab.clone(), trie.clone()).expect("trie built from this vocab")
            });
            let dt = t0.elapsed().as_secs_f64() * 1e3;
            let index = match compiled_res {
                Ok(index) => Arc::new(index),
                Err(e) => {
                    *failures.entry(error_kind(&e)).or_default() += 1;
                    continue;
                }
            };
            compiled += 1;
            compile_ms.push(dt);
            if dt > slowest_compile.0 {
                slowest_compile = (dt, id.clone());
            }
            for w in 0..walks {
                let mut rng = StdRng::seed_from_u64(seed ^ ((total as u64) << 16) ^ w);
                let mut m = Matcher::new(index.clone());
                walks_done += 1;
                for step in 0..steps {
                    if m.is_finished() {
                        walks_finished += 1;
                        break;
                    }
                    logits.fill(0.0);
                    let walks_before = index.stats().walks;
                    let t = Instant::now();
                    let n = m.apply(&mut logits, budget.saturating_sub(step));
                    let us = t.elapsed().as_secs_f64() * 1e6;
                    std::hint::black_box(&logits);
                    let first_visit = index.stats().walks != walks_before;
                    mask_all_us.push(us);
                    if first_visit {
                        mask_first_us.push(us);
                    } else {
                        mask_cached_us.push(us);
                    }
                    if us > slowest_mask.0 {
                        slowest_mask = (us, id.clone());
                    }
                    if n == 0 {
                        empty_masks += 1;
                        break;
                    }
                    // A uniformly random allowed token (not timed).
                    let pick = rng.gen_range(0..n);
                    let tok = logits
                        .iter()
                        .enumerate()
                        .filter(|(_, l)| l.is_finite())
                        .nth(pick)
                        .map(|(i, _)| i as u32)
                        .unwrap();
                    m.accept(tok).unwrap_or_else(|e| panic!("{id}: allowed token {tok} rejected: {e}"));
                }
            }
        }
    }
    let elapsed = t_all.elapsed();

    let failed = total - compiled;
    let compile = summary(&mut compile_ms, &[50.0, 90.0, 99.0]);
    let ps = [50.0, 90.0, 99.0, 99.9];
    let all = summary(&mut mask_all_us, &ps);
    let cached = summary(&mut mask_cached_us, &ps);
    let first = summary(&mut mask_first_us, &ps);

    println!("== mask bench: {model_id} ({} ids), JSONSchemaBench every {every}th schema, {walks} walks x <= {steps} steps, seed {seed} ==", vocab.len());
    println!("schemas: {total}, compiled: {compiled}, failed to compile: {failed}");
    let mut by_count: Vec<(&String, &u32)> = failures.iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (k, n) in by_count.iter().take(10) {
        println!("  {n:>5}  {k}");
    }
    if by_count.len() > 10 {
        let rest: u32 = by_count[10..].iter().map(|(_, n)| **n).sum();
        println!("  {rest:>5}  ({} other reasons; all in mask.json)", by_count.len() - 10);
    }
    println!("walks: {walks_done} ({walks_finished} finished, {empty_masks} empty masks); total time {elapsed:.1?}");
    println!();
    println!("{:<24} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10}", "", "n", "p50", "p90", "p99", "p99.9", "max");
    let row = |name: &str, v: &Value, unit: &str| {
        let g = |k: &str| match v[k].as_f64() {
            Some(x) if x.is_finite() => format!("{x:.1}"),
            _ => "-".to_string(),
        };
        println!(
            "{:<24} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10}",
            format!("{name} ({unit})"),
            v["n"],
            g("p50"),
            g("p90"),
            g("p99"),
            g("p99.9"),
            g("max")
        );
    };
    row("compile", &compile, "ms");
    row("mask, all", &all, "us");
    row("mask, cached state", &cached, "us");
    row("mask, first visit", &first, "us");
    println!();
    println!(
        "slowest compile: {:.1} ms ({}); slowest mask: {:.0} us ({})",
        slowest_compile.0, slowest_compile.1, slowest_mask.0, slowest_mask.1
    );
    let mask_p99_ms = all["p99"].as_f64().unwrap_or(f64::NAN) / 1e3;
    let compile_p50 = compile["p50"].as_f64().unwrap_or(f64::NAN);
    println!(
        "targets: mask p99 < 1 ms: {} ({:.3} ms); compile p50 < 5 ms: {} ({:.2} ms)",
        if mask_p99_ms < 1.0 { "MET" } else { "MISSED" },
        mask_p99_ms,
        if compile_p50 < 5.0 { "MET" } else { "MISSED" },
        compile_p50
    );

    let out = json!({
        "model": model_id,
        "n_vocab": vocab.len(),
        "n_text_tokens": vocab.n_text_tokens(),
        "vocab_load_ms": vocab_load.as_secs_f64() * 1e3,
        "config": {"every": every, "walks": walks, "steps": steps, "seed": seed, "budget": budget,
                   "data": dir.display().to_string()},
        "schemas": total,
        "compiled": compiled,
        "failed_to_compile": failed,
        "failures": failures,
        "walks": walks_done,
        "walks_finished": walks_finished,
        "empty_masks": empty_masks,
        "compile_ms": compile,
        "mask_us_all": all,
        "mask_us_cached": cached,
        "mask_us_first_visit": first,
        "slowest_compile": {"ms": slowest_compile.0, "id": slowest_compile.1},
        "slowest_mask": {"us": slowest_mask.0, "id": slowest_mask.1},
        "targets": {"mask_p99_lt_1ms": mask_p99_ms < 1.0, "compile_p50_lt_5ms": compile_p50 < 5.0},
        "total_s": elapsed.as_secs_f64(),
    });
    let results = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/results");
    std::fs::create_dir_all(&results).unwrap();
    let path = results.join("mask.json");
    std::fs::write(&path, serde_json::to_string_pretty(&out).unwrap() + "\n").unwrap();
    println!("wrote {}", path.display());
}
