//! The daemon's Prometheus counters: each run counts its own engine events
//! ([`RunStats`]: restarts by role and outcome, restart attempts, wave
//! durations per role, one lock and no allocation per event — rehearsals
//! emit tens of thousands), and a scrape sums them by playbook, mode and
//! role. Rehearsals count in virtual seconds, real runs in real ones: the
//! `mode` label keeps them apart.

use crate::engine::Event;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

/// Upper bounds of the wave duration buckets (seconds).
pub const WAVE_BUCKETS: [f64; 9] = [1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0];

#[derive(Default, Clone)]
struct RoleStats {
    healthy: u64,
    failed: u64,
    attempts: u64,
    wave_buckets: [u64; WAVE_BUCKETS.len()],
    wave_count: u64,
    wave_sum: f64,
}

/// One run's counts.
#[derive(Default)]
pub struct RunStats {
    /// Wave → (role, start seconds).
    waves: HashMap<usize, (String, f64)>,
    roles: HashMap<String, RoleStats>,
}

impl RunStats {
    /// Counts one engine event.
    pub fn observe(&mut self, e: &Event) {
        match e {
            Event::WaveStarted {
                wave, role, at_s, ..
            } => {
                self.waves.insert(*wave, (role.clone(), *at_s));
            }
            Event::Restarting { wave, .. } => {
                if let Some(r) = self.role(*wave) {
                    r.attempts += 1;
                }
            }
            Event::Healthy { wave, .. } => {
                if let Some(r) = self.role(*wave) {
                    r.healthy += 1;
                }
            }
            Event::ContainerFailed { wave, .. } => {
                if let Some(r) = self.role(*wave) {
                    r.failed += 1;
                }
            }
            Event::WavePassed { wave, at_s, .. } | Event::WaveHalted { wave, at_s, .. } => {
                let Some(start) = self.waves.get(wave).map(|w| w.1) else {
                    return;
                };
                let took = (at_s - start).max(0.0);
                if let Some(r) = self.role(*wave) {
                    for (i, le) in WAVE_BUCKETS.iter().enumerate() {
                        if took <= *le {
                            r.wave_buckets[i] += 1;
                        }
                    }
                    r.wave_count += 1;
                    r.wave_sum += took;
                }
            }
            _ => {}
        }
    }

    /// The counts of the role of `wave` (allocates once per role).
    fn role(&mut self, wave: usize) -> Option<&mut RoleStats> {
        let (name, _) = self.waves.get(&wave)?;
        if !self.roles.contains_key(name.as_str()) {
            self.roles.insert(name.clone(), RoleStats::default());
        }
        self.roles.get_mut(name.as_str())
    }
}

