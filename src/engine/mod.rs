//! The inference engine: one OS thread owns the llama.cpp context and runs continuous batching.
//!
//! `LlamaContext` is `Send` but not `Sync`, and a decode step is the unit of work anyway, so a
//! single thread owns it and everyone else talks to it over channels: a [`Job`] goes in, a stream
//! of [`Event`]s comes out. Each step decodes one batch that holds every active sequence's pending
//! tokens (one sampled token per generating sequence, plus prefill chunks), so concurrent requests
//! share the forward pass. A sequence whose client went away is dropped before the next step.

pub mod cost;
pub mod load;
pub mod sampling;
pub mod text;
mod vocab;
mod worker;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, Context as _};
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc;

use crate::vocab::Vocab;

pub use cost::FormatCost;
pub use sampling::SamplingParams;
pub use vocab::model_vocab;

/// Engine settings, from the command line.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Context window of each sequence, in tokens (prompt + completion).
    pub ctx_size: u32,
    /// Sequences decoded together; more requests wait in a queue.
    pub parallel: u32,
    pub threads: i32,
    /// Most tokens in one decode call (generation tokens + prefill chunks).
    pub batch_size: u32,
    /// Layers offloaded to a GPU, -1 for all; no effect on a build without a GPU backend.
    pub gpu_layers: i32,
}

/// A format constraint applied while sampling (the format engine implements it).
pub trait TokenConstraint: Send {
    /// Sets the logits of tokens that may not come next to -inf. `remaining_after` is how many
    /// tokens the sequence may still produce after this one.
    fn mask(&mut self, logits: &mut [f32], remaining_after: u32);
    /// Advances past a sampled token; an error means the token was not allowed.
    fn accept(&mut self, token: u32) -> anyhow::Result<()>;
    /// Complete, and no byte may follow: the sequence ends here.
    fn is_finished(&self) -> bool;
    /// Tokens the format forces next, to append without sampling (fast-forward), accepted
    /// already. `room` is how many tokens the sequence may still produce.
    fn forced_tokens(&mut self, room: u32) -> Vec<u32>;
    /// Whether what was generated so far is a complete, valid output.
    fn is_accepting(&self) -> bool;
}

/// The format engine's per-sequence constraint, as the engine drives it.
impl TokenConstraint for conform_format::Constraint {
    fn mask(&mut self, logits: &mut [f32], remaining_after: u32) {
        self.mask_logits(logits, remaining_after);
    }
    fn accept(&mut self, token: u32) -> anyhow::Result<()> {
        Ok(self.commit(token)?)
    }
    fn is_finished(&self) -> bool {
        conform_format::Constraint::is_finished(self)
    }
    fn forced_tokens(&mut self, room: u32) -> Vec<u32> {
        self.fast_forward(room)
    }
    fn is_accepting(&self) -> bool {
        conform_format::Constraint::is_accepting(self)
    }
}

/// Lookahead: the format engine's constraint, reweighted by the TPM.
impl TokenConstraint for conform_format::tpm::LookaheadConstraint {
    fn mask(&mut self, logits: &mut [f32], remaining_after: u32) {
        self.mask_logits(logits, remaining_after);
    }
    fn accept(&mut self, token: u32) -> anyhow::Result<()> {
        Ok(self.commit(token)?)
    }
    fn is_finished(&self) -> bool {
        conform_format::tpm::LookaheadConstraint::is_finished(self)
    }
    fn forced_tokens(&mut self, room: u32) -> Vec<u32> {
        self.fast_forward(room)
    }
    fn is_accepting(&self) -> bool {
        conform_format::tpm::LookaheadConstraint::is_accepting(self)
    }
}

/// Work for the engine: one sequence to generate.
pub struct Job {
    pub prompt: Vec<LlamaToken>,
    pub params: SamplingParams,
    pub max_tokens: u32,
    pub stop: Vec<String>,
    pub constraint: Option<Box<dyn TokenConstraint>>,
    /// Decoupled decoding: the model writes freely first, and the constraint starts after.
    pub free_first: Option<FreeFirst>,
    pub events: mpsc::UnboundedSender<Event>,
    /// Told when the job leaves the queue for a slot (so a waiting handler can give up).
    pub admitted: Option<tokio::sync::oneshot::Sender<()>>,
}

/// The free part of a decoupled job: the model writes unconstrained until it ends its turn (or
/// `budget` runs out), then `bridge` is fed as prompt and the job's constraint takes over with
/// what is left of `max_tokens`, so closure within the budget holds for the whole response.
#[derive(Clone, Debug)]
pub struct FreeFirst {
    /// Most completion tokens the free part may use; the rest of `max_tokens` is the format's.
    pub budget: u32,
    /// Prompt tokens between the free text and the formatted answer (the chat template closing
    /// the turn and asking for the format). Counted as prompt, not completion.
    pub bridge: Vec<LlamaToken>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    Length,
}

#[derive(Clone, Debug)]
pub struct TokenLogprob {
    pub token: Vec<u8>,
    pub logprob: f32,
    pub top: Vec<(Vec<u8>, f32)>,
}

#[derive(Debug)]
pub enum Event {
    /// New text (possibly empty while a stop string or a UTF-8 character is pending) for one token.
    Token {
        text: String,
        logprob: Option<TokenLogprob>,
    },
    /// A decoupled job's free text is complete: the tokens after this are the format's.
    FormatStarts,
    Done(Summary),
    Error(String),
}

