//! Token trie in the style of llguidance's toktrie: every distinct prefix of
//! every text token is one node; nodes are stored flat in DFS (pre-)order, so
//! a node's subtree is the contiguous range `[i, i + subtree_size(i))` and a
//! walk can skip a whole subtree on a dead byte with one addition.
//!
//! Node 0 is the root (empty prefix, no byte). Several token ids may end at
//! the same node (identical byte strings).

use super::Vocab;

#[derive(Debug, Clone)]
pub struct TokenTrie {
    /// Byte of each node (root: 0, meaningless).
    bytes: Vec<u8>,
    /// Depth of each node = length of its prefix (root: 0).
    depth: Vec<u16>,
    /// Number of nodes in the subtree rooted at each node, itself included.
    subtree: Vec<u32>,
    /// Tokens ending at node i: `node_tokens[tok_off[i]..tok_off[i+1]]`.
    tok_off: Vec<u32>,
    node_tokens: Vec<u32>,
    /// Hot-loop view of each node, one `u64`: see [`TokenTrie::packed`].
    packed: Vec<u64>,
    /// Bytes used in each node's subtree, see [`TokenTrie::subtree_bytes`].
    subtree_bytes: Vec<u128>,
    /// Lead bytes used in each node's subtree, see [`TokenTrie::subtree_leads`].
    subtree_leads: Vec<u64>,
    /// Depth of the deepest node in each node's subtree, see [`TokenTrie::subtree_depths`].
    subtree_depth: Vec<u16>,
    /// Every token of the trie as a bitset over ids, see [`TokenTrie::token_bits`].
    token_bits: Vec<u64>,
    n_vocab: usize,
    max_depth: usize,
    /// Added to every token offset: nonzero for [`BodySplit::rest`], whose tokens lie after
    /// the main trie's in the main trie's [`TokenTrie::node_tokens`].
    tok_base: u32,
    body: Option<Box<BodySplit>>,
}

/// The text tokens split for walks from states inside JSON-like strings: *body tokens* (whole
/// characters that a JSON string takes raw: printable ASCII but `"` and `\`, and every valid
/// multi-byte UTF-8 character but U+2028 and U+2029) in groups by first byte and length in
/// characters, and a trie of every other text token. Where every body character steps a state
/// alike after a first one (a string, counted or not, a map's key past its first character), a
/// group's fate depends on its tokens' length alone, so a walk takes it as a few ranges and walks
/// only the small trie below that first byte (llguidance's slices, specialised to the string
/// body).
#[derive(Debug, Clone)]
pub struct BodySplit {
    /// The trie of the text tokens that are not body tokens. Its token offsets point into the
    /// main trie's [`TokenTrie::node_tokens`] (its own list is empty).
    pub rest: TokenTrie,
    /// Body tokens by first byte, ascending.
    pub groups: Vec<BodyGroup>,
}

/// The body tokens that begin with one byte (see [`BodySplit`]).
#[derive(Debug, Clone)]
pub struct BodyGroup {
    /// The first byte (ASCII), or 0x80 for all that begin with a multi-byte character.
    pub first: u8,
    /// Tokens of `c` characters: `node_tokens()[len_start[c - 1]..len_start[c]]` of the main
    /// trie, for `c` in `1..len_start.len()`.
    pub len_start: Vec<u32>,
}

impl BodyGroup {
    /// The longest token of the group, in characters.
    pub fn max_chars(&self) -> usize {
        self.len_start.len() - 1
    }
}

/// Whether `c` is a character a JSON string body takes raw and [`BodySplit`] lists. Left out
/// besides `"` and `\`: 0x7F, which some string automata leave out, and U+2028 and U+2029,
/// which ECMA's `.` does.
fn is_body_char(c: char) -> bool {
    matches!(c, ' '..='~' if c != '"' && c != '\\') || c as u32 >= 0x80 && c != '\u{2028}' && c != '\u{2029}'
}

