//! The router and member gates against dbnode containers: stuck routers
//! restarted until they reach every shard, lag waited for, a member without
//! its replica-set config held, and a survey that finds what is broken.

use super::*;

/// A recovery playbook that restarts routers as soon as the config
/// servers pass (not after the shards): routers come up while the shards
/// are still closed — how a router gets stuck in a real recovery.
fn early_router_playbook(id: &str, router_health: &str) -> String {
    run_playbook(id, "", "fail")
        .replace(
            r#"health = { kind = "exec", command = ["/dbnode", "health"], interval = "250ms", deadline = "30s" }"#,
            r#"health = { kind = "mongo", port = 27019, interval = "250ms", deadline = "30s" }"#,
        )
        .replace(
            r#"health = { kind = "docker", interval = "250ms", deadline = "30s" }"#,
            r#"health = { kind = "mongo", port = 27018, interval = "250ms", deadline = "30s" }"#,
        )
        .replace(
            r#"health = { kind = "tcp", port = 27017, interval = "250ms", deadline = "30s" }"#,
            router_health,
        )
        .replace(r#"after = ["configsvr", "shard"]"#, r#"after = ["configsvr"]"#)
        .replace(
            "max_unavailable_per_replset = 1",
            "max_unavailable_per_replset = \"all\"",
        )
        .replace("stuck_rerestarts = 0", "stuck_rerestarts = 2")
        // The shards open 25 s after their start (gated_specs): every gate
        // gets the time to see them open, and a router restarted again then.
        .replace(r#"deadline = "30s""#, r#"deadline = "90s""#)
}

#[test]
fn router_gate_restarts_stuck_routers_until_they_reach_every_shard_where_hello_passes_them_stuck() {
    if !docker_available("router_gate_restarts_stuck_routers_until_they_reach_every_shard_where_hello_passes_them_stuck") {
        return;
    }
    let id = TestFleet::id_for("gate");
    let net = TestNetwork::create(&id);
    // 2 clusters × (3 config servers + 2 shards × 3 + 4 routers) = 26.
    let specs = gated_specs(&id, 2, 2, 4);
    let expected_names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    let fleet = TestFleet::start_on(&id, on_two_hosts(gated_specs(&id, 2, 2, 4)), Some(&net));
    assert_eq!(fleet.names, expected_names);
    let routers: Vec<&String> = fleet
        .names
        .iter()
        .filter(|n| n.contains("-mongos-"))
        .collect();
    assert_eq!(routers.len(), 8);
    let dir = tempfile::tempdir().unwrap();

    // 1. hello only: every router answers, so the run passes them all —
    //    while they cannot reach their shards.
    let hello_only = early_router_playbook(
        &id,
        r#"health = { kind = "mongo", port = 27017, interval = "250ms", deadline = "30s" }"#,
    );
    let pb = write_playbook(&dir, "hello.toml", &hello_only);
    let state = dir.path().join("state-hello");
    let log = EventLog::follow(&id);
    let ran = rekindle(&["run", &pb, "--yes", "--state-dir", state.to_str().unwrap()]);
    let events = log.stop();
    assert_eq!(ran.code, Some(0), "{ran}");
    for r in &routers {
        assert_eq!(starts(&events).get(*r).copied(), Some(1), "{r}\n{ran}");
    }
    // Give a working router's monitor time it would need; these stay stuck.
    std::thread::sleep(Duration::from_secs(6));
    let after_hello = unreachable_by_router(&specs);
    let stuck: Vec<_> = after_hello.iter().filter(|(_, u)| !u.is_empty()).collect();
    eprintln!(
        "after the hello-only run, {} of 8 routers cannot reach a set: {stuck:?}",
        stuck.len()
    );
    assert!(
        !stuck.is_empty(),
        "the hello-only run was meant to strand routers: {after_hello:?}\n{ran}"
    );
    for (router, sets) in &stuck {
        assert!(
            sets.iter().any(|s| s.contains("-rs0")),
            "{router} should miss a shard: {sets:?}"
        );
    }

    // 2. The router gate, same fleet, same early start: a stuck router is
    //    restarted again once its cluster's members pass, at most
    //    stuck_rerestarts (2) more times, and ends reaching every set.
    let gated = early_router_playbook(
        &id,
        r#"health = { kind = "mongos", port = 27017, stuck_after = "1s", interval = "250ms", deadline = "30s" }"#,
    );
    let pb = write_playbook(&dir, "gate.toml", &gated);
    let state = dir.path().join("state-gate");
    let log = EventLog::follow(&id);
    let ran = rekindle(&["run", &pb, "--yes", "--state-dir", state.to_str().unwrap()]);
    let events = log.stop();
    assert_eq!(ran.code, Some(0), "{ran}");
    let counts = starts(&events);
    let mut rerestarted = 0;
    for r in &routers {
        let n = counts.get(*r).copied().unwrap_or(0);
        assert!((1..=3).contains(&n), "{r} started {n} times\n{ran}");
        if n > 1 {
            rerestarted += 1;
        }
    }
    eprintln!("router gate: {rerestarted} of 8 routers restarted again; starts {counts:?}");
    assert!(
        rerestarted > 0,
        "routers started before their shards must be found stuck: {counts:?}\n{ran}"
    );
    for name in fleet.names.iter().filter(|n| !n.contains("-mongos-")) {
        assert_eq!(counts.get(name).copied(), Some(1), "{name}\n{ran}");
    }
    let log_text = format!("{}{}", ran.stdout, ran.stderr);
    assert!(
        log_text.contains("stuck")
            && log_text.contains("cannot reach")
            && log_text.contains("-rs0"),
        "the stuck router's reason names the shard it cannot reach\n{ran}"
    );
    let after_gate = unreachable_by_router(&specs);
    assert!(
        after_gate.values().all(|u| u.is_empty()),
        "every router reaches every set after the gated run: {after_gate:?}"
    );
}

#[test]
fn member_gate_waits_for_lag_to_close_and_fails_a_member_that_stays_behind_naming_its_lag() {
    if !docker_available(
        "member_gate_waits_for_lag_to_close_and_fails_a_member_that_stays_behind_naming_its_lag",
    ) {
        return;
    }
    let id = TestFleet::id_for("lag");
    // 1 cluster: 3 config servers, 1 shard of 3, 1 router. rs00-1 starts
    // 4 s behind its primary and catches up over 3 s.
    let mut specs = sharded_specs(&id, 1, 1, 1);
    for s in specs.iter_mut() {
        if s.name.ends_with("-0") && !s.name.contains("-mongos-") {
            s.env.push(("DBNODE_PRIMARY".into(), "1".into()));
        }
        if s.name.ends_with("-rs00-1") {
            s.env.push(("DBNODE_LAG_MS".into(), "4000".into()));
            s.env.push(("DBNODE_CATCHUP_MS".into(), "3000".into()));
        }
    }
    let fleet = TestFleet::start(&id, on_two_hosts(specs));
    let dir = tempfile::tempdir().unwrap();
    let member_gate = |deadline: &str| {
        run_playbook(&id, "", "warn")
            .replace(
                r#"health = { kind = "docker", interval = "250ms", deadline = "30s" }"#,
                &format!(r#"health = {{ kind = "mongo", port = 27018, max_lag = "1s", interval = "250ms", deadline = "{deadline}" }}"#),
            )
            .replace("max_unavailable_per_replset = 1", "max_unavailable_per_replset = \"all\"")
    };
    let pb = write_playbook(&dir, "lag.toml", &member_gate("30s"));
    let state = dir.path().join("state");
    let log = EventLog::follow(&id);
    let started = std::time::Instant::now();
    let ran = rekindle(&["run", &pb, "--yes", "--state-dir", state.to_str().unwrap()]);
    let events = log.stop();
    assert_eq!(ran.code, Some(0), "{ran}");
    // The lagging member passes no sooner than its lag is under 1 s: about
    // 2.25 s after its start; the router waits for it.
    let t = |name: &str, action: &str| {
        events
            .iter()
            .filter(|e| e.action == action && e.name.ends_with(name))
            .map(|e| e.time_nano)
            .max()
            .unwrap_or_else(|| panic!("no {action} of {name}: {events:?}"))
    };
    let gap_ms = (t("-mongos-0", "start") - t("-rs00-1", "start")) / 1_000_000;
    assert!(
        gap_ms >= 2000,
        "router started {gap_ms} ms after the lagging member\n{ran}"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    for name in &fleet.names {
        assert_eq!(starts(&events).get(name).copied(), Some(1), "{name}\n{ran}");
    }

    // A member that never catches up: its gate fails at the deadline with
    // the lag in the reason; the wave halts (exit 3).
    let out = common::docker()
        .args(["rm", "-f", &format!("{id}-c0-rs00-1")])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut behind = sharded_specs(&id, 1, 1, 1)
        .into_iter()
        .filter(|s| s.name.ends_with("-rs00-1"))
        .collect::<Vec<_>>();
    behind[0].env.push(("DBNODE_LAG_MS".into(), "60000".into()));
    let _behind = TestFleet::start(&id, on_two_hosts(behind));
    let pb = write_playbook(&dir, "behind.toml", &member_gate("3s"));
    let state = dir.path().join("state-behind");
    let ran = rekindle(&["run", &pb, "--yes", "--state-dir", state.to_str().unwrap()]);
    assert_eq!(ran.code, Some(3), "{ran}");
    let why = format!("{}{}", ran.stdout, ran.stderr);
    assert!(
        why.contains("-rs00-1")
            && why.contains("60.0s behind its primary")
            && why.contains("bound 1.0s"),
        "{ran}"
    );
}

/// Issue 24: a mongod answers `hello` before it has loaded its replica-set
/// config (STARTUP: `isreplicaset: true`, no `setName`, the drivers'
/// RSGhost). The member gate must not pass it: the routers of its cluster
/// start only once every member has joined its set. (Before the SDAM
/// classification, such a reply passed as a "standalone" at once, and the
/// routers started while the shard had no member in it.)
#[test]
fn a_member_without_its_replica_set_config_is_not_passed_and_routers_wait_for_it() {
    if !docker_available(
        "a_member_without_its_replica_set_config_is_not_passed_and_routers_wait_for_it",
    ) {
        return;
    }
    const NO_CONFIG_MS: i64 = 4000;
    let id = TestFleet::id_for("ghost");
    let net = TestNetwork::create(&id);
    // 1 cluster: 3 config servers, 1 shard of 3, 2 routers; the shard's
    // members answer as RSGhost for 4 s after they listen.
    let mut specs = gated_specs_with(&id, 1, 1, 2, 0);
    for s in specs.iter_mut().filter(|s| s.name.contains("-rs00-")) {
        s.env
            .push(("DBNODE_NO_CONFIG_MS".into(), NO_CONFIG_MS.to_string()));
    }
    let ports = ports_of(&specs);
    let kept = specs.clone();
    let fleet = TestFleet::start_on(&id, on_two_hosts(specs), Some(&net));
    wait_listening(&ports);
    let dir = tempfile::tempdir().unwrap();
    let pb = write_playbook(&dir, "ghost.toml", &shipped_gates_playbook(&id, ""));
    let state = dir.path().join("state");
    let log = EventLog::follow(&id);
    let ran = rekindle(&["run", &pb, "--yes", "--state-dir", state.to_str().unwrap()]);
    let events = log.stop();
    assert_eq!(ran.code, Some(0), "{ran}");
    for name in &fleet.names {
        assert_eq!(starts(&events).get(name).copied(), Some(1), "{name}\n{ran}");
    }
    let start_of = |name: &str| {
        events
            .iter()
            .filter(|e| e.action == "start" && e.name == name)
            .map(|e| e.time_nano)
            .max()
            .unwrap_or_else(|| panic!("no start of {name}"))
    };
    let members: Vec<&String> = fleet
        .names
        .iter()
        .filter(|n| n.contains("-rs00-"))
        .collect();
    let joined = members.iter().map(|m| start_of(m)).max().unwrap() + NO_CONFIG_MS * 1_000_000;
    for router in fleet.names.iter().filter(|n| n.contains("-mongos-")) {
        let early_ms = (joined - start_of(router)) / 1_000_000;
        assert!(
            start_of(router) >= joined,
            "{router} started {early_ms} ms before the shard's last member loaded its config\n{ran}"
        );
    }
    assert!(
        unreachable_by_router(&kept).values().all(|u| u.is_empty()),
        "every router reaches every set"
    );
}

/// Issue 25, item 1: `rekindle survey` asks each container its own gate and
/// restarts nothing. A router whose shard registry points at nothing is
/// broken from the first survey (exit 5); with a shard member stopped too,
/// exactly those two are found (down, and broken with the router gate's
/// reason), the rest ok, exit 5, and no container was started.
#[test]
fn docker_survey_finds_exactly_the_stopped_member_and_the_cut_router_and_restarts_nothing() {
    if !docker_available(
        "docker_survey_finds_exactly_the_stopped_member_and_the_cut_router_and_restarts_nothing",
    ) {
        return;
    }
    let id = TestFleet::id_for("survey");
    let net = TestNetwork::create(&id);
    let mut specs = gated_specs_with(&id, 1, 1, 2, 0);
    let cut = format!("{id}-c0-mongos-1");
    for s in specs.iter_mut().filter(|s| s.name == cut) {
        for (k, v) in s.env.iter_mut() {
            if k == "DBNODE_SHARDS" {
                // Its shard's members are named where nothing listens.
                *v = v.replace(&format!("{id}-c0-rs00-"), "nowhere-rs00-");
            }
        }
    }
    let ports = ports_of(&specs);
    let fleet = TestFleet::start_on(&id, on_two_hosts(specs), Some(&net));
    wait_listening(&ports);
    let dir = tempfile::tempdir().unwrap();
    let pb = write_playbook(&dir, "survey.toml", &shipped_gates_playbook(&id, ""));
    let verdicts = |ran: &Ran| -> BTreeMap<String, (String, String)> {
        let doc: serde_json::Value =
            serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("survey JSON: {e}\n{ran}"));
        doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["container"].as_str().unwrap().to_string(),
                    (
                        f["verdict"].as_str().unwrap().to_string(),
                        f["reason"].as_str().unwrap_or("").to_string(),
                    ),
                )
            })
            .collect()
    };
    // The cut router is broken from the start; the rest is healthy.
    let log = EventLog::follow(&id);
    let first = rekindle(&["survey", &pb, "--output", "json"]);
    let v = verdicts(&first);
    assert_eq!(v.len(), fleet.names.len(), "{first}");
    assert_eq!(first.code, Some(5), "{first}");
    let stopped = format!("{id}-c0-rs00-2");
    let out = common::docker()
        .args(["stop", "-t", "1", &stopped])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ran = rekindle(&["survey", &pb, "--output", "json"]);
    let events = log.stop();
    let v = verdicts(&ran);
    assert_eq!(ran.code, Some(5), "{ran}");
    for name in &fleet.names {
        let (verdict, reason) = &v[name];
        let want = if *name == stopped {
            "down"
        } else if *name == cut {
            "broken"
        } else {
            "ok"
        };
        assert_eq!(verdict, want, "{name}: {reason}\n{ran}");
    }
    assert!(
        v[&cut].1.contains("rs00"),
        "the router gate names the set it cannot reach: {:?}",
        v[&cut].1
    );
    assert!(
        starts(&events).is_empty(),
        "a survey restarts nothing: {:?}",
        starts(&events)
    );
    // The table says the same, per cluster and role.
    let table = rekindle(&["survey", &pb]);
    assert_eq!(table.code, Some(5), "{table}");
    assert!(
        table.stdout.contains("1 broken, 1 down, 0 unknown"),
        "{table}"
    );
    drop(fleet);
}
