//! `--sweep`: the frontier of static budgets beside the adaptive run, the
//! best static budget under `--drop-limit` rate-limited, adaptive / best
//! static, and the rehearsal's own sweep (`rekindle rehearse --sweep`).

use crate::figures::RunResult;
use crate::out::{f, pct};
use crate::say;
use serde_json::Value;

/// The best static run: it succeeded (exit 0), brought every container to
/// healthy, left none stuck, and had under `limit` of its queries
/// rate-limited; the fastest of those. Its index in `runs`.
pub fn best_static(runs: &[RunResult], limit: f64) -> Option<usize> {
    runs.iter()
        .enumerate()
        .filter(|(_, r)| {
            r.run_exit == 0
                && r.span_s.is_some()
                && r.stuck == 0
                && r.ratelimited_share.unwrap_or(0.0) < limit
        })
        .min_by(|a, b| {
            a.1.span_s
                .partial_cmp(&b.1.span_s)
                .expect("spans are numbers")
        })
        .map(|(i, _)| i)
}

/// adaptive / best static (first start → all healthy).
pub fn adaptive_ratio(adaptive: &RunResult, best: &RunResult) -> Option<f64> {
    Some(adaptive.span_s? / best.span_s?)
}

/// One row of the frontier table.
pub fn row(name: &str, r: &RunResult) -> String {
    let budget = if r.pacing == "default" && !r.budget.is_empty() {
        "adapt.".to_string()
    } else {
        f(r.budget_qps, 0)
    };
    let dropped = r
        .rehearse_dns_dropped
        .map_or("None".into(), |d| d.to_string());
    format!(
        "{name:>12} {budget:>7} {:>4} {:>17} {:>6} {:>9} {:>11} {:>7} {:>5} {:>9} | {:>8} {dropped:>8} {:>7}",
        r.run_exit,
        f(r.span_s, 1) + "s",
        f(r.ratio, 3),
        r.unbound_queries,
        r.unbound_ratelimited,
        pct(r.ratelimited_share),
        r.stuck,
        r.started_more_than_once,
        f(r.rehearse_makespan_s, 1) + "s",
        pct(r.rehearse_dropped_share),
    )
}

/// Prints the frontier: one row per static fraction, then the adaptive run;
/// the best static budget and the ratio; the rehearsal's sweep.
pub fn print(
    scenario: &str,
    fractions: &[String],
    runs: &[RunResult],
    ad: &RunResult,
    limit: f64,
    rehearse_sweep: Result<Value, String>,
) {
    say!();
    say!(
        "Real-path frontier: {scenario} ({} containers on {} hosts), lower bound {}s",
        ad.containers,
        ad.hosts,
        f(ad.lower_bound_s, 1)
    );
    let hdr = format!(
        "{:>12} {:>7} {:>4} {:>17} {:>6} {:>9} {:>11} {:>7} {:>5} {:>9} | {:>8} {:>8} {:>7}",
        "pacing",
        "budget",
        "exit",
        "first→all healthy",
        "ratio",
        "unbound q",
        "ratelimited",
        "share",
        "stuck",
        "started>1",
        "rehearse",
        "dropped",
        "share"
    );
    say!("{hdr}");
    say!("{}", "-".repeat(hdr.chars().count()));
    for (x, r) in fractions.iter().zip(runs) {
        say!("{}", row(&format!("static {x}"), r));
    }
    say!("{}", row("adaptive", ad));
    say!();
    let limit_pct = 100.0 * limit;
    match best_static(runs, limit) {
        Some(i) => {
            let best = &runs[i];
            say!(
                "best static under {limit_pct}% rate-limited: headroom {}: {}s, {} rate-limited",
                fractions[i],
                f(best.span_s, 1),
                pct(best.ratelimited_share)
            );
            match adaptive_ratio(ad, best) {
                Some(ratio) => say!(
                    "adaptive: {}s, {} rate-limited; adaptive / best static = {ratio:.3}",
                    f(ad.span_s, 1),
                    pct(ad.ratelimited_share)
                ),
                None => say!("adaptive: did not bring every container to healthy"),
            }
        }
        None => {
            say!("no static budget finished with stuck 0 and under {limit_pct}% rate-limited");
            say!(
                "adaptive: {}s, {} rate-limited",
                f(ad.span_s, 1),
                pct(ad.ratelimited_share)
            );
        }
    }
    match rehearse_sweep {
        Ok(sw) => {
            let b = &sw["best"];
            let best = if b.is_object() {
                format!(
                    "headroom {:.2} ({:.0} q/s): makespan {}s, {} dropped",
                    b["fraction"].as_f64().unwrap_or(f64::NAN),
                    b["budget_qps"].as_f64().unwrap_or(f64::NAN),
                    f(b["makespan_s"].as_f64(), 1),
                    pct(b["dropped_share"].as_f64())
                )
            } else {
                "none".into()
            };
            say!("rehearsal's best static (rekindle rehearse --sweep, drop limit {limit_pct}%): {best}");
        }
        Err(e) => say!("rehearse --sweep: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(span: Option<f64>, share: f64, stuck: u64, exit: i32) -> RunResult {
        RunResult {
            span_s: span,
            ratelimited_share: Some(share),
            stuck,
            run_exit: exit,
            pacing: "0.8".into(),
            budget_qps: Some(240.0),
            ..RunResult::default()
        }
    }

    #[test]
    fn the_best_static_budget_is_the_fastest_clean_one() {
        let runs = [
            run(Some(80.0), 0.0, 0, 0),
            run(Some(70.0), 0.001, 0, 0),
            run(Some(60.0), 0.02, 0, 0), // too much rate-limited
            run(Some(50.0), 0.0, 3, 0),  // stuck
            run(Some(40.0), 0.0, 0, 1),  // failed
            run(None, 0.0, 0, 0),        // not all healthy
        ];
        assert_eq!(best_static(&runs, 0.005), Some(1));
        assert_eq!(best_static(&runs, 0.05), Some(2));
        assert_eq!(best_static(&runs[2..], 0.005), None);
    }

    #[test]
    fn adaptive_over_best_static() {
        let best = run(Some(69.6), 0.0, 0, 0);
        let ad = run(Some(69.06), 0.0, 0, 0);
        assert_eq!(
            format!("{:.3}", adaptive_ratio(&ad, &best).unwrap()),
            "0.992"
        );
        assert_eq!(adaptive_ratio(&run(None, 0.0, 0, 0), &best), None);
    }

    #[test]
    fn a_frontier_row_lines_up_with_the_header() {
        let mut r = run(Some(70.05), 0.0031, 0, 0);
        r.ratio = Some(1.0234);
        r.unbound_queries = 78859;
        r.unbound_ratelimited = 241;
        r.rehearse_makespan_s = Some(71.0);
        r.rehearse_dns_dropped = Some(12);
        r.rehearse_dropped_share = Some(0.0002);
        let line = row("static 0.8", &r);
        assert_eq!(line, "  static 0.8     240    0             70.0s  1.023     78859         241   0.31%     0         0 |    71.0s       12   0.02%");
        r.pacing = "default".into();
        r.budget = vec![(0.0, 300.0)];
        assert!(row("adaptive", &r).starts_with("    adaptive  adapt."));
    }
}