/// The bit of `byte` in a [`TokenTrie::subtree_bytes`] set: `byte` for ASCII below 0x7F,
/// 127 for 0x7F and every byte >= 0x80.
#[inline]
pub fn byte_bit(byte: u8) -> u128 {
    1u128 << byte.min(127)
}

/// The bit of `byte` in a [`TokenTrie::subtree_leads`] set: `byte - 0xC2` for the lead bytes
/// of UTF-8 characters (0xC2..=0xF4), [`LEAD_DEL`] for 0x7F, none for the other bytes.
#[inline]
pub fn lead_bit(byte: u8) -> u64 {
    match byte {
        0xC2..=0xF4 => 1 << (byte - 0xC2),
        0x7F => LEAD_DEL,
        _ => 0,
    }
}

/// The bit of 0x7F in a [`TokenTrie::subtree_leads`] set.
pub const LEAD_DEL: u64 = 1 << 51;

/// Fields of a [`TokenTrie::packed`] node.
pub mod packed {
    /// Bits 0..8: the node's byte.
    #[inline(always)]
    pub fn byte(n: u64) -> u8 {
        n as u8
    }
    /// Bits 8..24: the node's depth.
    #[inline(always)]
    pub fn depth(n: u64) -> usize {
        (n >> 8) as u16 as usize
    }
    /// Bit 24: some token ends at the node.
    pub const HAS_TOKENS: u64 = 1 << 24;
    /// Bit 25: for every token in the node's subtree, its bytes from the start of the
    /// character that holds this node's byte to its end are valid UTF-8 (whole characters
    /// only: no token there ends mid-character). That character starts
    /// [`char_back`] bytes before this node's byte.
    pub const UTF8_CLEAN: u64 = 1 << 25;
    /// Bit 29: like [`UTF8_CLEAN`], except that tokens may end inside their last character
    /// (valid UTF-8 up to a valid beginning of one more character), as byte-level BPE
    /// vocabularies' tokens of CJK text often do. Set on every [`UTF8_CLEAN`] node too.
    pub const UTF8_PREFIX: u64 = 1 << 29;
    /// Bit 30: like [`UTF8_CLEAN`], with none of those characters 0x7F, U+2028 or U+2029 (which
    /// string automata that take the rest of Unicode may leave out: ECMA's `.`, JSON strings
    /// without DEL).
    pub const UTF8_TEXT: u64 = 1 << 30;
    /// Bits 26..28 of a [`UTF8_PREFIX`] node: how many bytes before the node's own byte its
    /// character starts (0 for an ASCII or lead byte, 1..=3 for a continuation byte).
    #[inline(always)]
    pub fn char_back(n: u64) -> usize {
        (n >> 26) as usize & 3
    }
    /// Bits 32..64: the subtree size.
    #[inline(always)]
    pub fn subtree(n: u64) -> usize {
        (n >> 32) as usize
    }
}

impl TokenTrie {
    pub fn new(vocab: &Vocab) -> TokenTrie {
        let ids: Vec<u32> = (0..vocab.len() as u32).filter(|&i| vocab.is_text(i)).collect();
        let mut t = TokenTrie::build(vocab, ids.clone(), 0);
        // body tokens by (first byte, characters, id), the rest in a trie of their own
        let chars = |id: u32| {
            let s = std::str::from_utf8(vocab.token_bytes(id)).ok()?;
            s.chars().all(is_body_char).then(|| s.chars().count())
        };
        let mut body: Vec<(u8, usize, u32)> = Vec::new();
        let mut rest_ids = Vec::new();
        for id in ids {
            match chars(id) {
                Some(c) => body.push((vocab.token_bytes(id)[0].min(0x80), c, id)),
                None => rest_ids.push(id),
            }
        }
        body.sort_unstable();
        let mut rest = TokenTrie::build(vocab, rest_ids, t.node_tokens.len() as u32);
        t.node_tokens.append(&mut rest.node_tokens);
        let mut groups = Vec::new();
        for group in body.chunk_by(|x, y| x.0 == y.0) {
            // sorted by length: tokens of at most c characters are a prefix of the group
            let base = t.node_tokens.len() as u32;
            t.node_tokens.extend(group.iter().map(|&(_, _, id)| id));
            let len_start =
                (0..=group.last().unwrap().1).map(|c| base + group.partition_point(|x| x.1 <= c) as u32).collect();
            groups.push(BodyGroup { first: group[0].0, len_start });
        }
        t.body = Some(Box::new(BodySplit { rest, groups }));
        t
    }

