//! Rehearsal: the real engine and planner against a simulated fleet on a
//! paused tokio clock, so a 22,200-container recovery runs in seconds; plus
//! the baselines on the same world, for comparison. This module wires the
//! pieces and measures; it holds no restart logic of its own.

pub mod baselines;
pub mod sweep;

use crate::config::{Only, Playbook};
use crate::engine::{Event, Handle};
use crate::inventory::InventoryError;
use crate::pipeline::{self, Simulated};
use crate::plan::{Plan, PlanError};
use crate::recovery::prepare::PrepareError;
use crate::scenario::Scenario;
use crate::session::{JournalMode, JournalSpec, Observer};
use crate::sim::SimFleet;
use crate::survey::select::Selection;
use crate::survey::{Survey, Verdict};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// The batch sizes of the fixed-batch baselines (containers per batch).
pub const BATCH_SIZES: [usize; 6] = [25, 50, 100, 200, 400, 800];

/// Why a rehearsal could not run.
#[derive(Debug, Error)]
pub enum RehearseError {
    /// No plan could be made.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The simulated fleet could not be read as an inventory.
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    /// The pre-flight on the simulated fleet refused (a check failed).
    #[error("pre-flight: {0}")]
    Preflight(String),
    /// The session (journal, engine) failed.
    #[error(transparent)]
    Session(Box<crate::session::SessionError>),
    /// The virtual-clock runtime could not be built.
    #[error("cannot start the simulation runtime: {0}")]
    Runtime(std::io::Error),
}

/// How to rehearse.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Also run the baselines (all-at-once, fixed batches) on the same world.
    pub compare: bool,
    /// Pace at the playbook's static budget even when it says adaptive.
    pub static_budget: bool,
    /// Receives the engine's control handle once the run starts (the daemon
    /// pauses, resumes and aborts rehearsals through it).
    pub handle_tx: Option<std::sync::mpsc::Sender<crate::engine::Handle>>,
    /// Where the journal goes; a temporary directory when unset.
    pub state_dir: Option<PathBuf>,
    /// What to restart: everything, or only what a survey finds broken
    /// (then `compare` also rehearses the full restart on the same world).
    pub only: crate::config::Only,
}

pub use crate::report::rehearsal::{PolicyFigures, Report, SelectionFigures, BASELINE_CAP};
pub use crate::report::WaveSpan;

impl From<PrepareError> for RehearseError {
    fn from(e: PrepareError) -> Self {
        match e {
            PrepareError::Plan(p) => RehearseError::Plan(p),
            PrepareError::Inventory(i) => RehearseError::Inventory(i),
        }
    }
}

impl From<crate::session::SessionError> for RehearseError {
    fn from(e: crate::session::SessionError) -> Self {
        RehearseError::Session(Box::new(e))
    }
}

/// Runs one closure on its own paused-clock runtime.
fn on_virtual_clock<T>(f: impl std::future::Future<Output = T>) -> Result<T, RehearseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(RehearseError::Runtime)?;
    Ok(rt.block_on(f))
}

/// Rehearses `playbook` on `scenario`; `on_event` sees every engine event
/// with the virtual time (seconds) it happened at.
pub fn rehearse(
    playbook: &Playbook,
    scenario: &Scenario,
    opts: &Options,
    on_event: impl FnMut(&Event, f64) + Send,
) -> Result<Report, RehearseError> {
    let pb = Arc::new(playbook.clone());
    let selective = opts.only == Only::Broken;
    let comparisons = opts
        .compare
        .then(|| spawn_comparisons(pb.clone(), scenario.clone(), selective));
    let tmp;
    let state_dir = match &opts.state_dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().map_err(RehearseError::Runtime)?;
            tmp.path().to_path_buf()
        }
    };
    let journal_path = state_dir.join(format!("rehearse-{}-{}.journal", pb.name, scenario.name));
    let rehearsed = on_virtual_clock(rehearse_on_clock(
        &pb,
        scenario,
        opts,
        journal_path.clone(),
        on_event,
    ))??;
    let baselines = match comparisons {
        Some(t) => t.join().expect("baseline thread")?,
        None => vec![],
    };
    Ok(rehearsed.report(&pb, scenario, journal_path, baselines))
}

