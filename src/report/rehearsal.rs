//! What a rehearsal reports: its own figures and those of the baseline
//! policies on the same simulated world. Plain data, written by
//! [`crate::rehearse`] and rendered by this module's parent.

use crate::engine::RunState;
use crate::report::WaveSpan;
use crate::sim::SimStats;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

/// Baselines give up after this much simulated time.
pub const BASELINE_CAP: Duration = Duration::from_secs(2 * 3600);

/// Figures of one policy on the simulated world.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyFigures {
    /// The policy's name (`all-at-once`, `fixed-batch-N`).
    pub policy: String,
    /// Whether every reachable container ended healthy.
    pub converged: bool,
    /// When the last container became healthy (seconds); `None` if never.
    pub makespan_s: Option<f64>,
    /// Queries the simulated resolver received.
    pub dns_queries: u64,
    /// Queries it dropped or answered too late.
    pub dns_dropped: u64,
    /// The most queries received in any one-second window.
    pub dns_peak_qps: u64,
    /// Times a container came up stuck, over the run.
    pub stuck_events: u64,
    /// Restarts beyond one per container.
    pub rerestarts: u64,
    /// Restarts whose container exited instead of starting.
    pub restart_failures: u64,
    /// Reachable containers not healthy at the end.
    pub still_down: usize,
    /// Of those, the ones restarted into a stuck state that the playbook's
    /// checks pass (a router that answers `hello` but cannot reach its
    /// shards): the policy stopped believing they were up.
    pub stuck_passed: usize,
}

impl PolicyFigures {
    /// The figures of another rehearsal (the full restart beside a run of
    /// only what is broken), named `policy`.
    pub fn from_report(policy: String, r: &Report) -> Self {
        PolicyFigures {
            policy,
            converged: r.makespan_s.is_some(),
            makespan_s: r.makespan_s,
            dns_queries: r.dns_queries,
            dns_dropped: r.dns_dropped,
            dns_peak_qps: r.dns_peak_qps,
            stuck_events: r.stuck_events,
            rerestarts: r.rerestarts,
            restart_failures: r.restart_failures,
            still_down: r.total - r.unreachable - r.healthy,
            stuck_passed: 0,
        }
    }

    /// The figures of policy `policy` from the simulator's totals.
    pub fn from_stats(policy: String, s: &SimStats) -> Self {
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
            stuck_passed: 0,
        }
    }
}

/// The rehearsal's report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// The playbook's name.
    pub playbook: String,
    /// How the engine's run ended.
    pub state: RunState,
    /// Why it halted, if it did.
    pub reason: Option<String>,
    /// Containers in the simulated fleet.
    pub total: usize,
    /// Containers healthy at the end.
    pub healthy: usize,
    /// Containers on hosts that do not answer (never restartable).
    pub unreachable: usize,
    /// When the last container became healthy (seconds); `None` if never.
    pub makespan_s: Option<f64>,
    /// The scenario's lower bound on recovery time (seconds).
    pub lower_bound_s: f64,
    /// Makespan over the lower bound.
    pub ratio: Option<f64>,
    /// Queries the simulated resolver received.
    pub dns_queries: u64,
    /// Queries it dropped or answered too late.
    pub dns_dropped: u64,
    /// The most queries received in any one-second window.
    pub dns_peak_qps: u64,
    /// The simulated resolver's capacity, in q/s.
    pub dns_capacity_qps: f64,
    /// The playbook's static DNS budget, in q/s.
    pub dns_budget_qps: f64,
    /// Containers stuck at the end, once the fleet settled.
    pub stuck: usize,
    /// Times a container came up stuck, over the run.
    pub stuck_events: u64,
    /// Restarts beyond one per container.
    pub rerestarts: u64,
    /// Restarts whose container exited instead of starting.
    pub restart_failures: u64,
    /// Names of the containers that failed.
    pub failed: Vec<String>,
    /// Seconds the engine ran (virtual).
    pub engine_elapsed_s: f64,
    /// Waves in the plan.
    pub waves: usize,
    /// The journal file of the rehearsal.
    pub journal: PathBuf,
    /// Queries the resolver received in each second.
    pub dns_per_second: Vec<u64>,
    /// The adaptive DNS budget over time: (seconds, q/s); empty when static.
    pub dns_budget: Vec<(f64, f64)>,
    /// Containers the engine saw healthy by the end of each second.
    pub healthy_per_second: Vec<u64>,
    /// Each wave's span on the virtual clock.
    pub wave_spans: Vec<WaveSpan>,
    /// The baselines' figures (empty unless compared).
    pub baselines: Vec<PolicyFigures>,
    /// The pre-flight on the simulated fleet, a line per check
    /// (`ok`, `warn` or `fail`, what, the detail).
    pub preflight: Vec<String>,
    /// A rehearsal of only what is broken: what the survey found against
    /// the world's truth, what the rules chose, the post-flight.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selection: Option<SelectionFigures>,
}

/// A run of only what is broken, on the simulated world.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SelectionFigures {
    /// Containers the survey asked.
    pub surveyed: usize,
    /// Of those, found not ok (broken, down or silent).
    pub found: usize,
    /// Found not ok, yet healthy in the world (false positives).
    pub false_positives: usize,
    /// Broken in the world, yet found ok (missed).
    pub missed: usize,
    /// Containers the rules chose to restart.
    pub restarted: usize,
    /// Containers left alone.
    pub left_alone: usize,
    /// Containers per rule (`why`, how many), rule order.
    pub by_rule: Vec<(String, usize)>,
    /// The post-flight survey: ok, and not ok.
    pub post_flight_ok: usize,
    /// Not ok at the post-flight.
    pub post_flight_not_ok: usize,
}
