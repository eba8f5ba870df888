//! A byte-level, anchored, full-match DFA with stable state ids and precomputed distances to
//! acceptance.

use std::collections::HashMap;

use regex_automata::{
    dfa::{dense, Automaton as _, StartKind},
    nfa::thompson,
    util::{primitives::StateID as RaStateId, start},
    Anchored, MatchKind,
};

use super::accept_distance::bytes_to_accept;
use super::determinize::{determinize, Table, TooLarge, DEAD};
use super::{json_char, FormatError, Limit, Limits};

/// How deep groups may nest in a regex we compile (ours or lowered from a format): the NFA
/// compiler recurses once per level, so this bounds its native stack.
pub const MAX_REGEX_NESTING: u32 = 1000;

/// A DFA state id: a row of the [`Automaton`]'s table, stable for its lifetime (the DFA is
/// built eagerly), so it can key mask caches.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StateId(pub u32);

/// An anchored byte-level DFA: an output is valid iff stepping all its bytes from
/// [`Automaton::start`] never hits `None` and ends in a state where
/// [`Automaton::is_accepting`] holds (the whole output must match).
#[derive(Clone)]
pub struct Automaton {
    /// Transitions into states that cannot reach acceptance are rewritten to `DEAD`, so a step
    /// is one load.
    table: Table,
    /// Fewest bytes to acceptance per state, `u32::MAX` if none.
    dist: Vec<u32>,
}

impl std::fmt::Debug for Automaton {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Automaton")
            .field("states", &self.state_count())
            .field("memory_bytes", &self.memory_usage())
            .finish()
    }
}

impl Automaton {
    /// Compiles `pattern` (Rust `regex` syntax, Unicode on, so only valid UTF-8 can match)
    /// into a DFA that matches whole outputs. Size is bounded by `limits`.
    pub fn from_regex(pattern: &str, limits: &Limits) -> Result<Automaton, FormatError> {
        Self::build(pattern, limits, false, false)
    }

    /// Like [`Automaton::from_regex`], then minimised: for small automata that go into a
    /// [`crate::format::product::Product`], whose size is the product of theirs.
    pub fn from_regex_minimal(pattern: &str, limits: &Limits) -> Result<Automaton, FormatError> {
        Self::build(pattern, limits, true, false)
    }

    /// A rule of a [`crate::format::recursive::Recursive`] network: like
    /// [`Automaton::from_regex`], but the pattern may hold call bytes (never UTF-8).
    pub(crate) fn from_rule_regex(pattern: &str, limits: &Limits) -> Result<Automaton, FormatError> {
        Self::build(pattern, limits, false, true)
    }

    fn build(pattern: &str, limits: &Limits, minimize: bool, call_bytes: bool) -> Result<Automaton, FormatError> {
        if pattern.len() > limits.max_regex_len {
            return Err(FormatError::too_complex(
                format!("regex is {} bytes long", pattern.len()),
                Limit::MaxRegexLen(limits.max_regex_len),
            ));
        }
        // Parsed once, here, for precise error positions; the NFA is built from the result.
        let parse = |p: &str| {
            regex_syntax::ParserBuilder::new().nest_limit(MAX_REGEX_NESTING).utf8(!call_bytes).build().parse(p)
        };
        let hir = match json_char::mark(pattern).map(|marked| parse(&marked)) {
            Some(Ok(hir)) => json_char::unmark(hir),
            // errors are reported at their place in `pattern`
            _ => parse(pattern).map_err(|e| syntax_error(&e))?,
        };
        let too_large = |e: &dyn std::fmt::Display| {
            FormatError::too_complex(
                format!("the automaton is too large ({e})"),
                Limit::AutomatonSize {
                    dfa_size_bytes: limits.dfa_size_bytes,
                    determinize_size_bytes: limits.determinize_size_bytes,
                },
            )
        };
        thread_local! {
            // Reused: a fresh compiler allocates (and zeroes) a 10,000-entry UTF-8 cache, a
            // sixth of a small schema's compile.
            static NFA_COMPILER: std::cell::RefCell<thompson::Compiler> = std::cell::RefCell::new(thompson::Compiler::new());
        }
        let config = thompson::Config::new()
            .nfa_size_limit(Some(limits.determinize_size_bytes))
            .shrink(false)
            .which_captures(thompson::WhichCaptures::None);
        let nfa = NFA_COMPILER.with_borrow_mut(|c| c.configure(config).build_from_hir(&hir)).map_err(|e| {
            match e.size_limit() {
                Some(_) => too_large(&e),
                None => FormatError::InvalidRegex { message: e.to_string(), position: None },
            }
        })?;
        if !minimize {
            match determinize(&nfa, limits.dfa_size_bytes, limits.determinize_size_bytes) {
                Ok(Some(table)) => return Self::from_table(table),
                Ok(None) => {} // look-around: regex-automata's builder models it
                Err(TooLarge(e)) => return Err(too_large(&e)),
            }
        }
        let cfg = dense::Config::new()
            .start_kind(StartKind::Anchored)
            .match_kind(MatchKind::All)
            .minimize(minimize)
            .accelerate(false)
            .dfa_size_limit(Some(limits.dfa_size_bytes))
            .determinize_size_limit(Some(limits.determinize_size_bytes));
        let dfa = dense::Builder::new().configure(cfg).build_from_nfa(&nfa).map_err(|e| {
            if e.is_size_limit_exceeded() {
                too_large(&e)
            } else {
                FormatError::InvalidRegex { message: e.to_string(), position: None }
            }
        })?;
        Self::from_table(table_of_dense(&dfa)?)
    }

