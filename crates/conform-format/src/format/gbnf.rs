//! GBNF (llama.cpp's grammar format) parsed into a [`Grammar`] and lowered to a regex.
//!
//! Supported: `name ::= ...` rules (the start rule is `root`), `|` alternation, `( )` groups,
//! `"literals"` and `[character classes]` (ranges, `^` negation) with `\n \r \t \\ \" \] \-
//! \xHH \uHHHH \UHHHHHHHH` escapes, `.` (any character), `? * +` and `{m}`, `{m,}`, `{m,n}`
//! repetition, `#` comments; rules may continue over several lines. Errors carry the line and
//! column.
//!
//! Recursion: each recursive rule becomes a rule of a [`Recursive`](super::Recursive) automaton
//! (non-recursive rules are inlined), so nesting goes `limits.max_nesting` levels deep; past
//! that, and for grammars with more recursive rules than call codes (where recursion is
//! unrolled `limits.recursion_depth` levels), deeper nesting is simply not generated (a
//! narrowing, never a widening). Left recursion is an error.

use std::collections::HashMap;

use super::grammar::{Expr, Grammar, Rule, RuleId};
use super::recursive;
use super::automaton::MAX_REGEX_NESTING;
use super::{Automaton, Compiled, FormatError, Limits};

/// Parses `text` and compiles it into an automaton: a DFA when no rule is recursive, else a
/// [`Recursive`](super::Recursive) network with one rule DFA per recursive rule (nesting up to
/// `limits.max_nesting`). Past [`recursive::MAX_RULES`] recursive rules, recursion is unrolled
/// `limits.recursion_depth` levels instead.
pub fn compile_gbnf(text: &str, limits: &Limits) -> Result<Compiled, FormatError> {
    if text.len() > limits.max_regex_len {
        return Err(FormatError::too_complex(
            format!("grammar is {} bytes long", text.len()),
            format!("max_regex_len = {}", limits.max_regex_len),
        ));
    }
    let grammar = parse_gbnf(text)?;
    let recursive = recursive_rules(&grammar);
    if recursive.is_empty() || recursive.len() + 1 > recursive::MAX_RULES {
        let regex = grammar_regex(&grammar, limits)?;
        return Ok(Compiled::Dfa(Automaton::from_regex(&regex, limits)?));
    }
    // Network rule 0 is the whole output: the root's body when the root is recursive itself
    // (so that it does not spend a nesting level on a frame that only calls it).
    let mut order = vec![grammar.root];
    order.extend(recursive.iter().filter(|&&r| r != grammar.root));
    let mut calls = vec![None; grammar.rules.len()];
    for (i, &r) in order.iter().enumerate() {
        if recursive.contains(&r) {
            calls[r] = Some(i);
        }
    }
    let mut lower = Lower { g: &grammar, limits, active: vec![0; grammar.rules.len()], calls, depth: 0 };
    let mut regexes = Vec::new();
    for &r in &order {
        let mut out = String::new();
        lower.expr(&grammar.rules[r].body, &mut out)?;
        regexes.push(out);
    }
    let regexes: Vec<&str> = regexes.iter().map(String::as_str).collect();
    Ok(Compiled::Recursive(recursive::compile_network(&regexes, limits)?))
}

/// Rules that can reach themselves through references, in rule order: the rules of strongly
/// connected components with a cycle (Tarjan's algorithm with an explicit stack, so the work is
/// linear in the grammar and a chain of thousands of rules uses no native recursion).
fn recursive_rules(g: &Grammar) -> Vec<RuleId> {
    let n = g.rules.len();
    let edges: Vec<Vec<RuleId>> = g.rules.iter().map(|r| {
        let mut out = Vec::new();
        refs(&r.body, &mut out);
        out
    }).collect();
    const UNSEEN: usize = usize::MAX;
    let (mut index, mut low, mut on_stack) = (vec![UNSEEN; n], vec![0; n], vec![false; n]);
    let mut recursive = vec![false; n];
    let (mut next_index, mut stack) = (0, Vec::new());
    for start in 0..n {
        if index[start] != UNSEEN {
            continue;
        }
        // Each open rule with the index of its next edge to follow.
        let mut path: Vec<(RuleId, usize)> = vec![(start, 0)];
        (index[start], low[start], on_stack[start]) = (next_index, next_index, true);
        next_index += 1;
        stack.push(start);
        while let Some(&mut (r, ref mut next)) = path.last_mut() {
            if let Some(&s) = edges[r].get(*next) {
                *next += 1;
                if index[s] == UNSEEN {
                    (index[s], low[s], on_stack[s]) = (next_index, next_index, true);
                    next_index += 1;
                    stack.push(s);
                    path.push((s, 0));
                } else if on_stack[s] {
                    low[r] = low[r].min(index[s]);
                }
                continue;
            }
            path.pop();
            if let Some(&(parent, _)) = path.last() {
                low[parent] = low[parent].min(low[r]);
            }
            if low[r] == index[r] {
                let from = stack.iter().rposition(|&x| x == r).unwrap();
                let component = stack.split_off(from);
                let cyclic = component.len() > 1 || edges[r].contains(&r);
                for x in component {
                    on_stack[x] = false;
                    recursive[x] = cyclic;
                }
            }
        }
    }
    (0..n).filter(|&r| recursive[r]).collect()
}

