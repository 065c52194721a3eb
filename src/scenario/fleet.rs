//! Deterministic fleet generation from a scenario's seed: names, replica
//! sets, and placement (members of a replica set on distinct hosts, all
//! containers spread evenly over the hosts).

use super::{Broken, Scenario, SimRole};
use crate::model::{Container, ContainerState, HostReport, Inventory, Labels};
use crate::rng::SplitMix64;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// What the simulator needs to know of each container, beside the
/// inventory record at the same index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimContainer {
    /// Its process kind.
    pub role: SimRole,
    /// Index of its cluster in the fleet.
    pub cluster: u32,
    /// Index of its host (into [`Fleet::host_names`]).
    pub host: u32,
}

/// A generated fleet: every container (also those on down hosts) with its
/// simulation facts at the same index, and how each host answers.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// Every container, also those on hosts that do not answer.
    pub all: Vec<Container>,
    /// Simulation facts, at the same index as `all`.
    pub sim: Vec<SimContainer>,
    /// Host names, by host index.
    pub host_names: Vec<String>,
    /// Whether each host (by index) does not answer the Docker API.
    pub down: Vec<bool>,
    /// How each host answers discovery.
    pub hosts: Vec<HostReport>,
    /// Whether each container (same index as `all`) starts broken (the
    /// scenario's `[broken]`; without it, all do).
    pub broken: Vec<bool>,
}

impl Fleet {
    /// What discovery would return: the containers of hosts that answer.
    pub fn inventory(&self) -> Inventory {
        Inventory {
            containers: self
                .all
                .iter()
                .zip(&self.sim)
                .filter(|(_, s)| !self.down[s.host as usize])
                .map(|(c, _)| c.clone())
                .collect(),
            hosts: self.hosts.clone(),
        }
    }

    /// Like [`Fleet::inventory`], without copying the containers.
    pub fn into_inventory(self) -> Inventory {
        let down = self.down;
        Inventory {
            containers: self
                .all
                .into_iter()
                .zip(self.sim)
                .filter(|(_, s)| !down[s.host as usize])
                .map(|(c, _)| c)
                .collect(),
            hosts: self.hosts,
        }
    }
}

struct Placer {
    heap: BinaryHeap<Reverse<(u32, u64, u32)>>,
    rng: SplitMix64,
}

impl Placer {
    fn new(hosts: u32, rng: SplitMix64) -> Self {
        let mut p = Placer {
            heap: BinaryHeap::new(),
            rng,
        };
        for h in 0..hosts {
            let t = p.rng.next_u64();
            p.heap.push(Reverse((0, t, h)));
        }
        p
    }

    /// `n` distinct hosts, least loaded first (ties broken by the seed).
    fn take(&mut self, n: usize) -> Vec<u32> {
        let picked: Vec<(u32, u32)> = (0..n)
            .map(|_| {
                let Reverse((load, _, h)) =
                    self.heap.pop().expect("members <= hosts was validated");
                (load, h)
            })
            .collect();
        for &(load, h) in &picked {
            let t = self.rng.next_u64();
            self.heap.push(Reverse((load + 1, t, h)));
        }
        picked.into_iter().map(|(_, h)| h).collect()
    }
}

