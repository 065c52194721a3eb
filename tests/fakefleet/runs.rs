//! `rekindle run` (and `survey`) against the fake fleet, end to end: the
//! smoke fleet recovered, what the fleet broke found and restarted, API
//! errors, lost answers, latency and bad hosts, one setup and one lookup per
//! host, gates fed by the events stream, and the real-path scenarios.

use super::*;

#[test]
fn fakefleet_rekindle_run_recovers_the_smoke_fleet_each_container_once() {
    if !unbound_available("fakefleet_rekindle_run_recovers_the_smoke_fleet_each_container_once") {
        return;
    }
    let (scenario, unbound, dir, ff) = smoke_fleet();
    let text = smoke_playbook(&scenario, &std::fs::read_to_string(&ff.hosts_file).unwrap());
    let (ran, stats) = run_to_success(&ff, dir.path(), &text);
    let n = scenario.total_containers();
    let summary: Value = serde_json::from_str(ran.stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}\n{ran}"));
    assert_eq!(summary["state"], "succeeded", "{ran}");
    assert_eq!(summary["healthy"], n, "{ran}");
    assert_eq!(
        stats["started_once"], n,
        "every container started exactly once: {stats}\n{ran}"
    );
    assert_eq!(
        (
            stats["started_more_than_once"].as_u64(),
            stats["never_started"].as_u64()
        ),
        (Some(0), Some(0)),
        "{stats}"
    );
    assert_eq!(
        (stats["healthy"].as_u64(), stats["stuck"].as_u64()),
        (Some(n), Some(0)),
        "{stats}"
    );
    assert!(stats["all_healthy_s"].as_f64().is_some(), "{stats}");
    assert_eq!(
        unbound.queries(),
        stats["queries_sent"].as_u64().unwrap(),
        "every query reached unbound: {stats}"
    );
    assert_eq!(
        stats["queries_sent"],
        scenario.total_startup_lookups(),
        "one set of startup lookups per container: {stats}"
    );
}

