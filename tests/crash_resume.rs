//! Crash safety on the real path: `rekindle run`, then the daemon, killed
//! with SIGKILL at random points of a run's progress (a number of starts
//! drawn over the whole run) on the fake fleet (real Docker
//! API through bollard, real DNS queries to a real unbound), started again
//! each time until the run ends by itself. The witness is the fake fleet's
//! own count of starts: every container started exactly once, none never.
//!
//! CI runs the 400-container `realpath-small` fleet with a few kills; the
//! figures of issue 12 (20 kills of `run` and 10 of the daemon on a
//! ≥ 2,000-container fleet) come from the same tests with
//! `REKINDLE_CRASH_SCENARIO=benches/scenarios/realpath-4k.toml
//! REKINDLE_CRASH_KILLS=20` (see docs/real-path.md). The random points are
//! printed with the seed (`REKINDLE_CRASH_SEED` replays them).

use crate::common;

use common::daemon::{call, DaemonProc, TOKEN};
use common::fakefleet::{assert_each_started_once, smoke_playbook, zone_names, FakeFleet};
use common::unbound::{unbound_available, Unbound};
use rekindle::rng::SplitMix64;
use rekindle::scenario::Scenario;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const REALPATH_SMALL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/benches/scenarios/realpath-small.toml"
);

struct Setup {
    path: PathBuf,
    scenario: Scenario,
    kills: usize,
    rng: SplitMix64,
}

impl Setup {
    /// The kill points: `kills` start counts drawn uniformly over the
    /// first 95% of the run's `n` starts, in order. Points of the run's
    /// progress, not of time after each start: a resumed process first
    /// waits out what the dead one may still have in flight, and kills
    /// timed from each start would all land in that wait after the first
    /// few, never reaching the rest of the run.
    fn points(&mut self, n: u64) -> Vec<u64> {
        let mut p: Vec<u64> = (0..self.kills)
            .map(|_| (self.rng.uniform(0.0, 0.95) * n as f64) as u64)
            .collect();
        p.sort_unstable();
        p
    }
}

/// Waits until the fake fleet counts at least `target` starts and one more
/// than `from` (the process under test acts), while `alive`; at most 600 s.
fn wait_for_starts(ff: &FakeFleet, target: u64, from: u64, mut alive: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(600);
    while alive() && Instant::now() < until {
        let starts = ff.stats()["starts_total"].as_u64().unwrap();
        if starts >= target.max(from + 1) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn setup(default_kills: usize) -> Setup {
    let path = std::env::var("REKINDLE_CRASH_SCENARIO")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(REALPATH_SMALL));
    let path = if path.is_relative() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
    } else {
        path
    };
    let scenario = Scenario::load(&path).unwrap();
    let kills = std::env::var("REKINDLE_CRASH_KILLS")
        .ok()
        .map(|k| k.parse().expect("REKINDLE_CRASH_KILLS is a number"))
        .unwrap_or(default_kills);
    let seed = std::env::var("REKINDLE_CRASH_SEED")
        .ok()
        .map(|s| s.parse().expect("REKINDLE_CRASH_SEED is a number"))
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!(
        "scenario {} ({} containers), {kills} kills, seed {seed}",
        scenario.name,
        scenario.total_containers()
    );
    Setup {
        path,
        scenario,
        kills,
        rng: SplitMix64::new(seed),
    }
}