    /// The trie of the text tokens `ids`, its token offsets starting at `tok_base`.
    fn build(vocab: &Vocab, mut ids: Vec<u32>, tok_base: u32) -> TokenTrie {
        ids.sort_by(|&a, &b| vocab.token_bytes(a).cmp(vocab.token_bytes(b)).then(a.cmp(&b)));
        let cap = ids.len() * 2 + 1;
        let mut t = TokenTrie {
            bytes: Vec::with_capacity(cap),
            depth: Vec::with_capacity(cap),
            subtree: Vec::with_capacity(cap),
            tok_off: Vec::with_capacity(cap + 1),
            packed: Vec::new(),
            subtree_bytes: Vec::new(),
            subtree_leads: Vec::new(),
            subtree_depth: Vec::new(),
            token_bits: vec![0; vocab.len().div_ceil(64)],
            node_tokens: Vec::with_capacity(ids.len()),
            n_vocab: vocab.len(),
            max_depth: 0,
            tok_base,
            body: None,
        };
        // root
        t.push_node(0, 0);
        // stack[d] = node index of the current path at depth d
        let mut stack: Vec<u32> = vec![0];
        let mut prev: &[u8] = &[];
        // per node: see packed::UTF8_CLEAN and packed::char_back
        let mut clean: Vec<bool> = Vec::with_capacity(cap);
        let mut text: Vec<bool> = Vec::with_capacity(cap);
        let mut prefix: Vec<bool> = Vec::with_capacity(cap);
        let mut back: Vec<u8> = Vec::with_capacity(cap);
        clean.push(true);
        text.push(true);
        prefix.push(true);
        back.push(0);
        let mut valid_from: Vec<bool> = Vec::new();
        let mut text_from: Vec<bool> = Vec::new();
        let mut prefix_from: Vec<bool> = Vec::new();
        for &id in &ids {
            let b = vocab.token_bytes(id);
            assert!(b.len() < u16::MAX as usize, "token {id} is too long for the trie");
            let lcp = prev.iter().zip(b.iter()).take_while(|(x, y)| x == y).count();
            // close nodes deeper than lcp
            while stack.len() > lcp + 1 {
                let n = stack.pop().unwrap() as usize;
                t.subtree[n] = (t.bytes.len() - n) as u32;
            }
            for (d, &byte) in b.iter().enumerate().skip(lcp) {
                let n = t.push_node(byte, d + 1);
                stack.push(n);
                clean.push(true);
                text.push(true);
                prefix.push(true);
                back.push(0);
            }
            // valid_from[k]: b[k..] is valid UTF-8; the node at depth d starts at byte d - 1
            valid_from.clear();
            valid_from.resize(b.len() + 1, false);
            valid_from[b.len()] = true;
            // prefix_from[k]: the same, or so but for an incomplete last character
            prefix_from.clear();
            prefix_from.resize(b.len() + 1, false);
            prefix_from[b.len()] = true;
            // text_from[k]: valid, without 0x7F, U+2028 or U+2029
            text_from.clear();
            text_from.resize(b.len() + 1, false);
            text_from[b.len()] = true;
            for k in (0..b.len()).rev() {
                let n = utf8_len(b[k]);
                let whole_char = n > 0 && k + n <= b.len() && std::str::from_utf8(&b[k..k + n]).is_ok();
                valid_from[k] = whole_char && valid_from[k + n];
                text_from[k] =
                    whole_char && !matches!(&b[k..k + n], [0x7F] | [0xE2, 0x80, 0xA8 | 0xA9]) && text_from[k + n];
                prefix_from[k] = whole_char && prefix_from[k + n] || is_utf8_prefix(&b[k..]);
            }
            // the node at depth d holds byte d - 1; its character starts at the nearest
            // non-continuation byte at or before it (a continuation byte further than 3 back,
            // or with none before it, is invalid: valid_from is false there)
            let mut start = 0usize;
            for d in 1..=b.len() {
                if b[d - 1] & 0xC0 != 0x80 || d - 1 - start > 3 {
                    start = d - 1;
                }
                let n = stack[d] as usize;
                clean[n] &= valid_from[start];
                text[n] &= text_from[start];
                prefix[n] &= prefix_from[start];
                back[n] = (d - 1 - start) as u8;
            }
            // The token ends at the deepest node on the stack, which is the
            // most recently created node (sorted order guarantees it).
            debug_assert_eq!(*stack.last().unwrap() as usize, t.bytes.len() - 1);
            t.node_tokens.push(id);
            t.token_bits[id as usize / 64] |= 1 << (id % 64);
            t.max_depth = t.max_depth.max(b.len());
            prev = b;
        }
        while let Some(n) = stack.pop() {
            let n = n as usize;
            t.subtree[n] = (t.bytes.len() - n) as u32;
        }
        t.tok_off.push(t.node_tokens.len() as u32 + tok_base);
        t.bytes.shrink_to_fit();
        t.depth.shrink_to_fit();
        t.subtree.shrink_to_fit();
        t.tok_off.shrink_to_fit();
        assert!(t.bytes.len() <= u32::MAX as usize, "trie too large");
        t.packed = (0..t.bytes.len())
            .map(|i| {
                let has = if t.tok_off[i] != t.tok_off[i + 1] { packed::HAS_TOKENS } else { 0 };
                // a clean node is a prefix node too (valid UTF-8 is a valid prefix)
                let utf8 = match (i > 0 && clean[i], i > 0 && prefix[i]) {
                    (true, _) => packed::UTF8_CLEAN | packed::UTF8_PREFIX | (back[i] as u64) << 26,
                    (false, true) => packed::UTF8_PREFIX | (back[i] as u64) << 26,
                    (false, false) => 0,
                } | if i > 0 && text[i] { packed::UTF8_TEXT } else { 0 };
                t.bytes[i] as u64 | (t.depth[i] as u64) << 8 | has | utf8 | (t.subtree[i] as u64) << 32
            })
            .collect();
        // OR each node's set into its parent's; in DFS order the parent of node i is the
        // nearest earlier node one level up, found with a stack of the current path.
        let n = t.bytes.len();
        let mut parent = vec![0u32; n];
        let mut path: Vec<u32> = vec![0];
        for i in 1..n {
            let d = t.depth[i] as usize;
            path.truncate(d);
            parent[i] = path[d - 1];
            path.push(i as u32);
        }
        t.subtree_bytes = vec![0u128; n];
        t.subtree_leads = vec![0u64; n];
        t.subtree_depth = t.depth.clone();
        for i in (1..n).rev() {
            let own = t.subtree_bytes[i] | byte_bit(t.bytes[i]);
            t.subtree_bytes[i] = own;
            t.subtree_bytes[parent[i] as usize] |= own;
            let leads = t.subtree_leads[i] | lead_bit(t.bytes[i]);
            t.subtree_leads[i] = leads;
            t.subtree_leads[parent[i] as usize] |= leads;
            let deepest = t.subtree_depth[i];
            let p = &mut t.subtree_depth[parent[i] as usize];
            *p = (*p).max(deepest);
        }
        t
    }

