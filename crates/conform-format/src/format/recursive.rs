//! Recursive automata: rule DFAs that call each other (a recursive transition network),
//! determinised lazily into one [`ByteAutomaton`] — the pushdown half of DESIGN §3.
//!
//! A regex cannot recurse, so a recursive `$ref` or GBNF rule is compiled once, as its own
//! rule DFA, and every use of it inside another rule is a *call*: a byte that never occurs in
//! UTF-8 followed by the rule's index byte (see [`call`]). Running the network keeps a stack of frames: the top one is
//! the position inside the rule being matched, those below are where each caller resumes.
//! When a rule's DFA reaches an accepting state the frame may return; when it sits before a
//! call byte it may enter the callee. Both are choices, so a state of the combined automaton is
//! the *set* of stacks still possible after the bytes so far (subset construction over
//! configurations), interned on first visit and given a stable `u32` id. Masks, caches and the
//! budget logic work on those ids exactly as on a DFA's.
//!
//! Bounds: a stack never grows past `max_depth` frames (deeper nesting is not generated: a
//! narrowing), and `min_bytes_to_accept` is exact under that bound, because the distance of
//! each rule state is computed for every number of call levels still available. The number
//! of interned states, and of stack frames over all of them, is capped; past half the frame
//! cap, new states keep only their nearest stack, and past a cap, new states are dead (both
//! narrowings). Long before that the automaton reports itself [`ByteAutomaton::saturated`],
//! and the server builds a fresh one for new requests: states are interned per nesting path,
//! so a server that generates deeply nested output for days would otherwise grow this table
//! (and the mask cache keyed by it) without end.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::{Arc, RwLock};

use super::{Automaton, FormatError, Limit, Limits};
use crate::mask::{body_closure, uniform_body_step, utf8_chars_lead_to, ByteAutomaton, Classes, CountingStep, FastU32};

/// Maps keyed by rule states and stacks of them: hashed with one multiply a word, since a
/// first visit of a state hashes stacks many times (SipHash was most of its cost).
type Map<K, V> = HashMap<K, V, FastU32>;
type Set<K> = HashSet<K, FastU32>;

/// Bytes that never occur in UTF-8 text: each starts the calls of 256 rules.
const CALL_BYTES: [u8; 13] = [0xC0, 0xC1, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA, 0xFB, 0xFC, 0xFD, 0xFE, 0xFF];

/// How many rules a network can have.
pub const MAX_RULES: usize = CALL_BYTES.len() * 256;

/// Interned states past this many are dead (each takes ~450 bytes with its transition row).
const MAX_STATES: usize = 1 << 20;

/// Stack frames interned over all states past which new states are dead: ambiguous grammars
/// hold many deep stacks per state, and this bounds their memory (~64 MiB: 8 bytes a frame,
/// kept twice). Past half of it, new states keep one stack each (see `intern`), so a dead end
/// that would break the budget guarantee takes tens of thousands of further states.
const MAX_FRAMES: usize = 1 << 22;

/// Interned states (or a quarter of [`MAX_FRAMES`]) past which the automaton asks to be
/// replaced for new work.
const SATURATED_STATES: usize = 20_000;

/// Stacks kept per state; more (deeply ambiguous grammars) are dropped, those farthest from
/// acceptance first — a narrowing that keeps distances consistent.
const MAX_STACKS: usize = 64;

/// Stacks one closure may keep (calls whose callees start with calls branch at every level);
/// past it the closure stops early, a narrowing. It visits stacks nearest acceptance first, so
/// the stack that realises the state's distance is never the one cut off.
const MAX_CLOSURE: usize = 1 << 14;

/// The regex fragment that calls rule `rule` (compile the rule regexes with [`rule_automaton`]).
pub fn call(rule: usize) -> String {
    format!(r"(?-u:\x{:02X}\x{:02X})", CALL_BYTES[rule / 256], rule % 256)
}

/// The first 256 rules' index for a call's first byte.
fn call_base(byte: u8) -> Option<usize> {
    CALL_BYTES.iter().position(|&c| c == byte).map(|i| i * 256)
}

/// Compiles one rule's regex, which may contain [`call`] fragments.
pub fn rule_automaton(pattern: &str, limits: &Limits) -> Result<Automaton, FormatError> {
    Automaton::from_rule_regex(pattern, limits)
}

