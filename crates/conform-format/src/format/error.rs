//! Errors produced while compiling a format constraint.

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

    /// A limit from [`crate::format::Limits`] was exceeded.
    #[error("constraint too complex: {what} (limit: {limit})")]
    TooComplex { what: String, limit: String },

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
    pub(crate) fn too_complex(what: impl Into<String>, limit: impl ToString) -> Self {
        FormatError::TooComplex { what: what.into(), limit: limit.to_string() }
    }
}

/// Pointers are kept internally without the leading `#`; the root is shown as `#`.
pub(crate) fn pointer_display(p: &str) -> String {
    if p.starts_with('#') { p.to_string() } else { format!("#{p}") }
}
