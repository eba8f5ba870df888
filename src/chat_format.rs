//! How a model family writes tool calls and reasoning: the part of a chat format the template
//! does not say. The template renders tools, results and past calls; this module knows the
//! syntax the model answers in, so the format engine can constrain it and the server can parse
//! it back into `tool_calls` and `reasoning_content`.
//!
//! A format is data ([`ChatFormat`]), detected from the GGUF's template ([`ChatFormat::detect`])
//! or named with `--chat-format`. A template whose call syntax is known but not yet constrained
//! (GPT-OSS's harmony channels) names itself in a clear error when a request has tools, rather
//! than being held to a syntax the model does not write.

use serde_json::Value;

/// How one call's body is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallBody {
    /// `{"name": NAME, "<arguments_key>": ARGS}`, the name as a JSON string.
    Json { arguments_key: &'static str },
    /// The bare name, then `between`, then the arguments' JSON.
    NameThenArgs { between: &'static str },
    /// Qwen3-Coder's XML: `<function=NAME>\n` then `<parameter=KEY>\nVALUE\n</parameter>\n` per
    /// argument, then `</function>`. A value is written as Python's `str` of it (strings raw,
    /// `True`, `42`) or, for objects and lists, as JSON.
    XmlParameters,
}

/// A family's tool-call syntax: `begin (open BODY close) (separator open BODY close)* end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallSyntax {
    /// Before the first call (Mistral Nemo's `[TOOL_CALLS][`).
    pub begin: &'static str,
    /// Around each call.
    pub open: &'static str,
    pub close: &'static str,
    /// Between two calls.
    pub separator: &'static str,
    /// After the last call.
    pub end: &'static str,
    pub body: CallBody,
    /// Whether the family writes several calls in one turn.
    pub parallel: bool,
    /// The template follows the last call with a newline, and a model that is done writes one
    /// before it stops: it may not be turned into a further call.
    pub trailing_newline: bool,
}

/// Markers around a reasoning section (`<think>` … `</think>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reasoning {
    pub open: &'static str,
    pub close: &'static str,
}

/// What this server does with a family's tool calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Calls {
    /// Constrained in the family's syntax (and, for small models' sake, as a bare JSON call).
    Native(CallSyntax),
    /// Calls as a bare JSON object `{"name": …, "arguments": …}` (or a list of them), the
    /// documented fallback for templates of no known family.
    Generic,
    /// A known syntax conform does not constrain yet: requests with tools get a 400.
    Unsupported,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChatFormat {
    pub name: &'static str,
    pub calls: Calls,
    pub reasoning: Option<Reasoning>,
}

const THINK: Reasoning = Reasoning { open: "<think>", close: "</think>" };
const MISTRAL_THINK: Reasoning = Reasoning { open: "[THINK]", close: "[/THINK]" };

const HERMES: CallSyntax = CallSyntax {
    begin: "",
    open: "<tool_call>\n",
    close: "\n</tool_call>",
    separator: "\n",
    end: "",
    body: CallBody::Json { arguments_key: "arguments" },
    parallel: true,
    trailing_newline: true,
};

const QWEN3_CODER: CallSyntax = CallSyntax {
    begin: "",
    open: "<tool_call>\n",
    close: "\n</tool_call>",
    separator: "\n",
    end: "",
    body: CallBody::XmlParameters,
    parallel: true,
    trailing_newline: true,
};

/// Calls as one JSON list after `begin` (which opens the list).
const fn json_list(begin: &'static str) -> CallSyntax {
    CallSyntax {
        begin,
        open: "",
        close: "",
        separator: ", ",
        end: "]",
        body: CallBody::Json { arguments_key: "arguments" },
        parallel: true,
        trailing_newline: false,
    }
}

