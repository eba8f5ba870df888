//! `report.html`: one self-contained page (inline CSS and SVG, no scripts, no external assets)
//! that opens offline: the per-arm table, accuracy and compliance bars with ±1 standard-error
//! whiskers, token-count histograms per arm, IFEval's per-instruction table, and every item's
//! output.

use std::fmt::Write;

use super::report::{ArmStats, Comparison, InstructionStats, Report};
use super::suite::Prompt;
use super::{Arm, Decoding};

pub fn render(report: &Report) -> String {
    let mut page = String::new();
    let title = format!("conform ab: {} on {}", report.suite.name(), report.model);
    let _ = write!(
        page,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n",
        escape(&title)
    );
    let c = &report.config;
    let _ = write!(
        page,
        "<h1>{}</h1>\n<p>{} tasks from <code>{}</code>, {} prompt, max_tokens {}, temperature {}, seed {}.</p>\n",
        escape(&title),
        report.n,
        escape(&c.data.display().to_string()),
        if report.prompt == Prompt::Task { "task-only" } else { "task + format" },
        c.max_tokens,
        c.temperature,
        c.seed
    );
    page += &table(&report.arms);
    page += &comparison_table(&report.comparisons);
    page += "<div class=\"charts\">\n";
    page += &bar_chart("Accuracy", report.arms.iter().map(|a| (a.arm, a.accuracy, a.accuracy_se.unwrap_or(0.0))));
    page += &bar_chart("Compliance", report.arms.iter().map(|a| (a.arm, Some(a.compliance), a.compliance_se)));
    if report.arms.iter().any(|a| a.format_cost.is_some()) {
        let overridden = |a: &ArmStats| a.format_cost.as_ref().map(|c| c.overridden_share);
        page += &bar_chart("Steps the format overrode", report.arms.iter().map(|a| (a.arm, overridden(a), 0.0)));
    }
    page += "</div>\n<h2>Completion tokens</h2>\n<div class=\"charts\">\n";
    let max_tokens = report.items.iter().map(|i| i.tokens).max().unwrap_or(0).max(1);
    for arm in &report.arms {
        let tokens: Vec<u64> =
            report.items.iter().filter(|i| i.arm == arm.arm && i.error.is_none()).map(|i| i.tokens).collect();
        page += &histogram(arm.arm, &tokens, max_tokens);
    }
    page += "</div>\n";
    page += &instruction_table(&report.arms);
    page += &items(report);
    page += "</body></html>\n";
    page
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:70em}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}\
th{background:#f4f4f4}td.l{text-align:left}.charts{display:flex;flex-wrap:wrap;gap:1.5em}\
pre{white-space:pre-wrap;margin:0;font-size:.85em;max-width:50em}details{margin-top:2em}\
.ok{color:#1a7f37}.no{color:#c62828}";

fn color(arm: Arm) -> &'static str {
    match arm.decoding {
        Decoding::Free => "#8a8a8a",
        Decoding::Mask => "#2a6fdb",
        Decoding::Lookahead => "#d98c1a",
        Decoding::LookaheadUniform => "#b05fc4",
        Decoding::Decoupled => "#2e9e5b",
    }
}

fn percent(p: Option<f64>, se: Option<f64>) -> String {
    match (p, se) {
        (Some(p), Some(se)) => format!("{:.1}% ± {:.1}", p * 100.0, se * 100.0),
        (Some(p), None) => format!("{:.1}%", p * 100.0),
        _ => "–".into(),
    }
}

fn table(arms: &[ArmStats]) -> String {
    let mut out = String::from(
        "<table><tr><th>arm</th><th>n</th><th>compliance</th><th>accuracy</th><th>scored</th><th>mean tokens</th>\
         <th>tokens/s</th><th>format cost (nats an answer / a step, steps overridden)</th><th>finish reasons</th><th>errors</th></tr>\n",
    );
    for a in arms {
        let reasons: Vec<String> = a.finish_reasons.iter().map(|(r, n)| format!("{r}: {n}")).collect();
        let cost = match &a.format_cost {
            Some(c) => format!("{:.2} / {:.3}, {:.1}%", c.mean_nats, c.nats_per_step, c.overridden_share * 100.0),
            None => "–".into(),
        };
        let _ = writeln!(
            out,
            "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{}</td><td class=\"l\">{}</td><td>{}</td></tr>",
            a.arm.name(),
            a.n,
            percent(Some(a.compliance), Some(a.compliance_se)),
            percent(a.accuracy, a.accuracy_se),
            a.scored,
            a.mean_tokens,
            a.tokens_per_s,
            cost,
            escape(&reasons.join(", ")),
            a.errors
        );
    }
    out + "</table>\n"
}

/// Paired comparisons of arms on the items both scored (empty without scores).
fn comparison_table(comparisons: &[Comparison]) -> String {
    if comparisons.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "<h2>Paired comparisons</h2>\n<table><tr><th>arm A</th><th>arm B</th><th>right only in A</th><th>right only in B</th>\
         <th>both right</th><th>both wrong</th><th>sign test p</th></tr>\n",
    );
    for c in comparisons {
        let _ = writeln!(
            out,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td></tr>",
            escape(&c.a.name()),
            escape(&c.b.name()),
            c.a_only,
            c.b_only,
            c.both,
            c.neither,
            c.p_value
        );
    }
    out + "</table>\n"
}

