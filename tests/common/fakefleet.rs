//! A `rekindle-fakefleet` process for tests (killed on drop, also when
//! the test fails), and raw HTTP/1.1 calls to its control port (an
//! independent path from rekindle's own client).

use bollard::{Docker, API_DEFAULT_VERSION};
use rekindle::scenario::Scenario;
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Every fully qualified name of a scenario's fleet (the DNS zone).
pub fn zone_names(scenario: &Scenario) -> Vec<String> {
    scenario
        .fleet()
        .all
        .iter()
        .map(|c| {
            format!(
                "{}.",
                c.dns_name
                    .as_deref()
                    .expect("scenario containers have DNS names")
            )
        })
        .collect()
}

/// The `rekindle-fakefleet` binary of this build (the test bed's member of
/// the workspace, `testbed/`). It sits beside this test binary's `deps/`
/// (the same target directory and profile). `cargo nextest run
/// --workspace` (scripts/test.sh) builds it with these tests, in the same
/// build (testbed/tests/cli.rs); run without `--workspace`, or when a
/// source is newer than it, cargo builds it here first.
pub fn fakefleet_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test binary's path");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test binary sits in <target>/<profile>/deps")
            .to_path_buf();
        let bin = dir.join("rekindle-fakefleet");
        let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
        if built.is_some_and(|t| t >= newest_source()) {
            return bin;
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build.current_dir(env!("CARGO_MANIFEST_DIR")).args([
            "build",
            "--quiet",
            "-p",
            "rekindle-testbed",
            "--bin",
            "rekindle-fakefleet",
        ]);
        if dir.ends_with("release") {
            build.arg("--release");
        }
        let status = build
            .status()
            .expect("run cargo to build rekindle-fakefleet");
        assert!(status.success(), "cargo build -p rekindle-testbed failed");
        bin
    })
    .clone()
}