/// Every format by name, as `--chat-format` takes them.
pub const FORMATS: &[ChatFormat] = &[
    // Qwen2.5, Hermes 2/3, Granite 4, SmolLM3: JSON in <tool_call> tags.
    ChatFormat { name: "hermes", calls: Calls::Native(HERMES), reasoning: None },
    // Qwen3, QwQ, SmolLM3 with thinking: Hermes calls after a <think> section.
    ChatFormat { name: "qwen3", calls: Calls::Native(HERMES), reasoning: Some(THINK) },
    // Llama 3.1-3.3 custom tools: one JSON object with "parameters".
    ChatFormat {
        name: "llama3",
        calls: Calls::Native(CallSyntax {
            begin: "",
            open: "",
            close: "",
            separator: "",
            end: "",
            body: CallBody::Json { arguments_key: "parameters" },
            parallel: false,
            trailing_newline: false,
        }),
        reasoning: None,
    },
    // Mistral Nemo (v3 tekken): one list of JSON calls.
    ChatFormat { name: "mistral-nemo", calls: Calls::Native(json_list("[TOOL_CALLS][")), reasoning: None },
    // Mistral Small 3.2, Devstral, Ministral 3, Magistral: `[TOOL_CALLS]name[ARGS]{…}` per call.
    ChatFormat {
        name: "mistral",
        calls: Calls::Native(CallSyntax {
            begin: "",
            open: "[TOOL_CALLS]",
            close: "",
            separator: "",
            end: "",
            body: CallBody::NameThenArgs { between: "[ARGS]" },
            parallel: true,
            trailing_newline: false,
        }),
        reasoning: Some(MISTRAL_THINK),
    },
    // Granite 3.x: `<|tool_call|>` and a JSON list.
    ChatFormat { name: "granite3", calls: Calls::Native(json_list("<|tool_call|>[")), reasoning: None },
    // DeepSeek-R1 distills (and V3): special-token call blocks with a fenced JSON body.
    ChatFormat {
        name: "deepseek-r1",
        calls: Calls::Native(CallSyntax {
            begin: "<｜tool▁calls▁begin｜>",
            open: "<｜tool▁call▁begin｜>function<｜tool▁sep｜>",
            close: "\n```<｜tool▁call▁end｜>",
            separator: "\n",
            end: "<｜tool▁calls▁end｜>",
            body: CallBody::NameThenArgs { between: "\n```json\n" },
            parallel: true,
            trailing_newline: false,
        }),
        reasoning: Some(THINK),
    },
    // Qwen3-Coder, Qwen3.5, Nemotron 3 Nano: XML parameters in <tool_call> tags.
    ChatFormat { name: "qwen3-coder", calls: Calls::Native(QWEN3_CODER), reasoning: Some(THINK) },
    ChatFormat { name: "gpt-oss", calls: Calls::Unsupported, reasoning: None },
    ChatFormat { name: "generic", calls: Calls::Generic, reasoning: None },
    ChatFormat { name: "generic-think", calls: Calls::Generic, reasoning: Some(THINK) },
];

impl ChatFormat {
    pub fn named(name: &str) -> Option<ChatFormat> {
        FORMATS.iter().find(|f| f.name == name).copied()
    }

    /// The syntax this format constrains calls to, where it has its own.
    pub fn call_syntax(&self) -> Option<CallSyntax> {
        match self.calls {
            Calls::Native(syntax) => Some(syntax),
            _ => None,
        }
    }

    /// The names `--chat-format` accepts, for its error message.
    pub fn names() -> String {
        FORMATS.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
    }

    /// The family a template belongs to, by the call syntax and reasoning markers it writes.
    /// Most specific first: Qwen3-Coder's and DeepSeek's templates mention `<tool_call>` or
    /// `<think>` too.
    pub fn detect(template: &str) -> ChatFormat {
        let has = |s: &str| template.contains(s);
        let thinks = has("<think>");
        let name = if has("<function=") {
            "qwen3-coder"
        } else if has("<|channel|>") {
            "gpt-oss"
        } else if has("tool▁calls▁begin") {
            "deepseek-r1"
        } else if has("[TOOL_CALLS][") {
            "mistral-nemo"
        } else if has("[ARGS]") {
            "mistral"
        } else if has("<|tool_call|>") {
            "granite3"
        } else if has("<tool_call>") {
            if thinks {
                "qwen3"
            } else {
                "hermes"
            }
        } else if has("\"parameters\": dictionary") || has("<|python_tag|>") {
            "llama3"
        } else if thinks {
            "generic-think"
        } else {
            "generic"
        };
        let mut format = ChatFormat::named(name).expect("every detected name is listed");
        // Families whose templates think only sometimes (Mistral's, DeepSeek V3's): a section
        // the template never writes is not assumed.
        format.reasoning = format.reasoning.filter(|r| has(r.open));
        format
    }
}

