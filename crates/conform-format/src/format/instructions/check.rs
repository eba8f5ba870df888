//! IFEval's checks, ported from its reference implementation (`instructions.py`) and kept
//! independent of the automata: the tests hold the automata to these, and the A/B suite
//! scores with them. Two parts of IFEval cannot be ported: NLTK's word tokenizer (approximated
//! by Treebank-style splitting: punctuation and `n't`/`'s`-style clitics split off) and
//! `langdetect` (replaced by "every letter is of the language's script").

use regex::Regex;

use super::{script, Instruction};

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("checker regexes are fixed")
}

/// Whether `response` follows the instruction, as IFEval would score it (strict).
pub fn follows(instruction: &Instruction, response: &str) -> bool {
    use Instruction::*;
    let lower = response.to_lowercase();
    match instruction {
        NoComma => !response.contains(','),
        Lowercase => response == lower && english_letters(response),
        Capital => response == response.to_uppercase() && english_letters(response),
        CapitalWordFrequency { relation, n } => {
            let count = nltk_words(response).iter().filter(|w| is_upper(w)).count();
            relation.holds(count, *n)
        }
        KeywordsExist(words) => words.iter().all(|w| lower.contains(&w.to_lowercase())),
        KeywordFrequency { keyword, relation, n } => {
            let count = re(&format!("(?i){}", regex::escape(keyword))).find_iter(response).count();
            relation.holds(count, *n)
        }
        ForbiddenWords(words) => {
            words.iter().all(|w| !re(&format!(r"(?i)\b{}\b", regex::escape(w.trim()))).is_match(response))
        }
        LetterFrequency { letter, relation, n } => relation.holds(lower.chars().filter(|c| c == letter).count(), *n),
        NumberWords { relation, n } => relation.holds(re(r"\w+").find_iter(response).count(), *n),
        NumberSentences { relation, n } => relation.holds(split_into_sentences(response).len(), *n),
        NumberParagraphs(n) => {
            let parts: Vec<&str> = re(r"\s?\*\*\*\s?").split(response).collect();
            let mut count = parts.len();
            for (i, p) in parts.iter().enumerate() {
                if p.trim().is_empty() {
                    if i == 0 || i == parts.len() - 1 {
                        count -= 1;
                    } else {
                        return false;
                    }
                }
            }
            count == *n as usize
        }
        NthParagraphFirstWord { paragraphs, nth, word } => {
            let parts: Vec<&str> = response.split("\n\n").collect();
            let count = parts.iter().filter(|p| !p.trim().is_empty()).count();
            let Some(paragraph) = parts.get(*nth as usize - 1).map(|p| p.trim()) else { return false };
            let Some(token) = paragraph.split_whitespace().next() else { return false };
            let token = token.trim_start_matches('\'').trim_start_matches('"');
            let first: String =
                token.chars().take_while(|c| !".,?!'\"".contains(*c)).collect::<String>().to_lowercase();
            count == *paragraphs as usize && &first == word
        }
        Placeholders(n) => re(r"\[.*?\]").find_iter(response).count() >= *n as usize,
        Postscript(marker) => {
            let pattern = match marker.as_str() {
                "P.P.S" => r"(?m)\s*p\.\s?p\.\s?s.*$".to_string(),
                "P.S." => r"(?m)\s*p\.\s?s\..*$".to_string(),
                other => format!(r"(?m)\s*{}.*$", regex::escape(&other.to_lowercase())),
            };
            re(&pattern).is_match(&lower)
        }
        BulletLists(n) => {
            let stars = re(r"(?m)^\s*\*[^\*].*$").find_iter(response).count();
            let dashes = re(r"(?m)^\s*-.*$").find_iter(response).count();
            stars + dashes == *n as usize
        }
        Highlights(n) => {
            let non_empty = |pattern: &str| {
                re(pattern).find_iter(response).filter(|m| !m.as_str().trim_matches('*').trim().is_empty()).count()
            };
            non_empty(r"\*[^\n\*]*\*") + non_empty(r"\*\*[^\n\*]*\*\*") >= *n as usize
        }
        Sections { splitter, n } => {
            let pattern = format!(r"\s?{}\s?\d+\s?", regex::escape(splitter));
            re(&pattern).split(response).count() > *n as usize
        }
        Title => re(r"<<[^\n]+>>")
            .find_iter(response)
            .any(|m| !m.as_str().trim_start_matches('<').trim_end_matches('>').trim().is_empty()),
        Json => {
            let v = response.trim();
            let v = ["```json", "```Json", "```JSON", "```"].iter().fold(v, |v, p| v.strip_prefix(p).unwrap_or(v));
            let v = v.strip_suffix("```").unwrap_or(v).trim();
            serde_json::from_str::<serde_json::Value>(v).is_ok()
        }
        ConstrainedResponse => {
            ["My answer is yes.", "My answer is no.", "My answer is maybe."].iter().any(|o| response.contains(o))
        }
        TwoResponses => {
            let parts: Vec<&str> = response.split("******").collect();
            let mut kept = Vec::new();
            for (i, p) in parts.iter().enumerate() {
                if p.trim().is_empty() {
                    if i != 0 && i != parts.len() - 1 {
                        return false;
                    }
                } else {
                    kept.push(p.trim());
                }
            }
            kept.len() == 2 && kept[0] != kept[1]
        }
        RepeatPrompt(prompt) => lower.trim().starts_with(&prompt.trim().to_lowercase()),
        EndChecker(phrase) => lower.trim().ends_with(&phrase.trim().to_lowercase()),
        Quotation => {
            let v = response.trim();
            v.len() >= 2 && v.starts_with('"') && v.ends_with('"')
        }
        Language(code) => {
            let letters =
                re(&format!(r"^(?:\P{{L}}|[\p{{Common}}{}])*$", script(code).expect("checked when parsed").property));
            letters.is_match(response) && response.chars().any(char::is_alphabetic)
        }
    }
}

