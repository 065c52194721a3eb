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
