//! Two daemons on a real etcd (feature `etcd`): one leads, the other
//! takes over a real run on the fake fleet (real Docker API through
//! bollard, real DNS queries to a real unbound) when the leader is killed
//! (SIGKILL) or paused past its lease (SIGSTOP, then SIGCONT: the old
//! leader starts nothing after waking and steps down). The witness is the
//! fake fleet's own count: every container started exactly once.
//!
//! The fleet: `realpath-small`'s shape scaled to 2,000 containers on 50
//! hosts, with light DNS (the resolver is not what is tested here).
//! `REKINDLE_HA_CLUSTERS=160` doubles it (4,000 containers on 100 hosts),
//! for docs/ha.md's figures at size.

#![cfg(feature = "etcd")]

use crate::common;

use common::daemon::{call, DaemonProc, TOKEN};
use common::etcd::{etcd_available, Etcd};
use common::fakefleet::{assert_each_started_once, smoke_playbook, zone_names, FakeFleet};
use common::unbound::{unbound_available, Unbound};
use rekindle::scenario::Scenario;
use rekindle::source::SourceText;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const TTL_S: u64 = 3;

struct World {
    _etcd: Etcd,
    _unbound: Unbound,
    ff: FakeFleet,
    n: u64,
    config: String,
    etcd: String,
    dir: tempfile::TempDir,
}

fn world() -> World {
    let clusters: u32 = std::env::var("REKINDLE_HA_CLUSTERS")
        .ok()
        .map(|c| c.parse().expect("REKINDLE_HA_CLUSTERS is a number"))
        .unwrap_or(80);
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/scenarios/realpath-small.toml"
    ))
    .unwrap()
    .replace("name = \"realpath-small\"", "name = \"ha-2k\"")
    .replace(
        "hosts = 10",
        &format!("hosts = {}", (clusters * 5).div_ceil(8)),
    )
    .replace("count = 10", &format!("count = {clusters}"))
    .replace("routers = 25", "routers = 10")
    .replace("router = 41", "router = 5")
    .replace("capacity_qps = 300", "capacity_qps = 4000");
    let scenario = Scenario::parse(&SourceText::new("ha-2k.toml", text.clone())).unwrap();
    let n = scenario.total_containers();
    assert!(n >= 2000, "{n} containers");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ha-2k.toml");
    std::fs::write(&path, &text).unwrap();
    let etcd = Etcd::start();
    let unbound = Unbound::start_zone(&scenario.domain, &zone_names(&scenario), "");
    // No process fails on its own: every start is rekindle's.
    let ff = FakeFleet::start_with(
        &path,
        &unbound.addr(),
        dir.path(),
        &["--faults", r#"{"restart_failure_rate":0}"#],
    );
    let pb = smoke_playbook(&scenario, &std::fs::read_to_string(&ff.hosts_file).unwrap())
        .replace("name = \"fakefleet-smoke\"", "name = \"ha\"");
    let pb_path = dir.path().join("pb.toml");
    std::fs::write(&pb_path, pb).unwrap();
    let config = dir.path().join("daemon.toml");
    std::fs::write(&config, format!("[playbooks]\nha = {:?}\n", pb_path)).unwrap();
    World {
        etcd: etcd.endpoint(),
        _etcd: etcd,
        _unbound: unbound,
        ff,
        n,
        config: config.to_str().unwrap().to_string(),
        dir,
    }
}

fn daemon(w: &World, name: &str) -> DaemonProc {
    daemon_ttl(w, name, TTL_S)
}

fn daemon_ttl(w: &World, name: &str, ttl_s: u64) -> DaemonProc {
    let state = w.dir.path().join(name);
    let ttl = format!("{ttl_s}s");
    let mut d = DaemonProc::start_args(
        &w.config,
        Some(&state),
        "127.0.0.1:0",
        Some(TOKEN),
        &[(
            "REKINDLE_LOG",
            "warn,rekindle=info,rekindle::engine=debug,rekindle::runtime=debug",
        )],
        &[
            "--cluster",
            "ha-test",
            "--etcd",
            &w.etcd,
            "--lease-ttl",
            &ttl,
        ],
    );
    d.addr = d.addr.strip_prefix("http://").unwrap().to_string();
    d
}

/// `POST /v1/runs`: the real run of playbook `ha` on `d`.
fn start_run(d: &DaemonProc) -> (u16, Value) {
    let body = json!({ "playbook": "ha", "mode": "run", "reason": "ha test" }).to_string();
    call(
        &d.addr,
        "POST",
        "/v1/runs",
        Some(TOKEN),
        Some(body.as_bytes()),
    )
}

fn cluster(d: &DaemonProc) -> Value {
    call(&d.addr, "GET", "/v1/cluster", Some(TOKEN), None).1
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    t0.elapsed()
}

