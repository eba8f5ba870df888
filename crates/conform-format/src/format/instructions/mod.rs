//! Verifiable writing instructions (IFEval's vocabulary, Zhou et al. 2023) as automata.
//!
//! Each instruction lowers to one or more regexes, some of them *negated* ("fewer than 5
//! sentences" = not "at least 5 sentences"); all of them, plus any other format of the
//! request, are intersected in a [`Product`]. IFEval scores with Python tokenisers (`\w+`,
//! NLTK, its own sentence splitter); where we cannot mirror one exactly, the automaton counts
//! conservatively in the direction of the relation — an *under*-count for "at least", an
//! *over*-count for "less than" — so a checker of any plausible reading agrees. The choices
//! are documented per id on [`Instruction`]; [`check`] is the independent IFEval-faithful
//! checker the tests and the A/B suite score with.

pub mod check;
mod count;

use std::sync::Arc;

use serde_json::{Map, Value};

use super::json::any_json_regex;
use super::json_schema::Whitespace;
use super::product::{Component, Product};
use super::{Automaton, FormatError, Limit, Limits};
use crate::mask::ByteAutomaton;
use count::Unit;

/// `less than` / `at least`, IFEval's two comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    LessThan,
    AtLeast,
}

impl Relation {
    pub fn holds(self, count: usize, n: u32) -> bool {
        match self {
            Relation::LessThan => count < n as usize,
            Relation::AtLeast => count >= n as usize,
        }
    }
}

/// One instruction, with IFEval's meaning. Counting rules of the automaton:
#[derive(Debug, Clone, PartialEq)]
pub enum Instruction {
    /// `punctuation:no_comma`: no `,`.
    NoComma,
    /// `change_case:english_lowercase`: letters are ASCII `a-z` (English); other characters
    /// are ASCII or common punctuation.
    Lowercase,
    /// `change_case:english_capital`: letters are ASCII `A-Z`, as above.
    Capital,
    /// `change_case:capital_word_frequency`. At least: whitespace-delimited chunks
    /// `[A-Z]+` (plus one trailing `.,;:!?`). Less than: runs of `[A-Z]` and non-ASCII
    /// characters (any could be uppercase) with no ASCII lowercase neighbour (`n't` aside),
    /// an over-count of NLTK's all-caps tokens except its rare in-word splits (`CANnot`).
    CapitalWordFrequency { relation: Relation, n: u32 },
    /// `keywords:existence`: each keyword occurs (case-insensitive substring, as IFEval).
    KeywordsExist(Vec<String>),
    /// `keywords:frequency`: non-overlapping case-insensitive occurrences (exact).
    KeywordFrequency { keyword: String, relation: Relation, n: u32 },
    /// `keywords:forbidden_words`: no whole-word, case-insensitive occurrence; word
    /// boundaries are ASCII-word boundaries, which find every `\b` match Python does.
    ForbiddenWords(Vec<String>),
    /// `keywords:letter_frequency`: occurrences of the letter, either case (exact).
    LetterFrequency { letter: char, relation: Relation, n: u32 },
    /// `length_constraints:number_words` (IFEval counts `\w+` runs). At least: runs separated
    /// by ASCII non-word characters that hold an ASCII word character. Less than: ASCII word
    /// runs plus every non-ASCII character, an over-count.
    NumberWords { relation: Relation, n: u32 },
    /// `length_constraints:number_sentences`. At least: wholly lowercase words of two or more
    /// letters ending in `.!?` then whitespace or the end (never an abbreviation IFEval's
    /// splitter protects). Less than: every `.!?` counts, plus a trailing unterminated one.
    NumberSentences { relation: Relation, n: u32 },
    /// `length_constraints:number_paragraphs`: exactly N non-blank paragraphs split by `***`;
    /// paragraphs hold no run of three stars.
    NumberParagraphs(u32),
    /// `length_constraints:nth_paragraph_first_word`: exactly N non-blank paragraphs split by
    /// blank lines, the nth starting with the word (then punctuation, space or its end).
    NthParagraphFirstWord { paragraphs: u32, nth: u32, word: String },
    /// `detectable_content:number_placeholders`: at least N non-empty one-line `[...]`.
    Placeholders(u32),
    /// `detectable_content:postscript`: a line starting with the marker.
    Postscript(String),
    /// `detectable_format:number_bullet_lists`: exactly N lines starting with `* ` or `-`.
    BulletLists(u32),
    /// `detectable_format:number_highlighted_sections`: at least N `*text*` spans, with every
    /// star before them paired on its line so IFEval's scan pairs them the same way.
    Highlights(u32),
    /// `detectable_format:multiple_sections`: at least N `<splitter> <digits>` headers.
    Sections { splitter: String, n: u32 },
    /// `detectable_format:title`: a `<<title>>`.
    Title,
    /// `detectable_format:json_format`: the whole response is JSON.
    Json,
    /// `detectable_format:constrained_response`: contains "My answer is yes./no./maybe.".
    ConstrainedResponse,
    /// `combination:two_responses`: two non-blank responses separated by `******`. That the
    /// two differ is not a regular property and is left to the model.
    TwoResponses,
    /// `combination:repeat_prompt`: starts with the prompt verbatim (case-insensitive).
    RepeatPrompt(String),
    /// `startend:end_checker`: ends with the phrase (case-insensitive).
    EndChecker(String),
    /// `startend:quotation`: wrapped in double quotes.
    Quotation,
    /// `language:response_language`: every letter is from the Unicode blocks of the
    /// language's script, and there is one; other characters are ASCII or common punctuation.
    /// IFEval uses `langdetect`; a script cannot tell English from German, so for Latin-script
    /// languages this guarantees the alphabet, not the language.
    Language(String),
}