fn refs(e: &Expr, out: &mut Vec<RuleId>) {
    match e {
        Expr::Ref(r) => out.push(*r),
        Expr::Seq(items) | Expr::Alt(items) => items.iter().for_each(|i| refs(i, out)),
        Expr::Repeat { expr, .. } => refs(expr, out),
        Expr::Literal(_) | Expr::Class { .. } => {}
    }
}

/// Parses GBNF text into a [`Grammar`] rooted at `root`.
pub fn parse_gbnf(text: &str) -> Result<Grammar, FormatError> {
    let mut p = Parser { src: text, pos: 0, names: HashMap::new(), rules: Vec::new(), defined: Vec::new(), first_use: Vec::new(), depth: 0 };
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
                    let n = p.rest()[..len].parse::<u32>().map_err(|_| p.error(p.pos, "repetition count is too large"))?;
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

/// Rules that can derive the empty string.
fn nullable_rules(g: &Grammar) -> Vec<bool> {
    let mut nullable = vec![false; g.rules.len()];
    loop {
        let mut changed = false;
        for (i, r) in g.rules.iter().enumerate() {
            if !nullable[i] && expr_nullable(&r.body, &nullable) {
                nullable[i] = true;
                changed = true;
            }
        }
        if !changed {
            return nullable;
        }
    }
}

fn expr_nullable(e: &Expr, nullable: &[bool]) -> bool {
    match e {
        Expr::Literal(s) => s.is_empty(),
        Expr::Class { .. } => false,
        Expr::Ref(r) => nullable[*r],
        Expr::Seq(items) => items.iter().all(|i| expr_nullable(i, nullable)),
        Expr::Alt(alts) => alts.iter().any(|a| expr_nullable(a, nullable)),
        Expr::Repeat { expr, min, .. } => *min == 0 || expr_nullable(expr, nullable),
    }
}

/// Rules that `e` can reach before consuming any character.
fn leading_refs(e: &Expr, nullable: &[bool], out: &mut Vec<RuleId>) {
    match e {
        Expr::Ref(r) => out.push(*r),
        Expr::Seq(items) => {
            for i in items {
                leading_refs(i, nullable, out);
                if !expr_nullable(i, nullable) {
                    break;
                }
            }
        }
        Expr::Alt(alts) => alts.iter().for_each(|a| leading_refs(a, nullable, out)),
        Expr::Repeat { expr, .. } => leading_refs(expr, nullable, out),
        Expr::Literal(_) | Expr::Class { .. } => {}
    }
}

fn check_left_recursion(g: &Grammar) -> Result<(), FormatError> {
    let nullable = nullable_rules(g);
    let edges: Vec<Vec<RuleId>> = g
        .rules
        .iter()
        .map(|r| {
            let mut out = Vec::new();
            leading_refs(&r.body, &nullable, &mut out);
            out
        })
        .collect();
    // Depth-first search for a cycle (0 = unseen, 1 = on the path, 2 = done), with an explicit
    // stack: a chain of thousands of rules must not become thousands of native frames.
    let mut mark = vec![0u8; g.rules.len()];
    for start in 0..g.rules.len() {
        if mark[start] != 0 {
            continue;
        }
        // The path from `start`, each rule with the index of its next edge to follow.
        let mut path: Vec<(RuleId, usize)> = vec![(start, 0)];
        mark[start] = 1;
        while let Some(&mut (r, ref mut next)) = path.last_mut() {
            let Some(&s) = edges[r].get(*next) else {
                mark[r] = 2;
                path.pop();
                continue;
            };
            *next += 1;
            if mark[s] == 1 {
                let from = path.iter().position(|&(p, _)| p == s).unwrap();
                let names: Vec<&str> =
                    path[from..].iter().map(|&(i, _)| i).chain([s]).map(|i| g.rules[i].name.as_str()).collect();
                return Err(FormatError::InvalidGrammar {
                    message: format!("left recursion is not supported: {}", names.join(" -> ")),
                    line: 0,
                    column: 0,
                });
            }
            if mark[s] == 0 {
                mark[s] = 1;
                path.push((s, 0));
            }
        }
    }
    Ok(())
}

/// A regex for the grammar's language, recursive rules unrolled `limits.recursion_depth` deep.
pub fn grammar_regex(g: &Grammar, limits: &Limits) -> Result<String, FormatError> {
    let mut lower = Lower { g, limits, active: vec![0; g.rules.len()], calls: vec![None; g.rules.len()], depth: 0 };
    let mut out = String::new();
    lower.expr(&Expr::Ref(g.root), &mut out)?;
    Ok(out)
}

struct Lower<'a> {
    g: &'a Grammar,
    limits: &'a Limits,
    /// How many times each rule is open on the current expansion path.
    active: Vec<u32>,
    /// The network rule that a reference to each grammar rule calls (`None`: inlined).
    calls: Vec<Option<usize>>,
    /// How many `expr` calls are open: inlining a chain of rules nests one call per reference,
    /// so this bounds the native stack (a 5,000-rule chain overflowed it).
    depth: u32,
}