    /// Computes distances to acceptance and cuts every transition into a state without one.
    fn from_table(mut table: Table) -> Result<Automaton, FormatError> {
        let n = table.len();
        let classes = table.class_count();
        // State 0 is the dead state: its row leads nowhere.
        let dist = bytes_to_accept(
            n,
            |s| &table.trans[s << table.stride2..][..classes],
            DEAD,
            |s| s != 0 && table.accepting[s],
        );
        if dist[table.start as usize] == u32::MAX {
            return Err(FormatError::EmptyLanguage { message: "no output can satisfy the constraint".into() });
        }
        for t in &mut table.trans {
            if dist[*t as usize] == u32::MAX {
                *t = DEAD;
            }
        }
        Ok(Automaton { table, dist })
    }

    /// The start state.
    pub fn start(&self) -> StateId {
        StateId(self.table.start)
    }

    /// Steps on one byte. `None` when the byte leads to a dead state or to a state from which
    /// acceptance is unreachable.
    #[inline]
    pub fn next(&self, s: StateId, byte: u8) -> Option<StateId> {
        let t = self.table.trans[((s.0 as usize) << self.table.stride2) | self.table.classes[byte as usize] as usize];
        (t != DEAD).then_some(StateId(t))
    }

    /// Whether the bytes consumed so far form a complete, valid output.
    #[inline]
    pub fn is_accepting(&self, s: StateId) -> bool {
        self.table.accepting[s.0 as usize]
    }

    /// Fewest bytes that must still be emitted from `s` to reach acceptance
    /// (`u32::MAX` if impossible).
    #[inline]
    pub fn min_bytes_to_accept(&self, s: StateId) -> u32 {
        self.dist.get(s.0 as usize).copied().unwrap_or(u32::MAX)
    }

    /// Number of states reached from the start (the dead state not counted).
    pub fn state_count(&self) -> usize {
        self.table.len() - 1
    }

    /// Heap memory of the transition table and its per-state data.
    pub fn memory_usage(&self) -> usize {
        self.table.bytes() + self.dist.len() * 4
    }

    /// The longest byte string that is the only possible continuation from `s`. Stops at an
    /// accepting state or at a state with two or more live bytes.
    pub fn forced_bytes(&self, s: StateId) -> Vec<u8> {
        let mut out = Vec::new();
        let mut cur = s;
        loop {
            if self.is_accepting(cur) || self.min_bytes_to_accept(cur) == u32::MAX {
                return out;
            }
            let mut only: Option<(u8, StateId)> = None;
            for b in 0..=255u8 {
                if let Some(t) = self.next(cur, b) {
                    if only.is_some() {
                        return out;
                    }
                    only = Some((b, t));
                }
            }
            match only {
                Some((b, t)) => {
                    out.push(b);
                    cur = t;
                }
                None => return out,
            }
        }
    }

