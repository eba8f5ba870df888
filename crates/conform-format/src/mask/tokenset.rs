/// A fixed-size bitset over token ids `0..len`.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSet {
    words: Vec<u64>,
    len: usize,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenSet(len={}, count={})", self.len, self.count())
    }
}

impl TokenSet {
    pub fn new(len: usize) -> TokenSet {
        TokenSet { words: vec![0; len.div_ceil(64)], len }
    }

    /// A set from its 64-bit words (bit `i % 64` of word `i / 64` is id `i`); `words` must
    /// hold exactly `len.div_ceil(64)` words with no bit at or past `len`.
    pub fn from_words(len: usize, words: Vec<u64>) -> TokenSet {
        assert_eq!(words.len(), len.div_ceil(64), "word count for {len} ids");
        TokenSet { words, len }
    }

    pub fn from_ids(len: usize, ids: impl IntoIterator<Item = u32>) -> TokenSet {
        let mut s = TokenSet::new(len);
        for i in ids {
            s.insert(i);
        }
        s
    }

    /// Universe size (number of token ids).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// Panics if `id >= len`.
    #[inline]
    pub fn insert(&mut self, id: u32) {
        assert!((id as usize) < self.len, "token id {id} out of range {}", self.len);
        self.words[id as usize / 64] |= 1u64 << (id % 64);
    }

    #[inline]
    pub fn remove(&mut self, id: u32) {
        if (id as usize) < self.len {
            self.words[id as usize / 64] &= !(1u64 << (id % 64));
        }
    }

    #[inline]
    pub fn contains(&self, id: u32) -> bool {
        (id as usize) < self.len && self.words[id as usize / 64] >> (id % 64) & 1 == 1
    }

    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub fn words(&self) -> &[u64] {
        &self.words
    }

    pub fn union_with(&mut self, other: &TokenSet) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= *b;
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.words.iter().enumerate().flat_map(|(wi, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    None
                } else {
                    let b = w.trailing_zeros();
                    w &= w - 1;
                    Some(wi as u32 * 64 + b)
                }
            })
        })
    }

    /// Set `logits[i] = -inf` for every `i` not in the set (ids `>= len` are
    /// never in the set). Returns the number of ids left allowed.
    pub fn apply_to_logits(&self, logits: &mut [f32]) -> usize {
        let n = logits.len().min(self.len);
        let (head, tail) = logits.split_at_mut(n);
        tail.fill(f32::NEG_INFINITY);
        let mut allowed = 0usize;
        for (chunk, &w) in head.chunks_mut(64).zip(&self.words) {
            if w == u64::MAX && chunk.len() == 64 {
                allowed += 64;
                continue;
            }
            if w == 0 {
                chunk.fill(f32::NEG_INFINITY);
                continue;
            }
            let valid = if chunk.len() == 64 { u64::MAX } else { (1u64 << chunk.len()) - 1 };
            allowed += (w & valid).count_ones() as usize;
            // visit only the disallowed ids of this word
            let mut z = !w & valid;
            while z != 0 {
                chunk[z.trailing_zeros() as usize] = f32::NEG_INFINITY;
                z &= z - 1;
            }
        }
        allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitset_ops() {
        let mut s = TokenSet::from_ids(130, [0, 5, 63, 64, 129]);
        assert_eq!(s.count(), 5);
        assert!(s.contains(63) && s.contains(129) && !s.contains(1) && !s.contains(500));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0, 5, 63, 64, 129]);
        s.remove(5);
        assert_eq!(s.count(), 4);
        let mut logits = vec![1.0f32; 140];
        assert_eq!(s.apply_to_logits(&mut logits), 4);
        for (i, &x) in logits.iter().enumerate() {
            assert_eq!(x.is_finite(), s.contains(i as u32), "{i}");
        }
        let mut short = vec![1.0f32; 64];
        assert_eq!(s.apply_to_logits(&mut short), 2);
    }
}
