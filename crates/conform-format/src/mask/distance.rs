//! How many tokens a state still needs to reach acceptance — the budget unit of closure.
//!
//! Counting bytes (`min_bytes_to_accept`) is a sound bound when every byte is a token, but a
//! loose one: `<tool_call>\n{"name": "` is 21 bytes and 4 tokens, so a byte count would cut the
//! model off long before it has to close. Here `T(q)` is the fewest tokens along the automaton's
//! shortest byte paths: walk the token trie from `q` following only bytes that bring acceptance
//! one byte closer, and take `1 + T(end)` over the tokens found. Every `T(q)` is realised by a
//! real token leading to a state with `T - 1`, so "allow a token only if `T(next) ≤ tokens left
//! after it`" keeps a complete output reachable at every step; and `T(q) ≤ bytes(q)` because
//! single-byte tokens lie on those paths too.

use std::collections::HashMap;
use std::sync::Mutex;

use super::walk::{Classes, LazyTable, DEAD, KEEP_ROWS};
use super::ByteAutomaton;
use crate::vocab::trie::packed;
use crate::vocab::TokenTrie;

/// Trie nodes one state's walk may visit; past it the tokens found so far decide (still sound:
/// any token on a shortest path realises its `1 + T(end)`).
const WALK_NODES: usize = 50_000;

#[derive(Default)]
pub struct TokenDistance {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    memo: HashMap<u32, u32>,
    /// The automaton flattened as far as these walks went, kept across calls.
    table: LazyTable,
    /// `min_bytes_to_accept` per dense index of `table` (`u32::MAX - 1` = not looked up yet).
    bytes: Vec<u32>,
    frontier: Vec<(u32, u32)>,
}

impl TokenDistance {
    /// `T(state)`; `u32::MAX` when acceptance is unreachable.
    pub(crate) fn get(&self, automaton: &dyn ByteAutomaton, classes: &Classes, trie: &TokenTrie, state: u32) -> u32 {
        let mut inner = self.inner.lock().unwrap();
        let Inner { memo, table, bytes: mb, frontier } = &mut *inner;
        if let Some(&t) = memo.get(&state) {
            return t;
        }
        if table.len() > KEEP_ROWS {
            table.clear();
            mb.clear();
        }
        // Successors have strictly fewer bytes to go, so this explicit-stack recursion ends.
        let mut successors: HashMap<u32, Vec<u32>> = HashMap::new();
        let mut stack = vec![state];
        while let Some(&q) = stack.last() {
            if memo.contains_key(&q) {
                stack.pop();
                continue;
            }
            let bytes = automaton.min_bytes_to_accept(q);
            if bytes == 0 || bytes == u32::MAX {
                memo.insert(q, bytes);
                stack.pop();
                continue;
            }
            let next = successors
                .entry(q)
                .or_insert_with(|| shortest_path_token_ends(automaton, classes, table, mb, frontier, trie, q));
            let missing: Vec<u32> = next.iter().copied().filter(|s| !memo.contains_key(s)).collect();
            if missing.is_empty() {
                let best = next.iter().map(|s| memo[s]).min().unwrap_or(u32::MAX);
                memo.insert(q, best.saturating_add(1));
                stack.pop();
            } else {
                stack.extend(missing);
            }
        }
        memo[&state]
    }
}

/// End states of the tokens whose every byte brings acceptance one byte closer from `q`.
///
/// Depth-first, last child first, counting every node taken off the frontier (the cut-off at
/// `WALK_NODES` depends on this order); steps through the flattened `table`.
fn shortest_path_token_ends(
    automaton: &dyn ByteAutomaton,
    classes: &Classes,
    table: &mut LazyTable,
    mb: &mut Vec<u32>,
    frontier: &mut Vec<(u32, u32)>,
    trie: &TokenTrie,
    q: u32,
) -> Vec<u32> {
    const UNKNOWN: u32 = u32::MAX - 1;
    let nodes = trie.packed();
    let mut bytes_of = |table: &LazyTable, off: u32| -> u32 {
        let i = LazyTable::index(off);
        if i >= mb.len() {
            mb.resize(table.len(), UNKNOWN);
        }
        if mb[i] == UNKNOWN {
            mb[i] = automaton.min_bytes_to_accept(table.state(off));
        }
        mb[i]
    };
    let push_children = |frontier: &mut Vec<(u32, u32)>, node: usize, off: u32| {
        let end = node + packed::subtree(nodes[node]);
        let mut c = node + 1;
        while c < end {
            frontier.push((c as u32, off));
            c += packed::subtree(nodes[c]);
        }
    };
    let mut ends = Vec::new();
    let mut visited = 0;
    frontier.clear();
    let q_off = table.intern(q);
    push_children(frontier, 0, q_off);
    while let Some((node, from)) = frontier.pop() {
        visited += 1;
        if visited > WALK_NODES {
            break;
        }
        let nd = nodes[node as usize];
        let to = table.step(automaton, classes, from, packed::byte(nd));
        if to == DEAD {
            continue;
        }
        if bytes_of(table, to).wrapping_add(1) != bytes_of(table, from) {
            continue;
        }
        if nd & packed::HAS_TOKENS != 0 {
            let s = table.state(to);
            if !ends.contains(&s) {
                ends.push(s);
            }
        }
        push_children(frontier, node as usize, to);
    }
    ends
}