impl CallSyntax {
    /// The text that announces calls: the first literal the syntax writes, where it has one
    /// (the opener an `"auto"` output is watched for, and banned under `"none"`).
    pub fn marker(&self) -> Option<&'static str> {
        [self.begin, self.open].into_iter().map(str::trim).find(|s| !s.is_empty())
    }

    /// Where the calls start in `text` and the calls themselves (`(name, arguments)`), read
    /// leniently: a call that does not parse ends the list. `None` when `text` holds no call
    /// in this syntax.
    pub fn parse(&self, text: &str) -> Option<(usize, Vec<(String, Value)>)> {
        let start = match self.marker() {
            Some(marker) => text.find(marker)?,
            // No marker (Llama 3): the calls are the whole output.
            None => text.len() - text.trim_start().len(),
        };
        let mut rest = strip_prefix_loose(&text[start..], self.begin)?;
        let mut calls = Vec::new();
        while let Some(after_open) = strip_prefix_loose(rest, self.open) {
            let Some((call, after)) = self.parse_body(after_open) else { break };
            calls.push(call);
            rest = strip_prefix_loose(after, self.close).unwrap_or(after);
            if !self.parallel {
                break;
            }
            rest = strip_prefix_loose(rest, self.separator).unwrap_or(rest);
            // With a marker on every call, a later call after some prose counts too (free
            // decoding writes such outputs).
            if self.begin.is_empty() && !self.open.trim().is_empty() {
                match rest.find(self.open.trim()) {
                    Some(at) => rest = &rest[at..],
                    None => break,
                }
            }
        }
        (!calls.is_empty()).then_some((start, calls))
    }

    fn parse_body<'t>(&self, text: &'t str) -> Option<((String, Value), &'t str)> {
        match self.body {
            CallBody::Json { arguments_key } => {
                let (call, rest) = leading_json(text)?;
                let name = call.get("name")?.as_str()?.to_string();
                let arguments = call.get(arguments_key).filter(|a| a.is_object())?.clone();
                Some(((name, arguments), rest))
            }
            CallBody::NameThenArgs { between } => {
                let (name, after) = text.split_once(between)?;
                let (arguments, rest) = leading_json(after)?;
                arguments.is_object().then(|| ((name.trim().to_string(), arguments), rest))
            }
            CallBody::XmlParameters => {
                // Values come back as the strings written; tools.rs types them by the schema.
                let (name, mut rest) = text.strip_prefix("<function=")?.split_once('>')?;
                let mut arguments = serde_json::Map::new();
                loop {
                    rest = rest.trim_start();
                    if let Some(after) = rest.strip_prefix("</function>") {
                        return Some(((name.trim().to_string(), Value::Object(arguments)), after));
                    }
                    let (key, after) = rest.strip_prefix("<parameter=")?.split_once('>')?;
                    let (value, after) = after.split_once("</parameter>")?;
                    let value = value.strip_prefix('\n').unwrap_or(value);
                    let value = value.strip_suffix('\n').unwrap_or(value);
                    arguments.insert(key.trim().to_string(), Value::String(value.to_string()));
                    rest = after;
                }
            }
        }
    }
}

/// `text` past `prefix`, ignoring whitespace around it (models vary the template's newlines).
fn strip_prefix_loose<'t>(text: &'t str, prefix: &str) -> Option<&'t str> {
    if prefix.trim().is_empty() {
        return Some(text.trim_start());
    }
    text.trim_start().strip_prefix(prefix.trim()).map(str::trim_start)
}

/// The JSON value at the start of `text` and what follows it.
fn leading_json(text: &str) -> Option<(Value, &str)> {
    let mut values = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let value = values.next()?.ok()?;
    Some((value, &text[values.byte_offset()..]))
}

