//! GSM8K: grade-school math word problems (`{question, answer}`, the answer ending `#### N`).
//! Format `{"reasoning": string, "answer": integer}`; correct = the final integer matches.

use anyhow::Context;
use serde_json::{json, Value};

use super::{output_json, user, Gold, Task};
use crate::ab::format::TaskFormat;

pub fn task(line: usize, item: &Value) -> anyhow::Result<Task> {
    let question = item["question"].as_str().context("no `question` string")?;
    let answer = item["answer"].as_str().context("no `answer` string")?;
    let gold = answer.rsplit_once("####").context("the answer has no `#### N`")?.1;
    let gold: i64 =
        gold.trim().replace(',', "").parse().with_context(|| format!("the gold answer {gold:?} is not an integer"))?;
    let schema = json!({
        "type": "object",
        "properties": {"reasoning": {"type": "string"}, "answer": {"type": "integer"}},
        "required": ["reasoning", "answer"],
    });
    Ok(Task {
        id: format!("gsm8k-{}", line + 1),
        messages: vec![user(question.to_string())],
        instructions: "Answer with only a JSON object {\"reasoning\": string, \"answer\": integer}: your step-by-step \
                       reasoning in `reasoning`, then the final number alone in `answer`."
            .into(),
        format: TaskFormat::json_schema(schema)?,
        gold: Gold::Integer(gold),
    })
}

/// The model's final answer: the `answer` field when the output holds a JSON object with one
/// (raw or in a code fence), else the last number in the text. The fallback scores the task even
/// when an arm ignores the format; compliance is reported separately.
pub fn answer(output: &str) -> Option<i64> {
    if let Some(Value::Object(object)) = output_json(output) {
        return match object.get("answer")? {
            Value::Number(n) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
            Value::String(s) => last_number(s),
            _ => None,
        };
    }
    last_number(output)
}

/// The last number in `text` (thousands separators allowed), if it is an integer.
fn last_number(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let end = bytes.iter().rposition(u8::is_ascii_digit)? + 1;
    let mut start = end;
    while start > 0
        && (bytes[start - 1].is_ascii_digit()
            || (bytes[start - 1] == b',' && start >= 2 && bytes[start - 2].is_ascii_digit()))
    {
        start -= 1;
    }
    // "12.5" is not an integer answer ("costs $12." is).
    if start >= 2 && bytes[start - 1] == b'.' && bytes[start - 2].is_ascii_digit() {
        return None;
    }
    let value: i64 = text[start..end].replace(',', "").parse().ok()?;
    Some(if start > 0 && bytes[start - 1] == b'-' { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(answer: &str) -> Value {
        json!({"question": "How many?", "answer": answer})
    }

    #[test]
    fn the_gold_answer_follows_the_hashes() {
        let seven = task(0, &item("3 + 4 = <<3+4=7>>7\n#### 7")).unwrap();
        assert!(matches!(seven.gold, Gold::Integer(7)));
        assert!(matches!(task(0, &item("so\n#### 276,000")).unwrap().gold, Gold::Integer(276000)));
        assert!(task(0, &item("no marker")).is_err());
    }

    #[test]
    fn answers_from_json_fences_and_prose() {
        assert_eq!(answer(r#"{"reasoning":"16-3-4=9, 9*2=18","answer":18}"#), Some(18));
        assert_eq!(answer("```json\n{\"reasoning\": \"...\", \"answer\": 18}\n```"), Some(18));
        assert_eq!(answer(r#"{"reasoning":"x","answer":"$1,200"}"#), Some(1200));
        assert_eq!(answer(r#"{"reasoning":"x","answer":-3}"#), Some(-3));
        assert_eq!(answer("She makes 9 * 2 = $18 every day."), Some(18));
        assert_eq!(answer("The total is 1,250."), Some(1250));
        assert_eq!(answer("It is 2.5 hours"), None);
        assert_eq!(answer("no number"), None);
        // A JSON object without an answer scores nothing, even if its reasoning has numbers.
        assert_eq!(answer(r#"{"reasoning":"9*2=18"}"#), None);
    }

    #[test]
    fn scoring_right_and_wrong() {
        let t = task(0, &item("#### 18")).unwrap();
        assert_eq!(t.gold.correct(r#"{"reasoning":"9*2","answer":18}"#, true), Some(true));
        assert_eq!(t.gold.correct(r#"{"reasoning":"9*2","answer":19}"#, true), Some(false));
        assert_eq!(t.gold.correct("So she makes $18.", false), Some(true));
        assert!(t.format.complies(r#"{"reasoning":"9*2","answer":18}"#));
        assert!(!t.format.complies(r#"{"reasoning":"9*2","answer":"18"}"#));
    }
}
