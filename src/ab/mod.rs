//! `conform ab`: runs a task suite under several decoding arms (free, mask, lookahead with the
//! distilled or a uniform TPM, decoupled), each with the run's prompt or its own, and reports
//! compliance, task accuracy and cost per arm, and paired comparisons between arms.
//!
//! Everything goes through one OpenAI-compatible HTTP client ([`client`]): without `--server`
//! the CLI starts our own server in-process on a loopback port, so the in-process run and an A/B
//! of a foreign server are the same code path, and an arm is only a difference in the request
//! (`mask` sends the format fields, `free` does not). Compliance and accuracy are computed here
//! from the raw output ([`format`], [`suite`]), never taken from the server.

pub mod client;
pub mod format;
pub mod html;
pub mod progress;
pub mod report;
pub mod suite;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::ensure;
use futures::StreamExt;
use serde_json::{json, Value};

use client::Endpoint;
use format::TaskFormat;
use report::{InstructionResult, ItemResult, Report};
use suite::{Prompt, Suite, Task};

/// How an arm decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoding {
    /// Unconstrained decoding; the format is only checked.
    Free,
    /// The format's token mask at every step (the server's default mode).
    Mask,
    /// The mask, reweighted by the model's distilled TPM (`format_mode: "lookahead"`).
    Lookahead,
    /// The ablation: lookahead with a uniform TPM (`format_options.tpm: "uniform"`).
    LookaheadUniform,
    /// The model answers freely, then the mask formats (`format_mode: "decoupled"`).
    Decoupled,
}

impl Decoding {
    const ALL: [Decoding; 5] =
        [Decoding::Free, Decoding::Mask, Decoding::Lookahead, Decoding::LookaheadUniform, Decoding::Decoupled];

    pub fn name(self) -> &'static str {
        match self {
            Decoding::Free => "free",
            Decoding::Mask => "mask",
            Decoding::Lookahead => "lookahead",
            Decoding::LookaheadUniform => "lookahead-uniform",
            Decoding::Decoupled => "decoupled",
        }
    }
}

/// One arm of a run: how it decodes, and its prompt when it is not the run's `--prompt`
/// (`free:task`, `mask:format`), so arms with different prompts share one report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arm {
    pub decoding: Decoding,
    pub prompt: Option<Prompt>,
}

impl From<Decoding> for Arm {
    fn from(decoding: Decoding) -> Arm {
        Arm { decoding, prompt: None }
    }
}

impl Arm {
    /// `free`, or `free:task` for an arm with its own prompt.
    pub fn name(self) -> String {
        match self.prompt {
            None => self.decoding.name().to_string(),
            Some(prompt) => format!("{}:{}", self.decoding.name(), prompt.name()),
        }
    }

    /// Reads `DECODING[:PROMPT]`.
    pub fn parse(text: &str) -> Result<Arm, String> {
        let (decoding, prompt) = match text.split_once(':') {
            Some((d, p)) => (d, Some(p)),
            None => (text, None),
        };
        let names: Vec<&str> = Decoding::ALL.iter().map(|d| d.name()).collect();
        let decoding = *Decoding::ALL.iter().find(|d| d.name() == decoding).ok_or_else(|| {
            format!("unknown arm `{decoding}`: one of {}, optionally with `:task` or `:format`", names.join(", "))
        })?;
        let prompt = match prompt {
            None => None,
            Some("task") => Some(Prompt::Task),
            Some("format") => Some(Prompt::Format),
            Some(other) => return Err(format!("unknown prompt `{other}` in arm `{text}`: `task` or `format`")),
        };
        Ok(Arm { decoding, prompt })
    }
}

impl serde::Serialize for Arm {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.name())
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Config {
    pub suite: Suite,
    pub data: PathBuf,
    pub arms: Vec<Arm>,
    pub prompt: Prompt,
    pub limit: Option<usize>,
    pub concurrency: usize,
    pub seed: u64,
    pub max_tokens: u32,
    pub temperature: f32,
    /// Sent as `format_options` with the mask arm's format (our server's extension, e.g.
    /// `{"unknown_keywords": "ignore"}` for JSONSchemaBench's vendor keywords).
    pub format_options: Option<Value>,
    /// Sent as `tool_choice` with the constrained arms of a tools suite, instead of the suite's
    /// own ("required" where the gold has calls): `auto` measures calls the model starts itself.
    pub tool_choice: Option<String>,
}

