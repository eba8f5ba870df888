//! OpenAI tool calling on top of the format engine.
//!
//! Tools reach the model through its own chat template; the output is constrained to the
//! template's tool-call syntax (Qwen family: `<tool_call>\n{"name": …, "arguments": …}\n</tool_call>`),
//! with the name restricted to the request's functions and the arguments to that function's
//! parameter schema (a recursive schema makes the call format a recursive network, so its
//! arguments nest without unrolling). `tool_choice: "required"` or a named function constrains from the first
//! token; `"auto"` leaves the model free until it emits the tool-call opener, then engages the
//! same constraint; `"none"` shows the tools (the conversation may refer to earlier calls) but
//! bans the opener token.

use serde_json::{json, Value};

use super::error::ApiError;
use crate::format::{self, Limits, SchemaOptions, Whitespace};

const OPEN: &str = "<tool_call>\n";
const CLOSE: &str = "\n</tool_call>";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    None,
    Auto,
    Required,
    Named(String),
}

/// The validated tool part of a chat request.
pub struct Tools {
    /// The tools as the chat template receives them.
    pub rendered: Vec<Value>,
    pub choice: ToolChoice,
    /// The whole tool-call output, for `required` / named / `auto` once triggered: one regex,
    /// or, when a parameter schema recurses, the rules of a recursive network (`[0]` is the
    /// call syntax).
    pub call_rules: Option<Vec<String>>,
}

/// Validates `tools`, `tool_choice` and `parallel_tool_calls`, and lowers the functions'
/// parameter schemas into one regex for the tool-call output.
pub fn read(body: &Value, limits: &Limits) -> Result<Option<Tools>, ApiError> {
    let Some(tools) = body.get("tools").filter(|t| !t.is_null()) else {
        if body.get("tool_choice").is_some_and(|c| !c.is_null() && c != "none" && c != "auto") {
            return Err(ApiError::invalid("tool_choice", "`tool_choice` needs `tools`"));
        }
        return Ok(None);
    };
    let tools = tools.as_array().filter(|t| !t.is_empty()).ok_or_else(|| ApiError::invalid("tools", "`tools` must be a non-empty list"))?;
    let mut functions: Vec<(String, Value)> = Vec::new();
    for (i, tool) in tools.iter().enumerate() {
        let param = format!("tools[{i}]");
        if tool.get("type").and_then(Value::as_str) != Some("function") {
            return Err(ApiError::invalid(format!("{param}.type"), "only tools of type \"function\" are supported"));
        }
        let function = tool.get("function").filter(|f| f.is_object()).ok_or_else(|| ApiError::invalid(format!("{param}.function"), "a tool needs a `function` object"))?;
        let name = function.get("name").and_then(Value::as_str).unwrap_or_default();
        if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.') {
            return Err(ApiError::invalid(format!("{param}.function.name"), "a function name must be 1-64 characters of a-z, A-Z, 0-9, _, - or ."));
        }
        if functions.iter().any(|(n, _)| n == name) {
            return Err(ApiError::invalid(format!("{param}.function.name"), format!("the function name `{name}` is used twice")));
        }
        let mut parameters = function.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}}));
        // Arguments are an object (clients parse them as keyword arguments): a schema without
        // a type means an object, any other type is refused.
        let Some(schema) = parameters.as_object_mut() else {
            return Err(ApiError::invalid(format!("{param}.function.parameters"), "`parameters` must be a JSON Schema object"));
        };
        match schema.get("type") {
            None => {
                schema.insert("type".into(), json!("object"));
            }
            Some(t) if t == "object" => {}
            Some(t) => {
                return Err(ApiError::invalid(
                    format!("{param}.function.parameters.type"),
                    format!("the arguments of a function are an object, so `parameters` must have \"type\": \"object\", not {t}"),
                ));
            }
        }
        functions.push((name.to_string(), parameters));
    }
    let choice = match body.get("tool_choice") {
        None | Some(Value::Null) => ToolChoice::Auto,
        Some(Value::String(s)) => match s.as_str() {
            "none" => ToolChoice::None,
            "auto" => ToolChoice::Auto,
            "required" => ToolChoice::Required,
            _ => return Err(ApiError::invalid("tool_choice", "`tool_choice` must be \"none\", \"auto\", \"required\" or a named function")),
        },
        Some(named) => {
            let name = named.pointer("/function/name").and_then(Value::as_str).ok_or_else(|| ApiError::invalid("tool_choice", "a named `tool_choice` is {\"type\": \"function\", \"function\": {\"name\": …}}"))?;
            if !functions.iter().any(|(n, _)| n == name) {
                return Err(ApiError::invalid("tool_choice.function.name", format!("`{name}` is not one of the given tools")));
            }
            ToolChoice::Named(name.to_string())
        }
    };
    let parallel = match body.get("parallel_tool_calls") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::invalid("parallel_tool_calls", "`parallel_tool_calls` must be a boolean")),
    };
    if choice == ToolChoice::None {
        return Ok(Some(Tools { rendered: tools.clone(), choice, call_rules: None }));
    }
    let callable: Vec<&(String, Value)> = match &choice {
        ToolChoice::Named(name) => functions.iter().filter(|(n, _)| n == name).collect(),
        _ => functions.iter().collect(),
    };
    let call_rules = call_rules(&callable, parallel && !matches!(choice, ToolChoice::Named(_)), tools, limits)?;
    Ok(Some(Tools { rendered: tools.clone(), choice, call_rules: Some(call_rules) }))
}

