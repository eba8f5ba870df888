//! The probabilistic format model behind `format_mode: "lookahead"` (DESIGN §2): a byte-level
//! HMM distilled from the served model ([`hmm`], [`em`], [`distill`]), and the dynamic program
//! that turns it and a format automaton into `P(format satisfied | prefix + candidate)`
//! ([`lookahead`]).

pub mod em;
pub mod hmm;
pub mod lookahead;

pub use hmm::{Hmm, TpmInfo};
pub use lookahead::{Caps, Filter, Tables, TablesError, HORIZONS};
