//! A task's output format: the request fields that ask a server for it, the words that ask the
//! model for it, and our own compliance check.
//!
//! Compliance is always judged here, never taken from the server's report: a foreign server may
//! ignore the format, and our own server must not grade itself. JSON Schemas are checked with the
//! independent `jsonschema` crate; regexes and choices with our compiler's automaton, which is
//! exactly the language the request names (anchored, whole output).

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::format::instructions::{check, parse_list, Instruction};
use crate::format::{compile_choice, compile_regex, Automaton, Limits};

#[derive(Clone)]
pub enum TaskFormat {
    JsonSchema {
        schema: Value,
        validator: Arc<jsonschema::Validator>,
    },
    Regex {
        pattern: String,
        automaton: Arc<Automaton>,
    },
    Choice {
        choices: Vec<String>,
        automaton: Arc<Automaton>,
    },
    /// IFEval writing instructions: the API list as sent, and its parsed form.
    Instructions {
        list: Value,
        parsed: Arc<Vec<Instruction>>,
    },
    /// OpenAI tool calls: the tools as sent, whether a call is required, whether several may
    /// be made, and each function's argument validator. Outputs are [`ToolTranscript`]s.
    Tools {
        tools: Vec<Value>,
        required: bool,
        parallel: bool,
        validators: HashMap<String, Arc<jsonschema::Validator>>,
    },
}

/// A tool-call answer as recorded: the message's text and its calls, arguments as sent (a
/// JSON string that may not parse).
#[derive(Serialize, Deserialize, Debug, Default)]
pub struct ToolTranscript {
    pub content: Option<String>,
    pub tool_calls: Vec<RawCall>,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct RawCall {
    pub name: String,
    pub arguments: String,
}

impl TaskFormat {
    pub fn json_schema(schema: Value) -> anyhow::Result<Self> {
        let validator = jsonschema::validator_for(&schema)
            .map_err(|e| anyhow::anyhow!("the jsonschema crate rejects the schema: {e}"))?;
        Ok(TaskFormat::JsonSchema { schema, validator: Arc::new(validator) })
    }

    pub fn regex(pattern: &str) -> anyhow::Result<Self> {
        let automaton = compile_regex(pattern, &Limits::default()).with_context(|| format!("regex {pattern:?}"))?;
        Ok(TaskFormat::Regex { pattern: pattern.to_string(), automaton: Arc::new(automaton) })
    }

    pub fn choice(choices: Vec<String>) -> anyhow::Result<Self> {
        let automaton = compile_choice(&choices, &Limits::default()).context("choice list")?;
        Ok(TaskFormat::Choice { choices, automaton: Arc::new(automaton) })
    }

    /// `tools` in OpenAI's request shape; `required`: an answer must call one; `parallel`: it
    /// may make several calls.
    pub fn tools(tools: Vec<Value>, required: bool, parallel: bool) -> anyhow::Result<Self> {
        let mut validators = HashMap::new();
        for tool in &tools {
            let name = tool["function"]["name"].as_str().context("a tool without a function name")?;
            let validator = jsonschema::validator_for(&tool["function"]["parameters"])
                .map_err(|e| anyhow::anyhow!("the jsonschema crate rejects the parameters of {name}: {e}"))?;
            validators.insert(name.to_string(), Arc::new(validator));
        }
        Ok(TaskFormat::Tools { tools, required, parallel, validators })
    }

    pub fn writing_instructions(list: Value) -> anyhow::Result<Self> {
        let parsed = parse_list(&list).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(TaskFormat::Instructions { list, parsed: Arc::new(parsed) })
    }

    /// The request fields that constrain the output: OpenAI's `response_format` for schemas,
    /// vLLM's `guided_*` for the rest (the spellings other servers understand too).
    pub fn request_fields(&self) -> Value {
        match self {
            TaskFormat::JsonSchema { schema, .. } => json!({
                "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
            }),
            TaskFormat::Regex { pattern, .. } => json!({"guided_regex": pattern}),
            TaskFormat::Choice { choices, .. } => json!({"guided_choice": choices}),
            TaskFormat::Instructions { list, .. } => {
                json!({"response_format": {"type": "instructions", "instructions": list}})
            }
            TaskFormat::Tools { tools, required, parallel, .. } => json!({
                "tools": tools, "tool_choice": if *required { "required" } else { "auto" }, "parallel_tool_calls": parallel,
            }),
        }
    }

