//! The daemon's Prometheus counters: each run counts its own engine events
//! ([`RunStats`]: restarts by role and outcome, restart attempts, wave
//! durations per role, one lock and no allocation per event — rehearsals
//! emit tens of thousands), and a scrape sums them by playbook, mode and
//! role. Rehearsals count in virtual seconds, real runs in real ones: the
//! `mode` label keeps them apart. A scrape is a [`Scrape`] snapshot, encoded
//! in the OpenMetrics text format by prometheus-client.

use crate::engine::Event;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::collections::{BTreeMap, HashMap};

/// Upper bounds of the wave duration buckets (seconds).
pub const WAVE_BUCKETS: [f64; 9] = [1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0];

#[derive(Default, Clone, Debug)]
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

/// Sums runs' stats by (playbook, mode, role).
#[derive(Default, Debug)]
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
}

/// One active run's gauges.
#[derive(Debug)]
pub struct RunGauges {
    /// The run's id.
    pub run: String,
    /// Its playbook.
    pub playbook: String,
    /// Containers healthy so far.
    pub healthy: u64,
    /// Containers failed so far.
    pub failed: u64,
    /// Restart attempts so far.
    pub restarts: u64,
    /// Waves passed so far.
    pub waves_passed: u64,
    /// The DNS budget (lookups per second) and the lookups granted, when
    /// the run is paced by one.
    pub pace: Option<(f64, u64)>,
}

/// What one scrape shows: a snapshot taken under the daemon's locks,
/// encoded by prometheus-client once they are released.
#[derive(Debug, Default)]
pub struct Scrape {
    /// Runs the daemon knows, by state name (every state, zeros included).
    pub runs_by_state: Vec<(&'static str, u64)>,
    /// Restarts and wave durations by playbook, mode and role.
    pub totals: Totals,
    /// Each active run's gauges.
    pub runs: Vec<RunGauges>,
    /// Each real run's resolver counters: (run, playbook, counters).
    pub resolvers: Vec<(String, String, crate::dns::DnsMetrics)>,
}

impl Scrape {
    /// The scrape in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn render(self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut out = String::new();
        encode(&mut out, &registry).expect("writing to a String does not fail");
        out
    }
}

/// The content type of [`Scrape::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(&'static str, String)>;

/// A label, its value escaped (`\\`, `"`, newlines): prometheus-client
/// writes label values as they are.
fn label(key: &'static str, value: &str) -> (&'static str, String) {
    let escaped = value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    (key, escaped)
}

/// A metric's name, help, and how to read its value from a `T`.
type Described<T> = (&'static str, &'static str, fn(&T) -> u64);

/// One metric family: its descriptor, then each labelled sample.
fn family<M: EncodeMetric>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (Labels, M)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, m) in samples {
        m.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A wave-duration histogram from stored bucket counts.
#[derive(Debug)]
struct Waves<'a>(&'a RoleStats);

impl EncodeMetric for Waves<'_> {
    fn encode(&self, mut enc: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        // prometheus-client takes each bucket's own count and sums them up.
        let s = self.0;
        let mut buckets = Vec::with_capacity(WAVE_BUCKETS.len() + 1);
        let mut below = 0;
        for (le, cumulative) in WAVE_BUCKETS.iter().zip(s.wave_buckets) {
            buckets.push((*le, cumulative - below));
            below = cumulative;
        }
        buckets.push((f64::MAX, s.wave_count - below));
        enc.encode_histogram::<NoLabelSet>(s.wave_sum, s.wave_count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        self.totals(&mut enc)?;
        self.active_runs(&mut enc)?;
        self.resolver_families(&mut enc)
    }
}