/// Triage on the real path: the fake fleet starts smoke-partial's world
/// (what its `[broken]` drew is disconnected, its image HEALTHCHECK says
/// unhealthy; the rest healthy). `rekindle survey` finds exactly what the
/// fleet broke (exit 5), and `run --only broken` starts exactly those,
/// each once, and closes with a post-flight that finds all ok.
#[test]
fn fakefleet_survey_finds_what_the_fleet_broke_and_run_only_broken_starts_exactly_those() {
    if !unbound_available(
        "fakefleet_survey_finds_what_the_fleet_broke_and_run_only_broken_starts_exactly_those",
    ) {
        return;
    }
    let path = Path::new(SMOKE_PARTIAL);
    let scenario = Scenario::load(path).unwrap();
    let unbound = Unbound::start_zone(&scenario.domain, &zone_names(&scenario), "");
    let dir = tempfile::tempdir().unwrap();
    let ff = FakeFleet::start(path, &unbound.addr(), dir.path());
    let text = smoke_playbook(&scenario, &std::fs::read_to_string(&ff.hosts_file).unwrap());
    let pb = dir.path().join("pb.toml");
    std::fs::write(&pb, &text).unwrap();

    // The fleet's own count of what it broke, by name.
    let before = http_get_json(&ff.control, "/containers");
    let broke: std::collections::BTreeSet<String> = before
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, c)| c["broken_at_start"] == true)
        .map(|(n, _)| n.clone())
        .collect();
    assert_eq!(broke.len(), 10, "{before}");

    let survey = common::rekindle(&["survey", pb.to_str().unwrap(), "--output", "json"]);
    assert_eq!(survey.code, Some(5), "something is broken: {survey}");
    let v: Value =
        serde_json::from_str(survey.stdout.trim()).unwrap_or_else(|e| panic!("{e}\n{survey}"));
    let found: std::collections::BTreeSet<String> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["verdict"] != "ok")
        .map(|f| f["container"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(found, broke, "0 false positives, 0 missed: {survey}");

    let state = dir.path().join("state");
    let ran = common::rekindle(&[
        "run",
        pb.to_str().unwrap(),
        "--yes",
        "--only",
        "broken",
        "--output",
        "json",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert_eq!(ran.code, Some(0), "{ran}\n{}", ff.log());
    let summary: Value = serde_json::from_str(ran.stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}\n{ran}"));
    assert_eq!(summary["state"], "succeeded", "{ran}");
    assert_eq!(
        summary["post_flight"]["ok"], 22,
        "post-flight all ok: {ran}"
    );
    let after = http_get_json(&ff.control, "/containers");
    let started: std::collections::BTreeSet<String> = after
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, c)| c["starts"].as_u64().unwrap() > 0)
        .map(|(n, _)| n.clone())
        .collect();
    assert_eq!(started, broke, "exactly what was broken started: {after}");
    let stats = ff.stats();
    assert_eq!(stats["started_more_than_once"], 0, "{stats}");
    assert_eq!(stats["healthy"], 22, "{stats}");

    // Again, now that nothing is broken: it says so, exits 0, restarts nothing.
    let again = common::rekindle(&[
        "run",
        pb.to_str().unwrap(),
        "--yes",
        "--only",
        "broken",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert_eq!(again.code, Some(0), "{again}");
    assert!(
        again
            .stdout
            .contains("nothing is broken: nothing to restart"),
        "{again}"
    );
    assert_eq!(ff.stats()["starts_total"], stats["starts_total"], "{again}");
    drop(ff);
    drop(unbound);
}

/// Faults on the real path: 10% of container calls answer 500 without
/// acting, 20% of stops and starts act and then answer 500 (a blind retry
/// would restart twice), every call waits a Pareto-tailed latency, a
/// quarter of started processes die at once, and mid-run one host refuses
/// connections and another hangs for 2 s. The run completes with every
/// container healthy, and no container was started more often than its
/// own failures explain (the fake fleet's counts): no restart twice for one
/// intent, no container left stopped.
#[test]
fn fakefleet_run_through_api_errors_lost_answers_latency_and_a_refusing_and_a_hung_host() {
    if !unbound_available(
        "fakefleet_run_through_api_errors_lost_answers_latency_and_a_refusing_and_a_hung_host",
    ) {
        return;
    }
    let scenario = Scenario::load(Path::new(SMOKE)).unwrap();
    let unbound = Unbound::start_zone(&scenario.domain, &zone_names(&scenario), "");
    let dir = tempfile::tempdir().unwrap();
    // Shares high enough that each fault meets the 22 containers' calls
    // (about 50 stops and starts: none after acting at 20% is 1 in 70,000;
    // at 15% it was 3 in 10,000, and it happened once in CI).
    let faults = r#"{"error_rate":0.1,"error_after_rate":0.2,"latency_ms":2,"latency_alpha":1.5,"latency_max_ms":1500,"restart_failure_rate":0.25}"#;
    let ff = FakeFleet::start_with(
        Path::new(SMOKE),
        &unbound.addr(),
        dir.path(),
        &["--faults", faults],
    );
    let text = smoke_playbook(&scenario, &std::fs::read_to_string(&ff.hosts_file).unwrap())
        .replace("retries = 2", "retries = 8");
    let generated = scenario.fleet();
    let up: Vec<String> = generated
        .host_names
        .iter()
        .zip(&generated.down)
        .filter(|(_, down)| !**down)
        .map(|(h, _)| h.clone())
        .collect();
    assert!(up.len() >= 2, "two answering hosts to fault: {up:?}");
    let n = scenario.total_containers();
    let control = ff.control.clone();
    let (refuse, hang) = (up[0].clone(), up[1].clone());
    let injector = inject_host_faults(control, refuse, hang, n);
    let ran = run_json(dir.path(), &text);
    let state = dir.path().join("state");
    let during = injector.join().expect("the injector thread");
    let stats = ff.stats();
    let f = &stats["faults"];
    assert_eq!(
        during["faults"]["hosts_not_ok"]
            .as_object()
            .map(|m| m.len()),
        Some(2),
        "both host faults were on: {during}"
    );
    for counter in [
        "errors_before",
        "errors_after",
        "delayed_calls",
        "failed_starts",
    ] {
        assert!(
            f[counter].as_u64().unwrap() > 0,
            "{counter} was injected: {f}"
        );
    }
    assert!(
        f["hung_calls"].as_u64().unwrap() + f["cut_connections"].as_u64().unwrap() > 0
            || during["starts_total"].as_u64() < stats["starts_total"].as_u64(),
        "the host faults met calls: {f}"
    );
    assert_eq!(
        ran.code,
        Some(0),
        "{ran}\nfake fleet: {stats}\n{}",
        ff.log()
    );
    let summary: Value = serde_json::from_str(ran.stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}\n{ran}"));
    assert_eq!(summary["healthy"], n, "{ran}");
    assert_eq!(
        (
            stats["healthy"].as_u64(),
            stats["exited"].as_u64(),
            stats["never_started"].as_u64()
        ),
        (Some(n), Some(0), Some(0)),
        "every container healthy, none left stopped: {stats}"
    );
    assert_eq!(
        stats["unexplained_starts"], 0,
        "no container started more often than its own failures explain: {stats}\n{ran}"
    );
    // The witness of one restart per intent: no container started more
    // often than rekindle journaled a restart for it.
    assert_no_start_without_intent(&state, &ff, n);
}

/// Once a quarter of the containers started, `refuse` refuses connections
/// and `hang` hangs for 2 s, then both answer again: a thread whose result
/// is the fake fleet's stats while both faults were on.
fn inject_host_faults(
    control: String,
    refuse: String,
    hang: String,
    n: u64,
) -> std::thread::JoinHandle<Value> {
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(120);
        while http_get_json(&control, "/stats")["starts_total"]
            .as_u64()
            .unwrap()
            < n / 4
        {
            assert!(Instant::now() < deadline, "the run never got a quarter in");
            std::thread::sleep(Duration::from_millis(20));
        }
        let mode = |h: &str, m: &str| {
            let v = http_post_json(
                &control,
                &format!("/hosts/{h}/mode"),
                &format!(r#"{{"mode":"{m}"}}"#),
            );
            assert_eq!(v["mode"], m, "{v}");
        };
        mode(&refuse, "refuse");
        mode(&hang, "hang");
        std::thread::sleep(Duration::from_secs(2));
        let during = http_get_json(&control, "/stats");
        mode(&refuse, "ok");
        mode(&hang, "ok");
        during
    })
}

/// The witness of one restart per intent: no container started more often
/// than rekindle journaled a restart for it (in the journals under
/// `state`), and every container was journaled.
fn assert_no_start_without_intent(state: &Path, ff: &FakeFleet, n: u64) {
    let mut intents: HashMap<String, u64> = HashMap::new();
    for entry in std::fs::read_dir(state).unwrap() {
        let (replay, _) = rekindle::journal::read(&entry.unwrap().path()).unwrap();
        for r in replay.records {
            if let rekindle::journal::Record::Intent { id, .. } = r {
                *intents.entry(id).or_default() += 1;
            }
        }
    }
    let containers = ff.containers();
    let over: Vec<_> = containers
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, c)| {
            c["starts"].as_u64().unwrap()
                > intents.get(c["id"].as_str().unwrap()).copied().unwrap_or(0)
        })
        .collect();
    assert!(
        over.is_empty(),
        "started more often than rekindle asked: {over:?}"
    );
    assert!(intents.len() as u64 >= n, "every container journaled");
}

