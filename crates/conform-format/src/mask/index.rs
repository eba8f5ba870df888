use super::distance::TokenDistance;
use super::walk::{Classes, LazyTable, DEAD, KEEP_ROWS};
use super::{ByteAutomaton, MaskError, TokenSet};
use crate::vocab::trie::{lead_bit, packed, BodySplit};
use crate::vocab::{TokenTrie, Vocab};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// One group of allowed tokens that all lead to states needing the same
/// number of tokens to finish (`d`, see `distance.rs`).
#[derive(Debug)]
struct Level {
    d: u32,
    count: u32,
    /// Ranges of the trie's `node_tokens` (a subtree taken in bulk is one range). Empty for
    /// the dominant (most populous) level, whose tokens are implied: top set minus every
    /// other level.
    ranges: Vec<(u32, u32)>,
}

/// The cached result of one trie walk from one automaton state.
///
/// A text token `t` is *live* from `state` if every byte of `t` keeps the
/// automaton alive and the resulting state `q'` can still accept
/// (`d(q') != u32::MAX`). For a budget `r` (tokens that remain after this
/// one) the allowed set is the live tokens with `d(q') <= r`, plus the EOG
/// tokens iff `state` is accepting.
///
/// Levels group tokens by `d(q')` in an *exact* mask. The mask every state gets first groups
/// them by a cheap upper bound instead (`MaskIndex::tokens_bound`: bytes to acceptance, when
/// every byte is a token), because exact token distances cost a trie walk per end state and
/// only matter when the budget is tight: for a budget at least the largest bound every live
/// token is allowed, and below it `MaskIndex::allowed_in` asks the exact mask.
#[derive(Debug)]
pub struct StateMask {
    accepting: bool,
    /// Levels are by exact `d` (else by its upper bound).
    exact: bool,
    /// Ascending by `d`.
    levels: Vec<Level>,
    dominant: usize,
    /// `sets[k]` = allowed set when the first `k` levels are within budget
    /// (EOG included iff accepting). `sets[levels.len()]` is built eagerly.
    sets: Vec<OnceLock<Arc<TokenSet>>>,
    n_live: usize,
    /// EOG ids included in the sets (empty unless accepting), sorted.
    eog_in_top: Vec<u32>,
    walk_nanos: u64,
    nodes_visited: u64,
}

impl StateMask {
    /// Heap bytes this mask holds once all its budgeted sets are built: an upper bound, so a
    /// cache's byte budget holds before the lazy sets appear.
    fn heap_bytes(&self, n_vocab: usize) -> usize {
        let set = n_vocab.div_ceil(64) * 8 + 64;
        let levels: usize = self.levels.iter().map(|l| l.ranges.len() * 8 + std::mem::size_of::<Level>()).sum();
        levels + self.sets.len() * set + self.eog_in_top.len() * 4 + std::mem::size_of::<StateMask>()
    }

