//! OpenAI tool calling on top of the format engine.
//!
//! Tools reach the model through its own chat template; the output is constrained to the
//! family's tool-call syntax ([`chat_format`](crate::chat_format); Qwen family:
//! `<tool_call>\n{"name": …, "arguments": …}\n</tool_call>`),
//! with the name restricted to the request's functions and the arguments to that function's
//! parameter schema (a recursive schema makes the call format a recursive network, so its
//! arguments nest without unrolling). `tool_choice: "required"` or a named function constrains from the first
//! token; `"auto"` leaves the model free until it starts a call, then engages the same
//! constraint; `"none"` shows the tools (the conversation may refer to earlier calls) but bans
//! the opener token.
//!
//! Small models do not always call in the template's syntax: asked freely, Qwen2.5-Coder-0.5B
//! writes its call as a fenced JSON block (```` ```json\n{"name": …, "arguments": …}\n``` ````).
//! That surface is a call too (except beside a response format under `"auto"`, where a JSON
//! object is the final answer): an output that opens with a JSON object, a list of them
//! (parallel calls) or a fenced one is held to the call format and comes back as `tool_calls`,
//! so clients never dig calls out of prose, and the model calls the way it writes.

use serde_json::{json, Value};

use super::error::ApiError;
use super::xml_calls::{self, RawStrings};
use crate::chat_format::{CallBody, CallSyntax, Calls, ChatFormat};
use crate::format::{self, Limits, SchemaOptions, Whitespace};

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
    /// call syntax). It also takes the JSON surface, except beside a response format under `auto`.
    pub call_rules: Option<Vec<String>>,
    /// Parameters written as raw strings, for XML-parameter calls ([`xml_calls`]).
    pub raw_strings: RawStrings,
}

/// Validates `tools`, `tool_choice` and `parallel_tool_calls`, and lowers the functions'
/// parameter schemas into one regex for the tool-call output in `chat`'s syntax.
/// `with_answer_format`: the request also names a response format (a JSON answer), so a bare
/// JSON object is that answer, not a call.
pub fn read(
    body: &Value,
    chat: &ChatFormat,
    limits: &Limits,
    with_answer_format: bool,
) -> Result<Option<Tools>, ApiError> {
    let Some(tools) = body.get("tools").filter(|t| !t.is_null()) else {
        if body.get("tool_choice").is_some_and(|c| !c.is_null() && c != "none" && c != "auto") {
            return Err(ApiError::invalid("tool_choice", "`tool_choice` needs `tools`"));
        }
        return Ok(None);
    };
    let tools = tools
        .as_array()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::invalid("tools", "`tools` must be a non-empty list"))?;
    let mut functions: Vec<(String, Value)> = Vec::new();
    for (i, tool) in tools.iter().enumerate() {
        let param = format!("tools[{i}]");
        if tool.get("type").and_then(Value::as_str) != Some("function") {
            return Err(ApiError::invalid(format!("{param}.type"), "only tools of type \"function\" are supported"));
        }
        let function = tool
            .get("function")
            .filter(|f| f.is_object())
            .ok_or_else(|| ApiError::invalid(format!("{param}.function"), "a tool needs a `function` object"))?;
        let name = function.get("name").and_then(Value::as_str).unwrap_or_default();
        if name.is_empty()
            || name.len() > 64
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        {
            return Err(ApiError::invalid(
                format!("{param}.function.name"),
                "a function name must be 1-64 characters of a-z, A-Z, 0-9, _, - or .",
            ));
        }
        if functions.iter().any(|(n, _)| n == name) {
            return Err(ApiError::invalid(
                format!("{param}.function.name"),
                format!("the function name `{name}` is used twice"),
            ));
        }
        let mut parameters =
            function.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}}));
        // Arguments are an object (clients parse them as keyword arguments): a schema without
        // a type means an object, any other type is refused.
        let Some(schema) = parameters.as_object_mut() else {
            return Err(ApiError::invalid(
                format!("{param}.function.parameters"),
                "`parameters` must be a JSON Schema object",
            ));
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
            _ => {
                return Err(ApiError::invalid(
                    "tool_choice",
                    "`tool_choice` must be \"none\", \"auto\", \"required\" or a named function",
                ))
            }
        },
        Some(named) => {
            let name = named.pointer("/function/name").and_then(Value::as_str).ok_or_else(|| {
                ApiError::invalid(
                    "tool_choice",
                    "a named `tool_choice` is {\"type\": \"function\", \"function\": {\"name\": …}}",
                )
            })?;
            if !functions.iter().any(|(n, _)| n == name) {
                return Err(ApiError::invalid(
                    "tool_choice.function.name",
                    format!("`{name}` is not one of the given tools"),
                ));
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
        return Ok(Some(Tools {
            rendered: tools.clone(),
            choice,
            call_rules: None,
            raw_strings: RawStrings::default(),
        }));
    }
    if chat.calls == Calls::Unsupported {
        return Err(ApiError::invalid(
            "tools",
            format!(
                "this model's chat format (`{}`) writes tool calls in a syntax conform does not constrain yet; \
                 start the server with `--chat-format generic` to have calls written as JSON objects",
                chat.name
            ),
        ));
    }
    let callable: Vec<&(String, Value)> = match &choice {
        ToolChoice::Named(name) => functions.iter().filter(|(n, _)| n == name).collect(),
        _ => functions.iter().collect(),
    };
    // Beside a response format under "auto", a JSON object is the final answer, not a call
    // (unless JSON objects are the only way this family calls).
    let native = match chat.calls {
        Calls::Native(syntax) => Some(syntax),
        _ => None,
    };
    let surfaces = Surfaces { native, json: native.is_none() || !(choice == ToolChoice::Auto && with_answer_format) };
    let mut raw_strings = RawStrings::default();
    let call_rules = call_rules(
        &callable,
        parallel && !matches!(choice, ToolChoice::Named(_)),
        surfaces,
        tools,
        limits,
        &mut raw_strings,
    )?;
    Ok(Some(Tools { rendered: tools.clone(), choice, call_rules: Some(call_rules), raw_strings }))
}

