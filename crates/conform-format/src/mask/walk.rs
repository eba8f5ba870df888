//! A byte automaton flattened on demand into a table that a trie walk steps with one load.
//!
//! Rows are 256 wide and a state is named by its row offset (`dense index * 256`), so a step
//! is `table[offset + byte]`. A row is filled the first time the walk steps out of its state,
//! one `ByteAutomaton::next` per byte class; dead targets and targets that cannot reach
//! acceptance (both `None` from `next`) are the one sentinel [`DEAD`].

use super::ByteAutomaton;
use crate::vocab::trie::{lead_bit, LEAD_DEL};
use std::collections::{HashMap, HashSet};

/// The printable ASCII bytes but `"` and `\` (see [`crate::vocab::trie::BodySplit`]), as a
/// [`crate::vocab::trie::byte_bit`] set.
const BODY_ASCII: u128 = ((1 << 0x7F) - (1 << 0x20)) & !(1 << b'"') & !(1 << b'\\');

/// Target of a byte that kills the walk.
pub(crate) const DEAD: u32 = u32::MAX;
/// Entry of a row not filled yet.
const UNRESOLVED: u32 = u32::MAX - 1;
/// States a table kept across walks may hold before it starts over (1 KiB each).
pub(crate) const KEEP_ROWS: usize = 4096;
/// Rows this table may hold: offsets must stay below the sentinels.
const MAX_ROWS: usize = (UNRESOLVED as usize) / 256;

/// Hashing for maps keyed by automaton state ids: one multiply, high bits folded down (ids
/// are often multiples of a stride, so the low bits alone would collide).
#[derive(Default, Clone, Copy)]
pub(crate) struct U32Hasher(u64);