    pub fn is_accepting(&self) -> bool {
        self.accepting
    }
    /// Number of live text tokens (ignoring the budget).
    pub fn n_live(&self) -> usize {
        self.n_live
    }
    /// Distinct `d(q')` values (or bounds, if not exact) among live tokens with their token
    /// counts, ascending.
    pub fn histogram(&self) -> Vec<(u32, u32)> {
        self.levels.iter().map(|l| (l.d, l.count)).collect()
    }
    /// Largest `d(q')` among live tokens (None if no live token): with a
    /// budget at least this large the budget does not shape the mask.
    pub fn max_d_after(&self) -> Option<u32> {
        self.levels.last().map(|l| l.d)
    }
    pub fn walk_nanos(&self) -> u64 {
        self.walk_nanos
    }
    pub fn nodes_visited(&self) -> u64 {
        self.nodes_visited
    }
    /// Number of levels within budget `remaining_after`.
    #[inline]
    fn level_for(&self, remaining_after: u32) -> usize {
        self.levels.partition_point(|l| l.d <= remaining_after)
    }
    /// Number of allowed text tokens for a budget (EOG not counted); exact masks only.
    pub fn n_allowed_text(&self, remaining_after: u32) -> usize {
        let k = self.level_for(remaining_after);
        self.levels[..k].iter().map(|l| l.count as usize).sum()
    }
    /// True if the budget removes some live token; exact masks only (on a bounded mask,
    /// false is exact, true may be a false alarm: see `MaskIndex::budget_shapes`).
    pub fn budget_shapes(&self, remaining_after: u32) -> bool {
        self.level_for(remaining_after) < self.levels.len()
    }
    fn top(&self) -> &Arc<TokenSet> {
        self.sets[self.levels.len()].get().expect("top set is built eagerly")
    }
    /// Live text tokens with the `d` of the state each leads to, sorted by
    /// (d, id); `trie` is the index's. Allocates; meant for tests and diagnostics.
    pub fn tokens_with_d(&self, trie: &TokenTrie) -> Vec<(u32, u32)> {
        let node_tokens = trie.node_tokens();
        let mut out = Vec::with_capacity(self.n_live);
        let mut others = TokenSet::new(self.top().len());
        for (i, l) in self.levels.iter().enumerate() {
            if i != self.dominant {
                for t in tokens_in(node_tokens, &l.ranges) {
                    others.insert(t);
                }
            }
        }
        for (i, l) in self.levels.iter().enumerate() {
            if i == self.dominant {
                out.extend(
                    self.top().iter().filter(|&t| !others.contains(t) && !self.is_eog_in_top(t)).map(|t| (l.d, t)),
                );
            } else {
                out.extend(tokens_in(node_tokens, &l.ranges).map(|t| (l.d, t)));
            }
        }
        out.sort_unstable();
        out
    }
    fn is_eog_in_top(&self, t: u32) -> bool {
        self.eog_in_top.binary_search(&t).is_ok()
    }
}

/// A [`LazyTable`] kept across walks, with per dense state the bucket of the current walk
/// (`(epoch, bucket)`; `bucket == u32::MAX`: cannot finish).
#[derive(Default)]
struct WalkTable {
    table: LazyTable,
    epoch: u32,
    bucket_by_state: Vec<(u32, u32)>,
}

/// Counters (monotonic since creation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MaskStats {
    /// Trie walks (= distinct states computed; races may add a few).
    pub walks: u64,
    pub walk_nanos: u64,
    pub nodes_visited: u64,
    /// `state_mask` calls answered from cache.
    pub cache_hits: u64,
    /// Budgeted bitsets built lazily (below the top level).
    pub level_sets_built: u64,
    /// Times the mask caches were emptied because they reached their byte budget.
    pub cache_resets: u64,
}

/// Default byte budget of one index's mask caches (see [`MaskIndex::with_cache_budget`]).
pub const DEFAULT_CACHE_BUDGET: usize = 64 << 20;
/// The most states a bounded mask follows body characters through before it walks the trie
/// instead (see [`LazyTable::body_bound`]).
const MAX_BODY_CLOSURE: usize = 1024;

/// Where a run of body tokens ends (see [`MaskIndex::take_body_groups`]).
enum End {
    /// In this row, or [`DEAD`].
    Row(u32),
    /// Somewhere live, at most this many tokens from acceptance.
    Bound(u32),
}

/// Shared mask index for one (automaton, vocabulary) pair.
pub struct MaskIndex {
    automaton: Arc<dyn ByteAutomaton>,
    vocab: Arc<Vocab>,
    trie: Arc<TokenTrie>,
    cache: Mutex<HashMap<u32, Arc<StateMask>>>,
    /// Exact masks of states where a tight budget needed them (see [`StateMask`]).
    exact_cache: Mutex<HashMap<u32, Arc<StateMask>>>,
    distance: TokenDistance,
    classes: Classes,
    /// The automaton flattened as far as walks went, kept across walks (a walk that finds it
    /// busy uses a fresh one).
    walk_table: Mutex<WalkTable>,
    bytes_bound_tokens: bool,
    walks: AtomicU64,
    walk_nanos: AtomicU64,
    nodes_visited: AtomicU64,
    cache_hits: AtomicU64,
    level_sets_built: AtomicU64,
    /// Bytes held by both mask caches (upper bounds, see [`StateMask::heap_bytes`]).
    cached_bytes: AtomicUsize,
    cache_budget: usize,
    cache_resets: AtomicU64,
}