impl Config {
    /// Refuses what cannot run, before any model is loaded.
    pub fn check(&self) -> anyhow::Result<()> {
        ensure!(!self.arms.is_empty(), "give at least one arm (--arms free,mask)");
        for (i, arm) in self.arms.iter().enumerate() {
            ensure!(!self.arms[..i].contains(arm), "the arm `{}` is listed twice", arm.name());
        }
        ensure!(self.concurrency >= 1, "--concurrency must be at least 1");
        ensure!(self.max_tokens >= 1, "--max-tokens must be at least 1");
        Ok(())
    }
}

/// Reads the suite's tasks (the first `limit`); call before loading a model, so a bad file
/// fails fast.
pub fn load_tasks(config: &Config) -> anyhow::Result<Vec<Task>> {
    config.check()?;
    let tasks = suite::load(config.suite, &config.data, config.limit.unwrap_or(usize::MAX))?;
    ensure!(!tasks.is_empty(), "{} holds no task", config.data.display());
    Ok(tasks)
}

/// Runs every task under every arm, `concurrency` requests at a time, with a progress bar.
pub async fn run(config: &Config, tasks: &[Task], endpoint: &Endpoint, model: &str) -> anyhow::Result<Report> {
    let jobs: Vec<(usize, usize)> =
        (0..tasks.len()).flat_map(|t| (0..config.arms.len()).map(move |a| (t, a))).collect();
    let mut progress = progress::Progress::new(jobs.len());
    let mut results = futures::stream::iter(jobs)
        .map(|(t, a)| async move { ((t, a), attempt(config, endpoint, model, &tasks[t], config.arms[a]).await) })
        .buffer_unordered(config.concurrency);
    let mut items = Vec::new();
    while let Some((key, result)) = results.next().await {
        items.push((key, result?));
        progress.tick();
    }
    items.sort_by_key(|(key, _)| *key);
    Ok(Report::new(config, model, tasks.len(), items.into_iter().map(|(_, item)| item).collect()))
}

async fn attempt(
    config: &Config,
    endpoint: &Endpoint,
    model: &str,
    task: &Task,
    arm: Arm,
) -> anyhow::Result<ItemResult> {
    let mut body = json!({
        "model": model,
        "messages": task.prompt(arm.prompt.unwrap_or(config.prompt)),
        "max_tokens": config.max_tokens,
        "temperature": config.temperature,
        "seed": config.seed,
    });
    let free = arm.decoding == Decoding::Free;
    let fields = if free { task.format.free_fields() } else { task.format.request_fields() };
    if let (Value::Object(body), Value::Object(fields)) = (&mut body, fields) {
        body.extend(fields);
    }
    if !free {
        let mut options = config.format_options.clone().unwrap_or_else(|| json!({}));
        match arm.decoding {
            Decoding::Lookahead => body["format_mode"] = json!("lookahead"),
            Decoding::LookaheadUniform => {
                body["format_mode"] = json!("lookahead");
                options["tpm"] = json!("uniform");
            }
            Decoding::Decoupled => body["format_mode"] = json!("decoupled"),
            Decoding::Free | Decoding::Mask => {}
        }
        if options.as_object().is_some_and(|o| !o.is_empty()) {
            body["format_options"] = options;
        }
        if let (Some(choice), TaskFormat::Tools { .. }) = (&config.tool_choice, &task.format) {
            body["tool_choice"] = json!(choice);
        }
    }
    let start = Instant::now();
    let reply = endpoint.chat(&body).await?;
    let latency_s = start.elapsed().as_secs_f64();
    let output =
        if matches!(task.format, TaskFormat::Tools { .. }) { reply.tool_transcript() } else { reply.content.clone() };
    let compliant = reply.error.is_none() && task.format.complies(&output);
    Ok(ItemResult {
        id: task.id.clone(),
        arm,
        correct: task.gold.correct(&output, compliant),
        tool_calls: task.format.call_counts(&output),
        // A refused item follows none of its instructions.
        instructions: task.format.followed(&reply.content).map(|followed| {
            followed
                .into_iter()
                .map(|(id, followed)| InstructionResult { id, followed: followed && reply.error.is_none() })
                .collect()
        }),
        compliant,
        output,
        tokens: reply.completion_tokens,
        finish_reason: reply.finish_reason,
        latency_s,
        error: reply.error,
        format_cost: reply.format_cost,
    })
}