/// One call of any callable function, repeated when parallel calls are allowed: one regex, or
/// the rules of a recursive network when a parameter schema recurses (its arguments are then a
/// call of the schema's own rules, which follow the call syntax's rule 0).
fn call_rules(functions: &[&(String, Value)], parallel: bool, tools: &[Value], limits: &Limits) -> Result<Vec<String>, ApiError> {
    // The model writes its calls the way Python's json.dumps does (", " and ": "), so one
    // optional space between JSON tokens keeps it close to its own style. (`Whitespace::NATURAL`
    // measured no lower a cost on BFCL: bench/results/format-cost/.)
    let options = SchemaOptions { whitespace: Whitespace::Flexible { max: 1 }, ..SchemaOptions::default() };
    let mut alternatives = Vec::new();
    let mut rules = vec![String::new()];
    for (name, parameters) in functions {
        let index = tools.iter().position(|t| t.pointer("/function/name").and_then(Value::as_str) == Some(name)).unwrap_or(0);
        let arguments = format::schema_rules(parameters, &options, limits, rules.len())
            .map_err(|e| ApiError::invalid(format!("tools[{index}].function.parameters"), e.to_string()).with_code("invalid_format"))?;
        let arguments = if arguments.recursive {
            let call = format::recursive::call(rules.len());
            rules.push(arguments.regex);
            rules.extend(arguments.rules);
            call
        } else {
            arguments.regex
        };
        let name_json = regex_syntax::escape(&Value::String(name.clone()).to_string());
        alternatives.push(format!(r#"\{{"name": {name_json}, "arguments": (?:{arguments})\}}"#));
    }
    let one = format!("{}(?:{}){}", regex_syntax::escape(OPEN), alternatives.join("|"), regex_syntax::escape(CLOSE));
    // Calls are separated and ended by a newline, as the chat template writes them: a model that
    // is done writes one after its last call and then stops, so the newline may not force
    // another call.
    rules[0] = if parallel { format!("{one}(?:\n{one})*\n?") } else { format!("{one}\n?") };
    Ok(rules)
}

/// Tool calls or a final answer: `answer` gives the answer's rules (a JSON format) numbered
/// from the rule it is passed; rule 0 becomes either of the two, as OpenAI serves `tools` with a
/// `response_format` (the agent's loop: call tools, then answer in the schema).
pub fn calls_or_answer(
    mut rules: Vec<String>,
    answer: impl FnOnce(usize) -> Result<format::SchemaRegex, ApiError>,
) -> Result<Vec<String>, ApiError> {
    let next = rules.len();
    let answer = answer(next)?;
    let answer = if answer.recursive {
        rules.push(answer.regex);
        rules.extend(answer.rules);
        format::recursive::call(next)
    } else {
        answer.regex
    };
    rules[0] = format!("(?:{})|(?:{answer})", rules[0]);
    Ok(rules)
}

/// A parsed tool call, in OpenAI's response shape.
pub fn parse_calls(text: &str) -> (Option<String>, Vec<Value>) {
    let Some(first) = text.find(OPEN.trim_end()) else {
        return (Some(text.to_string()), Vec::new());
    };
    let content = text[..first].trim_end();
    let mut calls = Vec::new();
    let mut rest = &text[first..];
    while let Some(start) = rest.find(OPEN.trim_end()) {
        let after = &rest[start + OPEN.trim_end().len()..];
        let end = after.find(CLOSE.trim_start()).unwrap_or(after.len());
        if let Ok(call) = serde_json::from_str::<Value>(after[..end].trim()) {
            let name = call.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
            let arguments = call.get("arguments").cloned().unwrap_or(json!({}));
            calls.push(json!({
                "id": format!("call_{}", super::new_id("").trim_start_matches('-')),
                "type": "function",
                "function": {"name": name, "arguments": arguments.to_string()},
            }));
        }
        rest = &after[end..];
    }
    ((!content.is_empty()).then(|| content.to_string()), calls)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools() -> Value {
        json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
            "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
            {"type": "function", "function": {"name": "add", "parameters": {"type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}}}])
    }

    fn compile(t: &Tools) -> format::Compiled {
        let rules: Vec<&str> = t.call_rules.as_ref().unwrap().iter().map(String::as_str).collect();
        match rules[..] {
            [regex] => format::Compiled::Dfa(format::compile_regex(regex, &Limits::default()).unwrap()),
            _ => format::Compiled::Recursive(format::recursive::compile_network(&rules, &Limits::default()).unwrap()),
        }
    }

    #[test]
    fn the_call_regex_takes_the_templates_syntax_and_only_the_given_functions() {
        let t = read(&json!({"tools": tools(), "tool_choice": "required"}), &Limits::default()).unwrap().unwrap();
        assert_eq!(t.call_rules.as_ref().unwrap().len(), 1, "no recursion: one regex");
        let a = compile(&t);
        assert!(a.accepts(b"<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}\n</tool_call>"));
        assert!(a.accepts(b"<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\":1,\"b\":2}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>"));
        assert!(!a.accepts(b"<tool_call>\n{\"name\": \"sub\", \"arguments\": {\"a\": 1, \"b\": 2}}\n</tool_call>"));
        assert!(!a.accepts(b"<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1}}\n</tool_call>"));
        let named = read(&json!({"tools": tools(), "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}), &Limits::default()).unwrap().unwrap();
        let a = compile(&named);
        assert!(!a.accepts(b"<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}\n</tool_call>"));
    }

    /// The template ends each call with a newline; a model that is done writes it and stops, so
    /// the newline is allowed after the last call, and with parallel calls off a second call is not.
    #[test]
    fn a_newline_after_the_last_call_ends_the_calls() {
        let call = "<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}\n</tool_call>";
        for parallel in [true, false] {
            let t = read(&json!({"tools": tools(), "tool_choice": "required", "parallel_tool_calls": parallel}), &Limits::default()).unwrap().unwrap();
            let a = compile(&t);
            assert!(a.accepts(call.as_bytes()) && a.accepts(format!("{call}\n").as_bytes()));
            assert!(!a.accepts(format!("{call}\n\n").as_bytes()));
            assert_eq!(a.accepts(format!("{call}\n{call}").as_bytes()), parallel);
            assert_eq!(a.accepts(format!("{call}\n{call}\n").as_bytes()), parallel);
        }
    }

    /// A recursive parameter schema makes the call format a recursive network: arguments nest
    /// past the 3 levels that unrolling allowed.
    #[test]
    fn recursive_parameters_are_not_unrolled() {
        let tree = json!({"$defs": {"node": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
            "required": ["kids"]}}, "$ref": "#/$defs/node"});
        let mut list = tools();
        list.as_array_mut().unwrap().push(json!({"type": "function", "function": {"name": "plant", "parameters": tree}}));
        let t = read(&json!({"tools": list, "tool_choice": "required"}), &Limits::default()).unwrap().unwrap();
        assert!(t.call_rules.as_ref().unwrap().len() > 1);
        let a = compile(&t);
        let deep = format!("{}{}", "{\"kids\": [".repeat(6), "]}".repeat(6));
        let call = |args: &str| format!("<tool_call>\n{{\"name\": \"plant\", \"arguments\": {args}}}\n</tool_call>");
        assert!(a.accepts(call(&deep).as_bytes()), "{deep}");
        assert!(!a.accepts(call("{\"kids\": [{}]}").as_bytes()), "`kids` is required at every level");
        assert!(a.accepts(b"<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}\n</tool_call>"));
    }

    #[test]
    fn calls_parse_into_openai_shape() {
        let (content, calls) = parse_calls("Let me check.\n<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}\n</tool_call>");
        assert_eq!(content.as_deref(), Some("Let me check."));
        assert_eq!(calls[0]["function"]["name"], "add");
        assert_eq!(calls[0]["function"]["arguments"], "{\"a\":1,\"b\":2}");
        assert_eq!(parse_calls("plain").1.len(), 0);
    }

    #[test]
    fn bad_tools_name_the_field() {
        let limits = Limits::default();
        let e = read(&json!({"tools": [{"type": "retrieval"}]}), &limits).err().unwrap();
        assert_eq!(e.param.as_deref(), Some("tools[0].type"));
        let e = read(&json!({"tools": tools(), "tool_choice": {"type": "function", "function": {"name": "nope"}}}), &limits).err().unwrap();
        assert_eq!(e.param.as_deref(), Some("tool_choice.function.name"));
        let e = read(&json!({"tool_choice": "required"}), &limits).err().unwrap();
        assert_eq!(e.param.as_deref(), Some("tool_choice"));
        let string_args = json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]);
        let e = read(&json!({"tools": string_args}), &limits).err().unwrap();
        assert_eq!(e.param.as_deref(), Some("tools[0].function.parameters.type"));
        let e = read(&json!({"tools": [{"type": "function", "function": {"name": "f", "parameters": 3}}]}), &limits).err().unwrap();
        assert_eq!(e.param.as_deref(), Some("tools[0].function.parameters"));
    }

    #[test]
    fn untyped_parameters_take_objects_only() {
        let list = json!([{"type": "function", "function": {"name": "f", "parameters": {"properties": {"a": {"type": "integer"}}}}}]);
        let a = compile(&read(&json!({"tools": list, "tool_choice": "required"}), &Limits::default()).unwrap().unwrap());
        let call = |args: &str| format!("<tool_call>\n{{\"name\": \"f\", \"arguments\": {args}}}\n</tool_call>");
        assert!(a.accepts(call("{\"a\": 1}").as_bytes()));
        assert!(!a.accepts(call("\"x\"").as_bytes()), "arguments must be an object");
    }
}

/// Streams a choice's text while holding back everything from the tool-call opener on, so a
/// client sees prose as it comes and tool calls only once they are complete and parsed.
#[derive(Default)]
pub struct ToolStream {
    text: String,
    emitted: usize,
}

impl ToolStream {
    /// Text that can be shown now.
    pub fn push(&mut self, piece: &str) -> String {
        self.text.push_str(piece);
        let opener = OPEN.trim_end();
        let safe = match self.text.find(opener) {
            Some(at) => at,
            None => {
                let held = (1..opener.len()).rev().find(|&k| self.text.ends_with(&opener[..k])).unwrap_or(0);
                self.text.len() - held
            }
        };
        let out = self.text.get(self.emitted..safe.max(self.emitted)).unwrap_or_default().to_string();
        self.emitted = self.emitted.max(safe);
        out
    }

    /// At the end: the text still to show (when there were no calls) and the calls.
    pub fn finish(self) -> (String, Vec<Value>) {
        let (_, calls) = parse_calls(&self.text);
        if calls.is_empty() {
            (self.text[self.emitted..].to_string(), calls)
        } else {
            (String::new(), calls)
        }
    }
}
