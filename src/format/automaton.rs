//! A byte-level, anchored, full-match DFA with stable state ids and precomputed distances to
//! acceptance.

use std::collections::HashMap;

use regex_automata::{
    dfa::{dense, Automaton as _, StartKind},
    nfa::thompson,
    util::{primitives::StateID as RaStateId, start},
    Anchored, MatchKind,
};

use super::{FormatError, Limits};

/// How deep groups may nest in a regex we compile (ours or lowered from a format): the NFA
/// compiler recurses once per level, so this bounds its native stack.
pub const MAX_REGEX_NESTING: u32 = 1000;

/// A DFA state id. Stable for the lifetime of the [`Automaton`] (the DFA is built eagerly),
/// so it can key mask caches.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StateId(pub u32);

/// An anchored byte-level DFA: an output is valid iff stepping all its bytes from
/// [`Automaton::start`] never hits `None` and ends in a state where
/// [`Automaton::is_accepting`] holds (the whole output must match).
#[derive(Clone)]
pub struct Automaton {
    dfa: dense::DFA<Vec<u32>>,
    start: StateId,
    /// Indexed by `state_id >> stride2`: fewest bytes to acceptance, `u32::MAX` if none.
    dist: Vec<u32>,
    stride2: u32,
    states: usize,
}

