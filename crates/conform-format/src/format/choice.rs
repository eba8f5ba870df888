//! A list of literal alternatives → [`Automaton`].

use super::{Automaton, FormatError, Limits};

/// The regex matching exactly one of `choices` (each escaped literally).
pub fn choice_regex<S: AsRef<str>>(choices: &[S]) -> Result<String, FormatError> {
    if choices.is_empty() {
        return Err(FormatError::EmptyChoice);
    }
    let alts: Vec<String> = choices.iter().map(|c| regex_syntax::escape(c.as_ref())).collect();
    Ok(format!("(?:{})", alts.join("|")))
}

/// Compiles a choice list: the output must be exactly one of the strings.
pub fn compile_choice<S: AsRef<str>>(choices: &[S], limits: &Limits) -> Result<Automaton, FormatError> {
    Automaton::from_regex(&choice_regex(choices)?, limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices() {
        let a = compile_choice(&["yes", "no", "a.b", "y"], &Limits::default()).unwrap();
        for ok in ["yes", "no", "a.b", "y"] {
            assert!(a.accepts(ok.as_bytes()), "{ok}");
        }
        for bad in ["", "ye", "axb", "yess", "No"] {
            assert!(!a.accepts(bad.as_bytes()), "{bad}");
        }
        assert!(a.is_accepting(a.next(a.start(), b'y').unwrap()));
        let e = compile_choice::<&str>(&[], &Limits::default()).unwrap_err();
        assert_eq!(e, FormatError::EmptyChoice);
        let a = compile_choice(&[""], &Limits::default()).unwrap();
        assert!(a.accepts(b""));
    }
}
