//! The engine: executes a [`Plan`] through a [`ContainerRuntime`], gating
//! through a [`HealthProbe`]. Waves start as soon as the waves they wait
//! for have passed their gate, so clusters pipeline. Each restart first
//! takes its DNS cost from the [`Pacer`]; each container is then watched
//! until healthy (the probe, with its role's check), retried with
//! backoff and jitter up to the playbook's limit; a wave whose failed
//! fraction exceeds the policy halts the run. Every action is journaled
//! before and after. Time is tokio's clock only (virtual in rehearsals); the
//! engine never reads the wall clock.

mod adapt;
mod event;
mod gates;
pub mod pacer;
mod restart;
use adapt::adapt_budget;
use event::log;
pub use event::Event;
use restart::restart_container;

use crate::config::Playbook;
use crate::dns::budget::DnsProbe;
use crate::journal::{Journal, JournalError, Record, Replay};
use crate::model::Inventory;
use crate::plan::Plan;
use crate::probe::HealthProbe;
use crate::rng::SplitMix64;
use crate::runtime::ContainerRuntime;
use pacer::{Flow, PaceStatus, Pacer};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, Semaphore};
use tokio::task::JoinSet;

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Restarting waves.
    Running,
    /// New restarts held; those in flight go on.
    Paused,
    /// Every wave passed.
    Succeeded,
    /// Stopped by the failure policy.
    Halted,
    /// Stopped by an operator (or a journal write that failed).
    Aborted,
}

/// A point-in-time view of a run.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Status {
    /// Where the run stands.
    pub state: RunState,
    /// Waves in the plan.
    pub waves_total: usize,
    /// Waves that passed (resumed ones included).
    pub waves_passed: usize,
    /// Indexes of the waves in progress.
    pub waves_running: Vec<usize>,
    /// Containers in the plan.
    pub containers_total: usize,
    /// Containers that passed their gate.
    pub healthy: usize,
    /// Containers that failed for good.
    pub failed: usize,
    /// Restart calls issued, retries included.
    pub restarts: u64,
    /// The pacer's figures (set by [`Handle::status`]).
    pub pace: Option<PaceStatus>,
    /// The resolver's own counters over the last adaptation interval, when
    /// an adaptive budget reads them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolver: Option<ResolverLoad>,
    /// Seconds since the run started.
    pub elapsed_s: f64,
}

/// How a run ended.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// How the run ended.
    pub state: RunState,
    /// Why it halted, naming the wave and the containers.
    pub reason: Option<String>,
    /// Names of the containers that failed.
    pub failed: Vec<String>,
    /// Containers that passed their gate.
    pub healthy: usize,
    /// Restart calls issued, retries included.
    pub restarts: u64,
    /// Seconds the run took.
    pub elapsed_s: f64,
    /// The DNS budget over time when it adapted: (seconds, q/s), starting
    /// at the static budget.
    pub dns_budget: Vec<(f64, f64)>,
    /// DNS lookups granted to starts in each second (what rekindle sent).
    pub dns_granted_per_second: Vec<u64>,
    /// The resolver's own counters, when read: (seconds, received q/s,
    /// dropped q/s) per adaptation sample.
    pub resolver_load: Vec<ResolverLoad>,
}

/// What the resolver's own counters showed over one adaptation interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct ResolverLoad {
    /// Seconds since the run started, at the end of the interval.
    pub at_s: f64,
    /// Queries the resolver received, per second.
    pub received_qps: f64,
    /// Queries it dropped, per second, when it counts them.
    pub dropped_qps: Option<f64>,
}

/// Controls a running engine from elsewhere (CLI, API, tests).
#[derive(Clone)]
pub struct Handle {
    pacer: Arc<Pacer>,
    events: broadcast::Sender<Event>,
    record_tx: Arc<Mutex<Option<tokio::sync::mpsc::UnboundedSender<Event>>>>,
    status: Arc<Mutex<Status>>,
    pb: Arc<Playbook>,
    plan: Arc<Plan>,
}

/// A run's plan as a watcher draws it: every wave with its role's name,
/// and how its DNS is paced.
#[derive(Debug, Clone, Serialize)]
pub struct Outline {
    /// The waves, by index.
    pub waves: Vec<WaveOutline>,
    /// Containers in the plan.
    pub containers: usize,
    /// `"adaptive"` or `"static"`.
    pub pacing: &'static str,
    /// The static budget (the adaptive one's start), in q/s.
    pub dns_budget_qps: f64,
    /// The resolver's capacity the playbook states, in q/s.
    pub dns_capacity_qps: f64,
    /// Whether the resolver's own counters are read (adaptive pacing with
    /// `[dns.counter]`).
    pub resolver_counted: bool,
}