/// Unbound serving the fleet's zone, and the fake fleet; the playbook.
fn fleet(s: &Setup, dir: &Path) -> (Unbound, FakeFleet, PathBuf) {
    let unbound = Unbound::start_zone(&s.scenario.domain, &zone_names(&s.scenario), "");
    let path = &s.path;
    // No process fails on its own: every start is rekindle's, so "each
    // container started exactly once" is the whole witness.
    let ff = FakeFleet::start_with(
        path,
        &unbound.addr(),
        dir,
        &["--faults", r#"{"restart_failure_rate":0}"#],
    );
    let text = smoke_playbook(
        &s.scenario,
        &std::fs::read_to_string(&ff.hosts_file).unwrap(),
    )
    .replace("name = \"fakefleet-smoke\"", "name = \"crash\"");
    let pb = dir.join("pb.toml");
    std::fs::write(&pb, text).unwrap();
    (unbound, ff, pb)
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn fakefleet_run_killed_9_at_random_points_and_resumed_starts_each_container_once() {
    if !unbound_available(
        "fakefleet_run_killed_9_at_random_points_and_resumed_starts_each_container_once",
    ) {
        return;
    }
    let mut s = setup(6);
    let dir = tempfile::tempdir().unwrap();
    let (_unbound, ff, pb) = fleet(&s, dir.path());
    let state = dir.path().join("state");
    let journal = state.join("crash.journal");
    let n = s.scenario.total_containers();
    let points = s.points(n);
    let mut kills = Vec::new();
    let log = dir.path().join("run.log");
    let code = loop {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rekindle"));
        cmd.arg("run")
            .arg(&pb)
            .args(["--yes", "--output", "json", "--state-dir"])
            .arg(&state);
        // After a kill: --resume when the run got as far as its journal.
        if !kills.is_empty() && journal.exists() {
            cmd.arg("--resume");
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        if kills.len() < s.kills {
            let (t0, target) = (Instant::now(), points[kills.len()]);
            let from = ff.stats()["starts_total"].as_u64().unwrap();
            wait_for_starts(&ff, target, from, || child.try_wait().unwrap().is_none());
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                let after = t0.elapsed().as_secs_f64();
                let starts = ff.stats()["starts_total"].as_u64().unwrap();
                println!(
                    "kill -9 #{} at {after:.2}s (point: {target} starts): {starts} starts so far",
                    kills.len() + 1
                );
                kills.push((after, starts));
                continue;
            }
        }
        break wait_exit(&mut child, Duration::from_secs(900));
    };
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(code, Some(0), "the last run: {log}");
    assert!(
        kills.len() == s.kills,
        "every kill landed before the run ended: {kills:?}"
    );
    assert!(
        kills.iter().any(|&(_, starts)| starts > 0 && starts < n),
        "at least one kill came mid-run: {kills:?}"
    );
    assert_each_started_once(&ff, n, &log);
}

/// The daemon killed with SIGKILL at random points of a run, then once at
/// the hardest point (the run's record says it ended, its journal is not
/// archived yet: `REKINDLE_CRASH_AT=run-ended`), started again each time
/// on the same state dir: the run resumes, never starts over, and ends
/// succeeded; every container started exactly once.
#[test]
fn fakefleet_daemon_killed_9_at_random_points_resumes_the_run_never_from_scratch() {
    if !unbound_available(
        "fakefleet_daemon_killed_9_at_random_points_resumes_the_run_never_from_scratch",
    ) {
        return;
    }
    let mut s = setup(4);
    let dir = tempfile::tempdir().unwrap();
    let (_unbound, ff, pb) = fleet(&s, dir.path());
    let n = s.scenario.total_containers();
    let config = dir.path().join("daemon.toml");
    std::fs::write(&config, format!("[playbooks]\ncrash = {:?}\n", pb)).unwrap();
    let config = config.to_str().unwrap().to_string();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let start = |env: &[(&str, &str)]| {
        DaemonProc::start_env(&config, Some(&state), "127.0.0.1:0", Some(TOKEN), env)
    };
    let addr = |d: &DaemonProc| d.addr.strip_prefix("http://").unwrap().to_string();
    let mut d = start(&[]);
    let body = json!({ "playbook": "crash", "mode": "run", "reason": "crash test" }).to_string();
    let (code, r) = call(
        &addr(&d),
        "POST",
        "/v1/runs",
        Some(TOKEN),
        Some(body.as_bytes()),
    );
    assert_eq!(code, 201, "{r}");
    let id = r["id"].as_str().unwrap().to_string();
    let view = |d: &DaemonProc| {
        call(
            &addr(d),
            "GET",
            &format!("/v1/runs/{id}"),
            Some(TOKEN),
            None,
        )
        .1
    };
    let mut kills = Vec::new();
    let points = s.points(n);
    while kills.len() < s.kills {
        let (t0, target) = (Instant::now(), points[kills.len()]);
        let from = ff.stats()["starts_total"].as_u64().unwrap();
        wait_for_starts(&ff, target, from, || {
            view(&d)["state"]
                .as_str()
                .is_some_and(|st| st == "running" || st == "pending")
        });
        let after = t0.elapsed().as_secs_f64();
        let v = view(&d);
        if !v["state"]
            .as_str()
            .is_some_and(|st| st == "running" || st == "pending")
        {
            break;
        }
        d.child.kill().unwrap(); // SIGKILL
        d.child.wait().unwrap();
        let starts = ff.stats()["starts_total"].as_u64().unwrap();
        println!(
            "daemon kill -9 #{} at {after:.2}s (point: {target} starts): {starts} starts so far",
            kills.len() + 1
        );
        kills.push((after, starts));
        d = start(&[]);
    }
    assert_eq!(kills.len(), s.kills, "every kill landed mid-run: {kills:?}");
    // The last stretch under the crash point: this daemon aborts once the
    // run's record says it ended, before the journal is archived.
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    let mut d = start(&[("REKINDLE_CRASH_AT", "run-ended")]);
    let code = wait_exit(&mut d.child, Duration::from_secs(900));
    assert_ne!(code, Some(0), "the daemon aborted at the crash point");
    let journals: Vec<String> = walk(&state)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "journal"))
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        !journals.is_empty(),
        "the crash left the journal unarchived: {:?}",
        walk(&state)
    );
    // A daemon after that crash: the run is ended (succeeded), not resumed
    // or started over; nothing is started again.
    let d = start(&[]);
    let starts_before = ff.stats()["starts_total"].as_u64().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let v = view(&d);
    assert_eq!(v["state"], "succeeded", "{v}");
    let (_, runs) = call(&addr(&d), "GET", "/v1/runs", Some(TOKEN), None);
    let real: Vec<&Value> = runs["runs"]
        .as_array()
        .map(|a| a.iter().filter(|r| r["mode"] == "run").collect())
        .unwrap_or_default();
    assert_eq!(real.len(), 1, "one run, never a second: {runs}");
    assert_eq!(
        ff.stats()["starts_total"].as_u64().unwrap(),
        starts_before,
        "nothing started after the crash point"
    );
    assert_each_started_once(&ff, n, &format!("kills {kills:?}, run {v}"));
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
