//! The engine thread's loop: admit jobs into free sequence slots, decode one batch, sample.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use super::sampling::{pipeline, LogitProcessor, Sampler};
use super::text::TextStream;
use super::{EngineConfig, EngineStats, Event, FinishReason, FormatCost, FreeFirst, Job, Summary, TokenLogprob};
use crate::metrics::metrics;
use crate::vocab::Vocab;

/// One active sequence, living in KV-cache slot `slot`.
struct Sequence {
    slot: i32,
    job: Job,
    /// Tokens not yet in the KV cache: the prompt at first, then each sampled or forced token.
    pending: Vec<LlamaToken>,
    /// Tokens already in the KV cache (the position of the next token).
    n_past: usize,
    /// Index in the current batch whose logits belong to this sequence.
    logits_at: Option<i32>,
    generated: u32,
    forced: u32,
    /// A decoupled job still in its free part (the constraint waits).
    free: Option<FreeFirst>,
    free_tokens: u32,
    /// Prompt tokens fed, the bridge of a decoupled job included.
    prompt_tokens: u32,
    /// Ended because `max_tokens` ran out, not by the model or the format.
    budget_spent: bool,
    cost: FormatCost,
    /// Scratch: the logits before the constraint masked them, to measure its cost.
    unmasked: Vec<f32>,
    counts: HashMap<u32, u32>,
    processors: Vec<Box<dyn LogitProcessor>>,
    sampler: Sampler,
    text: TextStream,
    admitted: std::time::Instant,
}

impl Sequence {
    fn new(slot: i32, mut job: Job) -> Self {
        Sequence {
            slot,
            pending: job.prompt.clone(),
            n_past: 0,
            logits_at: None,
            generated: 0,
            forced: 0,
            free: job.free_first.take(),
            free_tokens: 0,
            prompt_tokens: job.prompt.len() as u32,
            budget_spent: false,
            cost: FormatCost::default(),
            unmasked: Vec::new(),
            counts: HashMap::new(),
            processors: pipeline(&job.params),
            sampler: Sampler::new(job.params.clone()),
            text: TextStream::new(job.stop.clone()),
            admitted: std::time::Instant::now(),
            job,
        }
    }

    fn summary(&self, finish_reason: FinishReason) -> Summary {
        Summary {
            finish_reason,
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.generated,
            free_tokens: self.free_tokens,
            forced_tokens: self.forced,
            budget_spent: self.budget_spent,
            compliant: self.job.constraint.as_ref().map(|c| c.is_accepting()),
            format_cost: self.job.constraint.is_some().then_some(self.cost),
        }
    }

    /// Ends the free part: its last text goes out, the bridge is fed as prompt, and the
    /// constraint holds from the next token on.
    fn start_format(&mut self) -> Outcome {
        let Some(free) = self.free.take() else { return Outcome::Continue };
        self.free_tokens = self.generated;
        self.prompt_tokens += free.bridge.len() as u32;
        let rest = std::mem::replace(&mut self.text, TextStream::new(self.job.stop.clone())).finish();
        let events = [Event::Token { text: rest, logprob: None }, Event::FormatStarts];
        if events.into_iter().any(|e| self.job.events.send(e).is_err()) {
            return Outcome::Finished(FinishReason::Stop);
        }
        self.pending.extend(free.bridge);
        Outcome::Continue
    }
}

/// What became of a sequence after a sampling step.
enum Outcome {
    Continue,
    Finished(FinishReason),
    Failed(String),
}

