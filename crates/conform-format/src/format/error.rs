//! Errors produced while compiling a format constraint.

use std::fmt;

use thiserror::Error;

/// Everything that can go wrong when compiling a constraint into an [`crate::format::Automaton`].
///
/// Every message is meant to be shown to an API user as-is: it says what is wrong and, for
/// JSON Schema errors, the JSON pointer (RFC 6901, `#`-prefixed) of the offending schema node.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FormatError {
    /// The user regex (or a JSON Schema `pattern`) does not parse.
    #[error("invalid regex{}: {message}", .position.map(|p| format!(" at byte {p}")).unwrap_or_default())]
    InvalidRegex { message: String, position: Option<usize> },

    /// The regex parses but can match nothing (or nothing that is valid UTF-8).
    #[error("the regex can never match: {message}")]
    EmptyLanguage { message: String },

    /// The JSON Schema is malformed (wrong keyword value type, dangling `$ref`, ...) or
    /// unsatisfiable under the generation policy.
    #[error("invalid JSON Schema at {pointer}: {message}")]
    InvalidSchema { pointer: String, message: String },

    /// A keyword (or a use of it) that cannot be enforced exactly. Never silently ignored
    /// (except in lenient mode, where it is reported in the `ignored` list instead).
    #[error("unsupported JSON Schema keyword `{keyword}` at {pointer}{}", if .reason.is_empty() { String::new() } else { format!(": {}", .reason) })]
    UnsupportedKeyword { keyword: String, pointer: String, reason: String },

    /// A limit from [`crate::format::Limits`] (or a fixed bound of the engine) was exceeded;
    /// `limit` says which, with its value.
    #[error("constraint too complex: {what} (limit: {limit})")]
    TooComplex { what: String, limit: Limit },

    /// A grammar (GBNF) that does not parse or cannot be compiled; `line`/`column` are 1-based
    /// and point into the grammar text (0 when the problem is not at one place, e.g. left
    /// recursion through several rules).
    #[error("invalid grammar{}: {message}", if *.line > 0 { format!(" at line {}, column {}", .line, .column) } else { String::new() })]
    InvalidGrammar { message: String, line: usize, column: usize },

    /// A writing instruction with an unknown id or a bad argument; `path` names it, e.g.
    /// `instructions[2].num_words`.
    #[error("invalid instruction at {path}: {message}")]
    InvalidInstruction { path: String, message: String },

    /// Instructions that no single response can satisfy together.
    #[error("contradictory instructions: {message}")]
    Contradictory { message: String },

    /// A `choice` constraint with no alternatives.
    #[error("choice list is empty: at least one alternative is required")]
    EmptyChoice,
}

impl FormatError {
    pub(crate) fn schema(pointer: &str, message: impl Into<String>) -> Self {
        FormatError::InvalidSchema { pointer: pointer_display(pointer), message: message.into() }
    }
    pub(crate) fn unsupported(keyword: &str, pointer: &str, reason: impl Into<String>) -> Self {
        FormatError::UnsupportedKeyword {
            keyword: keyword.to_string(),
            pointer: pointer_display(pointer),
            reason: reason.into(),
        }
    }
    pub(crate) fn too_complex(what: impl Into<String>, limit: Limit) -> Self {
        FormatError::TooComplex { what: what.into(), limit }
    }
}

/// The limit a [`FormatError::TooComplex`] ran into, with the value it had. Most are fields of
/// [`crate::format::Limits`] (their variant is named after the field); the others are fixed
/// bounds of the engine. `Display` writes what the error message shows after `limit: `, e.g.
/// `max_regex_len = 1048576`; [`Limit::name`] names the limit without its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limit {
    /// `Limits::dfa_size_bytes`: the rule DFAs of a recursive network, all together.
    DfaSizeBytes(usize),
    /// One automaton built from a regex: its NFA and determinisation (bounded by
    /// `Limits::determinize_size_bytes`) or the DFA itself (`Limits::dfa_size_bytes`),
    /// whichever tripped.
    AutomatonSize { dfa_size_bytes: usize, determinize_size_bytes: usize },
    /// A product automaton's states: its table is bounded by `Limits::dfa_size_bytes`, its
    /// state tuples while building by `Limits::determinize_size_bytes`.
    ProductSize { dfa_size_bytes: usize, determinize_size_bytes: usize },
    /// `Limits::max_regex_len`: a regex, a grammar's text, or what a schema or grammar lowers to.
    MaxRegexLen(usize),
    /// `Limits::max_repetition`: a bounded repetition unrolled into the automaton.
    MaxRepetition(u32),
    /// `Limits::max_schema_depth`: schema nodes (or merges) nested in each other.
    MaxSchemaDepth(u32),
    /// `Limits::max_lowering_work`: bytes of regex built while lowering a schema.
    MaxLoweringWork(usize),
    /// `Limits::max_product_components`: automata intersected by one product.
    MaxProductComponents(usize),
    /// `Limits::max_listed_words`: words listed by one writing instruction.
    MaxListedWords(usize),
    /// The regex parser's nesting limit ([`crate::format::automaton::MAX_REGEX_NESTING`]).
    RegexNesting(u32),
    /// How deep grammar rule references and groups may nest while a grammar is lowered to a
    /// regex (the same bound, [`crate::format::automaton::MAX_REGEX_NESTING`]).
    GrammarNesting(u32),
    /// How many rules a [`crate::format::Recursive`] network may have: 1 to this
    /// ([`crate::format::recursive::MAX_RULES`]).
    RecursiveRules(usize),
    /// A regex used to check values while lowering a schema (`enum` values, property names)
    /// could not be built within the regex library's own size limits.
    RegexBuild,
}