impl std::hash::Hasher for U32Hasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u32(b as u32);
        }
    }
    fn write_u8(&mut self, n: u8) {
        self.write_u32(n as u32);
    }
    fn write_u32(&mut self, n: u32) {
        let h = (self.0 ^ n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = h ^ (h >> 29);
    }
    fn write_u64(&mut self, n: u64) {
        self.write_u32(n as u32);
        self.write_u32((n >> 32) as u32);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) type FastU32 = std::hash::BuildHasherDefault<U32Hasher>;

/// Byte classes of an automaton with one representative byte per class.
#[derive(Debug, Clone)]
pub(crate) struct Classes {
    pub of_byte: [u8; 256],
    /// One representative byte per class (its lowest), ascending.
    pub rep_bytes: Vec<u8>,
    /// Those of `rep_bytes` below 0x80.
    ascii_reps: Vec<u8>,
    /// The bytes of each class, by class.
    members: Vec<Vec<u8>>,
    /// [`Classes::continuations`] for every range and `sep` a character can be at, computed
    /// once: the UTF-8 checks of a walk ask for them at every state inside a character.
    continuations: Vec<((u8, u8, Sep), Vec<(u8, Sep)>)>,
}

impl Classes {
    pub fn new(of_byte: [u8; 256]) -> Classes {
        let mut members = vec![Vec::new(); 256];
        for b in 0..=255u8 {
            members[of_byte[b as usize] as usize].push(b);
        }
        let rep_bytes: Vec<u8> = (0..=255u8).filter(|&b| members[of_byte[b as usize] as usize][0] == b).collect();
        let ascii_reps = rep_bytes.iter().copied().filter(|&b| b < 0x80).collect();
        let ranges = [
            (0x80, 0xBF, Sep::No),
            (0x80, 0xBF, Sep::Lead),
            (0x80, 0xBF, Sep::Second),
            (0xA0, 0xBF, Sep::No),
            (0x80, 0x9F, Sep::No),
            (0x90, 0xBF, Sep::No),
            (0x80, 0x8F, Sep::No),
        ];
        let continuations =
            ranges.iter().map(|&(lo, hi, sep)| ((lo, hi, sep), continuation_reps(&of_byte, lo, hi, sep))).collect();
        Classes { of_byte, rep_bytes, ascii_reps, members, continuations }
    }

    /// The classes of the ASCII bytes below 0x7F: each one's lowest byte, with its bytes below
    /// 0x7F as a [`crate::vocab::trie::byte_bit`] set.
    pub fn below_del(&self) -> Vec<(u8, u128)> {
        let members = |rep: u8| &self.members[self.of_byte[rep as usize] as usize];
        let bits = |rep: u8| members(rep).iter().filter(|&&b| b < 0x7F).fold(0u128, |m, &b| m | 1 << b);
        self.ascii_reps.iter().filter(|&&rep| rep < 0x7F).map(|&rep| (rep, bits(rep))).collect()
    }

    /// The continuation bytes `lo..=hi` of a character at `sep`, one per byte class, each with
    /// the `sep` it leads to (see [`continuation_reps`]).
    fn continuations(&self, lo: u8, hi: u8, sep: Sep) -> &[(u8, Sep)] {
        let (_, reps) =
            self.continuations.iter().find(|(k, _)| *k == (lo, hi, sep)).expect("a range `utf8_tail` gives");
        reps
    }
}

/// The continuation bytes `lo..=hi` of a character at `sep`, one per byte class of `of_byte`,
/// each with the `sep` it leads to: E2 80 goes its own way, unshared with the other bytes of
/// its class, and E2 80 A8 and E2 80 A9 (U+2028, U+2029) are left out.
fn continuation_reps(of_byte: &[u8; 256], lo: u8, hi: u8, sep: Sep) -> Vec<(u8, Sep)> {
    let mut done = [false; 256];
    let mut reps = Vec::new();
    for c in lo..=hi {
        let sep = match (sep, c) {
            (Sep::Lead, 0x80) => Sep::Second,
            (Sep::Second, 0xA8 | 0xA9) => continue,
            _ => Sep::No,
        };
        if sep == Sep::No && std::mem::replace(&mut done[of_byte[c as usize] as usize], true) {
            continue;
        }
        reps.push((c, sep));
    }
    reps
}

/// A position in a counted repetition (`maxLength` strings): states that never loop, so a
/// trie walk cannot take subtrees in bulk the way it does for a self-loop. Here `bytes` (ASCII
/// below 0x7F, as a `byte_bit` set; at least 32 of them, else empty) all step the state to
/// `next`, and for `run` steps that stays true with the same bytes while the walk's label (the
/// token-distance bound) of the state reached does not rise above that of `next`; `char_run` is
/// the same run for steps that may also be any valid multi-byte UTF-8 character (and 0x7F).
/// Along a run, every string over those bytes (or characters) is live and ends in a state whose
/// label is at most `next`'s: an upper bound, which is all a bounded mask needs to know of it.
/// (Labels fall along a `minLength` count and stay level along a `maxLength` one.)
#[derive(Debug, Clone, Copy)]
pub(crate) struct Chain {
    pub bytes: u128,
    pub next: u32,
    pub run: u16,
    pub char_run: u16,
}

/// The self-loop bytes of a state, as a [`crate::vocab::trie::byte_bit`] set.
#[derive(Debug, Clone, Copy)]
enum Loops {
    Unknown,
    /// Those below 0x7F only (bit 127 unknown).
    Ascii(u128),
    /// All: bit 127 only if 0x7F and every byte >= 0x80 loop.
    All(u128),
}

/// Where one more body character (see [`crate::vocab::trie::BodySplit`]) takes a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyStep {
    /// Every body character steps to this row (the state's own for a loop).
    To(u32),
    /// Every body character is dead.
    Dead,
    /// Body characters go different ways.
    Mixed,
}

/// Where [`LazyTable::utf8_chars_step`] is on the way to U+2028 or U+2029 (E2 80 A8, E2 80 A9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Sep {
    No,
    Lead,
    Second,
}

/// The automaton and its classes are passed to each call that may fill a row, so a table can
/// live beside them (in a cache) and be reused across walks of one automaton.
#[derive(Default)]
pub(crate) struct LazyTable {
    ids: HashMap<u32, u32, FastU32>,
    /// Dense index → automaton state.
    states: Vec<u32>,
    /// Per dense index: the bytes that step the state to itself, as far as known (see
    /// [`Loops`]).
    loops: Vec<Loops>,
    /// Per dense index, once computed: see [`LazyTable::looping_leads`].
    looping_leads: Vec<Option<u64>>,
    /// Per dense index, once computed: see [`LazyTable::chain`].
    chains: Vec<Option<Chain>>,
    /// Per dense index, once computed: see [`LazyTable::body_step`].
    body_steps: Vec<Option<BodyStep>>,
    /// Per dense index, once computed: see [`LazyTable::multibyte_body_step`].
    multibyte_steps: Vec<Option<u32>>,
    /// Per dense index, once computed: see [`LazyTable::body_bound`].
    body_bounds: Vec<Option<Option<u32>>>,
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
        self.loops.push(Loops::Unknown);
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

