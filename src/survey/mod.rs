//! Triage before treatment (issue 25): every container of a plan asked its
//! own health gate once — the same check a run's wave would wait for —
//! without restarting anything, so a DBA knows how much of the fleet is
//! broken before the first restart. Bounded like a run's gates: at most
//! `limits.connections_per_host` questions in flight per host, each within
//! its check's timeout (doubled once: a slow host is slow, not broken).
//!
//! A verdict per container: `ok` (it passes its gate), `broken` (running
//! but failing it, with the probe's reason: a router that cannot reach a
//! replica set, a member that is not PRIMARY or SECONDARY or lags), `down`
//! (not running), `unknown` (its host or the container did not answer).
//!
//! rekindle's own lookups are paced too: a check that dials a container by
//! its DNS name (`tcp`, `mongo`, `mongos`) waits for a slot under the
//! playbook's DNS budget (`capacity_qps × headroom`) before it asks — a
//! survey of 100,000 named containers must not be the burst that floods the
//! resolver it is meant to spare. `docker` and `exec` checks look nothing up.

use crate::config::{HealthKind, Playbook};
use crate::engine::GateChecks;
use crate::model::{Health, Inventory};
use crate::plan::Plan;
use crate::probe::{HealthProbe, Probed};
use crate::runtime::RuntimeError;
use futures_util::StreamExt;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tokio::sync::Semaphore;

pub mod select;

/// What the survey found of one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// It passes its gate.
    Ok,
    /// Running, but failing its gate.
    Broken,
    /// Not running.
    Down,
    /// Its host, or the container, did not answer.
    Unknown,
}

impl Verdict {
    /// Its name, as the JSON says it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Broken => "broken",
            Verdict::Down => "down",
            Verdict::Unknown => "unknown",
        }
    }
}

/// One container's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Its index in the inventory.
    #[serde(skip)]
    pub index: u32,
    /// The container's name.
    pub container: String,
    /// Its Docker host.
    pub host: String,
    /// Its cluster (the playbook's cluster label).
    pub cluster: String,
    /// Its role.
    pub role: String,
    /// Its replica set (the playbook's replset label), if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replset: Option<String>,
    /// It passes its gate as its replica set's primary (only a `mongo`
    /// check can tell).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub primary: bool,
    /// What the survey found.
    pub verdict: Verdict,
    /// Why, unless it is ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Its Docker host did not answer (nothing can restart it now).
    #[serde(skip)]
    pub host_silent: bool,
}

/// Every container's verdict, in the plan's order.
#[derive(Debug, Clone, Serialize)]
pub struct Survey {
    /// The playbook surveyed.
    pub playbook: String,
    /// One finding per container of the plan.
    pub findings: Vec<Finding>,
    /// Replica sets with no primary, as far as their gates can tell
    /// ([`select::without_primary`]).
    pub sets_without_primary: Vec<String>,
    /// Docker hosts that did not answer discovery: their containers could
    /// not even be listed, so none of them is in `findings`.
    pub hosts_silent: Vec<SilentHost>,
}

/// A Docker host that did not answer.
#[derive(Debug, Clone, Serialize)]
pub struct SilentHost {
    /// Its name.
    pub host: String,
    /// What asking it said.
    pub error: String,
}

impl Survey {
    /// How many containers got `v`.
    pub fn count(&self, v: &Verdict) -> usize {
        self.findings.iter().filter(|f| &f.verdict == v).count()
    }

    /// Whether anything is not ok (the command's exit code says so).
    pub fn anything_wrong(&self) -> bool {
        self.findings.iter().any(|f| f.verdict != Verdict::Ok)
    }

    /// Per (cluster, role): ok, broken, down, unknown.
    pub fn by_cluster(&self) -> BTreeMap<(String, String), [usize; 4]> {
        let mut m: BTreeMap<(String, String), [usize; 4]> = BTreeMap::new();
        for f in &self.findings {
            let i = match f.verdict {
                Verdict::Ok => 0,
                Verdict::Broken => 1,
                Verdict::Down => 2,
                Verdict::Unknown => 3,
            };
            m.entry((f.cluster.clone(), f.role.clone())).or_default()[i] += 1;
        }
        m
    }
}