impl Limit {
    /// The limit's name: the [`crate::format::Limits`] field where it is one (e.g.
    /// `"dfa_size_bytes"`; the size variants name `dfa_size_bytes`, what is built, and carry
    /// `determinize_size_bytes` too), else the engine bound's own name (`"max_regex_nesting"`,
    /// `"max_rules"`, `"regex_build"`).
    pub fn name(&self) -> &'static str {
        match self {
            Limit::DfaSizeBytes(_) | Limit::AutomatonSize { .. } | Limit::ProductSize { .. } => "dfa_size_bytes",
            Limit::MaxRegexLen(_) => "max_regex_len",
            Limit::MaxRepetition(_) => "max_repetition",
            Limit::MaxSchemaDepth(_) => "max_schema_depth",
            Limit::MaxLoweringWork(_) => "max_lowering_work",
            Limit::MaxProductComponents(_) => "max_product_components",
            Limit::MaxListedWords(_) => "max_listed_words",
            Limit::RegexNesting(_) | Limit::GrammarNesting(_) => "max_regex_nesting",
            Limit::RecursiveRules(_) => "max_rules",
            Limit::RegexBuild => "regex_build",
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::DfaSizeBytes(n) => write!(f, "dfa_size_bytes = {n}"),
            Limit::AutomatonSize { dfa_size_bytes, determinize_size_bytes } => {
                write!(f, "dfa_size_bytes = {dfa_size_bytes}, determinize_size_bytes = {determinize_size_bytes}")
            }
            Limit::ProductSize { dfa_size_bytes, determinize_size_bytes } => {
                write!(f, "dfa_size_bytes = {dfa_size_bytes} (determinize_size_bytes = {determinize_size_bytes} while building)")
            }
            Limit::MaxRegexLen(n) => write!(f, "max_regex_len = {n}"),
            Limit::MaxRepetition(n) => write!(f, "max_repetition = {n}"),
            Limit::MaxSchemaDepth(n) => write!(f, "max_schema_depth = {n}"),
            Limit::MaxLoweringWork(n) => write!(f, "max_lowering_work = {n}"),
            Limit::MaxProductComponents(n) => write!(f, "max_product_components = {n}"),
            Limit::MaxListedWords(n) => write!(f, "max_listed_words = {n}"),
            Limit::RegexNesting(n) => write!(f, "regex nesting limit = {n}"),
            Limit::GrammarNesting(n) => write!(f, "max regex nesting = {n}"),
            Limit::RecursiveRules(n) => write!(f, "1 to {n} rules"),
            Limit::RegexBuild => f.write_str("regex build"),
        }
    }
}

/// Pointers are kept internally without the leading `#`; the root is shown as `#`.
pub(crate) fn pointer_display(p: &str) -> String {
    if p.starts_with('#') {
        p.to_string()
    } else {
        format!("#{p}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::automaton::MAX_REGEX_NESTING;
    use crate::format::recursive::MAX_RULES;

    /// Each limit reads as the message text the call sites wrote before limits were typed
    /// (API clients read these messages).
    #[test]
    fn limits_read_as_before() {
        let cases = [
            (Limit::DfaSizeBytes(5), "dfa_size_bytes = 5", "dfa_size_bytes"),
            (
                Limit::AutomatonSize { dfa_size_bytes: 1, determinize_size_bytes: 2 },
                "dfa_size_bytes = 1, determinize_size_bytes = 2",
                "dfa_size_bytes",
            ),
            (
                Limit::ProductSize { dfa_size_bytes: 1, determinize_size_bytes: 2 },
                "dfa_size_bytes = 1 (determinize_size_bytes = 2 while building)",
                "dfa_size_bytes",
            ),
            (Limit::MaxRegexLen(7), "max_regex_len = 7", "max_regex_len"),
            (Limit::MaxRepetition(8), "max_repetition = 8", "max_repetition"),
            (Limit::MaxSchemaDepth(9), "max_schema_depth = 9", "max_schema_depth"),
            (Limit::MaxLoweringWork(10), "max_lowering_work = 10", "max_lowering_work"),
            (Limit::MaxProductComponents(11), "max_product_components = 11", "max_product_components"),
            (Limit::MaxListedWords(12), "max_listed_words = 12", "max_listed_words"),
            (Limit::RegexNesting(MAX_REGEX_NESTING), "regex nesting limit = 1000", "max_regex_nesting"),
            (Limit::GrammarNesting(MAX_REGEX_NESTING), "max regex nesting = 1000", "max_regex_nesting"),
            (Limit::RecursiveRules(MAX_RULES), &format!("1 to {MAX_RULES} rules"), "max_rules"),
            (Limit::RegexBuild, "regex build", "regex_build"),
        ];
        for (limit, text, name) in cases {
            assert_eq!(limit.to_string(), text);
            assert_eq!(limit.name(), name);
            let e = FormatError::too_complex("it", limit);
            assert_eq!(e.to_string(), format!("constraint too complex: it (limit: {text})"));
        }
    }
}