/// One wave of an [`Outline`].
#[derive(Debug, Clone, Serialize)]
pub struct WaveOutline {
    /// Its index in the plan.
    pub wave: usize,
    /// Its role's name.
    pub role: String,
    /// Its group (cluster label value).
    pub group: String,
    /// Its containers.
    pub containers: usize,
    /// Waves that pass before it starts.
    pub after: Vec<usize>,
    /// A canary wave.
    pub canary: bool,
}

/// A control refused because the run is closed: aborted or halted, which is
/// final for that run (only a deliberate `--resume` of its journal, a new
/// decision, continues it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the run was aborted or halted, which is final: only resuming its journal (a new decision) continues it")]
pub struct RunClosed;

/// An event to the record (lossless) and to the broadcast (may skip).
fn send_both(
    record: &Mutex<Option<tokio::sync::mpsc::UnboundedSender<Event>>>,
    events: &broadcast::Sender<Event>,
    e: Event,
) {
    if let Some(tx) = record.lock().unwrap().as_ref() {
        let _ = tx.send(e.clone());
    }
    let _ = events.send(e);
}

impl Handle {
    fn emit(&self, e: Event) {
        send_both(&self.record_tx, &self.events, e);
    }

    /// Holds new restarts; restarts in flight finish and are watched.
    pub fn pause(&self) -> Result<(), RunClosed> {
        if !self.pacer.set_flow(Flow::Paused) {
            return Err(RunClosed);
        }
        self.status.lock().unwrap().state = RunState::Paused;
        self.emit(Event::Paused);
        Ok(())
    }

    /// Lets a paused run go on.
    pub fn resume(&self) -> Result<(), RunClosed> {
        match self.pacer.flow() {
            Flow::Closed => Err(RunClosed),
            Flow::Open => Ok(()),
            Flow::Paused => {
                if !self.pacer.set_flow(Flow::Open) {
                    return Err(RunClosed);
                }
                self.status.lock().unwrap().state = RunState::Running;
                self.emit(Event::Resumed);
                Ok(())
            }
        }
    }

    /// Whether the run is closed (aborted or halted).
    pub fn is_closed(&self) -> bool {
        self.pacer.flow() == Flow::Closed
    }

    /// Stops granting restarts; restarts already issued finish and are
    /// watched to their outcome, so nothing is left stopped unreported.
    pub fn abort(&self) {
        self.pacer.set_flow(Flow::Closed);
    }

    /// The operator's ceilings; refused once the run is closed.
    pub fn retune(
        &self,
        dns_budget_qps: Option<f64>,
        restart_rate: Option<f64>,
    ) -> Result<(), RunClosed> {
        if self.is_closed() {
            return Err(RunClosed);
        }
        self.pacer.retune(dns_budget_qps, restart_rate);
        let s = self.pacer.status();
        self.emit(Event::Retuned {
            dns_budget_qps: s.dns_budget_qps,
            restart_rate: s.restart_rate,
        });
        Ok(())
    }

    /// A receiver of the run's events from now on (a slow one may skip some).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// The run's state and figures now.
    pub fn status(&self) -> Status {
        let mut s = self.status.lock().unwrap().clone();
        s.pace = Some(self.pacer.status());
        s
    }

    /// The run's plan, as a watcher draws it.
    pub fn outline(&self) -> Outline {
        let dns = &self.pb.dns;
        Outline {
            waves: self
                .plan
                .waves
                .iter()
                .map(|w| WaveOutline {
                    wave: w.index,
                    role: self.pb.roles[w.role].name.clone(),
                    group: w.group.clone(),
                    containers: w.containers.len(),
                    after: w.after.clone(),
                    canary: w.canary,
                })
                .collect(),
            containers: self.plan.containers,
            pacing: if dns.adaptive { "adaptive" } else { "static" },
            dns_budget_qps: dns.budget_qps(),
            dns_capacity_qps: dns.capacity_qps,
            resolver_counted: dns.adaptive && dns.counter.is_some(),
        }
    }
}

/// Why the engine cannot run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The journal cannot be created or read.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

enum ContainerResult {
    Healthy,
    Failed(String),
    Cancelled,
}