    /// Convenience: whether the whole byte string is accepted.
    pub fn accepts(&self, bytes: &[u8]) -> bool {
        let mut s = self.start();
        for &b in bytes {
            match self.next(s, b) {
                Some(t) => s = t,
                None => return false,
            }
        }
        self.is_accepting(s)
    }

    /// Whether every output this automaton accepts is accepted by `other` too: a search of
    /// the product for a string that reaches acceptance here and not there. `None` when more
    /// than `max_pairs` state pairs would have to be visited.
    pub fn language_within(&self, other: &Automaton, max_pairs: usize) -> Option<bool> {
        let start = (self.start(), Some(other.start()));
        let mut seen = std::collections::HashSet::from([start]);
        let mut todo = vec![start];
        while let Some((a, b)) = todo.pop() {
            if self.is_accepting(a) && !b.is_some_and(|b| other.is_accepting(b)) {
                return Some(false);
            }
            let Some(b) = b else {
                // `other` is dead: any way on to acceptance here is a counterexample.
                if self.min_bytes_to_accept(a) != u32::MAX {
                    return Some(false);
                }
                continue;
            };
            for byte in 0..=255u8 {
                let Some(a2) = self.next(a, byte) else { continue };
                let pair = (a2, other.next(b, byte));
                if seen.insert(pair) {
                    if seen.len() > max_pairs {
                        return None;
                    }
                    todo.push(pair);
                }
            }
        }
        Some(true)
    }
}

/// The states of regex-automata's dense DFA reachable from its anchored start, as a [`Table`]
/// (for minimised automata and look-around, which [`determinize`] leaves to it).
fn table_of_dense(dfa: &dense::DFA<Vec<u32>>) -> Result<Table, FormatError> {
    let start = dfa
        .start_state(&start::Config::new().anchored(Anchored::Yes))
        .map_err(|e| FormatError::InvalidRegex { message: e.to_string(), position: None })?;
    let byte_classes = dfa.byte_classes();
    let mut table = Table::new(std::array::from_fn(|b| byte_classes.get(b as u8)));
    let reps: Vec<u8> = byte_classes.representatives(..).filter_map(|u| u.as_u8()).collect();
    let mut ids: HashMap<RaStateId, u32> = HashMap::new();
    let mut order = Vec::new();
    let mut id_of = |s: RaStateId, table: &mut Table, order: &mut Vec<RaStateId>| {
        *ids.entry(s).or_insert_with(|| {
            order.push(s);
            table.add_state(dfa.is_match_state(dfa.next_eoi_state(s)))
        })
    };
    table.start = id_of(start, &mut table, &mut order);
    let mut i = 0;
    while i < order.len() {
        let s = order[i];
        i += 1; // `order[k]` is row k + 1 (row 0 is the dead state)
        for &b in &reps {
            let t = dfa.next_state(s, b);
            if dfa.is_dead_state(t) || dfa.is_quit_state(t) {
                continue;
            }
            let to = id_of(t, &mut table, &mut order);
            table.trans[(i << table.stride2) | table.classes[b as usize] as usize] = to;
        }
    }
    Ok(table)
}

pub(crate) fn syntax_error(e: &regex_syntax::Error) -> FormatError {
    match e {
        // Nesting is a resource limit (and schemas with hundreds of optional properties hit it
        // in the regex they lower to), not a syntax mistake.
        regex_syntax::Error::Parse(p) if matches!(p.kind(), regex_syntax::ast::ErrorKind::NestLimitExceeded(_)) => {
            FormatError::too_complex("the expression is nested too deeply", Limit::RegexNesting(MAX_REGEX_NESTING))
        }
        regex_syntax::Error::Parse(p) => {
            FormatError::InvalidRegex { message: p.kind().to_string(), position: Some(p.span().start.offset) }
        }
        regex_syntax::Error::Translate(t) => {
            FormatError::InvalidRegex { message: t.kind().to_string(), position: Some(t.span().start.offset) }
        }
        other => FormatError::InvalidRegex { message: other.to_string(), position: None },
    }
}

