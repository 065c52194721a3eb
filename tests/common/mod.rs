//! Helpers for integration tests on the real Docker Engine: a labelled test
//! fleet created with the docker CLI (an independent path from rekindle's
//! bollard code) and removed on drop, even when the test fails.

#![allow(dead_code)]

use std::process::Command;

pub const IMAGE: &str = "rekindle-dbnode:test";

/// Whether the engine answers. Without one, tests skip with a printed
/// reason — except under CI (`CI=true`), where they must fail.
pub fn docker_available(test: &str) -> bool {
    let ok = Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"]).output().map(|o| o.status.success()).unwrap_or(false);
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{test}: no Docker Engine answers, and CI=true requires one");
        }
        eprintln!("SKIPPED {test}: no Docker Engine answers on this machine");
        return false;
    }
    let image = Command::new("docker").args(["image", "inspect", IMAGE]).output().map(|o| o.status.success()).unwrap_or(false);
    assert!(image, "{test}: image {IMAGE} is missing: run scripts/build-test-image.sh (scripts/test.sh does)");
    true
}

/// One container to create.
pub struct Spec {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub env: Vec<(String, String)>,
}

/// Containers labelled `rekindle.test=<id>`, removed when dropped.
pub struct TestFleet {
    pub id: String,
    pub names: Vec<String>,
}

impl TestFleet {
    /// A unique id for this test run (process id + test name).
    pub fn id_for(test: &str) -> String {
        format!("{test}-{}", std::process::id())
    }

    /// Creates and starts the containers, a few at a time.
    pub fn start(id: &str, specs: Vec<Spec>) -> TestFleet {
        let fleet = TestFleet { id: id.to_string(), names: specs.iter().map(|s| s.name.clone()).collect() };
        let chunks: Vec<Vec<Spec>> = {
            let mut v: Vec<Vec<Spec>> = (0..4).map(|_| Vec::new()).collect();
            for (i, s) in specs.into_iter().enumerate() {
                v[i % 4].push(s);
            }
            v
        };
        std::thread::scope(|scope| {
            for chunk in &chunks {
                scope.spawn(move || {
                    for s in chunk {
                        let mut cmd = Command::new("docker");
                        cmd.args(["run", "-d", "--name", &s.name, "--label", &format!("rekindle.test={id}")]);
                        for (k, v) in &s.labels {
                            cmd.args(["--label", &format!("{k}={v}")]);
                        }
                        for (k, v) in &s.env {
                            cmd.args(["--env", &format!("{k}={v}")]);
                        }
                        cmd.arg(IMAGE);
                        let out = cmd.output().expect("docker run");
                        assert!(out.status.success(), "docker run {}: {}", s.name, String::from_utf8_lossy(&out.stderr));
                    }
                });
            }
        });
        fleet
    }

    pub fn remove(&self) {
        let ids = Command::new("docker")
            .args(["ps", "-aq", "--filter", &format!("label=rekindle.test={}", self.id)])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .unwrap_or_default();
        if !ids.is_empty() {
            let _ = Command::new("docker").arg("rm").arg("-f").args(&ids).output();
        }
    }
}

impl Drop for TestFleet {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Two sharded clusters: per cluster 3 config servers, `shards` replica sets
/// of 3, and `routers` routers, labelled like the shipped playbooks expect.
pub fn sharded_specs(id: &str, clusters: usize, shards: usize, routers: usize) -> Vec<Spec> {
    let mut specs = Vec::new();
    for c in 0..clusters {
        let cluster = format!("{id}-c{c}");
        let mut add = |name: String, role: &str, rs: Option<String>, port: u16| {
            let mut labels = vec![("db.role".to_string(), role.to_string()), ("db.cluster".to_string(), cluster.clone())];
            if let Some(rs) = rs {
                labels.push(("db.replset".to_string(), rs));
            }
            specs.push(Spec { name, labels, env: vec![("DBNODE_PORT".to_string(), port.to_string())] });
        };
        for i in 0..3 {
            add(format!("{cluster}-cfg-{i}"), "configsvr", Some(format!("{cluster}-cfg")), 27019);
        }
        for s in 0..shards {
            for i in 0..3 {
                add(format!("{cluster}-rs{s:02}-{i}"), "shard", Some(format!("{cluster}-rs{s:02}")), 27018);
            }
        }
        for i in 0..routers {
            add(format!("{cluster}-mongos-{i}"), "router", None, 27017);
        }
    }
    specs
}

/// A port on loopback with nothing listening (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
