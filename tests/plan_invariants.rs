//! The planner's invariants, on the shipped examples at full scale (through
//! the CLI's JSON) and on random fleets and playbooks (proptest):
//! every matched container exactly once; wave indexes in topological order;
//! no wave over the per-host, per-replica-set or size limit; no container in
//! a wave that does not (transitively) wait for every wave holding a
//! dependency role of its own group.

use proptest::prelude::*;
use rekindle::config::{Playbook, Unavailable};
use rekindle::model::{Container, ContainerState, Inventory, Labels};
use rekindle::plan::Plan;
use rekindle::scenario::Scenario;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Command;

/// A wave as the checker sees it (from a `Plan` or from the CLI's JSON).
struct W {
    role: String,
    after: Vec<usize>,
    containers: Vec<usize>,
}

/// Checks every invariant; returns the first violation.
fn check(inv: &Inventory, pb: &Playbook, waves: &[W], matched: &[bool]) -> Result<(), String> {
    let mut seen = vec![0u32; inv.containers.len()];
    for w in waves {
        for &c in &w.containers {
            seen[c] += 1;
        }
    }
    for (i, c) in inv.containers.iter().enumerate() {
        let want = u32::from(matched[i]);
        if seen[i] != want {
            return Err(format!(
                "container {} appears {} times, expected {want}",
                c.name, seen[i]
            ));
        }
    }
    // Topological indexes and transitive ancestors (bitsets).
    let words = waves.len().div_ceil(64);
    let mut anc: Vec<Vec<u64>> = Vec::with_capacity(waves.len());
    for (i, w) in waves.iter().enumerate() {
        let mut bits = vec![0u64; words];
        for &a in &w.after {
            if a >= i {
                return Err(format!(
                    "wave {i} waits for wave {a}: indexes are not a topological order"
                ));
            }
            bits[a / 64] |= 1 << (a % 64);
            for k in 0..words {
                bits[k] |= anc[a][k];
            }
        }
        anc.push(bits);
    }
    let max_rs = match pb.limits.max_unavailable_per_replset {
        Unavailable::Count(n) => n as usize,
        Unavailable::All => usize::MAX,
    };
    let mut wave_of = vec![usize::MAX; inv.containers.len()];
    for (i, w) in waves.iter().enumerate() {
        if w.containers.len() > pb.limits.max_wave_size as usize {
            return Err(format!(
                "wave {i} has {} containers, limit {}",
                w.containers.len(),
                pb.limits.max_wave_size
            ));
        }
        let mut per_host: HashMap<&str, usize> = HashMap::new();
        let mut per_rs: HashMap<&str, usize> = HashMap::new();
        for &c in &w.containers {
            wave_of[c] = i;
            let ct = &inv.containers[c];
            *per_host.entry(ct.host.as_str()).or_default() += 1;
            if let Some(rs) = pb.replset_label.as_deref().and_then(|k| ct.labels.get(k)) {
                *per_rs.entry(rs).or_default() += 1;
            }
        }
        if let Some((h, n)) = per_host
            .iter()
            .find(|(_, &n)| n > pb.limits.max_per_host as usize)
        {
            return Err(format!(
                "wave {i} restarts {n} containers on host {h}, limit {}",
                pb.limits.max_per_host
            ));
        }
        if let Some((rs, n)) = per_rs.iter().find(|(_, &n)| n > max_rs) {
            return Err(format!(
                "wave {i} restarts {n} members of replica set {rs}, limit {max_rs}"
            ));
        }
    }
    // Dependencies within a group.
    let group = |c: usize| {
        inv.containers[c]
            .labels
            .get(&pb.cluster_label)
            .unwrap_or("")
    };
    let mut by_group_role: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
    for (i, w) in waves.iter().enumerate() {
        for &c in &w.containers {
            by_group_role
                .entry((group(c), w.role.as_str()))
                .or_default()
                .push(i);
        }
    }
    for (i, w) in waves.iter().enumerate() {
        let role = pb
            .roles
            .iter()
            .find(|r| r.name == w.role)
            .ok_or("unknown role in plan")?;
        for &c in &w.containers {
            for &d in &role.after {
                for &dw in by_group_role
                    .get(&(group(c), pb.roles[d].name.as_str()))
                    .map(|v| v.as_slice())
                    .unwrap_or(&[])
                {
                    if anc[i][dw / 64] & (1 << (dw % 64)) == 0 {
                        return Err(format!("container {} ({}) in wave {i} does not wait for wave {dw} holding its group's {}", inv.containers[c].name, w.role, pb.roles[d].name));
                    }
                }
            }
        }
    }
    Ok(())
}

