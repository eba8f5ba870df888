//! What a format compiles to: a plain DFA, or a recursive network of rule DFAs when the
//! format recurses (`$ref` cycles, recursive grammar rules).

use super::{Automaton, Recursive};
use crate::mask::ByteAutomaton;

#[derive(Debug)]
pub enum Compiled {
    Dfa(Automaton),
    Recursive(Recursive),
}

impl Compiled {
    /// States built so far (all of them for a DFA; those visited so far for a network).
    pub fn state_count(&self) -> usize {
        match self {
            Compiled::Dfa(a) => a.state_count(),
            Compiled::Recursive(r) => r.state_count(),
        }
    }

    /// Whether the whole byte string is a complete, valid output.
    pub fn accepts(&self, bytes: &[u8]) -> bool {
        ByteAutomaton::accepts(self, bytes)
    }

    /// Heap memory of the transition tables built so far.
    pub fn memory_usage(&self) -> usize {
        match self {
            Compiled::Dfa(a) => a.memory_usage(),
            Compiled::Recursive(r) => r.memory_usage(),
        }
    }
}

impl ByteAutomaton for Compiled {
    fn start(&self) -> u32 {
        match self {
            Compiled::Dfa(a) => ByteAutomaton::start(a),
            Compiled::Recursive(r) => r.start(),
        }
    }
    #[inline]
    fn next(&self, state: u32, byte: u8) -> Option<u32> {
        match self {
            Compiled::Dfa(a) => ByteAutomaton::next(a, state, byte),
            Compiled::Recursive(r) => r.next(state, byte),
        }
    }
    fn next_many(&self, state: u32, bytes: &[u8], out: &mut Vec<Option<u32>>) {
        match self {
            Compiled::Dfa(a) => ByteAutomaton::next_many(a, state, bytes, out),
            Compiled::Recursive(r) => r.next_many(state, bytes, out),
        }
    }
    fn is_accepting(&self, state: u32) -> bool {
        match self {
            Compiled::Dfa(a) => ByteAutomaton::is_accepting(a, state),
            Compiled::Recursive(r) => r.is_accepting(state),
        }
    }
    fn min_bytes_to_accept(&self, state: u32) -> u32 {
        match self {
            Compiled::Dfa(a) => ByteAutomaton::min_bytes_to_accept(a, state),
            Compiled::Recursive(r) => r.min_bytes_to_accept(state),
        }
    }
    fn byte_classes(&self) -> [u8; 256] {
        match self {
            Compiled::Dfa(a) => ByteAutomaton::byte_classes(a),
            Compiled::Recursive(r) => r.byte_classes(),
        }
    }
    fn saturated(&self) -> bool {
        matches!(self, Compiled::Recursive(r) if r.saturated())
    }
    fn body_char_step(&self, state: u32) -> Option<u32> {
        match self {
            Compiled::Dfa(_) => None,
            Compiled::Recursive(r) => r.body_char_step(state),
        }
    }
    fn counting_step(&self, state: u32) -> Option<crate::mask::CountingStep> {
        match self {
            Compiled::Dfa(_) => None,
            Compiled::Recursive(r) => r.counting_step(state),
        }
    }
    fn body_closure_bound(&self, state: u32, cap: usize) -> Option<u32> {
        match self {
            Compiled::Dfa(_) => None,
            Compiled::Recursive(r) => r.body_closure_bound(state, cap),
        }
    }
}
