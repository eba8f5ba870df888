//! Explicit resource limits for format compilation.

/// Limits that keep every compile bounded in time and memory. A constraint that would exceed
/// one fails with [`crate::format::FormatError::TooComplex`] naming the limit (a
/// [`crate::format::Limit`], named after the field), never with an out-of-memory or a hang.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Maximum heap size of the final dense DFA, in bytes. Default 16 MiB.
    /// Protects against state blow-up of determinisation (e.g. `(a|b)*a(a|b){20}`).
    pub dfa_size_bytes: usize,
    /// Maximum heap used *during* determinisation (and the Thompson NFA), in bytes.
    /// Default 16 MiB. Protects against memory spikes before the DFA-size check can fire.
    pub determinize_size_bytes: usize,
    /// Maximum nesting depth of schema nodes walked (subschemas inside subschemas, merges).
    /// Default 64. Protects the compiler's own recursion (stack) on hostile schemas.
    pub max_schema_depth: u32,
    /// Maximum bounded repetition count unrolled into the regex: `maxLength`, `maxItems`,
    /// `minLength`, `minItems`, `maxProperties`. Default 1024. A larger lower bound is
    /// rejected (replacing it by an unbounded `*` would widen the language); a larger
    /// `maxLength`/`maxItems` is narrowed to this (longer values are never generated).
    pub max_repetition: u32,
    /// Maximum length in bytes of a regex: user regexes, and the regex a JSON Schema is
    /// lowered to. Default 1 MiB. Protects against exponential schema expansion
    /// (e.g. `$ref` fan-out, nested optional members).
    pub max_regex_len: usize,
    /// Where recursion must be unrolled into one regex (the JSON of writing instructions,
    /// grammars with more recursive rules than call codes): how many times one `$ref`
    /// target or grammar rule may be entered, and the container nesting of "any JSON value".
    /// Default 3. Deeper levels are simply not generated (a narrowing, never a widening).
    pub recursion_depth: u32,
    /// How deep recursive rules (`$ref` cycles, recursive GBNF rules, nested any-JSON values)
    /// may nest in a [`crate::format::Recursive`] automaton, the outermost level included.
    /// Default 32. Deeper nesting is not generated (a narrowing, never a widening).
    pub max_nesting: u32,
    /// Total bytes of regex produced while lowering a schema, over all its nodes (a `$ref` used
    /// in many places is lowered at every use). Default 16 MiB. Protects against fan-out
    /// schemas: a 10 kB schema whose definitions reference each other 200 times per level
    /// would otherwise build tens of megabytes and take seconds before any size check fires.
    pub max_lowering_work: usize,
    /// How many automata one product may intersect: writing instructions (a keyword list is
    /// one automaton per word that must appear) plus the format they constrain. Default 64.
    /// The product's states are tuples of component states, so its memory and work grow with
    /// this count as well as with the state count.
    pub max_product_components: usize,
    /// How many words one writing instruction may list (`forbidden_words`, `keywords`).
    /// Default 256. A forbidden-word list is one automaton, but building it costs time that
    /// grows faster than the list (2,000 words: seconds).
    pub max_listed_words: usize,
    /// Bytes of token masks the server keeps cached over all compiled formats; one format's
    /// masks take at most a quarter of it before they start over. Default 512 MiB. A mask
    /// costs ~20–100 KB with a 150k-token vocabulary, and a format can visit many states.
    pub mask_cache_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            dfa_size_bytes: 16 << 20,
            determinize_size_bytes: 16 << 20,
            max_schema_depth: 64,
            max_repetition: 1024,
            max_regex_len: 1 << 20,
            recursion_depth: 3,
            max_nesting: 32,
            max_lowering_work: 16 << 20,
            max_product_components: 64,
            max_listed_words: 256,
            mask_cache_bytes: 512 << 20,
        }
    }
}
