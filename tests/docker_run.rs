//! `rekindle run` against the machine's real Docker Engine: a labelled
//! fleet of two sharded clusters spread over two host entries is restarted
//! in dependency order, each container exactly once (Docker's own event log
//! is the witness); an unhealthy container halts the run with exit code 3;
//! an unreachable host is reported by name and handled by the playbook's
//! policy. Every fleet is removed on drop, even when a test fails.

use crate::common;

use common::*;
use std::collections::BTreeMap;

fn write_playbook(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("pb.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn cluster_of(name: &str) -> String {
    // "<id>-c0-rs01-2" → "<id>-c0": up to the last segment "c<digits>".
    let parts: Vec<&str> = name.split('-').collect();
    let i = parts
        .iter()
        .rposition(|p| {
            p.len() > 1 && p.starts_with('c') && p[1..].chars().all(|c| c.is_ascii_digit())
        })
        .expect("cluster in name");
    parts[..=i].join("-")
}

#[test]
fn docker_run_restarts_two_clusters_in_dependency_order_each_exactly_once() {
    if !docker_available("docker_run_restarts_two_clusters_in_dependency_order_each_exactly_once") {
        return;
    }
    let id = TestFleet::id_for("run");
    // 2 clusters × (3 config servers + 5 shards × 3 + 3 routers) = 42.
    let fleet = TestFleet::start(&id, on_two_hosts(sharded_specs(&id, 2, 5, 3)));
    assert_eq!(fleet.names.len(), 42);
    let dir = tempfile::tempdir().unwrap();
    let pb = write_playbook(&dir, &run_playbook(&id, "", "warn"));
    let state = dir.path().join("state");
    std::thread::sleep(std::time::Duration::from_secs(2)); // let first health checks settle
    let log = EventLog::follow(&id);
    let report = dir.path().join("report");
    let ran = rekindle(&[
        "run",
        &pb,
        "--yes",
        "--output",
        "json",
        "--state-dir",
        state.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(ran.code, Some(0), "{ran}");
    let summary: serde_json::Value = serde_json::from_str(ran.stdout.lines().last().unwrap())
        .unwrap_or_else(|e| panic!("{e}\n{ran}"));
    assert_eq!(summary["state"], "succeeded", "{ran}");
    assert_eq!(summary["healthy"], 42, "{ran}");

    assert_report_matches_plan(&ran, &report, &id);

    let events = log.stop();
    let starts = starts(&events);
    for name in &fleet.names {
        assert_eq!(
            starts.get(name).copied().unwrap_or(0),
            1,
            "{name} must start exactly once; starts: {starts:?}"
        );
    }
    // Routers start only after every data node of their cluster passed its
    // gate: after that node's last "healthy" in Docker's log.
    let mut data_healthy: BTreeMap<String, i64> = BTreeMap::new();
    let mut router_start: BTreeMap<String, i64> = BTreeMap::new();
    for e in &events {
        let cluster = cluster_of(&e.name);
        if e.name.contains("-mongos-") {
            if e.action == "start" {
                let t = router_start.entry(cluster).or_insert(i64::MAX);
                *t = (*t).min(e.time_nano);
            }
        } else if e.name.contains("-rs") && e.action == "health_status: healthy" {
            let t = data_healthy.entry(cluster).or_insert(0);
            *t = (*t).max(e.time_nano);
        }
    }
    assert_eq!(
        router_start.len(),
        2,
        "routers of both clusters started: {router_start:?}"
    );
    for (cluster, first_router) in &router_start {
        let last_data = data_healthy
            .get(cluster)
            .unwrap_or_else(|| panic!("no healthy shard event for {cluster}"));
        assert!(
            first_router > last_data,
            "cluster {cluster}: a router started {} ms before its last shard was healthy",
            (last_data - first_router) / 1_000_000
        );
    }
    // Config servers (exec check) too: healthy before any router starts.
    for (cluster, first_router) in &router_start {
        let cfg = events
            .iter()
            .filter(|e| {
                cluster_of(&e.name) == **cluster && e.name.contains("-cfg-") && e.action == "start"
            })
            .map(|e| e.time_nano)
            .max()
            .unwrap();
        assert!(
            first_router > &cfg,
            "cluster {cluster}: a router started before its config servers"
        );
    }
    // The journal was archived: the next run starts fresh.
    assert!(!state.join(format!("run-test-{id}.journal")).exists());
}

/// --report: the run's timeline. The DNS queries budgeted to the restarts
/// add up to the plan's DNS cost (the plan table, on stderr with --output
/// json, states both) and each restart tried again; a span per
/// wave, and the page and the Markdown beside the JSON.
fn assert_report_matches_plan(ran: &common::Ran, report: &std::path::Path, id: &str) {
    let between = |text: &str, before: &str, after: &str| -> u64 {
        let head = text.split(after).next().unwrap();
        head.rsplit(before)
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{e}: {before:?}…{after:?} in\n{text}"))
    };
    let (plan_queries, plan_waves) = (
        between(&ran.stderr, "= ", " queries under a budget"),
        between(&ran.stderr, " in ", " waves"),
    );
    let timeline: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.join("timeline.json")).unwrap()).unwrap();
    assert_eq!(timeline["state"], "succeeded");
    let budgeted = timeline["dns_queries_budgeted"].as_u64().unwrap();
    // A restart tried again (a call a loaded engine answered after its
    // timeout, under policy.retries) is charged its container's DNS cost
    // once more: 5 lookups × 2 queries for a member, 81 × 2 for a router
    // (tests/common's run_playbook).
    let retried = timeline["restarts"].as_u64().unwrap() - timeline["total"].as_u64().unwrap();
    let extra = budgeted.checked_sub(plan_queries);
    assert!(
        extra.is_some_and(|extra| (0..=retried).any(|routers| extra == routers * 162 + (retried - routers) * 10)),
        "{budgeted} queries budgeted: the plan's {plan_queries} and {retried} restarts tried again\n{timeline}"
    );
    assert_eq!(
        timeline["dns_per_second"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| q.as_u64().unwrap())
            .sum::<u64>(),
        budgeted
    );
    assert_eq!(
        timeline["healthy_per_second"]
            .as_array()
            .unwrap()
            .last()
            .unwrap(),
        42
    );
    let spans = timeline["wave_spans"].as_array().unwrap();
    assert_eq!(spans.len() as u64, plan_waves, "one span per wave");
    assert!(
        spans.iter().all(
            |w| w["end_s"].as_f64().unwrap() >= w["start_s"].as_f64().unwrap()
                && w["halted"] == false
        ),
        "{spans:?}"
    );
    let html = std::fs::read_to_string(report.join("timeline.html")).unwrap();
    assert!(
        html.contains(&format!("Run: run-test-{id}"))
            && html.matches("<svg").count() == 3
            && html.matches("<rect").count() == spans.len(),
        "{html}"
    );
    assert!(std::fs::read_to_string(report.join("timeline.md"))
        .unwrap()
        .contains("DNS queries budgeted to the restarts sent"));
}

#[test]
fn docker_run_halts_with_exit_3_naming_the_unhealthy_container() {
    if !docker_available("docker_run_halts_with_exit_3_naming_the_unhealthy_container") {
        return;
    }
    let id = TestFleet::id_for("halt");
    let fleet = TestFleet::start(&id, on_two_hosts(sharded_specs(&id, 1, 1, 1)));
    let sick = format!("{id}-c0-rs00-1");
    assert!(fleet.names.contains(&sick));
    let out = common::docker()
        .args(["exec", &sick, "/dbnode", "sick"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let pb = write_playbook(&dir, &run_playbook(&id, "", "warn"));
    let state = dir.path().join("state");
    let log = EventLog::follow(&id);
    let ran = rekindle(&["run", &pb, "--yes", "--state-dir", state.to_str().unwrap()]);
    assert_eq!(ran.code, Some(3), "{ran}");
    assert!(
        ran.stderr.contains(&sick),
        "the halt must name {sick}\n{ran}"
    );
    assert!(ran.stdout.contains("Halted"), "{ran}");
    let first = starts(&log.stop());
    // retries = 1: restarted, retried once, then halted.
    assert_eq!(first.get(&sick).copied(), Some(2), "{first:?}");
    // Nothing past the halted stage was touched.
    assert_eq!(
        first.get(&format!("{id}-c0-mongos-0")).copied(),
        None,
        "{first:?}"
    );
    // The journal is kept for --resume; after the fix, resume finishes without
    // restarting any container that was already healthy.
    assert!(state.join(format!("run-test-{id}.journal")).exists());
    common::docker()
        .args(["exec", &sick, "/dbnode", "well"])
        .output()
        .unwrap();
    let log = EventLog::follow(&id);
    let ran = rekindle(&[
        "run",
        &pb,
        "--yes",
        "--resume",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert_eq!(ran.code, Some(0), "{ran}");
    let again = starts(&log.stop());
    assert_eq!(again.get(&sick).copied(), Some(1), "{again:?}");
    assert_eq!(
        again.get(&format!("{id}-c0-mongos-0")).copied(),
        Some(1),
        "{again:?}"
    );
    for name in &fleet.names {
        if name.contains("-cfg-") || name == &format!("{id}-c0-rs00-0") {
            assert_eq!(
                again.get(name),
                None,
                "{name} was healthy before the halt and must not restart again: {again:?}"
            );
        }
    }
}

#[test]
fn docker_run_reports_an_unreachable_host_and_follows_the_policy() {
    if !docker_available("docker_run_reports_an_unreachable_host_and_follows_the_policy") {
        return;
    }
    let id = TestFleet::id_for("unreach");
    let fleet = TestFleet::start(&id, on_two_hosts(sharded_specs(&id, 1, 1, 1)));
    let dead = format!(
        "[[hosts]]\nname = \"dead-host\"\nurl = \"tcp://127.0.0.1:{}\"\n",
        closed_port()
    );
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");

    // on_unreachable = "fail": nothing is restarted, the host is named, exit 1.
    let pb = write_playbook(&dir, &run_playbook(&id, &dead, "fail"));
    let log = EventLog::follow(&id);
    let ran = rekindle(&["run", &pb, "--yes", "--state-dir", state.to_str().unwrap()]);
    assert_eq!(ran.code, Some(1), "{ran}");
    assert!(ran.stderr.contains("dead-host"), "{ran}");
    assert!(
        starts(&log.stop()).is_empty(),
        "nothing may restart when discovery fails"
    );

    // on_unreachable = "warn": the rest of the fleet recovers; the summary
    // names the host whose containers were not restarted.
    let pb = write_playbook(&dir, &run_playbook(&id, &dead, "warn"));
    let log = EventLog::follow(&id);
    let ran = rekindle(&["run", &pb, "--yes", "--state-dir", state.to_str().unwrap()]);
    assert_eq!(ran.code, Some(0), "{ran}");
    assert!(
        ran.stdout
            .contains("NOT RESTARTED: host dead-host unreachable"),
        "{ran}"
    );
    let starts = starts(&log.stop());
    for name in &fleet.names {
        assert_eq!(
            starts.get(name).copied(),
            Some(1),
            "{name}: {starts:?}\n{ran}"
        );
    }
}

#[test]
fn docker_run_refuses_unattended_without_yes_and_dry_run_changes_nothing() {
    if !docker_available("docker_run_refuses_unattended_without_yes_and_dry_run_changes_nothing") {
        return;
    }
    let id = TestFleet::id_for("refuse");
    let _fleet = TestFleet::start(&id, on_two_hosts(sharded_specs(&id, 1, 1, 1)));
    let dir = tempfile::tempdir().unwrap();
    let pb = write_playbook(&dir, &run_playbook(&id, "", "warn"));
    let state = dir.path().join("state");
    let log = EventLog::follow(&id);
    let ran = rekindle(&["run", &pb, "--state-dir", state.to_str().unwrap()]);
    assert_eq!(ran.code, Some(2), "{ran}");
    assert!(ran.stderr.contains("--yes"), "{ran}");
    let ran = rekindle(&[
        "run",
        &pb,
        "--dry-run",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert_eq!(ran.code, Some(0), "{ran}");
    assert!(ran.stdout.contains("7 containers on 2 hosts"), "{ran}");
    assert!(starts(&log.stop()).is_empty());
    assert!(
        !state.exists() || std::fs::read_dir(&state).unwrap().next().is_none(),
        "no journal for a refused or dry run"
    );
}

/// `rekindle run --yes` in the background, its JSON debug log on a pipe.
fn spawn_run(pb: &str, state: &str) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_rekindle"))
        .args([
            "--log-format",
            "json",
            "run",
            pb,
            "--yes",
            "--state-dir",
            state,
        ])
        .env("REKINDLE_LOG", "rekindle=debug")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs `rekindle run` until a log line satisfies `trigger`, then kills it
/// with SIGKILL. Returns the log lines seen.
fn run_until_killed(
    pb: &str,
    state: &str,
    trigger: &dyn Fn(&serde_json::Value) -> bool,
) -> Vec<String> {
    use std::io::BufRead;
    let mut child = spawn_run(pb, state);
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    for line in stderr.lines().map_while(Result::ok) {
        let fired = serde_json::from_str::<serde_json::Value>(&line)
            .map(|v| trigger(&v))
            .unwrap_or(false);
        seen.push(line);
        if fired {
            child.kill().unwrap(); // SIGKILL: no cleanup, no last journal record
            break;
        }
    }
    let status = child.wait().unwrap();
    assert!(
        status.code().is_none(),
        "rekindle finished before the kill point:\n{}",
        seen.join("\n")
    );
    seen
}

#[test]
fn docker_run_killed_at_three_points_resumes_restarting_each_container_exactly_once() {
    if !docker_available(
        "docker_run_killed_at_three_points_resumes_restarting_each_container_exactly_once",
    ) {
        return;
    }
    let id = TestFleet::id_for("crash");
    // 2 clusters × (3 config servers + 2 shards × 3 + 1 router) = 20.
    let fleet = TestFleet::start(&id, on_two_hosts(sharded_specs(&id, 2, 2, 1)));
    let dir = tempfile::tempdir().unwrap();
    let pb = write_playbook(&dir, &run_playbook(&id, "", "warn"));
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();
    let message = |v: &serde_json::Value| {
        v["fields"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    type Point<'a> = (&'a str, Box<dyn Fn(&serde_json::Value) -> bool>);
    let points: Vec<Point> = vec![
        (
            "the first restart issued",
            Box::new(move |v| message(v) == "restarting"),
        ),
        (
            "the first wave passed",
            Box::new(move |v| message(v) == "wave passed"),
        ),
        (
            "the first router restart issued",
            Box::new(move |v| {
                message(v) == "restarting"
                    && v["fields"]["container"]
                        .as_str()
                        .unwrap_or("")
                        .contains("-mongos-")
            }),
        ),
    ];
    for (point, trigger) in &points {
        let log = EventLog::follow(&id);
        let seen = run_until_killed(&pb, state, trigger.as_ref());
        // A new run must not start over a crashed one.
        let refused = rekindle(&["run", &pb, "--yes", "--state-dir", state]);
        assert_eq!(
            refused.code,
            Some(2),
            "killed at {point}: a fresh run must refuse the unfinished journal\n{refused}"
        );
        assert!(refused.stderr.contains("--resume"), "{refused}");
        let resumed = rekindle(&[
            "run",
            &pb,
            "--yes",
            "--resume",
            "--output",
            "json",
            "--state-dir",
            state,
        ]);
        assert_eq!(resumed.code, Some(0), "killed at {point}\n{resumed}");
        let summary: serde_json::Value =
            serde_json::from_str(resumed.stdout.lines().last().unwrap()).unwrap();
        assert_eq!(summary["healthy"], 20, "killed at {point}: {resumed}");
        let starts = starts(&log.stop());
        for name in &fleet.names {
            assert_eq!(
                starts.get(name).copied().unwrap_or(0),
                1,
                "killed at {point}: {name} must start exactly once over the crashed run and its resume; starts: {starts:?}\nlog before the kill:\n{}\nresume:\n{resumed}",
                seen.join("\n")
            );
        }
    }
}

#[test]
fn docker_run_interrupted_unattended_aborts_with_exit_4_and_leaves_nothing_stopped() {
    if !docker_available(
        "docker_run_interrupted_unattended_aborts_with_exit_4_and_leaves_nothing_stopped",
    ) {
        return;
    }
    use std::io::BufRead;
    let id = TestFleet::id_for("sigint");
    let fleet = TestFleet::start(&id, on_two_hosts(sharded_specs(&id, 1, 1, 1)));
    let dir = tempfile::tempdir().unwrap();
    let pb = write_playbook(&dir, &run_playbook(&id, "", "warn"));
    let state = dir.path().join("state");
    let mut child = spawn_run(&pb, state.to_str().unwrap());
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 {
        seen.push(std::mem::take(&mut line));
        if seen.last().unwrap().contains("\"restarting\"") {
            let ok = std::process::Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status()
                .unwrap();
            assert!(ok.success());
            break;
        }
    }
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(4), "stderr:\n{}{rest}", seen.concat());
    assert!(rest.contains("aborting"), "{rest}");
    // The restart in flight finished and was watched: every container runs.
    for name in &fleet.names {
        let out = common::docker()
            .args(["inspect", "-f", "{{.State.Running}}", name])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "true",
            "{name} left stopped\n{rest}"
        );
    }
    // The journal is kept: the run can be resumed.
    assert!(state.join(format!("run-test-{id}.journal")).exists());
}

/// `rekindle run` on a real terminal (a pty from util-linux `script`):
/// what a DBA at 3 a.m. sees and types.
/// The end of a terminal transcript (progress redraws make the whole long).
fn tail(text: &str) -> &str {
    let mut from = text.len().saturating_sub(3000);
    while !text.is_char_boundary(from) {
        from += 1;
    }
    &text[from..]
}

struct OnTerminal {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    out: std::sync::Arc<std::sync::Mutex<String>>,
}

impl OnTerminal {
    fn start(pb: &str, state: &str) -> OnTerminal {
        // `exec`: script runs the command through $SHELL -c (or /bin/sh);
        // dash stays as the parent and dies of the terminal's SIGINT itself.
        let cmd = format!(
            "exec {} run {pb} --yes --state-dir {state}",
            env!("CARGO_BIN_EXE_rekindle")
        );
        let mut child = std::process::Command::new("script")
            .args(["-qfec", &cmd, "/dev/null"])
            .env("REKINDLE_LOG", "rekindle=info")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("util-linux script");
        let stdin = child.stdin.take().unwrap();
        let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (o, mut stdout) = (out.clone(), child.stdout.take().unwrap());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = std::io::Read::read(&mut stdout, &mut buf) {
                if n == 0 {
                    break;
                }
                o.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        OnTerminal { child, stdin, out }
    }

    fn text(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    fn wait_for(&self, what: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !self.text().contains(what) {
            assert!(
                std::time::Instant::now() < deadline,
                "{what:?} never showed on the terminal:\n{}",
                self.text()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    fn type_keys(&mut self, keys: &[u8]) {
        std::io::Write::write_all(&mut self.stdin, keys).unwrap();
        std::io::Write::flush(&mut self.stdin).unwrap();
    }

    fn exit_code(mut self) -> (Option<i32>, String) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                std::thread::sleep(std::time::Duration::from_millis(100));
                return (st.code(), self.text());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the run did not end:\n{}",
                self.text()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

#[test]
fn docker_run_on_a_terminal_ctrl_c_pauses_and_asks_then_resumes_or_aborts() {
    if !docker_available("docker_run_on_a_terminal_ctrl_c_pauses_and_asks_then_resumes_or_aborts") {
        return;
    }
    let id = TestFleet::id_for("tty");
    // 2 clusters × (3 config servers + 1 shard × 3 + 1 router) = 14.
    let fleet = TestFleet::start(&id, on_two_hosts(sharded_specs(&id, 2, 1, 1)));
    let dir = tempfile::tempdir().unwrap();
    let pb = write_playbook(&dir, &run_playbook(&id, "", "warn"));

    // Ctrl-C → paused, asks; nothing new starts; r + Enter → resumes to the end.
    let log = EventLog::follow(&id);
    let state = dir.path().join("state-resume");
    let mut t = OnTerminal::start(&pb, state.to_str().unwrap());
    t.wait_for("wave    0");
    t.type_keys(b"\x03");
    t.wait_for("Type r + Enter to resume");
    // Restarts already sent to Docker at the pause finish; nothing new is
    // sent until r + Enter. A restart begins with the old process dying
    // (dbnode exits on SIGTERM at once), so no `die` may fall in the window
    // (after a margin for calls sent just before the pause to arrive).
    let now_nanos = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64
    };
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let quiet_from = now_nanos();
    std::thread::sleep(std::time::Duration::from_millis(3000));
    let quiet_to = now_nanos();
    t.type_keys(b"r\n");
    let (code, text) = t.exit_code();
    assert_eq!(
        code,
        Some(0),
        "exit code {code:?}; the terminal's last lines:\n{}",
        tail(&text)
    );
    assert!(
        text.contains("resumed") && text.contains("Succeeded"),
        "{}",
        tail(&text)
    );
    let events = log.stop();
    let during_pause: Vec<_> = events
        .iter()
        .filter(|e| e.action == "die" && e.time_nano > quiet_from && e.time_nano < quiet_to)
        .collect();
    assert!(
        during_pause.is_empty(),
        "restarts begun while paused: {during_pause:?}"
    );
    // The pause held something back: not every container had restarted by then.
    let started_by_resume = events
        .iter()
        .filter(|e| e.action == "start" && e.time_nano < quiet_to)
        .count();
    assert!(
        started_by_resume < fleet.names.len(),
        "all {started_by_resume} started before the resume: the pause held nothing"
    );
    let starts = starts(&events);
    for name in &fleet.names {
        assert_eq!(
            starts.get(name).copied().unwrap_or(0),
            1,
            "{name}: {starts:?}\n{}",
            tail(&text)
        );
    }
    assert!(starts.len() == fleet.names.len(), "{starts:?}");

    // Ctrl-C at the very first progress bar (the handlers are in before it
    // shows; a Ctrl-C that came before them killed the process, seen in CI),
    // then Ctrl-C again at the question → aborted (exit 4), nothing left stopped.
    let state = dir.path().join("state-abort");
    let mut t = OnTerminal::start(&pb, state.to_str().unwrap());
    t.wait_for("/14 healthy");
    t.type_keys(b"\x03");
    t.wait_for("Type r + Enter to resume");
    t.type_keys(b"\x03");
    let (code, text) = t.exit_code();
    assert_eq!(
        code,
        Some(4),
        "exit code {code:?}; the terminal's last lines:\n{}",
        tail(&text)
    );
    assert!(text.contains("aborting"), "{}", tail(&text));
    for name in &fleet.names {
        let out = common::docker()
            .args(["inspect", "-f", "{{.State.Running}}", name])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "true",
            "{name} left stopped"
        );
    }
}

#[test]
fn docker_run_mongo_hello_gates_routers_on_secondaries_and_halts_on_a_recovering_member() {
    if !docker_available(
        "docker_run_mongo_hello_gates_routers_on_secondaries_and_halts_on_a_recovering_member",
    ) {
        return;
    }
    let id = TestFleet::id_for("hello");
    // 1 cluster: 3 config servers, 2 shards × 3, 1 router. Shard members
    // answer hello in STARTUP2 for 3 s after each start (a TCP connect
    // succeeds at once), then as SECONDARY.
    const STARTUP_MS: i64 = 3000;
    let mut specs = on_two_hosts(sharded_specs(&id, 1, 2, 1));
    for s in specs.iter_mut().filter(|s| s.name.contains("-rs")) {
        s.env
            .push(("DBNODE_STARTUP_MS".to_string(), STARTUP_MS.to_string()));
    }
    let fleet = TestFleet::start(&id, specs);
    let dir = tempfile::tempdir().unwrap();
    let with_mongo = run_playbook(&id, "", "warn")
        .replace(
            r#"health = { kind = "docker", interval = "250ms", deadline = "30s" }"#,
            r#"health = { kind = "mongo", port = 27018, interval = "250ms", deadline = "30s" }"#,
        )
        .replace(
            r#"health = { kind = "tcp", port = 27017, interval = "250ms", deadline = "30s" }"#,
            r#"health = { kind = "mongo", interval = "250ms", deadline = "30s" }"#,
        );
    assert!(
        with_mongo.matches("kind = \"mongo\"").count() == 2,
        "{with_mongo}"
    );
    let pb = write_playbook(&dir, &with_mongo);
    let state = dir.path().join("state");

    let log = EventLog::follow(&id);
    let ran = rekindle(&["run", &pb, "--yes", "--state-dir", state.to_str().unwrap()]);
    assert_eq!(ran.code, Some(0), "{ran}");
    let events = log.stop();
    let starts_of = |part: &str| {
        events
            .iter()
            .filter(|e| e.action == "start" && e.name.contains(part))
            .map(|e| e.time_nano)
            .collect::<Vec<_>>()
    };
    let (shards, routers) = (starts_of("-rs"), starts_of("-mongos-"));
    assert_eq!((shards.len(), routers.len()), (6, 1), "{events:?}");
    // A member is SECONDARY no sooner than STARTUP_MS after its process
    // starts (after Docker's start event): the router waits for that.
    let last_shard = *shards.iter().max().unwrap();
    let gap_ms = (routers[0] - last_shard) / 1_000_000;
    assert!(gap_ms >= STARTUP_MS, "router started {gap_ms} ms after the last shard member: before hello said SECONDARY\n{ran}");
    for name in &fleet.names {
        assert_eq!(starts(&events).get(name).copied(), Some(1), "{name}\n{ran}");
    }

    // A member stuck RECOVERING (the marker survives its restart): hello
    // never says SECONDARY, the gate's deadline passes, it is retried, then
    // the wave halts naming it (exit 3); the router is not restarted.
    let sick = fleet
        .names
        .iter()
        .find(|n| n.ends_with("-rs01-1"))
        .unwrap()
        .clone();
    let out = common::docker()
        .args(["exec", &sick, "/dbnode", "sick"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pb = write_playbook(
        &dir,
        &with_mongo.replace(
            r#"kind = "mongo", port = 27018, interval = "250ms", deadline = "30s""#,
            r#"kind = "mongo", port = 27018, interval = "250ms", deadline = "6s""#,
        ),
    );
    let state = dir.path().join("state-sick");
    let log = EventLog::follow(&id);
    let ran = rekindle(&["run", &pb, "--yes", "--state-dir", state.to_str().unwrap()]);
    assert_eq!(ran.code, Some(3), "{ran}");
    assert!(
        ran.stdout.contains(&sick) || ran.stderr.contains(&sick),
        "the halt must name {sick}\n{ran}"
    );
    // …and say why: what hello answered, from which address.
    let why = format!("{}{}", ran.stdout, ran.stderr);
    assert!(
        why.contains("not healthy within 6s: hello to ")
            && why.contains(":27018: RSOther (member of ")
            && why.contains("neither primary nor secondary"),
        "{ran}"
    );
    let starts = starts(&log.stop());
    assert_eq!(
        starts.get(&sick).copied(),
        Some(2),
        "restarted, then retried once: {starts:?}"
    );
    assert!(
        !starts.keys().any(|n| n.contains("-mongos-")),
        "the router must wait: {starts:?}"
    );
}