    /// Self-loop bytes of the state of row `off` (see [`Loops::All`]; fills the row).
    #[inline]
    pub fn loops(&mut self, a: &dyn ByteAutomaton, classes: &Classes, off: u32) -> u128 {
        match self.loops[Self::index(off)] {
            Loops::All(loops) => loops,
            _ => self.fill_loops(a, classes, off),
        }
    }

    /// The ASCII bytes below 0x7F among [`LazyTable::loops`], stepping only their classes: the
    /// rest of a row (states inside characters) costs a lazily built automaton a state each.
    #[inline]
    pub fn ascii_loops(&mut self, a: &dyn ByteAutomaton, classes: &Classes, off: u32) -> u128 {
        match self.loops[Self::index(off)] {
            Loops::All(loops) => loops & !(1 << 127),
            Loops::Ascii(loops) => loops,
            Loops::Unknown => {
                let loops = (0..0x7F).filter(|&b| self.step(a, classes, off, b) == off).fold(0, |m, b| m | 1 << b);
                self.loops[Self::index(off)] = Loops::Ascii(loops);
                loops
            }
        }
    }

    /// Forgets every state (keeps the allocations).
    pub fn clear(&mut self) {
        self.ids.clear();
        self.states.clear();
        self.loops.clear();
        self.looping_leads.clear();
        self.chains.clear();
        self.body_steps.clear();
        self.multibyte_steps.clear();
        self.body_bounds.clear();
        self.table.clear();
    }

    /// Number of states interned so far.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// Row offset reached from row `off` on `byte`, or [`DEAD`]. Fills only the byte's class
    /// (every ASCII class for an ASCII byte): a lazily built automaton pays for each state a row
    /// holds, and inside a counted string a row's other classes are states inside characters,
    /// a new one per position, which walks seldom step.
    #[inline(always)]
    pub fn step(&mut self, a: &dyn ByteAutomaton, classes: &Classes, off: u32, byte: u8) -> u32 {
        let t = self.table[off as usize + byte as usize];
        if t != UNRESOLVED {
            t
        } else {
            self.fill_class(a, classes, off, byte)
        }
    }

    /// The counting chain at row `off` (see [`Chain`]), for runs of at most `cap` steps.
    pub fn chain(
        &mut self,
        a: &dyn ByteAutomaton,
        classes: &Classes,
        off: u32,
        cap: u16,
        label: &mut dyn FnMut(u32) -> u32,
    ) -> Chain {
        if let Some(Some(c)) = self.chains.get(Self::index(off)) {
            return *c;
        }
        self.resolve_chain(a, classes, off, cap, label);
        self.chains[Self::index(off)].unwrap()
    }

    /// Computes `chains` for `off` and the chain states after it: forward to the first known
    /// one (or `cap` states), then back, each run one longer than its successor's when the
    /// bytes and the label carry over.
    #[cold]
    #[inline(never)]
    fn resolve_chain(
        &mut self,
        a: &dyn ByteAutomaton,
        classes: &Classes,
        off: u32,
        cap: u16,
        label: &mut dyn FnMut(u32) -> u32,
    ) {
        let mut todo: Vec<(u32, u128, u32, bool)> = Vec::new();
        let mut x = off;
        while todo.len() < cap as usize && !matches!(self.chains.get(Self::index(x)), Some(Some(_))) {
            let (bytes, next, chars) = match a.counting_step(self.state(x)) {
                Some(c) if c.bytes == 0 => (0, DEAD, false),
                Some(c) => (c.bytes, self.intern(c.next), c.chars),
                None => {
                    let (bytes, next) = self.counting_step(a, classes, x);
                    (bytes, next, bytes != 0 && self.utf8_chars_step(a, classes, x, next, false))
                }
            };
            todo.push((x, bytes, next, chars));
            if bytes == 0 {
                break;
            }
            x = next;
        }
        if self.chains.len() < self.states.len() {
            self.chains.resize(self.states.len(), None);
        }
        for &(x, bytes, next, chars) in todo.iter().rev() {
            let mut c = Chain { bytes, next, run: 0, char_run: 0 };
            if bytes != 0 {
                let after = self.chains.get(Self::index(next)).copied().flatten();
                // a run carries over if the next state counts on the same bytes and the label
                // one step further is no higher
                let carries = after.filter(|n| {
                    bytes & !n.bytes == 0 && n.run > 0 && label(self.state(n.next)) <= label(self.state(next))
                });
                c.run = carries.map_or(1, |n| n.run.saturating_add(1).min(cap));
                if chars {
                    c.char_run =
                        carries.filter(|n| n.char_run > 0).map_or(1, |n| n.char_run.saturating_add(1).min(cap));
                }
            }
            self.chains[Self::index(x)] = Some(c);
        }
    }

