//! Rehearsal: the real engine and planner against a simulated fleet on a
//! paused tokio clock, so a 22,200-container recovery runs in seconds; plus
//! the baselines on the same world, for comparison. This module wires the
//! pieces and measures; it holds no restart logic of its own.

pub mod baselines;
pub mod sweep;

use crate::config::Playbook;
use crate::engine::{fingerprint, Engine, Event, Outcome, RunState};
use crate::inventory::Inventory;
use crate::journal::{Journal, JournalError, Record, Replay};
use crate::plan::{Plan, PlanError};
use crate::scenario::Scenario;
use crate::sim::{SimDnsProbe, SimFleet, SimRuntime, SimStats};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// Baselines give up after this much simulated time.
pub const BASELINE_CAP: Duration = Duration::from_secs(2 * 3600);
pub const BATCH_SIZES: [usize; 6] = [25, 50, 100, 200, 400, 800];

#[derive(Debug, Error)]
pub enum RehearseError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    #[error("cannot start the simulation runtime: {0}")]
    Runtime(std::io::Error),
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub compare: bool,
    /// Pace at the playbook's static budget even when it says adaptive.
    pub static_budget: bool,
    /// Receives the engine's control handle once the run starts (the daemon
    /// pauses, resumes and aborts rehearsals through it).
    pub handle_tx: Option<std::sync::mpsc::Sender<crate::engine::Handle>>,
    /// Where the journal goes; a temporary directory when unset.
    pub state_dir: Option<PathBuf>,
}

/// Figures of one policy on the simulated world.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyFigures {
    pub policy: String,
    pub converged: bool,
    /// When the last container became healthy (seconds); `None` if never.
    pub makespan_s: Option<f64>,
    pub dns_queries: u64,
    pub dns_dropped: u64,
    pub dns_peak_qps: u64,
    pub stuck_events: u64,
    pub rerestarts: u64,
    pub restart_failures: u64,
    pub still_down: usize,
}

impl PolicyFigures {
    fn from_stats(policy: String, s: &SimStats) -> Self {
        PolicyFigures {
            policy,
            converged: s.all_healthy_at.is_some(),
            makespan_s: s.all_healthy_at,
            dns_queries: s.dns_queries,
            dns_dropped: s.dns_dropped,
            dns_peak_qps: s.dns_peak_qps,
            stuck_events: s.stuck_events,
            rerestarts: s.rerestarts,
            restart_failures: s.restart_failures,
            still_down: s.total - s.unreachable - s.healthy,
        }
    }
}

/// The rehearsal's report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub playbook: String,
    pub state: RunState,
    pub reason: Option<String>,
    pub total: usize,
    pub healthy: usize,
    pub unreachable: usize,
    pub makespan_s: Option<f64>,
    pub lower_bound_s: f64,
    pub ratio: Option<f64>,
    pub dns_queries: u64,
    pub dns_dropped: u64,
    pub dns_peak_qps: u64,
    pub dns_capacity_qps: f64,
    pub dns_budget_qps: f64,
    pub stuck: usize,
    pub stuck_events: u64,
    pub rerestarts: u64,
    pub restart_failures: u64,
    pub failed: Vec<String>,
    pub engine_elapsed_s: f64,
    pub waves: usize,
    pub journal: PathBuf,
    /// Queries the resolver received in each second.
    pub dns_per_second: Vec<u64>,
    /// The adaptive DNS budget over time: (seconds, q/s); empty when static.
    pub dns_budget: Vec<(f64, f64)>,
    /// Containers the engine saw healthy by the end of each second.
    pub healthy_per_second: Vec<u64>,
    /// Each wave's span on the virtual clock.
    pub wave_spans: Vec<WaveSpan>,
    pub baselines: Vec<PolicyFigures>,
}

pub use crate::report::WaveSpan;

/// Runs one closure on its own paused-clock runtime.
fn on_virtual_clock<T>(f: impl std::future::Future<Output = T>) -> Result<T, RehearseError> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().map_err(RehearseError::Runtime)?;
    Ok(rt.block_on(f))
}

