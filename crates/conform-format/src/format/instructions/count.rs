//! Byte-level counting automata for the counts IFEval takes with Python tokenisers (words,
//! all-caps words, sentences). As regexes these need `.*`-separated repetitions whose
//! determinisation blows up at IFEval's sizes (hundreds of words); as a small "mode" machine
//! times a saturating counter they stay at `(n + 1) × modes` states.
//!
//! They classify bytes, not characters: a non-ASCII byte is only "part of some non-ASCII
//! character", and each counter treats such characters in the direction that keeps it
//! conservative (see [`super::Instruction`]). UTF-8 validity comes from the other components
//! of the product.

use crate::format::product::Product;

/// What a counter counts.
#[derive(Clone, Copy, Debug)]
pub enum Unit {
    /// Runs of ASCII word characters and non-ASCII bytes, separated by ASCII non-word
    /// characters, holding an ASCII word character: never more than Python's `\w+` runs.
    WordsUnder,
    /// Maximal ASCII word runs plus every non-ASCII character: never fewer than `\w+` runs.
    WordsOver,
    /// Whitespace-delimited chunks `[A-Z]+` with at most one trailing `.,;:!?`.
    CapsChunksUnder,
    /// Runs of `[A-Z]` and non-ASCII bytes with no ASCII lowercase neighbour (`n'` aside).
    CapsRunsOver,
    /// Wholly lowercase ASCII words of two or more letters, then `.!?`, then whitespace or
    /// the end: each is a stop for IFEval's sentence splitter.
    SentenceEndsUnder,
}

/// The automaton accepting outputs with at least `n` units.
pub fn at_least(unit: Unit, n: u32) -> Product {
    let (classify, modes): (fn(u8) -> u8, usize) = match unit {
        Unit::WordsUnder | Unit::WordsOver => (word_class, 4),
        Unit::CapsChunksUnder => (caps_chunk_class, 4),
        Unit::CapsRunsOver => (caps_run_class, 5),
        Unit::SentenceEndsUnder => (sentence_class, 5),
    };
    let class_of: [u8; 256] = std::array::from_fn(|b| classify(b as u8));
    let classes = *class_of.iter().max().unwrap() as usize + 1;
    let mut reps = vec![0u8; classes];
    for b in (0..=255u8).rev() {
        reps[class_of[b as usize] as usize] = b;
    }
    let n = n as usize;
    let id = |count: usize, mode: usize| (count * modes + mode) as u32;
    let mut table = Vec::with_capacity((n + 1) * modes * classes);
    let mut accepting = Vec::with_capacity((n + 1) * modes);
    for count in 0..=n {
        for mode in 0..modes {
            for &b in &reps {
                let (next, counted) = step(unit, mode, b);
                table.push(id((count + counted as usize).min(n), next));
            }
            accepting.push(count + pending(unit, mode) as usize >= n);
        }
    }
    Product::from_table(table, class_of, accepting)
}

// Byte classes. Each counter's `step` only looks at the class of its byte, through a
// representative, so the table needs one column per class.

fn word_class(b: u8) -> u8 {
    match b {
        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' => 0,
        0x80..=0xBF => 1,
        0xC0..=0xFF => 2,
        _ => 3,
    }
}

fn caps_chunk_class(b: u8) -> u8 {
    match b {
        b'A'..=b'Z' => 0,
        b'.' | b',' | b';' | b':' | b'!' | b'?' => 1,
        b' ' | b'\t' | b'\n' | b'\r' | 0x0B | 0x0C => 2,
        _ => 3,
    }
}

fn caps_run_class(b: u8) -> u8 {
    match b {
        b'A'..=b'Z' | 0x80..=0xFF => 0,
        b'n' => 1,
        b'a'..=b'z' => 2,
        b'\'' => 3,
        _ => 4,
    }
}

fn sentence_class(b: u8) -> u8 {
    match b {
        b'a'..=b'z' => 0,
        b'A'..=b'Z' => 1,
        b'.' | b'!' | b'?' => 2,
        b' ' | b'\t' | b'\n' | b'\r' | 0x0B | 0x0C => 3,
        b'"' => 5,
        _ => 4,
    }
}

/// One byte: the next mode and whether a unit was completed.
fn step(unit: Unit, mode: usize, b: u8) -> (usize, bool) {
    match unit {
        // Modes: 0 outside a run, 1 in a run without an ASCII word char, 2 in one with.
        Unit::WordsUnder => match word_class(b) {
            0 => (2, mode != 2),
            1 | 2 => (if mode == 2 { 2 } else { 1 }, false),
            _ => (0, false),
        },
        // Modes: 0 after anything else, 1 after an ASCII word char.
        Unit::WordsOver => match word_class(b) {
            0 => (1, mode != 1),
            2 => (0, true),
            _ => (0, false),
        },
        // Modes: 0 at a chunk start, 1 in `[A-Z]+`, 2 after its punctuation, 3 other chunk.
        Unit::CapsChunksUnder => match (caps_chunk_class(b), mode) {
            (2, m) => (0, m == 1 || m == 2),
            (0, 0 | 1) => (1, false),
            (1, 1) => (2, false),
            _ => (3, false),
        },
        // Modes: 0 after a neutral char, 1 after a lowercase letter, 2 in a candidate run,
        // 3 in a run touching a lowercase letter, 4 candidate run then `n`.
        Unit::CapsRunsOver => match (caps_run_class(b), mode) {
            (0, 0 | 2) => (2, false),
            (0, _) => (3, false),
            (1, 2) => (4, false),
            (1 | 2, _) => (1, false),
            (3, 2 | 4) => (0, true),
            (_, 2) => (0, true),
            _ => (0, false),
        },
        // Modes: 0 after a non-letter, 1 one lowercase letter, 2 two or more, 3 a word that
        // does not qualify, 4 a qualifying word and its terminator.
        Unit::SentenceEndsUnder => match (sentence_class(b), mode) {
            (0, 0 | 4) => (1, false),
            (0, 1 | 2) => (2, false),
            (0 | 1, _) => (3, false),
            (2, 2) => (4, false),
            // IFEval moves a closing quote before the terminator: still a stop.
            (5, 4) => (4, false),
            (3, 4) => (0, true),
            _ => (0, false),
        },
    }
}

/// Whether ending the output in `mode` completes one more unit.
fn pending(unit: Unit, mode: usize) -> bool {
    match unit {
        Unit::WordsUnder | Unit::WordsOver => false,
        Unit::CapsChunksUnder => mode == 1 || mode == 2,
        Unit::CapsRunsOver => mode == 2,
        Unit::SentenceEndsUnder => mode == 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::ByteAutomaton;

    fn count(unit: Unit, text: &str) -> u32 {
        (0..20).take_while(|&n| at_least(unit, n).accepts(text.as_bytes())).last().unwrap()
    }

    #[test]
    fn counts() {
        assert_eq!(count(Unit::WordsUnder, "one, two-three four_5 é —"), 4);
        assert_eq!(count(Unit::WordsOver, "one café"), 3);
        assert_eq!(count(Unit::CapsChunksUnder, "The NASA and ESA, OK? No.X"), 3);
        assert_eq!(count(Unit::CapsRunsOver, "The NASA DON'T NASAn't iPhone"), 4);
        assert_eq!(count(Unit::SentenceEndsUnder, "I came here. Mr. Smith left. ab.cd. Done? ok!"), 4);
    }
}
