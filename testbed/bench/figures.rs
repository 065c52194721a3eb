//! One run's figures, from what the run left behind: the fake fleet's
//! `/stats` and `/containers`, unbound's counters, the rehearsal's JSON,
//! the run's summary line, its report (`timeline.json`), its JSON log (the
//! adaptive budget's samples) and journal (intents per container). Printed
//! with the names docs/real-path.md quotes, and kept as a [`RunResult`]
//! (the sweep's table, `result.json`, the CSV row).

use crate::out::{f, opt, pct, Row};
use crate::procs::ProcFigures;
use crate::say;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// Everything a finished run left, read back.
#[derive(Debug, Default)]
pub struct RunInputs {
    /// The label (`default`, `static-0.8`, `adaptive`).
    pub label: String,
    /// `default`, or the static budget's headroom as given.
    pub pacing: String,
    /// The scenario file.
    pub scenario: String,
    /// `rekindle run`'s exit code (of its last process).
    pub run_exit: i32,
    /// Wall time from the first `rekindle run` to the last one's exit.
    pub wall_s: f64,
    /// The fake fleet's `/stats`.
    pub stats: Value,
    /// The fake fleet's `/containers`.
    pub containers: Value,
    /// unbound's counters.
    pub unbound: BTreeMap<String, String>,
    /// The rehearsal's JSON, or `{"error": ...}`.
    pub rehearse: Value,
    /// The run's last stdout line (its JSON summary).
    pub summary: Value,
    /// The run's `timeline.json`.
    pub report: Value,
    /// The run's JSON log (stderr).
    pub run_log: String,
    /// `--only`: the survey before the run and what the fleet broke.
    pub survey: Option<SurveyBefore>,
    /// `--chaos`: what was done.
    pub chaos: Option<crate::chaos::ChaosRecord>,
    /// `--crash`: each kill's fleet clock and starts so far.
    pub kills: Vec<(f64, f64)>,
    /// Restarts rekindle journaled per container id.
    pub intents: HashMap<String, u64>,
    /// `--measure`: rekindle's process, from /proc.
    pub proc: Option<ProcFigures>,
    /// `--measure` was given.
    pub measure: bool,
}

/// The survey before an `--only` run.
#[derive(Debug)]
pub struct SurveyBefore {
    /// `rekindle survey --output json`.
    pub survey: Value,
    /// `/containers` before the run.
    pub before: Value,
    /// Its wall time.
    pub secs: f64,
}

/// What a run is remembered by (the sweep's table, `result.json`, CSV).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunResult {
    pub label: String,
    pub pacing: String,
    pub run_exit: i32,
    pub state: Option<String>,
    pub wall_s: f64,
    pub span_s: Option<f64>,
    pub lower_bound_s: Option<f64>,
    pub ratio: Option<f64>,
    pub unbound_queries: u64,
    pub unbound_ratelimited: u64,
    pub ratelimited_share: Option<f64>,
    pub containers: u64,
    pub hosts: u64,
    pub queries_sent: u64,
    pub healthy: u64,
    pub stuck: u64,
    pub started_more_than_once: u64,
    pub peak_second: u64,
    pub budget: Vec<(f64, f64)>,
    pub budget_qps: Option<f64>,
    pub dns_samples: u64,
    pub strain: BTreeMap<String, u64>,
    pub rehearse_makespan_s: Option<f64>,
    pub rehearse_dns_dropped: Option<u64>,
    pub rehearse_dropped_share: Option<f64>,
    pub kills: usize,
    pub cpu_s: Option<f64>,
    pub peak_rss_kb: Option<u64>,
}

