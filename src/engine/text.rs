//! Turns a sequence's token bytes into the text a client sees.
//!
//! Two things make this more than concatenation: a token may end inside a multi-byte UTF-8
//! character (hold the partial bytes until the character completes), and stop strings must never
//! reach the client (hold back any tail that could still grow into a stop string).

pub struct TextStream {
    partial_utf8: Vec<u8>,
    /// Decoded text not yet released, because it may be the start of a stop string.
    held: String,
    stops: Vec<String>,
}

/// What one push released.
#[derive(Debug, Default, PartialEq)]
pub struct Released {
    pub text: String,
    /// A stop string was found: `text` ends right before it and the sequence is over.
    pub stopped: bool,
}

impl TextStream {
    pub fn new(stops: Vec<String>) -> Self {
        TextStream { partial_utf8: Vec::new(), held: String::new(), stops }
    }

    pub fn push(&mut self, bytes: &[u8]) -> Released {
        self.partial_utf8.extend_from_slice(bytes);
        let complete = complete_utf8_prefix(&self.partial_utf8);
        let rest = self.partial_utf8.split_off(complete);
        let decoded = String::from_utf8_lossy(&self.partial_utf8).into_owned();
        self.partial_utf8 = rest;
        self.held.push_str(&decoded);

        if let Some(at) = self.stops.iter().filter_map(|s| self.held.find(s.as_str())).min() {
            let text = self.held[..at].to_string();
            self.held.clear();
            return Released { text, stopped: true };
        }
        let keep = self.longest_stop_prefix_suffix();
        let text = self.held[..self.held.len() - keep].to_string();
        self.held.drain(..self.held.len() - keep);
        Released { text, stopped: false }
    }

    /// Everything still held, at the end of generation.
    pub fn finish(&mut self) -> String {
        let mut text = std::mem::take(&mut self.held);
        text.push_str(&String::from_utf8_lossy(&std::mem::take(&mut self.partial_utf8)));
        text
    }

    /// Length in bytes of the longest suffix of `held` that is a proper prefix of a stop string.
    fn longest_stop_prefix_suffix(&self) -> usize {
        let held = self.held.as_str();
        let mut best = 0;
        for stop in &self.stops {
            for (len, _) in stop.char_indices().skip(1) {
                if len > best && held.ends_with(&stop[..len]) {
                    best = len;
                }
            }
        }
        best
    }
}

/// Length of the prefix that holds no incomplete trailing character. Invalid bytes count as
/// complete (they decode to U+FFFD); only a truncated-but-valid tail is held back.
fn complete_utf8_prefix(bytes: &[u8]) -> usize {
    match std::str::from_utf8(bytes) {
        Ok(_) => bytes.len(),
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        Err(_) => {
            // An invalid byte somewhere: hold at most a truncated character at the very end.
            let tail_start = bytes.len().saturating_sub(3);
            (tail_start..bytes.len())
                .find(|&i| bytes[i] >= 0xC0 && std::str::from_utf8(&bytes[i..]).is_err_and(|e| e.error_len().is_none()))
                .unwrap_or(bytes.len())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_characters_wait_for_their_last_byte() {
        let mut s = TextStream::new(vec![]);
        let euro = "€".as_bytes();
        assert_eq!(s.push(&euro[..2]).text, "");
        assert_eq!(s.push(&euro[2..]).text, "€");
    }

    #[test]
    fn stop_strings_are_cut_even_across_tokens() {
        let mut s = TextStream::new(vec!["STOP".into()]);
        assert_eq!(s.push(b"abc ST").text, "abc ");
        let r = s.push(b"OP tail");
        assert_eq!(r, Released { text: String::new(), stopped: true });
    }

    #[test]
    fn a_false_start_is_released() {
        let mut s = TextStream::new(vec!["STOP".into()]);
        assert_eq!(s.push(b"x ST").text, "x ");
        assert_eq!(s.push(b"ART").text, "START");
        assert_eq!(s.finish(), "");
    }

    #[test]
    fn earliest_stop_wins() {
        let mut s = TextStream::new(vec!["b".into(), "a".into()]);
        assert_eq!(s.push(b"xxab").text, "xx");
    }
}
