//! Process-wide counters and histograms, rendered in Prometheus' text format at `/metrics`.
//!
//! Plain atomics rather than a metrics crate: the set is small and fixed, every update is one
//! relaxed add, and the engine thread records without locks.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// A histogram over fixed bucket bounds (seconds).
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    total: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            total: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        if let Some(i) = self.bounds.iter().position(|&b| secs <= b) {
            self.counts[i].fetch_add(1, Relaxed);
        }
        self.sum_micros.fetch_add(took.as_micros() as u64, Relaxed);
        self.total.fetch_add(1, Relaxed);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let total = self.total.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_micros.load(Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {total}");
    }
}

const LATENCY: &[f64] = &[0.0001, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    pub prompt_tokens: AtomicU64,
    pub completion_tokens: AtomicU64,
    pub forced_tokens: AtomicU64,
    pub format_compiles: AtomicU64,
    pub format_cache_hits: AtomicU64,
    pub time_to_first_token: Histogram,
    pub decode_step: Histogram,
    pub mask: Histogram,
    pub format_compile: Histogram,
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| Metrics {
        requests: Mutex::default(),
        prompt_tokens: AtomicU64::new(0),
        completion_tokens: AtomicU64::new(0),
        forced_tokens: AtomicU64::new(0),
        format_compiles: AtomicU64::new(0),
        format_cache_hits: AtomicU64::new(0),
        time_to_first_token: Histogram::new(LATENCY),
        decode_step: Histogram::new(LATENCY),
        mask: Histogram::new(LATENCY),
        format_compile: Histogram::new(LATENCY),
    })
}

impl Metrics {
    pub fn request(&self, route: &str, status: u16) {
        *self.requests.lock().unwrap().entry((route.to_string(), status)).or_default() += 1;
    }

    /// The text exposition; `gauges` are point-in-time values the caller reads (queue, slots).
    pub fn render(&self, gauges: &[(&str, &str, u64)]) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP conform_requests_total HTTP requests by route and status.\n# TYPE conform_requests_total counter\n",
        );
        for ((route, status), n) in self.requests.lock().unwrap().iter() {
            let _ = writeln!(out, "conform_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}");
        }
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        }
        let counters = [
            ("conform_prompt_tokens_total", "Prompt tokens of finished sequences.", &self.prompt_tokens),
            ("conform_completion_tokens_total", "Tokens generated (sampled or forced).", &self.completion_tokens),
            ("conform_forced_tokens_total", "Tokens appended by format fast-forward.", &self.forced_tokens),
            ("conform_format_compiles_total", "Formats compiled.", &self.format_compiles),
            (
                "conform_format_cache_hits_total",
                "Formats served from the compiled-format cache.",
                &self.format_cache_hits,
            ),
        ];
        for (name, help, counter) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", counter.load(Relaxed));
        }
        self.time_to_first_token.render(
            "conform_time_to_first_token_seconds",
            "From admission to the first token.",
            &mut out,
        );
        self.decode_step.render("conform_decode_step_seconds", "One batched llama.cpp decode call.", &mut out);
        self.mask.render("conform_mask_seconds", "Applying a format mask to one token's logits.", &mut out);
        self.format_compile.render(
            "conform_format_compile_seconds",
            "Compiling a format that was not cached.",
            &mut out,
        );
        out
    }
}