impl Scenario {
    /// Generates the fleet. Same scenario, same fleet, byte for byte.
    pub fn fleet(&self) -> Fleet {
        let mut rng = SplitMix64::new(self.seed);
        let mut placer = Placer::new(self.hosts, SplitMix64::new(rng.next_u64()));
        let hw = digits(self.hosts as u64 - 1);
        let host_names: Vec<String> = (0..self.hosts).map(|h| format!("h{h:0hw$}")).collect();
        let total_clusters: u64 = self.clusters.iter().map(|c| c.count as u64).sum();
        let mut all = Vec::with_capacity(self.total_containers() as usize);
        let mut sim = Vec::with_capacity(all.capacity());
        let mut k = 0u32;
        for shape in &self.clusters {
            for _ in 0..shape.count {
                let cluster = cluster_name(k as u64, total_clusters);
                let mut add = |name: String, role: SimRole, replset: Option<String>, host: u32| {
                    // Member 0 of each replica set is its primary.
                    let primary = replset.is_some() && name.ends_with("-0");
                    let mut labels = vec![
                        (self.labels.role.clone(), role.label().to_string()),
                        (self.labels.cluster.clone(), cluster.clone()),
                    ];
                    if let Some(rs) = replset {
                        labels.push((self.labels.replset.clone(), rs));
                    }
                    let port = match role {
                        SimRole::Configsvr => 27019,
                        SimRole::Shard => 27018,
                        SimRole::Router => 27017,
                    };
                    all.push(Container {
                        id: format!("{:016x}", rng.next_u64()),
                        dns_name: Some(format!("{name}.{}", self.domain)),
                        name,
                        host: host_names[host as usize].clone(),
                        labels: labels.into_iter().collect::<Labels>(),
                        ports: vec![port],
                        state: ContainerState::Running,
                        primary,
                    });
                    sim.push(SimContainer {
                        role,
                        cluster: k,
                        host,
                    });
                };
                let rs = format!("{cluster}-cfg");
                for (i, h) in placer
                    .take(shape.config_members as usize)
                    .into_iter()
                    .enumerate()
                {
                    add(
                        format!("{cluster}-cfg-{i}"),
                        SimRole::Configsvr,
                        Some(rs.clone()),
                        h,
                    );
                }
                for s in 0..shape.shards {
                    let rs = format!("{cluster}-rs{s:02}");
                    for (i, h) in placer
                        .take(shape.members_per_shard as usize)
                        .into_iter()
                        .enumerate()
                    {
                        add(format!("{rs}-{i}"), SimRole::Shard, Some(rs.clone()), h);
                    }
                }
                for i in 0..shape.routers {
                    let h = placer.take(1)[0];
                    add(format!("{cluster}-mongos-{i}"), SimRole::Router, None, h);
                }
                k += 1;
            }
        }
        // Down hosts: drawn from the seed after placement.
        let mut down = vec![false; self.hosts as usize];
        let mut left = self.down_hosts;
        while left > 0 {
            let h = rng.below(self.hosts as u64) as usize;
            if !down[h] {
                down[h] = true;
                left -= 1;
            }
        }
        let mut per_host = vec![0usize; self.hosts as usize];
        for s in &sim {
            per_host[s.host as usize] += 1;
        }
        let hosts = host_names
            .iter()
            .enumerate()
            .map(|(h, name)| HostReport {
                name: name.clone(),
                reachable: !down[h],
                error: down[h]
                    .then(|| "simulated: host does not answer the Docker API".to_string()),
                containers: if down[h] { 0 } else { per_host[h] },
            })
            .collect();
        let broken = match &self.broken {
            None => vec![true; all.len()],
            Some(b) => pick_broken(b, &sim, total_clusters, self.seed),
        };
        Fleet {
            all,
            sim,
            host_names,
            down,
            hosts,
            broken,
        }
    }
}

/// The name of cluster `k` of `total` (`c000`, `c001`…; wider when more).
pub(crate) fn cluster_name(k: u64, total: u64) -> String {
    let w = digits(total.saturating_sub(1)).max(3);
    format!("c{k:0w$}")
}

/// Which containers start broken: in each listed cluster, `round(share ×
/// its containers)`; elsewhere, per role, `round(share × that role's
/// containers outside the listed clusters)`; each drawn without
/// replacement from the seed (its own stream: the fleet stays the same).
fn pick_broken(b: &Broken, sim: &[SimContainer], clusters: u64, seed: u64) -> Vec<bool> {
    let mut rng = SplitMix64::new(seed ^ 0xb40c_e4ab_1e5e_ed00);
    let listed: Vec<Option<f64>> = (0..clusters)
        .map(|k| b.clusters.get(&cluster_name(k, clusters)).copied())
        .collect();
    let mut groups: Vec<(f64, Vec<usize>)> = Vec::new();
    for (k, share) in listed.iter().enumerate() {
        if let Some(share) = share {
            let members = (0..sim.len()).filter(|&i| sim[i].cluster as usize == k);
            groups.push((*share, members.collect()));
        }
    }
    for r in SimRole::ALL {
        let share = b.roles[r as usize].unwrap_or(b.share);
        let members = (0..sim.len())
            .filter(|&i| sim[i].role == r && listed[sim[i].cluster as usize].is_none());
        groups.push((share, members.collect()));
    }
    let mut broken = vec![false; sim.len()];
    for (share, mut members) in groups {
        let n = (share * members.len() as f64).round() as usize;
        // A partial Fisher–Yates: the first n are the broken ones.
        for j in 0..n {
            let pick = j + rng.below((members.len() - j) as u64) as usize;
            members.swap(j, pick);
            broken[members[j]] = true;
        }
    }
    broken
}

