//! Discovery against the machine's real Docker Engine: labelled containers
//! from the FROM-scratch test image are found, grouped and planned, and an
//! unreachable second host is reported by name.

use crate::common;

use common::{closed_port, docker_available, sharded_specs, TestFleet};
use rekindle::config::Playbook;
use rekindle::inventory::InventorySource;
use rekindle::plan::Plan;
use rekindle::source::SourceText;
use std::process::Command;

fn playbook(test_id: &str, down_port: u16, on_unreachable: &str) -> String {
    format!(
        r#"name = "discovery-test"
[groups]
cluster = "db.cluster"
replset = "db.replset"
[[roles]]
name = "configsvr"
selector = {{ "db.role" = "configsvr" }}
startup_lookups = 5
[[roles]]
name = "shard"
selector = {{ "db.role" = "shard" }}
startup_lookups = 5
[[roles]]
name = "router"
selector = {{ "db.role" = "router" }}
after = ["configsvr", "shard"]
startup_lookups = 81
[limits]
max_per_host = 50
max_unavailable_per_replset = 1
[dns]
capacity_qps = 100
[discovery]
labels = {{ "rekindle.test" = "{test_id}" }}
timeout = "3s"
on_unreachable = "{on_unreachable}"
[[hosts]]
name = "local"
url = "unix:///var/run/docker.sock"
[[hosts]]
name = "dead-host"
url = "tcp://127.0.0.1:{down_port}"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_discovery_finds_groups_and_plans_real_containers() {
    if !docker_available("docker_discovery_finds_groups_and_plans_real_containers") {
        return;
    }
    let id = TestFleet::id_for("discovery");
    let fleet = TestFleet::start(&id, sharded_specs(&id, 2, 2, 2));
    assert_eq!(fleet.names.len(), 22);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pb.toml");
    std::fs::write(&path, playbook(&id, closed_port(), "warn")).unwrap();
    let pb = Playbook::parse(&SourceText::read(&path).unwrap()).unwrap();

    let inv = InventorySource::Docker.load(&pb).await.unwrap();
    let mut found: Vec<&str> = inv.containers.iter().map(|c| c.name.as_str()).collect();
    found.sort_unstable();
    let mut want: Vec<&str> = fleet.names.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(found, want, "discovery must find exactly the test fleet");
    assert!(inv.containers.iter().all(|c| c.host == "local"));
    assert!(inv
        .containers
        .iter()
        .all(|c| c.state == rekindle::model::ContainerState::Running));
    let dead = inv
        .hosts
        .iter()
        .find(|h| h.name == "dead-host")
        .expect("dead host reported");
    assert!(!dead.reachable);
    assert!(dead.error.is_some());

    let plan = Plan::build(&inv, &pb).unwrap();
    assert_eq!(plan.containers, 22);
    // Per cluster: 3 configsvr waves (one member each), 3 shard waves, 1 router wave.
    assert_eq!(plan.waves.len(), 2 * (3 + 3 + 1));
    for w in &plan.waves {
        assert!(w.group.starts_with(&id), "group {:?}", w.group);
        let clusters: std::collections::HashSet<_> = w
            .containers
            .iter()
            .map(|&c| inv.containers[c as usize].labels.get("db.cluster"))
            .collect();
        assert_eq!(clusters.len(), 1, "a wave mixes clusters");
    }

    // The CLI says the same, naming the unreachable host.
    let out = Command::new(env!("CARGO_BIN_EXE_rekindle"))
        .args(["plan", path.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("22 containers"), "{stdout}");
    assert!(stdout.contains("host dead-host unreachable"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_discovery_fails_by_name_when_the_playbook_requires_every_host() {
    if !docker_available("docker_discovery_fails_by_name_when_the_playbook_requires_every_host") {
        return;
    }
    let id = TestFleet::id_for("discovery-fail");
    let _fleet = TestFleet::start(&id, sharded_specs(&id, 1, 1, 1));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pb.toml");
    std::fs::write(&path, playbook(&id, closed_port(), "fail")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rekindle"))
        .args(["plan", path.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("dead-host"), "{stderr}");
    assert!(stderr.contains("on_unreachable"), "{stderr}");
}