impl RunResult {
    /// Its CSV row.
    pub fn row(&self, scenario: &str) -> Row {
        let budget = if self.budget.is_empty() {
            opt(self.budget_qps.map(|b| format!("{b:.0}")))
        } else {
            "adaptive".into()
        };
        vec![
            ("scenario", scenario.to_string()),
            ("label", self.label.clone()),
            ("pacing", self.pacing.clone()),
            ("budget_qps", budget),
            ("run_exit", self.run_exit.to_string()),
            ("state", opt(self.state.clone())),
            ("wall_s", format!("{:.3}", self.wall_s)),
            (
                "first_start_to_all_healthy_s",
                opt(self.span_s.map(|x| format!("{x:.3}"))),
            ),
            (
                "lower_bound_s",
                opt(self.lower_bound_s.map(|x| format!("{x:.3}"))),
            ),
            ("ratio", opt(self.ratio.map(|x| format!("{x:.4}")))),
            ("unbound_queries", self.unbound_queries.to_string()),
            ("unbound_ratelimited", self.unbound_ratelimited.to_string()),
            (
                "ratelimited_share",
                opt(self.ratelimited_share.map(|x| format!("{x:.6}"))),
            ),
            ("containers", self.containers.to_string()),
            ("hosts", self.hosts.to_string()),
            ("healthy", self.healthy.to_string()),
            ("stuck", self.stuck.to_string()),
            (
                "started_more_than_once",
                self.started_more_than_once.to_string(),
            ),
            ("peak_second", self.peak_second.to_string()),
            (
                "rehearse_makespan_s",
                opt(self.rehearse_makespan_s.map(|x| format!("{x:.3}"))),
            ),
            ("rehearse_dns_dropped", opt(self.rehearse_dns_dropped)),
            ("kills", self.kills.to_string()),
            ("cpu_s", opt(self.cpu_s.map(|x| format!("{x:.2}")))),
            (
                "peak_rss_mb",
                opt(self
                    .peak_rss_kb
                    .map(|k| format!("{:.1}", k as f64 / 1024.0))),
            ),
        ]
    }
}

/// A JSON figure as u64 (0 when absent).
pub fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .or_else(|| v[key].as_f64().map(|x| x as u64))
        .unwrap_or(0)
}

fn fo(v: &Value, key: &str) -> Option<f64> {
    v[key].as_f64()
}

/// JSON shown as Python would (`None` for null, strings bare).
pub fn shown(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

/// The adaptive budget's samples and why it saw strain, from the run's JSON
/// log (`DNS sample` trace lines; strain `None` or `Some(Dropped|...)`).
pub fn strain_of_log(log: &str) -> (u64, BTreeMap<String, u64>) {
    let mut samples = 0;
    let mut strains = BTreeMap::new();
    for line in log.lines().filter(|l| l.contains("\"DNS sample\"")) {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let Some(fields) = v.get("fields") else {
            continue;
        };
        samples += 1;
        let why = fields.get("strain").map_or("None".into(), |s| match s {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        });
        if why != "None" {
            let why = why.strip_prefix("Some(").unwrap_or(&why);
            let why = why.strip_suffix(')').unwrap_or(why);
            *strains.entry(why.to_string()).or_insert(0) += 1;
        }
    }
    (samples, strains)
}

/// The adaptive budget's changes: (changes, cuts).
pub fn budget_changes(qs: &[f64]) -> (usize, usize) {
    let cuts = qs.windows(2).filter(|w| w[1] < w[0]).count();
    (qs.len().saturating_sub(1), cuts)
}

/// The DNS budget's line: the adaptive budget's changes and samples, or
/// the static budget.
fn print_budget(
    budget: &[(f64, f64)],
    report: &Value,
    samples: u64,
    strains: &BTreeMap<String, u64>,
) {
    if !budget.is_empty() {
        let qs: Vec<f64> = budget.iter().map(|b| b.1).collect();
        let (changes, cuts) = budget_changes(&qs);
        let min = qs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = qs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        say!("  DNS budget (adaptive)     start {:.0}, min {min:.0}, max {max:.0}, final {:.0} q/s; {changes} changes, {cuts} cuts", qs[0], qs[qs.len() - 1]);
        if samples > 0 {
            let s: Vec<String> = strains
                .iter()
                .map(|(why, n)| format!("{n} ({why})"))
                .collect();
            say!(
                "  DNS samples               {samples}, strain in {}",
                if s.is_empty() {
                    "none".into()
                } else {
                    s.join(", ")
                }
            );
        }
    } else if report.is_object() {
        say!(
            "  DNS budget (static)       {} q/s",
            f(fo(report, "dns_budget_qps"), 0)
        );
    }
}

/// Prints a run's own figures (the witnesses' and a failure's tail
/// follow: realpath.rs); its [`RunResult`].
pub fn report(i: &RunInputs) -> RunResult {
    let r = result(i);
    print_main(i, &r);
    print_budget(&r.budget, &i.report, r.dns_samples, &r.strain);
    print_end(i, &r);
    r
}

/// A run's figures, computed.
pub fn result(i: &RunInputs) -> RunResult {
    let st = &i.stats;
    let rh = &i.rehearse;
    let lb = fo(rh, "lower_bound_s");
    let span = match (fo(st, "first_start_s"), fo(st, "all_healthy_s")) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let ratio = match (span, lb) {
        (Some(s), Some(l)) if s != 0.0 && l != 0.0 => Some(s / l),
        _ => None,
    };
    let num = |k: &str| {
        i.unbound
            .get(k)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0) as u64
    };
    let (q, lim) = (
        num("total.num.queries"),
        num("total.num.queries_ip_ratelimited"),
    );
    let (rq, rd) = (rh["dns_queries"].as_u64(), rh["dns_dropped"].as_u64());
    let rshare = match (rq, rd) {
        (Some(q), Some(d)) if q > 0 => Some(d as f64 / q as f64),
        _ => None,
    };
    let budget: Vec<(f64, f64)> = i.report["dns_budget"].as_array().map_or(vec![], |a| {
        a.iter()
            .filter_map(|p| Some((p[0].as_f64()?, p[1].as_f64()?)))
            .collect()
    });
    let (samples, strains) = strain_of_log(&i.run_log);
    RunResult {
        label: i.label.clone(),
        pacing: i.pacing.clone(),
        run_exit: i.run_exit,
        state: i.summary["state"].as_str().map(String::from),
        wall_s: i.wall_s,
        span_s: span,
        lower_bound_s: lb,
        ratio,
        unbound_queries: q,
        unbound_ratelimited: lim,
        ratelimited_share: (q > 0).then(|| lim as f64 / q as f64),
        containers: u(st, "containers"),
        hosts: u(st, "hosts"),
        queries_sent: u(st, "queries_sent"),
        healthy: u(st, "healthy"),
        stuck: u(st, "stuck"),
        started_more_than_once: u(st, "started_more_than_once"),
        peak_second: per_second(st).into_iter().max().unwrap_or(0),
        budget,
        budget_qps: fo(&i.report, "dns_budget_qps"),
        dns_samples: samples,
        strain: strains,
        rehearse_makespan_s: fo(rh, "makespan_s"),
        rehearse_dns_dropped: rd,
        rehearse_dropped_share: rshare,
        kills: i.kills.len(),
        cpu_s: i.proc.map(|p| p.cpu_s),
        peak_rss_kb: i.proc.map(|p| p.peak_rss_kb),
    }
}

