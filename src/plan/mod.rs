//! The planner: pure functions from an [`Inventory`] and a [`Playbook`] to a
//! [`Plan`], a DAG of waves. Roles are ordered by their dependencies within
//! each group (cluster), so clusters pipeline; each (group, role) stage is
//! cut into sequential waves under the per-host, per-replica-set and
//! wave-size limits, with an optional canary wave first. No I/O, no clock:
//! the same input always gives the same plan.

mod waves;

use crate::config::{Playbook, Unavailable};
use crate::model::Inventory;
use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;
use thiserror::Error;

pub use waves::WaveLimits;

/// A wave: containers of one role in one group restarted together.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Wave {
    /// Its position in [`Plan::waves`].
    pub index: usize,
    /// Index into `Playbook::roles`.
    pub role: usize,
    /// The group (cluster label value; empty when the label is absent).
    pub group: String,
    /// Indexes into `Inventory::containers`.
    pub containers: Vec<u32>,
    /// Waves that must have passed their health gate before this one starts.
    pub after: Vec<usize>,
    /// Startup lookups of its containers, and the queries they send
    /// (lookups × the fleet's queries per lookup).
    pub dns_lookups: u64,
    /// The queries those lookups send the resolver.
    pub dns_queries: u64,
    /// Distinct hosts its containers are on.
    pub hosts: u32,
    /// Estimated duration if the wave ran alone under the DNS budget.
    #[serde(with = "secs")]
    pub estimate: Duration,
    /// Whether it is a canary wave.
    pub canary: bool,
}

/// The whole plan.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The waves, in dependency order (a wave's `after` come before it).
    pub waves: Vec<Wave>,
    /// Containers in the plan (matched by a role).
    pub containers: usize,
    /// Inventory containers that match no role (left alone).
    pub unmatched: Vec<u32>,
    /// Containers a role matches that the plan leaves alone (a run that
    /// restarts only what is broken: [`Plan::build_only`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<u32>,
    /// Roles that matched no container (a warning, unless none matched).
    pub empty_roles: Vec<String>,
    /// Startup lookups of every container in the plan.
    pub dns_lookups: u64,
    /// The queries those lookups send the resolver.
    pub dns_queries: u64,
    /// The longest chain of wave estimates through the DAG, the canary's soak included.
    #[serde(with = "secs")]
    pub critical_path: Duration,
    /// No schedule can be faster: one restart, all lookups at the DNS budget, and the shortest ready estimate.
    #[serde(with = "secs")]
    pub dns_bound: Duration,
    /// Estimated total: the longer of the critical path and the DNS bound.
    #[serde(with = "secs")]
    pub estimate: Duration,
    /// Role index of every container in the inventory (`None` = unmatched).
    #[serde(skip)]
    pub role_of: Vec<Option<u16>>,
}

/// Why no plan can be made.
#[derive(Debug, Error, PartialEq)]
pub enum PlanError {
    /// A container matches more than one role.
    #[error("container {container:?} on host {host:?} matches roles {roles:?}: make the role selectors exclusive")]
    AmbiguousRole {
        /// The container's name.
        container: String,
        /// Its host's name.
        host: String,
        /// The roles it matches.
        roles: Vec<String>,
    },
    /// No container matches any role.
    #[error("no container matches any role of playbook {playbook:?} ({inventory} containers inspected): check the roles' selectors and [discovery] labels")]
    NothingMatched {
        /// The playbook's name.
        playbook: String,
        /// Containers inspected.
        inventory: usize,
    },
}

impl Plan {
    /// Builds the plan. Errors only when the inventory and playbook cannot
    /// form a plan at all (ambiguous roles, nothing matched).
    pub fn build(inv: &Inventory, pb: &Playbook) -> Result<Plan, PlanError> {
        Plan::build_only(inv, pb, None)
    }