struct Shared<R, P> {
    rt: Arc<R>,
    /// The health gate's probe.
    health: P,
    pb: Arc<Playbook>,
    inv: Arc<Inventory>,
    plan: Arc<Plan>,
    pacer: Arc<Pacer>,
    journal: Mutex<Journal>,
    /// The first journal write that failed: no restart starts after it.
    journal_failed: Mutex<Option<String>>,
    events: broadcast::Sender<Event>,
    /// Every event, without loss, for the one reader that records them
    /// (the session: report, run store); the broadcast may skip.
    record_tx: Arc<Mutex<Option<tokio::sync::mpsc::UnboundedSender<Event>>>>,
    status: Arc<Mutex<Status>>,
    replay: Replay,
    start: tokio::time::Instant,
    jitter: Mutex<SplitMix64>,
    /// Scheduling priority per role: its depth in the role graph.
    depth: Vec<u32>,
    /// Measures the resolver for the adaptive budget.
    probe: Option<Arc<dyn DnsProbe>>,
    budget_log: Mutex<Vec<(f64, f64)>>,
    resolver_log: Mutex<Vec<ResolverLoad>>,
    /// Each host's slots for stop and start calls
    /// (`limits.api_calls_per_host`): a start's DNS budget is taken only
    /// with a slot in hand, so its lookups never wait behind the host.
    host_slots: HashMap<String, Arc<Semaphore>>,
    /// Per host, the start calls it may serve at once (`starts_per_host`).
    start_slots: HashMap<String, Arc<Semaphore>>,
    /// Each container's gate, and what a stuck router waits for.
    gates: gates::Gates,
}

impl<R, P> Shared<R, P> {
    fn at_s(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// Journals `r`. A write that fails closes the run: no restart starts
    /// without its record; what is in flight is watched, and the run ends
    /// halted with the reason.
    fn record(&self, r: Record) -> Result<(), JournalError> {
        let result = self.journal.lock().unwrap().append(&r);
        self.journal_result(result)
    }

    /// Journals `r` and returns once it is on disk; the syncs of records
    /// written together are shared (a wave's intents wait for one `fsync`,
    /// not one each), and no thread of the runtime waits for the disk.
    async fn record_synced(&self, r: Record) -> Result<(), JournalError> {
        let appended = {
            let mut j = self.journal.lock().unwrap();
            j.append_deferred(&r).map(|seq| (seq, j.syncer()))
        };
        let (seq, syncer) = self.journal_result(appended)?;
        let synced = syncer.sync_to(seq).await;
        self.journal_result(synced)
    }

    /// Journals `r` without waiting for the disk: it is durable with the
    /// next synced record. For outcomes: one lost in a crash leaves its
    /// restart in doubt, which a resume settles by the container's start
    /// time.
    fn record_deferred(&self, r: Record) -> Result<(), JournalError> {
        let result = self.journal.lock().unwrap().append_deferred(&r);
        self.journal_result(result).map(|_| ())
    }

    /// Whether the journal's replica lets this run act now (a leader whose
    /// lease is confirmed); a refusal closes the run as a failed write does.
    fn may_act(&self) -> Result<(), JournalError> {
        let result = self.journal.lock().unwrap().confirm();
        self.journal_result(result)
    }

    /// A journal write (or confirmation) that failed closes the run.
    fn journal_result<T>(&self, result: Result<T, JournalError>) -> Result<T, JournalError> {
        if let Err(e) = &result {
            let mut failed = self.journal_failed.lock().unwrap();
            if failed.is_none() {
                tracing::error!(error = %e, "the journal could not be written: no new restarts");
                // What to do about it: a disk is fixed; a replica that
                // refuses means another daemon leads and continues.
                let then = match e {
                    JournalError::Replica { .. } => {
                        "The next leader continues the run from the replicated journal"
                    }
                    _ => "Fix the disk, then resume",
                };
                *failed = Some(format!("{e}. {then}"));
                self.pacer.set_flow(Flow::Closed);
            }
        }
        result
    }

    fn emit(&self, e: Event) {
        log(&e);
        send_both(&self.record_tx, &self.events, e);
    }
}

/// A run being prepared: build it, take its [`Handle`], then [`Engine::run`].
pub struct Engine<R, P> {
    shared: Arc<Shared<R, P>>,
}

/// What each container of a plan is gated on: its role's check, with a
/// router's replica sets filled in from its cluster's (the same checks a
/// run's waves pass), for whoever asks the gates without restarting
/// anything (`survey`).
pub struct GateChecks(gates::Gates);

impl GateChecks {
    /// The checks of `plan`'s containers.
    pub fn new(pb: &Playbook, inv: &Inventory, plan: &Plan) -> GateChecks {
        GateChecks(gates::Gates::new(
            pb,
            inv,
            plan,
            &std::collections::HashSet::new(),
        ))
    }

