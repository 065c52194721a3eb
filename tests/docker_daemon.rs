//! The daemon driving a real run on the machine's Docker Engine: killed
//! with SIGKILL mid-run, restarted, stopped with SIGTERM mid-run, restarted
//! again; the run finishes from its journal and Docker's own event log
//! shows every container started exactly once. A rehearsal active at the
//! kill is reported interrupted.

use crate::common;
use common::daemon::{call, control, get_text, start_body, wait_for, DaemonProc, TOKEN};
use common::{
    docker_available, on_two_hosts, run_playbook, sharded_specs, starts, EventLog, TestFleet,
};
use std::time::{Duration, Instant};

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn status_of(v: &serde_json::Value, field: &str) -> u64 {
    v["status"][field].as_u64().unwrap_or(0)
}

#[test]
fn docker_daemon_killed_then_stopped_mid_run_resumes_and_restarts_each_container_once() {
    if !docker_available(
        "docker_daemon_killed_then_stopped_mid_run_resumes_and_restarts_each_container_once",
    ) {
        return;
    }
    let id = TestFleet::id_for("daemon");
    // 2 clusters × (3 config servers + 2 shards × 3 + 1 router) = 20.
    let fleet = TestFleet::start(&id, on_two_hosts(sharded_specs(&id, 2, 2, 1)));
    let dir = tempfile::tempdir().unwrap();
    let pb = write(dir.path(), "fleet.toml", &run_playbook(&id, "", "warn"));
    let repo = env!("CARGO_MANIFEST_DIR");
    let config = write(
        dir.path(),
        "daemon.toml",
        &format!("[playbooks]\nfleet = {pb:?}\nmongo-sharded = \"{repo}/config/mongo-sharded.toml\"\n[scenarios]\nbraze-us01 = \"{repo}/config/scenarios/braze-us01.toml\"\n"),
    );
    let state = dir.path().join("state");
    let log = EventLog::follow(&id);

    // 1. A real run and a rehearsal; SIGKILL while the run restarts.
    let (run, rehearsal) = run_and_rehearsal_then_sigkill(&config, &state);

    // 2. A new daemon on the same state dir: the run resumes by itself, the
    //    rehearsal is reported interrupted. SIGTERM mid-run.
    resumed_paused_retuned_then_sigterm(&config, &state, &run, &rehearsal);

    // 3. A third daemon picks it up paused, as the operator left it, with
    //    the lower ceiling; nothing new is restarted until it is resumed.
    let (_d, done) = paused_run_resumed_to_its_end(&config, &state, &run);

    // Docker's own events: each container started exactly once across the
    // kill, the stop and the two resumes.
    let starts = starts(&log.stop());
    for name in &fleet.names {
        assert_eq!(
            starts.get(name).copied().unwrap_or(0),
            1,
            "{name} must start exactly once; starts: {starts:?}\nrun: {done}"
        );
    }
    // The run's events survived both daemons: one stream, resumes marked.
    let events = std::fs::read_to_string(state.join("runs").join(format!("{run}.events"))).unwrap();
    let kinds: Vec<String> = events
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|e| e["event"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "run_resumed").count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "daemon_stopping").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("run_ended"),
        "{kinds:?}"
    );
    let audit = std::fs::read_to_string(state.join("audit.log")).unwrap();
    assert!(audit.contains("network restored"), "{audit}");
}

/// A real run (`fleet`) and a braze rehearsal, paused, on a first daemon;
/// SIGKILL once the run issued 4 restarts and before all 20 are healthy.
/// The run's and the rehearsal's ids.
fn run_and_rehearsal_then_sigkill(config: &str, state: &std::path::Path) -> (String, String) {
    let d = DaemonProc::start(config, Some(state));
    let body =
        serde_json::json!({ "playbook": "fleet", "mode": "run", "reason": "network restored" })
            .to_string();
    let (code, v) = call(
        &d.addr,
        "POST",
        "/v1/runs",
        Some(TOKEN),
        Some(body.as_bytes()),
    );
    assert_eq!(code, 201, "{v}");
    let run = v["id"].as_str().unwrap().to_string();
    let (code, v) = call(
        &d.addr,
        "POST",
        "/v1/runs",
        Some(TOKEN),
        Some(&start_body("mongo-sharded", "braze-us01")),
    );
    assert_eq!(code, 201, "{v}");
    let rehearsal = v["id"].as_str().unwrap().to_string();
    control(&d.addr, &rehearsal, "pause");
    let before = wait_for(
        &d.addr,
        &run,
        Duration::from_secs(60),
        "4 restarts issued",
        |v| status_of(v, "restarts") >= 4,
    );
    assert!(std::process::Command::new("kill")
        .args(["-KILL", &d.pid()])
        .status()
        .unwrap()
        .success());
    drop(d);
    assert!(
        status_of(&before, "healthy") < 20,
        "the kill must land mid-run: {before}"
    );
    (run, rehearsal)
}

