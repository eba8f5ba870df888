//! A reasoning model's thinking ahead of a format: the section between the family's markers
//! (`<think>` … `</think>`, see [`chat_format`](crate::chat_format)) is the model's own, and the
//! format holds what follows it.
//!
//! The section ends when the model writes the closing marker, or when the budget left is what
//! the marker and the format's shortest completion need: then the marker is forced, so closure
//! within `max_tokens` covers both parts. While thinking, the model may not end the response
//! (the format has yet to come), and a token that would run from the marker straight into the
//! answer (`</think>{"`) is held back so the format sees the answer from its first byte. Up to
//! two whitespace tokens may stand between the marker and the answer, as templates write them.

use std::sync::Arc;

use crate::chat_format::Reasoning;
use crate::engine::TokenConstraint;
use crate::vocab::Vocab;

/// A reasoning section the output opens with: its closing marker, as text and as tokens.
pub struct Think {
    pub marker: &'static str,
    pub close: Vec<u32>,
}

/// Whitespace tokens allowed between the closing marker and the answer.
const MAX_GAP: u32 = 2;

pub struct ReasoningConstraint {
    inner: Box<dyn TokenConstraint>,
    vocab: Arc<Vocab>,
    marker: &'static [u8],
    /// The marker as tokens, forced when the budget runs short.
    close: Vec<u32>,
    /// Fewest tokens the format needs after the marker.
    inner_needs: u32,
    /// Tokens containing the marker's last byte: the only ones that can complete it.
    completing: Vec<u32>,
    /// Tokens of nothing but whitespace.
    blank: Vec<u32>,
    phase: Phase,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// Inside the section; `tail` holds its last bytes (a possible start of the marker), and
    /// `forced` how many of the marker's tokens have been forced once forcing began.
    Thinking {
        tail: Vec<u8>,
        forced: Option<usize>,
    },
    /// After the marker, before the answer's first token; `open`: the last mask let whitespace
    /// through.
    Gap {
        blanks: u32,
        open: bool,
    },
    Answer,
}

impl ReasoningConstraint {
    pub fn new(
        inner: Box<dyn TokenConstraint>,
        vocab: Arc<Vocab>,
        marker: &'static str,
        close: Vec<u32>,
        inner_needs: u32,
    ) -> Self {
        let marker = marker.as_bytes();
        let last = *marker.last().expect("markers are not empty");
        let ids = 0..vocab.len() as u32;
        let completing = ids.clone().filter(|&t| vocab.token_bytes(t).contains(&last)).collect();
        let blank = ids
            .filter(|&t| {
                let b = vocab.token_bytes(t);
                !b.is_empty() && b.iter().all(u8::is_ascii_whitespace)
            })
            .collect();
        let phase = Phase::Thinking { tail: Vec::new(), forced: None };
        ReasoningConstraint { inner, vocab, marker, close, inner_needs, completing, blank, phase }
    }
}

/// Where `marker` ends in `tail + bytes`, if it ends inside `bytes`: the index in `bytes` just
/// past it. Runs for every token that could complete the marker at every thinking step, so it
/// compares in place rather than joining the two.
fn marker_end(marker: &[u8], tail: &[u8], bytes: &[u8]) -> Option<usize> {
    let byte_at = |i: usize| if i < tail.len() { tail[i] } else { bytes[i - tail.len()] };
    let total = tail.len() + bytes.len();
    (tail.len() + 1..=total)
        .filter(|&end| end >= marker.len())
        .find(|&end| (0..marker.len()).all(|k| byte_at(end - marker.len() + k) == marker[k]))
        .map(|end| end - tail.len())
}

/// Leaves only `token` possible.
fn force(logits: &mut [f32], token: u32) {
    for (id, l) in logits.iter_mut().enumerate() {
        if id != token as usize {
            *l = f32::NEG_INFINITY;
        }
    }
}