fn from_plan(plan: &Plan, pb: &Playbook) -> (Vec<W>, Vec<bool>) {
    let waves = plan
        .waves
        .iter()
        .map(|w| W {
            role: pb.roles[w.role].name.clone(),
            after: w.after.clone(),
            containers: w.containers.iter().map(|&c| c as usize).collect(),
        })
        .collect();
    (waves, plan.role_of.iter().map(|r| r.is_some()).collect())
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The CLI's JSON for a shipped playbook on braze-us01, checked in full.
fn check_cli(playbook: &str) -> serde_json::Value {
    let scenario = root().join("config/scenarios/braze-us01.toml");
    let pb_path = root().join(playbook);
    let out = Command::new(env!("CARGO_BIN_EXE_rekindle"))
        .args([
            "plan",
            pb_path.to_str().unwrap(),
            "--scenario",
            scenario.to_str().unwrap(),
            "--output",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let inv = Scenario::load(&scenario).unwrap().fleet().into_inventory();
    let pb = Playbook::load(&pb_path).unwrap();
    let index: HashMap<&str, usize> = inv
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    let waves: Vec<W> = doc["waves"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, w)| {
            assert_eq!(w["index"].as_u64(), Some(i as u64));
            assert!(w["dns_lookups"].as_u64().is_some());
            W {
                role: w["role"].as_str().unwrap().to_string(),
                after: w["after"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_u64().unwrap() as usize)
                    .collect(),
                containers: w["containers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| index[n.as_str().unwrap()])
                    .collect(),
            }
        })
        .collect();
    assert_eq!(doc["containers"].as_u64(), Some(22_200));
    check(&inv, &pb, &waves, &vec![true; inv.containers.len()]).unwrap();
    doc
}

#[test]
fn braze_sharded_plan_holds_every_invariant() {
    let doc = check_cli("config/mongo-sharded.toml");
    // Whole replica sets restart together in the recovery playbook, and
    // clusters pipeline: one stage per (cluster, role).
    assert_eq!(doc["waves"].as_array().unwrap().len(), 600);
}

#[test]
fn braze_rolling_plan_holds_every_invariant() {
    let doc = check_cli("config/mongo-rolling.toml");
    let canary: Vec<_> = doc["waves"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["canary"] == true)
        .collect();
    assert_eq!(canary.len(), 1);
    assert_eq!(canary[0]["containers"].as_array().unwrap().len(), 3);
}

#[test]
fn plan_is_deterministic() {
    let s = Scenario::load(&root().join("config/scenarios/smoke.toml")).unwrap();
    let pb = Playbook::load(&root().join("config/mongo-rolling.toml")).unwrap();
    let inv = s.fleet().into_inventory();
    assert_eq!(
        Plan::build(&inv, &pb).unwrap().waves,
        Plan::build(&inv, &pb).unwrap().waves
    );
}

// ---- random fleets and playbooks ----

#[derive(Debug, Clone)]
struct Case {
    roles: usize,
    deps: Vec<Vec<bool>>,
    containers: Vec<(u8, u8, u8, Option<u8>)>, // host, group, role, replset
    max_per_host: u32,
    max_rs: Option<u32>,
    max_wave: u32,
    canary: Option<u32>,
}

fn case() -> impl Strategy<Value = Case> {
    (1usize..5).prop_flat_map(|roles| {
        (
            Just(roles),
            proptest::collection::vec(proptest::collection::vec(any::<bool>(), roles), roles),
            proptest::collection::vec(
                (
                    0u8..8,
                    0u8..4,
                    0u8..(roles as u8 + 1),
                    proptest::option::of(0u8..6),
                ),
                1..250,
            ),
            1u32..6,
            proptest::option::of(1u32..4),
            1u32..60,
            proptest::option::of(1u32..8),
        )
            .prop_map(
                |(roles, deps, containers, max_per_host, max_rs, max_wave, canary)| Case {
                    roles,
                    deps,
                    containers,
                    max_per_host,
                    max_rs,
                    max_wave,
                    canary,
                },
            )
    })
}

fn build_case(c: &Case) -> (Inventory, Playbook) {
    let mut toml = String::from("name = \"random\"\n[groups]\ncluster = \"g\"\nreplset = \"rs\"\n");
    for r in 0..c.roles {
        // Only earlier roles: a DAG by construction.
        let after: Vec<String> = (0..r)
            .filter(|&d| c.deps[r][d])
            .map(|d| format!("\"r{d}\""))
            .collect();
        toml += &format!("[[roles]]\nname = \"r{r}\"\nselector = {{ role = \"r{r}\" }}\nafter = [{}]\nstartup_lookups = {}\n", after.join(","), r * 3);
    }
    let rs = c
        .max_rs
        .map(|n| n.to_string())
        .unwrap_or_else(|| "\"all\"".into());
    toml += &format!(
        "[limits]\nmax_per_host = {}\nmax_unavailable_per_replset = {rs}\nmax_wave_size = {}\n",
        c.max_per_host, c.max_wave
    );
    if let Some(n) = c.canary {
        toml += &format!("[canary]\ncontainers = {n}\n");
    }
    toml += "[dns]\ncapacity_qps = 100\n";
    let pb = Playbook::parse(&rekindle::source::SourceText::new("random.toml", toml)).unwrap();
    let containers = c
        .containers
        .iter()
        .enumerate()
        .map(|(i, &(h, g, r, rs))| {
            let mut labels = vec![
                ("g".to_string(), format!("g{g}")),
                ("role".to_string(), format!("r{r}")),
            ];
            if let Some(rs) = rs {
                // Replica sets live inside one group.
                labels.push(("rs".to_string(), format!("g{g}-rs{rs}")));
            }
            Container {
                id: format!("id{i}"),
                name: format!("c{i}"),
                host: format!("h{h}"),
                labels: labels.into_iter().collect::<Labels>(),
                dns_name: None,
                ports: vec![],
                state: ContainerState::Running,
                primary: i % 3 == 0,
            }
        })
        .collect();
    (
        Inventory {
            containers,
            hosts: vec![],
        },
        pb,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn random_plans_hold_every_invariant(c in case()) {
        let (inv, pb) = build_case(&c);
        match Plan::build(&inv, &pb) {
            Ok(plan) => {
                let (waves, matched) = from_plan(&plan, &pb);
                // Roles r0..r{roles-1} exist; label value r{roles} matches none.
                let names: HashSet<String> = (0..c.roles).map(|r| format!("r{r}")).collect();
                for (i, ct) in inv.containers.iter().enumerate() {
                    prop_assert_eq!(matched[i], names.contains(ct.labels.get("role").unwrap()));
                }
                if let Err(e) = check(&inv, &pb, &waves, &matched) {
                    prop_assert!(false, "{}", e);
                }
                let canary: usize = plan.waves.iter().filter(|w| w.canary).map(|w| w.containers.len()).sum();
                if let Some(n) = c.canary {
                    prop_assert!(canary <= n as usize);
                    // Canaries come from roles that wait for nothing.
                    let roots = inv.containers.iter().any(|ct| {
                        pb.roles.iter().any(|r| r.after.is_empty() && Some(r.name.as_str()) == ct.labels.get("role"))
                    });
                    prop_assert_eq!(canary > 0, roots);
                }
            }
            Err(e) => {
                // Only possible when nothing matched.
                prop_assert!(c.containers.iter().all(|x| x.2 as usize == c.roles), "{}", e);
            }
        }
    }
}
