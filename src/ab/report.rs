//! What a run found: per-item results, per-arm statistics, and the files `report.json` and
//! `report.html` in the output directory.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::{Serialize, Serializer};

use super::client::FormatCost;
use super::suite::{Prompt, Suite};
use super::{Arm, Config};

#[derive(Serialize, Clone, Debug)]
pub struct ItemResult {
    pub id: String,
    pub arm: Arm,
    pub output: String,
    pub compliant: bool,
    /// `None` when the item has nothing to score against.
    pub correct: Option<bool>,
    /// Completion tokens, as the server counts them.
    pub tokens: u64,
    pub finish_reason: String,
    pub latency_s: f64,
    /// The server's refusal (e.g. a schema it cannot compile); such an item complies with
    /// nothing and counts as wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// IFEval: each instruction of the prompt and whether the output follows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<Vec<InstructionResult>>,
    /// Tool calls: `[made, arguments parse, arguments validate]` (see
    /// [`super::format::TaskFormat::call_counts`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<[usize; 3]>,
    /// What the format cost the model (constrained arms of conform).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format_cost: Option<FormatCost>,
}

/// The format's cost over one arm's answered items: the number every change to how formats
/// constrain is judged by, beside accuracy.
#[derive(Serialize, Clone, Debug, Default)]
pub struct CostStats {
    /// Mean over items of Σ −ln(allowed mass), nats.
    pub mean_nats: f64,
    /// Nats per sampled step, over all items' steps.
    pub nats_per_step: f64,
    /// Share of sampled steps whose most likely token was not allowed.
    pub overridden_share: f64,
    pub sampled_steps: u64,
}

/// The tool calls of one arm, over all its items.
#[derive(Serialize, Clone, Debug, Default)]
pub struct CallStats {
    pub made: usize,
    /// Share of the calls whose arguments parse as a JSON object.
    pub parse: f64,
    /// Share of the calls of an offered function whose arguments validate against its schema.
    pub valid: f64,
}

#[derive(Serialize, Clone, Debug)]
pub struct InstructionResult {
    pub id: String,
    pub followed: bool,
}

/// IFEval's instruction-level view of one arm.
#[derive(Serialize, Clone, Debug, Default)]
pub struct InstructionStats {
    /// Followed instructions over all instructions (refused items count as not followed).
    pub accuracy: f64,
    pub n: usize,
    /// Per instruction id: `[followed, total]`.
    pub by_id: BTreeMap<String, [usize; 2]>,
}

#[derive(Serialize, Clone, Debug)]
pub struct ArmStats {
    #[serde(skip)]
    pub arm: Arm,
    pub n: usize,
    pub compliance: f64,
    pub compliance_se: f64,
    /// Over the scored items; `None` when none is scored.
    pub accuracy: Option<f64>,
    pub accuracy_se: Option<f64>,
    pub scored: usize,
    pub mean_tokens: f64,
    /// Completion tokens per second of request time (each request's own decode speed, so
    /// concurrency does not inflate it).
    pub tokens_per_s: f64,
    pub finish_reasons: BTreeMap<String, usize>,
    pub errors: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instruction_level: Option<InstructionStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<CallStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format_cost: Option<CostStats>,
}

/// Two arms on the same scored items: where each was right and the other wrong (the
/// discordant pairs), and the exact two-sided sign test on them. This answers "does this arm
/// cost accuracy?" without the noise the items share.
#[derive(Serialize, Clone, Debug)]
pub struct Comparison {
    pub a: Arm,
    pub b: Arm,
    pub both: usize,
    pub a_only: usize,
    pub b_only: usize,
    pub neither: usize,
    /// Probability of discordant pairs at least this lopsided if both arms were as accurate.
    pub p_value: f64,
}

impl Comparison {
    fn of(a: Arm, b: Arm, items: &[ItemResult]) -> Option<Comparison> {
        let scored = |arm: Arm| -> BTreeMap<&str, bool> {
            items.iter().filter(|i| i.arm == arm).filter_map(|i| Some((i.id.as_str(), i.correct?))).collect()
        };
        let (left, right) = (scored(a), scored(b));
        let mut counts = [0usize; 4];
        for (id, &x) in &left {
            if let Some(&y) = right.get(id) {
                counts[(x as usize) << 1 | y as usize] += 1;
            }
        }
        let [neither, b_only, a_only, both] = counts;
        (counts.iter().sum::<usize>() > 0).then(|| Comparison {
            a,
            b,
            both,
            a_only,
            b_only,
            neither,
            p_value: sign_test(a_only, b_only),
        })
    }
}