impl Scrape {
    /// Runs by state, and the restarts of every run by role: outcomes,
    /// attempts, wave durations.
    fn totals(&self, enc: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        use MetricType::{Counter, Gauge};
        family(
            enc,
            "rekindle_runs",
            "Runs the daemon knows, by state.",
            Gauge,
            self.runs_by_state
                .iter()
                .map(|(state, n)| (vec![label("state", state)], ConstGauge::new(*n))),
        )?;
        let role = |(pb, mode, role): &Key| -> Labels {
            vec![
                label("playbook", pb),
                label("mode", mode),
                label("role", role),
            ]
        };
        let with = |mut l: Labels, k: &'static str, v: &str| {
            l.push(label(k, v));
            l
        };
        family(
            enc,
            "rekindle_restarts",
            "Containers whose restart ended, by role and outcome (healthy, failed).",
            Counter,
            self.totals.0.iter().flat_map(|(k, s)| {
                [
                    (
                        with(role(k), "outcome", "healthy"),
                        ConstCounter::new(s.healthy),
                    ),
                    (
                        with(role(k), "outcome", "failed"),
                        ConstCounter::new(s.failed),
                    ),
                ]
            }),
        )?;
        family(
            enc,
            "rekindle_restart_attempts",
            "Restart calls issued, retries included, by role.",
            Counter,
            self.totals
                .0
                .iter()
                .map(|(k, s)| (role(k), ConstCounter::new(s.attempts))),
        )?;
        family(
            enc,
            "rekindle_wave_duration_seconds",
            "From a wave's start to its gate passing or halting (virtual seconds for rehearsals).",
            MetricType::Histogram,
            self.totals.0.iter().map(|(k, s)| (role(k), Waves(s))),
        )?;
        Ok(())
    }

    /// Each active run's progress and DNS budget.
    fn active_runs(&self, enc: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        use MetricType::{Counter, Gauge};
        let run = |r: &RunGauges| -> Labels {
            vec![label("run", &r.run), label("playbook", &r.playbook)]
        };
        let gauges: [Described<RunGauges>; 3] = [
            (
                "rekindle_run_healthy",
                "An active run's containers healthy so far.",
                |r| r.healthy,
            ),
            (
                "rekindle_run_failed",
                "An active run's containers failed so far.",
                |r| r.failed,
            ),
            (
                "rekindle_run_waves_passed",
                "An active run's waves passed so far.",
                |r| r.waves_passed,
            ),
        ];
        for (name, help, value) in gauges {
            let rows = self
                .runs
                .iter()
                .map(|r| (run(r), ConstGauge::new(value(r))));
            family(enc, name, help, Gauge, rows)?;
        }
        family(
            enc,
            "rekindle_run_restarts",
            "An active run's restart attempts so far.",
            Counter,
            self.runs
                .iter()
                .map(|r| (run(r), ConstCounter::new(r.restarts))),
        )?;
        let paced = || self.runs.iter().filter_map(|r| Some((run(r), r.pace?)));
        family(
            enc,
            "rekindle_run_dns_budget_qps",
            "An active run's DNS budget, in lookups per second.",
            Gauge,
            paced().map(|(l, (qps, _))| (l, ConstGauge::new(qps))),
        )?;
        family(
            enc,
            "rekindle_run_dns_lookups_granted",
            "An active run's startup lookups granted by its DNS budget.",
            Counter,
            paced().map(|(l, (_, granted))| (l, ConstCounter::new(granted))),
        )?;
        Ok(())
    }

    /// Each active run's cached resolver.
    fn resolver_families(&self, enc: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        use MetricType::{Counter, Gauge};
        let dns = |r: &(String, String, crate::dns::DnsMetrics)| -> Labels {
            vec![label("run", &r.0), label("playbook", &r.1)]
        };
        let counters: [Described<crate::dns::DnsMetrics>; 6] = [
            (
                "rekindle_resolver_cache_hits",
                "Lookups answered from the run's cache, fresh.",
                |m| m.hits,
            ),
            (
                "rekindle_resolver_cache_misses",
                "Lookups that started an upstream query.",
                |m| m.misses,
            ),
            (
                "rekindle_resolver_collapsed",
                "Lookups that joined a query in flight.",
                |m| m.collapsed,
            ),
            (
                "rekindle_resolver_stale_served",
                "Expired answers served while the upstream failed.",
                |m| m.stale_served,
            ),
            (
                "rekindle_resolver_upstream_queries",
                "Queries sent to the resolver.",
                |m| m.upstream_queries,
            ),
            (
                "rekindle_resolver_upstream_errors",
                "Queries to the resolver that failed.",
                |m| m.upstream_errors,
            ),
        ];
        for (name, help, value) in counters {
            let rows = self
                .resolvers
                .iter()
                .map(|r| (dns(r), ConstCounter::new(value(&r.2))));
            family(enc, name, help, Counter, rows)?;
        }
        family(
            enc,
            "rekindle_resolver_upstream_latency_mean_ms",
            "Mean latency of the queries sent to the resolver, in milliseconds.",
            Gauge,
            self.resolvers
                .iter()
                .map(|r| (dns(r), ConstGauge::new(r.2.upstream_latency_mean_ms))),
        )?;
        Ok(())
    }
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
        let out = Scrape {
            totals,
            ..Scrape::default()
        }
        .render();
        assert!(out.contains("rekindle_restarts_total{playbook=\"pb\",mode=\"run\",role=\"shard\",outcome=\"healthy\"} 2\n"), "{out}");
        assert!(out.contains("rekindle_restarts_total{playbook=\"pb\",mode=\"run\",role=\"shard\",outcome=\"failed\"} 2\n"), "{out}");
        assert!(
            out.contains(
                "rekindle_restart_attempts_total{playbook=\"pb\",mode=\"run\",role=\"shard\"} 6\n"
            ),
            "{out}"
        );
        assert!(out.contains("rekindle_wave_duration_seconds_bucket{le=\"5.0\",playbook=\"pb\",mode=\"run\",role=\"shard\"} 0\n"), "{out}");
        assert!(out.contains("rekindle_wave_duration_seconds_bucket{le=\"10.0\",playbook=\"pb\",mode=\"run\",role=\"shard\"} 2\n"), "{out}");
        assert!(out.contains("rekindle_wave_duration_seconds_sum{playbook=\"pb\",mode=\"run\",role=\"shard\"} 15.0\n"), "{out}");
        assert!(out.contains("rekindle_wave_duration_seconds_bucket{le=\"+Inf\",playbook=\"pb\",mode=\"run\",role=\"shard\"} 2\n"), "{out}");
        assert!(out.ends_with("# EOF\n"), "{out}");
    }

    #[test]
    fn label_values_are_escaped_and_every_state_is_shown() {
        let mut run = RunStats::default();
        run.observe(&Event::WaveStarted {
            wave: 0,
            role: "r".into(),
            group: "g".into(),
            containers: 1,
            at_s: 0.0,
        });
        run.observe(&Event::Healthy {
            container: "c".into(),
            wave: 0,
        });
        let mut totals = Totals::default();
        totals.add("a\"b\\c\nd", "run", &run);
        let out = Scrape {
            runs_by_state: vec![("running", 1), ("failed", 0)],
            totals,
            ..Scrape::default()
        }
        .render();
        assert!(
            out.contains(r#"playbook="a\"b\\c\nd""#),
            "a playbook's name cannot break the text: {out}"
        );
        assert!(out.contains("rekindle_runs{state=\"failed\"} 0\n"), "{out}");
    }
}