impl Reasoning {
    /// Splits an output into its reasoning and what follows it. `opened`: the prompt already
    /// opened the section (the model's output starts inside it). Reasoning that never closed
    /// (cut by the budget) is all reasoning.
    pub fn split<'t>(&self, text: &'t str, opened: bool) -> (Option<&'t str>, &'t str) {
        let inside = if opened { Some(text) } else { text.trim_start().strip_prefix(self.open) };
        let Some(inside) = inside else { return (None, text) };
        match inside.split_once(self.close) {
            Some((reasoning, after)) => (Some(reasoning.trim()), after.trim_start()),
            None => (Some(inside.trim()), ""),
        }
    }

    /// Where a rendered prompt leaves the reasoning section: opened (the model writes inside it),
    /// closed (the template turned thinking off), or neither.
    pub fn prompt_state(&self, prompt: &str) -> PromptReasoning {
        let tail = prompt.trim_end();
        if tail.ends_with(self.close) {
            PromptReasoning::Closed
        } else if tail.ends_with(self.open) {
            PromptReasoning::Opened
        } else {
            PromptReasoning::NotStarted
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PromptReasoning {
    Opened,
    Closed,
    NotStarted,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn syntax(name: &str) -> CallSyntax {
        match ChatFormat::named(name).unwrap().calls {
            Calls::Native(s) => s,
            other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn detects_families_from_their_templates_words() {
        let cases = [
            ("{{- '<tool_call>\\n' }}", "hermes"),
            ("<tool_call> … <think>", "qwen3"),
            ("<tool_call>\\n<function=name>", "qwen3-coder"),
            ("<tool_call>\\n<function=name> <think>", "qwen3-coder"),
            ("Respond in the format {\"name\": function name, \"parameters\": dictionary of …}", "llama3"),
            ("{{- \"[TOOL_CALLS][\" }}", "mistral-nemo"),
            ("'[TOOL_CALLS]' + name + '[ARGS]'", "mistral"),
            ("<|tool_call|>", "granite3"),
            ("<｜tool▁calls▁begin｜> <think>", "deepseek-r1"),
            ("<|start|>assistant<|channel|>", "gpt-oss"),
            ("'[TOOL_CALLS]' + name + '[ARGS]' [THINK]", "mistral"),
            ("{{ message.content }}", "generic"),
            ("<think>{{ message.content }}", "generic-think"),
        ];
        for (template, name) in cases {
            assert_eq!(ChatFormat::detect(template).name, name, "{template}");
        }
        assert_eq!(ChatFormat::detect("[TOOL_CALLS] [ARGS] [THINK]").reasoning, Some(MISTRAL_THINK));
        assert_eq!(ChatFormat::detect("[TOOL_CALLS] [ARGS]").reasoning, None, "Devstral does not think");
        assert_eq!(ChatFormat::detect("<tool_call> <think>").reasoning, Some(THINK));
    }

    #[test]
    fn parses_each_familys_calls_as_its_template_writes_them() {
        let cases = [
            ("hermes", "I will check.\n<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}}\n</tool_call>\n<tool_call>\n{\"name\": \"g\", \"arguments\": {}}\n</tool_call>\n", 2),
            ("llama3", "{\"name\": \"f\", \"parameters\": {\"a\": 1}}", 1),
            ("mistral-nemo", "[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {\"a\": 1}}, {\"name\": \"g\", \"arguments\": {}}]", 2),
            ("mistral", "[TOOL_CALLS]f[ARGS]{\"a\": 1}[TOOL_CALLS]g[ARGS]{}", 2),
            ("granite3", "<|tool_call|>[{\"name\": \"f\", \"arguments\": {\"a\": 1}}]", 1),
            ("deepseek-r1", "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n{\"a\": 1}\n```<｜tool▁call▁end｜>\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>g\n```json\n{}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>", 2),
            ("qwen3-coder", "<tool_call>\n<function=f>\n<parameter=a>\n1\n</parameter>\n</function>\n</tool_call>\n<tool_call>\n<function=g>\n</function>\n</tool_call>", 2),
        ];
        for (name, text, count) in cases {
            let (start, calls) = syntax(name).parse(text).unwrap_or_else(|| panic!("{name}: no calls in {text:?}"));
            assert_eq!(calls.len(), count, "{name}");
            let want = if name == "qwen3-coder" { json!({"a": "1"}) } else { json!({"a": 1}) };
            assert_eq!(calls[0], ("f".to_string(), want), "{name}");
            assert_eq!(text[..start].trim(), if name == "hermes" { "I will check." } else { "" }, "{name}");
        }
        assert!(syntax("llama3").parse("The weather is fine.").is_none());
        assert!(syntax("hermes").parse("no calls here").is_none());
    }

    #[test]
    fn splits_reasoning_from_the_answer() {
        assert_eq!(THINK.split("<think>\nhm, 2+2\n</think>\n\n{\"a\": 4}", false), (Some("hm, 2+2"), "{\"a\": 4}"));
        assert_eq!(THINK.split("hm\n</think>\n\nok", true), (Some("hm"), "ok"));
        assert_eq!(THINK.split("still thinking", true), (Some("still thinking"), ""));
        assert_eq!(THINK.split("plain answer", false), (None, "plain answer"));
        assert_eq!(THINK.prompt_state("<|im_start|>assistant\n<think>\n"), PromptReasoning::Opened);
        assert_eq!(THINK.prompt_state("<|im_start|>assistant\n<think>\n\n</think>\n\n"), PromptReasoning::Closed);
        assert_eq!(THINK.prompt_state("<|im_start|>assistant\n"), PromptReasoning::NotStarted);
    }
}