/// Every id, for error messages.
pub const IDS: &[&str] = &[
    "punctuation:no_comma",
    "change_case:english_lowercase",
    "change_case:english_capital",
    "change_case:capital_word_frequency",
    "keywords:existence",
    "keywords:frequency",
    "keywords:forbidden_words",
    "keywords:letter_frequency",
    "length_constraints:number_words",
    "length_constraints:number_sentences",
    "length_constraints:number_paragraphs",
    "length_constraints:nth_paragraph_first_word",
    "detectable_content:number_placeholders",
    "detectable_content:postscript",
    "detectable_format:number_bullet_lists",
    "detectable_format:number_highlighted_sections",
    "detectable_format:multiple_sections",
    "detectable_format:title",
    "detectable_format:json_format",
    "detectable_format:constrained_response",
    "combination:two_responses",
    "combination:repeat_prompt",
    "startend:end_checker",
    "startend:quotation",
    "language:response_language",
];

/// Counts above this are refused up front (they could not fit any sane `max_tokens`).
const MAX_COUNT: u64 = 10_000;

/// Reads an API instruction list: `[{"id": "...", ...kwargs}]`.
pub fn parse_list(list: &Value) -> Result<Vec<Instruction>, FormatError> {
    let items =
        list.as_array().ok_or_else(|| bad("instructions", "must be an array of {\"id\": ..., ...arguments}"))?;
    if items.is_empty() {
        return Err(bad("instructions", "give at least one instruction"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let path = format!("instructions[{i}]");
            let mut kwargs = item.as_object().cloned().ok_or_else(|| bad(&path, "must be an object"))?;
            let id = match kwargs.remove("id") {
                Some(Value::String(id)) => id,
                _ => return Err(bad(&format!("{path}.id"), "`id` (a string) is required")),
            };
            Instruction::from_kwargs(&id, &kwargs, &path)
        })
        .collect()
}

fn bad(path: &str, message: impl Into<String>) -> FormatError {
    FormatError::InvalidInstruction { path: path.to_string(), message: message.into() }
}

/// Typed reads of IFEval keyword arguments; `null` counts as absent (IFEval's own files pad
/// kwargs with nulls).
struct Kwargs<'a> {
    map: &'a Map<String, Value>,
    path: &'a str,
    used: Vec<&'static str>,
}

