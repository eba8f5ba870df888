//! Tool calls with XML parameters (Qwen3-Coder, Qwen3.5, Nemotron 3):
//!
//! ```text
//! <function=get_weather>
//! <parameter=city>
//! Oslo
//! </parameter>
//! </function>
//! ```
//!
//! The template writes each argument as Python's `str` of it: a string raw (newlines and all,
//! which is why coding models like this syntax), a number as itself, a boolean as `True`, and an
//! object or a list as JSON. The call format follows that: a string parameter is any text without
//! `</parameter>` (or one of its `enum` values), every other parameter is its JSON Schema's own
//! format (booleans and null also in Python's spelling). Parameters come in the schema's order,
//! the required ones always. A string with a `pattern`, `format` or length bound cannot be held to
//! it in raw text yet: such a tool is a 400 naming the property, never a widened constraint.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::error::ApiError;
use crate::format::{self, Limits, SchemaOptions, Whitespace};

/// Text that never contains `word` (whose first character occurs nowhere else in it, as for
/// `</parameter>`). Chunks are a character other than the first, or runs of the first followed
/// by a partial match that breaks; the text may end inside a partial match. (Also refused, to
/// stay without lookahead: the first character right after a partial match, as in `</p<`, which
/// real values seldom hold.)
fn text_without(word: &str) -> String {
    let chars: Vec<char> = word.chars().collect();
    let class =
        |c: char| format!("[^{}{}]", regex_syntax::escape(&c.to_string()), regex_syntax::escape(&chars[0].to_string()));
    let literal = |c: char| regex_syntax::escape(&c.to_string());
    // After the first `i` characters matched: any character that breaks the match.
    let mut breaks = class(chars[chars.len() - 1]);
    for &c in chars[1..chars.len() - 1].iter().rev() {
        breaks = format!("{}|{}(?:{breaks})", class(c), literal(c));
    }
    let mut partial = String::new();
    for &c in chars[1..chars.len() - 1].iter().rev() {
        partial = format!("(?:{}{partial})?", literal(c));
    }
    let first = literal(chars[0]);
    format!("(?:[^{first}]|{first}+(?:{breaks}))*(?:{first}+{partial})?")
}

/// Keywords that only describe a string, so it may be written raw.
const ANNOTATIONS: &[&str] = &["type", "description", "title", "examples", "default", "$comment", "deprecated"];

/// Per function, its parameters written as raw strings (the rest are JSON or Python literals).
#[derive(Clone, Debug, Default)]
pub struct RawStrings(HashMap<String, HashSet<String>>);

impl RawStrings {
    /// A call's arguments, typed: raw-string parameters stay strings; others are read as JSON,
    /// or as Python's `True` / `False` / `None`, else kept as written.
    pub fn typed(&self, function: &str, arguments: Value) -> Value {
        let Value::Object(arguments) = arguments else { return arguments };
        let raw = self.0.get(function);
        let typed = arguments
            .into_iter()
            .map(|(key, value)| {
                let text = value.as_str().unwrap_or_default();
                let value = match text.trim() {
                    _ if raw.is_some_and(|r| r.contains(&key)) => value,
                    "True" => Value::Bool(true),
                    "False" => Value::Bool(false),
                    "None" => Value::Null,
                    trimmed => serde_json::from_str(trimmed).unwrap_or(value),
                };
                (key, value)
            })
            .collect();
        Value::Object(typed)
    }
}

/// The regex of one call of `name` (the part between the call tags), and the function's raw
/// string parameters into `raw`. `param` names the tool in errors; recursive argument schemas
/// append their rules to `rules`.
pub fn call_regex(
    name: &str,
    parameters: &Value,
    param: &str,
    limits: &Limits,
    rules: &mut Vec<String>,
    raw: &mut RawStrings,
) -> Result<String, ApiError> {
    let empty = Map::new();
    let properties = parameters.get("properties").and_then(Value::as_object).unwrap_or(&empty);
    let required: HashSet<&str> =
        parameters.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    let mut body = String::new();
    for (key, schema) in properties {
        let field = format!("{param}.properties.{key}");
        if key.contains(['>', '<', '\n']) {
            return Err(ApiError::invalid(
                field,
                "a parameter name written in XML may not contain `<`, `>` or a newline",
            ));
        }
        let value = match string_values(schema, &field)? {
            Some(value) => {
                raw.0.entry(name.to_string()).or_default().insert(key.clone());
                value
            }
            None => json_value(schema, parameters, &field, limits, rules)?,
        };
        let one = format!("<parameter={}>\n(?:{value})\n</parameter>\n", regex_syntax::escape(key));
        body.push_str(&if required.contains(key.as_str()) { one } else { format!("(?:{one})?") });
    }
    Ok(format!("<function={}>\n{body}</function>", regex_syntax::escape(name)))
}