    /// Where every body character steps row `off` (see [`BodyStep`]): the printable ASCII
    /// bytes but `"` and `\` read from the row, every multi-byte character checked with
    /// [`LazyTable::utf8_chars_step`].
    pub fn body_step(&mut self, a: &dyn ByteAutomaton, classes: &Classes, off: u32) -> BodyStep {
        if let Some(Some(b)) = self.body_steps.get(Self::index(off)) {
            return *b;
        }
        let step = self.resolve_body_step(a, classes, off);
        if self.body_steps.len() < self.states.len() {
            self.body_steps.resize(self.states.len(), None);
        }
        self.body_steps[Self::index(off)] = Some(step);
        step
    }

    /// Row offsets after `1..=max_chars` body characters from row `off` ([`DEAD`] where they
    /// die), when every body character steps each state on the way alike; `None` otherwise.
    pub fn body_ends(
        &mut self,
        a: &dyn ByteAutomaton,
        classes: &Classes,
        off: u32,
        max_chars: usize,
    ) -> Option<Vec<u32>> {
        let mut ends = Vec::with_capacity(max_chars);
        let mut s = off;
        while ends.len() < max_chars {
            match self.body_step(a, classes, s) {
                BodyStep::To(t) if t == s => ends.resize(max_chars, s),
                BodyStep::To(t) => {
                    ends.push(t);
                    s = t;
                }
                BodyStep::Dead => ends.resize(max_chars, DEAD),
                BodyStep::Mixed => return None,
            }
        }
        Some(ends)
    }

    #[cold]
    #[inline(never)]
    fn resolve_body_step(&mut self, a: &dyn ByteAutomaton, classes: &Classes, off: u32) -> BodyStep {
        if let Some(t) = a.body_char_step(self.state(off)) {
            return BodyStep::To(self.intern(t));
        }
        // step byte by byte (each class filled once), not the whole row: the states inside
        // characters are a row's most, and a lazily built automaton pays for each
        let to = self.step(a, classes, off, b' ');
        if (b' '..=b'~').any(|b| b != b'"' && b != b'\\' && self.step(a, classes, off, b) != to) {
            return BodyStep::Mixed;
        }
        if to == DEAD {
            // no multi-byte character may start either
            let dead = (0xC2..=0xF4).all(|b| self.step(a, classes, off, b) == DEAD);
            return if dead { BodyStep::Dead } else { BodyStep::Mixed };
        }
        if self.multibyte_body_step(a, classes, off) == to {
            BodyStep::To(to)
        } else {
            BodyStep::Mixed
        }
    }

