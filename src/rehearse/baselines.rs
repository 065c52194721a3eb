//! The policies rekindle is measured against, run on the very same
//! simulated world: `all-at-once` (the incident script) and `fixed-batch`
//! (Ansible-style `serial: B`, role by role, with a health check per batch).
//! They use only what a script would have: restart and look — and they
//! look through the playbook's own health checks, so a weak gate costs a
//! script what it would cost it in a data centre: a router that answers
//! `hello` but cannot reach its shards counts as done.

use crate::config::HealthKind;
use crate::model::Health;
use crate::scenario::SimRole;
use crate::sim::{Phase, SimFleet};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// The health check each container is gated by (by fleet index; `None`
/// for a container no role of the playbook names: the truth).
pub type Gates = Arc<Vec<Option<HealthKind>>>;

/// What a script sees of container `i` through its gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// The gate passes it.
    Pass,
    /// Exited, or its gate fails it: restart it.
    Bad,
    /// Restarting or starting: wait.
    Wait,
}

fn seen(sim: &SimFleet, gates: &Gates, i: usize) -> Seen {
    match sim.phase(i) {
        Phase::Restarting => Seen::Wait,
        Phase::Exited | Phase::Stopped => Seen::Bad,
        _ => match sim.gate_says(i, gates[i].as_ref()) {
            Health::Healthy => Seen::Pass,
            Health::Starting => Seen::Wait,
            Health::Unhealthy | Health::Down => Seen::Bad,
        },
    }
}

/// Containers restarted into a stuck state that their checks pass: what a
/// policy stopped believing was up.
pub fn stuck_passed(sim: &SimFleet, gates: &Gates) -> usize {
    of_role(sim, |_| true)
        .into_iter()
        .filter(|&i| sim.phase(i) == Phase::Stuck && seen(sim, gates, i) == Seen::Pass)
        .count()
}

/// Restarts every container in `idx` at once and waits for the calls.
async fn restart_all(sim: &Arc<SimFleet>, idx: &[usize]) {
    let mut set = JoinSet::new();
    for &i in idx {
        let sim = sim.clone();
        set.spawn(async move {
            let _ = sim.restart_index(i).await;
        });
    }
    while set.join_next().await.is_some() {}
}

fn of_role(sim: &SimFleet, pred: impl Fn(SimRole) -> bool) -> Vec<usize> {
    let f = sim.fleet();
    (0..f.all.len())
        .filter(|&i| pred(f.sim[i].role) && !f.down[f.sim[i].host as usize])
        .collect()
}

/// The incident script: every data node at once, then every router, no
/// pacing, no gate between them; every 60 s restart whatever its check
/// fails or has exited, until the check passes everything.
pub async fn all_at_once(sim: Arc<SimFleet>, gates: Gates, cap: Duration) {
    restart_all(&sim, &of_role(&sim, SimRole::is_data)).await;
    restart_all(&sim, &of_role(&sim, |r| !r.is_data())).await;
    let reachable = of_role(&sim, |_| true);
    loop {
        tokio::time::sleep(Duration::from_secs(60)).await;
        let bad: Vec<usize> = reachable
            .iter()
            .copied()
            .filter(|&i| seen(&sim, &gates, i) == Seen::Bad)
            .collect();
        let done = bad.is_empty()
            && reachable
                .iter()
                .all(|&i| seen(&sim, &gates, i) == Seen::Pass);
        if done || sim.now_s() >= cap.as_secs_f64() {
            return;
        }
        restart_all(&sim, &bad).await;
    }
}

/// `serial: B` over the whole fleet, role by role (config servers, shards,
/// routers): restart a batch, poll once a second until its check passes
/// each member or fails it, restart the failed ones, go on when the check
/// passes them all.
pub async fn fixed_batch(sim: Arc<SimFleet>, gates: Gates, batch: usize, cap: Duration) {
    for role in SimRole::ALL {
        for chunk in of_role(&sim, |r| r == role).chunks(batch) {
            let mut todo: Vec<usize> = chunk.to_vec();
            while !todo.is_empty() {
                if sim.now_s() >= cap.as_secs_f64() {
                    return;
                }
                restart_all(&sim, &todo).await;
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if chunk.iter().all(|&i| seen(&sim, &gates, i) != Seen::Wait)
                        || sim.now_s() >= cap.as_secs_f64()
                    {
                        break;
                    }
                }
                todo = chunk
                    .iter()
                    .copied()
                    .filter(|&i| seen(&sim, &gates, i) != Seen::Pass)
                    .collect();
            }
        }
    }
}