/// The fake fleet's queries sent per second of its clock.
fn per_second(st: &Value) -> Vec<u64> {
    st["queries_per_second"]
        .as_array()
        .map_or(vec![], |a| a.iter().filter_map(Value::as_u64).collect())
}

/// The run, its span and ratio, unbound's counters, the fleet's queries.
fn print_main(i: &RunInputs, r: &RunResult) {
    let st = &i.stats;
    let pacing = if i.pacing == "default" {
        "the playbook's pacing".to_string()
    } else {
        format!("static budget headroom {}", i.pacing)
    };
    say!();
    say!(
        "Real path [{}]: scenario {} ({} containers on {} hosts), {pacing}",
        i.label,
        i.scenario,
        r.containers,
        r.hosts
    );
    say!(
        "  rekindle run              exit {}, state {}, wall {:.1}s",
        i.run_exit,
        r.state.as_deref().unwrap_or("?"),
        i.wall_s
    );
    let not_all = if r.span_s.is_none() {
        format!(" (not all healthy: {} healthy)", r.healthy)
    } else {
        String::new()
    };
    say!("  first start → all healthy {}s{not_all}", f(r.span_s, 1));
    say!(
        "  lower bound               {}s   ratio {}",
        f(r.lower_bound_s, 1),
        f(r.ratio, 3)
    );
    say!(
        "  unbound                   total.num.queries {}, total.num.queries_ip_ratelimited {} ({})",
        r.unbound_queries,
        r.unbound_ratelimited,
        pct(r.ratelimited_share)
    );
    say!(
        "  fake fleet queries        sent {}, answered {}, timed out {}, lookups failed {}",
        u(st, "queries_sent"),
        u(st, "answers"),
        u(st, "timeouts"),
        u(st, "lookups_failed")
    );
    let cap = fo(&i.rehearse, "dns_capacity_qps");
    let above = per_second(st)
        .iter()
        .filter(|&&x| cap.is_some_and(|c| c > 0.0 && x as f64 > c))
        .count();
    say!(
        "  peak second (fleet clock) {} queries sent (capacity {}); {above} seconds above capacity",
        r.peak_second,
        f(cap, 0)
    );
}