/// Compiles rule regexes (`[0]` is the whole output) into a network; the rule DFAs together
/// stay within `limits.dfa_size_bytes`. Rules are shared with earlier compiles of the same
/// text (see `rule_cache`).
pub fn compile_network(regexes: &[&str], limits: &Limits) -> Result<Recursive, FormatError> {
    let mut rules = Vec::with_capacity(regexes.len());
    let mut bytes = 0;
    for regex in regexes {
        let rule = super::rule_cache::rule(regex, limits)?;
        bytes += rule.memory_usage();
        if bytes > limits.dfa_size_bytes {
            return Err(FormatError::too_complex(
                format!("the {} rule automata are too large together", regexes.len()),
                Limit::DfaSizeBytes(limits.dfa_size_bytes),
            ));
        }
        rules.push(rule);
    }
    Recursive::new(rules, limits.max_nesting)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Frame {
    rule: u32,
    state: u32,
}

type Stack = Vec<Frame>;

/// What a rule DFA state does, precomputed.
#[derive(Debug, Default, Clone)]
struct StateInfo {
    /// Reached from the rule's start (the rest of the rule's states are never looked at).
    reached: bool,
    /// `(callee, state after the call)`.
    calls: Vec<(u32, u32)>,
    /// Whether some non-call byte leads on.
    has_bytes: bool,
    accepting: bool,
}

struct Node {
    /// Shared with each `next_many` that steps the state.
    stacks: Arc<Vec<Stack>>,
    accepting: bool,
    dist: u32,
    /// Next state per byte class: `UNKNOWN`, `DEAD` or an id.
    row: Vec<u32>,
    /// Next states found so far by [`Recursive::move_key`]: most classes of a state move its
    /// stacks alike (a string body's; in a key among declared names, every byte that starts
    /// none), and stepping and interning is what a first visit costs.
    moved: Vec<(MoveKey, u32)>,
}

/// Stacks per state whose moves [`Recursive::move_key`] keys.
const KEYED_STACKS: usize = 8;

/// Per stack, the state the byte leads the rule DFA on top of it to (`u32::MAX`: dead).
type MoveKey = [u32; KEYED_STACKS];

const UNKNOWN: u32 = u32::MAX;
const DEAD: u32 = u32::MAX - 1;

#[derive(Default)]
struct Interned {
    nodes: Vec<Node>,
    ids: Map<Stacks, u32>,
    /// Frames over all nodes' stacks.
    frames: usize,
    /// Entries over all nodes' `moved`.
    moves: usize,
    /// Per rule state, where every body character leads it (see [`Recursive::body_char_step`]).
    body_steps: Map<Frame, Option<u32>>,
    /// Per rule state, depth left, cap and whether the frame is the root (where accepting
    /// ends the output instead of returning): the highest rule distance of the body closure
    /// (see [`Recursive::body_closure_bound`]).
    body_bounds: Map<(Frame, u32, u32, bool), Option<u32>>,
}

/// A recursive transition network over rule DFAs, as one deterministic [`ByteAutomaton`].
pub struct Recursive {
    rules: Vec<Arc<Automaton>>,
    /// Per rule, indexed by its DFA state id.
    info: Vec<Vec<StateInfo>>,
    /// `dist[k][rule][state]`: fewest bytes from that rule state to the rule's acceptance when
    /// at most `k` further call levels may open (`u32::MAX` = impossible); levels past the last
    /// equal the last.
    dist: Vec<Vec<Vec<u32>>>,
    max_depth: usize,
    classes: [u8; 256],
    class_rep: Vec<u8>,
    /// `classes` with what the UTF-8 checks of [`Recursive::body_char_step`] need.
    walk_classes: Classes,
    /// The classes of the ASCII bytes below 0x7F: each one's lowest byte, and its bytes below
    /// 0x7F as a `byte_bit` set.
    ascii_classes: Vec<(u8, u128)>,
    interned: RwLock<Interned>,
}

impl std::fmt::Debug for Recursive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recursive")
            .field("rules", &self.rules.len())
            .field("rule_states", &self.info.iter().flatten().filter(|i| i.reached).count())
            .field("max_depth", &self.max_depth)
            .field("states", &self.interned.read().unwrap().nodes.len())
            .finish()
    }
}

impl Recursive {
    /// `rules[0]` is the whole output; `max_depth` bounds the stack (the root frame included).
    pub fn new(rules: Vec<Arc<Automaton>>, max_depth: u32) -> Result<Recursive, FormatError> {
        if rules.is_empty() || rules.len() > MAX_RULES {
            return Err(FormatError::too_complex(
                format!("a recursive automaton of {} rules", rules.len()),
                Limit::RecursiveRules(MAX_RULES),
            ));
        }
        let max_depth = max_depth.max(1) as usize;
        let info: Vec<Vec<StateInfo>> = rules.iter().map(|r| explore(r, rules.len())).collect();
        let dist = distances(&rules, &info, max_depth);
        let (classes, class_rep) = joint_classes(&rules);
        let walk_classes = Classes::new(classes);
        let ascii_classes = walk_classes.below_del();
        let net = Recursive {
            rules,
            info,
            dist,
            max_depth,
            classes,
            class_rep,
            walk_classes,
            ascii_classes,
            interned: RwLock::new(Interned::default()),
        };
        let start = net.close(vec![vec![Frame { rule: 0, state: Automaton::start(&net.rules[0]).0 }]]);
        let start = net.intern(start);
        if net.min_bytes_to_accept(start) == u32::MAX {
            return Err(FormatError::EmptyLanguage {
                message: format!("no output can satisfy the constraint within {max_depth} levels of recursion"),
            });
        }
        Ok(net)
    }

    /// Interned states so far.
    pub fn state_count(&self) -> usize {
        self.interned.read().unwrap().nodes.len()
    }

    /// Heap memory of the rule DFAs and the states interned so far (stacks counted by frame).
    pub fn memory_usage(&self) -> usize {
        let interned = self.interned.read().unwrap();
        self.rules.iter().map(|r| r.memory_usage()).sum::<usize>()
            + interned.frames * std::mem::size_of::<Frame>() * 2
            + interned.nodes.len() * (std::mem::size_of::<Node>() + self.class_rep.len() * 4)
            + interned.moves * std::mem::size_of::<(MoveKey, u32)>()
    }