/// The comparisons of `--compare`, on a thread of their own while the
/// rehearsal runs: the baselines on the same world and, when the
/// rehearsal restarts only what is broken, the full restart too.
fn spawn_comparisons(
    pb: Arc<Playbook>,
    scenario: Scenario,
    selective: bool,
) -> std::thread::JoinHandle<Result<Vec<PolicyFigures>, RehearseError>> {
    std::thread::spawn(move || {
        let mut figures = Vec::new();
        if selective {
            // The full restart, on the same world.
            let all = Options {
                only: Only::All,
                ..Options::default()
            };
            // A function pointer: one instance of `rehearse`, not one per caller.
            let ignore: fn(&Event, f64) = |_, _| {};
            let full = rehearse(&pb, &scenario, &all, ignore)?;
            figures.push(PolicyFigures::from_report("rekindle, all".into(), &full));
        }
        figures.extend(run_baselines(&scenario, &pb)?);
        Ok::<_, RehearseError>(figures)
    })
}

/// What one rehearsal on the virtual clock measured, for its report.
struct Rehearsed {
    outcome: crate::engine::Outcome,
    stats: crate::sim::SimStats,
    dns_per_second: Vec<u64>,
    waves: usize,
    preflight: Vec<String>,
    selection: Option<SelectionFigures>,
    timeline: crate::report::Collector,
}

/// The rehearsal itself, on the paused clock: the scenario's world through
/// the pipeline (prepare, pre-flight, with only what is broken its survey
/// and selection), the session with its journal at `journal_path`, the
/// world left to settle, and with a selection the post-flight survey.
async fn rehearse_on_clock(
    pb: &Playbook,
    scenario: &Scenario,
    opts: &Options,
    journal_path: PathBuf,
    mut on_event: impl FnMut(&Event, f64) + Send,
) -> Result<Rehearsed, RehearseError> {
    let world = Simulated {
        sim: SimFleet::new(scenario),
        static_budget: opts.static_budget,
    };
    let prepared = pipeline::prepare(world, pb.clone()).await?;
    let mut checked = prepared
        .check(false)
        .await
        .map_err(|e| RehearseError::Preflight(e.to_string()))?;
    if let Some(refused) = checked.refusal() {
        return Err(RehearseError::Preflight(refused));
    }
    let preflight: Vec<String> = checked
        .preflight
        .checks
        .iter()
        .map(|c| format!("{} {}: {}", c.verdict.as_str(), c.what, c.detail))
        .collect();
    let mut selection = match opts.only == Only::Broken {
        true => {
            let (survey, sel) = checked.only_broken().await?;
            Some(selection_figures(
                &checked.fleet.sim,
                &checked.inventory,
                &survey,
                &sel,
            ))
        }
        false => None,
    };
    let journal = JournalSpec {
        path: journal_path,
        mode: JournalMode::Replace,
        durable: false,
    };
    let mut watcher = Watcher {
        handle_tx: opts.handle_tx.clone(),
        on_event: &mut on_event,
    };
    let finished = checked.run(journal, None, &mut watcher).await?;
    let sim = &finished.fleet.sim;
    sim.settle(Duration::from_secs(600)).await;
    if let Some(sel) = &mut selection {
        let post = finished.survey().await;
        sel.post_flight_ok = post.count(&Verdict::Ok);
        sel.post_flight_not_ok = post.findings.len() - sel.post_flight_ok;
    }
    Ok(Rehearsed {
        stats: sim.stats(),
        dns_per_second: sim.dns_per_second(),
        waves: finished.waves,
        outcome: finished.outcome,
        timeline: finished.timeline,
        preflight,
        selection,
    })
}

impl Rehearsed {
    /// The rehearsal's report: its outcome and measures against the
    /// scenario's lower bound, with the comparisons' `baselines`.
    fn report(
        self,
        pb: &Playbook,
        scenario: &Scenario,
        journal_path: PathBuf,
        baselines: Vec<PolicyFigures>,
    ) -> Report {
        let Rehearsed {
            outcome,
            stats,
            dns_per_second,
            waves,
            preflight,
            selection,
            timeline,
        } = self;
        let lb = scenario.lower_bound_s();
        let healthy_per_second = timeline
            .healthy_per_second(dns_per_second.len().max(outcome.elapsed_s.ceil() as usize));
        Report {
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
            preflight,
            selection,
        }
    }
}