/// The end state, the rehearsal, the figures of the special modes, and the
/// run's last log lines if it failed.
fn print_end(i: &RunInputs, r: &RunResult) {
    let (st, rh) = (&i.stats, &i.rehearse);
    say!(
        "  at the end                healthy {}, stuck {}, exited {}, never started {}",
        u(st, "healthy"),
        u(st, "stuck"),
        u(st, "exited"),
        u(st, "never_started")
    );
    say!(
        "  started more than once    {} (max {} starts; stop {}, start {}, restart {} calls)",
        u(st, "started_more_than_once"),
        u(st, "max_starts"),
        u(st, "stop_calls"),
        u(st, "start_calls"),
        u(st, "restart_calls")
    );
    let rstate = if rh.get("state").is_some() {
        shown(&rh["state"])
    } else {
        shown(&rh["error"])
    };
    say!(
        "  rehearsal                 {rstate}: makespan {}s (ratio {}), {} queries, {} dropped ({}), stuck {}",
        f(fo(rh, "makespan_s"), 1),
        f(fo(rh, "ratio"), 3),
        shown(&rh["dns_queries"]),
        shown(&rh["dns_dropped"]),
        pct(r.rehearse_dropped_share),
        shown(&rh["stuck"])
    );
}

/// The tail of a failed run's stderr, printed after the witnesses'
/// figures (crate::witness, which reads this module's types).
pub fn print_failure(i: &RunInputs) {
    if i.run_exit != 0 {
        say!(
            "\n  rekindle run failed (exit {}); last lines of its stderr:",
            i.run_exit
        );
        let lines: Vec<&str> = i.run_log.lines().collect();
        say!("{}", lines[lines.len().saturating_sub(15)..].join("\n"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strain_counts_samples_and_their_reasons() {
        let log = [
            r#"{"fields":{"message":"DNS sample","strain":"None"}}"#,
            r#"{"fields":{"message":"DNS sample","strain":"Some(Dropped)"}}"#,
            r#"{"fields":{"message":"DNS sample","strain":"Some(Dropped)"}}"#,
            r#"{"fields":{"message":"DNS sample","strain":"Some(Lost)"}}"#,
            r#"{"fields":{"message":"other"}}"#,
            r#"not json "DNS sample""#,
        ]
        .join("\n");
        let (n, s) = strain_of_log(&log);
        assert_eq!(n, 4);
        assert_eq!(
            s,
            BTreeMap::from([("Dropped".into(), 2), ("Lost".into(), 1)])
        );
    }

    #[test]
    fn budget_changes_count_the_cuts() {
        assert_eq!(budget_changes(&[100.0, 90.0, 80.0, 95.0]), (3, 2));
        assert_eq!(budget_changes(&[]), (0, 0));
    }

    fn inputs() -> RunInputs {
        RunInputs {
            label: "static-0.8".into(),
            pacing: "0.8".into(),
            scenario: "s.toml".into(),
            stats: json!({"containers": 400, "hosts": 10, "first_start_s": 2.0, "all_healthy_s": 42.0,
                          "queries_per_second": [100, 350, 200], "healthy": 400}),
            unbound: BTreeMap::from([
                ("total.num.queries".into(), "1000".into()),
                ("total.num.queries_ip_ratelimited".into(), "5".into()),
            ]),
            rehearse: json!({"lower_bound_s": 32.0, "dns_queries": 900, "dns_dropped": 9, "dns_capacity_qps": 300.0, "makespan_s": 41.0}),
            summary: json!({"state": "succeeded"}),
            report: json!({"dns_budget_qps": 240.0, "dns_budget": []}),
            ..RunInputs::default()
        }
    }

    #[test]
    fn a_run_s_span_ratio_and_shares() {
        let r = report(&inputs());
        assert_eq!(r.span_s, Some(40.0));
        assert_eq!(r.ratio, Some(1.25));
        assert_eq!(r.ratelimited_share, Some(0.005));
        assert_eq!(r.rehearse_dropped_share, Some(0.01));
        assert_eq!(r.peak_second, 350);
        assert_eq!(r.state.as_deref(), Some("succeeded"));
        let row = r.row("s.toml");
        let get = |k: &str| row.iter().find(|(c, _)| *c == k).unwrap().1.clone();
        assert_eq!(get("budget_qps"), "240");
        assert_eq!(get("ratio"), "1.2500");
        assert_eq!(get("first_start_to_all_healthy_s"), "40.000");
        assert_eq!(get("cpu_s"), "");
    }

    #[test]
    fn a_run_that_never_got_all_healthy_has_no_ratio() {
        let mut i = inputs();
        i.stats["all_healthy_s"] = Value::Null;
        i.unbound.clear();
        let r = report(&i);
        assert_eq!((r.span_s, r.ratio, r.ratelimited_share), (None, None, None));
    }
}