    /// Builds the plan of the containers `only` marks (by inventory index;
    /// `None`: every one a role matches), in the same dependency order,
    /// waves and budget as a whole plan; the others matched are
    /// [`Plan::left_out`]. Every container keeps its role (a router's
    /// gate still names every replica set of its cluster).
    pub fn build_only(
        inv: &Inventory,
        pb: &Playbook,
        only: Option<&[bool]>,
    ) -> Result<Plan, PlanError> {
        let role_of = assign_roles(inv, pb)?;
        let matched = role_of.iter().filter(|r| r.is_some()).count();
        if matched == 0 {
            return Err(PlanError::NothingMatched {
                playbook: pb.name.clone(),
                inventory: inv.containers.len(),
            });
        }
        let (host_of, rs_of) = intern(inv, pb);

        // Stages: (group, role) -> containers, in deterministic order.
        let mut groups: HashMap<&str, Vec<Vec<u32>>> = HashMap::new();
        let kept = |i: usize| only.is_none_or(|o| o.get(i).copied().unwrap_or(false));
        let mut left_out = Vec::new();
        for (i, role) in role_of.iter().enumerate() {
            if role.is_some() && !kept(i) {
                left_out.push(i as u32);
                continue;
            }
            if let Some(r) = role {
                let g = inv.containers[i]
                    .labels
                    .get(&pb.cluster_label)
                    .unwrap_or("");
                groups
                    .entry(g)
                    .or_insert_with(|| vec![Vec::new(); pb.roles.len()])[*r as usize]
                    .push(i as u32);
            }
        }
        let mut group_names: Vec<&str> = groups.keys().copied().collect();
        group_names.sort_unstable();

        let limits = WaveLimits {
            max_per_host: pb.limits.max_per_host,
            max_per_replset: match pb.limits.max_unavailable_per_replset {
                Unavailable::Count(n) => n,
                Unavailable::All => u32::MAX,
            },
            max_wave_size: pb.limits.max_wave_size,
        };
        let budget = pb.dns.budget_qps();
        let mut builder = PlanBuilder {
            inv,
            pb,
            waves: Vec::new(),
            budget,
        };

        let canary_wave = match &pb.canary {
            Some(canary) => canary_waves(
                &mut builder,
                canary.containers as usize,
                &mut groups,
                &group_names,
                (&host_of, &rs_of, &limits),
            ),
            None => None,
        };

        for g in &group_names {
            let stages = groups.get_mut(g).unwrap();
            // Last wave of each role in this group (or what it waited for,
            // when the role has no containers here).
            let mut done_marker: Vec<Vec<usize>> = vec![Vec::new(); pb.roles.len()];
            for (r, role) in pb.roles.iter().enumerate() {
                let mut after: Vec<usize> = role
                    .after
                    .iter()
                    .flat_map(|&d| done_marker[d].iter().copied())
                    .collect();
                if role.after.is_empty() {
                    after.extend(canary_wave);
                }
                after.sort_unstable();
                after.dedup();
                let stage = &mut stages[r];
                if stage.is_empty() {
                    done_marker[r] = after;
                    continue;
                }
                sort_stage(stage, inv, &rs_of);
                for w in waves::cut(stage, &host_of, &rs_of, &limits) {
                    let idx = builder.push(r, g, w, std::mem::take(&mut after), false);
                    after = vec![idx];
                }
                done_marker[r] = after;
            }
        }

        Ok(summarize(
            builder.waves,
            pb,
            budget,
            role_of,
            matched,
            left_out,
        ))
    }
}

struct PlanBuilder<'a> {
    inv: &'a Inventory,
    pb: &'a Playbook,
    waves: Vec<Wave>,
    budget: f64,
}

