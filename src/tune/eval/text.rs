//! The text report printed by `eval` without `--json`.

use std::fmt::{self, Write as _};

use super::EvalReport;
use crate::tune::pct;

impl EvalReport {
    /// The human-readable report printed by `eval` without `--json`.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_text(&mut s);
        s
    }

    fn write_text(&self, s: &mut String) -> fmt::Result {
        writeln!(
            s,
            "queries: {} ({} in scope, {} out of scope)",
            self.queries, self.in_scope, self.out_of_scope
        )?;
        if !self.unknown_labels.is_empty() {
            let list: Vec<String> = self
                .unknown_labels
                .iter()
                .map(|(l, n)| format!("{l} ({n})"))
                .collect();
            writeln!(
                s,
                "warning: labels that name no agent of the catalogue (counted as misses): {}",
                list.join(", ")
            )?;
        }
        writeln!(
            s,
            "fast-path coverage (in scope): {} ({} of {})",
            pct(self.coverage),
            self.decided,
            self.in_scope
        )?;
        writeln!(
            s,
            "fast-path precision:           {} ({} of {} correct)",
            pct(self.precision),
            self.correct,
            self.decided
        )?;
        writeln!(
            s,
            "out of scope taken by fast path: {} ({} of {})",
            pct(self.oos_fast_rate),
            self.oos_fast,
            self.out_of_scope
        )?;
        writeln!(
            s,
            "LLM call rate:                 {} ({} of {} queries)",
            pct(self.llm_call_rate),
            self.llm_calls,
            self.queries
        )?;
        writeln!(
            s,
            "estimated LLM cost: ${:.2} per 1M queries (~{} input + {} output tokens per call at ${}/${} per 1M tokens)",
            self.est_cost_per_million_usd,
            self.est_input_tokens,
            self.est_output_tokens,
            self.price_per_mtok_in,
            self.price_per_mtok_out
        )?;
        writeln!(s, "\nper agent:")?;
        writeln!(
            s,
            "  {:<24} {:>9} {:>9} {:>8} {:>8}",
            "agent", "precision", "recall", "support", "decided"
        )?;
        for (name, a) in &self.per_agent {
            writeln!(
                s,
                "  {:<24} {:>9} {:>9} {:>8} {:>8}",
                name,
                pct(a.precision),
                pct(a.recall),
                a.support,
                a.decided
            )?;
        }
        if !self.confusions.is_empty() {
            writeln!(s, "\nmost common confusions (expected -> got):")?;
            for c in &self.confusions {
                writeln!(s, "  {:>5}  {} -> {}", c.count, c.expected, c.got)?;
                for e in &c.examples {
                    writeln!(
                        s,
                        "         e.g. {:?} (matched: {})",
                        e.query,
                        e.matched.join(", ")
                    )?;
                }
            }
        }
        if let Some(first) = self.operating_points.first() {
            writeln!(
                s,
                "\noperating points: the [fast_path] thresholds that would cover most of this data at each precision{}\n(chosen on this data, so they flatter it: pick from queries the routes were not mined from)",
                if self.out_of_scope > 0 {
                    format!(
                        ", taking at most {} of out-of-scope queries",
                        pct(first.max_oos_rate)
                    )
                } else {
                    String::new()
                }
            )?;
            let linear = self
                .operating_points
                .iter()
                .filter_map(|p| p.best)
                .any(|b| b.threshold.is_some());
            let (first_head, second_head) = if linear {
                ("", "threshold")
            } else {
                ("margin", "min_score")
            };
            writeln!(
                s,
                "  {:>11} {:>7} {:>9} {:>9} {:>9} {:>12} {:>9}",
                "precision>=",
                first_head,
                second_head,
                "coverage",
                "precision",
                "out of scope",
                "LLM calls"
            )?;
            for p in &self.operating_points {
                match &p.best {
                    Some(b) => writeln!(
                        s,
                        "  {:>11} {:>7} {:>9.3} {:>9} {:>9} {:>12} {:>9}",
                        pct(p.target_precision),
                        b.margin.map_or(String::new(), |m| format!("{m:.2}")),
                        b.min_score.or(b.threshold).unwrap_or(f32::NAN),
                        pct(b.coverage),
                        pct(b.precision),
                        pct(b.oos_fast_rate),
                        pct(b.llm_call_rate)
                    )?,
                    None => writeln!(
                        s,
                        "  {:>11} (no thresholds on the grid reach it)",
                        pct(p.target_precision)
                    )?,
                }
            }
        }
        let c = &self.calibration;
        writeln!(
            s,
            "\ncalibration of the fast path's confidence ({} decisions): expected calibration error {}",
            c.decisions,
            if c.ece.is_nan() {
                "n/a".to_owned()
            } else {
                format!("{:.4}", c.ece)
            }
        )?;
        if c.decisions > 0 {
            writeln!(
                s,
                "(decisions made with confidence p should be right about p of the time)"
            )?;
            writeln!(
                s,
                "  {:>11} {:>9} {:>15} {:>9}",
                "confidence", "decisions", "mean confidence", "accuracy"
            )?;
            for b in c.buckets.iter().filter(|b| b.count > 0) {
                writeln!(
                    s,
                    "  {:>11} {:>9} {:>15} {:>9}",
                    format!("{:.1}-{:.1}", b.low, b.high),
                    b.count,
                    pct(b.mean_confidence),
                    pct(b.accuracy)
                )?;
            }
        }
        Ok(())
    }
}