/// What a survey of the simulated world found against the world's own
/// count of what it broke, and what the rules chose.
fn selection_figures(
    sim: &SimFleet,
    inv: &crate::model::Inventory,
    survey: &Survey,
    sel: &Selection,
) -> SelectionFigures {
    let truth = |f: &crate::survey::Finding| {
        let id = &inv.containers[f.index as usize].id;
        sim.index_of(id).is_some_and(|i| sim.fleet().broken[i])
    };
    let found = |f: &crate::survey::Finding| f.verdict != Verdict::Ok;
    SelectionFigures {
        surveyed: survey.findings.len(),
        found: survey.findings.iter().filter(|f| found(f)).count(),
        false_positives: survey
            .findings
            .iter()
            .filter(|f| found(f) && !truth(f))
            .count(),
        missed: survey
            .findings
            .iter()
            .filter(|f| !found(f) && truth(f))
            .count(),
        restarted: sel.restarts(),
        left_alone: sel.left_alone(),
        by_rule: sel
            .counts()
            .into_iter()
            .map(|(w, n)| {
                let verb = if w.restarts() { "restart" } else { "leave" };
                (format!("{verb}: {}", w.describe()), n)
            })
            .collect(),
        post_flight_ok: 0,
        post_flight_not_ok: 0,
    }
}

/// A rehearsal's view of its session: the caller's event callback, and
/// the control handle for whoever asked for it (the daemon).
struct Watcher<'a, F> {
    handle_tx: Option<std::sync::mpsc::Sender<Handle>>,
    on_event: &'a mut F,
}

impl<F: FnMut(&Event, f64) + Send> Observer for Watcher<'_, F> {
    fn started(&mut self, handle: &Handle) {
        if let Some(tx) = self.handle_tx.take() {
            let _ = tx.send(handle.clone());
        }
    }
    fn event(&mut self, e: &Event, at_s: f64) {
        (self.on_event)(e, at_s);
    }
}

/// All baselines, two at a time (the machine's cores), each on its own
/// world and virtual clock.
pub fn run_baselines(
    scenario: &Scenario,
    playbook: &Playbook,
) -> Result<Vec<PolicyFigures>, RehearseError> {
    let gates = baseline_gates(scenario, playbook)?;
    let mut jobs: Vec<(String, Option<usize>)> = vec![("all-at-once".into(), None)];
    jobs.extend(
        BATCH_SIZES
            .iter()
            .map(|&b| (format!("fixed-batch-{b}"), Some(b))),
    );
    let results: Vec<Result<PolicyFigures, RehearseError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .chunks(jobs.len().div_ceil(2))
            .map(|chunk| {
                let gates = &gates;
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|(name, batch)| {
                            on_virtual_clock(async {
                                let sim = SimFleet::new(scenario);
                                match batch {
                                    None => {
                                        baselines::all_at_once(
                                            sim.clone(),
                                            gates.clone(),
                                            BASELINE_CAP,
                                        )
                                        .await
                                    }
                                    Some(b) => {
                                        baselines::fixed_batch(
                                            sim.clone(),
                                            gates.clone(),
                                            *b,
                                            BASELINE_CAP,
                                        )
                                        .await
                                    }
                                }
                                PolicyFigures {
                                    stuck_passed: baselines::stuck_passed(&sim, gates),
                                    ..PolicyFigures::from_stats(name.clone(), &sim.stats())
                                }
                            })
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("baseline worker"))
            .collect()
    });
    results.into_iter().collect()
}

/// The playbook's health check for each container of the scenario's
/// fleet, by fleet index: the gate a script would use.
fn baseline_gates(scenario: &Scenario, pb: &Playbook) -> Result<baselines::Gates, RehearseError> {
    let fleet = scenario.fleet();
    let inv = fleet.inventory();
    let plan = Plan::build(&inv, pb)?;
    let by_id: std::collections::HashMap<&str, usize> = fleet
        .all
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.as_str(), i))
        .collect();
    let mut gates = vec![None; fleet.all.len()];
    for w in &plan.waves {
        let kind = &pb.roles[w.role].health.kind;
        for &ci in &w.containers {
            if let Some(&i) = by_id.get(inv.containers[ci as usize].id.as_str()) {
                gates[i] = Some(kind.clone());
            }
        }
    }
    Ok(Arc::new(gates))
}

/// The best fixed batch: converged first, then fastest.
pub fn best_fixed_batch(baselines: &[PolicyFigures]) -> Option<&PolicyFigures> {
    baselines
        .iter()
        .filter(|b| b.policy.starts_with("fixed-batch"))
        .min_by(|a, b| match (a.makespan_s, b.makespan_s) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.still_down.cmp(&b.still_down),
        })
}
