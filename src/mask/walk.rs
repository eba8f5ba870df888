//! A byte automaton flattened on demand into a table that a trie walk steps with one load.
//!
//! Rows are 256 wide and a state is named by its row offset (`dense index * 256`), so a step
//! is `table[offset + byte]`. A row is filled the first time the walk steps out of its state,
//! one `ByteAutomaton::next` per byte class; dead targets and targets that cannot reach
//! acceptance (both `None` from `next`) are the one sentinel [`DEAD`].

use super::ByteAutomaton;
use std::collections::HashMap;

/// Target of a byte that kills the walk.
pub(crate) const DEAD: u32 = u32::MAX;
/// Entry of a row not filled yet.
const UNRESOLVED: u32 = u32::MAX - 1;
/// States a table kept across walks may hold before it starts over (1 KiB each).
pub(crate) const KEEP_ROWS: usize = 4096;
/// Rows this table may hold: offsets must stay below the sentinels.
const MAX_ROWS: usize = (UNRESOLVED as usize) / 256;

/// Byte classes of an automaton with one representative byte per class.
#[derive(Debug, Clone)]
pub(crate) struct Classes {
    pub of_byte: [u8; 256],
    /// `(class, representative byte)` for each distinct class.
    pub reps: Vec<(u8, u8)>,
}

impl Classes {
    pub fn new(of_byte: [u8; 256]) -> Classes {
        let mut seen = [false; 256];
        let mut reps = Vec::new();
        for b in 0..=255u8 {
            let c = of_byte[b as usize];
            if !seen[c as usize] {
                seen[c as usize] = true;
                reps.push((c, b));
            }
        }
        Classes { of_byte, reps }
    }
}

/// The automaton and its classes are passed to each call that may fill a row, so a table can
/// live beside them (in a cache) and be reused across walks of one automaton.
#[derive(Default)]
pub(crate) struct LazyTable {
    ids: HashMap<u32, u32>,
    /// Dense index → automaton state.
    states: Vec<u32>,
    /// Per dense index: the bytes that step the state to itself, as a
    /// [`crate::vocab::trie::byte_bit`] set (bit 127 only if 0x7F and all bytes >= 0x80 do).
    loops: Vec<u128>,
    /// Per dense index: 0 = not checked yet, 1 = no, 2 = yes; see [`LazyTable::utf8_loops`].
    utf8_loops: Vec<u8>,
    pub table: Vec<u32>,
}

impl LazyTable {

    /// Row offset of automaton state `s` (adds an unfilled row on first use).
    pub fn intern(&mut self, s: u32) -> u32 {
        if let Some(&o) = self.ids.get(&s) {
            return o;
        }
        assert!(self.states.len() < MAX_ROWS, "too many automaton states in one walk");
        let o = (self.states.len() * 256) as u32;
        self.states.push(s);
        self.loops.push(0);
        self.table.resize(self.table.len() + 256, UNRESOLVED);
        self.ids.insert(s, o);
        o
    }

    /// Automaton state of a row offset.
    #[inline]
    pub fn state(&self, off: u32) -> u32 {
        self.states[(off >> 8) as usize]
    }

    /// Dense index of a row offset (`0..len()`).
    #[inline]
    pub fn index(off: u32) -> usize {
        (off >> 8) as usize
    }

    /// Self-loop bytes of the state of a filled row (see `loops`).
    #[inline]
    pub fn loops(&self, off: u32) -> u128 {
        self.loops[(off >> 8) as usize]
    }

    /// Forgets every state (keeps the allocations).
    pub fn clear(&mut self) {
        self.ids.clear();
        self.states.clear();
        self.loops.clear();
        self.utf8_loops.clear();
        self.table.clear();
    }

    /// Number of states interned so far.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// Row offset reached from row `off` on `byte`, or [`DEAD`].
    #[inline(always)]
    pub fn step(&mut self, a: &dyn ByteAutomaton, classes: &Classes, off: u32, byte: u8) -> u32 {
        let t = self.table[off as usize + byte as usize];
        if t != UNRESOLVED {
            t
        } else {
            self.fill(a, classes, off);
            self.table[off as usize + byte as usize]
        }
    }

    /// True if 0x7F and every valid multi-byte UTF-8 character step the state of row `off`
    /// back to itself, with every byte on the way live. Checked exhaustively (every byte at
    /// every position of a character, deduplicated by (state, what the rest of the character
    /// may be)), once per state.
    pub fn utf8_loops(&mut self, a: &dyn ByteAutomaton, classes: &Classes, off: u32) -> bool {
        let i = Self::index(off);
        if i < self.utf8_loops.len() && self.utf8_loops[i] != 0 {
            return self.utf8_loops[i] == 2;
        }
        let r = self.check_utf8_loops(a, classes, off);
        if self.utf8_loops.len() < self.states.len() {
            self.utf8_loops.resize(self.states.len(), 0);
        }
        self.utf8_loops[i] = if r { 2 } else { 1 };
        r
    }

    #[cold]
    #[inline(never)]
    fn check_utf8_loops(&mut self, a: &dyn ByteAutomaton, classes: &Classes, off: u32) -> bool {
        if self.step(a, classes, off, 0x7F) != off {
            return false;
        }
        // (row, continuation bytes still needed, range of the next one)
        let mut todo: Vec<(u32, u8, u8, u8)> = Vec::new();
        let mut seen: std::collections::HashSet<(u32, u8, u8, u8)> = std::collections::HashSet::new();
        for lead in 0xC2..=0xF4u8 {
            let item = match lead {
                0xC2..=0xDF => (1, 0x80, 0xBF),
                0xE0 => (2, 0xA0, 0xBF),
                0xED => (2, 0x80, 0x9F),
                0xE1..=0xEF => (2, 0x80, 0xBF),
                0xF0 => (3, 0x90, 0xBF),
                0xF4 => (3, 0x80, 0x8F),
                _ => (3, 0x80, 0xBF),
            };
            let t = self.step(a, classes, off, lead);
            if t == DEAD {
                return false;
            }
            let w = (t, item.0, item.1, item.2);
            if seen.insert(w) {
                todo.push(w);
            }
        }
        while let Some((q, need, lo, hi)) = todo.pop() {
            for c in lo..=hi {
                let t = self.step(a, classes, q, c);
                if t == DEAD {
                    return false;
                }
                if need == 1 {
                    if t != off {
                        return false;
                    }
                } else {
                    let w = (t, need - 1, 0x80, 0xBF);
                    if seen.insert(w) {
                        todo.push(w);
                    }
                }
            }
        }
        true
    }

    #[cold]
    #[inline(never)]
    fn fill(&mut self, a: &dyn ByteAutomaton, classes: &Classes, off: u32) {
        let s = self.state(off);
        let mut per_class = [DEAD; 256];
        for &(c, r) in &classes.reps {
            per_class[c as usize] = match a.next(s, r) {
                Some(t) => self.intern(t),
                None => DEAD,
            };
        }
        let row = &mut self.table[off as usize..off as usize + 256];
        for (b, e) in row.iter_mut().enumerate() {
            *e = per_class[classes.of_byte[b] as usize];
        }
        let mut loops = 0u128;
        for (b, &e) in row[..127].iter().enumerate() {
            if e == off {
                loops |= 1 << b;
            }
        }
        if row[127..].iter().all(|&e| e == off) {
            loops |= 1 << 127;
        }
        self.loops[(off >> 8) as usize] = loops;
    }
}
