//! maskbench: conform's masks side by side with llguidance, outlines-core, llama.cpp's GBNF
//! sampler and XGrammar, on JSONSchemaBench schemas and their MaskBench test instances, with one
//! vocabulary for everyone, in one run on one machine.
//!
//! For every engine and schema: compile time up to the first mask; for each valid instance,
//! serialised the way that engine's grammar lays JSON out and tokenised by the model's own
//! tokenizer, the time of every mask computation plus token commit, and whether it was accepted
//! to the end; for each invalid instance, whether it was (wrongly) accepted. Each engine runs in
//! its own worker process with a per-schema timeout (see `worker.rs`); XGrammar, a Python
//! package, runs in a Python process of that worker's (`xgrammar_peer.py`).
//!
//! ```text
//! cargo run --release --features peers --bin maskbench -- \
//!     --data ../shared/data/jsonschemabench --vocab <tokenizer.json | model.gguf> \
//!     [--engines conform,llguidance,outlines,llamacpp,xgrammar] [--limit N] [--timeout-s 20] --json out.json
//! ```

mod engines;
mod report;
mod worker;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::Value;

use engines::{Vocabulary, ENGINES};
use report::EngineResults;
use worker::{Job, Worker};

#[derive(Parser)]
#[command(about = "Mask latency, compile time and correctness: conform against its peers")]
struct Args {
    /// A JSONSchemaBench `.jsonl` file, or a folder of them.
    #[arg(long, default_value = "../shared/data/jsonschemabench")]
    data: PathBuf,
    /// The vocabulary: a Hugging Face tokenizer.json or a GGUF model (vocabulary only).
    #[arg(long)]
    vocab: PathBuf,
    /// Comma-separated engines (conform, conform-strict, llguidance, outlines, llamacpp,
    /// xgrammar). llamacpp needs a GGUF vocabulary and is skipped with a note otherwise;
    /// xgrammar needs Python with XGrammar (`$MASKBENCH_PYTHON`, default the venv
    /// `make bench-peers` makes in ~/.cache/conform/peers-venv).
    #[arg(long, default_value = "conform,llguidance,outlines,llamacpp")]
    engines: String,
    /// At most N schemas, spread evenly over the data (every k-th schema), so a sample
    /// covers every subset.
    #[arg(long)]
    limit: Option<usize>,
    /// Per engine and schema (compile and all its instances); past it the schema counts
    /// as a timeout.
    #[arg(long, default_value_t = 20.0)]
    timeout_s: f64,
    /// Address-space limit of each worker process, in MiB.
    #[arg(long, default_value_t = 8192)]
    mem_limit_mb: u64,
    /// Where to write the JSON report; the SVG chart goes next to it.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Internal: run as the worker process of this engine.
    #[arg(long, hide = true)]
    worker: Option<String>,
}

/// One JSONSchemaBench record.
struct Record {
    id: String,
    subset: String,
    job: String,
}

fn load_records(data: &Path, limit: Option<usize>) -> Result<Vec<Record>, String> {
    let mut files: Vec<PathBuf> = if data.is_dir() {
        std::fs::read_dir(data)
            .map_err(|e| format!("{}: {e}", data.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect()
    } else {
        vec![data.to_path_buf()]
    };
    files.sort();
    let mut lines = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        lines.extend(text.lines().filter(|l| !l.trim().is_empty()).map(String::from));
    }
    let picked: Vec<&String> = match limit {
        Some(n) if n < lines.len() => (0..n).map(|i| &lines[i * lines.len() / n]).collect(),
        _ => lines.iter().collect(),
    };
    picked
        .into_iter()
        .map(|line| {
            let rec: Value = serde_json::from_str(line).map_err(|e| format!("bad record: {e}"))?;
            let tests = rec["tests"].as_array().cloned().unwrap_or_default();
            let pick = |valid: bool| {
                tests.iter().filter(|t| t["valid"].as_bool() == Some(valid)).map(|t| t["data"].clone()).collect()
            };
            let job = Job { schema: rec["schema"].clone(), valid: pick(true), invalid: pick(false) };
            Ok(Record {
                id: rec["id"].as_str().unwrap_or("?").into(),
                subset: rec["subset"].as_str().unwrap_or("?").into(),
                job: serde_json::to_string(&job).unwrap(),
            })
        })
        .collect()
}

fn main() {
    // The server's allocator and settings (`conform::allocator`): every engine's worker is this
    // binary, so all of them run on it.
    conform::allocator::keep_freed_memory();
    let args = Args::parse();
    if let Some(engine) = &args.worker {
        if let Err(e) = worker::serve(engine, &args.vocab) {
            eprintln!("worker {engine}: {e}");
            std::process::exit(1);
        }
        return;
    }
    if let Err(e) = run(&args) {
        eprintln!("maskbench: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), String> {
    let gguf = Vocabulary::is_gguf(&args.vocab);
    let mut names = Vec::new();
    for name in args.engines.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if !ENGINES.contains(&name) {
            return Err(format!("unknown engine `{name}` (known: {})", ENGINES.join(", ")));
        }
        if name == "llamacpp" && !gguf {
            eprintln!("note: skipping llamacpp, which needs a GGUF vocabulary");
            continue;
        }
        names.push(name.to_string());
    }
    let records = load_records(&args.data, args.limit)?;
    let vocab = Vocabulary::load(&args.vocab)?;
    eprintln!(
        "{} schemas, vocabulary {} ({} ids), engines {}",
        records.len(),
        args.vocab.display(),
        vocab.vocab.len(),
        names.join(", ")
    );
    drop(vocab);

    let mut workers = Vec::new();
    for name in &names {
        let t = Instant::now();
        workers.push(Worker::spawn(name, &args.vocab, args.mem_limit_mb)?);
        eprintln!("  {name}: worker ready in {:.1?}", t.elapsed());
    }
    let timeout = Duration::from_secs_f64(args.timeout_s);
    let mut results: Vec<EngineResults> = names.iter().map(|n| EngineResults::new(n)).collect();
    let t_all = Instant::now();
    // Schema-major, so every engine sees the machine in the same state at the same time.
    for (i, rec) in records.iter().enumerate() {
        for (w, res) in workers.iter_mut().zip(results.iter_mut()) {
            let outcome = w.run(&rec.job, timeout)?;
            res.record(i, &rec.subset, outcome);
        }
        if (i + 1) % 25 == 0 || i + 1 == records.len() {
            eprintln!("  {}/{} schemas, {:.0?}", i + 1, records.len(), t_all.elapsed());
        }
    }
    let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
    let config = serde_json::json!({
        "data": args.data.display().to_string(),
        "vocab": args.vocab.display().to_string(),
        "limit": args.limit,
        "timeout_s": args.timeout_s,
        "mem_limit_mb": args.mem_limit_mb,
        "total_s": t_all.elapsed().as_secs_f64(),
    });
    let report = report::build(&results, &ids, config);
    print!("{}", report::table(&report));
    if let Some(path) = &args.json {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        std::fs::write(path, serde_json::to_string_pretty(&report).unwrap() + "\n")
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let svg = path.with_extension("svg");
        std::fs::write(&svg, report::svg(&results)).map_err(|e| format!("{}: {e}", svg.display()))?;
        eprintln!("wrote {} and {}", path.display(), svg.display());
    }
    Ok(())
}
