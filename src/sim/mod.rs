//! The simulated fleet: a [`ContainerRuntime`] whose containers live on
//! tokio's clock (paused in rehearsals, so hours pass in seconds). It models
//! the world, not rekindle: restarts through a per-host Docker API limit,
//! startup DNS lookups against a capacity-limited resolver with client
//! timeouts and retries, ready delays, restart failures, down hosts, and
//! routers left stuck when they start before their cluster's data nodes are
//! healthy or when their lookups fail. Baselines face the very same model.

pub mod resolver;

use crate::config::HealthCheck;
use crate::model::{Container, ContainerState, Health};
use crate::probe::{HealthProbe, Probed};
use crate::rng::SplitMix64;
use crate::runtime::{ContainerRuntime, ContainerStatus, RuntimeError};
use crate::scenario::{Fleet, Scenario, SimContainer, SimRole};
use resolver::{QueryFate, SimResolver};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// Where a simulated process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Up since before the incident, disconnected: the state to recover from.
    Disconnected,
    /// Being stopped: a stop (or restart) call in progress.
    Restarting,
    /// Started; resolving its peers or waiting to be ready.
    Starting,
    /// Ready: passes its gate.
    Healthy,
    /// Up but disconnected (started too early, or its lookups failed).
    Stuck,
    /// The restart failed: the container exited.
    Exited,
    /// Stopped by a stop call, waiting for its start.
    Stopped,
}

#[derive(Debug, Clone)]
struct Proc {
    phase: Phase,
    /// Bumped by every restart; late events of an older process are ignored.
    generation: u64,
    started_at: f64,
    /// A data node's process: when its replica-set config is loaded (until
    /// then `hello` says RSGhost).
    config_at: f64,
    restarts: u32,
}

/// Totals a rehearsal reports.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SimStats {
    /// Containers in the fleet.
    pub total: usize,
    /// Containers healthy now.
    pub healthy: usize,
    /// Containers up but stuck now.
    pub stuck: usize,
    /// Containers exited or stopped now.
    pub exited: usize,
    /// Containers never restarted, still disconnected.
    pub disconnected: usize,
    /// Restarts issued, all containers together.
    pub restarts: u64,
    /// Restarts beyond one per container.
    pub rerestarts: u64,
    /// Restarts whose container exited instead of starting.
    pub restart_failures: u64,
    /// Times a container came up stuck.
    pub stuck_events: u64,
    /// Queries the simulated resolver received.
    pub dns_queries: u64,
    /// Queries it dropped or answered too late.
    pub dns_dropped: u64,
    /// The most queries received in any one-second window.
    pub dns_peak_qps: u64,
    /// Time (s) the last container became healthy, if all are.
    pub all_healthy_at: Option<f64>,
    /// Containers on hosts that do not answer (never restartable).
    pub unreachable: usize,
}

struct World {
    procs: Vec<Proc>,
    resolver: SimResolver,
    rng: SplitMix64,
    /// Data nodes per cluster that are not healthy.
    data_unhealthy: Vec<u32>,
    unhealthy_total: usize,
    last_healthy_at: f64,
    restart_failures: u64,
    stuck_events: u64,
}

/// A simulated fleet on tokio's clock.
pub struct SimFleet {
    scenario: Scenario,
    fleet: Fleet,
    /// Each container's replica set (an index into `members`).
    replset_of: Vec<Option<u32>>,
    /// Each replica set's members (fleet indexes, member 0 first).
    members: Vec<Vec<u32>>,
    index: HashMap<String, usize>,
    hosts: Vec<Arc<Semaphore>>,
    /// Per host, the starts it serves at once (`docker.start_concurrency`).
    start_slots: Vec<Arc<Semaphore>>,
    epoch: Instant,
    world: Mutex<World>,
}