    /// The highest `label` of the states that strings of body characters lead to from row
    /// `off`, when every body character steps each of them to a live one (the states of an
    /// unanchored `pattern` before and after its match, say): then every string of body
    /// characters from `off` is live and ends at most that far from acceptance. `None` when
    /// some body character dies on the way, when there are more than `cap` such states, or
    /// when fewer than half the body bytes loop on `off` (a key among declared names, say:
    /// there the states are many and a walk meets few of them) unless the automaton tells
    /// without building them (a network does, from its rule DFAs, where most body bytes keep
    /// `off` live). A bound is kept for every
    /// state reached that has a row (theirs lead to fewer, so it holds for them too); a
    /// failure for `off` alone. `bytes_label`: `label` is `min_bytes_to_accept`.
    pub fn body_bound(
        &mut self,
        a: &dyn ByteAutomaton,
        classes: &Classes,
        off: u32,
        cap: usize,
        bytes_label: bool,
        label: &mut dyn FnMut(u32) -> u32,
    ) -> Option<u32> {
        if let Some(Some(b)) = self.body_bounds.get(Self::index(off)) {
            return *b;
        }
        // An automaton that can answer without building the states (a network, from its rule
        // DFAs, keeping each answer for the states reached) does, where the label is the
        // bytes-to-accept it answers with, and where most body bytes keep the state live (a
        // key among declared names, where undeclared keys go on; not a number or a literal,
        // whose closures die after work the walk would not do).
        let dead = (0x20..0x7F).filter(|&b| BODY_ASCII >> b & 1 != 0 && self.step(a, classes, off, b) == DEAD).count();
        if let Some(bound) = (bytes_label && dead <= BODY_ASCII.count_ones() as usize / 2)
            .then(|| a.body_closure_bound(self.state(off), cap))
            .flatten()
        {
            if self.body_bounds.len() < self.states.len() {
                self.body_bounds.resize(self.states.len(), None);
            }
            self.body_bounds[Self::index(off)] = Some(Some(bound));
            return Some(bound);
        }
        let loops_enough = (self.ascii_loops(a, classes, off) & BODY_ASCII).count_ones() >= BODY_ASCII.count_ones() / 2;
        if !loops_enough {
            return None;
        }
        let reached = body_closure(a, classes, self.state(off), cap, &|_| true);
        let bound = reached.as_ref().map(|r| r.iter().map(|&q| label(q)).max().unwrap_or(0));
        if self.body_bounds.len() < self.states.len() {
            self.body_bounds.resize(self.states.len(), None);
        }
        self.body_bounds[Self::index(off)] = Some(bound);
        for q in reached.iter().flatten() {
            if let Some(&o) = self.ids.get(q) {
                self.body_bounds[Self::index(o)] = Some(bound);
            }
        }
        bound
    }

    /// The row that every multi-byte body character steps row `off` to, or [`DEAD`] if they
    /// die or go different ways (checked with [`LazyTable::utf8_chars_step`]).
    pub fn multibyte_body_step(&mut self, a: &dyn ByteAutomaton, classes: &Classes, off: u32) -> u32 {
        if let Some(Some(t)) = self.multibyte_steps.get(Self::index(off)) {
            return *t;
        }
        let to = match a.body_char_step(self.state(off)) {
            Some(t) => self.intern(t),
            None => {
                // a candidate: where 'é' goes
                let mid = self.step(a, classes, off, 0xC3);
                let to = if mid == DEAD { DEAD } else { self.step(a, classes, mid, 0xA9) };
                if to != DEAD && self.utf8_chars_step(a, classes, off, to, true) {
                    to
                } else {
                    DEAD
                }
            }
        };
        if self.multibyte_steps.len() < self.states.len() {
            self.multibyte_steps.resize(self.states.len(), None);
        }
        self.multibyte_steps[Self::index(off)] = Some(to);
        to
    }

    /// The ASCII bytes below 0x7F that step row `off` to one other live state (the most
    /// common such state), with that state; `(0, DEAD)` if fewer than 32 bytes do.
    fn counting_step(&mut self, a: &dyn ByteAutomaton, classes: &Classes, off: u32) -> (u128, u32) {
        // (target, bytes): the ASCII classes alone, not the row's states inside characters
        let mut tally: Vec<(u32, u128)> = Vec::new();
        for b in 0..0x7F {
            let t = self.step(a, classes, off, b);
            if t != off && t != DEAD {
                match tally.iter_mut().find(|(s, _)| *s == t) {
                    Some((_, bytes)) => *bytes |= 1 << b,
                    None => tally.push((t, 1 << b)),
                }
            }
        }
        match tally.into_iter().max_by_key(|(_, bytes)| bytes.count_ones()) {
            Some((next, bytes)) if bytes.count_ones() >= 32 => (bytes, next),
            _ => (0, DEAD),
        }
    }

    /// The characters that step the state of row `off` back to itself, with every byte on the
    /// way live, by lead byte: a [`crate::vocab::trie::lead_bit`] set where every character that
    /// starts with that byte does (and 0x7F's bit where it does). Checked exhaustively (every
    /// byte at every position of a character, deduplicated by (state, what the rest of the
    /// character may be)), once per state. By lead byte, because a pattern that leaves out a
    /// few characters (`\S` leaves out U+3000 and U+00A0) must not stop whole subtrees of
    /// other scripts' tokens from being taken in bulk.
    pub fn looping_leads(&mut self, a: &dyn ByteAutomaton, classes: &Classes, off: u32) -> u64 {
        let i = Self::index(off);
        if let Some(Some(leads)) = self.looping_leads.get(i) {
            return *leads;
        }
        let del = if self.step(a, classes, off, 0x7F) == off { LEAD_DEL } else { 0 };
        let leads = del | chars_looping_by_lead(a, classes, self.state(off));
        if self.looping_leads.len() < self.states.len() {
            self.looping_leads.resize(self.states.len(), None);
        }
        self.looping_leads[i] = Some(leads);
        leads
    }

