//! Reference scenarios: a simulated fleet and its failure mechanics in one
//! TOML file (format in `shared/scenarios/README.md`, copied to
//! `config/scenarios/README.md`). This module parses and validates the file
//! and generates the fleet deterministically from its seed; it knows nothing
//! of playbooks, so baselines and rekindle face the very same world.

mod fleet;
mod parse;

use crate::source::{SourceError, SourceText};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

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
        parse::parse(src)
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
