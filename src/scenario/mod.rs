//! Reference scenarios: a simulated fleet and its failure mechanics in one
//! TOML file (format in `shared/scenarios/README.md`, copied to
//! `config/scenarios/README.md`). This module parses and validates the file
//! and generates the fleet deterministically from its seed; it knows nothing
//! of playbooks, so baselines and rekindle face the very same world.

mod fleet;

use crate::source::{SourceError, SourceText};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use toml::Spanned;

pub use fleet::{Fleet, SimContainer};

/// The three process kinds of a sharded MongoDB cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SimRole {
    /// A config-server mongod.
    Configsvr,
    /// A shard's mongod (a replica-set member).
    Shard,
    /// A mongos.
    Router,
}

impl SimRole {
    /// Every role, in dependency order: the index used by per-role arrays.
    pub const ALL: [SimRole; 3] = [SimRole::Configsvr, SimRole::Shard, SimRole::Router];

    /// The value of its `role` label (`configsvr`, `shard`, `router`).
    pub fn label(self) -> &'static str {
        match self {
            SimRole::Configsvr => "configsvr",
            SimRole::Shard => "shard",
            SimRole::Router => "router",
        }
    }

    /// Whether it holds data (config servers and shards, not routers).
    pub fn is_data(self) -> bool {
        !matches!(self, SimRole::Router)
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.label() == s)
    }
}

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

/// Label keys every simulated container carries.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Labels {
    /// The key whose value is the role (`configsvr`, `shard`, `router`).
    pub role: String,
    /// The key naming the cluster.
    pub cluster: String,
    /// The key naming the replica set.
    pub replset: String,
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

/// `[broken]` validated: shares are fractions from 0 to 1, roles and
/// clusters exist.
fn broken(
    src: &SourceText,
    b: &Spanned<RawBroken>,
    shapes: &[ClusterShape],
) -> Result<Broken, SourceError> {
    let share = |v: &Spanned<f64>, field: &str| -> Result<f64, SourceError> {
        let x = *v.get_ref();
        if !(0.0..=1.0).contains(&x) {
            return Err(src.error(
                v.span(),
                field,
                format!("expected a share from 0 to 1, found {x}"),
            ));
        }
        Ok(x)
    };
    let raw = b.get_ref();
    let mut out = Broken {
        share: match &raw.share {
            Some(v) => share(v, "broken.share")?,
            None => 0.0,
        },
        roles: [None; 3],
        clusters: BTreeMap::new(),
    };
    for (k, v) in raw.roles.iter().flatten() {
        let field = format!("broken.roles.{k}");
        let r = SimRole::parse(k).ok_or_else(|| {
            src.error(
                v.span(),
                &field,
                format!("unknown role {k:?}: expected configsvr, shard or router"),
            )
        })?;
        out.roles[r as usize] = Some(share(v, &field)?);
    }
    let total: u64 = shapes.iter().map(|c| c.count as u64).sum();
    for (k, v) in raw.clusters.iter().flatten() {
        let field = format!("broken.clusters.{k}");
        let known = (0..total).any(|i| fleet::cluster_name(i, total) == *k);
        if !known {
            return Err(src.error(
                v.span(),
                &field,
                format!(
                    "no cluster {k:?} in this fleet (its clusters are {} to {})",
                    fleet::cluster_name(0, total),
                    fleet::cluster_name(total.saturating_sub(1), total)
                ),
            ));
        }
        out.clusters.insert(k.clone(), share(v, &field)?);
    }
    if out.share == 0.0
        && out.roles.iter().all(|r| r.unwrap_or(0.0) == 0.0)
        && out.clusters.values().all(|&s| s == 0.0)
    {
        return Err(src.error(
            b.span(),
            "broken",
            "nothing is broken: give a share above 0 (fleet-wide, per role or per cluster), or leave [broken] out (then every container is)",
        ));
    }
    Ok(out)
}