pub(super) fn run(
    backend: &LlamaBackend,
    model: &LlamaModel,
    config: &EngineConfig,
    queue: Receiver<Job>,
    ready: Sender<anyhow::Result<()>>,
    vocab: &Vocab,
    stats: &EngineStats,
) {
    // Each sequence gets its own full window, so one long request never starves another.
    let n_ctx = config.ctx_size * config.parallel;
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(config.batch_size)
        .with_n_ubatch(config.batch_size)
        .with_n_seq_max(config.parallel)
        .with_n_threads(config.threads)
        .with_n_threads_batch(config.threads)
        .with_kv_unified(false);
    let mut ctx = match model.new_context(backend, params) {
        Ok(ctx) => {
            let _ = ready.send(Ok(()));
            ctx
        }
        Err(e) => {
            let _ = ready.send(Err(anyhow::anyhow!("creating the llama.cpp context: {e}")));
            return;
        }
    };
    let n_vocab = model.vocab().n_tokens() as usize;
    // Logprobs name control tokens (`<|im_end|>`) by their text, though they add none to output.
    let names = TokenNames {
        vocab,
        control: (0..n_vocab as u32)
            .filter(|&t| vocab.token_bytes(t).is_empty())
            .map(|t| (t, model.vocab().token_to_piece(LlamaToken(t as i32), true, None)))
            .collect(),
    };
    let mut batch = LlamaBatch::new(config.batch_size as usize, 1);
    let mut free_slots: Vec<i32> = (0..config.parallel as i32).rev().collect();
    let mut active: Vec<Sequence> = Vec::new();
    let mut waiting: std::collections::VecDeque<Job> = std::collections::VecDeque::new();
    let mut logits = vec![0f32; n_vocab];

    loop {
        stats.active.store(active.len(), Ordering::Relaxed);
        // Take every submitted job into `waiting`; block only when there is nothing else to do.
        if active.is_empty() && waiting.is_empty() {
            match queue.recv() {
                Ok(job) => waiting.push_back(job),
                Err(_) => return,
            }
        }
        loop {
            match queue.try_recv() {
                Ok(job) => waiting.push_back(job),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) if active.is_empty() && waiting.is_empty() => return,
                Err(TryRecvError::Disconnected) => break,
            }
        }
        // A client that gave up while queued (disconnect, queue timeout) leaves the queue now.
        let before = waiting.len();
        waiting.retain(|job| !job.events.is_closed());
        stats.queued.fetch_sub(before - waiting.len(), Ordering::Relaxed);
        while !free_slots.is_empty() {
            let Some(mut job) = waiting.pop_front() else { break };
            let admitted = job.admitted.take();
            let slot = free_slots.pop().expect("checked non-empty");
            active.push(Sequence::new(slot, job));
            // Count the slot as taken before the job leaves the queue and before its client
            // hears of it: admission control reads both counters, and must never see a job in
            // neither (it would let one request too many into the queue).
            stats.active.store(active.len(), Ordering::SeqCst);
            stats.queued.fetch_sub(1, Ordering::SeqCst);
            if let Some(admitted) = admitted {
                let _ = admitted.send(());
            }
        }

        // A client that went away stops costing compute now.
        active.retain(|seq| {
            let gone = seq.job.events.is_closed();
            if gone {
                release(&mut ctx, &mut free_slots, seq.slot);
            }
            !gone
        });
        stats.active.store(active.len(), Ordering::Relaxed);
        if active.is_empty() {
            continue;
        }

        fill_batch(&mut batch, &mut active, config.batch_size as usize);
        let decode_start = std::time::Instant::now();
        let decoded = ctx.decode(&mut batch);
        metrics().decode_step.observe(decode_start.elapsed());
        if let Err(e) = decoded {
            tracing::error!("decode failed: {e}");
            for seq in active.drain(..) {
                let _ = seq.job.events.send(Event::Error(format!("decode failed: {e}")));
                release(&mut ctx, &mut free_slots, seq.slot);
            }
            continue;
        }

        let mut i = 0;
        while i < active.len() {
            let outcome = match active[i].logits_at.take() {
                Some(at) => {
                    logits.copy_from_slice(&ctx.get_logits_ith(at)[..n_vocab]);
                    // A bug in one sequence's sampling or format code fails that request only;
                    // the engine thread, and every other sequence, carry on.
                    let seq = &mut active[i];
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| step(seq, &mut logits, &names)))
                        .unwrap_or_else(|_| Outcome::Failed("internal error while sampling".into()))
                }
                None => Outcome::Continue,
            };
            match outcome {
                Outcome::Continue => i += 1,
                // The slot is free (and counted free) before the client hears the end, so a
                // follow-up request never sees a stale busy server.
                Outcome::Finished(reason) => {
                    let mut seq = active.swap_remove(i);
                    release(&mut ctx, &mut free_slots, seq.slot);
                    stats.active.store(active.len(), Ordering::Relaxed);
                    let m = metrics();
                    m.prompt_tokens.fetch_add(seq.job.prompt.len() as u64, Ordering::Relaxed);
                    m.completion_tokens.fetch_add(seq.generated as u64, Ordering::Relaxed);
                    m.forced_tokens.fetch_add(seq.forced as u64, Ordering::Relaxed);
                    let rest = seq.text.finish();
                    if !rest.is_empty() {
                        let _ = seq.job.events.send(Event::Token { text: rest, logprob: None });
                    }
                    let _ = seq.job.events.send(Event::Done(seq.summary(reason)));
                }
                Outcome::Failed(message) => {
                    let seq = active.swap_remove(i);
                    release(&mut ctx, &mut free_slots, seq.slot);
                    stats.active.store(active.len(), Ordering::Relaxed);
                    let _ = seq.job.events.send(Event::Error(message));
                }
            }
        }
    }
}