    /// True if every valid multi-byte UTF-8 character and 0x7F step row `off` to row `target`,
    /// with every byte on the way live (see [`LazyTable::utf8_loops`]); for `body`, only the
    /// body characters among them (see [`crate::vocab::trie::BodySplit`]: not 0x7F, U+2028 or
    /// U+2029, which ECMA's `.` leaves out). Steps the automaton itself, one byte per class, so
    /// the states inside characters take no rows.
    #[cold]
    #[inline(never)]
    fn utf8_chars_step(&mut self, a: &dyn ByteAutomaton, classes: &Classes, off: u32, target: u32, body: bool) -> bool {
        if !body && self.step(a, classes, off, 0x7F) != target {
            return false;
        }
        utf8_chars_lead_to(a, classes, self.state(off), self.state(target), body, &|_| true)
    }

    /// Fills the entries of `byte`'s class in row `off`, with every ASCII class for an ASCII
    /// byte (a walk steps most of those, and one call is cheaper than many); returns `byte`'s.
    #[cold]
    #[inline(never)]
    fn fill_class(&mut self, a: &dyn ByteAutomaton, classes: &Classes, off: u32, byte: u8) -> u32 {
        if byte < 0x80 {
            self.fill_reps(a, classes, off, &classes.ascii_reps);
        } else {
            self.fill_reps(a, classes, off, &[classes.members[classes.of_byte[byte as usize] as usize][0]]);
        }
        self.table[off as usize + byte as usize]
    }

    /// Fills every entry of row `off` not filled yet.
    fn fill_row(&mut self, a: &dyn ByteAutomaton, classes: &Classes, off: u32) {
        self.fill_reps(a, classes, off, &classes.rep_bytes);
    }

    /// Fills the classes of `reps` (representative bytes) in row `off` that are not filled yet.
    fn fill_reps(&mut self, a: &dyn ByteAutomaton, classes: &Classes, off: u32, reps: &[u8]) {
        let row = &self.table[off as usize..off as usize + 256];
        let missing: Vec<u8> = reps.iter().copied().filter(|&b| row[b as usize] == UNRESOLVED).collect();
        if missing.is_empty() {
            return;
        }
        let mut targets = Vec::with_capacity(missing.len());
        a.next_many(self.state(off), &missing, &mut targets);
        for (&rep, t) in missing.iter().zip(targets) {
            let t = match t {
                Some(t) => self.intern(t),
                None => DEAD,
            };
            for &b in &classes.members[classes.of_byte[rep as usize] as usize] {
                self.table[off as usize + b as usize] = t;
            }
        }
    }

    /// Fills row `off` and computes its self-loop bytes (see `loops`).
    #[cold]
    #[inline(never)]
    fn fill_loops(&mut self, a: &dyn ByteAutomaton, classes: &Classes, off: u32) -> u128 {
        self.fill_row(a, classes, off);
        let row = &self.table[off as usize..off as usize + 256];
        let mut loops = 0u128;
        for (b, &e) in row[..127].iter().enumerate() {
            if e == off {
                loops |= 1 << b;
            }
        }
        if row[127..].iter().all(|&e| e == off) {
            loops |= 1 << 127;
        }
        self.loops[Self::index(off)] = Loops::All(loops);
        loops
    }
}

/// True if every valid multi-byte UTF-8 character (for `body`, but U+2028 and U+2029) steps
/// automaton state `from` to `to`, with every byte on the way live and every state inside a
/// character `inside_ok`. Steps the automaton itself, one byte per class, each state once for
/// all its bytes (a lazily built automaton shares work across them).
pub(crate) fn utf8_chars_lead_to(
    a: &dyn ByteAutomaton,
    classes: &Classes,
    from: u32,
    to: u32,
    body: bool,
    inside_ok: &dyn Fn(u32) -> bool,
) -> bool {
    let mut targets = Vec::with_capacity(LEADS.len());
    a.next_many(from, &LEADS, &mut targets);
    let mut firsts = Vec::with_capacity(LEADS.len());
    for (&lead, &t) in LEADS.iter().zip(&targets) {
        let Some(t) = t else { return false };
        let (need, lo, hi) = utf8_tail(lead);
        firsts.push((t, need, lo, hi, if body && lead == 0xE2 { Sep::Lead } else { Sep::No }));
    }
    chars_end_at(a, classes, firsts, to, inside_ok)
}