    /// The check container `c` of role `role` (an index into the
    /// playbook's roles) is gated on.
    pub fn check(
        &self,
        role: usize,
        c: &crate::model::Container,
    ) -> Arc<crate::config::HealthCheck> {
        self.0.check(role, c)
    }
}

impl<R: ContainerRuntime, P: HealthProbe> Engine<R, P> {
    /// `journal` is a fresh or resumed journal; `replay` what it held.
    pub fn new(
        rt: Arc<R>,
        health: P,
        pb: Arc<Playbook>,
        inv: Arc<Inventory>,
        plan: Arc<Plan>,
        journal: Journal,
        replay: Replay,
    ) -> Engine<R, P> {
        let pacer = Pacer::new(
            pb.dns.budget_qps(),
            pb.limits.restart_rate,
            pb.estimates.restart,
        );
        pacer.set_max_in_flight(pb.limits.restarts_in_flight as usize);
        let per_host = |n: u32| -> HashMap<String, Arc<Semaphore>> {
            inv.containers
                .iter()
                .map(|c| (c.host.clone(), Arc::new(Semaphore::new(n as usize))))
                .collect()
        };
        let host_slots = per_host(pb.limits.api_calls_per_host);
        let start_slots = per_host(pb.limits.starts_per_host);
        let mut depth = vec![0u32; pb.roles.len()];
        for (i, r) in pb.roles.iter().enumerate() {
            depth[i] = r.after.iter().map(|&d| depth[d] + 1).max().unwrap_or(0);
        }
        // A resumed run starts with what its journal says passed.
        let replayed: Vec<usize> = plan
            .waves
            .iter()
            .filter(|w| replay.waves_passed.contains(&w.index))
            .map(|w| w.containers.len())
            .collect();
        let status = Status {
            state: RunState::Running,
            waves_total: plan.waves.len(),
            waves_passed: replayed.len(),
            waves_running: vec![],
            containers_total: plan.containers,
            healthy: replayed.iter().sum(),
            failed: 0,
            restarts: 0,
            pace: None,
            resolver: None,
            elapsed_s: 0.0,
        };
        let seed = crc32c::crc32c(pb.name.as_bytes()) as u64;
        let gates = gates::Gates::new(&pb, &inv, &plan, &replay.waves_passed);
        Engine {
            shared: Arc::new(Shared {
                rt,
                health,
                pb,
                inv,
                plan,
                pacer,
                journal: Mutex::new(journal),
                journal_failed: Mutex::new(None),
                events: broadcast::channel(4096).0,
                record_tx: Arc::new(Mutex::new(None)),
                status: Arc::new(Mutex::new(status)),
                replay,
                start: tokio::time::Instant::now(),
                jitter: Mutex::new(SplitMix64::new(seed)),
                depth,
                gates,
                probe: None,
                budget_log: Mutex::new(Vec::new()),
                resolver_log: Mutex::new(Vec::new()),
                host_slots,
                start_slots,
            }),
        }
    }

    /// Adapts the DNS budget to what `probe` measures (when the playbook's
    /// `dns.adaptive` is on). Call before [`Engine::run`].
    pub fn with_dns_probe(mut self, probe: Arc<dyn DnsProbe>) -> Self {
        Arc::get_mut(&mut self.shared)
            .expect("the engine is not shared before it runs")
            .probe = Some(probe);
        self
    }

    /// Every event of the run, in order and without loss, for the one
    /// reader that keeps the record (report, run store). Call before
    /// [`Engine::run`]; a later call replaces the earlier receiver.
    pub fn record_events(&self) -> tokio::sync::mpsc::UnboundedReceiver<Event> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        *self.shared.record_tx.lock().unwrap() = Some(tx);
        rx
    }

    /// A handle to control and watch the run.
    pub fn handle(&self) -> Handle {
        Handle {
            pacer: self.shared.pacer.clone(),
            events: self.shared.events.clone(),
            record_tx: self.shared.record_tx.clone(),
            status: self.shared.status.clone(),
            pb: self.shared.pb.clone(),
            plan: self.shared.plan.clone(),
        }
    }