    /// The bytes of every node in the subtree of `node` (its own byte included), as a set
    /// over 128 bits: bit `b` for an ASCII byte `b`, and bit 127 for 0x7F and every byte
    /// >= 0x80 (see [`byte_bit`]).
    #[inline]
    pub fn subtree_bytes(&self) -> &[u128] {
        &self.subtree_bytes
    }

    /// The lead bytes of UTF-8 characters (and 0x7F) among the bytes of every node in the
    /// subtree of `node` (its own byte included), as a set over [`lead_bit`]s: which kinds of
    /// characters its tokens hold, where [`TokenTrie::subtree_bytes`] only says "some".
    #[inline]
    pub fn subtree_leads(&self) -> &[u64] {
        &self.subtree_leads
    }

    /// The depth of the deepest node in the subtree of `node` (its own included): a token
    /// below `node` is at most this many bytes long.
    #[inline]
    pub fn subtree_depths(&self) -> &[u16] {
        &self.subtree_depth
    }

    /// The ids of every token in the trie (the vocabulary's text tokens) as 64-bit words,
    /// bit `i % 64` of word `i / 64` for id `i`: the start of a mask built by removal.
    #[inline]
    pub fn token_bits(&self) -> &[u64] {
        &self.token_bits
    }

    /// Every node as one `u64` (byte, depth, has-tokens flag, subtree size; read with the
    /// functions of [`packed`]), so a walk's hot loop touches one array.
    #[inline]
    pub fn packed(&self) -> &[u64] {
        &self.packed
    }