/// The seam the mask module walks: state ids are the DFA's own, stable for its lifetime.
impl crate::mask::ByteAutomaton for Automaton {
    fn start(&self) -> u32 {
        Automaton::start(self).0
    }
    fn next(&self, state: u32, byte: u8) -> Option<u32> {
        Automaton::next(self, StateId(state), byte).map(|s| s.0)
    }
    fn is_accepting(&self, state: u32) -> bool {
        Automaton::is_accepting(self, StateId(state))
    }
    fn min_bytes_to_accept(&self, state: u32) -> u32 {
        Automaton::min_bytes_to_accept(self, StateId(state))
    }
    fn byte_classes(&self) -> [u8; 256] {
        self.table.classes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(p: &str) -> Automaton {
        Automaton::from_regex(p, &Limits::default()).unwrap()
    }

    #[test]
    fn full_match() {
        let m = a("a|ab");
        assert!(m.accepts(b"a"));
        assert!(m.accepts(b"ab"));
        assert!(!m.accepts(b"abc"));
        assert!(!m.accepts(b""));
        let m = a("[0-9]+");
        assert!(m.accepts(b"0123"));
        assert!(!m.accepts(b"12a"));
    }

    #[test]
    fn distances_and_forced() {
        let m = a(r#"\{"name":"(x|yy)"\}"#);
        let s = m.start();
        assert_eq!(m.min_bytes_to_accept(s), 12);
        assert_eq!(m.forced_bytes(s), br#"{"name":""#.to_vec());
        let mut st = s;
        for &b in br#"{"name":"y"# {
            st = m.next(st, b).unwrap();
        }
        assert_eq!(m.forced_bytes(st), br#"y"}"#.to_vec());
        assert_eq!(m.min_bytes_to_accept(st), 3);
        assert!(m.next(st, b'x').is_none());
        let m = a("ab|ab(c)*");
        let st = m.next(m.next(m.start(), b'a').unwrap(), b'b').unwrap();
        assert!(m.is_accepting(st));
        assert_eq!(m.min_bytes_to_accept(st), 0);
        assert!(m.forced_bytes(st).is_empty());
    }

    #[test]
    fn unicode_is_bytes() {
        let m = a("é+");
        assert!(m.accepts("éé".as_bytes()));
        let s = m.next(m.start(), 0xC3).unwrap();
        assert!(!m.is_accepting(s));
        assert_eq!(m.min_bytes_to_accept(s), 1);
    }

    #[test]
    fn too_complex() {
        let l = Limits { dfa_size_bytes: 10_000, determinize_size_bytes: 10_000, ..Limits::default() };
        let e = Automaton::from_regex("(a|b)*a(a|b){20}", &l).unwrap_err();
        assert!(matches!(e, FormatError::TooComplex { .. }), "{e}");
    }

    #[test]
    fn empty_language() {
        assert!(matches!(
            Automaton::from_regex("[^\\x00-\\x{10FFFF}]", &Limits::default()),
            Err(FormatError::EmptyLanguage { .. })
        ));
    }

    /// Our subset construction against regex-automata's (the minimised build goes through it):
    /// the same language and the same distances.
    #[test]
    fn subset_construction_agrees_with_regex_automata() {
        let patterns = [
            r#"\{"a":(?:-?(?:0|[1-9][0-9]{0,15})|"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt])*")(?:,"b":(?:true|false|null))?\}"#,
            r"[a-z]+@[a-z]+\.(?:com|org)|[0-9]{3}-[0-9]{4}",
            r"(?:a|b)*a(?:a|b){4}",
            r"\p{Greek}{1,3}[^\x00-\x7f]é?",
            r"(?:x|xy|xyz)(?:z|yz|)",
            r"[\x00-\x{10FFFF}]{0,2}",
            r"(a)(b)?(?P<c>c+)",
            r"^ab$|c(?-u:\b)",
        ];
        for p in patterns {
            let ours = a(p);
            let theirs = Automaton::from_regex_minimal(p, &Limits::default()).unwrap();
            assert_eq!(ours.language_within(&theirs, 1 << 16), Some(true), "{p}");
            assert_eq!(theirs.language_within(&ours, 1 << 16), Some(true), "{p}");
            assert_eq!(ours.min_bytes_to_accept(ours.start()), theirs.min_bytes_to_accept(theirs.start()), "{p}");
        }
    }
}
