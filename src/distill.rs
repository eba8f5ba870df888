//! `conform distill`: sample the served model's own answers to task-only prompts, then fit the
//! byte HMM to them by EM (DESIGN §2.2).
//!
//! Both halves checkpoint: samples are appended to `samples_path` as they finish (a rerun
//! continues after the last one), and the model is written to `<out>` after every EM iteration
//! (a rerun with `--resume` starts from it). Prompts come from `../shared/data`, never from the
//! items the A/B harness evaluates: GSM8K *train* questions, IFEval prompts past the first 100,
//! and BFCL user questions.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{ensure, Context as _};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde_json::{json, Value};

use crate::ab::progress::Progress;
use crate::chat_template::ChatTemplate;
use crate::engine::{Engine, Event, Job, SamplingParams};
use crate::tpm::em;
use crate::tpm::hmm::{Hmm, TpmInfo};

/// Added to every expected count: keeps every byte possible in every state (a format may need
/// bytes the samples never show) at a small cost in fit.
const PSEUDOCOUNT: f64 = 0.01;

/// IFEval items the A/B harness may evaluate (it reads the file from the top).
const IFEVAL_EVALUATED: usize = 100;

#[derive(Clone, Debug)]
pub struct Config {
    pub data: PathBuf,
    pub out: PathBuf,
    /// Sampled answers, JSONL, appended as they finish.
    pub samples_path: PathBuf,
    pub samples: usize,
    pub max_tokens: u32,
    pub temperature: f32,
    pub hidden: usize,
    pub iterations: usize,
    pub seed: u64,
    pub threads: usize,
    /// Continue EM from the model already at `out`.
    pub resume: bool,
}

/// Task-only prompts, shuffled with `seed`: 60 % GSM8K train, the rest IFEval and BFCL.
pub fn prompts(data: &Path, count: usize, seed: u64) -> anyhow::Result<Vec<String>> {
    let read = |rel: &str| -> anyhow::Result<Vec<Value>> {
        let path = data.join(rel);
        let file = std::fs::File::open(&path).with_context(|| format!("reading {}", path.display()))?;
        std::io::BufReader::new(file).lines().map(|l| Ok(serde_json::from_str(&l?)?)).collect()
    };
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
    let mut gsm8k: Vec<String> = read("gsm8k/train.jsonl")?.iter().filter_map(|v| text(v, "question")).collect();
    let mut ifeval: Vec<String> =
        read("ifeval/input_data_dev.jsonl")?.iter().skip(IFEVAL_EVALUATED).filter_map(|v| text(v, "prompt")).collect();
    let mut bfcl = Vec::new();
    for category in ["simple_python", "multiple", "live_simple"] {
        for item in read(&format!("bfcl/{category}.jsonl"))? {
            let first = item
                .pointer("/question/0")
                .and_then(Value::as_array)
                .and_then(|turn| turn.iter().find(|m| m["role"] == "user"));
            if let Some(q) = first.and_then(|m| text(m, "content")) {
                bfcl.push(q);
            }
        }
    }
    let mut rng = StdRng::seed_from_u64(seed);
    for list in [&mut gsm8k, &mut ifeval, &mut bfcl] {
        list.shuffle(&mut rng);
    }
    let n_gsm = count * 6 / 10;
    let n_ifeval = (count - n_gsm) / 2;
    let mut out: Vec<String> = gsm8k.into_iter().take(n_gsm).collect();
    out.extend(ifeval.into_iter().take(n_ifeval));
    out.extend(bfcl.into_iter().take(count - out.len()));
    ensure!(out.len() == count, "the data holds only {} prompts; ask for fewer samples", out.len());
    out.shuffle(&mut rng);
    Ok(out)
}