    /// See [`ByteAutomaton::body_char_step`]. For a state of one stack, the rule DFA on top
    /// answers (once per rule state), when no frame can call or return inside a character:
    /// then the state is that stack with its top frame moved, closed and interned exactly as
    /// stepping byte by byte would build it, without the states inside characters. Not past
    /// half the state cap or a quarter of the frame cap: nearer them, stepping byte by byte may
    /// meet a cap (a dead end) where this would not, and one step of every request in flight
    /// adds far fewer.
    pub fn body_char_step(&self, state: u32) -> Option<u32> {
        let stack = self.lone_stack(state)?;
        let top = *stack.last()?;
        let known = self.interned.read().unwrap().body_steps.get(&top).copied();
        let to = match known {
            Some(to) => to,
            None => {
                let info = &self.info[top.rule as usize];
                let inside_ok = |m: u32| info.get(m as usize).is_some_and(|i| i.calls.is_empty() && !i.accepting);
                let to = uniform_body_step(&*self.rules[top.rule as usize], &self.walk_classes, top.state, &inside_ok);
                self.interned.write().unwrap().body_steps.insert(top, to);
                to
            }
        }?;
        let mut moved = stack;
        moved.last_mut()?.state = to;
        let next = self.close(vec![moved]);
        let id = if next.is_empty() { DEAD } else { self.intern(next) };
        (id != DEAD && self.min_bytes_to_accept(id) != u32::MAX).then_some(id)
    }

    /// See [`ByteAutomaton::counting_step`]. For a state of at most [`KEYED_STACKS`] stacks,
    /// the rule DFAs on top answer: bytes whose [`Recursive::move_key`]s are equal lead to one
    /// state, and a character leads there when, in each stack, it moves the top to that key's
    /// rule state (or, for a stack the bytes kill, its first byte kills it too) without a call or
    /// a return inside it. Only the state after the step is built, not those inside characters,
    /// so a counted string's positions (and a key's, among declared names) cost one state each.
    /// Below the caps as [`Recursive::body_char_step`] is, for the same reason.
    pub fn counting_step(&self, state: u32) -> Option<CountingStep> {
        let stacks = {
            let interned = self.interned.read().unwrap();
            let node = interned.nodes.get(state as usize)?;
            if interned.nodes.len() >= MAX_STATES / 2 || interned.frames >= MAX_FRAMES / 4 {
                return None;
            }
            node.stacks.clone()
        };
        if stacks.len() > KEYED_STACKS {
            return None;
        }
        let mut unchanged: MoveKey = [u32::MAX; KEYED_STACKS];
        for (k, s) in unchanged.iter_mut().zip(stacks.iter()) {
            *k = s.last().expect("stacks are never empty").state;
        }
        let mut groups: Vec<(MoveKey, u128)> = Vec::new();
        for &(rep, bytes) in &self.ascii_classes {
            let key = self.move_key(&stacks, rep)?;
            if key == unchanged || key.iter().all(|&k| k == u32::MAX) {
                continue;
            }
            match groups.iter_mut().find(|g| g.0 == key) {
                Some(g) => g.1 |= bytes,
                None => groups.push((key, bytes)),
            }
        }
        let Some((key, bytes)) = groups.into_iter().max_by_key(|g| g.1.count_ones()) else {
            return Some(CountingStep::NONE);
        };
        if bytes.count_ones() < 32 {
            return Some(CountingStep::NONE);
        }
        let next = self.target(&stacks, bytes.trailing_zeros() as u8);
        if next == DEAD {
            return Some(CountingStep::NONE);
        }
        if next == state {
            return None; // a loop after all: the rows tell
        }
        let chars = self.move_key(&stacks, 0x7F) == Some(key)
            && stacks.iter().zip(key).all(|(s, to)| {
                let top = s.last().expect("stacks are never empty");
                let rule = &*self.rules[top.rule as usize];
                if to == u32::MAX {
                    return (0xC2..=0xF4).all(|b| Automaton::next(rule, super::StateId(top.state), b).is_none());
                }
                let info = &self.info[top.rule as usize];
                let inside_ok = |m: u32| info.get(m as usize).is_some_and(|i| i.calls.is_empty() && !i.accepting);
                utf8_chars_lead_to(rule, &self.walk_classes, top.state, to, false, &inside_ok)
            });
        Some(CountingStep { bytes, next, chars })
    }

    /// See [`ByteAutomaton::body_closure_bound`]. For a state of one stack, the closure runs on
    /// the rule DFA on top (once per rule state and depth), when no state it meets calls or
    /// returns and none inside a character accepts: then the network's states there are that
    /// stack with its top moved, at the top's rule distance plus the frames' below. Below the
    /// caps as [`Recursive::body_char_step`] is, for the same reason.
    pub fn body_closure_bound(&self, state: u32, cap: usize) -> Option<u32> {
        let stack = self.lone_stack(state)?;
        let (top, below) = stack.split_last()?;
        let levels = (self.max_depth - stack.len()).min(self.dist.len() - 1);
        let key = (*top, levels as u32, cap as u32, below.is_empty());
        let known = self.interned.read().unwrap().body_bounds.get(&key).copied();
        let top_bound = match known {
            Some(b) => b,
            None => {
                let info = &self.info[top.rule as usize];
                let dist = &self.dist[levels][top.rule as usize];
                let inside_ok = |m: u32| info.get(m as usize).is_some_and(|i| i.calls.is_empty() && !i.accepting);
                let settled_dist = |q: u32| {
                    let i = info.get(q as usize)?;
                    let d = dist[q as usize];
                    (i.calls.is_empty() && (!i.accepting || below.is_empty()) && d != u32::MAX).then_some(d)
                };
                let reached =
                    body_closure(&*self.rules[top.rule as usize], &self.walk_classes, top.state, cap, &inside_ok);
                let b = reached
                    .as_ref()
                    .and_then(|r| r.iter().map(|&q| settled_dist(q)).try_fold(0, |m, d| d.map(|d| m.max(d))));
                let mut interned = self.interned.write().unwrap();
                interned.body_bounds.insert(key, b);
                // the states reached lead to fewer: the bound holds for them too
                for &q in reached.iter().flatten().filter(|_| b.is_some()) {
                    interned.body_bounds.entry((Frame { state: q, ..*top }, key.1, key.2, key.3)).or_insert(b);
                }
                b
            }
        }?;
        Some(self.stack_dist(below).saturating_add(top_bound))
    }