/// The lead bytes (as [`crate::vocab::trie::lead_bit`]s) whose every character steps automaton
/// state `from` back to itself, every byte on the way live; see [`LazyTable::looping_leads`].
fn chars_looping_by_lead(a: &dyn ByteAutomaton, classes: &Classes, from: u32) -> u64 {
    let mut targets = Vec::with_capacity(LEADS.len());
    a.next_many(from, &LEADS, &mut targets);
    // leads that step alike and take the same continuations share one answer
    let mut groups: Vec<((u32, u8, u8, u8), u64)> = Vec::new();
    for (&lead, &t) in LEADS.iter().zip(&targets) {
        let Some(t) = t else { continue };
        let (need, lo, hi) = utf8_tail(lead);
        match groups.iter_mut().find(|g| g.0 == (t, need, lo, hi)) {
            Some(g) => g.1 |= lead_bit(lead),
            None => groups.push(((t, need, lo, hi), lead_bit(lead))),
        }
    }
    groups
        .into_iter()
        .filter(|&((t, need, lo, hi), _)| chars_end_at(a, classes, vec![(t, need, lo, hi, Sep::No)], from, &|_| true))
        .fold(0, |m, (_, bits)| m | bits)
}

/// True if, from each `(state, continuation bytes still needed, range of the next one, sep)`
/// inside a character, every way to finish it ends at `to`, every byte live and every state
/// inside `inside_ok`.
fn chars_end_at(
    a: &dyn ByteAutomaton,
    classes: &Classes,
    firsts: Vec<(u32, u8, u8, u8, Sep)>,
    to: u32,
    inside_ok: &dyn Fn(u32) -> bool,
) -> bool {
    // (state, continuation bytes still needed, range of the next one, after E2 / E2 80:
    // on the way to U+2028 and U+2029, which `body` leaves out); a character passes through
    // few states, so `seen` is searched, not hashed
    let mut todo: Vec<(u32, u8, u8, u8, Sep)> = Vec::with_capacity(16);
    let mut seen: Vec<(u32, u8, u8, u8, Sep)> = Vec::with_capacity(32);
    let insert = |seen: &mut Vec<_>, w| {
        !seen.contains(&w) && {
            seen.push(w);
            true
        }
    };
    for w in firsts {
        if insert(&mut seen, w) {
            if !inside_ok(w.0) {
                return false;
            }
            todo.push(w);
        }
    }
    let (mut bytes, mut targets) = (Vec::new(), Vec::new());
    while let Some((q, need, lo, hi, sep)) = todo.pop() {
        let reps = classes.continuations(lo, hi, sep);
        bytes.clear();
        bytes.extend(reps.iter().map(|r| r.0));
        a.next_many(q, &bytes, &mut targets);
        for (&t, &(_, sep)) in targets.iter().zip(reps) {
            let Some(t) = t else { return false };
            if need == 1 {
                if t != to {
                    return false;
                }
            } else {
                let w = (t, need - 1, 0x80, 0xBF, sep);
                if insert(&mut seen, w) {
                    if !inside_ok(t) {
                        return false;
                    }
                    todo.push(w);
                }
            }
        }
    }
    true
}

/// The lead bytes of multi-byte UTF-8 characters.
const LEADS: [u8; 0xF5 - 0xC2] = {
    let mut leads = [0; 0xF5 - 0xC2];
    let mut i = 0;
    while i < leads.len() {
        leads[i] = 0xC2 + i as u8;
        i += 1;
    }
    leads
};

