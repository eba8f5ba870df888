//! The probabilistic format model behind `format_mode: "lookahead"` (DESIGN §2): a byte-level
//! HMM distilled from the served model ([`hmm`], [`em`]; the distillation itself samples the
//! model, so it lives in the server crate), and the dynamic program
//! that turns it and a format automaton into `P(format satisfied | prefix + candidate)`
//! ([`lookahead`]), and the per-sequence constraint that applies it ([`LookaheadConstraint`]).

mod constraint;
pub mod em;
pub mod hmm;
pub mod lookahead;

pub use constraint::{LookaheadConstraint, DEFAULT_LOOKAHEAD_WEIGHT};
pub use hmm::{Hmm, TpmInfo};
pub use lookahead::{Caps, Filter, Tables, TablesError, HORIZONS};

/// Where a model's TPM lives: next to its GGUF, `.tpm` instead of `.gguf`.
pub fn default_path(model: &std::path::Path) -> std::path::PathBuf {
    model.with_extension("tpm")
}

/// Loads a TPM for the model with `fingerprint`; a file from another model is refused.
pub fn load_for(path: &std::path::Path, fingerprint: &str) -> anyhow::Result<Hmm> {
    let (hmm, info) = Hmm::load(path)?;
    anyhow::ensure!(
        info.model == fingerprint,
        "the TPM {} was distilled from another model (fingerprint {}); the loaded model's is {fingerprint}: run `conform distill` for it",
        path.display(),
        info.model
    );
    Ok(hmm)
}
