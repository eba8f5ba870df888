//! Subset construction: a Thompson NFA (regex-automata's) into the dense transition [`Table`] an
//! [`super::Automaton`] holds.
//!
//! Ours rather than regex-automata's dense builder because a format needs less of it — one
//! anchored start, every match, no look-around — and most of a compile is this step. Sets of NFA
//! states are interned in an Fx-hashed map, a state's transitions are gathered in one pass over
//! its NFA states' byte ranges (not one pass per byte class), and neighbouring classes with the
//! same targets share one closure. Patterns with look-around go to regex-automata instead.

use std::rc::Rc;

use regex_automata::nfa::thompson::{State, NFA};
use regex_automata::util::primitives::StateID as NfaId;
use rustc_hash::FxHashMap;

/// The dead state: every row's missing transitions point here, and its own row loops.
pub(super) const DEAD: u32 = 0;

/// A DFA as a dense table: state `s`'s transition on byte class `c` is
/// `trans[(s << stride2) | c]`. State 0 is [`DEAD`].
#[derive(Clone)]
pub(super) struct Table {
    pub trans: Vec<u32>,
    pub stride2: u32,
    pub classes: [u8; 256],
    pub accepting: Vec<bool>,
    pub start: u32,
}

impl Table {
    /// An empty table over `classes` (increasing, from 0) with only the dead state.
    pub fn new(classes: [u8; 256]) -> Table {
        let count = classes[255] as usize + 1;
        let stride2 = count.next_power_of_two().trailing_zeros();
        Table { trans: vec![DEAD; 1 << stride2], stride2, classes, accepting: vec![false], start: DEAD }
    }

    pub fn class_count(&self) -> usize {
        self.classes[255] as usize + 1
    }

    /// Appends a state whose transitions all lead to [`DEAD`]; returns its id.
    pub fn add_state(&mut self, accepting: bool) -> u32 {
        let id = self.accepting.len() as u32;
        self.trans.resize(self.trans.len() + (1 << self.stride2), DEAD);
        self.accepting.push(accepting);
        id
    }

    pub fn len(&self) -> usize {
        self.accepting.len()
    }

    pub fn bytes(&self) -> usize {
        self.trans.len() * 4 + self.accepting.len()
    }
}

/// A construction that outgrew a size limit: the table's or the NFA state sets'.
pub(super) struct TooLarge(pub String);

/// Determinises `nfa` from its anchored start. `None` when the NFA has look-around, which this
/// construction does not model.
pub(super) fn determinize(nfa: &NFA, max_table_bytes: usize, max_set_bytes: usize) -> Result<Option<Table>, TooLarge> {
    if !nfa.look_set_any().is_empty() {
        return Ok(None);
    }
    let byte_classes = nfa.byte_classes();
    let mut table = Table::new(std::array::from_fn(|b| byte_classes.get(b as u8)));
    let class_count = table.class_count();
    // The first byte of each class stands for it in dense NFA states.
    let mut class_start = vec![0u8; class_count];
    for b in (0..=255u8).rev() {
        class_start[table.classes[b as usize] as usize] = b;
    }

    let mut closure = Closure { stack: Vec::new(), stamp: vec![0; nfa.states().len()], generation: 0 };
    let mut ids: FxHashMap<Rc<[NfaId]>, u32> = FxHashMap::default();
    let mut sets: Vec<Rc<[NfaId]>> = vec![Rc::from(&[][..])];
    let mut set_bytes = 0usize;
    let mut intern = |set: &[NfaId], table: &mut Table, sets: &mut Vec<Rc<[NfaId]>>| -> Result<u32, TooLarge> {
        if set.is_empty() {
            return Ok(DEAD);
        }
        if let Some(&id) = ids.get(set) {
            return Ok(id);
        }
        let accepting = set.iter().any(|&n| matches!(nfa.state(n), State::Match { .. }));
        let id = table.add_state(accepting);
        set_bytes += set.len() * 4 + 64;
        if table.bytes() > max_table_bytes || set_bytes > max_set_bytes {
            return Err(TooLarge(format!(
                "{} states, {} table bytes, {} set bytes",
                table.len(),
                table.bytes(),
                set_bytes
            )));
        }
        let set: Rc<[NfaId]> = Rc::from(set);
        ids.insert(set.clone(), id);
        sets.push(set);
        Ok(id)
    };

    let mut set = Vec::new();
    closure.of(nfa, &[nfa.start_anchored()], &mut set);
    table.start = intern(&set, &mut table, &mut sets)?;
    let mut targets: Vec<Vec<NfaId>> = vec![Vec::new(); class_count];
    let mut next = 1;
    while next < sets.len() {
        let from = sets[next].clone();
        for t in &mut targets {
            t.clear();
        }
        for &n in from.iter() {
            match nfa.state(n) {
                State::ByteRange { trans } => {
                    for c in table.classes[trans.start as usize]..=table.classes[trans.end as usize] {
                        targets[c as usize].push(trans.next);
                    }
                }
                State::Sparse(sparse) => {
                    for trans in sparse.transitions.iter() {
                        for c in table.classes[trans.start as usize]..=table.classes[trans.end as usize] {
                            targets[c as usize].push(trans.next);
                        }
                    }
                }
                State::Dense(dense) => {
                    for (c, &b) in class_start.iter().enumerate() {
                        let to = dense.transitions[b as usize];
                        if to != NfaId::ZERO {
                            targets[c].push(to);
                        }
                    }
                }
                _ => {}
            }
        }
        let row = next << table.stride2;
        for c in 0..class_count {
            let id = if c > 0 && targets[c] == targets[c - 1] {
                table.trans[row + c - 1]
            } else if targets[c].is_empty() {
                DEAD
            } else {
                closure.of(nfa, &targets[c], &mut set);
                intern(&set, &mut table, &mut sets)?
            };
            table.trans[row + c] = id;
        }
        next += 1;
    }
    Ok(Some(table))
}

/// Epsilon closures, with a generation stamp per NFA state instead of a cleared set.
struct Closure {
    stack: Vec<NfaId>,
    stamp: Vec<u32>,
    generation: u32,
}

impl Closure {
    /// The sorted NFA states that consume a byte or match, reachable from `seeds` by epsilon
    /// moves alone, into `out`.
    fn of(&mut self, nfa: &NFA, seeds: &[NfaId], out: &mut Vec<NfaId>) {
        self.generation += 1;
        out.clear();
        self.stack.extend(seeds.iter().rev());
        while let Some(n) = self.stack.pop() {
            let stamp = &mut self.stamp[n.as_usize()];
            if *stamp == self.generation {
                continue;
            }
            *stamp = self.generation;
            match nfa.state(n) {
                State::ByteRange { .. } | State::Sparse(_) | State::Dense(_) | State::Match { .. } => out.push(n),
                State::Union { alternates } => self.stack.extend(alternates.iter().rev()),
                State::BinaryUnion { alt1, alt2 } => self.stack.extend([*alt2, *alt1]),
                State::Capture { next, .. } | State::Look { next, .. } => self.stack.push(*next),
                State::Fail => {}
            }
        }
        out.sort_unstable();
    }
}