impl SimFleet {
    /// Builds the world at the current (tokio) time: every process up and
    /// disconnected.
    pub fn new(scenario: &Scenario) -> Arc<Self> {
        let fleet = scenario.fleet();
        let clusters = fleet.sim.iter().map(|s| s.cluster + 1).max().unwrap_or(0) as usize;
        let mut data_unhealthy = vec![0u32; clusters];
        let mut unhealthy = 0;
        for (i, s) in fleet.sim.iter().enumerate() {
            if !fleet.broken[i] || fleet.down[s.host as usize] {
                continue;
            }
            unhealthy += 1;
            if s.role.is_data() {
                data_unhealthy[s.cluster as usize] += 1;
            }
        }
        // Replica sets, by the scenario's replset label: each member's set.
        let mut sets: HashMap<&str, u32> = HashMap::new();
        let replset_of: Vec<Option<u32>> = fleet
            .all
            .iter()
            .map(|c| {
                c.labels.get(&scenario.labels.replset).map(|rs| {
                    let n = sets.len() as u32;
                    *sets.entry(rs).or_insert(n)
                })
            })
            .collect();
        let mut members = vec![Vec::new(); sets.len()];
        for (i, rs) in replset_of.iter().enumerate() {
            if let Some(rs) = rs {
                members[*rs as usize].push(i as u32);
            }
        }
        let index = fleet
            .all
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i))
            .collect();
        let hosts = (0..scenario.hosts)
            .map(|_| Arc::new(Semaphore::new(scenario.api_concurrency_per_host as usize)))
            .collect();
        let start_slots = (0..scenario.hosts)
            .map(|_| Arc::new(Semaphore::new(scenario.start_concurrency as usize)))
            .collect();
        Arc::new(SimFleet {
            world: Mutex::new(World {
                procs: fleet
                    .broken
                    .iter()
                    .map(|&broken| Proc {
                        phase: if broken {
                            Phase::Disconnected
                        } else {
                            Phase::Healthy
                        },
                        generation: 0,
                        started_at: 0.0,
                        config_at: 0.0,
                        restarts: 0,
                    })
                    .collect(),
                resolver: SimResolver::new(scenario.dns.clone()),
                rng: SplitMix64::new(scenario.seed ^ 0x5eed_f1ee7),
                data_unhealthy,
                unhealthy_total: unhealthy,
                last_healthy_at: 0.0,
                restart_failures: 0,
                stuck_events: 0,
            }),
            scenario: scenario.clone(),
            replset_of,
            members,
            fleet,
            index,
            hosts,
            start_slots,
            epoch: Instant::now(),
        })
    }

    /// The scenario it simulates.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// The fleet it generated.
    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    /// One probe query to the simulated resolver, as a real probe would
    /// see it: it waits (virtual time) for its answer, and a lost one
    /// costs the client's timeout.
    pub async fn probe_dns(&self) -> Option<Duration> {
        let now = self.now_s();
        let fate = self.world.lock().unwrap().resolver.query(now);
        match fate {
            QueryFate::Answered(at) => {
                let latency = Duration::from_secs_f64((at - now).max(0.0));
                tokio::time::sleep(latency).await;
                Some(latency)
            }
            QueryFate::Lost => {
                tokio::time::sleep(Duration::from_millis(self.scenario.dns.timeout_ms)).await;
                None
            }
        }
    }

    /// The simulated resolver's own counters (received, dropped), as a
    /// real resolver's would read.
    pub fn dns_counters(&self) -> crate::dns::budget::CounterReading {
        let w = self.world.lock().unwrap();
        crate::dns::budget::CounterReading {
            received: w.resolver.received as f64,
            dropped: Some(w.resolver.dropped_queue as f64),
        }
    }

    /// Seconds since the world began.
    pub fn now_s(&self) -> f64 {
        self.epoch.elapsed().as_secs_f64()
    }

    /// The fleet index of the container with id `id`.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    fn find(&self, c: &Container) -> Result<usize, RuntimeError> {
        let i = *self
            .index
            .get(&c.id)
            .ok_or_else(|| RuntimeError::NotFound {
                host: c.host.clone(),
                container: c.name.clone(),
            })?;
        if self.fleet.down[self.fleet.sim[i].host as usize] {
            return Err(RuntimeError::Unreachable {
                host: c.host.clone(),
                reason: "simulated: host does not answer the Docker API".into(),
            });
        }
        Ok(i)
    }

    /// Where container `i` (by fleet index) is now.
    pub fn phase(&self, i: usize) -> Phase {
        self.world.lock().unwrap().procs[i].phase
    }

    /// How many times each container was restarted (by fleet index).
    pub fn restart_counts(&self) -> Vec<u32> {
        self.world
            .lock()
            .unwrap()
            .procs
            .iter()
            .map(|p| p.restarts)
            .collect()
    }

    /// Whether every reachable container is healthy now.
    pub fn all_healthy(&self) -> bool {
        self.world.lock().unwrap().unhealthy_total == 0
    }

    /// What a health check of `kind` says of container `i` now (`None`:
    /// no check, the truth). A starting process already runs and listens
    /// (a data node first without its replica-set config, RSGhost, then in
    /// STARTUP2: [`SimFleet::gate_note`] says which):
    /// Docker's state (of an image without a HEALTHCHECK: the scenario's
    /// `docker.healthcheck`) and a TCP connect pass it. A stuck or disconnected
    /// process still runs and answers: those and a bare `hello` pass it.
    /// The router gate (`mongos`) sees a router that cannot reach its
    /// shards; the member gate (`mongo` with `max_lag`) sees a member that
    /// cannot follow a primary; an `exec` command, like an image's
    /// HEALTHCHECK, is the operator's own check and taken to see the truth.
    /// So a rehearsal shows what a weak
    /// gate costs: stuck containers left at the end.
    pub fn gate_says(&self, i: usize, kind: Option<&crate::config::HealthKind>) -> Health {
        use crate::config::HealthKind;
        let truth = self.status_of(i).1;
        let Some(kind) = kind else {
            return truth;
        };
        // Docker's own view sees readiness only through an image's
        // HEALTHCHECK (the operator's check, taken to see the truth).
        let docker_sees = self.scenario.healthcheck;
        let weak = match kind {
            HealthKind::Docker => !docker_sees,
            HealthKind::Tcp { .. } => true,
            _ => false,
        };
        if truth == Health::Starting && weak {
            // Running, and listening before it is ready (a mongod opens its
            // port in STARTUP2).
            return Health::Healthy;
        }
        if truth != Health::Unhealthy {
            return truth;
        }
        let data = self.fleet.sim[i].role.is_data();
        let sees_it = match kind {
            HealthKind::Mongos { .. } | HealthKind::Exec { .. } => true,
            HealthKind::Mongo { max_lag, .. } => data && max_lag.is_some(),
            HealthKind::Docker => docker_sees,
            HealthKind::Tcp { .. } => false,
        };
        if sees_it {
            Health::Unhealthy
        } else {
            Health::Healthy
        }
    }

    /// Why a `mongo` or `mongos` gate does not pass container `i` now, as
    /// MongoDB's `hello` would say it of a data node still starting: RSGhost
    /// before its replica-set config is loaded, RSOther (STARTUP2) after;
    /// of a process up but disconnected (or stuck), that it reaches no
    /// primary.
    pub fn gate_note(&self, i: usize, kind: &crate::config::HealthKind) -> Option<String> {
        use crate::config::HealthKind;
        if !matches!(kind, HealthKind::Mongo { .. } | HealthKind::Mongos { .. }) {
            return None;
        }
        let w = self.world.lock().unwrap();
        let p = &w.procs[i];
        let data = self.fleet.sim[i].role.is_data();
        if matches!(p.phase, Phase::Disconnected | Phase::Stuck) {
            // What the gate that sees it would say of a process that runs
            // but reaches no peer.
            return Some(if data {
                "simulated replSetGetStatus: no primary reachable (disconnected from its set)"
                    .into()
            } else {
                "simulated connPoolStats: no primary reachable for its cluster's replica sets"
                    .into()
            });
        }
        if p.phase != Phase::Starting || !data {
            return None;
        }
        Some(if self.now_s() < p.config_at {
            "simulated hello: RSGhost (no replica-set config yet)".into()
        } else {
            "simulated hello: RSOther (STARTUP2: neither primary nor secondary)".into()
        })
    }

    /// Whether container `i` is its replica set's primary now: the first
    /// of its healthy members (member 0 while it is), when the healthy
    /// ones are a majority (they elect one; a set left without a majority,
    /// or whose members are all disconnected, has none).
    pub fn is_primary(&self, i: usize) -> bool {
        let Some(rs) = self.replset_of[i] else {
            return false;
        };
        let members = &self.members[rs as usize];
        let w = self.world.lock().unwrap();
        let healthy = |m: &u32| w.procs[*m as usize].phase == Phase::Healthy;
        let up = members.iter().filter(|m| healthy(m)).count();
        2 * up > members.len() && members.iter().find(|m| healthy(m)) == Some(&(i as u32))
    }

    /// Indexes (into `fleet().all`) of containers not healthy now.
    pub fn not_healthy(&self) -> Vec<usize> {
        let w = self.world.lock().unwrap();
        (0..w.procs.len())
            .filter(|&i| {
                w.procs[i].phase != Phase::Healthy
                    && !self.fleet.down[self.fleet.sim[i].host as usize]
            })
            .collect()
    }

    /// Lets processes still starting or stopping reach where they go
    /// (ready, stuck or down), up to `bound` of virtual time: what a
    /// rehearsal counts at its end is where the fleet lands, not where the
    /// engine left it (a weak gate ends a run before its routers are
    /// ready — or stuck).
    pub async fn settle(&self, bound: Duration) {
        let until = tokio::time::Instant::now() + bound;
        while tokio::time::Instant::now() < until {
            let moving = self
                .world
                .lock()
                .unwrap()
                .procs
                .iter()
                .any(|p| matches!(p.phase, Phase::Starting | Phase::Restarting));
            if !moving {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The totals now.
    pub fn stats(&self) -> SimStats {
        let w = self.world.lock().unwrap();
        let mut s = SimStats {
            total: w.procs.len(),
            ..Default::default()
        };
        for (i, p) in w.procs.iter().enumerate() {
            let reachable = !self.fleet.down[self.fleet.sim[i].host as usize];
            match p.phase {
                Phase::Healthy => s.healthy += 1,
                Phase::Stuck => s.stuck += 1,
                Phase::Exited | Phase::Stopped => s.exited += 1,
                Phase::Disconnected if reachable => s.disconnected += 1,
                _ => {}
            }
            s.restarts += p.restarts as u64;
            s.rerestarts += p.restarts.saturating_sub(1) as u64;
        }
        s.restart_failures = w.restart_failures;
        s.stuck_events = w.stuck_events;
        s.dns_queries = w.resolver.received;
        s.dns_dropped = w.resolver.dropped();
        s.dns_peak_qps = w.resolver.peak_qps();
        s.all_healthy_at = (w.unhealthy_total == 0).then_some(w.last_healthy_at);
        s.unreachable = self
            .fleet
            .sim
            .iter()
            .filter(|x| self.fleet.down[x.host as usize])
            .count();
        s
    }

    /// Queries the resolver received in each second of the run.
    pub fn dns_per_second(&self) -> Vec<u64> {
        self.world.lock().unwrap().resolver.per_second()
    }

    fn set_phase(&self, w: &mut World, i: usize, phase: Phase) {
        let sim = self.fleet.sim[i];
        let was_healthy = w.procs[i].phase == Phase::Healthy;
        let healthy = phase == Phase::Healthy;
        w.procs[i].phase = phase;
        if was_healthy != healthy {
            if healthy {
                w.unhealthy_total -= 1;
                w.last_healthy_at = self.now_s();
            } else {
                w.unhealthy_total += 1;
            }
            if sim.role.is_data() {
                let d = &mut w.data_unhealthy[sim.cluster as usize];
                if healthy {
                    *d -= 1
                } else {
                    *d += 1
                }
            }
        }
    }

    /// A stop, as the host performs it: the host's API slot for the stop
    /// time (where a restart's time goes), then the container is down. It
    /// runs to the end even if the caller goes away (as a Docker stop does).
    async fn perform_stop(self: Arc<Self>, i: usize) {
        let sim: SimContainer = self.fleet.sim[i];
        let _permit = self.hosts[sim.host as usize]
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        let (generation, delay) = {
            let mut w = self.world.lock().unwrap();
            self.set_phase(&mut w, i, Phase::Restarting);
            w.procs[i].generation += 1;
            let r = self.scenario.restart;
            let d = w.rng.uniform(r.min, r.max);
            (w.procs[i].generation, d)
        };
        tokio::time::sleep(Duration::from_secs_f64(delay)).await;
        let mut w = self.world.lock().unwrap();
        if w.procs[i].generation == generation {
            self.set_phase(&mut w, i, Phase::Stopped);
        }
    }

    /// A start, as the host performs it (docs/docker-world.md): it waits
    /// for one of the host's start slots (and, with
    /// `docker.starts_share_slots`, first for a call slot behind the stops);
    /// its process begins `docker.start_process_at` into its service time
    /// (`docker.start`), and makes its startup lookups at once; the call
    /// returns at the end of the service time. Starting a running
    /// container does nothing (Docker answers 304). It runs to the end even
    /// if the caller goes away.
    async fn perform_start(self: Arc<Self>, i: usize) {
        let sim: SimContainer = self.fleet.sim[i];
        let _slot = match self.scenario.starts_share_slots {
            true => Some(
                self.hosts[sim.host as usize]
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("never closed"),
            ),
            false => None,
        };
        let _start = self.start_slots[sim.host as usize]
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        let service = {
            let mut w = self.world.lock().unwrap();
            if !matches!(w.procs[i].phase, Phase::Stopped | Phase::Exited) {
                return;
            }
            let span = self.scenario.start;
            w.rng.uniform(span.min, span.max)
        };
        let at = self.scenario.start_process_at;
        tokio::time::sleep(Duration::from_secs_f64(service * at)).await;
        self.clone().begin_process(i);
        tokio::time::sleep(Duration::from_secs_f64(service * (1.0 - at))).await;
    }

    /// The process begins (or the container exits at once): its start time
    /// moves, and its lookups and ready delay run in a task of their own.
    fn begin_process(self: Arc<Self>, i: usize) {
        let sim: SimContainer = self.fleet.sim[i];
        let (generation, stuck_on_start) = {
            let mut w = self.world.lock().unwrap();
            if !matches!(w.procs[i].phase, Phase::Stopped | Phase::Exited) {
                return;
            }
            w.procs[i].generation += 1;
            w.procs[i].restarts += 1;
            w.procs[i].started_at = self.now_s();
            if w.rng.next_f64() < self.scenario.restart_failure_rate {
                w.restart_failures += 1;
                self.set_phase(&mut w, i, Phase::Exited);
                return;
            }
            self.set_phase(&mut w, i, Phase::Starting);
            (
                w.procs[i].generation,
                self.scenario
                    .stuck_if_started_before_deps
                    .contains(&sim.role)
                    && w.data_unhealthy[sim.cluster as usize] > 0,
            )
        };
        tokio::spawn(
            self.clone()
                .start_process(i, generation, sim.role, stuck_on_start),
        );
    }

    /// A started process: its startup lookups (with client retries), then
    /// its ready delay.
    async fn start_process(
        self: Arc<Self>,
        i: usize,
        generation: u64,
        role: SimRole,
        stuck_on_start: bool,
    ) {
        let model = self.scenario.dns.clone();
        let timeout = Duration::from_millis(model.timeout_ms);
        let mut pending = self.scenario.startup_lookups[role as usize];
        let mut last_answer = self.now_s();
        let mut attempt = 1;
        let mut lookups_failed = false;
        while pending > 0 {
            let lost = {
                let mut w = self.world.lock().unwrap();
                if w.procs[i].generation != generation {
                    return;
                }
                let now = self.now_s();
                let mut lost = 0;
                for _ in 0..pending {
                    match w.resolver.query(now) {
                        QueryFate::Answered(at) => last_answer = last_answer.max(at),
                        QueryFate::Lost => lost += 1,
                    }
                }
                lost
            };
            if lost == 0 {
                break;
            }
            if attempt >= model.attempts {
                lookups_failed = true;
                break;
            }
            attempt += 1;
            pending = lost;
            tokio::time::sleep(timeout).await;
        }
        let (ready, config_at) = {
            let mut w = self.world.lock().unwrap();
            let span = self.scenario.ready[role as usize];
            let ready = w.rng.uniform(span.min, span.max);
            let config_at = if role.is_data() {
                let nc = self.scenario.no_config;
                w.procs[i].started_at + w.rng.uniform(nc.min, nc.max)
            } else {
                0.0
            };
            w.procs[i].config_at = config_at;
            (ready, config_at)
        };
        // Ready after its lookups and its ready delay, and never before its
        // replica-set config is loaded.
        let wait = ((last_answer - self.now_s()).max(0.0) + ready).max(config_at - self.now_s());
        tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        let mut w = self.world.lock().unwrap();
        if w.procs[i].generation != generation || w.procs[i].phase != Phase::Starting {
            return;
        }
        if stuck_on_start || lookups_failed {
            w.stuck_events += 1;
            self.set_phase(&mut w, i, Phase::Stuck);
        } else {
            self.set_phase(&mut w, i, Phase::Healthy);
        }
    }

    /// Restarts by fleet index (for baselines, which have no inventory
    /// view): a stop, then at once a start.
    pub async fn restart_index(self: &Arc<Self>, i: usize) -> Result<(), RuntimeError> {
        self.stop_index(i).await?;
        self.start_index(i).await
    }

    fn join_error(&self, i: usize, op: &'static str, e: tokio::task::JoinError) -> RuntimeError {
        let c = &self.fleet.all[i];
        RuntimeError::Api {
            host: c.host.clone(),
            container: c.name.clone(),
            op,
            reason: e.to_string(),
        }
    }

    async fn stop_index(self: &Arc<Self>, i: usize) -> Result<(), RuntimeError> {
        self.find(&self.fleet.all[i])?;
        // The host has the request from here on (it shows only when the
        // process exits).
        {
            let mut w = self.world.lock().unwrap();
            if matches!(w.procs[i].phase, Phase::Stopped | Phase::Exited) {
                return Ok(());
            }
            self.set_phase(&mut w, i, Phase::Restarting);
        }
        tokio::spawn(self.clone().perform_stop(i))
            .await
            .map_err(|e| self.join_error(i, "stop", e))
    }

    async fn start_index(self: &Arc<Self>, i: usize) -> Result<(), RuntimeError> {
        self.find(&self.fleet.all[i])?;
        tokio::spawn(self.clone().perform_start(i))
            .await
            .map_err(|e| self.join_error(i, "start", e))
    }

    fn status_of(&self, i: usize) -> (ContainerState, Health, String) {
        let w = self.world.lock().unwrap();
        let p = &w.procs[i];
        let (state, health) = match p.phase {
            Phase::Disconnected | Phase::Stuck => (ContainerState::Running, Health::Unhealthy),
            // A stop shows only when the process exits: until then Docker
            // reports the old process running, with its old start time.
            Phase::Restarting => (ContainerState::Running, Health::Unhealthy),
            Phase::Starting => (ContainerState::Running, Health::Starting),
            Phase::Healthy => (ContainerState::Running, Health::Healthy),
            Phase::Exited | Phase::Stopped => (ContainerState::Exited, Health::Down),
        };
        (state, health, format!("{:.9}", p.started_at))
    }
}

/// The simulator seen through the runtime trait.
#[derive(Clone)]
pub struct SimRuntime(pub Arc<SimFleet>);

/// The simulated resolver as a [`crate::dns::budget::DnsProbe`]: probe
/// queries, and its counters when the playbook reads a resolver's counters
/// (the same signals a real run has).
pub struct SimDnsProbe {
    /// The simulated fleet, whose resolver is probed.
    pub fleet: Arc<SimFleet>,
    /// Whether the resolver's counters are read too.
    pub counters: bool,
}

impl crate::dns::budget::DnsProbe for SimDnsProbe {
    fn probe(&self) -> futures_util::future::BoxFuture<'_, Option<Duration>> {
        Box::pin(self.fleet.probe_dns())
    }

    fn counters(
        &self,
    ) -> futures_util::future::BoxFuture<'_, Option<crate::dns::budget::CounterReading>> {
        Box::pin(std::future::ready(
            self.counters.then(|| self.fleet.dns_counters()),
        ))
    }

    fn describe(&self) -> String {
        if self.counters {
            "probe queries, the simulated resolver's counters (received, dropped)".into()
        } else {
            "probe queries".into()
        }
    }
}