fn log_of(d: &DaemonProc) -> String {
    std::fs::read_to_string(d.state.join("daemon.stderr")).unwrap_or_default()
}

/// The real run on `d`, by mode.
fn real_run(d: &DaemonProc) -> Option<Value> {
    let (_, runs) = call(&d.addr, "GET", "/v1/runs", Some(TOKEN), None);
    runs["runs"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["mode"] == "run").cloned())
}

/// Two daemons, A leading; a run started on A; A stopped by `stop` once a
/// tenth of the fleet has started; B takes over and finishes. Returns the
/// daemons and the takeover time (from the stop).
fn takeover(w: &World, stop: impl FnOnce(&mut DaemonProc)) -> (DaemonProc, DaemonProc, Duration) {
    let mut a = daemon(w, "a");
    wait_until("A leads", Duration::from_secs(20), || {
        cluster(&a)["leading"] == true
    });
    let b = daemon(w, "b");
    let view = cluster(&b);
    assert_eq!(view["leading"], false, "{view}");
    assert_eq!(view["leader"], format!("http://{}", a.addr), "{view}");
    // A follower refuses mutating calls and names the leader.
    let (code, r) = start_run(&b);
    assert_eq!(code, 503, "{r}");
    assert_eq!(r["leader"], format!("http://{}", a.addr), "{r}");

    let (code, r) = start_run(&a);
    assert_eq!(code, 201, "{r}");
    let tenth = w.n / 10;
    wait_until(
        "a tenth of the fleet started",
        Duration::from_secs(120),
        || w.ff.stats()["starts_total"].as_u64().unwrap() >= tenth,
    );
    let stopped = Instant::now();
    stop(&mut a);
    let starts = w.ff.stats()["starts_total"].as_u64().unwrap();
    println!("leader stopped after {starts} starts");
    wait_until("B leads", Duration::from_secs(30), || {
        cluster(&b)["leading"] == true
    });
    let took = stopped.elapsed();
    println!("B leads {took:?} after the stop (lease {TTL_S} s)");
    wait_until("the run ends on B", Duration::from_secs(600), || {
        real_run(&b).is_some_and(|r| r["state"] != "running" && r["state"] != "pending")
    });
    let run = real_run(&b).unwrap();
    assert_eq!(run["state"], "succeeded", "{run}\nB's log:\n{}", log_of(&b));
    assert!(run["resumed"].as_u64().unwrap() >= 1, "{run}");
    (a, b, took)
}

#[test]
fn ha_leader_killed_9_mid_run_the_other_daemon_takes_over_and_starts_each_container_once() {
    if !etcd_available("ha_leader_killed_9_mid_run")
        || !unbound_available("ha_leader_killed_9_mid_run")
    {
        return;
    }
    let w = world();
    let (_a, b, took) = takeover(&w, |a| {
        a.child.kill().unwrap(); // SIGKILL
        a.child.wait().unwrap();
    });
    assert!(
        took < Duration::from_secs(TTL_S + 10),
        "takeover {took:?} after the kill (lease {TTL_S} s)"
    );
    assert_each_started_once(&w.ff, w.n, &log_of(&b));
    // The ended run left etcd: a daemon starting now has nothing to take over.
    assert!(w._etcd.keys("/rekindle/ha-test/run").is_empty());
}

#[test]
fn ha_leader_paused_past_its_lease_starts_nothing_after_waking_and_steps_down() {
    if !etcd_available("ha_leader_paused_past_its_lease")
        || !unbound_available("ha_leader_paused_past_its_lease")
    {
        return;
    }
    let w = world();
    let signal = |pid: u32, sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {pid}");
    };
    let mut paused = None;
    let (a, b, _took) = takeover(&w, |a| {
        signal(a.child.id(), "-STOP");
        paused = Some(a.child.id());
    });
    // B has finished the run; A wakes. Its log up to here is what it did
    // before the pause (it cannot write while stopped).
    let before_wake = log_of(&a).len();
    let starts_before = w.ff.stats()["starts_total"].as_u64().unwrap();
    signal(paused.unwrap(), "-CONT");
    wait_until("A steps down", Duration::from_secs(20), || {
        cluster(&a)["leading"] == false
    });
    std::thread::sleep(Duration::from_secs(2));
    let log_a = log_of(&a);
    let (asleep, awake) = log_a.split_at(before_wake);
    // No restart begins after waking: no stop is sent (each Docker call is
    // logged at debug before it is sent; an intent whose etcd write was
    // answered before the pause may still be announced, and is then refused
    // by the fence).
    for line in awake.lines() {
        assert!(
            !line.contains(r#"op="stop""#),
            "the woken leader began a restart: {line}\nafter waking:\n{awake}"
        );
    }
    // A stop A had handed to its HTTP client before the pause is refused by
    // the connection as it is about to be written (runtime::fenced): every
    // container is started exactly once.
    let twice: Vec<String> =
        w.ff.containers()
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, c)| c["starts"].as_u64().unwrap_or(0) > 1)
            .map(|(n, _)| n.clone())
            .collect();
    println!(
        "after waking: {} starts more, {} containers started twice",
        w.ff.stats()["starts_total"].as_u64().unwrap() - starts_before,
        twice.len()
    );
    assert!(
        twice.is_empty(),
        "started twice: {twice:?}\nA before the pause:\n{asleep}\nA after:\n{awake}\nB:\n{}",
        log_of(&b)
    );
    let run_a = real_run(&a).unwrap();
    assert_ne!(run_a["state"], "succeeded", "{run_a}");
    wait_until("every container healthy", Duration::from_secs(30), || {
        w.ff.stats()["healthy"].as_u64() == Some(w.n)
    });
    assert_each_started_once(&w.ff, w.n, &log_of(&b));
}