impl std::fmt::Debug for MaskIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaskIndex").field("n_vocab", &self.vocab.len()).field("stats", &self.stats()).finish()
    }
}

impl MaskIndex {
    /// `trie` must have been built from `vocab` (`TokenTrie::new(&vocab)`);
    /// share both across all automata of one model.
    pub fn new(
        automaton: Arc<dyn ByteAutomaton>,
        vocab: Arc<Vocab>,
        trie: Arc<TokenTrie>,
    ) -> Result<MaskIndex, MaskError> {
        if trie.n_vocab() != vocab.len() {
            return Err(MaskError::VocabMismatch { vocab: vocab.len(), trie: trie.n_vocab() });
        }
        let bytes_bound_tokens = vocab.has_all_bytes();
        Ok(MaskIndex {
            classes: Classes::new(automaton.byte_classes()),
            walk_table: Mutex::new(WalkTable::default()),
            automaton,
            vocab,
            trie,
            cache: Mutex::new(HashMap::new()),
            exact_cache: Mutex::new(HashMap::new()),
            distance: TokenDistance::default(),
            bytes_bound_tokens,
            walks: AtomicU64::new(0),
            walk_nanos: AtomicU64::new(0),
            nodes_visited: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            level_sets_built: AtomicU64::new(0),
            cached_bytes: AtomicUsize::new(0),
            cache_budget: DEFAULT_CACHE_BUDGET,
            cache_resets: AtomicU64::new(0),
        })
    }

    /// Caps the bytes this index's mask caches hold: past it they start over (masks are
    /// recomputed on demand), so a format that visits many states cannot grow without bound
    /// (a counting regex took ~100 KB per state, 70 MB in one request).
    pub fn with_cache_budget(mut self, bytes: usize) -> MaskIndex {
        self.cache_budget = bytes;
        self
    }

    /// Bytes the mask caches hold now (upper bounds per mask).
    pub fn cached_bytes(&self) -> usize {
        self.cached_bytes.load(Relaxed)
    }

    pub fn automaton(&self) -> &dyn ByteAutomaton {
        &*self.automaton
    }
    pub fn vocab(&self) -> &Arc<Vocab> {
        &self.vocab
    }
    pub fn trie(&self) -> &Arc<TokenTrie> {
        &self.trie
    }
    /// True if every byte is a single-byte token, so that `d` (bytes) bounds
    /// the tokens needed and the budget closure is a guarantee. If false the
    /// budget check is still applied but is only a heuristic.
    pub fn bytes_bound_tokens(&self) -> bool {
        self.bytes_bound_tokens
    }

    /// Tokens needed to finish from `state` (an upper bound realised by a real token path, see
    /// `distance.rs`; `u32::MAX` = cannot finish), not counting the EOG token. The budget rule
    /// and the up-front "needs N tokens" check both use it.
    pub fn shortest_tokens(&self, state: u32) -> u32 {
        self.distance.get(&*self.automaton, &self.classes, &self.trie, state)
    }

    pub fn stats(&self) -> MaskStats {
        MaskStats {
            walks: self.walks.load(Relaxed),
            walk_nanos: self.walk_nanos.load(Relaxed),
            nodes_visited: self.nodes_visited.load(Relaxed),
            cache_hits: self.cache_hits.load(Relaxed),
            level_sets_built: self.level_sets_built.load(Relaxed),
            cache_resets: self.cache_resets.load(Relaxed),
        }
    }

    /// States with a cached mask.
    pub fn cached_states(&self) -> usize {
        self.cache.lock().unwrap().len()
    }

    /// States with a cached exact mask besides (see [`StateMask`]).
    pub fn cached_exact_states(&self) -> usize {
        self.exact_cache.lock().unwrap().len()
    }

    pub fn clear_cache(&self) {
        let mut cache = self.cache.lock().unwrap();
        let mut exact = self.exact_cache.lock().unwrap();
        cache.clear();
        exact.clear();
        self.cached_bytes.store(0, Relaxed);
    }

