//! A user's own tasks: JSONL of `{"prompt", "format", "expected"?, "id"?}` where `format` is
//! `{"json_schema": {...}}`, `{"regex": "..."}` or `{"choice": [...]}`. Correct = the trimmed
//! output equals `expected`; items without `expected` are not scored.

use anyhow::Context;
use serde::Deserialize;
use serde_json::Value;

use super::{user, Gold, Task};
use crate::ab::format::TaskFormat;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Item {
    id: Option<String>,
    prompt: String,
    format: Format,
    expected: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Format {
    JsonSchema(Value),
    Regex(String),
    Choice(Vec<String>),
}

pub fn task(line: usize, item: &Value) -> anyhow::Result<Task> {
    let item = Item::deserialize(item).context(
        "expected {\"prompt\", \"format\": {\"json_schema\"|\"regex\"|\"choice\": ...}, \"expected\"?, \"id\"?}",
    )?;
    let format = match item.format {
        Format::JsonSchema(schema) => TaskFormat::json_schema(schema)?,
        Format::Regex(pattern) => TaskFormat::regex(&pattern)?,
        Format::Choice(choices) => TaskFormat::choice(choices)?,
    };
    Ok(Task {
        id: item.id.unwrap_or_else(|| format!("item-{}", line + 1)),
        messages: vec![user(item.prompt)],
        instructions: format.instructions(),
        format,
        gold: Gold::Exact(item.expected),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_format_kind_is_read_and_scored() {
        let choice =
            task(0, &json!({"prompt": "Is water wet?", "format": {"choice": ["yes", "no"]}, "expected": "yes"}))
                .unwrap();
        assert_eq!(choice.id, "item-1");
        assert!(choice.format.complies("yes"));
        assert_eq!(choice.gold.correct(" yes\n", false), Some(true));
        assert_eq!(choice.gold.correct("no", true), Some(false));

        let regex = task(1, &json!({"id": "r", "prompt": "Year?", "format": {"regex": "[0-9]{4}"}})).unwrap();
        assert_eq!(regex.id, "r");
        assert!(regex.format.complies("1969") && !regex.format.complies("in 1969"));
        assert_eq!(regex.gold.correct("1969", true), None);

        let schema =
            task(2, &json!({"prompt": "p", "format": {"json_schema": {"type": "boolean"}}, "expected": "true"}))
                .unwrap();
        assert!(schema.format.complies("true") && !schema.format.complies("yes"));
        assert!(schema.instructions.contains("JSON Schema"));
    }

    #[test]
    fn malformed_items_are_errors() {
        assert!(task(0, &json!({"prompt": "p", "format": {"grammar": "x"}})).is_err());
        assert!(task(0, &json!({"prompt": "p", "format": {"regex": "("}})).is_err());
        assert!(task(0, &json!({"format": {"regex": "a"}})).is_err());
    }
}