    /// The one stack of `state`, when it has one and the interned states are well below the
    /// caps (see [`Recursive::body_char_step`]).
    fn lone_stack(&self, state: u32) -> Option<Stack> {
        let interned = self.interned.read().unwrap();
        let node = interned.nodes.get(state as usize)?;
        (node.stacks.len() == 1 && interned.nodes.len() < MAX_STATES / 2 && interned.frames < MAX_FRAMES / 4)
            .then(|| node.stacks[0].clone())
    }

    /// All stacks reachable from `seeds` without consuming a byte (calls and returns), keeping
    /// those that can consume a byte or accept the whole output.
    ///
    /// Best-first by distance to acceptance (a call never lowers it, a return keeps it; ties
    /// depth-first): when a cap cuts the closure short, the stack that realises the distance
    /// is already kept, so every byte along a shortest path lowers the distance by one.
    fn close(&self, seeds: Vec<Stack>) -> Vec<Stack> {
        // Most bytes stay inside one rule where no call opens and no frame returns (a string
        // body, a number): then the closure is the seeds themselves, without the search.
        let settled = |s: &Stack| {
            let info = self.info_of(s);
            (info.calls.is_empty() || s.len() >= self.max_depth) && !(info.accepting && s.len() > 1)
        };
        if seeds.len() <= MAX_STACKS && seeds.iter().all(settled) {
            let mut out = seeds;
            out.retain(|s| {
                let info = self.info_of(s);
                info.has_bytes || (info.accepting && s.len() == 1)
            });
            out.sort_unstable();
            out.dedup();
            return out;
        }
        let mut seen: Set<Stack> = Set::default();
        let mut work = BinaryHeap::new();
        let mut pushed: u64 = 0;
        let mut push = |work: &mut BinaryHeap<_>, s: Stack| {
            pushed += 1;
            work.push((Reverse(self.stack_dist(&s)), pushed, s));
        };
        for s in seeds {
            push(&mut work, s);
        }
        let mut out = Vec::new();
        let mut last = 0;
        while let Some((Reverse(d), _, s)) = work.pop() {
            debug_assert!(d >= last, "closure distances must not fall");
            last = d;
            if seen.contains(&s) {
                continue;
            }
            let info = self.info_of(&s);
            if s.len() < self.max_depth {
                for &(callee, ret) in &info.calls {
                    let mut t = s.clone();
                    t.last_mut().unwrap().state = ret;
                    t.push(Frame { rule: callee, state: Automaton::start(&self.rules[callee as usize]).0 });
                    push(&mut work, t);
                }
            }
            if info.accepting && s.len() > 1 {
                let mut t = s.clone();
                t.pop();
                push(&mut work, t);
            }
            if info.has_bytes || (info.accepting && s.len() == 1) {
                out.push(s.clone());
                if out.len() >= MAX_CLOSURE {
                    break;
                }
            }
            seen.insert(s);
        }
        // Visited nearest first, so the first stacks are those to keep.
        out.truncate(MAX_STACKS);
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Where byte `rep` moves the top frames of `stacks`, as a key: bytes with equal keys move
    /// every top frame to the same rule state, and the step depends on nothing else, so they
    /// lead to the same state. `None` past [`KEYED_STACKS`] stacks.
    fn move_key(&self, stacks: &[Stack], rep: u8) -> Option<MoveKey> {
        if stacks.len() > KEYED_STACKS {
            return None;
        }
        let mut key = [u32::MAX; KEYED_STACKS];
        for (k, s) in key.iter_mut().zip(stacks) {
            let top = s.last().expect("stacks are never empty");
            *k = Automaton::next(&self.rules[top.rule as usize], super::StateId(top.state), rep)
                .map_or(u32::MAX, |t| t.0);
        }
        Some(key)
    }

    /// The state after `stacks` step on `byte` (a non-call byte), or `DEAD`.
    fn target(&self, stacks: &[Stack], byte: u8) -> u32 {
        let next = self.step(stacks, byte);
        let id = if next.is_empty() { DEAD } else { self.intern(next) };
        if id != DEAD && self.min_bytes_to_accept(id) == u32::MAX {
            DEAD
        } else {
            id
        }
    }

    /// What the rule state on top of `stack` does.
    fn info_of(&self, stack: &Stack) -> &StateInfo {
        let top = stack.last().expect("stacks are never empty");
        &self.info[top.rule as usize][top.state as usize]
    }

    /// Fewest bytes to accept the whole output from `stack`, given the depth bound.
    fn stack_dist(&self, stack: &[Frame]) -> u32 {
        let mut total: u32 = 0;
        for (i, f) in stack.iter().enumerate() {
            let levels = (self.max_depth - i - 1).min(self.dist.len() - 1);
            let d = self.dist[levels][f.rule as usize][f.state as usize];
            total = total.saturating_add(d);
        }
        total
    }

    fn intern(&self, stacks: Vec<Stack>) -> u32 {
        let mut key = Stacks::new(stacks);
        let frames_before = {
            let interned = self.interned.read().unwrap();
            if let Some(&id) = interned.ids.get(&key) {
                return id;
            }
            interned.frames
        };
        // Past half the frame budget, a new state keeps only its nearest stack (the shorter on
        // a tie, so an accepting root frame wins): a narrowing that keeps its distance, so the
        // budget guarantee holds on while memory grows by one stack a state.
        if key.stacks.len() > 1 && frames_before + frames_of(&key.stacks) > MAX_FRAMES / 2 {
            let nearest = key.stacks.into_iter().min_by_key(|s| (self.stack_dist(s), s.len()));
            key = Stacks::new(nearest.into_iter().collect());
        }
        let stacks = &key.stacks;
        let accepting =
            stacks.iter().any(|s| s.len() == 1 && self.info[s[0].rule as usize][s[0].state as usize].accepting);
        let dist = stacks.iter().map(|s| self.stack_dist(s)).min().unwrap_or(u32::MAX);
        let frames = frames_of(stacks);
        let mut interned = self.interned.write().unwrap();
        if let Some(&id) = interned.ids.get(&key) {
            return id;
        }
        if interned.nodes.len() >= MAX_STATES || interned.frames + frames > MAX_FRAMES {
            return DEAD;
        }
        interned.frames += frames;
        let id = interned.nodes.len() as u32;
        let row = vec![UNKNOWN; self.class_rep.len()];
        interned.nodes.push(Node { stacks: Arc::new(key.stacks.clone()), accepting, dist, row, moved: Vec::new() });
        interned.ids.insert(key, id);
        id
    }

    fn step(&self, stacks: &[Stack], byte: u8) -> Vec<Stack> {
        let mut seeds = Vec::new();
        for s in stacks {
            let top = *s.last().unwrap();
            if let Some(t) = Automaton::next(&self.rules[top.rule as usize], super::StateId(top.state), byte) {
                let mut n = s.clone();
                n.last_mut().unwrap().state = t.0;
                seeds.push(n);
            }
        }
        self.close(seeds)
    }
}

/// A state's stacks as a map key that carries its hash: growing the map then rehashes a word
/// per state, not every frame of every state.
#[derive(PartialEq, Eq)]
struct Stacks {
    hash: u64,
    stacks: Vec<Stack>,
}

impl Stacks {
    fn new(stacks: Vec<Stack>) -> Stacks {
        use std::hash::BuildHasher;
        Stacks { hash: FastU32::default().hash_one(&stacks), stacks }
    }
}

impl std::hash::Hash for Stacks {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

fn frames_of(stacks: &[Stack]) -> usize {
    stacks.iter().map(Vec::len).sum()
}

/// Every state of `rule` reachable from its start, with its calls and flags, by state id.
fn explore(rule: &Automaton, n_rules: usize) -> Vec<StateInfo> {
    let reps: Vec<u8> = CALL_BYTES.iter().copied().chain(text_reps(rule)).collect();
    let mut info = vec![StateInfo::default(); rule.state_count() + 1];
    let start = rule.start().0;
    let mut order = vec![start];
    info[start as usize].reached = true;
    let mut i = 0;
    while i < order.len() {
        let s = order[i];
        i += 1;
        let mut entry =
            StateInfo { reached: true, accepting: rule.is_accepting(super::StateId(s)), ..Default::default() };
        let mut targets = Vec::new();
        for &b in &reps {
            let Some(t) = rule.next(super::StateId(s), b) else { continue };
            match call_base(b) {
                // `t` is between the two bytes of a call: the index byte names the callee.
                Some(base) => {
                    for i in 0..=255u8 {
                        let callee = base + i as usize;
                        if let (Some(ret), true) = (rule.next(t, i), callee < n_rules) {
                            entry.calls.push((callee as u32, ret.0));
                            targets.push(ret.0);
                        }
                    }
                }
                None => {
                    entry.has_bytes = true;
                    targets.push(t.0);
                }
            }
        }
        for t in targets {
            if !info[t as usize].reached {
                info[t as usize].reached = true;
                order.push(t);
            }
        }
        info[s as usize] = entry;
    }
    info
}

/// One byte of each of `rule`'s byte classes, call bytes left out.
fn text_reps(rule: &Automaton) -> Vec<u8> {
    let classes = ByteAutomaton::byte_classes(rule);
    let mut seen = [false; 256];
    (0..=255u8)
        .filter(|&b| call_base(b).is_none() && !std::mem::replace(&mut seen[classes[b as usize] as usize], true))
        .collect()
}

/// `dist[k][rule][state]` for `k` in `0..max_depth`, by Dijkstra backwards from accepting
/// states; a call edge costs the callee's distance with one level fewer. Stops where a level
/// equals the one before: all further levels are equal too.
fn distances(rules: &[Arc<Automaton>], info: &[Vec<StateInfo>], max_depth: usize) -> Vec<Vec<Vec<u32>>> {
    // Reverse edges per rule: (to, from, callee or None for a byte).
    let mut rev: Vec<Vec<Vec<(u32, Option<u32>)>>> = Vec::new();
    for (r, rule) in rules.iter().map(|r| &**r).enumerate() {
        let n = info[r].len();
        let mut edges = vec![Vec::new(); n];
        let reps = text_reps(rule);
        for (s, si) in info[r].iter().enumerate().filter(|(_, si)| si.reached) {
            for &b in &reps {
                if let Some(t) = rule.next(super::StateId(s as u32), b) {
                    edges[t.0 as usize].push((s as u32, None));
                }
            }
            for &(callee, t) in &si.calls {
                edges[t as usize].push((s as u32, Some(callee)));
            }
        }
        rev.push(edges);
    }
    let mut all: Vec<Vec<Vec<u32>>> = Vec::new();
    for k in 0..max_depth {
        if k >= 2 && all[k - 1] == all[k - 2] {
            all.pop(); // converged: more levels change nothing (see `level`)
            break;
        }
        let call_cost = |callee: u32| -> u32 {
            if k == 0 {
                return u32::MAX;
            }
            let c = callee as usize;
            all[k - 1][c][Automaton::start(&rules[c]).0 as usize]
        };
        let mut level = Vec::with_capacity(rules.len());
        for r in 0..rules.len() {
            let mut d = vec![u32::MAX; info[r].len()];
            let mut heap = std::collections::BinaryHeap::new();
            for (s, si) in info[r].iter().enumerate() {
                if si.accepting {
                    d[s] = 0;
                    heap.push(std::cmp::Reverse((0u32, s as u32)));
                }
            }
            while let Some(std::cmp::Reverse((du, u))) = heap.pop() {
                if du > d[u as usize] {
                    continue;
                }
                for &(from, callee) in &rev[r][u as usize] {
                    let cost = match callee {
                        None => 1,
                        Some(c) => call_cost(c),
                    };
                    let nd = du.saturating_add(cost);
                    if nd < d[from as usize] {
                        d[from as usize] = nd;
                        heap.push(std::cmp::Reverse((nd, from)));
                    }
                }
            }
            level.push(d);
        }
        all.push(level);
    }
    all
}

/// The coarsest byte classes that refine every rule's classes, with each call byte alone.
fn joint_classes(rules: &[Arc<Automaton>]) -> ([u8; 256], Vec<u8>) {
    let per_rule: Vec<[u8; 256]> = rules.iter().map(ByteAutomaton::byte_classes).collect();
    let mut ids: HashMap<Vec<u16>, u8> = HashMap::new();
    let mut classes = [0u8; 256];
    let mut reps = Vec::new();
    for b in 0..=255u8 {
        let mut key: Vec<u16> = per_rule.iter().map(|c| c[b as usize] as u16).collect();
        key.push(if call_base(b).is_some() { 256 + b as u16 } else { 0 });
        let next = ids.len() as u8;
        let id = *ids.entry(key).or_insert_with(|| {
            reps.push(b);
            next
        });
        classes[b as usize] = id;
    }
    (classes, reps)
}

impl ByteAutomaton for Recursive {
    fn start(&self) -> u32 {
        0
    }