    /// Offsets into [`TokenTrie::node_tokens`]: the tokens of node `i` are
    /// `node_tokens()[tok_offsets()[i]..tok_offsets()[i + 1]]`, so those of a subtree
    /// `[i, j)` are `node_tokens()[tok_offsets()[i]..tok_offsets()[j]]`.
    #[inline]
    pub fn tok_offsets(&self) -> &[u32] {
        &self.tok_off
    }

    /// All token ids in node (DFS) order, then those of [`BodySplit`] (the rest trie's in its
    /// node order, the body tokens by length), so that one list resolves the token ranges of
    /// walks over either trie.
    #[inline]
    pub fn node_tokens(&self) -> &[u32] {
        &self.node_tokens
    }

    /// The text tokens split into body tokens and the rest (see [`BodySplit`]); `None` on the
    /// rest trie itself.
    pub fn body_split(&self) -> Option<&BodySplit> {
        self.body.as_deref()
    }

    /// Number of text tokens (the first entries of [`TokenTrie::node_tokens`]).
    pub fn n_text(&self) -> usize {
        self.tok_off.last().map_or(0, |&o| (o - self.tok_base) as usize)
    }

    fn push_node(&mut self, byte: u8, depth: usize) -> u32 {
        let n = self.bytes.len() as u32;
        self.bytes.push(byte);
        self.depth.push(depth as u16);
        self.subtree.push(1);
        self.tok_off.push(self.node_tokens.len() as u32 + self.tok_base);
        n
    }

    /// Number of nodes, root included.
    pub fn num_nodes(&self) -> usize {
        self.bytes.len()
    }

    /// Vocabulary size (token ids) this trie was built for.
    pub fn n_vocab(&self) -> usize {
        self.n_vocab
    }

    /// Length of the longest token.
    pub fn max_depth(&self) -> usize {
        self.max_depth
    }

    #[inline]
    pub fn byte(&self, node: usize) -> u8 {
        self.bytes[node]
    }

    #[inline]
    pub fn depth(&self, node: usize) -> usize {
        self.depth[node] as usize
    }

    #[inline]
    pub fn subtree_size(&self, node: usize) -> usize {
        self.subtree[node] as usize
    }