/// When the newest of the fake fleet's sources was changed: rekindle's
/// src/ and testbed/ (its target/ aside), the two manifests and the lock.
fn newest_source() -> std::time::SystemTime {
    fn walk(path: &Path, newest: &mut std::time::SystemTime) {
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        if let Ok(t) = meta.modified() {
            *newest = (*newest).max(t);
        }
        if meta.is_dir() && !path.ends_with("target") {
            for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
                walk(&entry.path(), newest);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut newest = std::time::SystemTime::UNIX_EPOCH;
    for part in ["src", "testbed", "Cargo.toml", "Cargo.lock"] {
        walk(&root.join(part), &mut newest);
    }
    newest
}

/// A running `rekindle-fakefleet`, killed on drop.
pub struct FakeFleet {
    pub child: Child,
    pub control: String,
    /// Host name → `tcp://127.0.0.1:PORT`.
    pub hosts: HashMap<String, String>,
    pub hosts_file: PathBuf,
    pub stderr: PathBuf,
}

impl FakeFleet {
    pub fn start(scenario: &Path, dns: &str, dir: &Path) -> FakeFleet {
        FakeFleet::start_with(scenario, dns, dir, &[])
    }

    /// [`FakeFleet::start`] with more arguments (`--faults JSON`).
    pub fn start_with(scenario: &Path, dns: &str, dir: &Path, extra: &[&str]) -> FakeFleet {
        let hosts_file = dir.join("hosts.toml");
        let stderr = dir.join("fakefleet.stderr");
        let mut child = Command::new(fakefleet_bin())
            .arg("--scenario")
            .arg(scenario)
            .args(["--dns", dns, "--hosts-out"])
            .arg(&hosts_file)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("start rekindle-fakefleet");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        let mut fleet = FakeFleet {
            child,
            control: String::new(),
            hosts: HashMap::new(),
            hosts_file,
            stderr,
        };
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("no ready line from the fake fleet ({e}): {}", fleet.log()));
        fleet.control = line
            .strip_prefix("fakefleet ready control=")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}: {}", fleet.log()))
            .to_string();
        let text = std::fs::read_to_string(&fleet.hosts_file).unwrap();
        let table: toml::Table =
            toml::from_str(&text).unwrap_or_else(|e| panic!("hosts file {text}: {e}"));
        for h in table["hosts"].as_array().unwrap() {
            fleet.hosts.insert(
                h["name"].as_str().unwrap().to_string(),
                h["url"].as_str().unwrap().to_string(),
            );
        }
        fleet
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn stats(&self) -> Value {
        http_get_json(&self.control, "/stats")
    }

    pub fn containers(&self) -> Value {
        http_get_json(&self.control, "/containers")
    }

    pub async fn docker(&self, host: &str) -> Docker {
        let url = &self.hosts[host];
        let d = Docker::connect_with_http(url, 10, API_DEFAULT_VERSION).unwrap();
        tokio::time::timeout(Duration::from_secs(10), d.negotiate_version())
            .await
            .expect("negotiate within 10 s")
            .expect("negotiate")
    }
}

impl Drop for FakeFleet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` on the control port, as JSON (blocking, 10 s timeout).
pub fn http_get_json(addr: &str, path: &str) -> Value {
    http_json(addr, "GET", path, "")
}

/// `POST path` with a JSON body on the control port; its JSON answer.
pub fn http_post_json(addr: &str, path: &str, body: &str) -> Value {
    http_json(addr, "POST", path, body)
}

pub fn http_json(addr: &str, method: &str, path: &str, body: &str) -> Value {
    let mut s =
        std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or_else(|| panic!("no body in {text:?}"));
    serde_json::from_str(body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// A playbook for the smoke scenario's labels (config/mongo-sharded.toml's
/// roles and groups, Docker health), the fake fleet's hosts appended.
pub fn smoke_playbook(scenario: &Scenario, hosts_toml: &str) -> String {
    format!(
        r#"name = "fakefleet-smoke"
[groups]
cluster = "{cluster}"
replset = "{replset}"
[[roles]]
name = "configsvr"
selector = {{ "{role}" = "configsvr" }}
startup_lookups = {cfg}
health = {{ kind = "docker", interval = "250ms", deadline = "30s" }}
[[roles]]
name = "shard"
selector = {{ "{role}" = "shard" }}
startup_lookups = {shard}
health = {{ kind = "docker", interval = "250ms", deadline = "30s" }}
[[roles]]
name = "router"
selector = {{ "{role}" = "router" }}
after = ["configsvr", "shard"]
startup_lookups = {router}
health = {{ kind = "docker", interval = "250ms", deadline = "30s" }}
[limits]
max_per_host = 16
max_unavailable_per_replset = "all"
stop_timeout = "2s"
[dns]
capacity_qps = {capacity}
[policy]
retries = 2
backoff_initial = "200ms"
backoff_max = "1s"
stuck_rerestarts = 1
[discovery]
timeout = "5s"
on_unreachable = "warn"
{hosts_toml}"#,
        cluster = scenario.labels.cluster,
        replset = scenario.labels.replset,
        role = scenario.labels.role,
        cfg = scenario.startup_lookups[0],
        shard = scenario.startup_lookups[1],
        router = scenario.startup_lookups[2],
        capacity = scenario.dns.capacity_qps,
    )
}

/// Every container started exactly once (the fake fleet's counts).
#[allow(dead_code)]
pub fn assert_each_started_once(ff: &FakeFleet, n: u64, context: &str) {
    let stats = ff.stats();
    assert_eq!(
        (
            stats["started_once"].as_u64(),
            stats["started_more_than_once"].as_u64(),
            stats["never_started"].as_u64(),
            stats["healthy"].as_u64(),
        ),
        (Some(n), Some(0), Some(0), Some(n)),
        "every container started exactly once and healthy: {stats}\n{context}"
    );
}