/// Puts pending tokens of every sequence into one batch. Generating sequences (one pending
/// token) go first so that a long prefill never stalls them; prefills share what is left.
fn fill_batch(batch: &mut LlamaBatch, active: &mut [Sequence], capacity: usize) {
    batch.clear();
    active.sort_by_key(|seq| seq.pending.len());
    let mut room = capacity;
    for seq in active.iter_mut() {
        let take = seq.pending.len().min(room);
        if take == 0 {
            continue;
        }
        let finishes = take == seq.pending.len();
        for (k, &token) in seq.pending[..take].iter().enumerate() {
            let wants_logits = finishes && k + 1 == take;
            batch.add(token, (seq.n_past + k) as i32, &[seq.slot], wants_logits).expect("batch sized to capacity");
        }
        if finishes {
            seq.logits_at = Some(batch.n_tokens() - 1);
        }
        seq.pending.drain(..take);
        seq.n_past += take;
        room -= take;
    }
}

/// Samples the next token for a sequence whose logits are in `logits`, and reports it.
/// What a token is called in logprobs: its text, or a control token's own spelling.
struct TokenNames<'a> {
    vocab: &'a Vocab,
    control: HashMap<u32, Vec<u8>>,
}

impl TokenNames<'_> {
    fn name(&self, token: u32) -> Vec<u8> {
        self.control.get(&token).cloned().unwrap_or_else(|| self.vocab.token_bytes(token).to_vec())
    }
}

fn step(seq: &mut Sequence, logits: &mut [f32], names: &TokenNames) -> Outcome {
    let vocab = names.vocab;
    if seq.generated >= seq.job.max_tokens {
        seq.budget_spent = true;
        return Outcome::Finished(FinishReason::Length);
    }
    if seq.free.as_ref().is_some_and(|free| seq.generated >= free.budget) {
        return seq.start_format();
    }
    for stage in &mut seq.processors {
        stage.process(logits, &seq.counts);
    }
    let remaining_after = seq.job.max_tokens - seq.generated - 1;
    // The constraint waits while a decoupled job writes freely.
    let constrained = seq.free.is_none();
    if let Some(constraint) = seq.job.constraint.as_mut().filter(|_| constrained) {
        seq.unmasked.clear();
        seq.unmasked.extend_from_slice(logits);
        let start = std::time::Instant::now();
        constraint.mask(logits, remaining_after);
        metrics().mask.observe(start.elapsed());
        seq.cost.observe(&seq.unmasked, logits);
    }
    let Some(sampled) = seq.sampler.sample(logits) else {
        return Outcome::Failed("no token is allowed at this point (format dead end)".into());
    };
    let token = sampled.token;
    if seq.generated == 0 {
        metrics().time_to_first_token.observe(seq.admitted.elapsed());
    }
    if vocab.is_eog(token) && seq.free.is_some() {
        // The model ended its free text; the bridge closes its turn in the template's words.
        return seq.start_format();
    }
    seq.generated += 1;
    if vocab.is_eog(token) {
        return Outcome::Finished(FinishReason::Stop);
    }
    *seq.counts.entry(token).or_default() += 1;
    let logprob = sampled.logprob.map(|logprob| TokenLogprob {
        token: names.name(token),
        logprob,
        top: sampled.top.iter().map(|&(t, lp)| (names.name(t), lp)).collect(),
    });
    let mut new_tokens = vec![token];
    if let Some(constraint) = seq.job.constraint.as_mut().filter(|_| constrained) {
        if let Err(e) = constraint.accept(token) {
            return Outcome::Failed(format!("format engine rejected a sampled token: {e}"));
        }
        if !constraint.is_finished() {
            let forced = constraint.forced_tokens(seq.job.max_tokens - seq.generated);
            seq.generated += forced.len() as u32;
            seq.forced += forced.len() as u32;
            new_tokens.extend(forced);
        }
    }
    let mut first = true;
    for &t in &new_tokens {
        let released = seq.text.push(vocab.token_bytes(t));
        let logprob = if first { logprob.clone() } else { None };
        first = false;
        if seq.job.events.send(Event::Token { text: released.text, logprob }).is_err() {
            return Outcome::Finished(FinishReason::Stop);
        }
        if released.stopped {
            if seq.free.is_some() {
                // A stop string ends the free text, not the response.
                return seq.start_format();
            }
            return Outcome::Finished(FinishReason::Stop);
        }
    }
    seq.pending.extend(new_tokens.iter().map(|&t| LlamaToken(t as i32)));
    if seq.free.is_none() && seq.job.constraint.as_ref().is_some_and(|c| c.is_finished()) {
        return Outcome::Finished(FinishReason::Stop);
    }
    if seq.generated >= seq.job.max_tokens {
        seq.budget_spent = true;
        let accepting = seq.job.constraint.as_ref().is_some_and(|c| c.is_accepting());
        return Outcome::Finished(if accepting { FinishReason::Stop } else { FinishReason::Length });
    }
    Outcome::Continue
}

fn release(ctx: &mut LlamaContext, free_slots: &mut Vec<i32>, slot: i32) {
    if let Err(e) = ctx.clear_kv_cache_seq(Some(slot as u32), None, None) {
        tracing::error!("clearing KV of slot {slot}: {e}");
    }
    free_slots.push(slot);
}
