//! Task suites: each reads its data file into [`Task`]s (chat messages, format, instructions,
//! gold) and knows its own task metric. Compliance is the format's business
//! ([`super::format::TaskFormat`]), so a suite only says what a *correct* answer is.

pub mod bfcl;
pub mod custom;
pub mod gsm8k;
pub mod ifeval;
pub mod jsonschemabench;

use std::path::Path;

use anyhow::Context;
use serde_json::Value;

use super::format::TaskFormat;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Suite {
    Gsm8k,
    Ifeval,
    Jsonschema,
    Bfcl,
    /// BFCL through OpenAI's `tools` (every category, parallel calls included).
    #[serde(rename = "bfcl-tools")]
    BfclTools,
    Custom,
}

impl Suite {
    pub fn name(self) -> &'static str {
        match self {
            Suite::Gsm8k => "gsm8k",
            Suite::Ifeval => "ifeval",
            Suite::Jsonschema => "jsonschema",
            Suite::Bfcl => "bfcl",
            Suite::BfclTools => "bfcl-tools",
            Suite::Custom => "custom",
        }
    }
}

/// What the prompt carries: the task alone, or the task plus instructions about the format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Prompt {
    Task,
    Format,
}

impl Prompt {
    pub fn name(self) -> &'static str {
        match self {
            Prompt::Task => "task",
            Prompt::Format => "format",
        }
    }
}

pub struct Task {
    pub id: String,
    /// The chat messages of the task-only prompt.
    pub messages: Vec<Value>,
    /// Appended to the last message in the `format` prompt variant.
    pub instructions: String,
    pub format: TaskFormat,
    pub gold: Gold,
}

/// What a correct answer is, per suite.
pub enum Gold {
    /// GSM8K: the final integer.
    Integer(i64),
    /// JSONSchemaBench: the task *is* the format, so accuracy is compliance.
    Compliance,
    /// BFCL: the expected call.
    Call(bfcl::Call),
    /// BFCL through `tools`: the expected calls, in any order (none: no call is right).
    Calls(Vec<bfcl::Call>),
    /// Custom: the expected output, if the file gives one (unscored otherwise).
    Exact(Option<String>),
}

impl Gold {
    /// `None` when the item has nothing to score against.
    pub fn correct(&self, output: &str, compliant: bool) -> Option<bool> {
        match self {
            Gold::Integer(n) => Some(gsm8k::answer(output) == Some(*n)),
            Gold::Compliance => Some(compliant),
            Gold::Call(call) => Some(bfcl::call_matches(call, output)),
            Gold::Calls(calls) => Some(bfcl::calls_match(calls, output)),
            Gold::Exact(expected) => expected.as_ref().map(|e| output.trim() == e.trim()),
        }
    }
}

impl Task {
    pub fn prompt(&self, prompt: Prompt) -> Vec<Value> {
        let mut messages = self.messages.clone();
        if prompt == Prompt::Format && !self.instructions.is_empty() {
            if let Some(Value::String(content)) = messages.last_mut().and_then(|m| m.get_mut("content")) {
                content.push_str("\n\n");
                content.push_str(&self.instructions);
            }
        }
        messages
    }
}

/// Reads a suite's data file, up to `limit` tasks.
pub fn load(suite: Suite, path: &Path, limit: usize) -> anyhow::Result<Vec<Task>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let mut tasks = Vec::new();
    for (i, line) in lines {
        if tasks.len() == limit {
            break;
        }
        let value: Value =
            serde_json::from_str(line).with_context(|| format!("{}:{}: not JSON", path.display(), i + 1))?;
        let task = match suite {
            Suite::Gsm8k => gsm8k::task(i, &value),
            Suite::Jsonschema => match jsonschemabench::task(i, &value) {
                Ok(task) => Ok(task),
                Err(e) => {
                    // A schema the independent validator cannot read has no compliance check.
                    eprintln!("skipping {}:{}: {e:#}", path.display(), i + 1);
                    continue;
                }
            },
            Suite::Bfcl => bfcl::task(&value),
            Suite::BfclTools => bfcl::tools_task(&value),
            Suite::Custom => custom::task(i, &value),
            Suite::Ifeval => ifeval::task(i, &value),
        };
        tasks.push(task.with_context(|| format!("{}:{}", path.display(), i + 1))?);
    }
    Ok(tasks)
}

/// The JSON an output holds: the whole output, or the body of its first Markdown code fence
/// (models often wrap JSON in ```json … ```). Used for scoring only, never for compliance.
pub fn output_json(output: &str) -> Option<Value> {
    if let Ok(value) = serde_json::from_str(output.trim()) {
        return Some(value);
    }
    let start = output.find("```")? + 3;
    let body = &output[start..];
    let body = body.strip_prefix("json").unwrap_or(body);
    let end = body.find("```")?;
    serde_json::from_str(body[..end].trim()).ok()
}

pub fn user(content: String) -> Value {
    serde_json::json!({"role": "user", "content": content})
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn output_json_reads_raw_and_fenced_json() {
        assert_eq!(output_json(" {\"a\": 1}\n"), Some(json!({"a": 1})));
        assert_eq!(output_json("Here:\n```json\n{\"a\": 1}\n```\nDone."), Some(json!({"a": 1})));
        assert_eq!(output_json("```\n[1]\n```"), Some(json!([1])));
        assert_eq!(output_json("the answer is {a: 1}"), None);
    }

    #[test]
    fn the_format_variant_appends_instructions_to_the_last_message() {
        let task = Task {
            id: "t".into(),
            messages: vec![json!({"role": "system", "content": "s"}), user("q".into())],
            instructions: "say yes".into(),
            format: TaskFormat::choice(vec!["yes".into()]).unwrap(),
            gold: Gold::Exact(None),
        };
        assert_eq!(task.prompt(Prompt::Task)[1]["content"], "q");
        assert_eq!(task.prompt(Prompt::Format)[1]["content"], "q\n\nsay yes");
        assert_eq!(task.prompt(Prompt::Format)[0]["content"], "s");
    }
}