    /// Caches `m` as the mask of `state` in `cache` (keeping an entry a racing walk put there
    /// first), within the byte budget.
    fn remember(&self, cache: &Mutex<HashMap<u32, Arc<StateMask>>>, state: u32, m: StateMask) -> Arc<StateMask> {
        let bytes = m.heap_bytes(self.vocab.len());
        if self.cached_bytes.load(Relaxed) + bytes > self.cache_budget {
            self.clear_cache();
            self.cache_resets.fetch_add(1, Relaxed);
        }
        let mut cache = cache.lock().unwrap();
        let entry = cache.entry(state).or_insert_with(|| {
            self.cached_bytes.fetch_add(bytes, Relaxed);
            Arc::new(m)
        });
        entry.clone()
    }

    /// State reached from `state` by the bytes of text token `token`; `None`
    /// if dead, or if `token` is a control/EOG/out-of-range token.
    pub fn step_token(&self, state: u32, token: u32) -> Option<u32> {
        let b = self.vocab.token_bytes(token);
        if b.is_empty() {
            return None;
        }
        let mut s = state;
        for &x in b {
            s = self.automaton.next(s, x)?;
        }
        Some(s)
    }

    /// An upper bound on [`MaskIndex::shortest_tokens`] that costs one lookup: bytes to
    /// acceptance, when every byte is a token (else the exact value). `u32::MAX` exactly when
    /// acceptance is unreachable.
    pub fn tokens_bound(&self, state: u32) -> u32 {
        if self.bytes_bound_tokens {
            self.automaton.min_bytes_to_accept(state)
        } else {
            self.shortest_tokens(state)
        }
    }

    /// `shortest_tokens(state) <= remaining`, computing the exact distance only when the
    /// bound does not settle it.
    pub fn finishes_within(&self, state: u32, remaining: u32) -> bool {
        let bound = self.tokens_bound(state);
        bound != u32::MAX && (bound <= remaining || self.shortest_tokens(state) <= remaining)
    }

    /// Direct (uncached) check of one token, same rule as the masks.
    pub fn is_allowed(&self, state: u32, token: u32, remaining_after: u32) -> bool {
        if self.vocab.is_eog(token) {
            return self.automaton.is_accepting(state);
        }
        match self.step_token(state, token) {
            Some(s) => self.finishes_within(s, remaining_after),
            None => false,
        }
    }

    /// The cached walk result for `state` (walks the trie on first use); levels by bound
    /// unless bounds are exact here.
    pub fn state_mask(&self, state: u32) -> Arc<StateMask> {
        if let Some(m) = self.cache.lock().unwrap().get(&state) {
            self.cache_hits.fetch_add(1, Relaxed);
            return m.clone();
        }
        // Walk without holding the lock; on a race keep the first result.
        let m = self.compute(state, !self.bytes_bound_tokens);
        self.remember(&self.cache, state, m)
    }

    /// The mask of `state` with levels by exact token distance.
    pub fn exact_state_mask(&self, state: u32) -> Arc<StateMask> {
        let m = self.state_mask(state);
        if m.exact {
            return m;
        }
        if let Some(m) = self.exact_cache.lock().unwrap().get(&state) {
            return m.clone();
        }
        let m = self.compute(state, true);
        self.remember(&self.exact_cache, state, m)
    }

    /// True if the budget removes some live token in `state` (whose mask is `m`).
    pub fn budget_shapes(&self, state: u32, m: &StateMask, remaining_after: u32) -> bool {
        m.budget_shapes(remaining_after) && (m.exact || self.exact_state_mask(state).budget_shapes(remaining_after))
    }

    /// Allowed tokens (text + EOG) in `state` when `remaining_after` tokens
    /// may follow the chosen one.
    pub fn allowed(&self, state: u32, remaining_after: u32) -> Arc<TokenSet> {
        let m = self.state_mask(state);
        self.allowed_in(state, &m, remaining_after)
    }