impl TokenConstraint for ReasoningConstraint {
    fn mask(&mut self, logits: &mut [f32], remaining_after: u32) {
        match &mut self.phase {
            Phase::Thinking { tail, forced } => {
                // The marker must start while it and the shortest answer still fit.
                let marker_after_this = self.close.len().saturating_sub(1) as u32;
                if forced.is_none() && remaining_after <= marker_after_this + self.inner_needs {
                    *forced = Some(0);
                }
                if let Some(k) = *forced {
                    force(logits, self.close[k]);
                    return;
                }
                for &t in self.vocab.eog_tokens() {
                    if let Some(l) = logits.get_mut(t as usize) {
                        *l = f32::NEG_INFINITY;
                    }
                }
                for &t in &self.completing {
                    let bytes = self.vocab.token_bytes(t);
                    let runs_on = marker_end(self.marker, tail, bytes)
                        .is_some_and(|end| !bytes[end..].iter().all(u8::is_ascii_whitespace));
                    if runs_on {
                        logits[t as usize] = f32::NEG_INFINITY;
                    }
                }
            }
            Phase::Gap { blanks, open } => {
                *open = *blanks < MAX_GAP && remaining_after >= self.inner_needs;
                let saved: Vec<(u32, f32)> =
                    if *open { self.blank.iter().map(|&t| (t, logits[t as usize])).collect() } else { Vec::new() };
                self.inner.mask(logits, remaining_after);
                for (t, l) in saved {
                    logits[t as usize] = l;
                }
            }
            Phase::Answer => self.inner.mask(logits, remaining_after),
        }
    }

    fn accept(&mut self, token: u32) -> anyhow::Result<()> {
        match &mut self.phase {
            Phase::Thinking { tail, forced } => {
                let closed = match forced {
                    Some(k) => {
                        *k += 1;
                        *k == self.close.len()
                    }
                    // A marker that is one control token has no bytes to find.
                    None if self.close == [token] => true,
                    None => marker_end(self.marker, tail, self.vocab.token_bytes(token)).is_some(),
                };
                if closed {
                    self.phase = Phase::Gap { blanks: 0, open: false };
                } else {
                    tail.extend_from_slice(self.vocab.token_bytes(token));
                    let keep = self.marker.len().saturating_sub(1);
                    if tail.len() > keep {
                        tail.drain(..tail.len() - keep);
                    }
                }
                Ok(())
            }
            Phase::Gap { blanks, open: true } if self.blank.binary_search(&token).is_ok() => {
                *blanks += 1;
                Ok(())
            }
            Phase::Gap { .. } | Phase::Answer => {
                self.phase = Phase::Answer;
                self.inner.accept(token)
            }
        }
    }

    fn is_finished(&self) -> bool {
        !matches!(self.phase, Phase::Thinking { .. }) && self.inner.is_finished()
    }

    fn forced_tokens(&mut self, room: u32) -> Vec<u32> {
        match self.phase {
            Phase::Answer => self.inner.forced_tokens(room),
            _ => Vec::new(),
        }
    }

    fn is_accepting(&self) -> bool {
        !matches!(self.phase, Phase::Thinking { .. }) && self.inner.is_accepting()
    }
}

/// Splits a streamed output into reasoning and content as it arrives, holding back only what
/// may still be part of a marker.
pub struct ReasoningStream {
    reasoning: Reasoning,
    phase: StreamPhase,
    held: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum StreamPhase {
    /// The output may still open with the marker.
    Undecided,
    Inside,
    /// After the section (or without one); `started`: content has been shown.
    After {
        started: bool,
    },
}

impl ReasoningStream {
    /// `opened`: the prompt opened the section, so the output starts inside it.
    pub fn new(reasoning: Reasoning, opened: bool) -> Self {
        let phase = if opened { StreamPhase::Inside } else { StreamPhase::Undecided };
        ReasoningStream { reasoning, phase, held: String::new() }
    }

