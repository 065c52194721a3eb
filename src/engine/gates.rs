//! What each container's health gate asks, and what a stuck router waits
//! for before its next restart.
//!
//! A role's health check is the same for all its containers but one part:
//! the router gate (`kind = "mongos"`) must know which replica sets its
//! cluster has. They come from the inventory — every replset label value
//! among the cluster's containers — so a router that has not loaded its
//! shard registry, or lost a shard from it, fails rather than passes on
//! what it happens to monitor.

use crate::config::{HealthCheck, HealthKind, Playbook};
use crate::model::Inventory;
use crate::plan::Plan;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub(crate) struct Gates {
    /// Checks that differ from their role's, by (role, cluster).
    per_cluster: HashMap<(usize, String), Arc<HealthCheck>>,
    roles: Vec<Arc<HealthCheck>>,
    cluster_label: String,
    replset_label: Option<String>,
    /// Replica-set members of each cluster in this run not yet healthy.
    pending: Mutex<HashMap<String, usize>>,
    changed: tokio::sync::Notify,
}

impl Gates {
    pub(crate) fn new(
        pb: &Playbook,
        inv: &Inventory,
        plan: &Plan,
        passed: &std::collections::HashSet<usize>,
    ) -> Gates {
        let cluster_of =
            |c: &crate::model::Container| c.labels.get(&pb.cluster_label).unwrap_or("").to_string();
        let replset = |c: &crate::model::Container| {
            pb.replset_label
                .as_deref()
                .and_then(|l| c.labels.get(l))
                .map(str::to_string)
        };
        let mut sets: HashMap<String, BTreeSet<String>> = HashMap::new();
        for c in &inv.containers {
            if let Some(rs) = replset(c) {
                sets.entry(cluster_of(c)).or_default().insert(rs);
            }
        }
        let roles: Vec<Arc<HealthCheck>> = pb
            .roles
            .iter()
            .map(|r| Arc::new(r.health.clone()))
            .collect();
        let mut per_cluster = HashMap::new();
        let mut pending: HashMap<String, usize> = HashMap::new();
        for w in &plan.waves {
            for &ci in &w.containers {
                let c = &inv.containers[ci as usize];
                let cluster = cluster_of(c);
                if replset(c).is_some() && !passed.contains(&w.index) {
                    *pending.entry(cluster.clone()).or_default() += 1;
                }
                if let HealthKind::Mongos {
                    port, stuck_after, ..
                } = &pb.roles[w.role].health.kind
                {
                    per_cluster
                        .entry((w.role, cluster.clone()))
                        .or_insert_with(|| {
                            let mut check = pb.roles[w.role].health.clone();
                            check.kind = HealthKind::Mongos {
                                port: *port,
                                stuck_after: *stuck_after,
                                sets: sets
                                    .get(&cluster)
                                    .map(|s| s.iter().cloned().collect())
                                    .unwrap_or_default(),
                            };
                            Arc::new(check)
                        });
                }
            }
        }
        Gates {
            per_cluster,
            roles,
            cluster_label: pb.cluster_label.clone(),
            replset_label: pb.replset_label.clone(),
            pending: Mutex::new(pending),
            changed: tokio::sync::Notify::new(),
        }
    }

    fn cluster(&self, c: &crate::model::Container) -> String {
        c.labels.get(&self.cluster_label).unwrap_or("").to_string()
    }

    /// The check `c` (of `role`) is gated on.
    pub(crate) fn check(&self, role: usize, c: &crate::model::Container) -> Arc<HealthCheck> {
        if !self.per_cluster.is_empty() {
            if let Some(check) = self.per_cluster.get(&(role, self.cluster(c))) {
                return check.clone();
            }
        }
        self.roles[role].clone()
    }

    fn is_member(&self, c: &crate::model::Container) -> bool {
        self.replset_label
            .as_deref()
            .is_some_and(|l| c.labels.get(l).is_some())
    }

    /// `c` passed its gate: one member fewer to wait for.
    pub(crate) fn healthy(&self, c: &crate::model::Container) {
        if !self.is_member(c) {
            return;
        }
        let mut pending = self.pending.lock().unwrap();
        if let Some(n) = pending.get_mut(&self.cluster(c)) {
            *n = n.saturating_sub(1);
        }
        drop(pending);
        self.changed.notify_waiters();
    }

    fn members_pending(&self, cluster: &str) -> usize {
        self.pending
            .lock()
            .unwrap()
            .get(cluster)
            .copied()
            .unwrap_or(0)
    }

    /// Waits until every replica-set member of `c`'s cluster in this run
    /// has passed its gate, `stop()` says to give up, or `bound` passes (a
    /// member that fails must not hold its routers forever). Returns the
    /// members still pending. A member itself does not wait: it is one of
    /// those its routers wait for.
    pub(crate) async fn members_healthy(
        &self,
        c: &crate::model::Container,
        bound: Duration,
        stop: impl Fn() -> bool,
    ) -> usize {
        if self.is_member(c) {
            return 0;
        }
        let cluster = self.cluster(c);
        let until = tokio::time::Instant::now() + bound;
        loop {
            let changed = self.changed.notified();
            let left = self.members_pending(&cluster);
            if left == 0 || stop() || tokio::time::Instant::now() >= until {
                return left;
            }
            let _ = tokio::time::timeout(Duration::from_millis(500), changed).await;
        }
    }
}