    /// Runs the plan to its end (success, halt or abort).
    pub async fn run(self) -> Result<Outcome, EngineError> {
        let s = self.shared;
        let plan = s.plan.clone();
        let n = plan.waves.len();
        let mut waiting: Vec<usize> = plan.waves.iter().map(|w| w.after.len()).collect();
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
        for w in &plan.waves {
            for &a in &w.after {
                dependents[a].push(w.index);
            }
        }
        let adapter = match (&s.probe, s.pb.dns.adaptive) {
            (Some(p), true) => Some(tokio::spawn(adapt_budget(s.clone(), p.clone()))),
            _ => None,
        };
        let mut tasks: JoinSet<(usize, Vec<String>, usize)> = JoinSet::new();
        let mut passed = 0usize;
        let mut halted: Option<(usize, Vec<String>)> = None;
        let mut failed_seen: Vec<String> = Vec::new();
        let start_wave = |w: usize, tasks: &mut JoinSet<(usize, Vec<String>, usize)>| {
            let s = s.clone();
            tasks.spawn(async move {
                let (failed, healthy) = run_wave(&s, w).await;
                (w, failed, healthy)
            });
        };
        // Waves already passed (resume) release their dependents at once.
        let mut ready: Vec<usize> = (0..n).filter(|&w| waiting[w] == 0).collect();
        while let Some(w) = ready.pop() {
            if s.replay.waves_passed.contains(&w) {
                passed += 1;
                for &d in &dependents[w] {
                    waiting[d] -= 1;
                    if waiting[d] == 0 {
                        ready.push(d);
                    }
                }
            } else {
                start_wave(w, &mut tasks);
                s.status.lock().unwrap().waves_running.push(w);
            }
        }
        while let Some(joined) = tasks.join_next().await {
            let (w, failed, healthy) = joined.expect("wave tasks do not panic");
            s.status.lock().unwrap().waves_running.retain(|&x| x != w);
            let allowed = (s.pb.policy.max_failed_fraction * plan.waves[w].containers.len() as f64)
                .floor() as usize;
            let stopping = s.pacer.flow() == Flow::Closed;
            // Closed without a halt: an operator's abort. Failures seen while
            // aborting (retries refused) are reported, not a policy halt.
            let aborting = stopping && halted.is_none();
            failed_seen.extend(failed.iter().cloned());
            if failed.len() > allowed
                || (stopping && healthy + failed.len() < plan.waves[w].containers.len())
            {
                if failed.len() > allowed && halted.is_none() && !aborting {
                    s.emit(Event::WaveHalted {
                        wave: w,
                        failed: failed.clone(),
                        at_s: s.at_s(),
                    });
                    halted = Some((w, failed));
                    s.pacer.set_flow(Flow::Closed);
                }
                continue;
            }
            if s.record(Record::WavePassed { wave: w }).is_err() {
                // Not journaled as passed: a resume gates it again.
                continue;
            }
            passed += 1;
            s.status.lock().unwrap().waves_passed = passed;
            s.emit(Event::WavePassed {
                wave: w,
                healthy,
                failed: failed.len(),
                at_s: s.at_s(),
            });
            if s.pacer.flow() == Flow::Closed {
                continue;
            }
            for &d in &dependents[w] {
                waiting[d] -= 1;
                if waiting[d] == 0 {
                    start_wave(d, &mut tasks);
                    s.status.lock().unwrap().waves_running.push(d);
                }
            }
        }
        if let Some(a) = adapter {
            a.abort();
        }
        Ok(s.finish(passed, halted, failed_seen))
    }
}

