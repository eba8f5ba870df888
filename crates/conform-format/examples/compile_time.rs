//! Where a schema's compile time goes: JSON Schema to automaton, the mask index, the first mask.
//!
//! ```text
//! cargo run --release -p conform-format --example compile_time -- TOKENIZER_JSON DATA_DIR [LIMIT] [RUNS]
//! ```
//!
//! Schemas are picked as `maskbench --limit` picks them (every k-th line of the sorted files);
//! each phase's time is the fastest of RUNS compiles. Prints each phase's p50 and p90 over the
//! compiled schemas and the slowest schemas by total.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use conform_format::format::{compile_schema, Limits, SchemaOptions};
use conform_format::mask::{MaskIndex, Matcher};
use conform_format::vocab::{TokenTrie, Vocab};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: compile_time TOKENIZER_JSON DATA_DIR [LIMIT] [RUNS]");
        std::process::exit(2)
    }
    let limit: usize = args.get(2).map_or(800, |r| r.parse().expect("LIMIT: a number"));
    let runs: usize = args.get(3).map_or(3, |r| r.parse().expect("RUNS: a number"));
    let vocab = Arc::new(Vocab::from_tokenizer_json(Path::new(&args[0])).expect("a tokenizer.json"));
    let trie = Arc::new(TokenTrie::new(&vocab));
    let mut files: Vec<_> = std::fs::read_dir(&args[1])
        .expect("a JSONSchemaBench directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let lines: Vec<String> = files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    let mut picked: Vec<&String> =
        (0..limit.min(lines.len())).map(|i| &lines[i * lines.len() / limit.min(lines.len())]).collect();
    // COMPILE_TIME_IDS: a file of ids, one a line, to time only those (e.g. to profile the median).
    if let Ok(file) = std::env::var("COMPILE_TIME_IDS") {
        let ids: std::collections::HashSet<String> =
            std::fs::read_to_string(file).expect("an ids file").lines().map(String::from).collect();
        picked.retain(|l| {
            ids.contains(serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_str().unwrap_or(""))
        });
    }
    // per compiled schema: (id, [schema µs, index µs, first mask µs])
    let mut rows: Vec<(String, [f64; 3])> = Vec::new();
    for line in picked {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let mut best = [f64::MAX; 3];
        let mut ok = true;
        for _ in 0..runs {
            let t0 = Instant::now();
            let Ok((compiled, _)) = compile_schema(&record["schema"], &SchemaOptions::default(), &Limits::default())
            else {
                ok = false;
                break;
            };
            let t1 = Instant::now();
            let Ok(index) = MaskIndex::new(Arc::new(compiled), vocab.clone(), trie.clone()) else {
                ok = false;
                break;
            };
            let t2 = Instant::now();
            Matcher::new(Arc::new(index)).allowed(1 << 16);
            let t3 = Instant::now();
            for (b, (a, z)) in best.iter_mut().zip([(t0, t1), (t1, t2), (t2, t3)]) {
                *b = b.min((z - a).as_secs_f64() * 1e6);
            }
        }
        if ok {
            rows.push((record["id"].as_str().unwrap_or("?").to_string(), best));
        }
    }
    let pct = |mut v: Vec<f64>, p: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * p).round() as usize]
    };
    for (i, name) in ["schema", "index", "first mask", "total"].iter().enumerate() {
        let v: Vec<f64> = rows.iter().map(|(_, t)| if i == 3 { t.iter().sum() } else { t[i] }).collect();
        println!(
            "{name:>10}: p50 {:8.1} µs  p90 {:8.1} µs  mean {:8.1} µs",
            pct(v.clone(), 0.5),
            pct(v.clone(), 0.9),
            v.iter().sum::<f64>() / v.len() as f64
        );
    }
    rows.sort_by(|a, b| b.1.iter().sum::<f64>().total_cmp(&a.1.iter().sum::<f64>()));
    if let Ok(file) = std::env::var("COMPILE_TIME_ALL") {
        let all: String = rows.iter().map(|(id, t)| format!("{id} {:.0} {:.0} {:.0}\n", t[0], t[1], t[2])).collect();
        std::fs::write(file, all).expect("COMPILE_TIME_ALL: a writable file");
    }
    println!("{} compiled; slowest:", rows.len());
    for (id, t) in rows.iter().take(10) {
        println!("  {id:>30}: {:8.0} {:8.0} {:8.0} µs", t[0], t[1], t[2]);
    }
}