    fn next(&self, state: u32, byte: u8) -> Option<u32> {
        if call_base(byte).is_some() {
            return None;
        }
        {
            let interned = self.interned.read().unwrap();
            match interned.nodes.get(state as usize)?.row[self.classes[byte as usize] as usize] {
                DEAD => return None,
                UNKNOWN => {}
                id => return Some(id),
            }
        }
        let mut out = Vec::with_capacity(1);
        self.next_many(state, &[byte], &mut out);
        out[0]
    }

    /// One read lock, in which bytes whose move is known take its target, then each distinct
    /// move stepped once, then one write lock; a row that already holds every byte asked for
    /// costs the read lock alone.
    fn next_many(&self, state: u32, bytes: &[u8], out: &mut Vec<Option<u32>>) {
        out.clear();
        let mut ids = Vec::with_capacity(bytes.len());
        // (class, target) to write into the row; (index into `bytes`, move) still to step
        let mut found: Vec<(usize, u32)> = Vec::new();
        let mut misses: Vec<(usize, Option<MoveKey>)> = Vec::new();
        let stacks = {
            let interned = self.interned.read().unwrap();
            let Some(node) = interned.nodes.get(state as usize) else {
                out.resize(bytes.len(), None);
                return;
            };
            for (i, &b) in bytes.iter().enumerate() {
                let class = self.classes[b as usize] as usize;
                let id = if call_base(b).is_some() { DEAD } else { node.row[class] };
                if id != UNKNOWN {
                    ids.push(id);
                    continue;
                }
                let key = self.move_key(&node.stacks, b);
                match key.and_then(|k| node.moved.iter().find(|m| m.0 == k)) {
                    Some(&(_, t)) => {
                        ids.push(t);
                        found.push((class, t));
                    }
                    None => {
                        ids.push(UNKNOWN);
                        misses.push((i, key));
                    }
                }
            }
            if found.is_empty() && misses.is_empty() {
                out.extend(ids.iter().map(|&id| (id != DEAD).then_some(id)));
                return;
            }
            node.stacks.clone()
        };
        let mut new_moves: Vec<(MoveKey, u32)> = Vec::new();
        for (i, key) in misses {
            let t = match key.and_then(|k| new_moves.iter().find(|m| m.0 == k)) {
                Some(&(_, t)) => t,
                None => {
                    let t = self.target(&stacks, bytes[i]);
                    if let Some(k) = key {
                        new_moves.push((k, t));
                    }
                    t
                }
            };
            ids[i] = t;
            found.push((self.classes[bytes[i] as usize] as usize, t));
        }
        out.extend(ids.iter().map(|&id| (id != DEAD).then_some(id)));
        let mut interned = self.interned.write().unwrap();
        let node = &mut interned.nodes[state as usize];
        for (class, id) in found {
            node.row[class] = id;
        }
        let before = node.moved.len();
        for m in new_moves {
            // another thread may have stepped the same move meanwhile
            if !node.moved.iter().any(|k| k.0 == m.0) {
                node.moved.push(m);
            }
        }
        let added = node.moved.len() - before;
        interned.moves += added;
    }