/// IFEval: instruction-level accuracy per id and arm (empty for other suites).
fn instruction_table(arms: &[ArmStats]) -> String {
    let levels: Vec<(&ArmStats, &InstructionStats)> =
        arms.iter().filter_map(|a| a.instruction_level.as_ref().map(|l| (a, l))).collect();
    if levels.is_empty() {
        return String::new();
    }
    let mut out = String::from("<h2>Instructions followed</h2>\n<table><tr><th>instruction</th>");
    for (a, _) in &levels {
        let _ = write!(out, "<th>{}</th>", a.arm.name());
    }
    out += "</tr>\n<tr><td class=\"l\">all (instruction-level)</td>";
    for (_, l) in &levels {
        let _ = write!(out, "<td>{}</td>", percent(Some(l.accuracy), None));
    }
    out += "</tr>\n";
    let ids: std::collections::BTreeSet<&String> = levels.iter().flat_map(|(_, l)| l.by_id.keys()).collect();
    for id in ids {
        let _ = write!(out, "<tr><td class=\"l\">{}</td>", escape(id));
        for (_, l) in &levels {
            let [followed, total] = l.by_id.get(id).copied().unwrap_or([0, 0]);
            let _ = write!(out, "<td>{followed}/{total}</td>");
        }
        out += "</tr>\n";
    }
    out + "</table>\n"
}

/// Vertical bars on a 0–100 % axis, one per arm, with ±se whiskers.
fn bar_chart(title: &str, bars: impl Iterator<Item = (Arm, Option<f64>, f64)>) -> String {
    let bars: Vec<_> = bars.collect();
    let (left, top, plot_h, slot) = (40.0, 30.0, 160.0, 80.0);
    let width = left + slot * bars.len() as f64 + 10.0;
    let y = |p: f64| top + plot_h * (1.0 - p.clamp(0.0, 1.0));
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{}\" role=\"img\" aria-label=\"{title} per arm\">\
         <text x=\"{left}\" y=\"18\" font-weight=\"bold\">{title}</text>",
        top + plot_h + 30.0
    );
    for tick in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let _ = write!(
            svg,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{yy}\" y2=\"{yy}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{}%</text>",
            width - 10.0,
            left - 4.0,
            y(tick) + 3.0,
            tick * 100.0,
            yy = y(tick)
        );
    }
    for (i, (arm, value, se)) in bars.iter().enumerate() {
        let x = left + slot * i as f64 + 15.0;
        let center = x + 25.0;
        if let Some(p) = value {
            let _ = write!(
                svg,
                "<rect x=\"{x}\" y=\"{}\" width=\"50\" height=\"{}\" fill=\"{}\"><title>{}: {}</title></rect>\
                 <path d=\"M{} {hi}H{}M{center} {hi}V{lo}M{} {lo}H{}\" stroke=\"#000\" fill=\"none\"/>\
                 <text x=\"{}\" y=\"{}\" font-size=\"11\">{:.1}%</text>",
                y(*p),
                plot_h * p.clamp(0.0, 1.0),
                color(*arm),
                arm.name(),
                percent(Some(*p), Some(*se)),
                center - 5.0,
                center + 5.0,
                center - 5.0,
                center + 5.0,
                center + 4.0,
                y(*p) - 4.0,
                p * 100.0,
                hi = y(p + se),
                lo = y(p - se),
            );
        }
        let _ = write!(
            svg,
            "<text x=\"{center}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            top + plot_h + 18.0,
            arm.name()
        );
    }
    svg + "</svg>\n"
}

