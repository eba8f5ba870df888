//! BFCL (Berkeley Function Calling Leaderboard), one call per question: `{id, question,
//! function: [f…], ground_truth: [{name: {param: [values]}}]}`. BFCL's types are mapped to JSON
//! Schema. With one function (`simple_python`, `live_simple`) the format is its argument schema
//! and the name is implied; with several (`multiple`) it is `{"name", "arguments"}`, one `anyOf`
//! branch per function. Correct = BFCL's AST check: the right name, and every parameter's value
//! one of its acceptable values (`""` among them: it may be left out), no parameter outside the
//! ground truth.
//!
//! Categories with several calls per question (`parallel`, …) need a format over call lists and
//! are refused with a clear error.

use anyhow::{ensure, Context};
use serde_json::{json, Map, Value};

use super::{output_json, Gold, Task};
use crate::ab::format::TaskFormat;

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
    ensure!(specs.iter().any(|f| f["name"] == truth_name.as_str()), "{id}: the ground truth calls {truth_name}, which is not offered");
    let (schema, name, intro, instructions) = if let [only] = &specs[..] {
        (
            only["parameters"].clone(),
            None,
            format!("You can call this function:
{only}
To answer the user, give the arguments of the call."),
            format!("Answer with only the arguments of the call of {} as one JSON object, and no other text.", only["name"].as_str().unwrap_or_default()),
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
    Ok(Task { id, messages, instructions, format: TaskFormat::json_schema(schema)?, gold: Gold::Call(Call { name, arguments }) })
}

/// BFCL's parameter schema as JSON Schema: `dict` → `object`, `float` → `number`, `tuple` →
/// `array`, `any` → no type.
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
        Some(name) => (output.get("name").and_then(Value::as_str) == Some(name)).then(|| output.get("arguments").and_then(Value::as_object)).flatten(),
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
    s.chars().filter(|c| !" ,./-_*^".contains(*c)).flat_map(char::to_lowercase).map(|c| if c == '\'' { '"' } else { c }).collect()
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
            "a": {"type": "float"}, "b": {"type": "tuple", "items": {"type": "dict", "properties": {"c": {"type": "any"}}}}
        }}));
        assert_eq!(mapped, json!({"type": "object", "properties": {
            "a": {"type": "number"}, "b": {"type": "array", "items": {"type": "object", "properties": {"c": {}}}}
        }}));
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