    fn is_accepting(&self, state: u32) -> bool {
        self.interned.read().unwrap().nodes.get(state as usize).is_some_and(|n| n.accepting)
    }

    fn min_bytes_to_accept(&self, state: u32) -> u32 {
        self.interned.read().unwrap().nodes.get(state as usize).map_or(u32::MAX, |n| n.dist)
    }

    fn byte_classes(&self) -> [u8; 256] {
        self.classes
    }

    fn saturated(&self) -> bool {
        let interned = self.interned.read().unwrap();
        interned.nodes.len() > SATURATED_STATES || interned.frames > MAX_FRAMES / 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(rules: &[&str], depth: u32) -> Recursive {
        let limits = Limits::default();
        let rules = rules.iter().map(|r| Arc::new(rule_automaton(r, &limits).unwrap())).collect();
        Recursive::new(rules, depth).unwrap()
    }

    fn walk(n: &Recursive, text: &str) -> Option<u32> {
        let mut s = n.start();
        for &b in text.as_bytes() {
            s = n.next(s, b)?;
        }
        Some(s)
    }

    /// Balanced brackets: `S = ( "[" S* "]" )`, root `S+`.
    #[test]
    fn balanced_brackets_any_depth_up_to_the_bound() {
        let s = format!(r"\[(?:{})*\]", call(1));
        let n = net(&[&format!("(?:{})+", call(1)), &s], 10);
        assert!(n.accepts(b"[]"));
        assert!(n.accepts(b"[[][[]]][]"));
        assert!(n.accepts(b"[[[[[[[[[]]]]]]]]]")); // 9 levels + root frame = 10
        assert!(!n.accepts(b"[[[[[[[[[[]]]]]]]]]]")); // 10 levels: past the bound
        assert!(!n.accepts(b"[[]"));
        assert!(!n.accepts(b"[]]"));
        assert!(!n.accepts(b""));
        // Exact distances: "[[[" needs "]]]".
        let st = walk(&n, "[[[").unwrap();
        assert_eq!(n.min_bytes_to_accept(st), 3);
        assert!(!n.is_accepting(st));
        let st = walk(&n, "[[]]").unwrap();
        assert!(n.is_accepting(st));
        assert_eq!(n.min_bytes_to_accept(st), 0);
        // Call bytes are never steppable from outside.
        assert!(n.next(n.start(), 0xC0).is_none());
        // The same prefix gives the same state id.
        assert_eq!(walk(&n, "[[]["), walk(&n, "[[]["));
    }

    /// Bytes that move every stack's top frame alike reuse one step (`Recursive::move_key`);
    /// bytes that move it differently still lead to different states.
    #[test]
    fn bytes_that_move_alike_share_one_step() {
        let root = format!(r#"\[(?:"[a-z]*"|{})\]"#, call(1));
        let n = net(&[&root, "x"], 4);
        let st = walk(&n, "[\"").unwrap();
        let before = n.state_count();
        let letters: HashSet<u32> = (b'a'..=b'z').map(|b| n.next(st, b).unwrap()).collect();
        assert_eq!(letters.len(), 1);
        let close = n.next(st, b'"').unwrap();
        assert!(!letters.contains(&close));
        assert!((0..=255u8).filter(|b| !b.is_ascii_lowercase() && *b != b'"').all(|b| n.next(st, b).is_none()));
        assert!(n.state_count() <= before + 2, "{} new states", n.state_count() - before);
        assert!(n.accepts(b"[\"abc\"]") && n.accepts(b"[x]"));
        assert!(!n.accepts(b"[\"a1\"]") && !n.accepts(b"[\"x]"));
    }

    /// A whole row at once (`next_many`, what trie walks ask) agrees with `next` byte by byte,
    /// on a fresh network and on the one that answered the row.
    #[test]
    fn rows_at_once_agree_with_single_steps() {
        let root = format!(r#"\[(?:"[a-z\\]*"|{}|ü)*\]"#, call(1));
        let bytes: Vec<u8> = (0..=255).collect();
        for prefix in ["", "[", "[\"", "[\"ab", "[x", "[xx", "[ü"] {
            let (a, b) = (net(&[&root, r"x(?:\[x*\])?"], 4), net(&[&root, r"x(?:\[x*\])?"], 4));
            let (Some(sa), Some(sb)) = (walk(&a, prefix), walk(&b, prefix)) else { continue };
            let mut row = Vec::new();
            a.next_many(sa, &bytes, &mut row);
            let single: Vec<Option<u32>> = bytes.iter().map(|&x| b.next(sb, x)).collect();
            assert_eq!(row, single, "after {prefix:?}");
            let again: Vec<Option<u32>> = bytes.iter().map(|&x| a.next(sa, x)).collect();
            assert_eq!(row, again, "after {prefix:?}, asked again");
        }
    }

    /// The distance honours the depth bound: at the bound, the short way through a call is
    /// closed and the long literal is the only way out.
    #[test]
    fn distance_is_exact_at_the_depth_bound() {
        // A = "(" (A | "xxxxxxxx") ")" | "z"
        let a = format!(r"\((?:{}|x{{8}})\)|z", call(1));
        let n = net(&[&call(1), &a], 3);
        // One level open: the short way is a nested "z".
        let st = walk(&n, "(").unwrap();
        assert_eq!(n.min_bytes_to_accept(st), 2);
        // Root frame + 2 levels of A: no call can open, only the literal is left.
        let st = walk(&n, "((").unwrap();
        assert_eq!(n.min_bytes_to_accept(st), 8 + 2);
        assert!(walk(&n, "(((").is_none());
        assert!(!n.accepts(b"((z))"));
        assert!(n.accepts(b"(z)"));
        assert!(n.accepts(b"((xxxxxxxx))"));
    }

    /// Nullable calls and returns through several frames in one closure.
    #[test]
    fn nullable_rules_and_chained_returns() {
        // root = A "!" ; A = B? ; B = "b" A
        let n = net(&[&format!("{}!", call(1)), &format!("(?:{})?", call(2)), &format!("b{}", call(1))], 16);
        assert!(n.accepts(b"!"));
        assert!(n.accepts(b"bbb!"));
        assert!(!n.accepts(b"bb"));
        let st = walk(&n, "bb").unwrap();
        assert_eq!(n.min_bytes_to_accept(st), 1);
    }

    /// Calls past the first 256 rules use the next call byte.
    #[test]
    fn many_rules() {
        let n_rules = 300;
        let mut rules: Vec<String> = (0..n_rules - 1).map(|i| format!("(?:a{}|b)", call(i + 1))).collect();
        rules.push("c".into());
        let refs: Vec<&str> = rules.iter().map(String::as_str).collect();
        let n = net(&refs, 400);
        assert!(n.accepts(b"b"));
        assert!(n.accepts(format!("{}c", "a".repeat(n_rules - 1)).as_bytes()));
        assert!(n.accepts(format!("{}b", "a".repeat(270)).as_bytes()));
        assert!(!n.accepts(format!("{}c", "a".repeat(270)).as_bytes()));
        let st = walk(&n, &"a".repeat(280)).unwrap();
        assert_eq!(n.min_bytes_to_accept(st), 1);
    }

    /// Every nesting path is a state of its own: after many, the automaton asks for a fresh one.
    #[test]
    fn many_nesting_paths_saturate() {
        let s = format!(r"\((?:{c})*\)|\[(?:{c})*\]", c = call(0));
        let n = net(&[&s], 32);
        assert!(!n.saturated());
        for path in 0..1u32 << 15 {
            let text: String = (0..15).map(|i| if path >> i & 1 == 1 { '(' } else { '[' }).collect();
            assert!(walk(&n, &text).is_some());
        }
        assert!(n.state_count() > SATURATED_STATES);
        assert!(n.saturated());
    }

    /// A closure past [`MAX_CLOSURE`] stacks (two ways to open a call at each of 15 levels)
    /// still keeps the stack nearest acceptance: the byte after the root's "s" lowers the
    /// distance by exactly one, whichever branch the closure would otherwise visit first.
    #[test]
    fn capped_closure_keeps_the_nearest_stack() {
        const LEVELS: usize = 16;
        for short_first in [false, true] {
            // Rule 0 = "s" A1; A_k and B_k = A_{k+1} long | B_{k+1} short (or the other way);
            // A_16 = B_16 = "x". Rules: A_k = 2k - 1, B_k = 2k.
            let (first, second) = if short_first { ("b", "aaaa") } else { ("aaaa", "b") };
            let mut rules = vec![format!("s{}", call(1))];
            for k in 1..LEVELS {
                let body = format!("(?:{}{first}|{}{second})", call(2 * k + 1), call(2 * k + 2));
                rules.push(body.clone());
                rules.push(body);
            }
            rules.push("x".into());
            rules.push("x".into());
            let refs: Vec<&str> = rules.iter().map(String::as_str).collect();
            let n = net(&refs, 32);
            let start = n.min_bytes_to_accept(n.start());
            assert_eq!(start, 1 + 1 + (LEVELS as u32 - 1));
            let after = walk(&n, "s").unwrap();
            assert_eq!(n.min_bytes_to_accept(after), start - 1, "short_first {short_first}");
        }
    }

    #[test]
    fn left_recursion_terminates() {
        // A = A "a" | "a": every closure opens calls until the depth bound.
        let n = net(&[&call(1), &format!("(?:{}a|a)", call(1))], 8);
        assert!(n.accepts(b"a"));
        assert!(n.accepts(b"aaaa"));
        assert!(!n.accepts(b"aaaaaaaaaaaa"));
    }

    #[test]
    fn unsatisfiable_is_an_error() {
        let limits = Limits::default();
        let rules =
            [call(1), format!(r"\[{}\]", call(1))].map(|r| Arc::new(rule_automaton(&r, &limits).unwrap())).to_vec();
        assert!(matches!(Recursive::new(rules, 8), Err(FormatError::EmptyLanguage { .. })));
    }
}