/// The state every body character (see [`crate::vocab::trie::BodySplit`]) steps automaton
/// state `from` to, when they all go to one live state with every byte on the way live and
/// every state inside a character `inside_ok`; `None` otherwise. For automata that answer
/// [`ByteAutomaton::body_char_step`] from smaller ones (the rule DFAs of a network).
pub(crate) fn uniform_body_step(
    a: &dyn ByteAutomaton,
    classes: &Classes,
    from: u32,
    inside_ok: &dyn Fn(u32) -> bool,
) -> Option<u32> {
    let mut seen = [false; 256];
    let ascii: Vec<u8> = (0x20..0x7F)
        .filter(|&b| {
            BODY_ASCII >> b & 1 != 0 && !std::mem::replace(&mut seen[classes.of_byte[b as usize] as usize], true)
        })
        .collect();
    let mut targets = Vec::new();
    a.next_many(from, &ascii, &mut targets);
    let to = targets.first().copied().flatten()?;
    if targets.iter().any(|&t| t != Some(to)) {
        return None;
    }
    utf8_chars_lead_to(a, classes, from, to, true, inside_ok).then_some(to)
}

/// The automaton states that strings of body characters (see
/// [`crate::vocab::trie::BodySplit`]) lead to from state `from` (itself included), stepping
/// one byte per class; `None` if a byte of one dies on the way, a state inside a character is
/// not `inside_ok`, or there are more than `cap`.
pub(crate) fn body_closure(
    a: &dyn ByteAutomaton,
    classes: &Classes,
    from: u32,
    cap: usize,
    inside_ok: &dyn Fn(u32) -> bool,
) -> Option<Vec<u32>> {
    // (state, continuation bytes still needed, range of the next one, on the way to U+2028/9)
    type Item = (u32, u8, u8, u8, Sep);
    let mut firsts: Vec<(u8, u8, u8, u8, Sep)> = Vec::new();
    let mut seen_first = HashSet::new();
    for b in (0x20..0x7F).filter(|&b| BODY_ASCII >> b & 1 != 0).chain(0xC2..=0xF4) {
        let (need, lo, hi) = utf8_tail(b);
        let sep = if b == 0xE2 { Sep::Lead } else { Sep::No };
        if seen_first.insert((classes.of_byte[b as usize], need, lo, hi, sep)) {
            firsts.push((b, need, lo, hi, sep));
        }
    }
    let mut chars = vec![from];
    let mut seen: HashSet<Item, FastU32> = HashSet::default();
    seen.insert((from, 0, 0, 0, Sep::No));
    let mut todo: Vec<Item> = vec![(from, 0, 0, 0, Sep::No)];
    let first_bytes: Vec<u8> = firsts.iter().map(|f| f.0).collect();
    let (mut bytes, mut targets, mut next) = (Vec::new(), Vec::new(), Vec::new());
    while let Some((q, need, lo, hi, sep)) = todo.pop() {
        // one `next_many` per state: a lazily built automaton shares work across its bytes
        next.clear();
        if need == 0 {
            a.next_many(q, &first_bytes, &mut targets);
            for (&(_, need, lo, hi, sep), &t) in firsts.iter().zip(&targets) {
                next.push((t?, need, lo, hi, sep));
            }
        } else {
            let reps = classes.continuations(lo, hi, sep);
            bytes.clear();
            bytes.extend(reps.iter().map(|r| r.0));
            a.next_many(q, &bytes, &mut targets);
            for (&t, &(_, sep)) in targets.iter().zip(reps) {
                next.push(if need == 1 { (t?, 0, 0, 0, Sep::No) } else { (t?, need - 1, 0x80, 0xBF, sep) });
            }
        }
        for &w in &next {
            if seen.insert(w) {
                if w.1 == 0 {
                    chars.push(w.0);
                    if chars.len() > cap {
                        return None;
                    }
                } else if !inside_ok(w.0) {
                    return None;
                }
                todo.push(w);
            }
        }
    }
    Some(chars)
}

/// For a first byte of a character: the continuation bytes it needs and the range of the
/// first one (`(0, 0, 0)` for ASCII).
fn utf8_tail(lead: u8) -> (u8, u8, u8) {
    match lead {
        0x00..=0x7F => (0, 0, 0),
        0xC2..=0xDF => (1, 0x80, 0xBF),
        0xE0 => (2, 0xA0, 0xBF),
        0xED => (2, 0x80, 0x9F),
        0xE1..=0xEF => (2, 0x80, 0xBF),
        0xF0 => (3, 0x90, 0xBF),
        0xF4 => (3, 0x80, 0x8F),
        _ => (3, 0x80, 0xBF),
    }
}