    /// [`MaskIndex::allowed`] with `state`'s mask `m` at hand.
    pub(crate) fn allowed_in(&self, state: u32, m: &StateMask, remaining_after: u32) -> Arc<TokenSet> {
        let k = m.level_for(remaining_after);
        if k < m.levels.len() && !m.exact {
            // The budget cuts into the bounds: only exact distances can say which tokens stay.
            return self.allowed_in(state, &self.exact_state_mask(state), remaining_after);
        }
        m.sets[k]
            .get_or_init(|| {
                self.level_sets_built.fetch_add(1, Relaxed);
                Arc::new(self.build_level_set(m, k))
            })
            .clone()
    }

    fn build_level_set(&self, m: &StateMask, k: usize) -> TokenSet {
        let n = self.vocab.len();
        let mut set;
        if m.dominant < k {
            // start from the top set (EOG already included iff accepting),
            // remove the levels beyond the budget (none of them dominant)
            set = (**m.top()).clone();
            for l in &m.levels[k..] {
                for t in tokens_in(self.trie.node_tokens(), &l.ranges) {
                    set.remove(t);
                }
            }
        } else {
            set = TokenSet::new(n);
            for l in &m.levels[..k] {
                for t in tokens_in(self.trie.node_tokens(), &l.ranges) {
                    set.insert(t);
                }
            }
            if m.accepting {
                for &e in self.vocab.eog_tokens() {
                    set.insert(e);
                }
            }
        }
        set
    }

    /// The body token groups (see [`BodySplit`]) whose fate from row `root` is known without
    /// a walk of the whole trie: for each, `take(table, where its tokens end, token range)`
    /// over all its tokens, and its flag (indexed by first byte, 0x80 for multi-byte) set in
    /// the result. A group left out is walked in the whole trie.
    fn take_body_groups(
        &self,
        sp: &BodySplit,
        table: &mut LazyTable,
        root: u32,
        exact: bool,
        take: &mut dyn FnMut(&LazyTable, End, (u32, u32)),
    ) -> [bool; 129] {
        let (a, classes) = (&*self.automaton, &self.classes);
        let max_chars = sp.groups.iter().map(|g| g.max_chars()).max().unwrap_or(1);
        let mut sliced = [false; 129];
        // rows after the first character, with the rows after each further one (None: mixed)
        let mut ends_of: Vec<(u32, Option<Vec<u32>>)> = Vec::new();
        for g in &sp.groups {
            let x = if g.first < 0x80 {
                table.step(a, classes, root, g.first)
            } else {
                table.multibyte_body_step(a, classes, root)
            };
            if x == DEAD {
                // the trie walk drops them at their first byte
                continue;
            }
            let k = match ends_of.iter().position(|e| e.0 == x) {
                Some(k) => k,
                None => {
                    ends_of.push((x, table.body_ends(a, classes, x, max_chars - 1)));
                    ends_of.len() - 1
                }
            };
            if let Some(ends) = &ends_of[k].1 {
                // every body character steps alike: the tokens go by length
                sliced[g.first as usize] = true;
                for c in 1..=g.max_chars() {
                    let t = if c == 1 { x } else { ends[c - 2] };
                    take(table, End::Row(t), (g.len_start[c - 1], g.len_start[c]));
                }
            } else if let Some(bound) = (!exact)
                .then(|| {
                    table.body_bound(a, classes, x, MAX_BODY_CLOSURE, self.bytes_bound_tokens, &mut |q| {
                        self.tokens_bound(q)
                    })
                })
                .flatten()
            {
                // body characters keep every state they reach from `x` live (an unanchored
                // `pattern` before its match): a bounded mask needs no more
                sliced[g.first as usize] = true;
                take(table, End::Bound(bound), (g.len_start[0], *g.len_start.last().unwrap()));
            }
        }
        sliced
    }