fn digits(n: u64) -> usize {
    n.to_string().len()
}

#[cfg(test)]
mod tests {
    use crate::scenario::Scenario;
    use std::collections::{HashMap, HashSet};
    use std::path::Path;

    #[test]
    fn placement_is_deterministic_distinct_and_even() {
        let s = Scenario::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/scenarios/smoke.toml"
        )))
        .unwrap();
        let a = s.fleet();
        let b = s.fleet();
        assert_eq!(a.all, b.all);
        assert_eq!(a.all.len(), 22);
        let mut by_rs: HashMap<&str, HashSet<&str>> = HashMap::new();
        for c in &a.all {
            if let Some(rs) = c.labels.get("db.replset") {
                assert!(
                    by_rs.entry(rs).or_default().insert(c.host.as_str()),
                    "two members of {rs} on {}",
                    c.host
                );
            }
        }
        let mut per_host: HashMap<&str, usize> = HashMap::new();
        for c in &a.all {
            *per_host.entry(c.host.as_str()).or_default() += 1;
        }
        let (min, max) = (
            per_host.values().min().unwrap(),
            per_host.values().max().unwrap(),
        );
        assert!(max - min <= 1, "uneven placement: {per_host:?}");
    }

    fn smoke_with(broken: &str) -> Result<Scenario, crate::source::SourceError> {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/scenarios/smoke.toml"
        ))
        .unwrap();
        Scenario::parse(&crate::source::SourceText::new(
            "s.toml",
            format!("{text}\n{broken}\n"),
        ))
    }

    #[test]
    fn broken_shares_are_exact_per_role_and_cluster_and_the_fleet_stays_the_same() {
        use crate::scenario::SimRole;
        let whole = smoke_with("").unwrap().fleet();
        assert!(whole.broken.iter().all(|&b| b), "without [broken], all are");
        // smoke: 2 clusters of 3 config members, 3 shards of 2, 2 routers.
        let s = smoke_with(
            "[broken]\nroles = { router = 0.5, shard = 0.25 }\nclusters = { c001 = 1.0 }",
        )
        .unwrap();
        let f = s.fleet();
        assert_eq!(f.all, whole.all, "[broken] leaves the fleet as it was");
        assert_eq!(f.broken, s.fleet().broken, "drawn from the seed");
        let count = |cluster: u32, role: SimRole| {
            (0..f.all.len())
                .filter(|&i| f.sim[i].cluster == cluster && f.sim[i].role == role && f.broken[i])
                .count()
        };
        // Cluster 1 whole; cluster 0 by the role shares: round(0.5 × 2)
        // routers, round(0.25 × 6) = 2 shard members, no config server.
        assert_eq!(count(1, SimRole::Configsvr), 3);
        assert_eq!(count(1, SimRole::Shard), 6);
        assert_eq!(count(1, SimRole::Router), 2);
        assert_eq!(count(0, SimRole::Router), 1);
        assert_eq!(count(0, SimRole::Shard), 2);
        assert_eq!(count(0, SimRole::Configsvr), 0);
    }

    #[test]
    fn a_bad_broken_section_names_its_field() {
        for (text, field, says) in [
            ("[broken]\nshare = 1.5", "broken.share", "from 0 to 1"),
            (
                "[broken]\nroles = { mongos = 0.1 }",
                "broken.roles.mongos",
                "unknown role",
            ),
            (
                "[broken]\nclusters = { c007 = 0.5 }",
                "broken.clusters.c007",
                "c000 to c001",
            ),
            ("[broken]\nshare = 0.0", "broken", "nothing is broken"),
        ] {
            let e = smoke_with(text).expect_err(text);
            assert_eq!(e.field, field, "{text}: {e}");
            assert!(e.message.contains(says), "{text}: {e}");
        }
    }
}
