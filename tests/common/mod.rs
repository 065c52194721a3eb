//! Helpers for integration tests on the real Docker Engine: a labelled test
//! fleet created with the docker CLI (an independent path from rekindle's
//! bollard code) and removed on drop, even when the test fails.

#![allow(dead_code)]

pub mod daemon;
pub mod etcd;
pub mod fakefleet;
pub mod tls;
pub mod unbound;

use std::process::Command;

pub const IMAGE: &str = "rekindle-dbnode:test";

/// A `docker` CLI call bounded to 60 s (coreutils `timeout --verbose`,
/// then SIGKILL 5 s later): an engine that stops answering fails the test
/// that asked — exit status 124 and "timeout: sending signal TERM to
/// command 'docker'" on stderr, which the callers' assertions print —
/// instead of holding it, and CI, until an outer limit.
pub fn docker() -> Command {
    let mut cmd = Command::new("timeout");
    cmd.args(["--verbose", "--kill-after=5", "60", "docker"]);
    cmd
}

/// Whether the engine answers. Without one, tests skip with a printed
/// reason — except under CI (`CI=true`), where they must fail.
pub fn docker_available(test: &str) -> bool {
    let ok = docker()
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{test}: no Docker Engine answers, and CI=true requires one");
        }
        eprintln!("SKIPPED {test}: no Docker Engine answers on this machine");
        return false;
    }
    let image = docker()
        .args(["image", "inspect", IMAGE])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        image,
        "{test}: image {IMAGE} is missing: run scripts/build-test-image.sh (scripts/test.sh does)"
    );
    true
}

/// One container to create.
#[derive(Clone)]
pub struct Spec {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub env: Vec<(String, String)>,
    /// A fixed address on the fleet's network (its subnet).
    pub ip: Option<String>,
}

/// Containers labelled `rekindle.test=<id>`, removed when dropped.
pub struct TestFleet {
    pub id: String,
    pub names: Vec<String>,
    /// Started on a user-defined network: removed one container at a time
    /// (see [`TestFleet::remove`]).
    networked: bool,
}

impl TestFleet {
    /// A unique id for this test run (process id + test name).
    pub fn id_for(test: &str) -> String {
        format!("{test}-{}", std::process::id())
    }

    /// Creates and starts the containers, a few at a time.
    pub fn start(id: &str, specs: Vec<Spec>) -> TestFleet {
        Self::start_on(id, specs, None)
    }

    /// The same, on a network (where containers find each other by name).
    pub fn start_on(id: &str, specs: Vec<Spec>, network: Option<&TestNetwork>) -> TestFleet {
        let fleet = TestFleet {
            id: id.to_string(),
            names: specs.iter().map(|s| s.name.clone()).collect(),
            networked: network.is_some(),
        };
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
                        let mut cmd = docker();
                        cmd.args([
                            "run",
                            "-d",
                            "--name",
                            &s.name,
                            "--label",
                            &format!("rekindle.test={id}"),
                        ]);
                        for (k, v) in &s.labels {
                            cmd.args(["--label", &format!("{k}={v}")]);
                        }
                        if let Some(n) = network {
                            cmd.args(["--network", &n.name]);
                        }
                        if let Some(ip) = &s.ip {
                            cmd.args(["--ip", ip]);
                        }
                        for (k, v) in &s.env {
                            cmd.args(["--env", &format!("{k}={v}")]);
                        }
                        cmd.arg(IMAGE);
                        let out = cmd.output().expect("docker run");
                        assert!(
                            out.status.success(),
                            "docker run {}: {}",
                            s.name,
                            String::from_utf8_lossy(&out.stderr)
                        );
                    }
                });
            }
        });
        fleet
    }

    pub fn remove(&self) {
        let ids = docker()
            .args([
                "ps",
                "-aq",
                "--filter",
                &format!("label=rekindle.test={}", self.id),
            ])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        if ids.is_empty() {
            return;
        }
        // On a user-defined network, one at a time: the docker CLI removes
        // the containers it is given in parallel, and Docker 20.10's
        // libnetwork (Debian's 20.10.24) can deadlock when endpoints of one
        // network leave and are deleted at once (getSvcRecords against
        // processEndpointDelete, moby/moby#42545, fixed after 20.10.24): the
        // engine then answers no inspect, info or rm again until restarted.
        // Seen here after such a parallel removal of 26 containers.
        if self.networked {
            for id in &ids {
                let _ = docker().args(["rm", "-f", id]).output();
            }
        } else {
            let _ = docker().arg("rm").arg("-f").args(&ids).output();
        }
    }
}

