//! A context-free grammar over UTF-8 text: what a GBNF grammar parses into before it is
//! lowered to the automaton engine (see [`super::gbnf`]).
//!
//! Rules reference each other by index, so recursion is explicit. Terminals are literals and
//! character classes (Unicode scalar values, matched as their UTF-8 bytes).

/// Index of a rule in [`Grammar::rules`].
pub type RuleId = usize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grammar {
    pub rules: Vec<Rule>,
    /// The start rule: an output is valid iff the whole of it derives from this rule.
    pub root: RuleId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The rule's name as written (used in error messages).
    pub name: String,
    pub body: Expr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// This exact text.
    Literal(String),
    /// One character in one of the inclusive ranges or, when `negated`, one character in none.
    Class { ranges: Vec<(char, char)>, negated: bool },
    /// The rule with this index.
    Ref(RuleId),
    /// Each in order.
    Seq(Vec<Expr>),
    /// Any one of them. An empty `Alt` matches nothing.
    Alt(Vec<Expr>),
    /// `min` to `max` (unbounded when `None`) repetitions.
    Repeat { expr: Box<Expr>, min: u32, max: Option<u32> },
}

impl Expr {
    /// The empty string.
    pub fn empty() -> Expr {
        Expr::Seq(Vec::new())
    }
}