/// A second daemon on the same state dir: the run resumes by itself, the
/// rehearsal is reported interrupted; mid-run the operator pauses it and
/// lowers its DNS ceiling, then SIGTERM: a graceful stop (exit 0) that
/// leaves the run active.
fn resumed_paused_retuned_then_sigterm(
    config: &str,
    state: &std::path::Path,
    run: &str,
    rehearsal: &str,
) {
    let d = DaemonProc::start(config, Some(state));
    let (_, r) = call(
        &d.addr,
        "GET",
        &format!("/v1/runs/{rehearsal}"),
        Some(TOKEN),
        None,
    );
    assert_eq!(r["state"], "interrupted", "{r}");
    assert!(
        r["error"].as_str().unwrap_or("").contains("not resumed"),
        "{r}"
    );
    let mid = wait_for(
        &d.addr,
        run,
        Duration::from_secs(60),
        "10 healthy after the resume",
        |v| status_of(v, "healthy") >= 10,
    );
    assert_eq!(mid["resumed"], 1, "{mid}");
    assert_eq!(mid["state"], "running", "{mid}");
    // The operator pauses it and lowers its DNS ceiling; both outlive this
    // daemon.
    control(&d.addr, run, "pause");
    let (code, v) = call(
        &d.addr,
        "PATCH",
        &format!("/v1/runs/{run}"),
        Some(TOKEN),
        Some(b"{\"dns_budget_qps\": 500}"),
    );
    assert_eq!(code, 200, "{v}");
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &d.pid()])
        .status()
        .unwrap()
        .success());
    let mut child = d;
    let deadline = Instant::now() + Duration::from_secs(90);
    let code = loop {
        if let Some(st) = child.child.try_wait().unwrap() {
            break st.code();
        }
        assert!(
            Instant::now() < deadline,
            "the daemon did not stop within 90 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, Some(0), "a graceful stop exits 0");
    drop(child);
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(state.join("runs").join(format!("{run}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(
        record["state"], "running",
        "a run stopped by the daemon's shutdown stays active: {record}"
    );
    assert!(
        record["note"].as_str().unwrap_or("").contains("resumes"),
        "{record}"
    );
}

/// A third daemon picks the run up paused, as the operator left it, with
/// the lower ceiling; nothing new is restarted until it is resumed, then it
/// succeeds; its report and the metrics of the real run. The daemon (still
/// running) and the run's end.
fn paused_run_resumed_to_its_end(
    config: &str,
    state: &std::path::Path,
    run: &str,
) -> (DaemonProc, serde_json::Value) {
    let d = DaemonProc::start(config, Some(state));
    let paused = wait_for(
        &d.addr,
        run,
        Duration::from_secs(60),
        "the resumed run, paused",
        |v| v["state"] == "paused" && v["status"].is_object(),
    );
    assert_eq!(
        paused["status"]["pace"]["dns_ceiling_qps"].as_f64(),
        Some(500.0),
        "the retune outlived the daemon: {paused}"
    );
    std::thread::sleep(Duration::from_secs(1));
    let (_, a) = call(
        &d.addr,
        "GET",
        &format!("/v1/runs/{run}"),
        Some(TOKEN),
        None,
    );
    std::thread::sleep(Duration::from_secs(3));
    let (_, b) = call(
        &d.addr,
        "GET",
        &format!("/v1/runs/{run}"),
        Some(TOKEN),
        None,
    );
    assert_eq!(b["state"], "paused", "{b}");
    assert_eq!(
        status_of(&a, "restarts"),
        status_of(&b, "restarts"),
        "restarts issued while paused: {a}\n{b}"
    );
    control(&d.addr, run, "resume");
    let done = wait_for(
        &d.addr,
        run,
        Duration::from_secs(120),
        "the end of the run",
        |v| !matches!(v["state"].as_str(), Some("pending" | "running" | "paused")),
    );
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["resumed"], 2, "{done}");
    assert_eq!(done["result"]["healthy"], 20, "{done}");
    assert!(
        done["result"]["journal"]
            .as_str()
            .unwrap_or("")
            .contains("archived"),
        "{done}"
    );
    // Its report covers the last daemon's part, and says it resumed.
    let (code, report) = call(
        &d.addr,
        "GET",
        &format!("/v1/runs/{run}/report?format=json"),
        Some(TOKEN),
        None,
    );
    assert_eq!(code, 200, "{report}");
    assert_eq!(
        (
            report["state"].as_str(),
            report["resumed"].as_bool(),
            report["healthy"].as_u64()
        ),
        (Some("succeeded"), Some(true), Some(20)),
        "{report}"
    );

    // The metrics of the real run: restarts by role, and its resolver
    // (router health probes resolve names through it).
    let text = get_text(&d.addr, "/metrics");
    assert!(text.contains("rekindle_restarts_total{playbook=\"fleet\",mode=\"run\",role=\"router\",outcome=\"healthy\"} 2"), "{text}");
    assert!(
        text.contains(&format!(
            "rekindle_resolver_upstream_queries_total{{run=\"{run}\",playbook=\"fleet\"}}"
        )),
        "{text}"
    );
    (d, done)
}
