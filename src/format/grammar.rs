//! A context-free grammar over UTF-8 text: the common form that GBNF grammars (and recursive
//! JSON Schemas) take before [`super::pda`] compiles them into a pushdown automaton.
//!
//! Rules reference each other by index, so recursion is explicit. Terminals are literals,
//! character classes (Unicode scalar values, matched as their UTF-8 bytes) or regex fragments
//! for lowerings that already speak regex.

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
    /// A fragment in Rust `regex` syntax, matched as a unit (no captures needed).
    Regex(String),
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