    /// Token ids whose bytes are exactly the prefix of `node` (not on [`BodySplit::rest`],
    /// whose offsets resolve through the main trie's [`TokenTrie::node_tokens`]).
    #[inline]
    pub fn tokens_at(&self, node: usize) -> &[u32] {
        &self.node_tokens[self.tok_off[node] as usize..self.tok_off[node + 1] as usize]
    }

    /// Node whose prefix is exactly `bytes` (the root for `b""`), if any.
    pub fn find(&self, bytes: &[u8]) -> Option<usize> {
        let mut node = 0usize;
        for &b in bytes {
            let end = node + self.subtree_size(node);
            let mut c = node + 1;
            let mut found = None;
            while c < end {
                if self.bytes[c] == b {
                    found = Some(c);
                    break;
                }
                c += self.subtree_size(c);
            }
            node = found?;
        }
        Some(node)
    }

    /// Visit the children of `node`: `(child_index, byte)`.
    pub fn children(&self, node: usize) -> impl Iterator<Item = usize> + '_ {
        let end = node + self.subtree_size(node);
        let mut c = node + 1;
        std::iter::from_fn(move || {
            if c < end {
                let r = c;
                c += self.subtree_size(c);
                Some(r)
            } else {
                None
            }
        })
    }

    /// Generic pruned walk of the subtree below `root` (excluding `root`
    /// itself), carrying a state per depth. `step(parent_state, byte)` returns
    /// the child's state or `None` to skip the child's whole subtree;
    /// `visit(node, &state)` is called for every live node and returns `false`
    /// to stop the walk early. Returns false if stopped early.
    pub fn walk<S: Clone>(
        &self,
        root: usize,
        root_state: S,
        mut step: impl FnMut(&S, u8) -> Option<S>,
        mut visit: impl FnMut(usize, &S) -> bool,
    ) -> bool {
        let base = self.depth(root);
        let end = root + self.subtree_size(root);
        let mut stack: Vec<S> = Vec::with_capacity(self.max_depth + 1 - base);
        stack.push(root_state);
        let mut i = root + 1;
        while i < end {
            let d = self.depth(i) - base; // >= 1
            stack.truncate(d);
            match step(&stack[d - 1], self.bytes[i]) {
                None => i += self.subtree_size(i),
                Some(s) => {
                    if !visit(i, &s) {
                        return false;
                    }
                    stack.push(s);
                    i += 1;
                }
            }
        }
        true
    }
}

/// Bytes of the UTF-8 character a lead byte starts (0 for a continuation or invalid byte).
fn utf8_len(lead: u8) -> usize {
    match lead {
        0x00..=0x7F => 1,
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 0,
    }
}