/// The exact two-sided sign test: 2·P(X ≤ min(x, y)) for X ~ Binomial(x + y, 1/2), capped at 1.
fn sign_test(x: usize, y: usize) -> f64 {
    let n = x + y;
    let ln_half_n = n as f64 * 0.5f64.ln();
    let mut ln_choose = 0.0; // ln C(n, 0)
    let mut tail = 0.0;
    for k in 0..=x.min(y) {
        if k > 0 {
            ln_choose += ((n - k + 1) as f64 / k as f64).ln();
        }
        tail += (ln_choose + ln_half_n).exp();
    }
    (2.0 * tail).min(1.0)
}

#[derive(Serialize, Clone, Debug)]
pub struct Report {
    pub suite: Suite,
    pub model: String,
    /// Tasks; each ran once per arm.
    pub n: usize,
    pub prompt: Prompt,
    pub config: Config,
    #[serde(serialize_with = "arms_by_name")]
    pub arms: Vec<ArmStats>,
    /// Every pair of arms, in the order given, on the items both scored.
    pub comparisons: Vec<Comparison>,
    pub items: Vec<ItemResult>,
}

fn arms_by_name<S: Serializer>(arms: &[ArmStats], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_map(arms.iter().map(|a| (a.arm.name(), a)))
}

impl Report {
    pub fn new(config: &Config, model: &str, n: usize, items: Vec<ItemResult>) -> Report {
        let arms = config.arms.iter().map(|&arm| ArmStats::of(arm, items.iter().filter(|i| i.arm == arm))).collect();
        let comparisons = (0..config.arms.len())
            .flat_map(|i| (i + 1..config.arms.len()).map(move |j| (i, j)))
            .filter_map(|(i, j)| Comparison::of(config.arms[i], config.arms[j], &items))
            .collect();
        Report {
            suite: config.suite,
            model: model.to_string(),
            n,
            prompt: config.prompt,
            config: config.clone(),
            arms,
            comparisons,
            items,
        }
    }

    /// Writes `report.json` and `report.html` into `dir` (created if missing).
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(self)?)?;
        std::fs::write(dir.join("report.html"), super::html::render(self))?;
        Ok(())
    }

    /// A plain-text table for the terminal.
    pub fn summary(&self) -> String {
        let prompt = if self.prompt == Prompt::Task { "task-only" } else { "task + format" };
        let mut out = format!("{} on {} ({} tasks, {prompt} prompt)\n", self.model, self.config.data.display(), self.n);
        let width = self.arms.iter().map(|a| a.arm.name().len()).max().unwrap_or(0).max(10);
        out += &format!(
            "{:<width$} {:>12} {:>18} {:>11} {:>8} {:>7}\n",
            "arm", "compliance", "accuracy ± se", "mean tok", "tok/s", "errors"
        );
        for a in &self.arms {
            let accuracy = match (a.accuracy, a.accuracy_se) {
                (Some(acc), Some(se)) => format!("{:.1}% ± {:.1}", acc * 100.0, se * 100.0),
                _ => "-".into(),
            };
            out += &format!(
                "{:<width$} {:>11.1}% {:>18} {:>11.1} {:>8.1} {:>7}\n",
                a.arm.name(),
                a.compliance * 100.0,
                accuracy,
                a.mean_tokens,
                a.tokens_per_s,
                a.errors
            );
        }
        for a in &self.arms {
            if let Some(cost) = &a.format_cost {
                out += &format!(
                    "{:<width$} format cost: {:.2} nats an answer, {:.3} nats a sampled step, {:.1}% of steps overridden\n",
                    a.arm.name(),
                    cost.mean_nats,
                    cost.nats_per_step,
                    cost.overridden_share * 100.0
                );
            }
            if let Some(calls) = &a.tool_calls {
                out += &format!(
                    "{:<width$} tool calls: {} made, {:.1}% parse, {:.1}% validate\n",
                    a.arm.name(),
                    calls.made,
                    calls.parse * 100.0,
                    calls.valid * 100.0
                );
            }
        }
        for c in &self.comparisons {
            out += &format!(
                "{} vs {}: right only in {}: {}, only in {}: {}, both {}, neither {}; sign test p = {:.3}\n",
                c.a.name(),
                c.b.name(),
                c.a.name(),
                c.a_only,
                c.b.name(),
                c.b_only,
                c.both,
                c.neither,
                c.p_value
            );
        }
        out
    }
}