    /// The request fields of the unconstrained arm: none, except that tools must still be shown
    /// to the model (`format_mode: "free"` asks our server not to constrain the calls; other
    /// servers leave `"auto"` calls unconstrained anyway).
    pub fn free_fields(&self) -> Value {
        match self {
            TaskFormat::Tools { tools, parallel, .. } => json!({
                "tools": tools, "tool_choice": "auto", "parallel_tool_calls": parallel, "format_mode": "free",
            }),
            _ => json!({}),
        }
    }

    /// Format instructions for the prompt, when the suite has none of its own.
    pub fn instructions(&self) -> String {
        match self {
            TaskFormat::JsonSchema { schema, .. } => {
                format!(
                    "Answer with only a JSON value that is valid under this JSON Schema, and no other text:\n{schema}"
                )
            }
            TaskFormat::Regex { pattern, .. } => {
                format!("Answer with only text that fully matches this regular expression, and nothing else: {pattern}")
            }
            TaskFormat::Choice { choices, .. } => {
                format!("Answer with exactly one of these, and nothing else: {}", choices.join(" | "))
            }
            // IFEval prompts state their instructions themselves; tools are in the chat template.
            TaskFormat::Instructions { .. } | TaskFormat::Tools { .. } => String::new(),
        }
    }

    /// Whether the raw output, byte for byte, is in the format.
    pub fn complies(&self, output: &str) -> bool {
        match self {
            TaskFormat::JsonSchema { validator, .. } => {
                serde_json::from_str::<Value>(output).is_ok_and(|value| validator.is_valid(&value))
            }
            TaskFormat::Regex { automaton, .. } | TaskFormat::Choice { automaton, .. } => {
                automaton.accepts(output.as_bytes())
            }
            TaskFormat::Instructions { parsed, .. } => check::follows_all(parsed, output),
            TaskFormat::Tools { required, .. } => match self.call_counts(output) {
                Some([made, _, valid]) => valid == made && (made > 0 || !required),
                None => false,
            },
        }
    }

    /// For tool formats: `[calls made, calls whose arguments parse as a JSON object, calls of
    /// an offered function whose arguments validate]`.
    pub fn call_counts(&self, output: &str) -> Option<[usize; 3]> {
        let TaskFormat::Tools { validators, .. } = self else { return None };
        let transcript: ToolTranscript = serde_json::from_str(output).unwrap_or_default();
        let mut counts = [transcript.tool_calls.len(), 0, 0];
        for call in &transcript.tool_calls {
            let Ok(arguments @ Value::Object(_)) = serde_json::from_str::<Value>(&call.arguments) else { continue };
            counts[1] += 1;
            if validators.get(&call.name).is_some_and(|v| v.is_valid(&arguments)) {
                counts[2] += 1;
            }
        }
        Some(counts)
    }

    /// For instruction formats, each instruction's id and whether the output follows it.
    pub fn followed(&self, output: &str) -> Option<Vec<(String, bool)>> {
        let TaskFormat::Instructions { list, parsed } = self else { return None };
        let ids =
            list.as_array().into_iter().flatten().map(|entry| entry["id"].as_str().unwrap_or_default().to_string());
        Some(ids.zip(parsed.iter()).map(|(id, instruction)| (id, check::follows(instruction, output))).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compliance_is_checked_on_the_raw_output() {
        let schema = TaskFormat::json_schema(
            json!({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}),
        )
        .unwrap();
        assert!(schema.complies(r#"{"a":1}"#));
        assert!(schema.complies(r#"{ "a": 1 }"#));
        assert!(!schema.complies(r#"{"a":"1"}"#));
        assert!(!schema.complies("```json\n{\"a\":1}\n```"));
        assert!(!schema.complies(r#"{"a":1"#));

        let regex = TaskFormat::regex(r"\d{3}-\d{4}").unwrap();
        assert!(regex.complies("555-1234"));
        assert!(!regex.complies("call 555-1234"));
        assert!(!regex.complies("555-1234\n"));

        let choice = TaskFormat::choice(vec!["yes".into(), "no".into()]).unwrap();
        assert!(choice.complies("no"));
        assert!(!choice.complies("No"));
        assert!(!choice.complies("maybe"));
    }

    #[test]
    fn request_fields_name_the_format() {
        let regex = TaskFormat::regex("a+").unwrap();
        assert_eq!(regex.request_fields(), json!({"guided_regex": "a+"}));
        let schema = TaskFormat::json_schema(json!({"type": "integer"})).unwrap();
        assert_eq!(schema.request_fields()["response_format"]["json_schema"]["schema"], json!({"type": "integer"}));
    }
}