    /// `(reasoning, content)` that can be shown now.
    pub fn push(&mut self, piece: &str) -> (String, String) {
        self.held.push_str(piece);
        let (mut reasoning, mut content) = (String::new(), String::new());
        loop {
            match self.phase {
                StreamPhase::Undecided => {
                    let text = self.held.trim_start();
                    if let Some(rest) = text.strip_prefix(self.reasoning.open) {
                        self.held = rest.trim_start().to_string();
                        self.phase = StreamPhase::Inside;
                    } else if self.reasoning.open.starts_with(text) {
                        break;
                    } else {
                        self.phase = StreamPhase::After { started: false };
                    }
                }
                StreamPhase::Inside => {
                    if let Some((before, after)) = self.held.split_once(self.reasoning.close) {
                        reasoning.push_str(before);
                        self.held = after.to_string();
                        self.phase = StreamPhase::After { started: false };
                    } else {
                        let keep = partial_suffix(&self.held, self.reasoning.close);
                        let shown = self.held.len() - keep;
                        reasoning.push_str(&self.held[..shown]);
                        self.held.drain(..shown);
                        break;
                    }
                }
                StreamPhase::After { started } => {
                    // The template's blank lines after the marker are not content.
                    let text = if started { self.held.as_str() } else { self.held.trim_start() };
                    if !text.is_empty() {
                        content.push_str(text);
                        self.phase = StreamPhase::After { started: true };
                    }
                    self.held.clear();
                    break;
                }
            }
        }
        (reasoning, content)
    }

    /// At the end: what was held back (a marker's start that never completed).
    pub fn finish(&mut self) -> (String, String) {
        let rest = std::mem::take(&mut self.held);
        match self.phase {
            StreamPhase::Inside => (rest, String::new()),
            _ => (String::new(), rest),
        }
    }
}

/// The length of the longest end of `text` that begins `marker` (and is not all of it).
fn partial_suffix(text: &str, marker: &str) -> usize {
    (1..marker.len()).rev().find(|&k| text.ends_with(&marker[..k])).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat_format::ChatFormat;

    #[test]
    fn the_marker_is_found_where_it_ends_in_the_new_token() {
        let m = b"</think>";
        assert_eq!(marker_end(m, b"", b"</think>\n"), Some(8));
        assert_eq!(marker_end(m, b"a </th", b"ink>{"), Some(4));
        assert_eq!(marker_end(m, b"</think", b">"), Some(1));
        assert_eq!(marker_end(m, b"</think>", b"x"), None, "ended before this token");
        assert_eq!(marker_end(m, b"", b"</thin"), None);
        assert_eq!(marker_end(m, b"x", b"y</think></think>"), Some(9), "the first end");
    }

    fn think() -> Reasoning {
        ChatFormat::named("qwen3").unwrap().reasoning.unwrap()
    }

    /// Every split of the output into pieces streams the same reasoning and content as the
    /// whole output splits into.
    #[test]
    fn streamed_reasoning_matches_the_whole_at_every_split() {
        for (text, opened) in [
            ("<think>\nfirst 2+2</th\n</think>\n\n{\"a\": 4}", false),
            ("hm </thin k\n</think>\n\nok </think> done", true),
            ("no reasoning at all", false),
            ("  <thi", false),
        ] {
            let (want_reasoning, want_content) = think().split(text, opened);
            for at in 0..=text.len() {
                if !text.is_char_boundary(at) {
                    continue;
                }
                let mut s = ReasoningStream::new(think(), opened);
                let (mut r, mut c) = (String::new(), String::new());
                for piece in [&text[..at], &text[at..]] {
                    let (a, b) = s.push(piece);
                    r.push_str(&a);
                    c.push_str(&b);
                }
                let (a, b) = s.finish();
                r.push_str(&a);
                c.push_str(&b);
                assert_eq!(r.trim(), want_reasoning.unwrap_or_default(), "{text:?} split at {at}");
                assert_eq!(c, want_content, "{text:?} split at {at}");
            }
        }
    }
}
