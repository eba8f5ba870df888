//! One worker process per engine. The parent sends one schema with its instances per line and
//! waits for the answer line with a timeout; a worker that runs past it is killed and replaced
//! (a timeout), one that dies is replaced too (a crash). So a pathological schema, a runaway
//! allocation or an abort inside a peer costs one schema, never the run. A peer that lives in a
//! helper process of the worker's (XGrammar's Python) goes with it: it dies with the worker, and
//! the worker exits when the helper dies.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use conform::format::canonical_json_ordered;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engines::{Grammar, Vocabulary};

/// What the parent sends: a schema and its test instances.
#[derive(Serialize, Deserialize)]
pub struct Job {
    pub schema: Value,
    pub valid: Vec<Value>,
    pub invalid: Vec<Value>,
}

/// What a worker answers for one job.
#[derive(Serialize, Deserialize, Default, Clone)]
pub struct Answer {
    /// Compile time up to the first mask, in µs; absent when compilation failed.
    pub compile_us: Option<f64>,
    pub error: Option<String>,
    /// Every timed step (mask + commit) over the valid instances, in µs.
    pub mask_us: Vec<f64>,
    /// Per valid instance: accepted to the end.
    pub valid: Vec<bool>,
    /// Per invalid instance: (wrongly) accepted to the end.
    pub invalid: Vec<bool>,
}

/// The worker's main loop: load the vocabulary and the engine, then answer jobs from stdin.
pub fn serve(engine_name: &str, vocab_path: &Path) -> Result<(), String> {
    let vocab = Vocabulary::load(vocab_path)?;
    let mut engine = vocab.engine(engine_name)?;
    let order = engine.key_order();
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())?;
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| e.to_string())?;
        let job: Job = serde_json::from_str(&line).map_err(|e| e.to_string())?;
        let tokens = |data: &Value| vocab.tokenize(&canonical_json_ordered(data, Some(&job.schema), order));
        if engine.runs_jobs() {
            let valid = job.valid.iter().map(&tokens).collect::<Result<Vec<_>, _>>()?;
            let invalid = job.invalid.iter().map(&tokens).collect::<Result<Vec<_>, _>>()?;
            let answer = engine.run_job(&job.schema, &valid, &invalid)?;
            writeln!(out, "{}", serde_json::to_string(&answer).unwrap()).map_err(|e| e.to_string())?;
            out.flush().map_err(|e| e.to_string())?;
            continue;
        }
        let mut answer = Answer::default();
        let t0 = Instant::now();
        match engine.compile(&job.schema) {
            Err(e) => answer.error = Some(e),
            Ok(mut grammar) => {
                answer.compile_us = Some(t0.elapsed().as_secs_f64() * 1e6);
                for data in &job.valid {
                    let ok = run_instance(grammar.as_mut(), &tokens(data)?, Some(&mut answer.mask_us));
                    answer.valid.push(ok);
                }
                for data in &job.invalid {
                    let ok = run_instance(grammar.as_mut(), &tokens(data)?, None);
                    answer.invalid.push(ok);
                }
            }
        }
        writeln!(out, "{}", serde_json::to_string(&answer).unwrap()).map_err(|e| e.to_string())?;
        out.flush().map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Feed `tokens` through the grammar; true when every token was allowed and the end is too.
fn run_instance(grammar: &mut dyn Grammar, tokens: &[u32], mut times: Option<&mut Vec<f64>>) -> bool {
    grammar.restart();
    for &t in tokens {
        grammar.prepare();
        let t0 = Instant::now();
        let ok = grammar.step(t);
        let us = t0.elapsed().as_secs_f64() * 1e6;
        if let Some(times) = times.as_deref_mut() {
            times.push(us);
        }
        if !ok {
            return false;
        }
    }
    grammar.accepts_end()
}

/// How one job ended, seen from the parent.
pub enum Outcome {
    Done(Answer),
    Timeout,
    Crash,
}

/// The parent's handle on a worker process.
pub struct Worker {
    pub engine: String,
    vocab: PathBuf,
    mem_limit_mb: u64,
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Worker {
    pub fn spawn(engine: &str, vocab: &Path, mem_limit_mb: u64) -> Result<Worker, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        // The address-space limit turns a runaway allocation into a crash of this worker.
        let script = format!("ulimit -v {} && exec \"$0\" \"$@\"", mem_limit_mb * 1024);
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .arg(&exe)
            .args(["--worker", engine, "--vocab"])
            .arg(vocab)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting a worker: {e}"))?;
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut w = Worker { engine: engine.into(), vocab: vocab.into(), mem_limit_mb, child, stdin, lines };
        match w.lines.recv_timeout(Duration::from_secs(600)) {
            Ok(l) if l == "ready" => Ok(w),
            _ => {
                let _ = w.child.kill();
                let _ = w.child.wait();
                Err(format!(
                    "the {engine} worker did not start (run `maskbench --worker {engine} --vocab {}` to see why)",
                    vocab.display()
                ))
            }
        }
    }

    /// Run one job; on a timeout or a crash the worker is replaced before returning.
    pub fn run(&mut self, job: &str, timeout: Duration) -> Result<Outcome, String> {
        let sent = writeln!(self.stdin, "{job}").and_then(|_| self.stdin.flush());
        let outcome = match sent {
            Err(_) => Outcome::Crash,
            Ok(()) => match self.lines.recv_timeout(timeout) {
                Ok(line) => match serde_json::from_str(&line) {
                    Ok(a) => return Ok(Outcome::Done(a)),
                    Err(_) => Outcome::Crash,
                },
                Err(RecvTimeoutError::Timeout) => Outcome::Timeout,
                Err(RecvTimeoutError::Disconnected) => Outcome::Crash,
            },
        };
        let _ = self.child.kill();
        let _ = self.child.wait();
        *self = Worker::spawn(&self.engine, &self.vocab, self.mem_limit_mb)?;
        Ok(outcome)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