/// Token counts of one arm in 20 bins over `0..=max` (the same bins for every arm).
fn histogram(arm: Arm, tokens: &[u64], max: u64) -> String {
    const BINS: usize = 20;
    let bin_width = (max + 1).div_ceil(BINS as u64);
    let mut counts = [0usize; BINS];
    for &t in tokens {
        counts[((t / bin_width) as usize).min(BINS - 1)] += 1;
    }
    let tallest = counts.iter().copied().max().unwrap_or(0).max(1);
    let (left, top, plot_h, bar_w) = (30.0, 24.0, 120.0, 12.0);
    let width = left + bar_w * BINS as f64 + 10.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{}\" role=\"img\" aria-label=\"completion tokens, {}\">\
         <text x=\"{left}\" y=\"16\" font-weight=\"bold\">{} ({} outputs)</text>\
         <text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{tallest}</text>",
        top + plot_h + 30.0,
        arm.name(),
        arm.name(),
        tokens.len(),
        left - 4.0,
        top + 8.0
    );
    for (i, &count) in counts.iter().enumerate() {
        let h = plot_h * count as f64 / tallest as f64;
        let lo = i as u64 * bin_width;
        let _ = write!(
            svg,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{h}\" fill=\"{}\"><title>{lo}–{} tokens: {count}</title></rect>",
            left + bar_w * i as f64,
            top + plot_h - h,
            bar_w - 1.0,
            color(arm),
            lo + bin_width - 1
        );
    }
    let base = top + plot_h;
    let _ = write!(
        svg,
        "<line x1=\"{left}\" x2=\"{}\" y1=\"{base}\" y2=\"{base}\" stroke=\"#000\"/>\
         <text x=\"{left}\" y=\"{}\" font-size=\"10\">0</text><text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{} tokens</text>",
        width - 10.0,
        base + 14.0,
        width - 10.0,
        base + 14.0,
        bin_width * BINS as u64,
    );
    svg + "</svg>\n"
}

fn items(report: &Report) -> String {
    let mut out = format!(
        "<details><summary>All {} outputs</summary><table><tr><th>id</th><th>arm</th><th>compliant</th><th>correct</th>\
         <th>tokens</th><th>finish</th><th>seconds</th><th>output</th></tr>\n",
        report.items.len()
    );
    let mark = |b: Option<bool>| match b {
        Some(true) => "<span class=\"ok\">yes</span>",
        Some(false) => "<span class=\"no\">no</span>",
        None => "–",
    };
    for i in &report.items {
        let text = i.error.as_deref().unwrap_or(&i.output);
        let _ = writeln!(
            out,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td class=\"l\"><pre>{}</pre></td></tr>",
            escape(&i.id),
            i.arm.name(),
            mark(Some(i.compliant)),
            mark(i.correct),
            i.tokens,
            escape(&i.finish_reason),
            i.latency_s,
            escape(text)
        );
    }
    out + "</table></details>\n"
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_self_contained_with_charts() {
        let mut report = crate::ab::report::tests::report();
        report.items[0].output = "<script>alert(1)</script>".into();
        let html = render(&report);
        assert!(html.starts_with("<!doctype html>"));
        // Two bar charts and one histogram per arm, each with drawn bars.
        assert_eq!(html.matches("<svg").count(), 4);
        for svg in html.split("<svg").skip(1) {
            assert!(svg.contains("<rect"), "an empty chart");
        }
        assert!(!html.contains("<script>") && html.contains("&lt;script&gt;"));
        assert!(!html.contains("src=") && !html.contains("href="), "no external assets");
    }

    #[test]
    fn histogram_bins_cover_the_range() {
        let svg = histogram(Decoding::Mask.into(), &[0, 5, 99, 100], 100);
        assert!(svg.contains("0–5 tokens: 2"), "{svg}");
        assert!(svg.contains("96–101 tokens: 2"), "{svg}");
    }
}