impl Kwargs<'_> {
    fn get(&mut self, name: &'static str) -> Option<&Value> {
        self.used.push(name);
        self.map.get(name).filter(|v| !v.is_null())
    }
    fn err(&self, name: &str, message: impl Into<String>) -> FormatError {
        bad(&format!("{}.{name}", self.path), message)
    }
    fn string(&mut self, name: &'static str) -> Result<String, FormatError> {
        match self.get(name) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
            _ => Err(self.err(name, "a non-empty string is required")),
        }
    }
    fn strings(&mut self, name: &'static str) -> Result<Vec<String>, FormatError> {
        let list = match self.get(name) {
            Some(Value::Array(list)) if !list.is_empty() => list.clone(),
            _ => return Err(self.err(name, "a non-empty array of strings is required")),
        };
        list.iter()
            .map(|v| v.as_str().filter(|s| !s.trim().is_empty()).map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| self.err(name, "every entry must be a non-empty string"))
    }
    fn count(&mut self, name: &'static str, min: u64) -> Result<u32, FormatError> {
        match self.get(name).and_then(Value::as_u64) {
            Some(n) if (min..=MAX_COUNT).contains(&n) => Ok(n as u32),
            _ => Err(self.err(name, format!("an integer from {min} to {MAX_COUNT} is required"))),
        }
    }
    fn relation(&mut self, name: &'static str) -> Result<Relation, FormatError> {
        match self.get(name).and_then(Value::as_str) {
            Some("less than") => Ok(Relation::LessThan),
            Some("at least") => Ok(Relation::AtLeast),
            _ => Err(self.err(name, "must be \"less than\" or \"at least\"")),
        }
    }
    /// Refuses arguments the id does not take, so a typo is not silently dropped.
    fn finish(self) -> Result<(), FormatError> {
        match self.map.iter().find(|(k, v)| !v.is_null() && !self.used.contains(&k.as_str())) {
            Some((k, _)) => Err(bad(&format!("{}.{k}", self.path), "unknown argument for this instruction")),
            None => Ok(()),
        }
    }
}

impl Instruction {
    /// Builds an instruction from IFEval's id and keyword arguments; `path` prefixes errors.
    pub fn from_kwargs(id: &str, kwargs: &Map<String, Value>, path: &str) -> Result<Instruction, FormatError> {
        use Instruction::*;
        let mut k = Kwargs { map: kwargs, path, used: Vec::new() };
        let instruction = match id {
            "punctuation:no_comma" => NoComma,
            "change_case:english_lowercase" => Lowercase,
            "change_case:english_capital" => Capital,
            "change_case:capital_word_frequency" => {
                CapitalWordFrequency { n: k.count("capital_frequency", 0)?, relation: k.relation("capital_relation")? }
            }
            "keywords:existence" => KeywordsExist(k.strings("keywords")?),
            "keywords:frequency" => KeywordFrequency {
                keyword: k.string("keyword")?,
                n: k.count("frequency", 0)?,
                relation: k.relation("relation")?,
            },
            "keywords:forbidden_words" => ForbiddenWords(k.strings("forbidden_words")?),
            "keywords:letter_frequency" => {
                let letter = k.string("letter")?;
                let mut chars = letter.chars();
                let letter = match (chars.next(), chars.next()) {
                    (Some(c), None) if !c.is_whitespace() => c.to_lowercase().next().unwrap_or(c),
                    _ => return Err(k.err("letter", "must be a single character")),
                };
                LetterFrequency { letter, n: k.count("let_frequency", 0)?, relation: k.relation("let_relation")? }
            }
            "length_constraints:number_words" => {
                NumberWords { n: k.count("num_words", 0)?, relation: k.relation("relation")? }
            }
            "length_constraints:number_sentences" => {
                NumberSentences { n: k.count("num_sentences", 0)?, relation: k.relation("relation")? }
            }
            "length_constraints:number_paragraphs" => NumberParagraphs(k.count("num_paragraphs", 1)?),
            "length_constraints:nth_paragraph_first_word" => {
                let paragraphs = k.count("num_paragraphs", 1)?;
                let nth = k.count("nth_paragraph", 1)?;
                if nth > paragraphs {
                    return Err(k.err("nth_paragraph", format!("is past num_paragraphs ({paragraphs})")));
                }
                let word = k.string("first_word")?.trim().to_lowercase();
                if word.chars().any(|c| c.is_whitespace() || ".,?!'\"".contains(c)) {
                    return Err(k.err("first_word", "must be one word without punctuation"));
                }
                NthParagraphFirstWord { paragraphs, nth, word }
            }
            "detectable_content:number_placeholders" => Placeholders(k.count("num_placeholders", 0)?),
            "detectable_content:postscript" => Postscript(k.string("postscript_marker")?.trim().to_string()),
            "detectable_format:number_bullet_lists" => BulletLists(k.count("num_bullets", 0)?),
            "detectable_format:number_highlighted_sections" => Highlights(k.count("num_highlights", 0)?),
            "detectable_format:multiple_sections" => {
                Sections { splitter: k.string("section_spliter")?.trim().to_string(), n: k.count("num_sections", 0)? }
            }
            "detectable_format:title" => Title,
            "detectable_format:json_format" => Json,
            "detectable_format:constrained_response" => ConstrainedResponse,
            "combination:two_responses" => TwoResponses,
            "combination:repeat_prompt" => RepeatPrompt(k.string("prompt_to_repeat")?.trim().to_string()),
            "startend:end_checker" => EndChecker(k.string("end_phrase")?.trim().to_string()),
            "startend:quotation" => Quotation,
            "language:response_language" => {
                let language = k.string("language")?;
                if script(&language).is_none() {
                    return Err(k.err(
                        "language",
                        format!("unsupported language code {language:?} (ISO 639-1, e.g. \"de\", \"hi\", \"ko\")"),
                    ));
                }
                Language(language)
            }
            other => {
                return Err(bad(
                    &format!("{path}.id"),
                    format!("unknown instruction id {other:?}; known ids: {}", IDS.join(", ")),
                ))
            }
        };
        k.finish()?;
        Ok(instruction)
    }