/// Matches nothing: the branch past the recursion bound.
const NOTHING: &str = r"[^\x00-\x{10FFFF}]";

impl Lower<'_> {
    fn expr(&mut self, e: &Expr, out: &mut String) -> Result<(), FormatError> {
        if self.depth >= MAX_REGEX_NESTING {
            return Err(FormatError::too_complex(
                format!("rule references and groups nest more than {MAX_REGEX_NESTING} deep"),
                format!("max regex nesting = {MAX_REGEX_NESTING}"),
            ));
        }
        self.depth += 1;
        let result = self.lower(e, out);
        self.depth -= 1;
        result
    }

    fn lower(&mut self, e: &Expr, out: &mut String) -> Result<(), FormatError> {
        match e {
            Expr::Literal(s) => out.push_str(&format!("(?:{})", regex_syntax::escape(s))),
            Expr::Class { ranges, negated } => {
                if ranges.is_empty() {
                    // `.` / `[^]`: any character, newline included.
                    out.push_str(if *negated { r"[\x00-\x{10FFFF}]" } else { NOTHING });
                } else {
                    out.push('[');
                    if *negated {
                        out.push('^');
                    }
                    for &(lo, hi) in ranges {
                        out.push_str(&format!(r"\x{{{:X}}}-\x{{{:X}}}", lo as u32, hi as u32));
                    }
                    out.push(']');
                }
            }
            Expr::Ref(r) => {
                if let Some(rule) = self.calls[*r] {
                    out.push_str(&recursive::call(rule));
                } else if self.active[*r] > self.limits.recursion_depth {
                    out.push_str(NOTHING);
                } else {
                    self.active[*r] += 1;
                    let body = &self.g.rules[*r].body;
                    let result = self.expr(body, out);
                    self.active[*r] -= 1;
                    result?;
                }
            }
            Expr::Seq(items) => {
                out.push_str("(?:");
                for i in items {
                    self.expr(i, out)?;
                }
                out.push(')');
            }
            Expr::Alt(alts) => {
                out.push_str("(?:");
                for (k, a) in alts.iter().enumerate() {
                    if k > 0 {
                        out.push('|');
                    }
                    self.expr(a, out)?;
                }
                out.push(')');
            }
            Expr::Repeat { expr, min, max } => {
                let cap = self.limits.max_repetition;
                if *min > cap || max.is_some_and(|m| m > cap) {
                    return Err(FormatError::too_complex(
                        format!("repetition {{{min},{}}}", max.map(|m| m.to_string()).unwrap_or_default()),
                        format!("max_repetition = {cap}"),
                    ));
                }
                out.push_str("(?:");
                self.expr(expr, out)?;
                out.push(')');
                match max {
                    Some(m) => out.push_str(&format!("{{{min},{m}}}")),
                    None => out.push_str(&format!("{{{min},}}")),
                }
            }
        }
        // Every byte of lowering work is output, so the regex length bounds it.
        if out.len() > self.limits.max_regex_len {
            return Err(FormatError::too_complex(
                "the grammar expands to too large an automaton (recursive rules are unrolled)",
                format!("max_regex_len = {}", self.limits.max_regex_len),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;


    fn compile(text: &str) -> Compiled {
        compile_gbnf(text, &Limits::default()).unwrap()
    }

    fn err(text: &str) -> (String, usize, usize) {
        match parse_gbnf(text).and_then(|g| grammar_regex(&g, &Limits::default()).map(|_| ())) {
            Err(FormatError::InvalidGrammar { message, line, column }) => (message, line, column),
            other => panic!("expected a grammar error, got {other:?}"),
        }
    }

    #[test]
    fn literals_classes_repetition() {
        let a = compile("root ::= \"ab\" [0-9]{2,3} [^x]? (\"-\" | \"+\")*  # comment\n");
        assert!(a.accepts(b"ab12"));
        assert!(a.accepts(b"ab123y-+-"));
        assert!(a.accepts("ab12é".as_bytes()));
        assert!(!a.accepts(b"ab1"));
        assert!(!a.accepts(b"ab1234x"));
        assert!(!a.accepts(b"ab12x"));
    }

    #[test]
    fn multi_line_rules_and_escapes() {
        let a = compile("root ::= item (\n  \",\" item\n)*\nitem ::= \"\\x41\" | [\\n\\]]\n");
        assert!(a.accepts(b"A,\n,]"));
        assert!(!a.accepts(b"A,"));
    }

    #[test]
    fn recursion_nests_up_to_max_nesting() {
        let a = compile("root ::= \"(\" root \")\" | \"x\"");
        assert!(a.accepts(b"x"));
        assert!(a.accepts(b"((x))"));
        assert!(!a.accepts(b"((x)"));
        let depth = Limits::default().max_nesting as usize;
        // The root frame counts as one level.
        let nested = |n: usize| format!("{}x{}", "(".repeat(n), ")".repeat(n));
        assert!(a.accepts(nested(depth - 1).as_bytes()));
        assert!(!a.accepts(nested(depth).as_bytes()));
    }

    #[test]
    fn recursion_is_unrolled_past_the_call_bytes() {
        // 13 mutually recursive rules: more than the network has call bytes.
        let mut text = String::from("root ::= r0\n");
        for i in 0..13 {
            text.push_str(&format!("r{i} ::= \"(\" r{} \")\" | \"x\"\n", (i + 1) % 13));
        }
        let a = compile(&text);
        assert!(a.accepts(b"((x))"));
        // Each rule is unrolled `recursion_depth` times, so 13 * 4 levels at most.
        let nested = |n: usize| format!("{}x{}", "(".repeat(n), ")".repeat(n));
        assert!(a.accepts(nested(20).as_bytes()));
        assert!(!a.accepts(nested(60).as_bytes()));
    }

    #[test]
    fn arithmetic() {
        let a = compile(
            "root ::= expr\nexpr ::= term ((\"+\" | \"-\") term)*\nterm ::= factor ((\"*\" | \"/\") factor)*\nfactor ::= [0-9]+ | \"(\" expr \")\"\n",
        );
        assert!(a.accepts(b"1+2*(3-4)/5"));
        assert!(!a.accepts(b"1+"));
        assert!(!a.accepts(b"(1"));
    }

    #[test]
    fn errors_have_positions() {
        assert_eq!(err("root ::= \"a\"\nfoo ::= bar\n").1, 2);
        let (m, line, col) = err("root ::= \"a\"\nfoo ::= bar\n");
        assert!(m.contains("`bar`"), "{m}");
        assert_eq!((line, col), (2, 9));
        let (m, line, col) = err("root ::= [ab\n");
        assert!(m.contains("unterminated"), "{m}");
        assert_eq!((line, col), (1, 10));
        let (m, _, _) = err("item ::= \"a\"");
        assert!(m.contains("root"), "{m}");
        let (m, line, col) = err("root ::= \"a\" @");
        assert!(m.contains("'@'"), "{m}");
        assert_eq!((line, col), (1, 14));
        let (m, _, _) = err("root ::= (\"a\"");
        assert!(m.contains("unclosed"), "{m}");
        let (m, _, _) = err("root ::= \"a\"{3,1}");
        assert!(m.contains("max < min"), "{m}");
        let (m, _, _) = err("root ::= \"a\"\nroot ::= \"b\"");
        assert!(m.contains("twice"), "{m}");
    }

    #[test]
    fn left_recursion_is_an_error() {
        let (m, _, _) = err("root ::= expr\nexpr ::= expr \"+\" \"1\" | \"1\"");
        assert!(m.contains("left recursion") && m.contains("expr -> expr"), "{m}");
        let (m, _, _) = err("root ::= a\na ::= b? \"x\"\nb ::= a \"y\"");
        assert!(m.contains("left recursion"), "{m}");
    }

    #[test]
    fn shipped_grammars_compile() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../grammars");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "gbnf") {
                let text = std::fs::read_to_string(&path).unwrap();
                compile_gbnf(&text, &Limits::default()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                n += 1;
            }
        }
        assert!(n >= 3);
    }
}