impl ContainerRuntime for SimRuntime {
    async fn inspect(&self, c: &Container) -> Result<ContainerStatus, RuntimeError> {
        let i = self.0.find(c)?;
        let (state, _, started_at) = self.0.status_of(i);
        Ok(ContainerStatus {
            state,
            started_at,
            address: None,
        })
    }

    async fn stop(&self, c: &Container) -> Result<(), RuntimeError> {
        let i = self.0.find(c)?;
        self.0.stop_index(i).await
    }

    async fn start(&self, c: &Container, _started_before: &str) -> Result<(), RuntimeError> {
        let i = self.0.find(c)?;
        self.0.start_index(i).await
    }

    async fn exec(&self, c: &Container, _cmd: &[String]) -> Result<i64, RuntimeError> {
        let i = self.0.find(c)?;
        Ok(if self.0.status_of(i).1 == Health::Healthy {
            0
        } else {
            1
        })
    }

    /// What Docker's own view sees: [`SimFleet::gate_says`] of the
    /// `docker` kind.
    async fn health(&self, c: &Container) -> Result<Health, RuntimeError> {
        let i = self.0.find(c)?;
        Ok(self
            .0
            .gate_says(i, Some(&crate::config::HealthKind::Docker)))
    }
}

/// The simulated fleet's [`HealthProbe`]: what each kind of check can see
/// of a simulated process ([`SimFleet::gate_says`]), so that a rehearsal
/// gates through the same kinds as a run, weak ones included.
#[derive(Clone)]
pub struct SimProbe(pub Arc<SimFleet>);

