//! IFEval (`input_data*.jsonl`: `{key, prompt, instruction_id_list, kwargs}`): the prompt states
//! its instructions, the mask arm sends them as `response_format: {"type": "instructions"}`,
//! and scoring is IFEval's strict check per instruction (`format::instructions::check`).
//! Accuracy is prompt-level strict accuracy (every instruction followed); the report adds
//! instruction-level accuracy per arm and per id.

use anyhow::Context;
use serde_json::{Map, Value};

use super::{user, Gold, Task};
use crate::ab::format::TaskFormat;

pub fn task(line: usize, item: &Value) -> anyhow::Result<Task> {
    let prompt = item["prompt"].as_str().context("`prompt` (a string) is required")?;
    let ids = item["instruction_id_list"].as_array().context("`instruction_id_list` (an array) is required")?;
    let kwargs = item["kwargs"].as_array().context("`kwargs` (an array) is required")?;
    anyhow::ensure!(ids.len() == kwargs.len(), "`instruction_id_list` and `kwargs` differ in length");
    let list: Vec<Value> = ids
        .iter()
        .zip(kwargs)
        .map(|(id, kwargs)| {
            // IFEval pads kwargs with nulls; the API form names only the arguments given.
            let mut entry: Map<String, Value> = kwargs
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            entry.insert("id".into(), id.clone());
            Value::Object(entry)
        })
        .collect();
    let id = match &item["key"] {
        Value::Null => format!("item-{}", line + 1),
        key => key.to_string(),
    };
    Ok(Task {
        id,
        messages: vec![user(prompt.to_string())],
        // The prompt already says what to do.
        instructions: String::new(),
        format: TaskFormat::writing_instructions(Value::Array(list))?,
        gold: Gold::Compliance,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn items_are_read_and_scored_per_instruction() {
        let item = json!({"key": 7, "prompt": "Write about cats without commas, in lowercase.",
            "instruction_id_list": ["punctuation:no_comma", "change_case:english_lowercase"],
            "kwargs": [{"num_words": null}, {}]});
        let task = task(0, &item).unwrap();
        assert_eq!(task.id, "7");
        assert!(task.format.complies("cats are nice"));
        assert!(!task.format.complies("cats, are nice"));
        assert!(!task.format.complies("Cats are nice"));
        let followed = task.format.followed("Cats are nice").unwrap();
        assert_eq!(
            followed,
            vec![("punctuation:no_comma".to_string(), true), ("change_case:english_lowercase".to_string(), false)]
        );
        assert_eq!(task.gold.correct("Cats are nice", false), Some(false));
        let fields = task.format.request_fields();
        assert_eq!(fields["response_format"]["type"], "instructions");
        assert_eq!(fields["response_format"]["instructions"][0], json!({"id": "punctuation:no_comma"}));
    }

    #[test]
    fn bad_items_are_errors() {
        let bad = json!({"prompt": "p", "instruction_id_list": ["nope:x"], "kwargs": [{}]});
        assert!(task(0, &bad).is_err());
        let short = json!({"prompt": "p", "instruction_id_list": ["punctuation:no_comma"], "kwargs": []});
        assert!(task(0, &short).is_err());
    }
}