/// A group of identical clusters.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClusterShape {
    /// How many clusters of this shape.
    pub count: u32,
    /// Config-server members per cluster.
    pub config_members: u32,
    /// Shards (replica sets) per cluster.
    pub shards: u32,
    /// Members of each shard's replica set.
    pub members_per_shard: u32,
    /// Routers (mongos) per cluster.
    pub routers: u32,
}

/// What a resolver does with queries past its capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolverMode {
    /// Answers `capacity_qps` in arrival order; the rest wait in a queue of
    /// `queue` queries (0: none); a query arriving at a full queue is dropped.
    Queue,
    /// Like unbound's `ip-ratelimit`: at most `capacity_qps` queries are
    /// answered in each whole second; the rest of that second is dropped.
    PerSecond,
}

/// The simulated resolver (`[dns]`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ResolverModel {
    /// Queries per second it answers.
    pub capacity_qps: f64,
    /// What it does with queries past its capacity.
    pub mode: ResolverMode,
    /// Queue mode: how many queries may wait (unused in per-second mode).
    pub queue: u32,
    /// The client's timeout of one query (ms): an answer later than this is lost.
    pub timeout_ms: u64,
    /// Tries per lookup, the first included.
    pub attempts: u32,
}

/// A uniform `[min, max]` in seconds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Span {
    /// Lower end (seconds).
    pub min: f64,
    /// Upper end (seconds).
    pub max: f64,
}

/// Which containers the incident left broken (`[broken]`): exactly
/// `round(share × n)` of each group, drawn from the seed; the rest start
/// healthy.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Broken {
    /// The share of each role's containers broken, unless the role has
    /// its own (`roles.<role>`), outside the listed clusters.
    pub share: f64,
    /// Per role (by [`SimRole`] index), its own share.
    pub roles: [Option<f64>; 3],
    /// Per cluster (by name), the share of its containers broken (all
    /// roles; 1 is the whole cluster), in place of the shares above.
    pub clusters: BTreeMap<String, f64>,
}

/// A validated scenario.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Scenario {
    /// A name for reports.
    pub name: String,
    /// The random seed: same seed, same run.
    pub seed: u64,
    /// Docker hosts in the fleet.
    pub hosts: u32,
    /// DNS suffix of container names.
    pub domain: String,
    /// The cluster shapes (`[[fleet.clusters]]`).
    pub clusters: Vec<ClusterShape>,
    /// The label keys every simulated container carries.
    pub labels: Labels,
    /// The simulated resolver.
    pub dns: ResolverModel,
    /// Startup lookups per role, indexed like [`SimRole::ALL`].
    pub startup_lookups: [u32; 3],
    /// Time of one restart, spent stopping.
    pub restart: Span,
    /// Ready delay per role, indexed like [`SimRole::ALL`].
    pub ready: [Span; 3],
    /// How long a data node, once started, answers `hello` without its
    /// replica-set config (mongod's STARTUP: the drivers' RSGhost) before
    /// STARTUP2; part of its ready delay (a member is not ready before its
    /// config is loaded). `timing.no_config`, default [0.2, 0.6] s.
    pub no_config: Span,
    /// Chance (0 to 1) that a restarted container exits and must be restarted again.
    pub restart_failure_rate: f64,
    /// Roles whose process stays up but disconnected if it starts while a data node of its cluster is not healthy.
    pub stuck_if_started_before_deps: Vec<SimRole>,
    /// Hosts that do not answer the Docker API at all.
    pub down_hosts: u32,
    /// Concurrent Docker API calls one host serves.
    pub api_concurrency_per_host: u32,
    /// Whether the images define a Docker HEALTHCHECK, the operator's own
    /// check of readiness: healthy once a process is ready, unhealthy while
    /// it is disconnected or stuck. Without one (the default, like the
    /// official mongo image), Docker reports a running process and a
    /// `docker` gate passes it as soon as it runs.
    pub healthcheck: bool,
    /// How long a start call is served by its host (`docker.start`,
    /// uniform seconds), holding one of the host's start slots
    /// (`start_concurrency`) after its wait for one: Docker's start is not
    /// instant and queues (docs/docker-world.md).
    pub start: Span,
    /// Where in a start's service time its process begins, and with it its
    /// startup lookups and its `start` event (`docker.start_process_at`, 0
    /// to 1).
    pub start_process_at: f64,
    /// How many starts a host serves at once (`docker.start_concurrency`,
    /// default 2: measured, starts saturate at 7–11 per second).
    pub start_concurrency: u32,
    /// Whether a start also needs one of the host's call slots
    /// (`api_concurrency_per_host`) and so queues behind the stops holding
    /// them (`docker.starts_share_slots`). Measured: it does not (a start
    /// with four stops in flight took 267 ms, 218 ms without), so the
    /// default is `false`; `true` models an engine that serializes them.
    pub starts_share_slots: bool,
    /// Which containers start broken (`None`: all of them).
    pub broken: Option<Broken>,
}

