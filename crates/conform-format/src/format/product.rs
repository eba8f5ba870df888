//! The intersection of several byte automata, some of them complemented, built eagerly into
//! one table DFA.
//!
//! Why: writing instructions are each a small automaton ("no comma", "at least 5 sentences"),
//! and a response must satisfy all of them and perhaps a regex or JSON Schema too. Regexes
//! cannot intersect or complement, but automata can. Building the product eagerly (rather than
//! stepping component tuples lazily) gives exact distances to acceptance over the *joint*
//! language, which the budget closure needs: the maximum of the components' distances would
//! under-estimate, and a state where every component is alive can still be jointly dead.
//! An empty product is reported, so contradictory constraints fail up front.

use std::collections::HashMap;
use std::sync::Arc;

use super::accept_distance::bytes_to_accept;
use super::{FormatError, Limit, Limits};
use crate::mask::ByteAutomaton;

/// One automaton of the product; a `negated` one must *not* accept the output.
#[derive(Clone)]
pub struct Component {
    pub automaton: Arc<dyn ByteAutomaton>,
    pub negated: bool,
}

/// The product as an explicit DFA: state `s` steps on byte class `c` to
/// `table[s * classes + c]` (`DEAD` when no output can be completed from there).
pub struct Product {
    table: Vec<u32>,
    classes: usize,
    class_of: [u8; 256],
    accepting: Vec<bool>,
    dist: Vec<u32>,
}

const DEAD: u32 = u32::MAX;

/// A component's state: `None` once the component automaton can no longer accept (then a
/// negated component is satisfied for good).
type Sub = Option<u32>;

impl Product {
    /// Builds the product. Fails with [`FormatError::TooComplex`] past
    /// `limits.max_product_components` components, past `limits.dfa_size_bytes` of table or
    /// `limits.determinize_size_bytes` of state tuples while building, and with
    /// [`FormatError::EmptyLanguage`] when no output satisfies everything.
    pub fn new(components: &[Component], limits: &Limits) -> Result<Product, FormatError> {
        if components.len() > limits.max_product_components {
            return Err(FormatError::too_complex(
                format!("{} automata to intersect", components.len()),
                Limit::MaxProductComponents(limits.max_product_components),
            ));
        }
        let (class_of, reps) = joint_classes(components);
        let classes = reps.len();
        // Each state costs a table row, and while building, its tuple twice (list and index).
        let tuple_bytes = 2 * (std::mem::size_of::<Vec<Sub>>() + components.len() * std::mem::size_of::<Sub>()) + 16;
        let max_states =
            (limits.dfa_size_bytes / (4 * classes + 8)).min(limits.determinize_size_bytes / tuple_bytes).max(1);
        let start: Vec<Sub> = components.iter().map(|c| Some(c.automaton.start())).collect();
        if start.iter().zip(components).any(|(s, c)| !alive(c, *s)) {
            return Err(empty());
        }
        let mut ids: HashMap<Vec<Sub>, u32> = HashMap::from([(start.clone(), 0)]);
        let mut tuples = vec![start];
        let mut table = Vec::new();
        let mut i = 0;
        while i < tuples.len() {
            for &b in &reps {
                let next: Vec<Sub> =
                    tuples[i].iter().zip(components).map(|(s, c)| s.and_then(|s| c.automaton.next(s, b))).collect();
                if next.iter().zip(components).any(|(s, c)| !alive(c, *s)) {
                    table.push(DEAD);
                    continue;
                }
                let id = match ids.get(&next) {
                    Some(&id) => id,
                    None => {
                        if tuples.len() >= max_states {
                            return Err(FormatError::too_complex(
                                format!("the combined automaton exceeds {max_states} states"),
                                Limit::ProductSize {
                                    dfa_size_bytes: limits.dfa_size_bytes,
                                    determinize_size_bytes: limits.determinize_size_bytes,
                                },
                            ));
                        }
                        let id = tuples.len() as u32;
                        ids.insert(next.clone(), id);
                        tuples.push(next);
                        id
                    }
                };
                table.push(id);
            }
            i += 1;
        }
        let accepting: Vec<bool> = tuples
            .iter()
            .map(|t| {
                t.iter().zip(components).all(|(s, c)| match (s, c.negated) {
                    (Some(s), false) => c.automaton.is_accepting(*s),
                    (None, false) => false,
                    (Some(s), true) => !c.automaton.is_accepting(*s),
                    (None, true) => true,
                })
            })
            .collect();
        let dist = bytes_to_accept(accepting.len(), |s| &table[s * classes..][..classes], DEAD, |s| accepting[s]);
        if dist[0] == u32::MAX {
            return Err(empty());
        }
        Ok(Product { table, classes, class_of, accepting, dist })
    }

