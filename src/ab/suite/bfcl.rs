//! BFCL (Berkeley Function Calling Leaderboard), one call per question: `{id, question,
//! function: [f…], ground_truth: [{name: {param: [values]}}]}`. BFCL's types are mapped to JSON
//! Schema. With one function (`simple_python`, `live_simple`) the format is its argument schema
//! and the name is implied; with several (`multiple`) it is `{"name", "arguments"}`, one `anyOf`
//! branch per function. Correct = BFCL's AST check: the right name, and every parameter's value
//! one of its acceptable values (`""` among them: it may be left out), no parameter outside the
//! ground truth.
//!
//! Categories with several calls per question (`parallel`, …) need a format over call lists and
//! are refused with a clear error there; [`tools_task`] (suite `bfcl-tools`) takes every
//! category through OpenAI's `tools` API instead.

use anyhow::{ensure, Context};
use serde_json::{json, Map, Value};

use super::{output_json, Gold, Task};
use crate::ab::format::{TaskFormat, ToolTranscript};

/// The call a BFCL question expects.
pub struct Call {
    /// `None` when there is one function and the output is its arguments alone.
    pub name: Option<String>,
    /// Each parameter's acceptable values.
    pub arguments: Map<String, Value>,
}

pub fn task(item: &Value) -> anyhow::Result<Task> {
    let id = item["id"].as_str().context("no `id`")?.to_string();
    let functions = item["function"].as_array().context("no `function` list")?;
    let truths = item["ground_truth"].as_array().context("no `ground_truth` list")?;
    ensure!(
        !functions.is_empty() && truths.len() == 1,
        "{id}: the bfcl suite takes one call per question (simple_python, live_simple, multiple); this item has {} calls",
        truths.len()
    );
    let (truth_name, arguments) = truths[0].as_object().and_then(|t| t.iter().next()).context("empty ground truth")?;
    let arguments = arguments.as_object().context("ground-truth arguments are not an object")?.clone();
    let mut specs = Vec::new();
    let mut branches = Vec::new();
    for function in functions {
        let name = function["name"].as_str().context("function without `name`")?;
        let parameters = json_schema(&function["parameters"]);
        branches.push(json!({
            "type": "object",
            "properties": {"name": {"const": name}, "arguments": parameters},
            "required": ["name", "arguments"],
        }));
        specs.push(json!({"name": name, "description": function["description"], "parameters": parameters}));
    }
    ensure!(
        specs.iter().any(|f| f["name"] == truth_name.as_str()),
        "{id}: the ground truth calls {truth_name}, which is not offered"
    );
    let (schema, name, intro, instructions) = if let [only] = &specs[..] {
        (
            only["parameters"].clone(),
            None,
            format!(
                "You can call this function:
{only}
To answer the user, give the arguments of the call."
            ),
            format!(
                "Answer with only the arguments of the call of {} as one JSON object, and no other text.",
                only["name"].as_str().unwrap_or_default()
            ),
        )
    } else {
        (
            json!({"anyOf": branches}),
            Some(truth_name.clone()),
            format!("You can call these functions:
{}
To answer the user, choose one and give the call.", Value::Array(specs)),
            "Answer with only one JSON object {\"name\": the function's name, \"arguments\": {...}}, and no other text.".to_string(),
        )
    };
    let mut messages = vec![json!({"role": "system", "content": intro})];
    messages.extend(item["question"][0].as_array().context("`question` is not a list of turns")?.iter().cloned());
    Ok(Task {
        id,
        messages,
        instructions,
        format: TaskFormat::json_schema(schema)?,
        gold: Gold::Call(Call { name, arguments }),
    })
}

/// A BFCL question through OpenAI's `tools`: the functions are the request's tools (the chat
/// template shows them), the question is the conversation, and the answer is the server's
/// `tool_calls`. A question without ground truth (`irrelevance`) expects no call, so there a
/// call is optional (`tool_choice: "auto"`); everywhere else one is required. Parallel calls
/// are allowed where the category expects several (`parallel_tool_calls`, as an agent that
/// knows it wants one call would set it).
pub fn tools_task(item: &Value) -> anyhow::Result<Task> {
    let id = item["id"].as_str().context("no `id`")?.to_string();
    let functions = item["function"].as_array().filter(|f| !f.is_empty()).context("no `function` list")?;
    let tools = functions
        .iter()
        .map(|f| {
            let name = f["name"].as_str().context("function without `name`")?;
            Ok(json!({"type": "function", "function": {
                "name": name, "description": f["description"], "parameters": json_schema(&f["parameters"]),
            }}))
        })
        .collect::<anyhow::Result<Vec<Value>>>()?;
    let mut calls = Vec::new();
    for truth in item["ground_truth"].as_array().into_iter().flatten() {
        let (name, arguments) = truth.as_object().and_then(|t| t.iter().next()).context("empty ground-truth call")?;
        let arguments = arguments.as_object().context("ground-truth arguments are not an object")?.clone();
        calls.push(Call { name: Some(name.clone()), arguments });
    }
    let messages = item["question"][0].as_array().context("`question` is not a list of turns")?.clone();
    let format = TaskFormat::tools(tools, !calls.is_empty(), calls.len() > 1)?;
    Ok(Task { id, messages, instructions: String::new(), format, gold: Gold::Calls(calls) })
}

/// BFCL's check of a tool-call answer (a [`ToolTranscript`]): each expected call is made once,
/// in any order, and no other call is made.
pub fn calls_match(expected: &[Call], output: &str) -> bool {
    let Ok(transcript) = serde_json::from_str::<ToolTranscript>(output) else { return false };
    let made: Vec<Option<(String, Map<String, Value>)>> = transcript
        .tool_calls
        .iter()
        .map(|c| match serde_json::from_str(&c.arguments) {
            Ok(Value::Object(arguments)) => Some((c.name.clone(), arguments)),
            _ => None,
        })
        .collect();
    if made.len() != expected.len() {
        return false;
    }
    // Calls are few: try every assignment of made calls to expected ones.
    fn assign(expected: &[Call], made: &[Option<(String, Map<String, Value>)>], used: &mut Vec<bool>) -> bool {
        let Some((call, rest)) = expected.split_first() else { return true };
        for i in 0..made.len() {
            let Some((name, arguments)) = &made[i] else { continue };
            if !used[i] && call.name.as_deref() == Some(name.as_str()) && object_matches(&call.arguments, arguments) {
                used[i] = true;
                if assign(rest, made, used) {
                    return true;
                }
                used[i] = false;
            }
        }
        false
    }
    assign(expected, &made, &mut vec![false; made.len()])
}

/// BFCL's parameter schema as JSON Schema: `dict` → `object`, `float` → `number`, `tuple` →
/// `array`, `any` → no type; BFCL's `optional` flag is dropped (optional parameters are the
/// ones not in `required` already).
pub fn json_schema(parameters: &Value) -> Value {
    let Value::Object(object) = parameters else { return parameters.clone() };
    let mut out = Map::new();
    for (key, value) in object {
        let value = match (key.as_str(), value) {
            ("type", Value::String(t)) => match t.as_str() {
                "dict" => json!("object"),
                "float" => json!("number"),
                "tuple" => json!("array"),
                "any" => continue,
                _ => value.clone(),
            },
            ("properties", Value::Object(properties)) => {
                Value::Object(properties.iter().map(|(k, v)| (k.clone(), json_schema(v))).collect())
            }
            ("items" | "additionalProperties", _) => json_schema(value),
            ("optional", _) => continue,
            _ => value.clone(),
        };
        out.insert(key.clone(), value);
    }
    Value::Object(out)
}

/// BFCL's check of an output against the expected call.
pub fn call_matches(call: &Call, output: &str) -> bool {
    let Some(Value::Object(output)) = output_json(output) else { return false };
    let arguments = match &call.name {
        None => Some(&output),
        Some(name) => (output.get("name").and_then(Value::as_str) == Some(name))
            .then(|| output.get("arguments").and_then(Value::as_object))
            .flatten(),
    };
    arguments.is_some_and(|arguments| object_matches(&call.arguments, arguments))
}

fn object_matches(truth: &Map<String, Value>, given: &Map<String, Value>) -> bool {
    given.keys().all(|k| truth.contains_key(k))
        && truth.iter().all(|(param, acceptable)| {
            let acceptable = acceptable.as_array().map(Vec::as_slice).unwrap_or(std::slice::from_ref(acceptable));
            match given.get(param) {
                None => acceptable.iter().any(|a| a == ""),
                Some(value) => acceptable.iter().any(|a| value_matches(value, a)),
            }
        })
}

/// Numbers compare by value (an integer passes for a float); strings as BFCL standardises them
/// (case, spaces and `,./-_*^` ignored); lists element-wise; nested objects like arguments.
fn value_matches(given: &Value, acceptable: &Value) -> bool {
    match (given, acceptable) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::String(a), Value::String(b)) => standardize(a) == standardize(b),
        (Value::Array(a), Value::Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| value_matches(x, y)),
        (Value::Object(a), Value::Object(b)) => object_matches(b, a),
        _ => given == acceptable,
    }
}

