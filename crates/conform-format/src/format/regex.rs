//! User regex → [`Automaton`].

use super::{Automaton, FormatError, Limits};

/// Compiles a user regex (Rust `regex` syntax) that the *whole* output must match.
/// Look-around other than `^`/`$`/ASCII word boundaries is rejected by the parser/DFA builder
/// with a clear error; a regex that can match nothing is rejected with
/// [`FormatError::EmptyLanguage`].
pub fn compile_regex(pattern: &str, limits: &Limits) -> Result<Automaton, FormatError> {
    Automaton::from_regex(pattern, limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_basics() {
        let a = compile_regex(r"\d{3}-\d{4}", &Limits::default()).unwrap();
        assert!(a.accepts(b"555-1234"));
        assert!(!a.accepts(b"555-12345"));
        assert!(!a.accepts(b"x555-1234"));
    }

    #[test]
    fn regex_errors() {
        match compile_regex("ab(c", &Limits::default()) {
            Err(FormatError::InvalidRegex { position: Some(_), message }) => assert!(!message.is_empty()),
            other => panic!("{other:?}"),
        }
        let e = compile_regex(r"(a)\1", &Limits::default()).unwrap_err();
        assert!(e.to_string().contains("backreference"), "{e}");
        assert!(compile_regex(r"a\bz", &Limits::default()).is_err());
    }
}