impl PlanBuilder<'_> {
    fn push(
        &mut self,
        role: usize,
        group: &str,
        containers: Vec<u32>,
        after: Vec<usize>,
        canary: bool,
    ) -> usize {
        let r = &self.pb.roles[role];
        let dns_lookups = containers.len() as u64 * r.startup_lookups as u64;
        let dns_queries = containers.len() as u64 * self.pb.restart_queries(role) as u64;
        let mut hosts: Vec<&str> = containers
            .iter()
            .map(|&c| self.inv.containers[c as usize].host.as_str())
            .collect();
        hosts.sort_unstable();
        hosts.dedup();
        let estimate = self.pb.estimates.restart
            + Duration::from_secs_f64(dns_queries as f64 / self.budget)
            + r.ready_estimate;
        let index = self.waves.len();
        self.waves.push(Wave {
            index,
            role,
            group: group.to_string(),
            containers,
            after,
            dns_lookups,
            dns_queries,
            hosts: hosts.len() as u32,
            estimate,
            canary,
        });
        index
    }
}

/// Containers of a stage in a stable order: replica set, then its
/// primary last (MongoDB's rolling order: when members go one at a time,
/// the primary is restarted after its secondaries), then name, then host.
/// Members of a replica set come together, so whole sets fit waves.
fn sort_stage(stage: &mut [u32], inv: &Inventory, rs_of: &[Option<u32>]) {
    stage.sort_unstable_by(|&a, &b| {
        let (ca, cb) = (&inv.containers[a as usize], &inv.containers[b as usize]);
        rs_of[a as usize]
            .cmp(&rs_of[b as usize])
            .then_with(|| ca.primary.cmp(&cb.primary))
            .then_with(|| ca.name.cmp(&cb.name))
            .then_with(|| ca.host.cmp(&cb.host))
    });
}

/// The role of every container: the one role whose selector (plus the
/// discovery labels) it carries.
fn assign_roles(inv: &Inventory, pb: &Playbook) -> Result<Vec<Option<u16>>, PlanError> {
    let mut out = Vec::with_capacity(inv.containers.len());
    for c in &inv.containers {
        if !pb
            .discovery
            .labels
            .iter()
            .all(|(k, v)| c.labels.get(k) == Some(v.as_str()))
        {
            out.push(None);
            continue;
        }
        let mut found: Option<u16> = None;
        for (r, role) in pb.roles.iter().enumerate() {
            if role
                .selector
                .iter()
                .all(|(k, v)| c.labels.get(k) == Some(v.as_str()))
            {
                if let Some(prev) = found {
                    return Err(PlanError::AmbiguousRole {
                        container: c.name.clone(),
                        host: c.host.clone(),
                        roles: vec![pb.roles[prev as usize].name.clone(), role.name.clone()],
                    });
                }
                found = Some(r as u16);
            }
        }
        out.push(found);
    }
    Ok(out)
}

/// The group of a set of containers: theirs if they share one, else `*`.
fn common_group(containers: &[u32], inv: &Inventory, label: &str) -> String {
    let g = |c: &u32| inv.containers[*c as usize].labels.get(label).unwrap_or("");
    let first = g(&containers[0]);
    if containers.iter().all(|c| g(c) == first) {
        first.to_string()
    } else {
        "*".to_string()
    }
}

/// Longest path through the wave DAG (waves are in topological order), with
/// the canary's soak time added after the last canary wave.
fn critical_path(waves: &[Wave], pb: &Playbook) -> Duration {
    let soak = pb.canary.as_ref().map(|c| c.soak).unwrap_or_default();
    let last_canary = waves.iter().filter(|w| w.canary).map(|w| w.index).max();
    let mut finish: Vec<Duration> = Vec::with_capacity(waves.len());
    for w in waves {
        let start = w.after.iter().map(|&a| finish[a]).max().unwrap_or_default();
        let extra = if Some(w.index) == last_canary {
            soak
        } else {
            Duration::ZERO
        };
        finish.push(start + w.estimate + extra);
    }
    finish.into_iter().max().unwrap_or_default()
}

mod secs {
    use serde::Serializer;
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
    }
}