impl Drop for TestFleet {
    fn drop(&mut self) {
        self.remove();
    }
}

/// A user-defined Docker network labelled `rekindle.test=<id>` (Docker's
/// embedded DNS resolves container names on it), removed on drop — after
/// the fleet on it, so declare it first.
pub struct TestNetwork {
    pub name: String,
}

impl TestNetwork {
    pub fn create(id: &str) -> TestNetwork {
        Self::create_with(id, &[])
    }

    /// With `docker network create` options (e.g. `--subnet`).
    pub fn create_with(id: &str, options: &[&str]) -> TestNetwork {
        let name = format!("rekindle-{id}");
        let out = docker()
            .args([
                "network",
                "create",
                "--label",
                &format!("rekindle.test={id}"),
            ])
            .args(options)
            .arg(&name)
            .output()
            .expect("docker network create");
        assert!(
            out.status.success(),
            "docker network create {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        TestNetwork { name }
    }
}

impl Drop for TestNetwork {
    /// Removes the network; an endpoint of a container just removed can
    /// linger a moment, so it tries again for up to 10 s.
    fn drop(&mut self) {
        for _ in 0..20 {
            let gone = docker()
                .args(["network", "rm", &self.name])
                .output()
                .map(|o| {
                    // 124: the engine did not answer in time; asking again
                    // would only wait again.
                    o.status.success()
                        || o.status.code() == Some(124)
                        || String::from_utf8_lossy(&o.stderr).contains("not found")
                })
                .unwrap_or(true);
            if gone {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }
}

/// Two sharded clusters: per cluster 3 config servers, `shards` replica sets
/// of 3, and `routers` routers, labelled like the shipped playbooks expect.
pub fn sharded_specs(id: &str, clusters: usize, shards: usize, routers: usize) -> Vec<Spec> {
    let mut specs = Vec::new();
    for c in 0..clusters {
        let cluster = format!("{id}-c{c}");
        let mut add = |name: String, role: &str, rs: Option<String>, port: u16| {
            let mut labels = vec![
                ("db.role".to_string(), role.to_string()),
                ("db.cluster".to_string(), cluster.clone()),
            ];
            // dbnode answers hello as a member of its replica set, or as a mongos.
            let hello = match &rs {
                Some(rs) => ("DBNODE_SET".to_string(), rs.clone()),
                None => ("DBNODE_MONGOS".to_string(), "1".to_string()),
            };
            if let Some(rs) = rs {
                labels.push(("db.replset".to_string(), rs));
            }
            specs.push(Spec {
                ip: None,
                name,
                labels,
                env: vec![("DBNODE_PORT".to_string(), port.to_string()), hello],
            });
        };
        for i in 0..3 {
            add(
                format!("{cluster}-cfg-{i}"),
                "configsvr",
                Some(format!("{cluster}-cfg")),
                27019,
            );
        }
        for s in 0..shards {
            for i in 0..3 {
                add(
                    format!("{cluster}-rs{s:02}-{i}"),
                    "shard",
                    Some(format!("{cluster}-rs{s:02}")),
                    27018,
                );
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

/// Wall-clock now as Docker's `--since`/`--until` take it (seconds.nanos).
pub fn docker_now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

/// A container event as the engine itself recorded it.
#[derive(Debug, Clone)]
pub struct DockerEvent {
    pub name: String,
    pub action: String,
    pub time_nano: i64,
}

/// Docker's own record of the test fleet's container events (start, die,
/// health), followed live from before an action until after it — the
/// engine keeps only its last 256 events for replay, and health checks fill
/// that in seconds. An independent witness: the docker CLI, not bollard.
pub struct EventLog {
    child: std::process::Child,
    reader: Option<std::thread::JoinHandle<Vec<DockerEvent>>>,
}

impl EventLog {
    pub fn follow(test_id: &str) -> EventLog {
        let since = docker_now();
        let mut child = Command::new("docker")
            .args([
                "events",
                "--since",
                &since,
                "--filter",
                &format!("label=rekindle.test={test_id}"),
                "--filter",
                "type=container",
            ])
            .args([
                "--filter",
                "event=start",
                "--filter",
                "event=die",
                "--filter",
                "event=health_status",
                "--format",
                "{{json .}}",
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("docker events");
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter(|l| !l.trim().is_empty())
                .map(|l| parse_event(&l))
                .collect()
        });
        // The subscription is live once the CLI has connected.
        std::thread::sleep(std::time::Duration::from_millis(300));
        EventLog {
            child,
            reader: Some(reader),
        }
    }

    /// Stops following (after a moment for the last events) and returns them.
    pub fn stop(mut self) -> Vec<DockerEvent> {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.reader.take().unwrap().join().unwrap()
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_event(l: &str) -> DockerEvent {
    let v: serde_json::Value =
        serde_json::from_str(l).unwrap_or_else(|e| panic!("docker events line {l:?}: {e}"));
    DockerEvent {
        name: v["Actor"]["Attributes"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        action: v["Action"]
            .as_str()
            .or(v["status"].as_str())
            .unwrap_or_default()
            .to_string(),
        time_nano: v["timeNano"].as_i64().unwrap_or_default(),
    }
}

/// How many times each container started in the window.
pub fn starts(events: &[DockerEvent]) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for e in events.iter().filter(|e| e.action == "start") {
        *m.entry(e.name.clone()).or_insert(0) += 1;
    }
    m
}

/// Spreads specs over two host entries (`rekindle.host` = a | b), alternating.
pub fn on_two_hosts(mut specs: Vec<Spec>) -> Vec<Spec> {
    for (i, s) in specs.iter_mut().enumerate() {
        s.labels.push((
            "rekindle.host".to_string(),
            if i % 2 == 0 { "a" } else { "b" }.to_string(),
        ));
    }
    specs
}

/// A recovery playbook for a test fleet: config servers and shards first,
/// routers after; two host entries sharing the local engine (selected by
/// the `rekindle.host` label) plus `extra_hosts` (TOML text).
pub fn run_playbook(test_id: &str, extra_hosts: &str, on_unreachable: &str) -> String {
    format!(
        r#"name = "run-test-{test_id}"
[groups]
cluster = "db.cluster"
replset = "db.replset"
[[roles]]
name = "configsvr"
selector = {{ "db.role" = "configsvr" }}
startup_lookups = 5
health = {{ kind = "exec", command = ["/dbnode", "health"], interval = "250ms", deadline = "30s" }}
[[roles]]
name = "shard"
selector = {{ "db.role" = "shard" }}
startup_lookups = 5
health = {{ kind = "docker", interval = "250ms", deadline = "30s" }}
[[roles]]
name = "router"
selector = {{ "db.role" = "router" }}
after = ["configsvr", "shard"]
startup_lookups = 81
health = {{ kind = "tcp", port = 27017, interval = "250ms", deadline = "30s" }}
[limits]
max_per_host = 50
max_unavailable_per_replset = 1
stop_timeout = "2s"
[dns]
capacity_qps = 2000
[policy]
retries = 1
backoff_initial = "200ms"
backoff_max = "1s"
stuck_rerestarts = 0
[discovery]
labels = {{ "rekindle.test" = "{test_id}" }}
timeout = "3s"
on_unreachable = "{on_unreachable}"
[[hosts]]
name = "a"
url = "unix:///var/run/docker.sock"
labels = {{ "rekindle.host" = "a" }}
[[hosts]]
name = "b"
url = "unix:///var/run/docker.sock"
labels = {{ "rekindle.host" = "b" }}
{extra_hosts}"#
    )
}

/// A command's output, printed whole when an assertion about it fails.
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

pub fn rekindle(args: &[&str]) -> Ran {
    let out = Command::new(env!("CARGO_BIN_EXE_rekindle"))
        .args(args)
        .output()
        .expect("run rekindle");
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}
