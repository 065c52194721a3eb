//! A rehearsal's summary table, as `rehearse` prints it and its report
//! files open with.

use crate::report::rehearsal::{Report, SelectionFigures, BASELINE_CAP};
use std::io::Write;

fn opt_s(x: Option<f64>) -> String {
    x.map(|v| format!("{v:.1}s"))
        .unwrap_or_else(|| "not converged".into())
}

/// Writes the summary table of rehearsal `r`, which took `wall_s` seconds of wall-clock time.
pub fn rehearsal_table(out: &mut impl Write, r: &Report, wall_s: f64) -> std::io::Result<()> {
    writeln!(
        out,
        "Rehearsal of playbook {:?} on scenario {:?}: {:?}",
        r.playbook, r.scenario, r.state
    )?;
    if let Some(reason) = &r.reason {
        writeln!(out, "  {reason}")?;
    }
    writeln!(
        out,
        "  healthy            {}/{} ({} on unreachable hosts)",
        r.healthy, r.total, r.unreachable
    )?;
    writeln!(out, "  makespan           {}", opt_s(r.makespan_s))?;
    writeln!(
        out,
        "  lower bound        {:.1}s{}",
        r.lower_bound_s,
        if r.selection.is_some() {
            " (a full restart's: this run restarts only what is broken)"
        } else {
            ""
        }
    )?;
    writeln!(
        out,
        "  ratio              {}",
        r.ratio
            .map(|x| format!("{x:.3}"))
            .unwrap_or_else(|| "-".into())
    )?;
    writeln!(
        out,
        "  DNS peak           {} q/s (capacity {:.0}, budget {:.0})",
        r.dns_peak_qps, r.dns_capacity_qps, r.dns_budget_qps
    )?;
    writeln!(
        out,
        "  DNS queries        {} ({} dropped)",
        r.dns_queries, r.dns_dropped
    )?;
    writeln!(
        out,
        "  stuck              {} at the end ({} stuck events)",
        r.stuck, r.stuck_events
    )?;
    if r.stuck > 0 && r.state == crate::engine::RunState::Succeeded {
        writeln!(
            out,
            "  WARNING            {} containers passed their gates yet are stuck: those gates cannot see it (a bare hello, TCP or Docker state); gate routers with kind = \"mongos\" and members with max_lag",
            r.stuck
        )?;
    }
    writeln!(
        out,
        "  re-restarts        {} ({} restart failures)",
        r.rerestarts, r.restart_failures
    )?;
    writeln!(out, "  failed             {}", r.failed.len())?;
    writeln!(out, "  waves              {}", r.waves)?;
    preflight(out, r)?;
    if let Some(sel) = &r.selection {
        selection(out, sel)?;
    }
    writeln!(out, "  wall time          {wall_s:.1}s")?;
    if !r.baselines.is_empty() {
        baselines(out, r)?;
    }
    Ok(())
}

/// The pre-flight's warnings, or how many checks passed.
fn preflight(out: &mut impl Write, r: &Report) -> std::io::Result<()> {
    let warned: Vec<&String> = r
        .preflight
        .iter()
        .filter(|l| !l.starts_with("ok "))
        .collect();
    match warned.is_empty() {
        true => writeln!(
            out,
            "  pre-flight         {} checks passed",
            r.preflight.len()
        )?,
        false => {
            for l in warned {
                writeln!(out, "  pre-flight         {l}")?;
            }
        }
    }
    Ok(())
}

/// `--only broken`: what the survey found and what was restarted.
fn selection(out: &mut impl Write, sel: &SelectionFigures) -> std::io::Result<()> {
    writeln!(
        out,
        "  survey             {} of {} not ok ({} false positives, {} missed, by the world's count)",
        sel.found, sel.surveyed, sel.false_positives, sel.missed
    )?;
    writeln!(
        out,
        "  only broken        {} restarted, {} left alone",
        sel.restarted, sel.left_alone
    )?;
    for (why, n) in &sel.by_rule {
        writeln!(out, "    {n:>7}  {why}")?;
    }
    writeln!(
        out,
        "  post-flight        {} ok, {} not ok",
        sel.post_flight_ok, sel.post_flight_not_ok
    )?;
    Ok(())
}

/// `--compare`: each baseline policy on the same world beside rekindle.
fn baselines(out: &mut impl Write, r: &Report) -> std::io::Result<()> {
    writeln!(out)?;
    writeln!(
        out,
        "  {:<18} {:>14} {:>10} {:>10} {:>9} {:>8} {:>10} {:>8}",
        "POLICY", "MAKESPAN", "DNS PEAK", "DROPPED", "STUCK EV", "RE-RST", "STILL DOWN", "vs ours"
    )?;
    writeln!(
        out,
        "  {:<18} {:>14} {:>10} {:>10} {:>9} {:>8} {:>10} {:>8}",
        "rekindle",
        opt_s(r.makespan_s),
        r.dns_peak_qps,
        r.dns_dropped,
        r.stuck_events,
        r.rerestarts,
        r.total - r.unreachable - r.healthy,
        "1.0x"
    )?;
    for b in &r.baselines {
        let vs = match (b.makespan_s, r.makespan_s) {
            (Some(x), Some(m)) => format!("{:.1}x", x / m),
            (None, Some(m)) => format!(">{:.1}x", BASELINE_CAP.as_secs_f64() / m),
            _ => "-".into(),
        };
        writeln!(
            out,
            "  {:<18} {:>14} {:>10} {:>10} {:>9} {:>8} {:>10} {:>8}",
            b.policy,
            opt_s(b.makespan_s),
            b.dns_peak_qps,
            b.dns_dropped,
            b.stuck_events,
            b.rerestarts,
            b.still_down,
            vs
        )?;
    }
    for b in r.baselines.iter().filter(|b| b.stuck_passed > 0) {
        writeln!(
            out,
            "  {}: stopped with {} containers that its checks (the playbook's gates) pass though they are stuck",
            b.policy, b.stuck_passed
        )?;
    }
    Ok(())
}