/// The ways a call may be written.
#[derive(Clone, Copy)]
struct Surfaces {
    /// The family's own syntax (Qwen's `<tool_call>\n{…}\n</tool_call>`).
    native: Option<CallSyntax>,
    /// A JSON call object (or, with parallel calls, a list of them), bare or in a ```json fence.
    json: bool,
}

/// One call of any callable function, repeated when parallel calls are allowed: one regex, or
/// the rules of a recursive network when a parameter schema recurses (its arguments are then a
/// call of the schema's own rules, which follow the call syntax's rule 0).
fn call_rules(
    functions: &[&(String, Value)],
    parallel: bool,
    surfaces: Surfaces,
    tools: &[Value],
    limits: &Limits,
    raw_strings: &mut RawStrings,
) -> Result<Vec<String>, ApiError> {
    let mut rules = vec![String::new()];
    let mut outputs = Vec::new();
    if let Some(syntax) = surfaces.native {
        // The model writes its calls the way Python's json.dumps does (", " and ": "), so one
        // optional space between JSON tokens keeps it close to its own style. (`Whitespace::NATURAL`
        // measured no lower a cost on BFCL: bench/results/format-cost/.)
        let call = match syntax.body {
            CallBody::XmlParameters => functions
                .iter()
                .map(|(name, parameters)| {
                    xml_calls::call_regex(name, parameters, &tool_param(tools, name), limits, &mut rules, raw_strings)
                })
                .collect::<Result<Vec<_>, _>>()?,
            CallBody::Json { arguments_key } => {
                call_objects(functions, Whitespace::Flexible { max: 1 }, tools, limits, &mut rules)?
                    .iter()
                    .map(|(name, arguments)| {
                        format!(r#"\{{"name": {}, "{arguments_key}": (?:{arguments})\}}"#, json_name(name))
                    })
                    .collect()
            }
            CallBody::NameThenArgs { between } => {
                call_objects(functions, Whitespace::Flexible { max: 1 }, tools, limits, &mut rules)?
                    .iter()
                    .map(|(name, arguments)| {
                        format!("{}{}(?:{arguments})", regex_syntax::escape(name), regex_syntax::escape(between))
                    })
                    .collect()
            }
        }
        .join("|");
        let escape = regex_syntax::escape;
        let one = format!("{}(?:{call}){}", escape(syntax.open), escape(syntax.close));
        let calls =
            if parallel && syntax.parallel { format!("{one}(?:{}{one})*", escape(syntax.separator)) } else { one };
        // Where the template ends the calls with a newline, a model that is done writes one
        // and then stops, so that newline may not force another call.
        let trailing = if syntax.trailing_newline { "\n?" } else { "" };
        outputs.push(format!("{}{calls}{}{trailing}", escape(syntax.begin), escape(syntax.end)));
    }
    if surfaces.json {
        // Written freely, the calls are pretty-printed JSON: natural whitespace throughout.
        let ws = format::json::ws_regex(Whitespace::NATURAL);
        let call = call_objects(functions, Whitespace::NATURAL, tools, limits, &mut rules)?
            .iter()
            .map(|(name, arguments)| {
                format!(r#"\{{{ws}"name":{ws}{},{ws}"arguments":{ws}(?:{arguments}){ws}\}}"#, json_name(name))
            })
            .collect::<Vec<_>>()
            .join("|");
        let calls = if parallel { format!(r"(?:{call})|\[{ws}(?:{call})(?:{ws},{ws}(?:{call}))*{ws}\]") } else { call };
        outputs.push(format!("(?:```(?:json)?\n(?:{calls})\n```|(?:{calls}))\n?"));
    }
    rules[0] = outputs.iter().map(|o| format!("(?:{o})")).collect::<Vec<_>>().join("|");
    Ok(rules)
}

/// How errors name a function's parameter schema: `tools[i].function.parameters`.
fn tool_param(tools: &[Value], name: &str) -> String {
    let index =
        tools.iter().position(|t| t.pointer("/function/name").and_then(Value::as_str) == Some(name)).unwrap_or(0);
    format!("tools[{index}].function.parameters")
}

/// A function name as a JSON string, escaped for a regex.
fn json_name(name: &str) -> String {
    regex_syntax::escape(&Value::String(name.to_string()).to_string())
}

/// Each function's name and its arguments' regex with whitespace `ws`; recursive argument
/// schemas append their rules to `rules`.
fn call_objects(
    functions: &[&(String, Value)],
    ws: Whitespace,
    tools: &[Value],
    limits: &Limits,
    rules: &mut Vec<String>,
) -> Result<Vec<(String, String)>, ApiError> {
    let options = SchemaOptions { whitespace: ws, ..SchemaOptions::default() };
    let mut calls = Vec::new();
    for (name, parameters) in functions {
        let arguments = format::schema_rules(parameters, &options, limits, rules.len())
            .map_err(|e| ApiError::invalid(tool_param(tools, name), e.to_string()).with_code("invalid_format"))?;
        calls.push((name.clone(), arguments.embed(rules)));
    }
    Ok(calls)
}

/// Tool calls or a final answer: `answer` gives the answer's rules (a JSON format) numbered
/// from the rule it is passed; rule 0 becomes either of the two, as OpenAI serves `tools` with a
/// `response_format` (the agent's loop: call tools, then answer in the schema).
pub fn calls_or_answer(
    mut rules: Vec<String>,
    answer: impl FnOnce(usize) -> Result<format::SchemaRegex, ApiError>,
) -> Result<Vec<String>, ApiError> {
    let answer = answer(rules.len())?.embed(&mut rules);
    rules[0] = format!("(?:{})|(?:{answer})", rules[0]);
    Ok(rules)
}

/// The calls in a choice's text, in OpenAI's response shape, and the prose before them: calls
/// in the family's syntax, or a whole output that is a JSON call (a list of them, fenced or not;
/// see the module comment).
pub fn parse_calls(
    text: &str,
    syntax: Option<&CallSyntax>,
    json_surface: bool,
    raw: &RawStrings,
) -> (Option<String>, Vec<Value>) {
    if let Some((start, calls)) = syntax.and_then(|s| s.parse(text)) {
        let content = text[..start].trim_end();
        let xml = syntax.is_some_and(|s| s.body == CallBody::XmlParameters);
        let calls = calls
            .into_iter()
            .map(|(name, arguments)| call_json(&name, &if xml { raw.typed(&name, arguments) } else { arguments }))
            .collect();
        return ((!content.is_empty()).then(|| content.to_string()), calls);
    }
    match json_surface.then(|| json_surface_calls(text)).flatten() {
        Some(calls) => (None, calls),
        None => (Some(text.to_string()), Vec::new()),
    }
}

fn call_json(name: &str, arguments: &Value) -> Value {
    json!({
        "id": format!("call_{}", super::new_id("").trim_start_matches('-')),
        "type": "function",
        "function": {"name": name, "arguments": arguments.to_string()},
    })
}

/// The calls of an output that is nothing but JSON calls: `{"name": …, "arguments": {…}}` (exactly
/// those two keys) or a non-empty list of them, optionally in a ``` / ```json fence.
fn json_surface_calls(text: &str) -> Option<Vec<Value>> {
    let trimmed = text.trim();
    let body = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|rest| rest.strip_suffix("```"))
        .unwrap_or(trimmed);
    let items = match serde_json::from_str::<Value>(body.trim()).ok()? {
        Value::Array(items) if !items.is_empty() => items,
        object @ Value::Object(_) => vec![object],
        _ => return None,
    };
    items
        .iter()
        .map(|item| {
            let call = item.as_object().filter(|o| o.len() == 2)?;
            let name = call.get("name")?.as_str()?;
            let arguments = call.get("arguments").filter(|a| a.is_object())?;
            Some(call_json(name, arguments))
        })
        .collect()
}

/// Whether an output beginning with `text` may still turn out to be a JSON-surface call, so a
/// stream must hold it back: blank so far, (part of) a fence opener, or a JSON object or list
/// after it.
fn may_be_json_call(text: &str) -> bool {
    let text = text.trim_start();
    let body = match ["```json\n", "```\n"].iter().find_map(|fence| text.strip_prefix(fence)) {
        Some(body) => body.trim_start(),
        None if "```json\n".starts_with(text) || "```\n".starts_with(text) => return true,
        None => text,
    };
    body.is_empty() || body.starts_with('{') || body.starts_with('[')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hermes() -> ChatFormat {
        ChatFormat::named("hermes").unwrap()
    }

    fn hermes_syntax() -> Option<CallSyntax> {
        match hermes().calls {
            Calls::Native(syntax) => Some(syntax),
            _ => None,
        }
    }

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
        let t = read(&json!({"tools": tools(), "tool_choice": "required"}), &hermes(), &Limits::default(), false)
            .unwrap()
            .unwrap();
        assert_eq!(t.call_rules.as_ref().unwrap().len(), 1, "no recursion: one regex");
        let a = compile(&t);
        assert!(a.accepts(b"<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}\n</tool_call>"));
        assert!(a.accepts(b"<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\":1,\"b\":2}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>"));
        assert!(!a.accepts(b"<tool_call>\n{\"name\": \"sub\", \"arguments\": {\"a\": 1, \"b\": 2}}\n</tool_call>"));
        assert!(!a.accepts(b"<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1}}\n</tool_call>"));
        let named = read(
            &json!({"tools": tools(), "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}),
            &hermes(),
            &Limits::default(),
            false,
        )
        .unwrap()
        .unwrap();
        let a = compile(&named);
        assert!(!a.accepts(b"<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}\n</tool_call>"));
    }

    /// The template ends each call with a newline; a model that is done writes it and stops, so
    /// the newline is allowed after the last call, and with parallel calls off a second call is not.
    #[test]
    fn a_newline_after_the_last_call_ends_the_calls() {
        let call = "<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}\n</tool_call>";
        for parallel in [true, false] {
            let t = read(
                &json!({"tools": tools(), "tool_choice": "required", "parallel_tool_calls": parallel}),
                &hermes(),
                &Limits::default(),
                false,
            )
            .unwrap()
            .unwrap();
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
        list.as_array_mut()
            .unwrap()
            .push(json!({"type": "function", "function": {"name": "plant", "parameters": tree}}));
        let t = read(&json!({"tools": list, "tool_choice": "required"}), &hermes(), &Limits::default(), false)
            .unwrap()
            .unwrap();
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
        let (content, calls) = parse_calls(
            "Let me check.\n<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}\n</tool_call>",
            hermes_syntax().as_ref(),
            false,
            &RawStrings::default(),
        );
        assert_eq!(content.as_deref(), Some("Let me check."));
        assert_eq!(calls[0]["function"]["name"], "add");
        assert_eq!(calls[0]["function"]["arguments"], "{\"a\":1,\"b\":2}");
        assert_eq!(parse_calls("plain", hermes_syntax().as_ref(), true, &RawStrings::default()).1.len(), 0);
    }

    /// The model's own surface is a call: a JSON call object, fenced or bare,
    /// pretty-printed as it writes it, or a list of them when parallel calls are allowed.
    #[test]
    fn auto_calls_take_the_json_surface_too() {
        let pretty = "{\n  \"name\": \"add\",\n  \"arguments\": {\n    \"a\": 1,\n    \"b\": 2\n  }\n}";
        let weather = "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}";
        for parallel in [true, false] {
            let body = json!({"tools": tools(), "tool_choice": "auto", "parallel_tool_calls": parallel});
            let a = compile(&read(&body, &hermes(), &Limits::default(), false).unwrap().unwrap());
            assert!(a.accepts(format!("```json\n{pretty}\n```").as_bytes()));
            assert!(a.accepts(format!("```json\n{pretty}\n```\n").as_bytes()));
            assert!(a.accepts(pretty.as_bytes()));
            assert!(a.accepts(b"<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}\n</tool_call>"));
            assert_eq!(a.accepts(format!("[{pretty}, {weather}]").as_bytes()), parallel);
            assert!(!a.accepts(b"```json\n{\"name\": \"sub\", \"arguments\": {}}\n```"), "only the given functions");
            assert!(!a.accepts(b"```python\nadd(1, 2)\n```"));
            // With a response format, a JSON object is the answer's: calls keep the template's syntax.
            let a = compile(&read(&body, &hermes(), &Limits::default(), true).unwrap().unwrap());
            assert!(!a.accepts(pretty.as_bytes()));
        }
        // Under `required` calls come in either surface; the answer waits for a later turn.
        for with_answer_format in [false, true] {
            let a = compile(
                &read(
                    &json!({"tools": tools(), "tool_choice": "required"}),
                    &hermes(),
                    &Limits::default(),
                    with_answer_format,
                )
                .unwrap()
                .unwrap(),
            );
            assert!(a.accepts(pretty.as_bytes()));
        }
    }

    #[test]
    fn json_surface_calls_parse_only_when_the_whole_output_is_calls() {
        let fenced = "```json\n{\n  \"name\": \"add\",\n  \"arguments\": {\"a\": 1, \"b\": 2}\n}\n```";
        let (content, calls) = parse_calls(fenced, hermes_syntax().as_ref(), true, &RawStrings::default());
        assert_eq!(content, None);
        assert_eq!(calls[0]["function"]["name"], "add");
        assert_eq!(calls[0]["function"]["arguments"], "{\"a\":1,\"b\":2}");
        assert_eq!(
            parse_calls(fenced, hermes_syntax().as_ref(), false, &RawStrings::default()).1.len(),
            0,
            "not where a JSON answer may stand instead"
        );
        let list = "[{\"name\": \"add\", \"arguments\": {}}, {\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}]";
        assert_eq!(parse_calls(list, hermes_syntax().as_ref(), true, &RawStrings::default()).1.len(), 2);
        for prose in [
            "Use add: {\"name\": \"add\", \"arguments\": {}}",
            "{\"name\": \"add\"}",
            "{\"name\": \"add\", \"arguments\": 3}",
            "{\"name\": \"add\", \"arguments\": {}, \"x\": 1}",
            "[]",
            "```json\n{\"name\": \"add\", \"arguments\": {}}",
        ] {
            let (content, calls) = parse_calls(prose, hermes_syntax().as_ref(), true, &RawStrings::default());
            assert!(calls.is_empty(), "{prose}");
            assert_eq!(content.as_deref(), Some(prose));
        }
    }

    /// Each family's calls are held to its own syntax (and the bare JSON surface), with the
    /// tools' names and argument schemas, and parse back.
    #[test]
    fn each_family_constrains_and_parses_its_own_syntax() {
        let cases = [
            ("hermes", "<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>"),
            ("llama3", "{\"name\": \"add\", \"parameters\": {\"a\": 1, \"b\": 2}}"),
            ("mistral-nemo", "[TOOL_CALLS][{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}, {\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}]"),
            ("mistral", "[TOOL_CALLS]add[ARGS]{\"a\": 1, \"b\": 2}[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Oslo\"}"),
            ("granite3", "<|tool_call|>[{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}]"),
            ("deepseek-r1", "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>add\n```json\n{\"a\": 1, \"b\": 2}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>"),
        ];
        for (name, call) in cases {
            let chat = ChatFormat::named(name).unwrap();
            let t = read(&json!({"tools": tools(), "tool_choice": "required"}), &chat, &Limits::default(), false)
                .unwrap()
                .unwrap();
            let a = compile(&t);
            assert!(a.accepts(call.as_bytes()), "{name}: {call}");
            assert!(!a.accepts(call.replace("add", "sub").as_bytes()), "{name}: another function's name");
            assert!(
                !a.accepts(call.replace("\"a\": 1", "\"a\": \"one\"").as_bytes()),
                "{name}: arguments off their schema"
            );
            // Bare JSON calls are taken from every family.
            assert!(a.accepts(br#"{"name": "add", "arguments": {"a": 1, "b": 2}}"#), "{name}");
            let (content, calls) = parse_calls(call, chat.call_syntax().as_ref(), true, &RawStrings::default());
            assert_eq!(content, None, "{name}");
            assert_eq!(calls[0]["function"]["name"], "add", "{name}");
            assert_eq!(calls[0]["function"]["arguments"], r#"{"a":1,"b":2}"#, "{name}");
        }
        // XML parameters: values in the template's spelling, typed back by the schema.
        let chat = ChatFormat::named("qwen3-coder").unwrap();
        let t = read(&json!({"tools": tools(), "tool_choice": "required"}), &chat, &Limits::default(), false)
            .unwrap()
            .unwrap();
        let a = compile(&t);
        let call = |a_value: &str| {
            format!("<tool_call>\n<function=add>\n<parameter=a>\n{a_value}\n</parameter>\n<parameter=b>\n2\n</parameter>\n</function>\n</tool_call>")
        };
        assert!(a.accepts(call("1").as_bytes()));
        assert!(!a.accepts(call("one").as_bytes()), "an integer parameter");
        let weather =
            "<tool_call>\n<function=get_weather>\n<parameter=city>\nSão Paulo\n</parameter>\n</function>\n</tool_call>";
        assert!(a.accepts(weather.as_bytes()));
        let (_, calls) = parse_calls(&call("1"), chat.call_syntax().as_ref(), true, &t.raw_strings);
        assert_eq!(calls[0]["function"]["arguments"], r#"{"a":1,"b":2}"#);
        let (_, calls) = parse_calls(weather, chat.call_syntax().as_ref(), true, &t.raw_strings);
        assert_eq!(calls[0]["function"]["arguments"], r#"{"city":"São Paulo"}"#);
        let single = ChatFormat::named("llama3").unwrap();
        let t = read(&json!({"tools": tools(), "tool_choice": "required"}), &single, &Limits::default(), false)
            .unwrap()
            .unwrap();
        let a = compile(&t);
        assert!(
            !a.accepts(
                br#"{"name": "add", "parameters": {"a": 1, "b": 2}}{"name": "add", "parameters": {"a": 1, "b": 2}}"#
            ),
            "Llama 3 calls one at a time"
        );
    }

    /// A stream holds back an output that may still be a JSON call, and shows prose at once.
    #[test]
    fn streams_hold_back_what_may_be_a_json_call() {
        let mut s = ToolStream::new(hermes_syntax(), true, RawStrings::default());
        assert_eq!(s.push("``"), "");
        assert_eq!(s.push("`json\n{\"name\": \"add\", "), "");
        assert_eq!(s.push("\"arguments\": {}}\n```"), "");
        let (rest, calls) = s.finish();
        assert_eq!((rest.as_str(), calls.len()), ("", 1));
        let mut s = ToolStream::new(hermes_syntax(), true, RawStrings::default());
        assert_eq!(s.push("``"), "");
        assert_eq!(s.push("`python\nprint(1)"), "```python\nprint(1)");
        let mut s = ToolStream::new(hermes_syntax(), true, RawStrings::default());
        assert_eq!(s.push("{\"a\": 1}"), "");
        assert_eq!(s.finish(), ("{\"a\": 1}".to_string(), Vec::new()), "not a call: shown whole at the end");
        let mut s = ToolStream::new(hermes_syntax(), false, RawStrings::default());
        assert_eq!(s.push("{\"a\": 1}"), "{\"a\": 1}");
    }

    #[test]
    fn bad_tools_name_the_field() {
        let limits = Limits::default();
        let e = read(&json!({"tools": [{"type": "retrieval"}]}), &hermes(), &limits, false).err().unwrap();
        assert_eq!(e.param.as_deref(), Some("tools[0].type"));
        let e = read(
            &json!({"tools": tools(), "tool_choice": {"type": "function", "function": {"name": "nope"}}}),
            &hermes(),
            &limits,
            false,
        )
        .err()
        .unwrap();
        assert_eq!(e.param.as_deref(), Some("tool_choice.function.name"));
        let e = read(&json!({"tool_choice": "required"}), &hermes(), &limits, false).err().unwrap();
        assert_eq!(e.param.as_deref(), Some("tool_choice"));
        let string_args = json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]);
        let e = read(&json!({"tools": string_args}), &hermes(), &limits, false).err().unwrap();
        assert_eq!(e.param.as_deref(), Some("tools[0].function.parameters.type"));
        let e = read(
            &json!({"tools": [{"type": "function", "function": {"name": "f", "parameters": 3}}]}),
            &hermes(),
            &limits,
            false,
        )
        .err()
        .unwrap();
        assert_eq!(e.param.as_deref(), Some("tools[0].function.parameters"));
    }

    #[test]
    fn untyped_parameters_take_objects_only() {
        let list = json!([{"type": "function", "function": {"name": "f", "parameters": {"properties": {"a": {"type": "integer"}}}}}]);
        let a = compile(
            &read(&json!({"tools": list, "tool_choice": "required"}), &hermes(), &Limits::default(), false)
                .unwrap()
                .unwrap(),
        );
        let call = |args: &str| format!("<tool_call>\n{{\"name\": \"f\", \"arguments\": {args}}}\n</tool_call>");
        assert!(a.accepts(call("{\"a\": 1}").as_bytes()));
        assert!(!a.accepts(call("\"x\"").as_bytes()), "arguments must be an object");
    }
}

/// Streams a choice's text while holding back everything from the tool-call opener on, so a
/// client sees prose as it comes and tool calls only once they are complete and parsed.
/// With `json_surface`, an output that may be a JSON call is held back whole until it is known.
#[derive(Default)]
pub struct ToolStream {
    text: String,
    emitted: usize,
    syntax: Option<CallSyntax>,
    json_surface: bool,
    raw: RawStrings,
}

impl ToolStream {
    pub fn new(syntax: Option<CallSyntax>, json_surface: bool, raw: RawStrings) -> Self {
        ToolStream { text: String::new(), emitted: 0, syntax, json_surface, raw }
    }

    /// Text that can be shown now.
    pub fn push(&mut self, piece: &str) -> String {
        self.text.push_str(piece);
        let opener = self.syntax.and_then(|s| s.marker()).unwrap_or("");
        let safe = match self.text.find(opener).filter(|_| !opener.is_empty()) {
            Some(at) => at,
            None if self.json_surface && self.emitted == 0 && may_be_json_call(&self.text) => 0,
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
        let (_, calls) = parse_calls(&self.text, self.syntax.as_ref(), self.json_surface, &self.raw);
        if calls.is_empty() {
            (self.text[self.emitted..].to_string(), calls)
        } else {
            (String::new(), calls)
        }
    }
}