type Key = (String, &'static str, String); // playbook, mode, role

/// Sums runs' stats by (playbook, mode, role) and renders them.
#[derive(Default)]
pub struct Totals(BTreeMap<Key, RoleStats>);

impl Totals {
    /// Adds one run's counts under its playbook and mode.
    pub fn add(&mut self, playbook: &str, mode: &'static str, stats: &RunStats) {
        for (role, s) in &stats.roles {
            let t = self
                .0
                .entry((playbook.to_string(), mode, role.clone()))
                .or_default();
            t.healthy += s.healthy;
            t.failed += s.failed;
            t.attempts += s.attempts;
            for (a, b) in t.wave_buckets.iter_mut().zip(s.wave_buckets) {
                *a += b;
            }
            t.wave_count += s.wave_count;
            t.wave_sum += s.wave_sum;
        }
    }

    /// The counters in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let labels = |(pb, mode, role): &Key| {
            format!(
                "playbook=\"{}\",mode=\"{mode}\",role=\"{}\"",
                escape(pb),
                escape(role)
            )
        };
        out.push_str("# HELP rekindle_restarts_total Containers whose restart ended, by role and outcome (healthy, failed).\n# TYPE rekindle_restarts_total counter\n");
        for (k, s) in &self.0 {
            let l = labels(k);
            let _ = writeln!(
                out,
                "rekindle_restarts_total{{{l},outcome=\"healthy\"}} {}",
                s.healthy
            );
            let _ = writeln!(
                out,
                "rekindle_restarts_total{{{l},outcome=\"failed\"}} {}",
                s.failed
            );
        }
        out.push_str("# HELP rekindle_restart_attempts_total Restart calls issued, retries included, by role.\n# TYPE rekindle_restart_attempts_total counter\n");
        for (k, s) in &self.0 {
            let _ = writeln!(
                out,
                "rekindle_restart_attempts_total{{{}}} {}",
                labels(k),
                s.attempts
            );
        }
        out.push_str("# HELP rekindle_wave_duration_seconds From a wave's start to its gate passing or halting (virtual seconds for rehearsals).\n# TYPE rekindle_wave_duration_seconds histogram\n");
        for (k, s) in &self.0 {
            let l = labels(k);
            for (i, le) in WAVE_BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "rekindle_wave_duration_seconds_bucket{{{l},le=\"{le}\"}} {}",
                    s.wave_buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "rekindle_wave_duration_seconds_bucket{{{l},le=\"+Inf\"}} {}",
                s.wave_count
            );
            let _ = writeln!(
                out,
                "rekindle_wave_duration_seconds_sum{{{l}}} {}",
                s.wave_sum
            );
            let _ = writeln!(
                out,
                "rekindle_wave_duration_seconds_count{{{l}}} {}",
                s.wave_count
            );
        }
    }
}

/// A label value with `\`, `"` and newlines escaped.
pub fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_become_restarts_by_role_and_wave_durations() {
        let mut run = RunStats::default();
        let ev = [
            Event::WaveStarted {
                wave: 0,
                role: "shard".into(),
                group: "a".into(),
                containers: 2,
                at_s: 10.0,
            },
            Event::Restarting {
                container: "s1".into(),
                host: "h".into(),
                wave: 0,
                attempt: 1,
            },
            Event::Restarting {
                container: "s2".into(),
                host: "h".into(),
                wave: 0,
                attempt: 1,
            },
            Event::Restarting {
                container: "s2".into(),
                host: "h".into(),
                wave: 0,
                attempt: 2,
            },
            Event::Healthy {
                container: "s1".into(),
                wave: 0,
            },
            Event::ContainerFailed {
                container: "s2".into(),
                wave: 0,
                reason: "exit".into(),
            },
            Event::WaveHalted {
                wave: 0,
                failed: vec!["s2".into()],
                at_s: 17.5,
            },
        ];
        for e in &ev {
            run.observe(e);
        }
        let mut totals = Totals::default();
        totals.add("pb", "run", &run);
        totals.add("pb", "run", &run);
        let mut out = String::new();
        totals.render(&mut out);
        assert!(out.contains("rekindle_restarts_total{playbook=\"pb\",mode=\"run\",role=\"shard\",outcome=\"healthy\"} 2\n"), "{out}");
        assert!(out.contains("rekindle_restarts_total{playbook=\"pb\",mode=\"run\",role=\"shard\",outcome=\"failed\"} 2\n"), "{out}");
        assert!(
            out.contains(
                "rekindle_restart_attempts_total{playbook=\"pb\",mode=\"run\",role=\"shard\"} 6\n"
            ),
            "{out}"
        );
        assert!(out.contains("rekindle_wave_duration_seconds_bucket{playbook=\"pb\",mode=\"run\",role=\"shard\",le=\"5\"} 0\n"), "{out}");
        assert!(out.contains("rekindle_wave_duration_seconds_bucket{playbook=\"pb\",mode=\"run\",role=\"shard\",le=\"10\"} 2\n"), "{out}");
        assert!(out.contains("rekindle_wave_duration_seconds_sum{playbook=\"pb\",mode=\"run\",role=\"shard\"} 15\n"), "{out}");
    }
}