/// Hosts and replica sets interned, so that limits count with integers:
/// each container's host and replica set (when the playbook names its label).
fn intern(inv: &Inventory, pb: &Playbook) -> (Vec<u32>, Vec<Option<u32>>) {
    let mut hosts: HashMap<&str, u32> = HashMap::new();
    let mut replsets: HashMap<&str, u32> = HashMap::new();
    let mut host_of = Vec::with_capacity(inv.containers.len());
    let mut rs_of = Vec::with_capacity(inv.containers.len());
    for c in &inv.containers {
        let n = hosts.len() as u32;
        host_of.push(*hosts.entry(c.host.as_str()).or_insert(n));
        rs_of.push(
            pb.replset_label
                .as_deref()
                .and_then(|k| c.labels.get(k))
                .map(|rs| {
                    let n = replsets.len() as u32;
                    *replsets.entry(rs).or_insert(n)
                }),
        );
    }
    (host_of, rs_of)
}

/// The canary: `n` containers, one from the first root stage of each group
/// in turn (so it spans clusters and fits one wave), taken out of their
/// stages; returns the last canary wave, which every root stage waits for.
fn canary_waves<'g>(
    builder: &mut PlanBuilder<'_>,
    n: usize,
    groups: &mut HashMap<&'g str, Vec<Vec<u32>>>,
    group_names: &[&'g str],
    (host_of, rs_of, limits): (&[u32], &[Option<u32>], &WaveLimits),
) -> Option<usize> {
    let (inv, pb) = (builder.inv, builder.pb);
    let mut canary_wave = None;
    let root = |g: &str, groups: &HashMap<&str, Vec<Vec<u32>>>| {
        pb.roles
            .iter()
            .enumerate()
            .position(|(r, role)| role.after.is_empty() && !groups[g][r].is_empty())
    };
    for g in group_names {
        for stage in groups.get_mut(g).unwrap().iter_mut() {
            sort_stage(stage, inv, rs_of);
        }
    }
    let mut picked: Vec<(usize, u32)> = Vec::new();
    while picked.len() < n {
        let before = picked.len();
        for g in group_names {
            if picked.len() == n {
                break;
            }
            if let Some(r) = root(g, groups) {
                picked.push((r, groups.get_mut(g).unwrap()[r].remove(0)));
            }
        }
        if picked.len() == before {
            break;
        }
    }
    // One canary wave per role among the picked (usually one).
    for (r, _) in pb.roles.iter().enumerate() {
        let mine: Vec<u32> = picked.iter().filter(|p| p.0 == r).map(|p| p.1).collect();
        if mine.is_empty() {
            continue;
        }
        let group = common_group(&mine, inv, &pb.cluster_label);
        for w in waves::cut(&mine, host_of, rs_of, limits) {
            canary_wave = Some(builder.push(r, &group, w, canary_wave.into_iter().collect(), true));
        }
    }
    canary_wave
}

/// The plan's figures from its waves: DNS lookups and queries, the
/// critical path, the DNS bound and the estimate, the roles left empty.
fn summarize(
    waves: Vec<Wave>,
    pb: &Playbook,
    budget: f64,
    role_of: Vec<Option<u16>>,
    matched: usize,
    left_out: Vec<u32>,
) -> Plan {
    let dns_lookups: u64 = waves.iter().map(|w| w.dns_lookups).sum();
    let dns_queries: u64 = waves.iter().map(|w| w.dns_queries).sum();
    let critical_path = critical_path(&waves, pb);
    let min_ready = waves
        .iter()
        .map(|w| pb.roles[w.role].ready_estimate)
        .min()
        .unwrap_or_default();
    let dns_bound =
        pb.estimates.restart + Duration::from_secs_f64(dns_queries as f64 / budget) + min_ready;
    let mut empty_roles: Vec<String> = pb.roles.iter().map(|r| r.name.clone()).collect();
    empty_roles.retain(|name| !waves.iter().any(|w| pb.roles[w.role].name == *name));
    Plan {
        containers: matched - left_out.len(),
        left_out,
        unmatched: (0..role_of.len() as u32)
            .filter(|&i| role_of[i as usize].is_none())
            .collect(),
        empty_roles,
        dns_lookups,
        dns_queries,
        critical_path,
        dns_bound,
        estimate: critical_path.max(dns_bound),
        waves,
        role_of,
    }
}