#[test]
fn ha_refuses_a_daemon_with_other_playbooks_and_names_an_unreachable_etcd() {
    if !etcd_available("ha_refuses_a_daemon_with_other_playbooks") {
        return;
    }
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let write = |name: &str, body: String| -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p
    };
    let one = write(
        "one.toml",
        format!(
            "[playbooks]\nsharded = {:?}\n",
            root.join("config/mongo-sharded.toml")
        ),
    );
    let two = write(
        "two.toml",
        format!(
            "[playbooks]\nrolling = {:?}\n",
            root.join("config/mongo-rolling.toml")
        ),
    );
    let run = |config: &Path, etcd: &str| {
        let state = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rekindle"))
            .args(["daemon", "--config"])
            .arg(config)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--insecure-no-auth",
                "--state-dir",
            ])
            .arg(state.path())
            .args(["--cluster", "ha-refuse", "--etcd", etcd])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        (child.stdout.take().unwrap(), child, state)
    };
    /// Kills the process on drop, also when an assertion fails first.
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    // The first member joins and stays.
    let (out, first, _s1) = run(&one, &etcd.endpoint());
    let _first = Killed(first);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line).unwrap();
    assert!(line.starts_with("listening on "), "{line:?}");
    // Another set of playbooks under the same name: refused, exit 2.
    let (_, second, _s2) = run(&two, &etcd.endpoint());
    let out = second.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("another set of playbooks"), "{stderr}");
    // etcd unreachable: a clear error naming the endpoints, exit 2.
    let closed = format!("127.0.0.1:{}", common::closed_port());
    let (_, third, _s3) = run(&one, &closed);
    let out = third.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&closed) && stderr.contains("does not answer"),
        "{stderr}"
    );
}

#[test]
fn ha_etcd_stopped_20_s_mid_run_pauses_the_leaders_restarts_which_go_on_when_it_is_back() {
    if !etcd_available("ha_etcd_stopped_20_s_mid_run")
        || !unbound_available("ha_etcd_stopped_20_s_mid_run")
    {
        return;
    }
    let mut w = world();
    let a = daemon_ttl(&w, "a", 6);
    wait_until("A leads", Duration::from_secs(20), || {
        cluster(&a)["leading"] == true
    });
    let b = daemon_ttl(&w, "b", 6);
    let (code, r) = start_run(&a);
    assert_eq!(code, 201, "{r}");
    let starts = || w.ff.stats()["starts_total"].as_u64().unwrap();
    wait_until(
        "a tenth of the fleet started",
        Duration::from_secs(120),
        || starts() >= w.n / 10,
    );
    w._etcd.stop();
    let at_stop = starts();
    // Restarts in flight finish (a few seconds); then nothing starts
    // until etcd is back.
    std::thread::sleep(Duration::from_secs(6));
    let settled = starts();
    std::thread::sleep(Duration::from_secs(14));
    let at_end = starts();
    w._etcd.restart();
    println!("etcd stopped at {at_stop} starts; {settled} after 6 s; {at_end} after 20 s");
    assert_eq!(settled, at_end, "restarts went on while etcd was away");
    assert!(at_end < w.n, "the run had finished before etcd stopped");
    wait_until("the run ends on A", Duration::from_secs(600), || {
        real_run(&a).is_some_and(|r| r["state"] != "running" && r["state"] != "pending")
    });
    let run = real_run(&a).unwrap();
    assert_eq!(run["state"], "succeeded", "{run}\nA's log:\n{}", log_of(&a));
    assert_eq!(cluster(&a)["leading"], true, "A still leads");
    assert_eq!(cluster(&b)["leading"], false);
    assert!(real_run(&b).is_none(), "B took nothing over");
    assert_each_started_once(&w.ff, w.n, &log_of(&a));
}