fn standardize(s: &str) -> String {
    s.chars()
        .filter(|c| !" ,./-_*^".contains(*c))
        .flat_map(char::to_lowercase)
        .map(|c| if c == '\'' { '"' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hypot() -> Value {
        json!({
            "id": "simple_python_2",
            "question": [[{"role": "user", "content": "Hypotenuse of sides 4 and 5?"}]],
            "function": [{"name": "math.hypot", "description": "Euclidean norm.", "parameters": {"type": "dict", "properties": {
                "x": {"type": "integer"}, "y": {"type": "integer"}, "z": {"type": "float", "description": "Optional."}
            }, "required": ["x", "y"]}}],
            "ground_truth": [{"math.hypot": {"x": [4], "y": [5], "z": ["", 0]}}]
        })
    }

    #[test]
    fn types_map_to_json_schema() {
        let mapped = json_schema(&json!({"type": "dict", "properties": {
            "a": {"type": "float", "optional": "True"}, "b": {"type": "tuple", "items": {"type": "dict", "properties": {"c": {"type": "any"}}}}
        }}));
        assert_eq!(
            mapped,
            json!({"type": "object", "properties": {
                "a": {"type": "number"}, "b": {"type": "array", "items": {"type": "object", "properties": {"c": {}}}}
            }})
        );
    }

    #[test]
    fn ground_truth_matching() {
        let t = task(&hypot()).unwrap();
        let correct = |output: &str| t.gold.correct(output, true).unwrap();
        assert!(correct(r#"{"x":4,"y":5}"#));
        assert!(correct(r#"{"x":4,"y":5,"z":0}"#));
        assert!(correct(r#"{"x":4.0,"y":5}"#));
        assert!(correct("```json\n{\"x\": 4, \"y\": 5}\n```"));
        assert!(!correct(r#"{"x":5,"y":4}"#));
        assert!(!correct(r#"{"x":4}"#), "a required parameter is missing");
        assert!(!correct(r#"{"x":4,"y":5,"z":1}"#));
        assert!(!correct(r#"{"x":4,"y":5,"w":1}"#), "a parameter outside the ground truth");
        assert!(!correct("math.hypot(4, 5)"));
        assert!(t.format.complies(r#"{"x":4,"y":5,"z":0.5}"#));
        assert!(!t.format.complies(r#"{"x":4}"#));
    }

    fn transcript(calls: &[(&str, &str)]) -> String {
        let calls: Vec<Value> = calls.iter().map(|(n, a)| json!({"name": n, "arguments": a})).collect();
        json!({"content": null, "tool_calls": calls}).to_string()
    }

    #[test]
    fn tool_calls_are_matched_in_any_order() {
        let mut item = hypot();
        item["ground_truth"] = json!([{"math.hypot": {"x": [4], "y": [5]}}, {"math.hypot": {"x": [1], "y": [2]}}]);
        let t = tools_task(&item).unwrap();
        assert_eq!(t.format.request_fields()["tool_choice"], "required");
        assert_eq!(t.format.request_fields()["parallel_tool_calls"], true);
        assert_eq!(
            t.format.request_fields()["tools"][0]["function"]["parameters"]["properties"]["z"]["type"],
            "number"
        );
        let correct = |output: &str| t.gold.correct(output, true).unwrap();
        assert!(correct(&transcript(&[("math.hypot", r#"{"x":1,"y":2}"#), ("math.hypot", r#"{"x":4,"y":5}"#)])));
        assert!(!correct(&transcript(&[("math.hypot", r#"{"x":4,"y":5}"#)])), "a call is missing");
        assert!(!correct(&transcript(&[("math.hypot", r#"{"x":4,"y":5}"#), ("math.hypot", r#"{"x":4,"y":5}"#)])));
        assert!(
            !correct(&transcript(&[("math.hypot", r#"{"x":1,"y":2}"#), ("math.hypot", r#"{"x":4,"y":5"#)])),
            "arguments do not parse"
        );
        assert!(t.format.complies(&transcript(&[("math.hypot", r#"{"x":1,"y":2}"#)])));
        assert!(!t.format.complies(&transcript(&[("math.hypot", r#"{"x":"1","y":2}"#)])));
        assert!(!t.format.complies(&transcript(&[("math.pow", r#"{"x":1,"y":2}"#)])), "not an offered function");
        assert!(!t.format.complies(&transcript(&[])), "a call is required");
        assert_eq!(
            t.format.call_counts(&transcript(&[("math.hypot", r#"{"x":"1","y":2}"#), ("math.hypot", "{")])),
            Some([2, 1, 0])
        );
        // No ground truth (irrelevance): declining is right, and calls are optional.
        item.as_object_mut().unwrap().remove("ground_truth");
        let t = tools_task(&item).unwrap();
        assert_eq!(t.format.request_fields()["tool_choice"], "auto");
        assert!(t.gold.correct(&transcript(&[]), true).unwrap());
        assert!(t.format.complies(&transcript(&[])));
        assert!(!t.gold.correct(&transcript(&[("math.hypot", r#"{"x":1,"y":2}"#)]), true).unwrap());
    }

    #[test]
    fn strings_lists_and_nested_objects() {
        let truth = json!({
            "city": ["San Francisco, CA"],
            "stops": [["Santa Barbara", "Monterey"]],
            "conditions": [{"department": ["Science"], "school": ["Bluebird High School", "Bluebird HS"]}]
        });
        let call = Call { name: None, arguments: truth.as_object().unwrap().clone() };
        let ok = r#"{"city":"san francisco CA","stops":["Santa Barbara","monterey"],"conditions":{"department":"science","school":"Bluebird HS"}}"#;
        assert!(call_matches(&call, ok));
        let wrong_order = r#"{"city":"San Francisco, CA","stops":["Monterey","Santa Barbara"],"conditions":{"department":"Science","school":"Bluebird HS"}}"#;
        assert!(!call_matches(&call, wrong_order));
        let wrong_school = r#"{"city":"San Francisco, CA","stops":["Santa Barbara","Monterey"],"conditions":{"department":"Science","school":"Redbird"}}"#;
        assert!(!call_matches(&call, wrong_school));
    }

    #[test]
    fn several_functions_name_the_call() {
        let mut item = hypot();
        item["function"].as_array_mut().unwrap().push(json!({"name": "math.pow", "description": "Power.", "parameters": {
            "type": "dict", "properties": {"base": {"type": "float"}, "exponent": {"type": "integer"}}, "required": ["base", "exponent"]
        }}));
        let t = task(&item).unwrap();
        let correct = |output: &str| t.gold.correct(output, true).unwrap();
        assert!(correct(r#"{"name":"math.hypot","arguments":{"x":4,"y":5}}"#));
        assert!(!correct(r#"{"name":"math.pow","arguments":{"x":4,"y":5}}"#), "the wrong function");
        assert!(!correct(r#"{"x":4,"y":5}"#), "no name");
        assert!(!correct(r#"{"name":"math.hypot","arguments":{"x":4,"y":6}}"#));
        assert!(t.format.complies(r#"{"name":"math.pow","arguments":{"base":2.5,"exponent":2}}"#));
        assert!(!t.format.complies(r#"{"name":"math.pow","arguments":{"x":4,"y":5}}"#));
        assert!(!t.format.complies(r#"{"name":"math.sqrt","arguments":{}}"#));
    }

    #[test]
    fn several_calls_are_refused() {
        let mut item = hypot();
        item["ground_truth"].as_array_mut().unwrap().push(json!({"math.hypot": {"x": [1], "y": [2]}}));
        assert!(task(&item).err().unwrap().to_string().contains("one call per question"));
    }
}
