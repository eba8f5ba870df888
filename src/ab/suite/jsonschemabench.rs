//! JSONSchemaBench (`{id, subset, schema, tests}` per line): write an instance of the schema.
//! The task is the format itself, so accuracy is compliance.

use anyhow::Context;
use serde_json::Value;

use super::{user, Gold, Task};
use crate::ab::format::TaskFormat;

pub fn task(line: usize, item: &Value) -> anyhow::Result<Task> {
    let schema = item.get("schema").context("no `schema`")?;
    let id = match &item["id"] {
        Value::String(s) => s.clone(),
        Value::Null => format!("schema-{}", line + 1),
        other => other.to_string(),
    };
    Ok(Task {
        id,
        messages: vec![user(format!("Write an example JSON document that is valid under this JSON Schema (an instance of the schema, not the schema itself):\n{schema}"))],
        instructions: "Answer with only the JSON document: no code fence, no other text.".into(),
        format: TaskFormat::json_schema(schema.clone())?,
        gold: Gold::Compliance,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accuracy_is_compliance() {
        let item = json!({"id": "x", "subset": "s", "schema": {"type": "object", "properties": {"n": {"type": "integer", "maximum": 3}}, "required": ["n"]}, "tests": []});
        let t = task(0, &item).unwrap();
        assert_eq!(t.id, "x");
        for (output, valid) in
            [(r#"{"n":3}"#, true), (r#"{"n":4}"#, false), ("{}", false), ("```json\n{\"n\":3}\n```", false)]
        {
            let compliant = t.format.complies(output);
            assert_eq!(compliant, valid, "{output}");
            assert_eq!(t.gold.correct(output, compliant), Some(valid));
        }
    }
}