impl std::fmt::Debug for Automaton {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Automaton")
            .field("states", &self.states)
            .field("memory_bytes", &self.dfa.memory_usage())
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
                format!("max_regex_len = {}", limits.max_regex_len),
            ));
        }
        // Parsed once, here, for precise error positions; the NFA is built from the result.
        let hir = regex_syntax::ParserBuilder::new().nest_limit(MAX_REGEX_NESTING).utf8(!call_bytes).build().parse(pattern).map_err(|e| syntax_error(&e))?;
        let cfg = dense::Config::new()
            .start_kind(StartKind::Anchored)
            .match_kind(MatchKind::All)
            .minimize(minimize)
            .accelerate(false)
            .dfa_size_limit(Some(limits.dfa_size_bytes))
            .determinize_size_limit(Some(limits.determinize_size_bytes));
        let too_large = |e: &dyn std::fmt::Display| {
            FormatError::too_complex(
                format!("the automaton is too large ({e})"),
                format!("dfa_size_bytes = {}, determinize_size_bytes = {}", limits.dfa_size_bytes, limits.determinize_size_bytes),
            )
        };
        let nfa = thompson::Compiler::new()
            .configure(thompson::Config::new().nfa_size_limit(Some(limits.determinize_size_bytes)).shrink(false))
            .build_from_hir(&hir)
            .map_err(|e| match e.size_limit() {
                Some(_) => too_large(&e),
                None => FormatError::InvalidRegex { message: e.to_string(), position: None },
            })?;
        let dfa = dense::Builder::new()
            .configure(cfg)
            .build_from_nfa(&nfa)
            .map_err(|e| {
                if e.is_size_limit_exceeded() || e.to_string().contains("exceeded") || format!("{e:?}").contains("ExceededSizeLimit") {
                    too_large(&e)
                } else {
                    FormatError::InvalidRegex { message: e.to_string(), position: None }
                }
            })?;
        Self::from_dfa(dfa)
    }

    fn from_dfa(dfa: dense::DFA<Vec<u32>>) -> Result<Automaton, FormatError> {
        let start = dfa
            .start_state(&start::Config::new().anchored(Anchored::Yes))
            .map_err(|e| FormatError::InvalidRegex { message: e.to_string(), position: None })?;
        let stride2 = dfa.stride2() as u32;
        // Forward exploration over byte-class representatives.
        let reps: Vec<u8> = dfa
            .byte_classes()
            .representatives(..)
            .filter_map(|u| u.as_u8())
            .collect();
        let idx = |s: RaStateId| (s.as_u32() >> stride2) as usize;
        let mut seen: HashMap<u32, ()> = HashMap::new();
        let mut order = vec![start];
        seen.insert(start.as_u32(), ());
        let mut rev: HashMap<usize, Vec<usize>> = HashMap::new();
        let mut i = 0;
        let mut max_idx = idx(start);
        let mut accepting = Vec::new();
        while i < order.len() {
            let s = order[i];
            i += 1;
            if dfa.is_match_state(dfa.next_eoi_state(s)) {
                accepting.push(idx(s));
            }
            for &b in &reps {
                let t = dfa.next_state(s, b);
                if dfa.is_dead_state(t) || dfa.is_quit_state(t) {
                    continue;
                }
                rev.entry(idx(t)).or_default().push(idx(s));
                if seen.insert(t.as_u32(), ()).is_none() {
                    max_idx = max_idx.max(idx(t));
                    order.push(t);
                }
            }
        }
        let mut dist = vec![u32::MAX; max_idx + 1];
        let mut queue = std::collections::VecDeque::new();
        for a in accepting {
            dist[a] = 0;
            queue.push_back(a);
        }
        while let Some(s) = queue.pop_front() {
            let d = dist[s];
            if let Some(preds) = rev.get(&s) {
                for &p in preds {
                    if dist[p] == u32::MAX {
                        dist[p] = d + 1;
                        queue.push_back(p);
                    }
                }
            }
        }
        if dist[idx(start)] == u32::MAX {
            return Err(FormatError::EmptyLanguage {
                message: "no output can satisfy the constraint".into(),
            });
        }
        Ok(Automaton { start: StateId(start.as_u32()), dist, stride2, states: order.len(), dfa })
    }

    /// The start state.
    pub fn start(&self) -> StateId {
        self.start
    }

    /// Steps on one byte. `None` when the byte leads to a dead state or to a state from which
    /// acceptance is unreachable.
    #[inline]
    pub fn next(&self, s: StateId, byte: u8) -> Option<StateId> {
        let t = self.dfa.next_state(RaStateId::new_unchecked(s.0 as usize), byte);
        let i = (t.as_u32() >> self.stride2) as usize;
        match self.dist.get(i) {
            Some(&d) if d != u32::MAX => Some(StateId(t.as_u32())),
            _ => None,
        }
    }

    /// Whether the bytes consumed so far form a complete, valid output.
    #[inline]
    pub fn is_accepting(&self, s: StateId) -> bool {
        let s = RaStateId::new_unchecked(s.0 as usize);
        self.dfa.is_match_state(self.dfa.next_eoi_state(s))
    }

    /// Fewest bytes that must still be emitted from `s` to reach acceptance
    /// (`u32::MAX` if impossible).
    #[inline]
    pub fn min_bytes_to_accept(&self, s: StateId) -> u32 {
        self.dist.get((s.0 >> self.stride2) as usize).copied().unwrap_or(u32::MAX)
    }

    /// Number of live (reachable) states.
    pub fn state_count(&self) -> usize {
        self.states
    }

    /// Heap memory of the DFA transition table.
    pub fn memory_usage(&self) -> usize {
        self.dfa.memory_usage() + self.dist.len() * 4
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
        let mut s = self.start;
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
        let start = (self.start, Some(other.start));
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

pub(crate) fn syntax_error(e: &regex_syntax::Error) -> FormatError {
    match e {
        // Nesting is a resource limit (and schemas with hundreds of optional properties hit it
        // in the regex they lower to), not a syntax mistake.
        regex_syntax::Error::Parse(p) if matches!(p.kind(), regex_syntax::ast::ErrorKind::NestLimitExceeded(_)) => {
            FormatError::too_complex("the expression is nested too deeply", "regex nesting limit = 1000")
        }
        regex_syntax::Error::Parse(p) => FormatError::InvalidRegex {
            message: p.kind().to_string(),
            position: Some(p.span().start.offset),
        },
        regex_syntax::Error::Translate(t) => FormatError::InvalidRegex {
            message: t.kind().to_string(),
            position: Some(t.span().start.offset),
        },
        other => FormatError::InvalidRegex { message: other.to_string(), position: None },
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
        let classes = self.dfa.byte_classes();
        std::array::from_fn(|b| classes.get(b as u8))
    }
}