/// Every instruction of a prompt followed (IFEval's prompt-level strict accuracy).
pub fn follows_all(instructions: &[Instruction], response: &str) -> bool {
    instructions.iter().all(|i| follows(i, response))
}

fn english_letters(text: &str) -> bool {
    re(r"^(?:\P{L}|[A-Za-z])*$").is_match(text)
}

/// Python's `str.isupper`: some cased character, none of them lower- or titlecase.
fn is_upper(word: &str) -> bool {
    word.chars().any(|c| c.is_uppercase()) && !word.chars().any(|c| c.is_lowercase())
}

/// Treebank-style tokens: punctuation split off words, clitics (`n't`, `'s`, `'re`, ...)
/// split from their stems.
fn nltk_words(text: &str) -> Vec<String> {
    let token = re(r"\w+(?:'\w+)*|[^\w\s]");
    let mut out = Vec::new();
    for m in token.find_iter(text) {
        let t = m.as_str();
        let split = match t.to_lowercase().strip_suffix("n't") {
            Some(stem) if !stem.is_empty() => Some(stem.len()),
            _ => t.rfind('\'').filter(|&i| i > 0),
        };
        match split {
            Some(i) => out.extend([t[..i].to_string(), t[i..].to_string()]),
            None => out.push(t.to_string()),
        }
    }
    out
}

/// IFEval's `split_into_sentences`, step by step.
pub fn split_into_sentences(text: &str) -> Vec<String> {
    let alphabets = "([A-Za-z])";
    let prefixes = "(Mr|St|Mrs|Ms|Dr)[.]";
    let suffixes = "(Inc|Ltd|Jr|Sr|Co)";
    let starters = r"(Mr|Mrs|Ms|Dr|Prof|Capt|Cpt|Lt|He\s|She\s|It\s|They\s|Their\s|Our\s|We\s|But\s|However\s|That\s|This\s|Wherever)";
    let acronyms = "([A-Z][.][A-Z][.](?:[A-Z][.])?)";
    let websites = "[.](com|net|org|io|gov|edu|me)";
    let digits = "([0-9])";
    let mut t = format!(" {text}  ").replace('\n', " ");
    let sub = |t: &str, pattern: &str, with: &str| re(pattern).replace_all(t, with).into_owned();
    t = sub(&t, prefixes, "${1}<prd>");
    t = sub(&t, websites, "<prd>${1}");
    t = sub(&t, &format!("{digits}[.]{digits}"), "${1}<prd>${2}");
    t = re(r"\.{2,}").replace_all(&t, |c: &regex::Captures| "<prd>".repeat(c[0].len()) + "<stop>").into_owned();
    if t.contains("Ph.D") {
        t = t.replace("Ph.D.", "Ph<prd>D<prd>");
    }
    t = sub(&t, &format!(r"\s{alphabets}[.] "), " ${1}<prd> ");
    t = sub(&t, &format!("{acronyms} {starters}"), "${1}<stop> ${2}");
    t = sub(&t, &format!("{alphabets}[.]{alphabets}[.]{alphabets}[.]"), "${1}<prd>${2}<prd>${3}<prd>");
    t = sub(&t, &format!("{alphabets}[.]{alphabets}[.]"), "${1}<prd>${2}<prd>");
    t = sub(&t, &format!(" {suffixes}[.] {starters}"), " ${1}<stop> ${2}");
    t = sub(&t, &format!(" {suffixes}[.]"), " ${1}<prd>");
    t = sub(&t, &format!(" {alphabets}[.]"), " ${1}<prd>");
    t = t.replace(".\u{201d}", "\u{201d}.").replace(".\"", "\".").replace("!\"", "\"!").replace("?\"", "\"?");
    t = t.replace('.', ".<stop>").replace('?', "?<stop>").replace('!', "!<stop>").replace("<prd>", ".");
    let mut sentences: Vec<String> = t.split("<stop>").map(|s| s.trim().to_string()).collect();
    if sentences.last().is_some_and(|s| s.is_empty()) {
        sentences.pop();
    }
    sentences
}

#[cfg(test)]
mod tests {
    use super::super::Relation;
    use super::*;

    #[test]
    fn sentences_follow_ifeval() {
        assert_eq!(split_into_sentences("Hi there. Mr. Smith is here! Is he?").len(), 3);
        assert_eq!(split_into_sentences("It costs 1.5 dollars at example.com today.").len(), 1);
        assert_eq!(split_into_sentences("No terminator").len(), 1);
        assert_eq!(split_into_sentences("Wait... what?").len(), 2);
    }

    #[test]
    fn nltk_like_tokens() {
        assert_eq!(nltk_words("I DON'T know, OK?"), vec!["I", "DO", "N'T", "know", ",", "OK", "?"]);
        let caps = nltk_words("I DON'T know, OK?").iter().filter(|w| is_upper(w)).count();
        assert_eq!(caps, 4);
    }

    #[test]
    fn relation_edges() {
        assert!(Relation::AtLeast.holds(3, 3));
        assert!(!Relation::LessThan.holds(3, 3));
    }
}