#[derive(Clone, Debug)]
pub struct Summary {
    pub finish_reason: FinishReason,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// Of `completion_tokens`, those a decoupled job wrote freely before its format.
    pub free_tokens: u32,
    /// Tokens appended by fast-forward, without sampling.
    pub forced_tokens: u32,
    /// `max_tokens` ran out before the model ended: a constrained output that is complete here
    /// (`finish_reason` "stop") was closed by the budget, not by the model.
    pub budget_spent: bool,
    /// For constrained sequences: whether the output is complete under the format.
    pub compliant: Option<bool>,
    /// For constrained sequences: how much the constraint overrode the model.
    pub format_cost: Option<FormatCost>,
}

/// What the server needs to know about the loaded model.
pub struct ModelInfo {
    pub id: String,
    pub n_vocab: u32,
    pub n_ctx_train: u32,
    pub chat_template: Option<String>,
    pub bos_token: String,
    pub eos_token: String,
    pub add_bos: bool,
    /// Exact bytes of each token's text; end-of-generation tokens.
    pub vocab: Arc<Vocab>,
    /// Identifies the weights' shape and vocabulary: a TPM distilled from another model is refused.
    pub fingerprint: String,
    /// Where the weights went, as llama.cpp's loader reported it (`CPU_Mapped`, `CUDA0`, …).
    pub weight_buffers: Vec<load::WeightBuffer>,
}

/// Live counters, for `/health` and for tests that check a slot was freed.
#[derive(Default)]
pub struct EngineStats {
    /// Sequences holding a KV slot.
    pub active: AtomicUsize,
    /// Jobs submitted but not yet admitted.
    pub queued: AtomicUsize,
}

/// Handle to the engine thread. Cheap to share; the model is shared read-only for tokenizing.
pub struct Engine {
    jobs: std::sync::mpsc::Sender<Job>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub model: Arc<LlamaModel>,
    pub info: ModelInfo,
    pub config: EngineConfig,
    pub stats: Arc<EngineStats>,
}

impl Engine {
    /// Loads the model and starts the engine thread.
    pub fn start(model_path: &Path, id: String, config: EngineConfig) -> anyhow::Result<Engine> {
        let backend = Arc::new(backend()?);
        let loaded = load::load(&backend, model_path, config.gpu_layers)
            .with_context(|| format!("loading model {}", model_path.display()))?;
        tracing::info!(buffers = ?loaded.weight_buffers, extra_buffer_types = loaded.extra_buffer_types, "weights loaded");
        let model = Arc::new(loaded.model);
        let info = model_info(&model, id, loaded.weight_buffers);
        let (jobs, queue) = std::sync::mpsc::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread_model = model.clone();
        let thread_config = config.clone();
        let vocab = info.vocab.clone();
        let stats = Arc::new(EngineStats::default());
        let thread_stats = stats.clone();
        let thread = std::thread::Builder::new().name("engine".into()).spawn(move || {
            worker::run(&backend, &thread_model, &thread_config, queue, ready_tx, &vocab, &thread_stats)
        })?;
        ready_rx.recv().map_err(|_| anyhow!("engine thread died while starting"))??;
        Ok(Engine { jobs, thread: Some(thread), model, info, config, stats })
    }

    /// Queues a job; its events arrive on the job's channel.
    pub fn submit(&self, job: Job) -> anyhow::Result<()> {
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        self.jobs.send(job).map_err(|_| anyhow!("the engine thread has stopped"))
    }

    /// Tokenizes text; `special` parses control-token text such as `<|im_start|>`.
    pub fn tokenize(&self, text: &str, add_bos: bool, special: bool) -> Vec<LlamaToken> {
        self.model.vocab().tokenize(text.as_bytes(), add_bos, special)
    }
}

impl Drop for Engine {
    /// Closes the queue and waits until the engine thread has freed its llama.cpp context. Freed
    /// while the process exits, a CUDA context aborts ("CUDA error" in its destructor, seen on an
    /// H200); the thread returns once its sequences' clients are gone.
    fn drop(&mut self) {
        drop(std::mem::replace(&mut self.jobs, std::sync::mpsc::channel().0));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// llama.cpp's backend may be initialised once per process; tests start several engines.
fn backend() -> anyhow::Result<LlamaBackend> {
    let backend = LlamaBackend::init().context("initialising llama.cpp")?;
    load::install_log();
    Ok(backend)
}

fn model_info(model: &LlamaModel, id: String, weight_buffers: Vec<load::WeightBuffer>) -> ModelInfo {
    let vocab = model.vocab();
    let tokens = Arc::new(model_vocab(model));
    let piece = |t: LlamaToken| String::from_utf8_lossy(&vocab.token_to_piece(t, true, None)).into_owned();
    ModelInfo {
        id,
        n_vocab: vocab.n_tokens() as u32,
        n_ctx_train: model.n_ctx_train(),
        chat_template: model.chat_template(None).ok().and_then(|t| t.to_string().ok()),
        bos_token: piece(vocab.bos()),
        eos_token: piece(vocab.eos()),
        add_bos: vocab.should_add_bos(),
        fingerprint: fingerprint(model, &tokens),
        vocab: tokens,
        weight_buffers,
    }
}

/// Parameter count, width, depth and every token's bytes, hashed: cheap to compute at start-up
/// (no pass over the weights) and different for any two models we could confuse.
fn fingerprint(model: &LlamaModel, vocab: &Vocab) -> String {
    let mut bytes = Vec::new();
    for n in [model.n_params(), model.n_embd() as u64, model.n_layer() as u64, vocab.len() as u64] {
        bytes.extend_from_slice(&n.to_le_bytes());
    }
    for t in 0..vocab.len() as u32 {
        bytes.extend_from_slice(vocab.token_bytes(t));
        bytes.push(0xff);
    }
    format!("{}-{:016x}", model.n_params(), crate::tpm::hmm::fnv1a(&bytes))
}
