//! The static-budget frontier: the same playbook and scenario rehearsed at
//! a range of static DNS budgets (fractions of the capacity the playbook
//! claims), each with its makespan, drops and stuck containers, and the
//! fastest budget that keeps drops under a limit — the yardstick for an
//! adaptive pacer that does not know the resolver (it is "the best static
//! budget chosen with hindsight"). Rehearsals run on as many threads as
//! the machine has cores.

use super::{rehearse, Options, RehearseError};
use crate::config::Playbook;
use crate::scenario::Scenario;
use serde::Serialize;

/// One static budget's result.
#[derive(Debug, Clone, Serialize)]
pub struct SweepPoint {
    /// The budget as a fraction of the playbook's claimed capacity.
    pub fraction: f64,
    /// The budget, in q/s.
    pub budget_qps: f64,
    /// Whether every reachable container ended healthy.
    pub converged: bool,
    /// When the last container became healthy (seconds); `None` if never.
    pub makespan_s: Option<f64>,
    /// Queries the simulated resolver received.
    pub dns_queries: u64,
    /// Queries it dropped or answered too late.
    pub dns_dropped: u64,
    /// Dropped over received.
    pub dropped_share: f64,
    /// Containers stuck at the end.
    pub stuck: usize,
    /// Times a container came up stuck, over the run.
    pub stuck_events: u64,
}

/// The frontier and its best point.
#[derive(Debug, Clone, Serialize)]
pub struct Sweep {
    /// The scenario's name.
    pub scenario: String,
    /// The playbook's name.
    pub playbook: String,
    /// The scenario's lower bound on recovery time (seconds).
    pub lower_bound_s: f64,
    /// The share of queries the best point may drop.
    pub drop_limit: f64,
    /// Every budget tried, in the order of the fractions given.
    pub points: Vec<SweepPoint>,
    /// The fastest point that converged, left nothing stuck, and dropped
    /// under the limit.
    pub best: Option<SweepPoint>,
}

/// The fractions swept by default: 0.10 to 1.00 in steps of 0.05.
pub fn default_fractions() -> Vec<f64> {
    (2..=20).map(|i| i as f64 * 0.05).collect()
}

/// Rehearses `playbook` on `scenario` at each static budget.
pub fn sweep(
    playbook: &Playbook,
    scenario: &Scenario,
    fractions: &[f64],
    drop_limit: f64,
) -> Result<Sweep, RehearseError> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(fractions.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&fraction) = fractions.get(i) else {
                    return;
                };
                let mut pb = playbook.clone();
                pb.dns.headroom = fraction;
                let opts = Options {
                    static_budget: true,
                    ..Options::default()
                };
                let point = rehearse(&pb, scenario, &opts, |_, _| {}).map(|r| SweepPoint {
                    fraction,
                    budget_qps: pb.dns.budget_qps(),
                    converged: r.makespan_s.is_some(),
                    makespan_s: r.makespan_s,
                    dns_queries: r.dns_queries,
                    dns_dropped: r.dns_dropped,
                    dropped_share: r.dns_dropped as f64 / r.dns_queries.max(1) as f64,
                    stuck: r.stuck,
                    stuck_events: r.stuck_events,
                });
                results.lock().unwrap().push((i, point));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);
    let points = results
        .into_iter()
        .map(|(_, p)| p)
        .collect::<Result<Vec<_>, _>>()?;
    let best = points
        .iter()
        .filter(|p| p.converged && p.stuck == 0 && p.dropped_share < drop_limit)
        .min_by(|a, b| {
            a.makespan_s
                .unwrap_or(f64::MAX)
                .total_cmp(&b.makespan_s.unwrap_or(f64::MAX))
        })
        .cloned();
    Ok(Sweep {
        scenario: scenario.name.clone(),
        playbook: playbook.name.clone(),
        lower_bound_s: scenario.lower_bound_s(),
        drop_limit,
        points,
        best,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_frontier_of_smoke_finds_a_budget_that_drops_nothing() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let pb = Playbook::load(&root.join("config/mongo-sharded.toml")).unwrap();
        let sc = Scenario::load(&root.join("config/scenarios/smoke.toml")).unwrap();
        // The playbook claims 5,000 q/s; smoke's resolver serves 40: only
        // budgets under 40 q/s can be clean.
        let s = sweep(&pb, &sc, &[0.002, 0.006, 0.5], 0.005).unwrap();
        assert_eq!(s.points.len(), 3);
        assert!(s.points[2].dns_dropped > 0, "{:?}", s.points[2]);
        let best = s.best.expect("a clean budget exists");
        assert!(best.budget_qps < 40.0 && best.dns_dropped == 0, "{best:?}");
        // The faster of the clean budgets wins.
        assert_eq!(best.fraction, 0.006, "{:?}", s.points);
    }
}