impl ArmStats {
    fn of<'a>(arm: Arm, items: impl Iterator<Item = &'a ItemResult>) -> ArmStats {
        let items: Vec<&ItemResult> = items.collect();
        let n = items.len();
        let compliance = share(items.iter().filter(|i| i.compliant).count(), n);
        let scored: Vec<bool> = items.iter().filter_map(|i| i.correct).collect();
        let accuracy = (!scored.is_empty()).then(|| share(scored.iter().filter(|&&c| c).count(), scored.len()));
        let answered: Vec<&&ItemResult> = items.iter().filter(|i| i.error.is_none()).collect();
        let tokens: u64 = answered.iter().map(|i| i.tokens).sum();
        let seconds: f64 = answered.iter().map(|i| i.latency_s).sum();
        let mut finish_reasons = BTreeMap::new();
        for item in &items {
            *finish_reasons.entry(item.finish_reason.clone()).or_insert(0) += 1;
        }
        let instruction_level = items.iter().any(|i| i.instructions.is_some()).then(|| {
            let mut stats = InstructionStats::default();
            for result in items.iter().flat_map(|i| i.instructions.iter().flatten()) {
                let entry = stats.by_id.entry(result.id.clone()).or_default();
                entry[0] += result.followed as usize;
                entry[1] += 1;
            }
            let (followed, total) = stats.by_id.values().fold((0, 0), |(f, t), [a, b]| (f + a, t + b));
            stats.n = total;
            stats.accuracy = share(followed, total);
            stats
        });
        let tool_calls = items.iter().any(|i| i.tool_calls.is_some()).then(|| {
            let [made, parse, valid] =
                items.iter().filter_map(|i| i.tool_calls).fold([0; 3], |a, c| [a[0] + c[0], a[1] + c[1], a[2] + c[2]]);
            CallStats { made, parse: share(parse, made), valid: share(valid, made) }
        });
        let costs: Vec<FormatCost> = items.iter().filter_map(|i| i.format_cost).collect();
        let format_cost = (!costs.is_empty()).then(|| {
            let nats: f64 = costs.iter().map(|c| c.nats).sum();
            let steps: u64 = costs.iter().map(|c| c.sampled_steps).sum();
            let overridden: u64 = costs.iter().map(|c| c.overridden_steps).sum();
            let per_step = |x: f64| if steps == 0 { 0.0 } else { x / steps as f64 };
            CostStats {
                mean_nats: nats / costs.len() as f64,
                nats_per_step: per_step(nats),
                overridden_share: per_step(overridden as f64),
                sampled_steps: steps,
            }
        });
        ArmStats {
            arm,
            n,
            compliance,
            compliance_se: standard_error(compliance, n),
            accuracy,
            accuracy_se: accuracy.map(|p| standard_error(p, scored.len())),
            scored: scored.len(),
            mean_tokens: if answered.is_empty() { 0.0 } else { tokens as f64 / answered.len() as f64 },
            tokens_per_s: if seconds > 0.0 { tokens as f64 / seconds } else { 0.0 },
            finish_reasons,
            errors: n - answered.len(),
            instruction_level,
            tool_calls,
            format_cost,
        }
    }
}

fn share(count: usize, total: usize) -> f64 {
    if total == 0 {
        0.0
    } else {
        count as f64 / total as f64
    }
}

