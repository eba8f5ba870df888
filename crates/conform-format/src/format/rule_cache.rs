//! Rule automata shared across compiles. The rules of a recursive network are often the same
//! text from schema to schema — above all the any-JSON value every open object's extra members
//! call, ~0.4 ms to determinise, the larger part of a median schema's compile — so a compiled
//! rule is kept, keyed by its regex and the limits it was built under, and shared.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use super::{Automaton, FormatError, Limits};

/// Bytes of rule automata kept; past it the cache starts over (a rule is rebuilt on its next
/// use), so schemas with rules of their own cannot grow it without bound.
const CACHE_BYTES: usize = 32 << 20;

/// The regex, then the limits a rule's compile depends on (its length, the determinisation's
/// work, the DFA's size): a request with tighter limits gets its own error, not a rule built
/// under looser ones.
type Key = (String, usize, usize, usize);

#[derive(Default)]
struct Cache {
    rules: HashMap<Key, Arc<Automaton>>,
    bytes: usize,
}

fn cache() -> &'static Mutex<Cache> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

/// The rule automaton of `pattern` (see [`super::recursive::rule_automaton`]), from the cache
/// or compiled and cached. The lock is not held while compiling.
pub fn rule(pattern: &str, limits: &Limits) -> Result<Arc<Automaton>, FormatError> {
    let key = (pattern.to_owned(), limits.max_regex_len, limits.determinize_size_bytes, limits.dfa_size_bytes);
    if let Some(rule) = cache().lock().unwrap().rules.get(&key) {
        return Ok(rule.clone());
    }
    let rule = Arc::new(Automaton::from_rule_regex(pattern, limits)?);
    let bytes = rule.memory_usage() + pattern.len();
    let mut cache = cache().lock().unwrap();
    if cache.bytes + bytes > CACHE_BYTES {
        cache.rules.clear();
        cache.bytes = 0;
    }
    if bytes <= CACHE_BYTES && cache.rules.insert(key, rule.clone()).is_none() {
        cache.bytes += bytes;
    }
    Ok(rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_is_shared_and_tighter_limits_are_not_served_from_the_cache() {
        let pattern = r#""[a-z]{0,40}""#;
        let a = rule(pattern, &Limits::default()).unwrap();
        let b = rule(pattern, &Limits::default()).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let tight = Limits { dfa_size_bytes: 64, ..Limits::default() };
        assert!(matches!(rule(pattern, &tight), Err(FormatError::TooComplex { .. })));
    }
}