impl<R, P> Shared<R, P> {
    /// The run's end: its state (halted, succeeded when every wave passed,
    /// else aborted) journaled and announced, and the outcome with the
    /// reason of a halt and every container that ended failed.
    fn finish(
        &self,
        passed: usize,
        halted: Option<(usize, Vec<String>)>,
        failed_seen: Vec<String>,
    ) -> Outcome {
        let s = self;
        let plan = &s.plan;
        let n = plan.waves.len();
        let journal_failed = s.journal_failed.lock().unwrap().clone();
        let state = if halted.is_some() || journal_failed.is_some() {
            RunState::Halted
        } else if passed == n {
            RunState::Succeeded
        } else {
            RunState::Aborted
        };
        // The end is journaled when it can be; a journal that already
        // failed says so in the reason.
        let _ = s.record(Record::End {
            state: format!("{state:?}").to_lowercase(),
        });
        let st = {
            let mut st = s.status.lock().unwrap();
            st.state = state;
            st.elapsed_s = s.at_s();
            st.clone()
        };
        s.emit(Event::Finished {
            state,
            at_s: s.at_s(),
        });
        // Every container that ended failed, in any wave: nothing left down unreported.
        let failed_all: Vec<String> = failed_seen;
        let dns_budget = std::mem::take(&mut *s.budget_log.lock().unwrap());
        let resolver_load = std::mem::take(&mut *s.resolver_log.lock().unwrap());
        let dns_granted_per_second = s.pacer.granted_per_second();
        Outcome {
        state,
        reason: halted.map(|(w, failed)| {
            let wave = &plan.waves[w];
            format!(
                "wave {w} ({} of group {:?}) halted: {} of {} containers failed, policy allows {:.0}%: {}",
                s.pb.roles[wave.role].name,
                wave.group,
                failed.len(),
                wave.containers.len(),
                s.pb.policy.max_failed_fraction * 100.0,
                failed.join("; ")
            )
        }).or(journal_failed.map(|e| {
            format!(
                "no restart starts without its record, so the run stopped starting restarts; those in flight were watched: the journal could not be written: {e}"
            )
        })),
        failed: failed_all,
        healthy: st.healthy,
        restarts: st.restarts,
        elapsed_s: st.elapsed_s,
        dns_budget,
        dns_granted_per_second,
        resolver_load,
    }
    }
}

/// One wave: restarts its containers as the pacer grants them, then waits
/// for each to pass or fail. Returns (failed descriptions, healthy count).
async fn run_wave<R: ContainerRuntime, P: HealthProbe>(
    s: &Arc<Shared<R, P>>,
    w: usize,
) -> (Vec<String>, usize) {
    let wave = &s.plan.waves[w];
    s.emit(Event::WaveStarted {
        wave: w,
        role: s.pb.roles[wave.role].name.clone(),
        group: wave.group.clone(),
        containers: wave.containers.len(),
        at_s: s.at_s(),
    });
    // A container gets a task once it is admitted (or has a journaled
    // past to settle): one waiting for its turn is an index, not a task.
    let mut jobs = JoinSet::new();
    let mut failed = Vec::new();
    let mut healthy = 0;
    let mut tally = |j: Result<(u32, ContainerResult), tokio::task::JoinError>| {
        let (c, r) = j.expect("container tasks do not panic");
        let name = &s.inv.containers[c as usize].name;
        match r {
            ContainerResult::Healthy => healthy += 1,
            ContainerResult::Failed(reason) => failed.push(format!("{name}: {reason}")),
            ContainerResult::Cancelled => {}
        }
    };
    let priority = (s.depth[wave.role], w as u32);
    let cost = s.pb.restart_queries(wave.role);
    let mut closed = false;
    // Up to ADMIT_AHEAD of the wave's requests wait in the pacer's queue at
    // once, so that its priority order holds against other waves (one at a
    // time would leave gaps that later waves' requests slip into).
    let mut asking = futures_util::stream::FuturesUnordered::new();
    let mut rest = wave.containers.iter().copied();
    loop {
        while !closed && asking.len() < ADMIT_AHEAD {
            let Some(c) = rest.next() else { break };
            let id = &s.inv.containers[c as usize].id;
            if s.replay.healthy.contains(id) || s.replay.in_doubt.contains_key(id) {
                let s = s.clone();
                jobs.spawn(async move { (c, restart_container(&s, w, c, None).await) });
                continue;
            }
            let pacer = s.pacer.clone();
            asking.push(async move { (c, pacer.admit(priority, cost).await) });
        }
        let Some((c, admission)) = futures_util::StreamExt::next(&mut asking).await else {
            break;
        };
        if admission.is_none() {
            // Stopping: the rest are left untouched (cancelled).
            closed = true;
        }
        let s = s.clone();
        jobs.spawn(async move { (c, restart_container(&s, w, c, admission).await) });
        while let Some(j) = jobs.try_join_next() {
            tally(j);
        }
    }
    // Those never asked for (the run is stopping) are cancelled.
    for c in rest {
        let s = s.clone();
        jobs.spawn(async move { (c, restart_container(&s, w, c, None).await) });
    }
    while let Some(j) = jobs.join_next().await {
        tally(j);
    }
    failed.sort();
    (failed, healthy)
}

/// How many of a wave's admissions wait in the pacer's queue at once (a
/// request, not a task: a few hundred bytes). At least a default wave
/// (`max_wave_size` 500, the shipped playbooks' 2,000), so that the queue's
/// order across waves is the whole priority order.
const ADMIT_AHEAD: usize = 4096;

#[cfg(test)]
mod tests;