/// The standard error of a proportion `p` measured on `n` items.
fn standard_error(p: f64, n: usize) -> f64 {
    if n == 0 {
        0.0
    } else {
        (p * (1.0 - p) / n as f64).sqrt()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ab::Decoding;

    pub fn item(arm: Arm, compliant: bool, correct: Option<bool>, tokens: u64, finish_reason: &str) -> ItemResult {
        ItemResult {
            id: "i".into(),
            arm,
            output: "o".into(),
            compliant,
            correct,
            tokens,
            finish_reason: finish_reason.into(),
            latency_s: 0.5,
            error: None,
            instructions: None,
            tool_calls: None,
            format_cost: None,
        }
    }

    #[test]
    fn format_cost_is_averaged_per_answer_and_per_step() {
        let mut a = item(Arm::from(Decoding::Mask), true, None, 10, "stop");
        a.format_cost = Some(FormatCost { nats: 3.0, sampled_steps: 10, overridden_steps: 1 });
        let mut b = item(Arm::from(Decoding::Mask), true, None, 30, "stop");
        b.format_cost = Some(FormatCost { nats: 1.0, sampled_steps: 30, overridden_steps: 3 });
        let stats = ArmStats::of(Arm::from(Decoding::Mask), [a, b].iter());
        let cost = stats.format_cost.unwrap();
        assert_eq!(cost.mean_nats, 2.0);
        assert_eq!(cost.nats_per_step, 0.1);
        assert_eq!(cost.overridden_share, 0.1);
        assert!(ArmStats::of(
            Arm::from(Decoding::Free),
            [item(Arm::from(Decoding::Free), true, None, 5, "stop")].iter()
        )
        .format_cost
        .is_none());
    }

    pub fn report() -> Report {
        let config = Config {
            suite: Suite::Gsm8k,
            data: "x.jsonl".into(),
            arms: vec![Arm::from(Decoding::Free), Arm::from(Decoding::Mask)],
            prompt: Prompt::Format,
            limit: None,
            concurrency: 1,
            seed: 0,
            max_tokens: 64,
            temperature: 0.0,
            format_options: None,
            tool_choice: None,
        };
        let mut refused = item(Arm::from(Decoding::Mask), false, Some(false), 0, "error");
        refused.error = Some("400: unsupported".into());
        let items = vec![
            item(Arm::from(Decoding::Free), false, Some(true), 10, "stop"),
            item(Arm::from(Decoding::Mask), true, Some(true), 20, "stop"),
            item(Arm::from(Decoding::Free), true, Some(false), 30, "length"),
            item(Arm::from(Decoding::Mask), true, Some(true), 40, "stop"),
            item(Arm::from(Decoding::Free), false, Some(false), 50, "length"),
            refused,
        ];
        Report::new(&config, "m", 3, items)
    }

    #[test]
    fn arm_statistics() {
        let report = report();
        let free = &report.arms[0];
        assert_eq!((free.arm, free.n, free.errors), (Arm::from(Decoding::Free), 3, 0));
        assert!((free.compliance - 1.0 / 3.0).abs() < 1e-12);
        assert!((free.accuracy.unwrap() - 1.0 / 3.0).abs() < 1e-12);
        assert!((free.accuracy_se.unwrap() - (2.0f64 / 27.0).sqrt()).abs() < 1e-12);
        assert_eq!(free.mean_tokens, 30.0);
        assert_eq!(free.tokens_per_s, 60.0);
        assert_eq!(free.finish_reasons, BTreeMap::from([("length".to_string(), 2), ("stop".to_string(), 1)]));
        let mask = &report.arms[1];
        assert_eq!((mask.n, mask.errors), (3, 1));
        assert!((mask.accuracy.unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(mask.mean_tokens, 30.0, "refused items do not count towards tokens");
    }

    #[test]
    fn paired_comparisons_count_discordant_items() {
        let report = report();
        let [c] = report.comparisons.as_slice() else { panic!("two arms, one pair: {:?}", report.comparisons) };
        assert_eq!((c.a.name().as_str(), c.b.name().as_str()), ("free", "mask"));
        let free = Arm::from(Decoding::Free);
        let mask = Arm::from(Decoding::Mask);
        let mut items = Vec::new();
        for (k, (x, y)) in [(true, false), (false, true), (false, true), (false, true), (true, true), (false, false)]
            .into_iter()
            .enumerate()
        {
            for (arm, correct) in [(free, x), (mask, y)] {
                let mut i = item(arm, true, Some(correct), 1, "stop");
                i.id = format!("t{k}");
                items.push(i);
            }
        }
        let c = Comparison::of(free, mask, &items).unwrap();
        assert_eq!((c.both, c.a_only, c.b_only, c.neither), (1, 1, 3, 1));
        // P(X <= 1) for Binomial(4, 1/2) = 5/16, two-sided 10/16.
        assert!((c.p_value - 0.625).abs() < 1e-12, "{}", c.p_value);
        assert_eq!(sign_test(0, 0), 1.0);
        assert!((sign_test(0, 10) - 2.0 / 1024.0).abs() < 1e-12);
        assert!(sign_test(0, 2000) < 1e-300 && sign_test(1000, 1000) == 1.0);
    }

    #[test]
    fn the_json_has_the_documented_fields() {
        let value = serde_json::to_value(report()).unwrap();
        for key in ["suite", "model", "n", "arms", "comparisons", "items"] {
            assert!(value.get(key).is_some(), "{key}");
        }
        assert_eq!(value["suite"], "gsm8k");
        let arms: Vec<&String> = value["arms"].as_object().unwrap().keys().collect();
        assert_eq!(arms, ["free", "mask"]);
        for key in ["n", "compliance", "accuracy", "accuracy_se", "mean_tokens", "tokens_per_s", "finish_reasons"] {
            assert!(value["arms"]["mask"].get(key).is_some(), "{key}");
        }
        for key in ["id", "arm", "output", "compliant", "correct", "tokens", "finish_reason", "latency_s"] {
            assert!(value["items"][0].get(key).is_some(), "{key}");
        }
        assert_eq!(value["items"][5]["error"], "400: unsupported");
    }
}