    /// One trie walk from `state`; levels by exact `d` or by [`MaskIndex::tokens_bound`].
    fn compute(&self, state: u32, exact: bool) -> StateMask {
        let t0 = Instant::now();
        let a = &*self.automaton;
        let trie = &*self.trie;
        let node_tokens = trie.node_tokens();
        let mut buckets = Buckets::default();
        let mut local = WalkTable::default();
        let mut guard = self.walk_table.try_lock().ok();
        let WalkTable { table, epoch, bucket_by_state } = match guard.as_deref_mut() {
            Some(w) => w,
            None => &mut local,
        };
        if table.len() > KEEP_ROWS {
            table.clear();
            bucket_by_state.clear();
        }
        // a new epoch forgets the previous walk's buckets
        *epoch = epoch.wrapping_add(1);
        if *epoch == 0 {
            bucket_by_state.fill((0, 0));
            *epoch = 1;
        }
        let epoch = *epoch;
        let classes = &self.classes;
        let root = table.intern(state);
        // The bucket of the tokens that end in row `t` (`u32::MAX`: they cannot finish),
        // remembered per state for this walk.
        let mut bucket_of_row = |table: &LazyTable, buckets: &mut Buckets, t: u32| {
            let si = LazyTable::index(t);
            if si >= bucket_by_state.len() {
                bucket_by_state.resize(table.len(), (0, 0));
            }
            let (e, b) = bucket_by_state[si];
            if e == epoch {
                return b;
            }
            let q = table.state(t);
            let b = buckets.of(if exact { self.shortest_tokens(q) } else { self.tokens_bound(q) });
            bucket_by_state[si] = (epoch, b);
            b
        };
        // Where every body character after a first one steps alike (a string, a key past its
        // first character), the body tokens of that first byte go by their length, and the walk
        // below that byte covers only the other tokens' trie.
        let mut segments: Vec<(&TokenTrie, usize, usize)> = Vec::new();
        match trie.body_split() {
            None => segments.push((trie, 1, trie.num_nodes())),
            Some(sp) => {
                let sliced = self.take_body_groups(sp, table, root, exact, &mut |table, end, range| {
                    let b = match end {
                        End::Row(DEAD) => u32::MAX,
                        End::Row(t) => bucket_of_row(table, &mut buckets, t),
                        End::Bound(d) => buckets.of(d),
                    };
                    buckets.push(b, range);
                });
                // the root's children, ascending by byte, in either trie
                let rest = &sp.rest;
                let (mut i, mut j) = (1, 1);
                while i < trie.num_nodes() {
                    let (b, end) = (trie.byte(i), i + trie.subtree_size(i));
                    if sliced[b.min(0x80) as usize] {
                        while j < rest.num_nodes() && rest.byte(j) < b {
                            j += rest.subtree_size(j);
                        }
                        if j < rest.num_nodes() && rest.byte(j) == b {
                            segments.push((rest, j, j + rest.subtree_size(j)));
                        }
                    } else {
                        match segments.last_mut() {
                            Some((tr, _, hi)) if std::ptr::eq(*tr, trie) && *hi == i => *hi = end,
                            _ => segments.push((trie, i, end)),
                        }
                    }
                    i = end;
                }
            }
        }
        let max_run = trie.max_depth().min(u16::MAX as usize) as u16;
        // stack[depth] = row offset of the state after the node at that depth on the current path
        let mut stack = vec![0u32; trie.max_depth() + 1];
        stack[0] = root;
        // path[depth] = the byte of the node at that depth on the current path
        let mut path = vec![0u8; trie.max_depth() + 1];
        let mut visited = 0u64;
        for &(walked, lo, hi) in &segments {
            let nodes = walked.packed();
            let tok_off = walked.tok_offsets();
            let sub_bytes = walked.subtree_bytes();
            let sub_leads = walked.subtree_leads();
            let sub_depth = walked.subtree_depths();
            let mut i = lo;
            while i < hi {
                let nd = nodes[i];
                let depth = packed::depth(nd);
                path[depth] = packed::byte(nd);
                visited += 1;
                let t = table.step(a, classes, stack[depth - 1], packed::byte(nd));
                if t == DEAD {
                    let end = i + packed::subtree(nd);
                    buckets.dead.push((tok_off[i], tok_off[end]));
                    i = end;
                    continue;
                }
                stack[depth] = t;
                let size = packed::subtree(nd);
                let p = stack[depth - 1];
                // A subtree whose bytes all step this state to itself: every node in it is live
                // and every token in it ends here, so take its tokens in one go. Likewise a
                // subtree whose tokens go on in whole UTF-8 characters (and ASCII bytes that loop)
                // from the start of the character holding this node's byte, when every such
                // character loops on the state `c` before that start: each token ends in `c`
                // (the path so far, part of a valid character, is live since the walk took it).
                // (the second case needs this node's byte to loop or be non-ASCII; testing that
                // first keeps walks from states without loops off the per-subtree sets)
                // A bounded mask may also take subtrees whose tokens end inside a character (byte-
                // level BPE's pieces of CJK text): such a token ends between `c` and a state of
                // `c`'s label, at most 3 bytes before it, so `c`'s bound plus 3 bounds it.
                let chars = if exact { packed::UTF8_CLEAN } else { packed::UTF8_PREFIX };
                let mut c = t;
                // whether the bulk subtree's tokens may end inside a character
                let mut mid_char = false;
                let bulk = size > 1
                    && (t == p || packed::byte(nd) >= 0x80)
                    && ((t == p
                        && sub_bytes[i]
                            & !if sub_bytes[i] & 1 << 127 == 0 {
                                table.ascii_loops(a, classes, t)
                            } else {
                                table.loops(a, classes, t)
                            }
                            == 0
                        && {
                            c = t;
                            true
                        })
                        || (nd & chars != 0 && {
                            // the characters' lead bytes: the subtree's, and that of the
                            // character this node's byte is inside
                            let back = packed::char_back(nd);
                            let leads = sub_leads[i] | if back > 0 { lead_bit(path[depth - back]) } else { 0 };
                            c = stack[depth - 1 - back];
                            mid_char = nd & packed::UTF8_CLEAN == 0;
                            table.looping_leads(a, classes, c) & leads == leads
                                && sub_bytes[i] & !(table.ascii_loops(a, classes, c) | 1 << 127) == 0
                        })
                        || (nd & packed::UTF8_TEXT != 0 && {
                            // the same where characters other than 0x7F, U+2028 and U+2029 loop
                            c = stack[depth - 1 - packed::char_back(nd)];
                            mid_char = false;
                            table.multibyte_body_step(a, classes, c) == c
                                && sub_bytes[i] & !(table.ascii_loops(a, classes, c) | 1 << 127) == 0
                        }));
                // A bounded mask only needs each token's distance bound, so a subtree that runs
                // along a counting chain (see `walk::Chain`) from the start of the character
                // holding this node's byte goes in one bucket, that of the chain's next state (whose
                // bound is the highest along the run).
                let bulk = bulk
                    || (!exact && size > 1 && {
                        let b = packed::byte(nd);
                        let back = if b >= 0x80 && nd & chars != 0 { packed::char_back(nd) } else { 0 };
                        let from = stack[depth - 1 - back];
                        (b < 0x7F && t != p || b >= 0x80 && nd & chars != 0) && {
                            let chain = table.chain(a, classes, from, max_run, &mut |q| self.tokens_bound(q));
                            let height = sub_depth[i] as usize + 1 - (depth - back);
                            let fits = if sub_bytes[i] & 1 << 127 == 0 {
                                mid_char = false;
                                sub_bytes[i] & !chain.bytes == 0 && height <= chain.run as usize
                            } else {
                                mid_char = nd & packed::UTF8_CLEAN == 0;
                                nd & chars != 0
                                    && sub_bytes[i] & !(chain.bytes | 1 << 127) == 0
                                    && height <= chain.char_run as usize
                            };
                            c = chain.next;
                            fits
                        }
                    });
                let (end, t) = if bulk { (i + size, c) } else { (i + 1, t) };
                let range = (tok_off[i], tok_off[end]);
                if bulk && mid_char {
                    // tokens may end inside a character (see `chars` above)
                    let b = buckets.of(self.tokens_bound(table.state(t)).saturating_add(3));
                    buckets.push(b, range);
                } else if bulk || nd & packed::HAS_TOKENS != 0 {
                    let b = bucket_of_row(table, &mut buckets, t);
                    buckets.push(b, range);
                }
                i = end;
            }
        }
        let Buckets { by_d: mut buckets, dead, n_live, .. } = buckets;
        // Build the live set from whichever side is smaller: the live tokens, or every text
        // token minus the dead ones (most tokens are live inside strings).
        let mut top = if n_live * 2 > trie.n_text() {
            let mut top = TokenSet::from_words(self.vocab.len(), trie.token_bits().to_vec());
            for t in tokens_in(node_tokens, &dead) {
                top.remove(t);
            }
            top
        } else {
            let mut top = TokenSet::new(self.vocab.len());
            for (_, ranges) in &buckets {
                for t in tokens_in(node_tokens, ranges) {
                    top.insert(t);
                }
            }
            top
        };
        buckets.sort_unstable_by_key(|b| b.0);
        let accepting = a.is_accepting(state);
        if accepting {
            for &e in self.vocab.eog_tokens() {
                top.insert(e);
            }
        }
        // The dominant level's tokens are implied (top minus the others): drop them unsorted.
        let count = |ranges: &[(u32, u32)]| ranges.iter().map(|&(lo, hi)| hi - lo).sum::<u32>();
        let dominant = buckets.iter().enumerate().max_by_key(|(_, b)| count(&b.1)).map(|(i, _)| i).unwrap_or(0);
        let levels: Vec<Level> = buckets
            .into_iter()
            .enumerate()
            .map(|(i, (d, ranges))| {
                let count = count(&ranges);
                Level { d, count, ranges: if i == dominant { Vec::new() } else { ranges } }
            })
            .collect();
        let sets: Vec<OnceLock<Arc<TokenSet>>> = (0..=levels.len()).map(|_| OnceLock::new()).collect();
        let _ = sets[levels.len()].set(Arc::new(top));
        let walk_nanos = t0.elapsed().as_nanos() as u64;
        self.walks.fetch_add(1, Relaxed);
        self.walk_nanos.fetch_add(walk_nanos, Relaxed);
        self.nodes_visited.fetch_add(visited, Relaxed);
        StateMask {
            accepting,
            exact,
            levels,
            dominant,
            sets,
            n_live,
            eog_in_top: if accepting { self.vocab.eog_tokens().to_vec() } else { Vec::new() },
            walk_nanos,
            nodes_visited: visited,
        }
    }
}

