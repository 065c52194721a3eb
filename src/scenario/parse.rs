//! A scenario file checked: its TOML shape, and each section validated
//! against the text it came from, so that every error names its place
//! (`file:line:col: field: what was expected, what was found`).

use super::{
    fleet, Broken, ClusterShape, Labels, ResolverMode, ResolverModel, Scenario, SimRole, Span,
    DEFAULT_START, DEFAULT_START_PROCESS_AT,
};
use crate::source::{SourceError, SourceText};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Spanned<String>,
    seed: u64,
    fleet: RawFleet,
    labels: Labels,
    dns: RawDns,
    startup_lookups: Spanned<BTreeMap<String, Spanned<i64>>>,
    timing: RawTiming,
    faults: RawFaults,
    docker: RawDocker,
    #[serde(default)]
    broken: Option<Spanned<RawBroken>>,
}

/// `[broken]`: which containers the incident left broken (the rest start
/// healthy). Absent, every container starts broken.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBroken {
    #[serde(default)]
    share: Option<Spanned<f64>>,
    #[serde(default)]
    roles: Option<BTreeMap<String, Spanned<f64>>>,
    #[serde(default)]
    clusters: Option<BTreeMap<String, Spanned<f64>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFleet {
    hosts: Spanned<i64>,
    domain: Spanned<String>,
    clusters: Spanned<Vec<RawClusters>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClusters {
    count: Spanned<i64>,
    config_members: Spanned<i64>,
    shards: Spanned<i64>,
    members_per_shard: Spanned<i64>,
    routers: Spanned<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDns {
    capacity_qps: Spanned<f64>,
    #[serde(default)]
    mode: Option<Spanned<String>>,
    #[serde(default)]
    queue: Option<Spanned<i64>>,
    timeout_ms: Spanned<i64>,
    attempts: Spanned<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTiming {
    restart: Spanned<[f64; 2]>,
    ready: Spanned<BTreeMap<String, Spanned<[f64; 2]>>>,
    #[serde(default)]
    no_config: Option<Spanned<[f64; 2]>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFaults {
    restart_failure_rate: Spanned<f64>,
    #[serde(default)]
    stuck_if_started_before_deps: Vec<Spanned<String>>,
    #[serde(default)]
    down_hosts: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDocker {
    api_concurrency_per_host: Spanned<i64>,
    #[serde(default)]
    healthcheck: bool,
    #[serde(default)]
    start: Option<Spanned<[f64; 2]>>,
    #[serde(default)]
    start_process_at: Option<Spanned<f64>>,
    #[serde(default)]
    start_concurrency: Option<Spanned<i64>>,
    #[serde(default)]
    starts_share_slots: bool,
}

/// Checks values against the text they came from.
struct Check<'a>(&'a SourceText);

/// `[faults]` validated.
struct Faults {
    restart_failure_rate: f64,
    stuck: Vec<SimRole>,
    down_hosts: u32,
}

/// `[docker]`'s numbers validated.
struct Engine {
    api_concurrency_per_host: u32,
    start: Span,
    start_process_at: f64,
    start_concurrency: u32,
}

/// Reads and validates a scenario, section by section.
pub(super) fn parse(src: &SourceText) -> Result<Scenario, SourceError> {
    let raw: RawScenario = toml::from_str(&src.text).map_err(|e| src.toml_error(&e))?;
    let check = Check(src);
    let name = check.name(&raw.name)?;
    let (hosts, domain) = check.fleet(&raw.fleet)?;
    let clusters = check.clusters(&raw.fleet.clusters, hosts)?;
    let dns = check.resolver(&raw.dns)?;
    let (startup_lookups, ready) = check.per_role(&raw.startup_lookups, &raw.timing.ready)?;
    let faults = check.faults(&raw.faults, hosts)?;
    let broken = match &raw.broken {
        None => None,
        Some(b) => Some(check.broken(b, &clusters)?),
    };
    let restart = check.seconds(&raw.timing.restart, "timing.restart")?;
    let no_config = match &raw.timing.no_config {
        Some(v) => check.seconds(v, "timing.no_config")?,
        None => Span { min: 0.2, max: 0.6 },
    };
    let engine = check.engine(&raw.docker)?;
    Ok(Scenario {
        name,
        seed: raw.seed,
        hosts,
        domain,
        clusters,
        labels: raw.labels,
        dns,
        startup_lookups,
        restart,
        ready,
        no_config,
        restart_failure_rate: faults.restart_failure_rate,
        stuck_if_started_before_deps: faults.stuck,
        down_hosts: faults.down_hosts,
        api_concurrency_per_host: engine.api_concurrency_per_host,
        healthcheck: raw.docker.healthcheck,
        start: engine.start,
        start_process_at: engine.start_process_at,
        start_concurrency: engine.start_concurrency,
        starts_share_slots: raw.docker.starts_share_slots,
        broken,
    })
}

impl Check<'_> {
    fn err(&self, span: Range<usize>, field: &str, msg: String) -> SourceError {
        self.0.error(span, field, msg)
    }

    /// An integer from `min` to `max`.
    fn int(&self, v: &Spanned<i64>, field: &str, min: i64, max: i64) -> Result<u32, SourceError> {
        let x = *v.get_ref();
        if x < min || x > max {
            return Err(self.err(
                v.span(),
                field,
                format!("expected an integer from {min} to {max}, found {x}"),
            ));
        }
        Ok(x as u32)
    }

    /// A role's name.
    fn role(&self, k: &str, span: Range<usize>, field: &str) -> Result<SimRole, SourceError> {
        SimRole::parse(k).ok_or_else(|| {
            self.err(
                span,
                field,
                format!("unknown role {k:?}: expected configsvr, shard or router"),
            )
        })
    }

    /// `[min, max]` seconds with 0 <= min <= max.
    fn seconds(&self, v: &Spanned<[f64; 2]>, field: &str) -> Result<Span, SourceError> {
        let [min, max] = *v.get_ref();
        if !(min.is_finite() && max.is_finite() && min >= 0.0 && max >= min) {
            return Err(self.err(
                v.span(),
                field,
                format!("expected [min, max] seconds with 0 <= min <= max, found [{min}, {max}]"),
            ));
        }
        Ok(Span { min, max })
    }

    /// A share from 0 to 1.
    fn share(&self, v: &Spanned<f64>, field: &str) -> Result<f64, SourceError> {
        let x = *v.get_ref();
        if !(0.0..=1.0).contains(&x) {
            return Err(self.err(
                v.span(),
                field,
                format!("expected a share from 0 to 1, found {x}"),
            ));
        }
        Ok(x)
    }

    fn name(&self, v: &Spanned<String>) -> Result<String, SourceError> {
        let name = v.get_ref().trim().to_string();
        if name.is_empty() {
            return Err(self.err(v.span(), "name", "must not be empty".into()));
        }
        Ok(name)
    }

    /// `[fleet]`'s hosts and domain.
    fn fleet(&self, f: &RawFleet) -> Result<(u32, String), SourceError> {
        let hosts = self.int(&f.hosts, "fleet.hosts", 1, 100_000)?;
        let domain = f.domain.get_ref().trim().trim_end_matches('.').to_string();
        if domain.is_empty() {
            return Err(self.err(f.domain.span(), "fleet.domain", "must not be empty".into()));
        }
        Ok((hosts, domain))
    }

    /// `[[fleet.clusters]]`: at least one group; a replica set fits on the hosts.
    fn clusters(
        &self,
        groups: &Spanned<Vec<RawClusters>>,
        hosts: u32,
    ) -> Result<Vec<ClusterShape>, SourceError> {
        if groups.get_ref().is_empty() {
            return Err(self.err(
                groups.span(),
                "fleet.clusters",
                "at least one [[fleet.clusters]] group is needed".into(),
            ));
        }
        let mut clusters = Vec::new();
        for (i, c) in groups.get_ref().iter().enumerate() {
            let f = |n: &str| format!("fleet.clusters[{i}].{n}");
            let shape = ClusterShape {
                count: self.int(&c.count, &f("count"), 1, 1_000_000)?,
                config_members: self.int(&c.config_members, &f("config_members"), 0, 50)?,
                shards: self.int(&c.shards, &f("shards"), 0, 10_000)?,
                members_per_shard: self.int(
                    &c.members_per_shard,
                    &f("members_per_shard"),
                    1,
                    50,
                )?,
                routers: self.int(&c.routers, &f("routers"), 0, 100_000)?,
            };
            for (n, members, span) in [
                (
                    "config_members",
                    shape.config_members,
                    c.config_members.span(),
                ),
                (
                    "members_per_shard",
                    shape.members_per_shard,
                    c.members_per_shard.span(),
                ),
            ] {
                if members > hosts {
                    return Err(self.err(
                        span,
                        &f(n),
                        format!("a replica set of {members} members needs at least {members} hosts, the fleet has {hosts}"),
                    ));
                }
            }
            clusters.push(shape);
        }
        Ok(clusters)
    }

    /// `[dns]`: the simulated resolver.
    fn resolver(&self, d: &RawDns) -> Result<ResolverModel, SourceError> {
        let capacity_qps = *d.capacity_qps.get_ref();
        if !(capacity_qps.is_finite() && capacity_qps > 0.0) {
            return Err(self.err(
                d.capacity_qps.span(),
                "dns.capacity_qps",
                format!("expected a positive number, found {capacity_qps}"),
            ));
        }
        let mode = match &d.mode {
            None => ResolverMode::Queue,
            Some(m) => match m.get_ref().as_str() {
                "queue" => ResolverMode::Queue,
                "per_second" => ResolverMode::PerSecond,
                other => {
                    return Err(self.err(
                        m.span(),
                        "dns.mode",
                        format!(
                            "unknown resolver mode {other:?}: expected \"queue\" or \"per_second\""
                        ),
                    ))
                }
            },
        };
        let queue = match (&d.queue, mode) {
            (Some(q), _) => self.int(q, "dns.queue", 0, 100_000_000)?,
            (None, ResolverMode::PerSecond) => 0,
            (None, ResolverMode::Queue) => {
                return Err(self.err(
                    d.capacity_qps.span(),
                    "dns.queue",
                    "missing: a resolver in queue mode needs `queue` (queries that may wait; 0 for none)".into(),
                ))
            }
        };
        Ok(ResolverModel {
            capacity_qps,
            mode,
            queue,
            timeout_ms: self.int(&d.timeout_ms, "dns.timeout_ms", 1, 600_000)? as u64,
            attempts: self.int(&d.attempts, "dns.attempts", 1, 100)?,
        })
    }

    /// `[startup_lookups]` and `[timing.ready]`: one entry per role, each role given.
    fn per_role(
        &self,
        lookups: &Spanned<BTreeMap<String, Spanned<i64>>>,
        ready: &Spanned<BTreeMap<String, Spanned<[f64; 2]>>>,
    ) -> Result<([u32; 3], [Span; 3]), SourceError> {
        let mut n = [None; 3];
        for (k, v) in lookups.get_ref() {
            let field = format!("startup_lookups.{k}");
            let r = self.role(k, v.span(), &field)?;
            n[r as usize] = Some(self.int(v, &field, 0, 100_000)?);
        }
        let mut spans = [None; 3];
        for (k, v) in ready.get_ref() {
            let field = format!("timing.ready.{k}");
            let r = self.role(k, v.span(), &field)?;
            spans[r as usize] = Some(self.seconds(v, &field)?);
        }
        for r in SimRole::ALL {
            if n[r as usize].is_none() {
                return Err(self.err(
                    lookups.span(),
                    "startup_lookups",
                    format!("missing role {:?}", r.label()),
                ));
            }
            if spans[r as usize].is_none() {
                return Err(self.err(
                    ready.span(),
                    "timing.ready",
                    format!("missing role {:?}", r.label()),
                ));
            }
        }
        Ok((n.map(|x| x.unwrap()), spans.map(|x| x.unwrap())))
    }

    /// `[faults]`.
    fn faults(&self, f: &RawFaults, hosts: u32) -> Result<Faults, SourceError> {
        let rate = *f.restart_failure_rate.get_ref();
        if !(0.0..1.0).contains(&rate) {
            return Err(self.err(
                f.restart_failure_rate.span(),
                "faults.restart_failure_rate",
                format!("expected a fraction from 0 up to (not including) 1, found {rate}"),
            ));
        }
        let stuck = f
            .stuck_if_started_before_deps
            .iter()
            .map(|s| self.role(s.get_ref(), s.span(), "faults.stuck_if_started_before_deps"))
            .collect::<Result<Vec<_>, _>>()?;
        let down_hosts = match &f.down_hosts {
            Some(d) => self.int(d, "faults.down_hosts", 0, hosts as i64 - 1)?,
            None => 0,
        };
        Ok(Faults {
            restart_failure_rate: rate,
            stuck,
            down_hosts,
        })
    }

    /// `[docker]`: the hosts' engines.
    fn engine(&self, d: &RawDocker) -> Result<Engine, SourceError> {
        let api_concurrency_per_host = self.int(
            &d.api_concurrency_per_host,
            "docker.api_concurrency_per_host",
            1,
            10_000,
        )?;
        let start = match &d.start {
            Some(v) => self.seconds(v, "docker.start")?,
            None => DEFAULT_START,
        };
        let start_process_at = match &d.start_process_at {
            Some(v) => {
                let f = *v.get_ref();
                if !(0.0..=1.0).contains(&f) {
                    return Err(self.err(
                        v.span(),
                        "docker.start_process_at",
                        format!("expected a fraction from 0 to 1 of the start call, found {f}"),
                    ));
                }
                f
            }
            None => DEFAULT_START_PROCESS_AT,
        };
        let start_concurrency = match &d.start_concurrency {
            Some(v) => self.int(v, "docker.start_concurrency", 1, 10_000)?,
            None => 2,
        };
        Ok(Engine {
            api_concurrency_per_host,
            start,
            start_process_at,
            start_concurrency,
        })
    }

    /// `[broken]`: shares are fractions from 0 to 1, roles and clusters
    /// exist, and something is broken.
    fn broken(
        &self,
        b: &Spanned<RawBroken>,
        shapes: &[ClusterShape],
    ) -> Result<Broken, SourceError> {
        let raw = b.get_ref();
        let mut out = Broken {
            share: match &raw.share {
                Some(v) => self.share(v, "broken.share")?,
                None => 0.0,
            },
            roles: [None; 3],
            clusters: BTreeMap::new(),
        };
        for (k, v) in raw.roles.iter().flatten() {
            let field = format!("broken.roles.{k}");
            let r = self.role(k, v.span(), &field)?;
            out.roles[r as usize] = Some(self.share(v, &field)?);
        }
        let total: u64 = shapes.iter().map(|c| c.count as u64).sum();
        for (k, v) in raw.clusters.iter().flatten() {
            let field = format!("broken.clusters.{k}");
            let known = (0..total).any(|i| fleet::cluster_name(i, total) == *k);
            if !known {
                return Err(self.err(
                    v.span(),
                    &field,
                    format!(
                        "no cluster {k:?} in this fleet (its clusters are {} to {})",
                        fleet::cluster_name(0, total),
                        fleet::cluster_name(total.saturating_sub(1), total)
                    ),
                ));
            }
            out.clusters.insert(k.clone(), self.share(v, &field)?);
        }
        if out.share == 0.0
            && out.roles.iter().all(|r| r.unwrap_or(0.0) == 0.0)
            && out.clusters.values().all(|&s| s == 0.0)
        {
            return Err(self.err(
                b.span(),
                "broken",
                "nothing is broken: give a share above 0 (fleet-wide, per role or per cluster), or leave [broken] out (then every container is)".into(),
            ));
        }
        Ok(out)
    }
}