/// Whether `b` is the beginning, one byte or more but not all, of a valid UTF-8 character.
fn is_utf8_prefix(b: &[u8]) -> bool {
    let n = utf8_len(b.first().copied().unwrap_or(0x80));
    if n < 2 || b.len() >= n {
        return false;
    }
    // the second byte's range depends on the lead (no overlongs, surrogates or > U+10FFFF)
    let (lo, hi) = match b[0] {
        0xE0 => (0xA0, 0xBF),
        0xED => (0x80, 0x9F),
        0xF0 => (0x90, 0xBF),
        0xF4 => (0x80, 0x8F),
        _ => (0x80, 0xBF),
    };
    b.iter().enumerate().skip(1).all(|(i, &x)| if i == 1 { (lo..=hi).contains(&x) } else { x & 0xC0 == 0x80 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(words: &[&str]) -> Vocab {
        Vocab::from_token_bytes(
            words.iter().map(|w| if w.is_empty() { None } else { Some(w.as_bytes().to_vec()) }).collect(),
            vec![],
        )
    }

    #[test]
    fn utf8_clean() {
        let v = Vocab::from_token_bytes(
            vec![
                Some("é".into()),
                Some(vec![0xC3]),
                Some("aé".into()),
                Some("aéb".into()),
                Some(vec![b'b', 0xE4, 0xB8]),
                Some("b".into()),
                Some("bx".into()),
            ],
            vec![],
        );
        let t = TokenTrie::new(&v);
        let clean = |s: &[u8]| t.packed()[t.find(s).unwrap()] & packed::UTF8_CLEAN != 0;
        assert!(!clean(&[0xC3])); // token C3 ends mid-character
        assert!(clean(&[0xC3, 0xA9])); // only "é" below
        assert_eq!(packed::char_back(t.packed()[t.find(&[0xC3, 0xA9]).unwrap()]), 1);
        assert!(clean(b"a"));
        assert!(clean(&[b'a', 0xC3])); // "é", "éb" from here
        assert!(clean("a\u{e9}".as_bytes()));
        assert_eq!(packed::char_back(t.packed()[t.find("a\u{e9}".as_bytes()).unwrap()]), 1);
        assert_eq!(packed::char_back(t.packed()[t.find(&[b'a', 0xC3]).unwrap()]), 0);
        assert!(clean("a\u{e9}b".as_bytes()));
        assert!(!clean(&[b'b', 0xE4, 0xB8]));
        assert!(!clean(b"b"));
        assert!(!clean(&[b'b', 0xE4]));
        assert!(clean(b"bx"));
        assert_eq!(t.packed()[0] & packed::UTF8_CLEAN, 0);
        // Tokens that end inside a character are prefix-clean; an invalid byte is not.
        let prefix = |s: &[u8]| t.packed()[t.find(s).unwrap()] & packed::UTF8_PREFIX != 0;
        assert!(prefix(&[0xC3]) && prefix(b"b") && prefix(&[b'b', 0xE4, 0xB8]) && prefix(b"a"));
        assert_eq!(packed::char_back(t.packed()[t.find(&[b'b', 0xE4, 0xB8]).unwrap()]), 1);
        let bad = Vocab::from_token_bytes(
            vec![Some(vec![b'x', 0xE0, 0x80]), Some(vec![b'y', 0x80]), Some(vec![b'z', 0xF4, 0x8F])],
            vec![],
        );
        let t = TokenTrie::new(&bad);
        let prefix = |s: &[u8]| t.packed()[t.find(s).unwrap()] & packed::UTF8_PREFIX != 0;
        assert!(!prefix(b"x") && !prefix(b"y")); // E0 80 is overlong; 80 continues nothing
        assert!(prefix(b"z")); // F4 8F begins U+10FFFF's range
    }

    #[test]
    fn subtree_leads_name_the_characters_below() {
        let t = TokenTrie::new(&vocab(&["\u{e9}x", "\u{e9}", "\u{4e2d}", "a\u{7f}", "ab"]));
        let leads = |s: &[u8]| t.subtree_leads()[t.find(s).unwrap()];
        assert_eq!(leads(&[0xC3]), lead_bit(0xC3)); // its own byte
        assert_eq!(leads(&[0xC3, 0xA9]), 0); // a continuation byte and `x`
        assert_eq!(leads(b"a"), LEAD_DEL);
        assert_eq!(t.subtree_leads()[0], lead_bit(0xC3) | lead_bit(0xE4) | LEAD_DEL);
        assert_eq!(lead_bit(b'a') | lead_bit(0x80) | lead_bit(0xC1) | lead_bit(0xF5), 0);
    }

    #[test]
    fn structure() {
        let v = vocab(&["ab", "a", "", "abc", "b", "ab", "ac"]);
        let t = TokenTrie::new(&v);
        // nodes: root, a, ab, abc, ac, b
        assert_eq!(t.num_nodes(), 6);
        assert_eq!(t.subtree_size(0), 6);
        let a = t.find(b"a").unwrap();
        assert_eq!(t.tokens_at(a), &[1]);
        let ab = t.find(b"ab").unwrap();
        assert_eq!(t.tokens_at(ab), &[0, 5]);
        assert_eq!(t.subtree_size(ab), 2);
        assert_eq!(t.subtree_size(a), 4);
        assert_eq!(t.tokens_at(t.find(b"abc").unwrap()), &[3]);
        assert_eq!(t.tokens_at(t.find(b"b").unwrap()), &[4]);
        assert!(t.find(b"bb").is_none());
        for i in 0..t.num_nodes() {
            let p = t.packed()[i];
            assert_eq!(packed::byte(p), t.byte(i));
            assert_eq!(packed::depth(p), t.depth(i));
            assert_eq!(packed::subtree(p), t.subtree_size(i));
            assert_eq!(p & packed::HAS_TOKENS != 0, !t.tokens_at(i).is_empty());
            let mut want = 0u128;
            for j in i.max(1)..i + t.subtree_size(i) {
                want |= byte_bit(t.byte(j));
            }
            assert_eq!(t.subtree_bytes()[i], want);
        }
        assert!(t.packed().iter().skip(1).all(|&p| p & packed::UTF8_CLEAN != 0));
        assert_eq!(t.tokens_at(0), &[] as &[u32]);
        assert_eq!(t.children(0).map(|c| t.byte(c)).collect::<Vec<_>>(), b"ab");
        // full walk reconstructs every token
        let mut seen = Vec::new();
        t.walk(
            0,
            Vec::<u8>::new(),
            |s, b| {
                let mut s = s.clone();
                s.push(b);
                Some(s)
            },
            |n, s| {
                for &tok in t.tokens_at(n) {
                    seen.push((tok, s.clone()));
                }
                true
            },
        );
        seen.sort();
        assert_eq!(seen.len(), 6);
        for (tok, s) in seen {
            assert_eq!(v.token_bytes(tok), &s[..]);
        }
    }

    /// Every text token is listed once: in the main trie, and again either among the body
    /// tokens (by length in characters) or in the rest trie, whose offsets resolve through the
    /// main trie's list.
    #[test]
    fn body_split() {
        let v = Vocab::from_token_bytes(
            vec![
                Some("ab".into()),
                Some("a\"".into()),
                Some("é".into()),
                Some(vec![0xC3]),
                Some("x\\".into()),
                None,
                Some("aé b".into()),
                Some("\n".into()),
                Some(vec![0x7F]),
            ],
            vec![],
        );
        let t = TokenTrie::new(&v);
        assert_eq!(t.n_text(), 8);
        let sp = t.body_split().unwrap();
        assert!(sp.rest.body_split().is_none());
        let group = |first: u8| sp.groups.iter().find(|g| g.first == first).unwrap();
        let body = |first: u8, c: usize| {
            let g = group(first);
            t.node_tokens()[g.len_start[c - 1] as usize..g.len_start[c] as usize].to_vec()
        };
        assert_eq!(sp.groups.iter().map(|g| g.first).collect::<Vec<_>>(), vec![b'a', 0x80]);
        assert_eq!((group(b'a').max_chars(), group(0x80).max_chars()), (4, 1));
        assert_eq!((body(b'a', 2), body(b'a', 3), body(b'a', 4), body(0x80, 1)), (vec![0], vec![], vec![6], vec![2]));
        let mut rest = Vec::new();
        sp.rest.walk(
            0,
            (),
            |_, _| Some(()),
            |n, _| {
                let (lo, hi) = (sp.rest.tok_offsets()[n], sp.rest.tok_offsets()[n + 1]);
                rest.extend_from_slice(&t.node_tokens()[lo as usize..hi as usize]);
                true
            },
        );
        rest.sort();
        assert_eq!(rest, vec![1, 3, 4, 7, 8]);
        assert_eq!(t.node_tokens().len(), 16);
        assert_eq!(t.node_tokens()[..8].iter().copied().collect::<std::collections::BTreeSet<_>>().len(), 8);
    }
}
