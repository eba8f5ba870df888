//! The GBNF parser: text to a [`Grammar`] ([`parse_gbnf`]), rule by rule, with the line and
//! column of every syntax error; the parsed grammar is checked for left recursion.

use std::collections::HashMap;

use crate::format::grammar::{Expr, Grammar, Rule, RuleId};
use crate::format::FormatError;

use super::recursion::check_left_recursion;

/// Parses GBNF text into a [`Grammar`] rooted at `root`.
pub fn parse_gbnf(text: &str) -> Result<Grammar, FormatError> {
    let mut p = Parser {
        src: text,
        pos: 0,
        names: HashMap::new(),
        rules: Vec::new(),
        defined: Vec::new(),
        first_use: Vec::new(),
        depth: 0,
    };
    p.skip_space(true);
    while p.pos < p.src.len() {
        let at = p.pos;
        let name = p.name().ok_or_else(|| p.error(at, "expected a rule name"))?;
        p.skip_space(true);
        if !p.eat("::=") {
            return Err(p.error(p.pos, "expected `::=` after the rule name"));
        }
        let id = p.rule_id(&name, at);
        if p.defined[id].is_some() {
            return Err(p.error(at, format!("rule `{name}` is defined twice")));
        }
        p.defined[id] = Some(at);
        let body = p.alternatives()?;
        p.rules[id].body = body;
        p.skip_space(true);
    }
    for (id, defined) in p.defined.iter().enumerate() {
        if defined.is_none() {
            let at = p.first_use[id];
            return Err(p.error(at, format!("rule `{}` is used but never defined", p.rules[id].name)));
        }
    }
    let root = *p.names.get("root").ok_or_else(|| FormatError::InvalidGrammar {
        message: "the grammar has no `root` rule".into(),
        line: 0,
        column: 0,
    })?;
    let grammar = Grammar { rules: p.rules, root };
    check_left_recursion(&grammar)?;
    Ok(grammar)
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    names: HashMap<String, RuleId>,
    rules: Vec<Rule>,
    /// Where each rule is defined (None: referenced only so far).
    defined: Vec<Option<usize>>,
    /// Where each rule is first mentioned (for "never defined" errors).
    first_use: Vec<usize>,
    depth: u32,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.src[self.pos..]
    }

    fn error(&self, at: usize, message: impl Into<String>) -> FormatError {
        let before = &self.src[..at.min(self.src.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        FormatError::InvalidGrammar { message: message.into(), line, column }
    }

    /// Skips spaces and comments; newlines too when `newlines`.
    fn skip_space(&mut self, newlines: bool) {
        loop {
            let r = self.rest();
            let Some(c) = r.chars().next() else { return };
            if c == '#' {
                self.pos += r.find('\n').unwrap_or(r.len());
            } else if c == ' ' || c == '\t' || (newlines && (c == '\n' || c == '\r')) {
                self.pos += 1;
            } else {
                return;
            }
        }
    }

    fn eat(&mut self, s: &str) -> bool {
        if self.rest().starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    /// Length of the rule name starting here (0 if none).
    fn name_len(&self) -> usize {
        self.rest().bytes().take_while(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_').count()
    }

    fn name(&mut self) -> Option<String> {
        let len = self.name_len();
        (len > 0).then(|| {
            let n = self.rest()[..len].to_string();
            self.pos += len;
            n
        })
    }

    fn rule_id(&mut self, name: &str, at: usize) -> RuleId {
        if let Some(&id) = self.names.get(name) {
            return id;
        }
        let id = self.rules.len();
        self.names.insert(name.to_string(), id);
        self.rules.push(Rule { name: name.to_string(), body: Expr::empty() });
        self.defined.push(None);
        self.first_use.push(at);
        id
    }

    /// Whether the next thing is the start of a new rule (`name ::=`).
    fn at_rule_start(&self) -> bool {
        let len = self.name_len();
        len > 0 && self.rest()[len..].trim_start_matches([' ', '\t']).starts_with("::=")
    }

    fn alternatives(&mut self) -> Result<Expr, FormatError> {
        self.depth += 1;
        if self.depth > 200 {
            return Err(self.error(self.pos, "groups are nested too deeply (limit 200)"));
        }
        let mut alts = vec![self.sequence()?];
        loop {
            self.skip_space(true);
            if self.eat("|") {
                alts.push(self.sequence()?);
            } else {
                break;
            }
        }
        self.depth -= 1;
        Ok(if alts.len() == 1 { alts.pop().unwrap() } else { Expr::Alt(alts) })
    }

    fn sequence(&mut self) -> Result<Expr, FormatError> {
        let mut items = Vec::new();
        loop {
            // A newline may continue a rule; the next rule starts with `name ::=`.
            self.skip_space(true);
            let at = self.pos;
            let Some(c) = self.rest().chars().next() else { break };
            let atom = match c {
                '"' => {
                    self.pos += 1;
                    let mut s = String::new();
                    loop {
                        match self.rest().chars().next() {
                            None | Some('\n') => return Err(self.error(at, "unterminated string literal")),
                            Some('"') => {
                                self.pos += 1;
                                break;
                            }
                            Some(_) => s.push(self.char_in_literal()?),
                        }
                    }
                    Expr::Literal(s)
                }
                '[' => self.class()?,
                '.' => {
                    self.pos += 1;
                    Expr::Class { ranges: Vec::new(), negated: true }
                }
                '(' => {
                    self.pos += 1;
                    let inner = self.alternatives()?;
                    self.skip_space(true);
                    if !self.eat(")") {
                        return Err(self.error(at, "unclosed `(`"));
                    }
                    inner
                }
                c if c.is_ascii_alphanumeric() || c == '-' || c == '_' => {
                    if self.at_rule_start() {
                        break;
                    }
                    let name = self.name().expect("starts with a name character");
                    Expr::Ref(self.rule_id(&name, at))
                }
                '|' | ')' => break,
                other => return Err(self.error(at, format!("unexpected character {other:?}"))),
            };
            items.push(self.postfix(atom)?);
        }
        Ok(if items.len() == 1 { items.pop().unwrap() } else { Expr::Seq(items) })
    }

    fn postfix(&mut self, mut atom: Expr) -> Result<Expr, FormatError> {
        loop {
            self.skip_space(false);
            let at = self.pos;
            let (min, max) = if self.eat("*") {
                (0, None)
            } else if self.eat("+") {
                (1, None)
            } else if self.eat("?") {
                (0, Some(1))
            } else if self.eat("{") {
                let num = |p: &mut Self| -> Result<Option<u32>, FormatError> {
                    p.skip_space(false);
                    let len = p.rest().bytes().take_while(u8::is_ascii_digit).count();
                    if len == 0 {
                        return Ok(None);
                    }
                    let n =
                        p.rest()[..len].parse::<u32>().map_err(|_| p.error(p.pos, "repetition count is too large"))?;
                    p.pos += len;
                    p.skip_space(false);
                    Ok(Some(n))
                };
                let min = num(self)?.ok_or_else(|| self.error(at, "expected a number after `{`"))?;
                let max = if self.eat(",") { num(self)? } else { Some(min) };
                if !self.eat("}") {
                    return Err(self.error(at, "expected `}` closing the repetition"));
                }
                if max.is_some_and(|m| m < min) {
                    return Err(self.error(at, format!("repetition {{{min},{}}} has max < min", max.unwrap())));
                }
                (min, max)
            } else {
                return Ok(atom);
            };
            atom = Expr::Repeat { expr: Box::new(atom), min, max };
        }
    }

    /// One (possibly escaped) character inside a literal or class.
    fn char_in_literal(&mut self) -> Result<char, FormatError> {
        let at = self.pos;
        let c = self.rest().chars().next().ok_or_else(|| self.error(at, "unexpected end of grammar"))?;
        self.pos += c.len_utf8();
        if c != '\\' {
            return Ok(c);
        }
        let e = self.rest().chars().next().ok_or_else(|| self.error(at, "unfinished escape"))?;
        self.pos += e.len_utf8();
        let hex = |p: &mut Self, n: usize| -> Result<char, FormatError> {
            let digits = p.rest().get(..n).filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()));
            let d = digits.ok_or_else(|| p.error(at, format!("expected {n} hex digits")))?;
            let v = u32::from_str_radix(d, 16).expect("hex digits");
            p.pos += n;
            char::from_u32(v).ok_or_else(|| p.error(at, format!("U+{v:X} is not a Unicode scalar value")))
        };
        Ok(match e {
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'x' => hex(self, 2)?,
            'u' => hex(self, 4)?,
            'U' => hex(self, 8)?,
            '\\' | '"' | '[' | ']' | '-' | '^' => e,
            other => return Err(self.error(at, format!("unknown escape `\\{other}`"))),
        })
    }

    fn class(&mut self) -> Result<Expr, FormatError> {
        let at = self.pos;
        self.pos += 1;
        let negated = self.eat("^");
        let mut ranges = Vec::new();
        loop {
            match self.rest().chars().next() {
                None | Some('\n') => return Err(self.error(at, "unterminated character class")),
                Some(']') => {
                    self.pos += 1;
                    break;
                }
                Some(_) => {
                    let lo = self.char_in_literal()?;
                    let hi = if self.rest().starts_with('-') && !self.rest().starts_with("-]") {
                        self.pos += 1;
                        self.char_in_literal()?
                    } else {
                        lo
                    };
                    if hi < lo {
                        return Err(self.error(at, format!("range {lo:?}-{hi:?} is reversed")));
                    }
                    ranges.push((lo, hi));
                }
            }
        }
        if ranges.is_empty() && !negated {
            return Err(self.error(at, "empty character class"));
        }
        Ok(Expr::Class { ranges, negated })
    }
}