    /// The automata this instruction lowers to.
    fn parts(&self, limits: &Limits) -> Vec<Part> {
        use Instruction::*;
        let lit = |s: &str| regex_syntax::escape(s);
        let pos = |r: String| vec![Part::Regex(r, false)];
        let count = |relation: Relation, n: u32, under: Unit, over: Unit| match relation {
            Relation::AtLeast => vec![Part::Count(under, n, false)],
            Relation::LessThan => vec![Part::Count(over, n, true)],
        };
        match self {
            NoComma => pos("[^,]*".into()),
            Lowercase => pos(format!("[{NEUTRAL}a-z]*")),
            Capital => pos(format!("[{NEUTRAL}A-Z]*")),
            CapitalWordFrequency { relation, n } => count(*relation, *n, Unit::CapsChunksUnder, Unit::CapsRunsOver),
            KeywordsExist(words) => {
                words.iter().map(|w| Part::Regex(format!("(?i:{ANY}{}{ANY})", lit(w)), false)).collect()
            }
            KeywordFrequency { keyword, relation, n } => {
                let at_least = |n| {
                    separated(n, &format!("(?i:{ANY}{})", lit(keyword)), &format!("(?i:{ANY}{})", lit(keyword)), ANY)
                };
                relate(*relation, *n, at_least, at_least)
            }
            // One automaton for the whole list (containing any word is a union): a component
            // per word would make the product's tuples as long as the list.
            ForbiddenWords(words) => {
                let any_word: Vec<String> = words.iter().map(|w| lit(w.trim())).collect();
                vec![Part::Regex(
                    format!("(?i:(?:{ANY}[^A-Za-z0-9_])?(?:{})(?:[^A-Za-z0-9_]{ANY})?)", any_word.join("|")),
                    true,
                )]
            }
            LetterFrequency { letter, relation, n } => {
                let l = lit(&letter.to_string());
                let at_least = |n| separated(n, &format!("(?i:[^{l}]*{l})"), &format!("(?i:[^{l}]*{l})"), ANY);
                relate(*relation, *n, at_least, at_least)
            }
            NumberWords { relation, n } => count(*relation, *n, Unit::WordsUnder, Unit::WordsOver),
            NumberSentences { relation, n } => match relation {
                Relation::AtLeast => vec![Part::Count(Unit::SentenceEndsUnder, *n, false)],
                // Sentences <= terminators (+1 if text follows the last one); `n` >= 1.
                Relation::LessThan if *n == 0 => pos("[^\\s\\S]".into()),
                Relation::LessThan => {
                    let ended = format!(r#"(?:[^.!?]*[.!?]){{0,{}}}["\x{{201D}}]?\s*"#, n - 1);
                    let open =
                        if *n >= 2 { format!(r"|[^.!?]*(?:[.!?][^.!?]*){{0,{}}}", n - 2) } else { String::new() };
                    pos(format!("{ended}{open}"))
                }
            },
            NumberParagraphs(n) => {
                let paragraph = r"[^*\s](?:[^*]|\*{1,2}[^*])*";
                pos(format!(r"\s*{paragraph}(?:\s*\*\*\*\s*{paragraph}){{{}}}\s*", n - 1))
            }
            NthParagraphFirstWord { paragraphs, nth, word } => {
                let line = r"[^\n]*[^\s][^\n]*";
                let paragraph = format!(r"{line}(?:\n{line})*");
                let first =
                    format!(r#"[^\S\n]*'*"*(?i:{})(?:[.,?!'"][^\s]*)?(?:[^\S\n][^\n]*)?(?:\n{line})*"#, lit(word));
                let parts: Vec<&str> =
                    (1..=*paragraphs).map(|i| if i == *nth { first.as_str() } else { paragraph.as_str() }).collect();
                pos(parts.join(r"\n\n"))
            }
            Placeholders(n) => {
                let p = format!(r"{ANY}\[[^\n\[\]]+\]");
                pos(separated(*n, &p, &p, ANY))
            }
            Postscript(marker) => pos(format!(r"(?:{ANY}\n)?[^\S\n]*(?i:{}){ANY}", lit(marker))),
            BulletLists(n) => {
                let bullet = r"[^\S\n]*(?:\*[^*\n][^\n]*|-[^\n]*)";
                let other = r"[^\S\n]*(?:[^\s*-][^\n]*|\*\*[^\n]*)?";
                pos(if *n == 0 {
                    format!(r"{other}(?:\n{other})*")
                } else {
                    format!(r"(?:{other}\n)*{bullet}(?:\n(?:{other}\n)*{bullet}){{{}}}(?:\n{other})*", n - 1)
                })
            }
            Highlights(n) => {
                let paired = r"(?:[^*]|\*[^\n*]*\*)*";
                let h = format!(r"{paired}\*[^\n*]*[^\s*][^\n*]*\*");
                pos(separated(*n, &h, &h, ANY))
            }
            Sections { splitter, n } => {
                let s = format!(r"{ANY}{}\s?[0-9]", lit(splitter));
                pos(separated(*n, &s, &s, ANY))
            }
            Title => pos(format!(r"{ANY}<<[^\n<>]*[^\s<>][^\n<>]*>>{ANY}")),
            Json => pos(format!(r"\s*{}\s*", any_json_regex(limits.recursion_depth, Whitespace::Flexible { max: 2 }))),
            ConstrainedResponse => pos(format!(r"{ANY}My answer is (?:yes|no|maybe)\.{ANY}")),
            TwoResponses => {
                let response = r"[^\s*](?:[^*]|\*{1,5}[^*])*";
                pos(format!(r"\s*{response}\*{{6}}\s*{response}\*{{0,5}}\s*"))
            }
            RepeatPrompt(prompt) => pos(format!(r"\s*(?i:{}){ANY}", lit(prompt))),
            EndChecker(phrase) => pos(format!(r"{ANY}(?i:{})\s*", lit(phrase))),
            Quotation => pos(format!(r#"\s*"{ANY}"\s*"#)),
            Language(code) => {
                let letters = script(code).expect("checked when parsed").blocks;
                pos(format!("[{NEUTRAL}{letters}]*[{letters}][{NEUTRAL}{letters}]*"))
            }
        }
    }
}

/// Any text.
const ANY: &str = "(?s:.)*";

/// At least `n` items: `first`, then `rest` n-1 times, then `tail`; `n = 0` is any text.
fn separated(n: u32, first: &str, rest: &str, tail: &str) -> String {
    match n {
        0 => ANY.to_string(),
        _ => format!("(?:{first})(?:{rest}){{{}}}(?:{tail})", n - 1),
    }
}

/// "at least n" as a regex, "less than n" as the negation of an over-counting "at least n".
fn relate(
    relation: Relation,
    n: u32,
    at_least: impl Fn(u32) -> String,
    over_count_at_least: impl Fn(u32) -> String,
) -> Vec<Part> {
    match relation {
        Relation::AtLeast => vec![Part::Regex(at_least(n), false)],
        Relation::LessThan => vec![Part::Regex(over_count_at_least(n), true)],
    }
}

/// One automaton of an instruction, negated or not.
enum Part {
    Regex(String, bool),
    Count(Unit, u32, bool),
}

/// A language's script: its Unicode blocks (regex class contents) for the automaton, and its
/// Unicode script property (a class body) for the checker, which reads letters by property.
/// Blocks rather than `\p{Script}` classes keep the automata small: a script class splits
/// UTF-8 into a hundred byte classes, and products multiply them.
pub struct Script {
    pub blocks: &'static str,
    pub property: &'static str,
    pub latin: bool,
}

const fn s(blocks: &'static str, property: &'static str) -> Script {
    Script { blocks, property, latin: false }
}

/// ISO 639-1 codes and their scripts.
const SCRIPTS: &[(&[&str], Script)] = &[
    (
        &[
            "en", "de", "fr", "es", "it", "pt", "nl", "sv", "da", "no", "nb", "fi", "pl", "cs", "sk", "sl", "hr", "ro",
            "hu", "tr", "vi", "id", "ms", "tl", "sw", "et", "lv", "lt", "af", "so", "sq", "ca", "cy",
        ],
        Script { blocks: r"A-Za-z\x{C0}-\x{24F}\x{1E00}-\x{1EFF}", property: r"\p{Latin}", latin: true },
    ),
    (&["ru", "bg", "uk", "mk", "sr", "be", "kk"], s(r"\x{400}-\x{4FF}", r"\p{Cyrillic}")),
    (&["el"], s(r"\x{370}-\x{3E1}\x{3F0}-\x{3FF}\x{1F00}-\x{1FFF}", r"\p{Greek}")),
    (&["ar", "fa", "ur"], s(r"\x{600}-\x{6FF}\x{750}-\x{77F}", r"\p{Arabic}")),
    (&["he"], s(r"\x{590}-\x{5FF}", r"\p{Hebrew}")),
    (&["hi", "mr", "ne"], s(r"\x{900}-\x{97F}", r"\p{Devanagari}")),
    (&["bn"], s(r"\x{980}-\x{9FF}", r"\p{Bengali}")),
    (&["pa"], s(r"\x{A00}-\x{A7F}", r"\p{Gurmukhi}")),
    (&["gu"], s(r"\x{A80}-\x{AFF}", r"\p{Gujarati}")),
    (&["ta"], s(r"\x{B80}-\x{BFF}", r"\p{Tamil}")),
    (&["te"], s(r"\x{C00}-\x{C7F}", r"\p{Telugu}")),
    (&["kn"], s(r"\x{C80}-\x{CFF}", r"\p{Kannada}")),
    (&["ml"], s(r"\x{D00}-\x{D7F}", r"\p{Malayalam}")),
    (&["th"], s(r"\x{E00}-\x{E7F}", r"\p{Thai}")),
    (&["ko"], s(r"\x{AC00}-\x{D7AF}\x{1100}-\x{11FF}\x{3130}-\x{318F}", r"\p{Hangul}")),
    (&["ja"], s(r"\x{3040}-\x{30FF}\x{4E00}-\x{9FFF}", r"\p{Hiragana}\p{Katakana}\p{Han}")),
    (&["zh", "zh-cn", "zh-tw"], s(r"\x{4E00}-\x{9FFF}", r"\p{Han}")),
];

/// The script of a language code, if supported.
pub fn script(code: &str) -> Option<&'static Script> {
    let code = code.to_ascii_lowercase();
    SCRIPTS.iter().find(|(codes, _)| codes.contains(&code.as_str())).map(|(_, script)| script)
}

/// Characters any language may use besides its letters: ASCII non-letters, Latin-1 and
/// general punctuation, CJK punctuation.
const NEUTRAL: &str =
    r"\x00-\x40\x5B-\x60\x7B-\x7F\x{A0}-\x{BF}\x{2000}-\x{206F}\x{3000}-\x{303F}\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF20}";

/// A response must hold an ASCII letter (or, under a non-Latin language instruction, a
/// letter of that script, which that instruction requires): a degenerate output (empty, all
/// digits) satisfies many counting instructions vacuously, and this is what makes
/// "lowercase + all capitals" an up-front contradiction rather than an empty answer.
const HAS_LETTER: &str = r"(?s:.)*[A-Za-z](?s:.)*";

/// Compiles the instructions, intersected with `base` (another format of the request) if
/// given. Contradictions are reported naming the instructions that clash.
pub fn compile(
    instructions: &[Instruction],
    base: Option<Arc<dyn ByteAutomaton>>,
    limits: &Limits,
) -> Result<Product, FormatError> {
    let mut parts: Vec<(Option<usize>, Component)> = Vec::new();
    if let Some(base) = base {
        parts.push((None, Component { automaton: base, negated: false }));
    }
    let non_latin =
        |i: &Instruction| matches!(i, Instruction::Language(code) if script(code).is_some_and(|script| !script.latin));
    if !instructions.iter().any(non_latin) {
        let letter = Arc::new(Automaton::from_regex_minimal(HAS_LETTER, limits)?);
        parts.push((None, Component { automaton: letter, negated: false }));
    }
    for (i, instruction) in instructions.iter().enumerate() {
        if let Instruction::KeywordsExist(words) | Instruction::ForbiddenWords(words) = instruction {
            if words.len() > limits.max_listed_words {
                return Err(FormatError::too_complex(
                    format!("instructions[{i}] lists {} words", words.len()),
                    Limit::MaxListedWords(limits.max_listed_words),
                ));
            }
        }
    }
    let planned: Vec<Vec<Part>> = instructions.iter().map(|i| i.parts(limits)).collect();
    let count = parts.len() + planned.iter().map(Vec::len).sum::<usize>();
    if count > limits.max_product_components {
        // Checked before compiling any of them: thousands of keywords are thousands of DFAs.
        return Err(FormatError::too_complex(
            format!("the instructions need {count} automata (one per keyword that must appear)"),
            Limit::MaxProductComponents(limits.max_product_components),
        ));
    }
    for (i, (instruction, planned)) in instructions.iter().zip(planned).enumerate() {
        for part in planned {
            let (automaton, negated): (Arc<dyn ByteAutomaton>, bool) = match part {
                Part::Count(unit, n, negated) => (Arc::new(count::at_least(unit, n)), negated),
                Part::Regex(regex, negated) => match Automaton::from_regex_minimal(&regex, limits) {
                    Ok(a) => (Arc::new(a), negated),
                    Err(FormatError::EmptyLanguage { .. }) => {
                        let message = format!("instructions[{i}] ({}) cannot be satisfied", describe(instruction));
                        return Err(FormatError::Contradictory { message });
                    }
                    Err(e) => return Err(e),
                },
            };
            parts.push((Some(i), Component { automaton, negated }));
        }
    }
    let components: Vec<Component> = parts.iter().map(|(_, c)| c.clone()).collect();
    match Product::new(&components, limits) {
        Err(FormatError::EmptyLanguage { .. }) => {
            Err(FormatError::Contradictory { message: culprits(&parts, instructions, limits) })
        }
        other => other,
    }
}

fn describe(instruction: &Instruction) -> String {
    format!("{instruction:?}")
}

/// How many products the search for a contradiction's culprits may build, each within 1/16 of
/// the size limits: the pairs of a long list are quadratic in number (1,000 instructions took
/// 29 s), so the search costs at most twice the failed compile before it.
const MAX_CULPRIT_PRODUCTS: usize = 32;

/// Names the first pair (or single instruction, with the base format) whose product is empty,
/// searching within [`MAX_CULPRIT_PRODUCTS`] products.
fn culprits(parts: &[(Option<usize>, Component)], instructions: &[Instruction], limits: &Limits) -> String {
    let limits = &Limits {
        dfa_size_bytes: limits.dfa_size_bytes / 16,
        determinize_size_bytes: limits.determinize_size_bytes / 16,
        ..limits.clone()
    };
    let fixed: Vec<Component> = parts.iter().filter(|(i, _)| i.is_none()).map(|(_, c)| c.clone()).collect();
    let of = |i: usize| parts.iter().filter(move |(j, _)| *j == Some(i)).map(|(_, c)| c.clone());
    let empty = |members: &[usize]| {
        let mut components = fixed.clone();
        for &i in members {
            components.extend(of(i));
        }
        matches!(Product::new(&components, limits), Err(FormatError::EmptyLanguage { .. }))
    };
    let n = instructions.len();
    let mut budget = MAX_CULPRIT_PRODUCTS;
    let mut try_empty = |members: &[usize]| {
        budget = budget.checked_sub(1)?;
        Some(empty(members))
    };
    for i in 0..n {
        match try_empty(&[i]) {
            Some(true) => {
                return format!(
                    "instructions[{i}] ({}) cannot be met together with the rest of the format",
                    describe(&instructions[i])
                )
            }
            Some(false) => {}
            None => break,
        }
    }
    for i in 0..n {
        for j in i + 1..n {
            if try_empty(&[i, j]) == Some(true) {
                return format!(
                    "instructions[{i}] ({}) and instructions[{j}] ({}) exclude each other",
                    describe(&instructions[i]),
                    describe(&instructions[j])
                );
            }
        }
    }
    "no response satisfies all the instructions together".into()
}

#[cfg(test)]
mod tests;