/// Rehearses `playbook` on `scenario`; `on_event` sees every engine event
/// with the virtual time (seconds) it happened at.
pub fn rehearse(playbook: &Playbook, scenario: &Scenario, opts: &Options, mut on_event: impl FnMut(&Event, f64) + Send) -> Result<Report, RehearseError> {
    let pb = Arc::new(playbook.clone());
    let mut timeline = crate::report::Collector::default();
    let baseline_thread = opts.compare.then(|| {
        let scenario = scenario.clone();
        std::thread::spawn(move || run_baselines(&scenario))
    });
    let tmp;
    let state_dir = match &opts.state_dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().map_err(RehearseError::Runtime)?;
            tmp.path().to_path_buf()
        }
    };
    let journal_path = state_dir.join(format!("rehearse-{}-{}.journal", pb.name, scenario.name));
    let (outcome, stats, dns_per_second, waves) = on_virtual_clock(async {
        let sim = SimFleet::new(scenario);
        let inv = Arc::new(sim.fleet().inventory());
        let plan = Arc::new(Plan::build(&inv, &pb)?);
        if journal_path.exists() {
            std::fs::remove_file(&journal_path).map_err(|e| JournalError::Io { path: journal_path.clone(), source: e })?;
        }
        let journal = Journal::create(&journal_path, Record::Start { playbook: pb.name.clone(), fingerprint: fingerprint(&pb, &inv, &plan), containers: plan.containers }, false)?;
        let probe: Option<Arc<dyn crate::dns::budget::DnsProbe>> =
            (!opts.static_budget && pb.dns.adaptive).then(|| Arc::new(SimDnsProbe { fleet: sim.clone(), counters: pb.dns.counter.is_some() }) as _);
        let events = |e: &Event, at: f64| {
            timeline.on(e, at);
            on_event(e, at);
        };
        let outcome = run_engine(SimRuntime(sim.clone()), probe, opts.handle_tx.clone(), pb.clone(), inv, plan.clone(), journal, Replay::default(), events).await?;
        Ok::<_, RehearseError>((outcome, sim.stats(), sim.dns_per_second(), plan.waves.len()))
    })??;
    let baselines = match baseline_thread {
        Some(t) => t.join().expect("baseline thread")?,
        None => vec![],
    };
    let lb = scenario.lower_bound_s();
    let healthy_per_second = timeline.healthy_per_second(dns_per_second.len().max(outcome.elapsed_s.ceil() as usize));
    Ok(Report {
        scenario: scenario.name.clone(),
        playbook: pb.name.clone(),
        state: outcome.state,
        reason: outcome.reason,
        total: stats.total,
        healthy: stats.healthy,
        unreachable: stats.unreachable,
        makespan_s: stats.all_healthy_at,
        lower_bound_s: lb,
        ratio: stats.all_healthy_at.map(|m| m / lb),
        dns_queries: stats.dns_queries,
        dns_dropped: stats.dns_dropped,
        dns_peak_qps: stats.dns_peak_qps,
        dns_capacity_qps: scenario.dns.capacity_qps,
        dns_budget_qps: pb.dns.budget_qps(),
        stuck: stats.stuck,
        stuck_events: stats.stuck_events,
        rerestarts: stats.rerestarts,
        restart_failures: stats.restart_failures,
        failed: outcome.failed,
        engine_elapsed_s: outcome.elapsed_s,
        waves,
        journal: journal_path,
        dns_per_second,
        dns_budget: outcome.dns_budget.clone(),
        healthy_per_second,
        wave_spans: timeline.spans,
        baselines,
    })
}

/// Runs an engine to its end, forwarding events.
#[allow(clippy::too_many_arguments)]
pub async fn run_engine(
    rt: SimRuntime,
    probe: Option<Arc<dyn crate::dns::budget::DnsProbe>>,
    handle_tx: Option<std::sync::mpsc::Sender<crate::engine::Handle>>,
    pb: Arc<Playbook>,
    inv: Arc<Inventory>,
    plan: Arc<Plan>,
    journal: Journal,
    replay: Replay,
    mut on_event: impl FnMut(&Event, f64) + Send,
) -> Result<Outcome, RehearseError> {
    let mut engine = Engine::new(Arc::new(rt), pb, inv, plan, journal, replay);
    if let Some(p) = probe {
        engine = engine.with_dns_probe(p);
    }
    let mut events = engine.handle().subscribe();
    if let Some(tx) = handle_tx {
        let _ = tx.send(engine.handle());
    }
    let start = tokio::time::Instant::now();
    let run = tokio::spawn(engine.run());
    loop {
        match events.recv().await {
            Ok(e) => {
                let done = matches!(e, Event::Finished { .. });
                on_event(&e, start.elapsed().as_secs_f64());
                if done {
                    break;
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(_) => break,
        }
    }
    Ok(run.await.expect("engine task")?)
}

/// All baselines, two at a time (the machine's cores), each on its own
/// world and virtual clock.
pub fn run_baselines(scenario: &Scenario) -> Result<Vec<PolicyFigures>, RehearseError> {
    let mut jobs: Vec<(String, Option<usize>)> = vec![("all-at-once".into(), None)];
    jobs.extend(BATCH_SIZES.iter().map(|&b| (format!("fixed-batch-{b}"), Some(b))));
    let results: Vec<Result<PolicyFigures, RehearseError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .chunks(jobs.len().div_ceil(2))
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|(name, batch)| {
                            on_virtual_clock(async {
                                let sim = SimFleet::new(scenario);
                                match batch {
                                    None => baselines::all_at_once(sim.clone(), BASELINE_CAP).await,
                                    Some(b) => baselines::fixed_batch(sim.clone(), *b, BASELINE_CAP).await,
                                }
                                PolicyFigures::from_stats(name.clone(), &sim.stats())
                            })
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("baseline worker")).collect()
    });
    results.into_iter().collect()
}

/// The best fixed batch: converged first, then fastest.
pub fn best_fixed_batch(baselines: &[PolicyFigures]) -> Option<&PolicyFigures> {
    baselines.iter().filter(|b| b.policy.starts_with("fixed-batch")).min_by(|a, b| match (a.makespan_s, b.makespan_s) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.still_down.cmp(&b.still_down),
    })
}