/// Samples the model's answers into `config.samples_path` (JSONL, one `{"prompt", "text"}` per line),
/// continuing after the lines already there. Returns every sample's text.
pub fn sample(engine: &Engine, config: &Config) -> anyhow::Result<Vec<Vec<u8>>> {
    let path = config.samples_path.as_path();
    let prompts = prompts(&config.data, config.samples, config.seed)?;
    let mut texts: Vec<Vec<u8>> = Vec::new();
    if path.exists() {
        for line in std::io::BufReader::new(std::fs::File::open(path)?).lines() {
            let v: Value =
                serde_json::from_str(&line?).with_context(|| format!("{} has a damaged line", path.display()))?;
            texts.push(v["text"].as_str().unwrap_or_default().as_bytes().to_vec());
        }
    }
    ensure!(texts.len() <= prompts.len(), "{} already holds more samples than asked for", path.display());
    if texts.len() == prompts.len() {
        eprintln!("{} samples already in {}", texts.len(), path.display());
        return Ok(texts);
    }
    let source = engine.info.chat_template.as_deref().context("the model has no chat template")?;
    let template = ChatTemplate::new(source, &engine.info.bos_token, &engine.info.eos_token)?;
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    eprintln!(
        "sampling {} answers ({} already there), {} tokens at most each",
        prompts.len() - texts.len(),
        texts.len(),
        config.max_tokens
    );
    let mut progress = Progress::new(prompts.len() - texts.len());
    let window = engine.config.parallel.max(1) as usize;
    let mut pending = std::collections::VecDeque::new();
    let mut next = texts.len();
    while next < prompts.len() || !pending.is_empty() {
        while next < prompts.len() && pending.len() < window {
            let rendered = template.render(&[json!({"role": "user", "content": prompts[next]})], None)?;
            let (events, rx) = tokio::sync::mpsc::unbounded_channel();
            engine.submit(Job {
                prompt: engine.tokenize(&rendered, false, true),
                params: SamplingParams {
                    temperature: config.temperature,
                    seed: Some(config.seed + next as u64),
                    ..SamplingParams::default()
                },
                max_tokens: config.max_tokens,
                stop: Vec::new(),
                constraint: None,
                free_first: None,
                events,
                admitted: None,
            })?;
            pending.push_back((next, rx));
            next += 1;
        }
        let (i, mut rx) = pending.pop_front().expect("a job is pending");
        let mut text = String::new();
        while let Some(event) = rx.blocking_recv() {
            match event {
                Event::Token { text: t, .. } => text.push_str(&t),
                Event::FormatStarts => {}
                Event::Done(_) => break,
                Event::Error(e) => anyhow::bail!("sampling failed: {e}"),
            }
        }
        writeln!(file, "{}", json!({"prompt": prompts[i], "text": text}))?;
        texts.push(text.into_bytes());
        progress.tick();
    }
    Ok(texts)
}

/// `text` as the body of a JSON string: escaped, without the quotes.
fn json_string_body(text: &[u8]) -> Vec<u8> {
    let quoted = serde_json::to_string(&String::from_utf8_lossy(text)).expect("strings serialize");
    quoted.as_bytes()[1..quoted.len() - 1].to_vec()
}

/// Fits the HMM by EM, printing the held-out log-likelihood per byte after every iteration and
/// writing the model to `config.out` each time.
pub fn fit(texts: &[Vec<u8>], config: &Config, model_fingerprint: &str) -> anyhow::Result<Hmm> {
    ensure!(texts.len() >= 10, "distillation needs at least 10 samples");
    // Every 10th sample is held out: the score that tells overfitting from learning. Each
    // sample is learnt twice: as written, and as it reads inside a JSON string. Formats are
    // mostly JSON, and a model trained only on raw text (raw newlines, bare quotes) sees every
    // string field as a place where its text cannot go on, so it pushes to close fields early.
    let (mut train, mut heldout) = (Vec::new(), Vec::new());
    for (i, t) in texts.iter().enumerate() {
        let part = if i % 10 == 9 { &mut heldout } else { &mut train };
        part.push(t.clone());
        part.push(json_string_body(t));
    }
    let heldout_bytes: usize = heldout.iter().map(|t| t.len() + 1).sum();
    let train_bytes: usize = train.iter().map(|t| t.len() + 1).sum();
    let mut hmm = if config.resume && config.out.exists() {
        let (hmm, info) = Hmm::load(&config.out)?;
        ensure!(info.model == model_fingerprint, "{} was distilled from another model", config.out.display());
        ensure!(
            hmm.hidden() == config.hidden,
            "{} has {} hidden states, not {}",
            config.out.display(),
            hmm.hidden(),
            config.hidden
        );
        eprintln!("resuming from {}", config.out.display());
        hmm
    } else {
        em::initial(config.hidden, &train, config.seed)
    };
    let score = |hmm: &Hmm| heldout.iter().map(|t| hmm.log_likelihood(t)).sum::<f64>() / heldout_bytes as f64;
    eprintln!(
        "EM: {} hidden states, {} training samples ({train_bytes} bytes), {} held out ({heldout_bytes} bytes); held-out log-likelihood per byte {:.4}",
        config.hidden,
        train.len(),
        heldout.len(),
        score(&hmm)
    );
    for iteration in 1..=config.iterations {
        let start = Instant::now();
        let (next, train_ll) = em::step(&hmm, &train, config.threads, PSEUDOCOUNT);
        hmm = next;
        let heldout_ll = score(&hmm);
        eprintln!(
            "iteration {iteration}/{}: train {:.4} nats/byte, held-out {heldout_ll:.4} nats/byte ({:.1} s)",
            config.iterations,
            train_ll / train_bytes as f64,
            start.elapsed().as_secs_f64()
        );
        let info = TpmInfo {
            model: model_fingerprint.to_string(),
            notes: json!({
                "samples": texts.len(),
                "train_bytes": train_bytes,
                "heldout_bytes": heldout_bytes,
                "heldout_nats_per_byte": heldout_ll,
                "iterations": iteration,
                "max_tokens": config.max_tokens,
                "temperature": config.temperature,
                "seed": config.seed,
            }),
        };
        hmm.save(&config.out, &info)?;
    }
    Ok(hmm)
}