/// Calibrated on this project's machine (Docker Engine 20.10, a
/// FROM-scratch container, one start call at a time): docs/docker-world.md.
pub const DEFAULT_START: Span = Span {
    min: 0.2,
    max: 0.35,
};
/// Where the process begins in a start call, measured by the `start`
/// event's place in the call: docs/docker-world.md.
pub const DEFAULT_START_PROCESS_AT: f64 = 0.99;

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Self, SourceError> {
        Self::parse(&SourceText::read(path)?)
    }

    /// Validates a scenario held in memory.
    pub fn parse(src: &SourceText) -> Result<Self, SourceError> {
        let raw: RawScenario = toml::from_str(&src.text).map_err(|e| src.toml_error(&e))?;
        let err =
            |span: std::ops::Range<usize>, field: &str, msg: String| src.error(span, field, msg);
        let int = |v: &Spanned<i64>, field: &str, min: i64, max: i64| -> Result<u32, SourceError> {
            let x = *v.get_ref();
            if x < min || x > max {
                return Err(err(
                    v.span(),
                    field,
                    format!("expected an integer from {min} to {max}, found {x}"),
                ));
            }
            Ok(x as u32)
        };
        let role_key = |k: &str, span: std::ops::Range<usize>, field: &str| {
            SimRole::parse(k).ok_or_else(|| {
                err(
                    span,
                    field,
                    format!("unknown role {k:?}: expected configsvr, shard or router"),
                )
            })
        };
        let span_of = |v: &Spanned<[f64; 2]>, field: &str| -> Result<Span, SourceError> {
            let [min, max] = *v.get_ref();
            if !(min.is_finite() && max.is_finite() && min >= 0.0 && max >= min) {
                return Err(err(
                    v.span(),
                    field,
                    format!(
                        "expected [min, max] seconds with 0 <= min <= max, found [{min}, {max}]"
                    ),
                ));
            }
            Ok(Span { min, max })
        };

        let name = raw.name.get_ref().trim().to_string();
        if name.is_empty() {
            return Err(err(raw.name.span(), "name", "must not be empty".into()));
        }
        let hosts = int(&raw.fleet.hosts, "fleet.hosts", 1, 100_000)?;
        let domain = raw
            .fleet
            .domain
            .get_ref()
            .trim()
            .trim_end_matches('.')
            .to_string();
        if domain.is_empty() {
            return Err(err(
                raw.fleet.domain.span(),
                "fleet.domain",
                "must not be empty".into(),
            ));
        }
        if raw.fleet.clusters.get_ref().is_empty() {
            return Err(err(
                raw.fleet.clusters.span(),
                "fleet.clusters",
                "at least one [[fleet.clusters]] group is needed".into(),
            ));
        }
        let mut clusters = Vec::new();
        for (i, c) in raw.fleet.clusters.get_ref().iter().enumerate() {
            let f = |n: &str| format!("fleet.clusters[{i}].{n}");
            let shape = ClusterShape {
                count: int(&c.count, &f("count"), 1, 1_000_000)?,
                config_members: int(&c.config_members, &f("config_members"), 0, 50)?,
                shards: int(&c.shards, &f("shards"), 0, 10_000)?,
                members_per_shard: int(&c.members_per_shard, &f("members_per_shard"), 1, 50)?,
                routers: int(&c.routers, &f("routers"), 0, 100_000)?,
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
                    return Err(err(span, &f(n), format!("a replica set of {members} members needs at least {members} hosts, the fleet has {hosts}")));
                }
            }
            clusters.push(shape);
        }
        let dns = ResolverModel {
            capacity_qps: {
                let c = *raw.dns.capacity_qps.get_ref();
                if !(c.is_finite() && c > 0.0) {
                    return Err(err(raw.dns.capacity_qps.span(), "dns.capacity_qps", format!("expected a positive number, found {c}")));
                }
                c
            },
            mode: match &raw.dns.mode {
                None => ResolverMode::Queue,
                Some(m) => match m.get_ref().as_str() {
                    "queue" => ResolverMode::Queue,
                    "per_second" => ResolverMode::PerSecond,
                    other => return Err(err(m.span(), "dns.mode", format!("unknown resolver mode {other:?}: expected \"queue\" or \"per_second\""))),
                },
            },
            queue: match (&raw.dns.queue, raw.dns.mode.as_ref().map(|m| m.get_ref().as_str())) {
                (Some(q), _) => int(q, "dns.queue", 0, 100_000_000)?,
                (None, Some("per_second")) => 0,
                (None, _) => {
                    return Err(err(raw.dns.capacity_qps.span(), "dns.queue", "missing: a resolver in queue mode needs `queue` (queries that may wait; 0 for none)".into()))
                }
            },
            timeout_ms: int(&raw.dns.timeout_ms, "dns.timeout_ms", 1, 600_000)? as u64,
            attempts: int(&raw.dns.attempts, "dns.attempts", 1, 100)?,
        };
        let mut startup_lookups = [None; 3];
        for (k, v) in raw.startup_lookups.get_ref() {
            let field = format!("startup_lookups.{k}");
            let r = role_key(k, v.span(), &field)?;
            startup_lookups[r as usize] = Some(int(v, &field, 0, 100_000)?);
        }
        let mut ready = [None; 3];
        for (k, v) in raw.timing.ready.get_ref() {
            let field = format!("timing.ready.{k}");
            let r = role_key(k, v.span(), &field)?;
            ready[r as usize] = Some(span_of(v, &field)?);
        }
        for r in SimRole::ALL {
            if startup_lookups[r as usize].is_none() {
                return Err(err(
                    raw.startup_lookups.span(),
                    "startup_lookups",
                    format!("missing role {:?}", r.label()),
                ));
            }
            if ready[r as usize].is_none() {
                return Err(err(
                    raw.timing.ready.span(),
                    "timing.ready",
                    format!("missing role {:?}", r.label()),
                ));
            }
        }
        let rate = *raw.faults.restart_failure_rate.get_ref();
        if !(0.0..1.0).contains(&rate) {
            return Err(err(
                raw.faults.restart_failure_rate.span(),
                "faults.restart_failure_rate",
                format!("expected a fraction from 0 up to (not including) 1, found {rate}"),
            ));
        }
        let stuck = raw
            .faults
            .stuck_if_started_before_deps
            .iter()
            .map(|s| role_key(s.get_ref(), s.span(), "faults.stuck_if_started_before_deps"))
            .collect::<Result<Vec<_>, _>>()?;
        let down_hosts = match &raw.faults.down_hosts {
            Some(d) => int(d, "faults.down_hosts", 0, hosts as i64 - 1)?,
            None => 0,
        };
        let broken = match &raw.broken {
            None => None,
            Some(b) => Some(broken(src, b, &clusters)?),
        };
        Ok(Scenario {
            name,
            seed: raw.seed,
            hosts,
            domain,
            clusters,
            labels: raw.labels,
            dns,
            startup_lookups: startup_lookups.map(|x| x.unwrap()),
            restart: span_of(&raw.timing.restart, "timing.restart")?,
            ready: ready.map(|x| x.unwrap()),
            no_config: match &raw.timing.no_config {
                Some(v) => span_of(v, "timing.no_config")?,
                None => Span { min: 0.2, max: 0.6 },
            },
            restart_failure_rate: rate,
            stuck_if_started_before_deps: stuck,
            down_hosts,
            api_concurrency_per_host: int(
                &raw.docker.api_concurrency_per_host,
                "docker.api_concurrency_per_host",
                1,
                10_000,
            )?,
            healthcheck: raw.docker.healthcheck,
            start: match &raw.docker.start {
                Some(v) => span_of(v, "docker.start")?,
                None => DEFAULT_START,
            },
            start_process_at: match &raw.docker.start_process_at {
                Some(v) => {
                    let f = *v.get_ref();
                    if !(0.0..=1.0).contains(&f) {
                        return Err(err(
                            v.span(),
                            "docker.start_process_at",
                            format!("expected a fraction from 0 to 1 of the start call, found {f}"),
                        ));
                    }
                    f
                }
                None => DEFAULT_START_PROCESS_AT,
            },
            start_concurrency: match &raw.docker.start_concurrency {
                Some(v) => int(v, "docker.start_concurrency", 1, 10_000)?,
                None => 2,
            },
            starts_share_slots: raw.docker.starts_share_slots,
            broken,
        })
    }

    /// Containers of each role across the fleet.
    pub fn role_counts(&self) -> [u64; 3] {
        let mut n = [0u64; 3];
        for c in &self.clusters {
            let k = c.count as u64;
            n[0] += k * c.config_members as u64;
            n[1] += k * (c.shards as u64) * (c.members_per_shard as u64);
            n[2] += k * c.routers as u64;
        }
        n
    }

    /// Containers in the fleet, all roles.
    pub fn total_containers(&self) -> u64 {
        self.role_counts().iter().sum()
    }

    /// Every startup lookup of the fleet (one restart each).
    pub fn total_startup_lookups(&self) -> u64 {
        let n = self.role_counts();
        (0..3).map(|i| n[i] * self.startup_lookups[i] as u64).sum()
    }

    /// The lower bound on recovery time (scenarios README): the resolver
    /// term, or one cluster's dependency chain at minimal delays.
    pub fn lower_bound_s(&self) -> f64 {
        let n = self.role_counts();
        let present: Vec<SimRole> = SimRole::ALL
            .into_iter()
            .filter(|r| n[*r as usize] > 0)
            .collect();
        let min_ready = present
            .iter()
            .map(|r| self.ready[*r as usize].min)
            .fold(f64::INFINITY, f64::min);
        // From a stop's call to its process's lookups: the stop, then the
        // start's service up to where the process begins.
        let to_process = self.restart.min + self.start.min * self.start_process_at;
        let dns = to_process
            + self.total_startup_lookups() as f64 / self.dns.capacity_qps
            + min_ready.min(f64::MAX);
        let data_ready = present
            .iter()
            .filter(|r| r.is_data())
            .map(|r| self.ready[*r as usize].min.max(self.no_config.min))
            .fold(0.0, f64::max);
        let mut chain = to_process + data_ready;
        let dependents: Vec<&SimRole> = present
            .iter()
            .filter(|r| self.stuck_if_started_before_deps.contains(r) && !r.is_data())
            .collect();
        if !dependents.is_empty() && present.iter().any(|r| r.is_data()) {
            chain += to_process
                + dependents
                    .iter()
                    .map(|r| self.ready[**r as usize].min)
                    .fold(f64::INFINITY, f64::min);
        }
        dns.max(chain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smoke() -> Scenario {
        Scenario::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/scenarios/smoke.toml"
        )))
        .unwrap()
    }

    #[test]
    fn braze_lower_bound_is_about_116s() {
        let s = Scenario::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/scenarios/braze-us01.toml"
        )))
        .unwrap();
        assert_eq!(s.total_containers(), 22_200);
        let lb = s.lower_bound_s();
        // 116.4 s before the start call's service (0.2 s, its process at
        // 0.99 of it) was part of the world.
        assert!((lb - (116.4 + 0.2 * 0.99)).abs() < 1e-9, "{lb}");
    }

    #[test]
    fn smoke_counts() {
        let s = smoke();
        assert_eq!(s.role_counts(), [6, 12, 4]);
    }

    #[test]
    fn resolver_modes_and_their_located_errors() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/scenarios/smoke.toml"
        ))
        .unwrap();
        let parse = |t: String| Scenario::parse(&SourceText::new("s.toml", t));
        assert_eq!(
            smoke().dns.mode,
            ResolverMode::Queue,
            "no mode: a queue, as before"
        );
        let ps = parse(text.replace("queue = 20", "mode = \"per_second\"")).unwrap();
        assert_eq!(ps.dns.mode, ResolverMode::PerSecond);
        assert_eq!(
            parse(text.replace("queue = 20", "queue = 0"))
                .unwrap()
                .dns
                .queue,
            0
        );
        let e = parse(text.replace("queue = 20", "queue = -1")).unwrap_err();
        assert_eq!((e.field.as_str(), e.line), ("dns.queue", 23), "{e}");
        assert!(e.to_string().contains("found -1"), "{e}");
        let e = parse(text.replace("queue = 20", "mode = \"leaky\"")).unwrap_err();
        assert_eq!(e.field, "dns.mode");
        assert!(
            e.to_string().contains("\"leaky\"") && e.to_string().contains("per_second"),
            "{e}"
        );
        let e = parse(text.replace("queue = 20\n", "")).unwrap_err();
        assert_eq!(e.field, "dns.queue", "{e}");
    }

    #[test]
    fn docker_start_times_out_of_order_are_located_errors() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/scenarios/smoke.toml"
        ))
        .unwrap();
        let parse = |t: String| Scenario::parse(&SourceText::new("s.toml", t));
        for (bad, found) in [
            ("start = [-0.2, 0.35]", "[-0.2, 0.35]"),
            ("start = [0.35, 0.2]", "[0.35, 0.2]"),
        ] {
            let e = parse(text.replace("start = [0.2, 0.35]", bad)).unwrap_err();
            assert_eq!((e.field.as_str(), e.line), ("docker.start", 49), "{e}");
            assert!(e.to_string().contains(found), "{e}");
        }
        for bad in ["-0.5", "1.5"] {
            let e = parse(text.replace(
                "start_process_at = 0.99",
                &format!("start_process_at = {bad}"),
            ))
            .unwrap_err();
            assert_eq!(
                (e.field.as_str(), e.line),
                ("docker.start_process_at", 50),
                "{e}"
            );
        }
        let e = parse(text.replace("start_concurrency = 2", "start_concurrency = 0")).unwrap_err();
        assert_eq!(e.field, "docker.start_concurrency", "{e}");
    }

    #[test]
    fn rejects_unknown_role_in_lookups() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/scenarios/smoke.toml"
        ))
        .unwrap()
        .replace("router = 9", "arbiter = 9");
        let e = Scenario::parse(&SourceText::new("s.toml", text)).unwrap_err();
        assert_eq!(e.field, "startup_lookups.arbiter");
    }
}