/// The pre-flight on the simulated fleet: a container on a host that is
/// down does not answer (no verdict, the next is tried); any other answers
/// as its role, and the simulated credentials are always right.
impl crate::probe::PreflightProbe for SimProbe {
    async fn preflight(
        &self,
        c: &Container,
        check: &HealthCheck,
    ) -> Result<String, crate::probe::mongo::PreflightFailure> {
        let fail = |reason: String| crate::probe::mongo::PreflightFailure {
            container: c.name.clone(),
            host: c.host.clone(),
            reason,
            refused: false,
        };
        self.0.find(c).map_err(|e| fail(e.to_string()))?;
        Ok(match &check.kind {
            crate::config::HealthKind::Mongos { .. } => {
                format!("{} (simulated): connPoolStats", c.name)
            }
            _ => format!("{} (simulated): hello", c.name),
        })
    }
}

impl HealthProbe for SimProbe {
    async fn check(&self, c: &Container, check: &HealthCheck) -> Result<Probed, RuntimeError> {
        let i = self.0.find(c)?;
        let health = self.0.gate_says(i, Some(&check.kind));
        let note = (health != Health::Healthy)
            .then(|| self.0.gate_note(i, &check.kind))
            .flatten();
        let primary = health == Health::Healthy
            && matches!(check.kind, crate::config::HealthKind::Mongo { .. })
            && self.0.is_primary(i);
        Ok(Probed {
            health,
            note,
            primary,
        })
    }
}