    /// A DFA given as a table (state 0 starts; `table[s * classes + c]`, every target a
    /// valid state) over the byte classes `class_of`.
    pub fn from_table(table: Vec<u32>, class_of: [u8; 256], accepting: Vec<bool>) -> Product {
        let classes = table.len() / accepting.len();
        let dist = bytes_to_accept(accepting.len(), |s| &table[s * classes..][..classes], DEAD, |s| accepting[s]);
        Product { table, classes, class_of, accepting, dist }
    }

    pub fn state_count(&self) -> usize {
        self.accepting.len()
    }
}

fn empty() -> FormatError {
    FormatError::EmptyLanguage { message: "no output satisfies all the constraints together".into() }
}

/// Whether a component in sub-state `s` still lets the product accept some day.
fn alive(c: &Component, s: Sub) -> bool {
    match s {
        // A negated component may stay non-accepting forever, which satisfies it.
        _ if c.negated => true,
        Some(s) => c.automaton.min_bytes_to_accept(s) != u32::MAX,
        None => false,
    }
}

/// The coarsest byte partition that refines every component's byte classes, as a class per
/// byte and one representative byte per class.
fn joint_classes(components: &[Component]) -> ([u8; 256], Vec<u8>) {
    let per: Vec<[u8; 256]> = components.iter().map(|c| c.automaton.byte_classes()).collect();
    let mut ids: HashMap<Vec<u8>, u8> = HashMap::new();
    let mut reps = Vec::new();
    let mut class_of = [0u8; 256];
    for b in 0..=255u8 {
        let key: Vec<u8> = per.iter().map(|classes| classes[b as usize]).collect();
        let next = ids.len() as u8;
        let id = *ids.entry(key).or_insert_with(|| {
            reps.push(b);
            next
        });
        class_of[b as usize] = id;
    }
    (class_of, reps)
}

impl ByteAutomaton for Product {
    fn start(&self) -> u32 {
        0
    }
    fn next(&self, state: u32, byte: u8) -> Option<u32> {
        let t = self.table[state as usize * self.classes + self.class_of[byte as usize] as usize];
        (t != DEAD && self.dist[t as usize] != u32::MAX).then_some(t)
    }
    fn is_accepting(&self, state: u32) -> bool {
        self.accepting[state as usize]
    }
    fn min_bytes_to_accept(&self, state: u32) -> u32 {
        self.dist[state as usize]
    }
    fn byte_classes(&self) -> [u8; 256] {
        self.class_of
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Automaton;

    fn dfa(p: &str) -> Arc<dyn ByteAutomaton> {
        Arc::new(Automaton::from_regex(p, &Limits::default()).unwrap())
    }

    fn product(parts: &[(&str, bool)]) -> Result<Product, FormatError> {
        let components: Vec<Component> =
            parts.iter().map(|&(p, negated)| Component { automaton: dfa(p), negated }).collect();
        Product::new(&components, &Limits::default())
    }

    #[test]
    fn intersection_and_complement() {
        // Lowercase words, at least two `a`s, and not containing "bad".
        let p = product(&[("[a-z ]+", false), ("(?:[^a]*a){2}.*", false), (".*bad.*", true)]).unwrap();
        assert!(p.accepts(b"a banana"));
        assert!(!p.accepts(b"a bad banana"));
        assert!(!p.accepts(b"one a"));
        assert!(!p.accepts(b"A banana"));
        // Fewest bytes: "aa".
        assert_eq!(p.min_bytes_to_accept(p.start()), 2);
        // After "ba" the shortest completion is one more `a`.
        let s = p.next(p.next(p.start(), b'b').unwrap(), b'a').unwrap();
        assert_eq!(p.min_bytes_to_accept(s), 1);
        // "ba" then "d" is jointly dead although each positive component lives.
        assert_eq!(p.next(s, b'd'), None);
    }

    #[test]
    fn contradiction_is_empty() {
        let e = product(&[("[a-z]+", false), ("[A-Z]+", false)]).err().unwrap();
        assert!(matches!(e, FormatError::EmptyLanguage { .. }), "{e}");
        let e = product(&[("x.*", false), ("x.*", true)]).err().unwrap();
        assert!(matches!(e, FormatError::EmptyLanguage { .. }), "{e}");
    }

    #[test]
    fn size_is_bounded() {
        let limits = Limits { dfa_size_bytes: 4096, ..Limits::default() };
        let components = vec![
            Component { automaton: dfa("(?:[^a]*a){40}.*"), negated: false },
            Component { automaton: dfa("(?:[^b]*b){40}.*"), negated: false },
        ];
        let e = Product::new(&components, &limits).err().unwrap();
        assert!(matches!(e, FormatError::TooComplex { .. }), "{e}");
    }
}