/// Slots at a fixed rate: each caller waits for the next one.
struct Pace {
    interval: std::time::Duration,
    next: std::sync::Mutex<Option<tokio::time::Instant>>,
}

impl Pace {
    fn new(per_second: f64) -> Pace {
        Pace {
            interval: std::time::Duration::from_secs_f64(1.0 / per_second.max(1.0)),
            next: std::sync::Mutex::new(None),
        }
    }

    async fn wait(&self) {
        let at = {
            let mut next = self.next.lock().unwrap();
            let now = tokio::time::Instant::now();
            let at = next.map_or(now, |n| n.max(now));
            *next = Some(at + self.interval);
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

/// Asks each container of `plan` its gate once, through `probe`.
pub async fn survey<P: HealthProbe>(
    pb: &Playbook,
    inv: &Inventory,
    plan: &Plan,
    probe: &P,
) -> Survey {
    let checks = GateChecks::new(pb, inv, plan);
    let unreachable: HashMap<&str, Option<&str>> = inv
        .unreachable_hosts()
        .map(|h| (h.name.as_str(), h.error.as_deref()))
        .collect();
    let asker = Asker {
        pb,
        inv,
        checks: &checks,
        unreachable: &unreachable,
        pace: &Pace::new(pb.dns.budget_qps()),
        probe,
    };
    let asker = &asker;
    let mut findings: Vec<(usize, Finding)> = futures_util::stream::iter(
        asks(pb, inv, plan).into_iter().enumerate(),
    )
    .map(|(order, (ci, role, slot))| async move { (order, asker.ask(ci, role, &slot).await) })
    .buffer_unordered(256)
    .collect()
    .await;
    findings.sort_by_key(|(order, _)| *order);
    let findings: Vec<Finding> = findings.into_iter().map(|(_, f)| f).collect();
    let listed: std::collections::HashSet<&str> =
        inv.containers.iter().map(|c| c.host.as_str()).collect();
    Survey {
        playbook: pb.name.clone(),
        sets_without_primary: select::without_primary(pb, &findings).into_iter().collect(),
        findings,
        // Hosts whose containers are listed (an inventory file) have them
        // as `unknown` findings; the others are named here.
        hosts_silent: inv
            .unreachable_hosts()
            .filter(|h| !listed.contains(h.name.as_str()))
            .map(|h| SilentHost {
                host: h.name.clone(),
                error: h.error.clone().unwrap_or_else(|| "no answer".into()),
            })
            .collect(),
    }
}

/// Each container of `plan` to ask, in the plan's order: its index, its
/// role, and its host's slot (at most `limits.connections_per_host`
/// questions in flight per host).
fn asks(pb: &Playbook, inv: &Inventory, plan: &Plan) -> Vec<(usize, usize, Arc<Semaphore>)> {
    let per_host = pb.limits.connections_per_host.max(1) as usize;
    let mut slots: HashMap<&str, Arc<Semaphore>> = HashMap::new();
    let mut asks = Vec::new();
    for w in &plan.waves {
        for &ci in &w.containers {
            let c = &inv.containers[ci as usize];
            let slot = slots
                .entry(c.host.as_str())
                .or_insert_with(|| Arc::new(Semaphore::new(per_host)))
                .clone();
            asks.push((ci as usize, w.role, slot));
        }
    }
    asks
}

/// What a survey asks each container with: the gates' checks, the hosts
/// that did not answer (with their errors), the pace of rekindle's own
/// lookups, and the probe.
struct Asker<'a, P> {
    pb: &'a Playbook,
    inv: &'a Inventory,
    checks: &'a GateChecks,
    unreachable: &'a HashMap<&'a str, Option<&'a str>>,
    pace: &'a Pace,
    probe: &'a P,
}

impl<P: HealthProbe> Asker<'_, P> {
    /// Container `ci` (of role `role`) asked its gate once, under its
    /// host's `slot`: `unknown` without asking when its host did not
    /// answer; a check that dials a DNS name waits for the pace first.
    async fn ask(&self, ci: usize, role: usize, slot: &Semaphore) -> Finding {
        let c = &self.inv.containers[ci];
        if let Some(error) = self.unreachable.get(c.host.as_str()) {
            let why = format!(
                "host {} did not answer: {}",
                c.host,
                error.unwrap_or("no answer")
            );
            let mut f = self.finding(ci, role, Verdict::Unknown, Some(why));
            f.host_silent = true;
            return f;
        }
        let check = self.checks.check(role, c);
        let looks_up = c.dns_name.is_some()
            && matches!(
                check.kind,
                HealthKind::Tcp { .. } | HealthKind::Mongo { .. } | HealthKind::Mongos { .. }
            );
        if looks_up {
            self.pace.wait().await;
        }
        let _slot = slot.acquire().await.expect("never closed");
        let probed = self.probe_patiently(c, &check).await;
        let primary = matches!(&probed, Ok(Ok(p)) if p.primary);
        let (verdict, reason) = verdict_of(probed);
        let mut f = self.finding(ci, role, verdict, reason);
        f.primary = primary;
        f
    }

    /// One probe of `c` within its check's timeout, and once more within
    /// twice that when it did not answer (a slow host is slow, not
    /// broken). `Err`: the last time limit, passed without an answer.
    async fn probe_patiently(
        &self,
        c: &crate::model::Container,
        check: &crate::config::HealthCheck,
    ) -> Result<Result<Probed, RuntimeError>, std::time::Duration> {
        let mut limit = check.timeout;
        let mut asked = 0;
        loop {
            asked += 1;
            match tokio::time::timeout(limit, self.probe.check(c, check)).await {
                Ok(r) => return Ok(r),
                Err(_) if asked < 2 => limit *= 2,
                Err(_) => return Err(limit),
            }
        }
    }

    /// The finding for container `ci` of role `role`, with its cluster and
    /// replica set from its labels; not primary, its host not silent.
    fn finding(&self, ci: usize, role: usize, verdict: Verdict, reason: Option<String>) -> Finding {
        let (pb, c) = (self.pb, &self.inv.containers[ci]);
        Finding {
            index: ci as u32,
            container: c.name.clone(),
            host: c.host.clone(),
            cluster: c.labels.get(&pb.cluster_label).unwrap_or("").to_string(),
            role: pb.roles[role].name.clone(),
            replset: pb
                .replset_label
                .as_deref()
                .and_then(|k| c.labels.get(k))
                .map(str::to_string),
            primary: false,
            verdict,
            reason,
            host_silent: false,
        }
    }
}

/// A probe's answer as a verdict and its reason: healthy is `ok`, not
/// running `down`, unhealthy or not ready yet `broken` (with the probe's
/// note), and no answer or an error `unknown`.
fn verdict_of(
    probed: Result<Result<Probed, RuntimeError>, std::time::Duration>,
) -> (Verdict, Option<String>) {
    match probed {
        Ok(Ok(p)) => match p.health {
            Health::Healthy => (Verdict::Ok, None),
            Health::Down => (Verdict::Down, Some("not running".to_string())),
            Health::Unhealthy => (
                Verdict::Broken,
                Some(p.note.unwrap_or_else(|| "fails its health check".into())),
            ),
            Health::Starting => (
                Verdict::Broken,
                Some(p.note.unwrap_or_else(|| "running, not ready".into())),
            ),
        },
        Ok(Err(e)) => (Verdict::Unknown, Some(e.to_string())),
        Err(limit) => (
            Verdict::Unknown,
            Some(format!("no answer within {}s", limit.as_secs_f64())),
        ),
    }
}
