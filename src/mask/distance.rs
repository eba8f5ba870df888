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

use super::ByteAutomaton;
use crate::vocab::TokenTrie;

/// Trie nodes one state's walk may visit; past it the tokens found so far decide (still sound:
/// any token on a shortest path realises its `1 + T(end)`).
const WALK_NODES: usize = 50_000;

#[derive(Default)]
pub struct TokenDistance {
    memo: Mutex<HashMap<u32, u32>>,
}

impl TokenDistance {
    /// `T(state)`; `u32::MAX` when acceptance is unreachable.
    pub fn get(&self, automaton: &dyn ByteAutomaton, trie: &TokenTrie, state: u32) -> u32 {
        let mut memo = self.memo.lock().unwrap();
        if let Some(&t) = memo.get(&state) {
            return t;
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
            let next = successors.entry(q).or_insert_with(|| shortest_path_token_ends(automaton, trie, q));
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
fn shortest_path_token_ends(automaton: &dyn ByteAutomaton, trie: &TokenTrie, q: u32) -> Vec<u32> {
    let mut ends = Vec::new();
    let mut visited = 0;
    // Depth-first over trie nodes, each with the state before its byte.
    let mut frontier: Vec<(usize, u32)> = trie.children(0).map(|c| (c, q)).collect();
    while let Some((node, from)) = frontier.pop() {
        visited += 1;
        if visited > WALK_NODES {
            break;
        }
        let Some(to) = automaton.next(from, trie.byte(node)) else { continue };
        if automaton.min_bytes_to_accept(to) + 1 != automaton.min_bytes_to_accept(from) {
            continue;
        }
        if !trie.tokens_at(node).is_empty() && !ends.contains(&to) {
            ends.push(to);
        }
        frontier.extend(trie.children(node).map(|c| (c, to)));
    }
    ends
}
