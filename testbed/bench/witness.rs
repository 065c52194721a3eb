//! The figures of the special runs, printed after the common ones: what a
//! survey and `--only broken` chose against what the fake fleet broke;
//! the faults injected and the witness of "one restart per intent" (each
//! container's starts against the restarts rekindle journaled for it),
//! for `--crash` and `--chaos`; and the scale figures of `--measure`.

use crate::figures::{shown, u, RunInputs, SurveyBefore};
use crate::out::f;
use crate::say;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

fn entries(v: &Value) -> impl Iterator<Item = (&String, &Value)> {
    v.as_object().into_iter().flatten()
}

/// Names of the containers the survey did not find ok.
pub fn not_ok(survey: &Value) -> BTreeSet<String> {
    survey["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|x| x["verdict"].as_str() != Some("ok"))
        .filter_map(|x| x["container"].as_str().map(String::from))
        .collect()
}

/// Names of the containers the fake fleet broke at its start.
pub fn broken_at_start(containers: &Value) -> BTreeSet<String> {
    entries(containers)
        .filter(|(_, c)| c["broken_at_start"].as_bool() == Some(true))
        .map(|(n, _)| n.clone())
        .collect()
}

/// `--only broken`: the survey before the run, what was started, the
/// post-flight and the rehearsal's own survey.
pub fn only_broken(i: &RunInputs, s: &SurveyBefore) {
    let broke = broken_at_start(&s.before);
    let found = not_ok(&s.survey);
    let started: BTreeSet<String> = entries(&i.containers)
        .filter(|(_, c)| u(c, "starts") > 0)
        .map(|(n, _)| n.clone())
        .collect();
    let findings = s.survey["findings"].as_array().map_or(0, Vec::len);
    say!("  survey (before the run)   {} of {findings} not ok in {:.1}s; the fake fleet broke {}: {} false positives, {} missed",
        found.len(), s.secs, broke.len(), found.difference(&broke).count(), broke.difference(&found).count());
    say!("  only broken               {} containers started: {} not broken at the start, {} broken left unstarted",
        started.len(), started.difference(&broke).count(), broke.difference(&started).count());
    let post = &i.summary["post_flight"];
    let or_na = |v: &Value| {
        if v.is_null() {
            "n/a".to_string()
        } else {
            v.to_string()
        }
    };
    say!(
        "  post-flight               {} of {} ok",
        or_na(&post["ok"]),
        or_na(&post["containers"])
    );
    let sel = &i.rehearse["selection"];
    say!(
        "  rehearsal's survey        {} not ok ({} false positives, {} missed), {} restarted",
        shown(&sel["found"]),
        shown(&sel["false_positives"]),
        shown(&sel["missed"]),
        shown(&sel["restarted"])
    );
}

/// Restarts journaled per container id: the run's journal, or its archive
/// once it succeeded (`NAME.TIME.done`), read with rekindle's reader.
pub fn intents(state_dir: &Path) -> HashMap<String, u64> {
    let mut intents = HashMap::new();
    let Ok(dir) = std::fs::read_dir(state_dir) else {
        return intents;
    };
    for path in dir.filter_map(|e| Some(e.ok()?.path())) {
        let ext = path.extension().and_then(|e| e.to_str());
        if !matches!(ext, Some("journal" | "done")) {
            continue;
        }
        let Ok((replay, _)) = rekindle::journal::read(&path) else {
            continue;
        };
        for r in &replay.records {
            if let rekindle::journal::Record::Intent { id, .. } = r {
                *intents.entry(id.clone()).or_insert(0) += 1;
            }
        }
    }
    intents
}

/// Containers started more often than rekindle journaled a restart for
/// them: (name, starts, intents).
pub fn beyond_intents(
    containers: &Value,
    intents: &HashMap<String, u64>,
) -> Vec<(String, u64, u64)> {
    entries(containers)
        .filter_map(|(n, c)| {
            let journaled = c["id"]
                .as_str()
                .and_then(|id| intents.get(id))
                .copied()
                .unwrap_or(0);
            (u(c, "starts") > journaled).then(|| (n.clone(), u(c, "starts"), journaled))
        })
        .collect()
}

/// `--crash` and `--chaos`: the kills, the faults, one start per intent,
/// what was left stopped or unhealthy, and the DNS outage as the relay saw it.
pub fn faults(i: &RunInputs) {
    let st = &i.stats;
    if !i.kills.is_empty() {
        let at: Vec<String> = i.kills.iter().map(|(t, _)| format!("{t:.1}s")).collect();
        say!("  kill -9                   {} times, at fleet clock {}; then --resume until it ended by itself", i.kills.len(), at.join(", "));
        say!(
            "  started exactly once      {} of {}; more than once {}, never {}",
            u(st, "started_once"),
            u(st, "containers"),
            u(st, "started_more_than_once"),
            u(st, "never_started")
        );
    }
    let fl = &st["faults"];
    say!("  faults injected           500 before acting {}, 500 after acting {}, delayed calls {} ({:.1} ms mean), hung calls {}, cut connections {}, failed starts {}",
        u(fl, "errors_before"), u(fl, "errors_after"), u(fl, "delayed_calls"),
        u(fl, "delay_ms_total") as f64 / u(fl, "delayed_calls").max(1) as f64,
        u(fl, "hung_calls"), u(fl, "cut_connections"), u(fl, "failed_starts"));
    if let Some(c) = &i.chaos {
        say!(
            "  host faults               {} refused, {} hung, fleet clock {}–{}s",
            c.refused,
            c.hung,
            f(c.hosts_from, 1),
            f(c.hosts_to, 1)
        );
    }
    let over = beyond_intents(&i.containers, &i.intents);
    let eg = |v: &[String]| {
        if v.is_empty() {
            String::new()
        } else {
            format!(" e.g. {v:?}")
        }
    };
    let over_shown: Vec<String> = over
        .iter()
        .take(5)
        .map(|(n, s, j)| format!("({n}, {s}, {j})"))
        .collect();
    say!("  starts beyond intents     {} containers started more often than rekindle journaled a restart for them{}", over.len(), eg(&over_shown));
    say!("  starts beyond failures    {} (started more than once plus their own failures: includes rekindle's deliberate retries)", u(st, "unexplained_starts"));
    let failed: Vec<String> = i.summary["failed"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|x| x.to_string())
        .collect();
    let reason = i.summary["reason"].as_str().unwrap_or("");
    let named = |n: &str| failed.iter().any(|x| x.contains(n)) || reason.contains(n);
    let cs: Vec<(&String, &Value)> = entries(&i.containers).collect();
    let stopped: Vec<String> = cs
        .iter()
        .filter(|(_, c)| c["state"].as_str() != Some("running"))
        .map(|(n, _)| (*n).clone())
        .collect();
    let touched: Vec<String> = cs
        .iter()
        .filter(|(_, c)| u(c, "starts") > 0 && c["health"].as_str() != Some("healthy"))
        .map(|(n, _)| (*n).clone())
        .collect();
    say!(
        "  left stopped              {}, of which not named in the summary {}{}",
        stopped.len(),
        stopped.iter().filter(|n| !named(n)).count(),
        eg(&stopped[..stopped.len().min(5)])
    );
    say!(
        "  restarted, not healthy    {}, of which not named in the summary {}",
        touched.len(),
        touched.iter().filter(|n| !named(n)).count()
    );
    let never = cs.iter().filter(|(_, c)| u(c, "starts") == 0).count();
    let ended = if i.summary["state"].as_str() == Some("halted") {
        "halted"
    } else {
        "ended"
    };
    say!("  never restarted           {never} (the run {ended} before them, or their host was out of the plan)");
    if !reason.is_empty() {
        say!(
            "  halt reason               {}",
            reason.chars().take(300).collect::<String>()
        );
    }
    if let Some(c) = &i.chaos {
        if let (Some(a), Some(b)) = (c.dns_from, c.dns_to) {
            let rl: Vec<u64> = st["relay"]["queries_per_second"]
                .as_array()
                .map_or(vec![], |a| a.iter().filter_map(Value::as_u64).collect());
            let o = outage(&rl, a as usize, b as usize);
            say!("  DNS outage                fleet clock {}–{}s; rekindle's queries (relay) per second: before {:.2} (max {}), during {:.2} (max {}), after {:.2}",
                a as u64, b as u64, o.before.0, o.before.1, o.during.0, o.during.1, o.after.0);
        }
    }
}

/// Queries per second (mean, max) before, during and after an outage.
#[derive(Debug, PartialEq)]
pub struct Outage {
    pub before: (f64, u64),
    pub during: (f64, u64),
    pub after: (f64, u64),
}

/// The relay's seconds around an outage from `a` to `b` (fleet clock):
/// as many seconds before it as it lasted, during it, and after it.
pub fn outage(per_s: &[u64], a: usize, b: usize) -> Outage {
    let span = b.saturating_sub(a).max(1);
    let part = |lo: usize, hi: usize| {
        let xs = &per_s[lo.min(per_s.len())..hi.min(per_s.len())];
        let mean = if xs.is_empty() {
            0.0
        } else {
            xs.iter().sum::<u64>() as f64 / xs.len() as f64
        };
        (mean, xs.iter().copied().max().unwrap_or(0))
    };
    Outage {
        before: part(a.saturating_sub(span), a),
        during: part(a, b),
        after: part(b, per_s.len()),
    }
}

/// `--measure`: rekindle's CPU and memory, the connections each fake host
/// saw, and how far into the run every host had its first stop and start.
pub fn scale(i: &RunInputs) {
    let st = &i.stats;
    let hs = &st["hosts_seen"];
    let starts = u(st, "starts_total");
    let wall = i.wall_s;
    say!("  scale                     (rekindle's own process, read from /proc; connections as the fake hosts saw them)");
    if let Some(p) = &i.proc {
        say!("  CPU                       {:.1}s user+sys over {wall:.1}s wall: {:.3} cores; {:.3} ms per start ({starts} starts)",
            p.cpu_s, p.cpu_s / wall, 1000.0 * p.cpu_s / starts.max(1) as f64);
        say!(
            "  memory                    peak RSS {:.1} MB; at most {} sockets, {} threads",
            p.peak_rss_kb as f64 / 1024.0,
            p.peak_sockets,
            p.peak_threads
        );
    }
    let up_hosts = u(st, "hosts").saturating_sub(u(st, "hosts_down")).max(1);
    say!("  connections per host      at most {} open; idle: at most {} at one sample, at most {} throughout a second; {} connection setups in all ({:.1} per host)",
        shown(&hs["max_open_per_host"]), shown(&hs["max_idle_per_host"]), shown(&hs["max_idle_second_per_host"]), shown(&hs["accepted_total"]),
        u(hs, "accepted_total") as f64 / up_hosts as f64);
    let s0 = hs["first_stop_s"].as_f64();
    let allh = st["all_healthy_s"].as_f64();
    let run_s = match (s0, allh) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let into_run = |t: Option<f64>| match (t, s0, run_s) {
        (Some(t), Some(s0), Some(r)) if r != 0.0 => {
            format!("{:.1}% into the run", 100.0 * (t - s0) / r)
        }
        _ => "n/a".into(),
    };
    let last_stop = hs["last_first_stop_s"].as_f64();
    let last_start = hs["last_first_start_s"].as_f64();
    say!("  every host's first stop   by {}s (fleet clock; first stop {}s, all healthy {}s): {} ({} hosts had one)",
        f(last_stop, 1), f(s0, 1), f(allh, 1), into_run(last_stop), shown(&hs["hosts_stopped"]));
    say!(
        "  every host's first start  by {}s: {} ({} hosts had one)",
        f(last_start, 1),
        into_run(last_start),
        shown(&hs["hosts_started"])
    );
    say!("  started exactly once      {} of {}; more than once {} (beyond their own failures {}), never {}",
        u(st, "started_once"), u(st, "containers"), u(st, "started_more_than_once"), u(st, "unexplained_starts"), u(st, "never_started"));
}

/// The share of a survey's findings per verdict (`ok`, `broken`, `down`,
/// `unknown`), in that order.
pub fn verdicts(survey: &Value) -> Vec<(&'static str, usize)> {
    let findings = survey["findings"].as_array().map_or(&[][..], Vec::as_slice);
    ["ok", "broken", "down", "unknown"]
        .into_iter()
        .map(|v| {
            (
                v,
                findings
                    .iter()
                    .filter(|x| x["verdict"].as_str() == Some(v))
                    .count(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_outage_splits_the_relay_s_seconds() {
        let per_s = [4, 4, 6, 2, 0, 0, 0, 9, 3, 3];
        let o = outage(&per_s, 4, 7);
        assert_eq!(o.before, (4.0, 6), "seconds 1..4");
        assert_eq!(o.during, (0.0, 0));
        assert_eq!(o.after, (5.0, 9));
        assert_eq!(outage(&[], 3, 5).after, (0.0, 0));
    }

    #[test]
    fn starts_beyond_intents_compare_by_container_id() {
        let cs = json!({"a": {"id": "1", "starts": 2}, "b": {"id": "2", "starts": 1}, "c": {"id": "3", "starts": 1}});
        let intents = HashMap::from([("1".to_string(), 1), ("2".to_string(), 1)]);
        assert_eq!(
            beyond_intents(&cs, &intents),
            vec![("a".into(), 2, 1), ("c".into(), 1, 0)]
        );
    }

    #[test]
    fn survey_findings_against_what_was_broken() {
        let sv = json!({"findings": [{"container": "a", "verdict": "ok"}, {"container": "b", "verdict": "broken"},
                                     {"container": "c", "verdict": "down"}]});
        let cs = json!({"a": {"broken_at_start": false}, "b": {"broken_at_start": true}, "d": {"broken_at_start": true}});
        assert_eq!(not_ok(&sv), BTreeSet::from(["b".into(), "c".into()]));
        assert_eq!(
            broken_at_start(&cs),
            BTreeSet::from(["b".into(), "d".into()])
        );
        assert_eq!(
            verdicts(&sv),
            vec![("ok", 1), ("broken", 1), ("down", 1), ("unknown", 0)]
        );
    }
}