/// One connection setup per Docker host for a whole run, and one resolver:
/// discovery and the runtime share each host's client (the fake fleet
/// counts `GET /version`, the version handshake that opens a client), and
/// the hosts, named by DNS name here, are resolved through one cache
/// (unbound counts the queries: each host name once, however many times
/// discovery, the runtime and its probes need it).
#[test]
fn fakefleet_run_sets_up_each_host_once_and_resolves_its_name_once() {
    if !unbound_available("fakefleet_run_sets_up_each_host_once_and_resolves_its_name_once") {
        return;
    }
    let scenario = Scenario::load(Path::new(SMOKE)).unwrap();
    let hosts = scenario.hosts;
    let host_zone: String = (0..hosts)
        .map(|i| format!("    local-data: \"dockerhost-{i}.hosts.test. 300 IN A 127.0.0.1\"\n"))
        .collect();
    let extra = format!("    local-zone: \"hosts.test.\" static\n{host_zone}");
    let unbound = Unbound::start_zone(&scenario.domain, &zone_names(&scenario), &extra);
    let dir = tempfile::tempdir().unwrap();
    let ff = FakeFleet::start(Path::new(SMOKE), &unbound.addr(), dir.path());
    // The fake fleet's hosts, each by a name of its own.
    let mut named = String::new();
    let mut i = 0;
    for line in std::fs::read_to_string(&ff.hosts_file).unwrap().lines() {
        if let Some(port) = line.strip_prefix("url = \"tcp://127.0.0.1:") {
            named += &format!("url = \"tcp://dockerhost-{i}.hosts.test:{port}\n");
            i += 1;
        } else {
            named += line;
            named += "\n";
        }
    }
    assert_eq!(i, hosts, "{named}");
    // Static pacing: no probe queries, so every query rekindle itself sends
    // to unbound is a host name's.
    let text = smoke_playbook(&scenario, &named).replace(
        "[dns]\n",
        &format!(
            "[resolver]\nnameservers = [\"{}\"]\n[dns]\nadaptive = false\n",
            unbound.addr()
        ),
    );
    let (ran, stats) = run_to_success(&ff, dir.path(), &text);
    assert_eq!(
        stats["started_once"],
        scenario.total_containers(),
        "{stats}"
    );
    let handshakes: Vec<u64> = stats["version_calls_per_host"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(
        handshakes,
        vec![1; hosts as usize],
        "one version handshake per host: {stats}"
    );
    let own = unbound.queries() - stats["queries_sent"].as_u64().unwrap();
    assert_eq!(
        own, hosts as u64,
        "each host name resolved once for the run: {stats}\n{ran}"
    );
}

/// What scale needs of the real path, on a small fleet: the runtime keeps a
/// pool per host and gates from each host's events stream instead of
/// polling. realpath-small (400 containers on 10 hosts) with one lookup per
/// start: every container healthy, none started more often than its own
/// failures explain; at most 1.5 inspects per start (the one before each
/// stop, and fallbacks while a host's stream has said nothing yet: polling
/// at the gate's 250 ms interval through ready times of 0.5–3 s made
/// several per start); no host kept more than `connections_per_host` (2)
/// connections idle throughout a second; and far fewer connection setups
/// than calls (bollard's own client connected once per call).
#[test]
fn fakefleet_run_gates_from_the_events_stream_over_pooled_connections() {
    if !unbound_available("fakefleet_run_gates_from_the_events_stream_over_pooled_connections") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut light = std::fs::read_to_string(REALPATH_SMALL).unwrap();
    for (from, to) in [
        ("configsvr = 5\n", "configsvr = 1\n"),
        ("shard = 5\n", "shard = 1\n"),
        ("router = 41\n", "router = 1\n"),
        ("capacity_qps = 300\n", "capacity_qps = 5000\n"),
    ] {
        assert!(light.contains(from), "realpath-small has {from:?}");
        light = light.replacen(from, to, 1);
    }
    let path = dir.path().join("light.toml");
    std::fs::write(&path, &light).unwrap();
    let scenario = Scenario::load(&path).unwrap();
    let unbound = Unbound::start_zone(&scenario.domain, &zone_names(&scenario), "");
    let ff = FakeFleet::start(&path, &unbound.addr(), dir.path());
    let text = smoke_playbook(&scenario, &std::fs::read_to_string(&ff.hosts_file).unwrap());
    let (ran, stats) = run_to_success(&ff, dir.path(), &text);
    let n = scenario.total_containers();
    assert_eq!(
        (
            stats["healthy"].as_u64(),
            stats["never_started"].as_u64(),
            stats["unexplained_starts"].as_u64()
        ),
        (Some(n), Some(0), Some(0)),
        "{stats}\n{ran}"
    );
    let get = |k: &str| stats[k].as_u64().unwrap_or_else(|| panic!("{k}: {stats}"));
    let (starts, inspects) = (get("starts_total"), get("inspect_calls"));
    assert!(
        inspects as f64 <= 1.5 * starts as f64,
        "{inspects} inspects for {starts} starts: the gate polls instead of reading the events stream\n{stats}"
    );
    let seen = &stats["hosts_seen"];
    let idle = seen["max_idle_second_per_host"].as_i64().unwrap();
    assert!(idle <= 2, "a host kept {idle} connections idle: {stats}");
    let calls = inspects + get("stop_calls") + get("start_calls");
    let setups = seen["accepted_total"].as_u64().unwrap();
    assert!(
        setups * 2 <= calls,
        "{setups} connection setups for {calls} calls: {stats}"
    );
}

/// The real-path benchmark's scenarios (`rekindle-bench real-path`,
/// testbed/bench/) model what it runs: unbound's `ip-ratelimit`, a
/// per-second resolver.
/// The big one keeps the size it exists for. Parsing only: no unbound.
#[test]
fn realpath_scenarios_are_per_second_resolvers_of_the_benchmarks_size() {
    for path in [REALPATH_SMALL, REALPATH_4K] {
        let s = Scenario::load(Path::new(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(
            s.dns.mode,
            ResolverMode::PerSecond,
            "{path}: unbound's ip-ratelimit is a per-second limit"
        );
        assert!(
            s.startup_lookups[SimRole::Router as usize] >= 40,
            "{path}: routers' bursts of startup lookups"
        );
        assert_eq!(s.fleet().all.len() as u64, s.total_containers(), "{path}");
    }
    let big = Scenario::load(Path::new(REALPATH_4K)).unwrap();
    assert!(
        big.total_containers() >= 4_000 && big.hosts >= 90,
        "realpath-4k: {} containers on {} hosts",
        big.total_containers(),
        big.hosts
    );
}

/// A `docker` gate sees what the images' HEALTHCHECK sees, and a
/// rehearsal of the scenario says the same as the fake fleet's real path:
/// images without one (Docker reports running only) pass routers that
/// started before their shards were ready, which stay stuck, in both;
/// images with one hold them until ready, and nothing is left stuck, in
/// both.
#[test]
fn fakefleet_a_docker_gate_leaves_routers_stuck_without_a_healthcheck_as_its_rehearsal_says() {
    if !unbound_available(
        "fakefleet_a_docker_gate_leaves_routers_stuck_without_a_healthcheck_as_its_rehearsal_says",
    ) {
        return;
    }
    let base = std::fs::read_to_string(SMOKE).unwrap();
    assert!(
        base.contains("healthcheck = true\n"),
        "smoke.toml's [docker]"
    );
    for healthcheck in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scenario.toml");
        std::fs::write(
            &path,
            base.replace(
                "healthcheck = true\n",
                &format!("healthcheck = {healthcheck}\n"),
            )
            // Data nodes slow to be ready: a gate that does not wait for
            // them lets routers start first.
            .replace(
                "configsvr = [1.0, 2.0]\nshard = [1.0, 2.0]\n",
                "configsvr = [4.0, 5.0]\nshard = [4.0, 5.0]\n",
            ),
        )
        .unwrap();
        let scenario = Scenario::load(&path).unwrap();
        let unbound = Unbound::start_zone(&scenario.domain, &zone_names(&scenario), "");
        let ff = FakeFleet::start(&path, &unbound.addr(), dir.path());
        let text = smoke_playbook(&scenario, &std::fs::read_to_string(&ff.hosts_file).unwrap());
        let pb = dir.path().join("rehearsed.toml");
        std::fs::write(&pb, &text).unwrap();
        let rehearsed = common::rekindle(&[
            "rehearse",
            pb.to_str().unwrap(),
            "--scenario",
            path.to_str().unwrap(),
            "--output",
            "json",
        ]);
        assert_eq!(rehearsed.code, Some(0), "{rehearsed}");
        let r: Value =
            serde_json::from_str(&rehearsed.stdout).unwrap_or_else(|e| panic!("{e}\n{rehearsed}"));
        let (_, stats) = run_to_success(&ff, dir.path(), &text);
        let (predicted, real) = (
            r["stuck"].as_u64().unwrap(),
            stats["stuck"].as_u64().unwrap(),
        );
        if healthcheck {
            assert_eq!(
                (predicted, real),
                (0, 0),
                "with a HEALTHCHECK: {stats}\n{rehearsed}"
            );
        } else {
            assert!(
                predicted > 0 && real > 0,
                "without a HEALTHCHECK the gate is weak in both: rehearsal {predicted} stuck, real path {real}\n{stats}\n{rehearsed}"
            );
        }
    }
}