/// A string parameter's values as raw text: any text, or one of its `enum` / `const` values.
/// `None` when the schema is not a plain string.
fn string_values(schema: &Value, field: &str) -> Result<Option<String>, ApiError> {
    let Some(object) = schema.as_object().filter(|o| o.get("type").and_then(Value::as_str) == Some("string")) else {
        return Ok(None);
    };
    let listed =
        object.get("enum").and_then(Value::as_array).cloned().or_else(|| object.get("const").map(|c| vec![c.clone()]));
    if let Some(values) = listed {
        let values: Option<Vec<String>> = values.iter().map(|v| v.as_str().map(regex_syntax::escape)).collect();
        return match values {
            Some(values) if !values.is_empty() => Ok(Some(values.join("|"))),
            _ => Err(ApiError::invalid(field.to_string(), "a string parameter's `enum` must list strings")),
        };
    }
    if let Some(keyword) = object.keys().find(|k| !ANNOTATIONS.contains(&k.as_str())) {
        return Err(ApiError::invalid(
            field.to_string(),
            format!("this model writes string arguments raw (XML parameters), and `{keyword}` on a string cannot be enforced in raw text yet"),
        ));
    }
    Ok(Some(text_without("</parameter>")))
}

/// Any other parameter: its schema's JSON format, with the root's definitions in reach, and
/// booleans and null in Python's spelling too.
fn json_value(
    schema: &Value,
    root: &Value,
    field: &str,
    limits: &Limits,
    rules: &mut Vec<String>,
) -> Result<String, ApiError> {
    let mut schema = schema.clone();
    if let Some(object) = schema.as_object_mut() {
        for defs in ["$defs", "definitions"] {
            if let Some(d) = root.get(defs) {
                object.entry(defs).or_insert_with(|| d.clone());
            }
        }
    }
    let options = SchemaOptions { whitespace: Whitespace::Flexible { max: 1 }, ..SchemaOptions::default() };
    let regex = format::schema_rules(&schema, &options, limits, rules.len())
        .map_err(|e| ApiError::invalid(field.to_string(), e.to_string()).with_code("invalid_format"))?
        .embed(rules);
    Ok(match schema.get("type").and_then(Value::as_str) {
        Some("boolean") => format!("{regex}|True|False"),
        Some("null") => format!("{regex}|None"),
        _ => regex,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn accepts(regex: &str, text: &str) -> bool {
        format::compile_regex(regex, &Limits::default()).unwrap().accepts(text.as_bytes())
    }

    #[test]
    fn raw_text_is_anything_but_the_closing_tag() {
        for text in [
            "",
            "plain",
            "fn main() {\n    if a < b && c > d {}\n}",
            "</div>",
            "<<x",
            "</p>",
            "a<",
            "</paramete",
            "<parameter=x>",
        ] {
            assert!(accepts(&text_without("</parameter>"), text), "{text:?}");
        }
        for text in ["</parameter>", "x</parameter>y", "<</parameter>"] {
            assert!(!accepts(&text_without("</parameter>"), text), "{text:?}");
        }
    }

    #[test]
    fn parameters_follow_their_schemas_in_the_template_s_spelling() {
        let parameters = json!({"type": "object", "properties": {
            "path": {"type": "string", "description": "where"},
            "mode": {"type": "string", "enum": ["r", "w"]},
            "count": {"type": "integer", "minimum": 1},
            "force": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}}},
            "required": ["path", "count"]});
        let (mut rules, mut raw) = (vec![String::new()], RawStrings::default());
        let regex =
            call_regex("write", &parameters, "tools[0].function.parameters", &Limits::default(), &mut rules, &mut raw)
                .unwrap();
        let call = |params: &str| format!("<function=write>\n{params}</function>");
        let p = |k: &str, v: &str| format!("<parameter={k}>\n{v}\n</parameter>\n");
        assert!(accepts(&regex, &call(&(p("path", "a b\nc") + &p("count", "3")))));
        assert!(accepts(
            &regex,
            &call(
                &(p("path", "x")
                    + &p("mode", "w")
                    + &p("count", "3")
                    + &p("force", "True")
                    + &p("tags", "[\"a\", \"b\"]"))
            )
        ));
        assert!(!accepts(&regex, &call(&p("path", "x"))), "count is required");
        assert!(!accepts(&regex, &call(&(p("path", "x") + &p("count", "0")))), "count's minimum");
        assert!(!accepts(&regex, &call(&(p("path", "x") + &p("mode", "a") + &p("count", "3")))), "mode's enum");
        assert!(!accepts(&regex, &call(&(p("path", "x") + &p("count", "3") + &p("extra", "1")))), "undeclared");
        let typed = raw.typed("write", json!({"path": "42", "count": "3", "force": "True", "tags": "[\"a\"]"}));
        assert_eq!(typed, json!({"path": "42", "count": 3, "force": true, "tags": ["a"]}));
    }

    #[test]
    fn a_string_bound_raw_text_cannot_hold_is_refused_by_name() {
        let parameters = json!({"type": "object", "properties": {"id": {"type": "string", "pattern": "^[0-9]+$"}}});
        let e = call_regex(
            "f",
            &parameters,
            "tools[0].function.parameters",
            &Limits::default(),
            &mut vec![String::new()],
            &mut RawStrings::default(),
        )
        .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("tools[0].function.parameters.properties.id"));
        assert!(e.message.contains("pattern"), "{}", e.message);
    }
}
