//! The policies rekindle is measured against, run on the very same
//! simulated world: `all-at-once` (the incident script) and `fixed-batch`
//! (Ansible-style `serial: B`, role by role, with a health check per batch).
//! They use only what a script would have: restart and look.

use crate::scenario::SimRole;
use crate::sim::{Phase, SimFleet};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

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
/// pacing, no gate; every 60 s restart whatever is stuck or exited.
pub async fn all_at_once(sim: Arc<SimFleet>, cap: Duration) {
    restart_all(&sim, &of_role(&sim, SimRole::is_data)).await;
    restart_all(&sim, &of_role(&sim, |r| !r.is_data())).await;
    loop {
        tokio::time::sleep(Duration::from_secs(60)).await;
        if sim.all_healthy() || sim.now_s() >= cap.as_secs_f64() {
            return;
        }
        let bad: Vec<usize> = sim
            .not_healthy()
            .into_iter()
            .filter(|&i| {
                matches!(
                    sim.phase(i),
                    Phase::Stuck | Phase::Exited | Phase::Disconnected
                )
            })
            .collect();
        restart_all(&sim, &bad).await;
    }
}

/// `serial: B` over the whole fleet, role by role (config servers, shards,
/// routers): restart a batch, poll once a second until each member is
/// healthy or visibly bad, restart the bad ones, go on when all are healthy.
pub async fn fixed_batch(sim: Arc<SimFleet>, batch: usize, cap: Duration) {
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
                    let phases: Vec<Phase> = chunk.iter().map(|&i| sim.phase(i)).collect();
                    if phases
                        .iter()
                        .all(|p| !matches!(p, Phase::Starting | Phase::Restarting))
                        || sim.now_s() >= cap.as_secs_f64()
                    {
                        break;
                    }
                }
                todo = chunk
                    .iter()
                    .copied()
                    .filter(|&i| sim.phase(i) != Phase::Healthy)
                    .collect();
            }
        }
    }
}