/// A walk's token ranges (of the trie's `node_tokens`) by `d`, and those found dead. Ranges,
/// not tokens: a bulk subtree or a length of body tokens is one range, and most live tokens
/// share a few `d` values.
#[derive(Default)]
struct Buckets {
    by_d: Vec<(u32, Vec<(u32, u32)>)>,
    index: HashMap<u32, u32>,
    /// Ranges of tokens that die or cannot finish.
    dead: Vec<(u32, u32)>,
    n_live: usize,
}

impl Buckets {
    /// The bucket of `d` (`u32::MAX` for `d == u32::MAX`: cannot finish).
    fn of(&mut self, d: u32) -> u32 {
        if d == u32::MAX {
            return u32::MAX;
        }
        let by_d = &mut self.by_d;
        *self.index.entry(d).or_insert_with(|| {
            by_d.push((d, Vec::new()));
            by_d.len() as u32 - 1
        })
    }

    fn push(&mut self, bucket: u32, range: (u32, u32)) {
        if range.0 == range.1 {
            return;
        }
        let ranges = if bucket == u32::MAX {
            &mut self.dead
        } else {
            self.n_live += (range.1 - range.0) as usize;
            &mut self.by_d[bucket as usize].1
        };
        // neighbours merge (runs of body tokens, subtrees side by side)
        match ranges.last_mut() {
            Some(last) if last.1 == range.0 => last.1 = range.1,
            _ => ranges.push(range),
        }
    }
}

/// The tokens of `ranges` of the trie's `node_tokens`.
fn tokens_in<'a>(node_tokens: &'a [u32], ranges: &'a [(u32, u32)]) -> impl Iterator<Item = u32> + 'a {
    ranges.iter().flat_map(move |&(lo, hi)| node_tokens[lo as usize..hi as usize].iter().copied())
}
