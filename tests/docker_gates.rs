//! The MongoDB health gates on the real Docker Engine, with the dbnode
//! fixture speaking the wire protocol: a router gate that sees a mongos
//! which answers `hello` but cannot reach its shards (the incident), and a
//! member gate that waits for replication lag to close. Docker's own event
//! log is the witness of every start; the fixture's `connPoolStats`,
//! asked by the test itself, is the witness of what the routers reach.

use crate::common;

use common::*;
use std::collections::BTreeMap;
use std::time::Duration;

fn write_playbook(dir: &tempfile::TempDir, file: &str, text: &str) -> String {
    let path = dir.path().join(file);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// The container's address on its network.
fn ip_of(name: &str) -> std::net::IpAddr {
    let out = std::process::Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
            name,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .next()
        .and_then(|ip| ip.parse().ok())
        .unwrap_or_else(|| panic!("no address for {name}: {text:?}"))
}

/// The replica sets of each cluster (set → "host:port" members), from the
/// specs' labels and ports.
fn sets_of(specs: &[Spec]) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for s in specs {
        let label = |k: &str| {
            s.labels
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        let (Some(cluster), Some(set)) = (label("db.cluster"), label("db.replset")) else {
            continue;
        };
        let port = s
            .env
            .iter()
            .find(|(k, _)| k == "DBNODE_PORT")
            .map(|(_, v)| v.clone())
            .unwrap();
        out.entry(cluster)
            .or_default()
            .entry(set)
            .or_default()
            .push(format!("{}:{port}", s.name));
    }
    out
}

/// Each spec's container name and the port its fixture listens on.
fn ports_of(specs: &[Spec]) -> Vec<(String, u16)> {
    specs
        .iter()
        .map(|s| {
            let port = s.env.iter().find(|(k, _)| k == "DBNODE_PORT").unwrap();
            (s.name.clone(), port.1.parse().unwrap())
        })
        .collect()
}

/// Waits until every container listens: the fleet as the incident leaves
/// it, every process up (a fixture mongos first tries its shards, a few
/// seconds, before it listens).
fn wait_listening(ports: &[(String, u16)]) {
    for (name, port) in ports {
        let addr = std::net::SocketAddr::new(ip_of(name), *port);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "{name} ({addr}) never listened"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Each router of `specs` as its replica-set monitor sees its cluster now:
/// the sets it cannot reach (empty: it reaches every one).
fn unreachable_by_router(specs: &[Spec]) -> BTreeMap<String, Vec<String>> {
    let sets = sets_of(specs);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut out = BTreeMap::new();
    for s in specs.iter().filter(|s| s.name.contains("-mongos-")) {
        let cluster = s
            .labels
            .iter()
            .find(|(k, _)| k == "db.cluster")
            .unwrap()
            .1
            .clone();
        let expected: Vec<String> = sets[&cluster].keys().cloned().collect();
        let addr = std::net::SocketAddr::new(ip_of(&s.name), 27017);
        let view = rt
            .block_on(rekindle::health::mongo::with_conn(
                &rekindle::health::mongo::Target::plain(addr),
                Duration::from_secs(5),
                |c| Box::pin(c.router_view()),
            ))
            .unwrap_or_else(|e| panic!("connPoolStats on {}: {e}", s.name));
        out.insert(s.name.clone(), view.unreachable(&expected));
    }
    out
}

/// `sharded_specs` with each mongos told its cluster's replica sets, and
/// each shard member slow to open its port (a mongod replaying its journal).
fn gated_specs(id: &str, clusters: usize, shards: usize, routers: usize) -> Vec<Spec> {
    // Long enough that routers started once the config servers pass (a
    // second or two, more on a loaded machine) find the shards closed.
    gated_specs_with(id, clusters, shards, routers, 10_000)
}

fn gated_specs_with(
    id: &str,
    clusters: usize,
    shards: usize,
    routers: usize,
    listen_delay_ms: u64,
) -> Vec<Spec> {
    let mut specs = sharded_specs(id, clusters, shards, routers);
    let sets = sets_of(&specs);
    for s in specs.iter_mut() {
        if s.name.contains("-mongos-") {
            let cluster = s
                .labels
                .iter()
                .find(|(k, _)| k == "db.cluster")
                .unwrap()
                .1
                .clone();
            let shards: Vec<String> = sets[&cluster]
                .iter()
                .map(|(set, hosts)| format!("{set}={}", hosts.join(",")))
                .collect();
            s.env.push(("DBNODE_SHARDS".into(), shards.join(";")));
        } else if s.name.contains("-rs") {
            s.env
                .push(("DBNODE_LISTEN_DELAY_MS".into(), listen_delay_ms.to_string()));
        }
        // One primary per set: member 0.
        if s.name.ends_with("-0") && !s.name.contains("-mongos-") {
            s.env.push(("DBNODE_PRIMARY".into(), "1".into()));
        }
    }
    specs
}

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
    let out = std::process::Command::new("docker")
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

/// Every file under `dir`, read as text (journals, reports).
fn all_text_under(dir: &std::path::Path) -> String {
    let mut out = String::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    }
    out
}

#[test]
fn credentials_authenticate_the_gates_and_a_wrong_password_stops_the_run_in_preflight() {
    if !docker_available(
        "credentials_authenticate_the_gates_and_a_wrong_password_stops_the_run_in_preflight",
    ) {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    const RIGHT: &str = "correct-horse-7Qx";
    const WRONG: &str = "wrong-battery-9Zk";
    let id = TestFleet::id_for("auth");
    let net = TestNetwork::create(&id);
    // 1 cluster: 3 config servers, 1 shard of 3, 2 routers; every process
    // requires SCRAM-SHA-256 for anything but hello.
    let mut specs = gated_specs_with(&id, 1, 1, 2, 0);
    for s in specs.iter_mut() {
        s.env.push(("DBNODE_AUTH_USER".into(), "rekindle".into()));
        s.env.push(("DBNODE_AUTH_PASSWORD".into(), RIGHT.into()));
    }
    let ports = ports_of(&specs);
    let fleet = TestFleet::start_on(&id, on_two_hosts(specs), Some(&net));
    wait_listening(&ports);
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("mongo-password");
    let gated = |password_file: &std::path::Path| {
        run_playbook(&id, "", "fail")
            .replace(
                r#"health = { kind = "exec", command = ["/dbnode", "health"], interval = "250ms", deadline = "30s" }"#,
                r#"health = { kind = "mongo", port = 27019, max_lag = "5s", interval = "250ms", deadline = "30s" }"#,
            )
            .replace(
                r#"health = { kind = "docker", interval = "250ms", deadline = "30s" }"#,
                r#"health = { kind = "mongo", port = 27018, max_lag = "5s", interval = "250ms", deadline = "30s" }"#,
            )
            .replace(
                r#"health = { kind = "tcp", port = 27017, interval = "250ms", deadline = "30s" }"#,
                r#"health = { kind = "mongos", port = 27017, stuck_after = "2s", interval = "250ms", deadline = "30s" }"#,
            )
            + &format!("[mongo]\nuser = \"rekindle\"\npassword_file = {:?}\n", password_file.to_str().unwrap())
    };
    let pb = write_playbook(&dir, "auth.toml", &gated(&pw));

    // The right password: every gate authenticates and passes.
    std::fs::write(&pw, format!("{RIGHT}\n")).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let state = dir.path().join("state-right");
    let report = dir.path().join("report-right");
    let log = EventLog::follow(&id);
    let ran = rekindle(&[
        "run",
        &pb,
        "--yes",
        "--state-dir",
        state.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    let events = log.stop();
    assert_eq!(ran.code, Some(0), "{ran}");
    assert!(ran.stderr.contains("authenticated, connPoolStats"), "{ran}");
    for name in &fleet.names {
        assert_eq!(starts(&events).get(name).copied(), Some(1), "{name}\n{ran}");
    }
    let written = all_text_under(&state) + &all_text_under(&report);
    assert!(!written.is_empty());
    for text in [&ran.stdout, &ran.stderr, &written] {
        assert!(!text.contains(RIGHT), "the password leaked");
    }

    // A wrong password: pre-flight stops the run, exit 2, nothing
    // restarted, the container and "authentication failed" named.
    std::fs::write(&pw, format!("{WRONG}\n")).unwrap();
    let state = dir.path().join("state-wrong");
    let log = EventLog::follow(&id);
    let ran = rekindle(&["run", &pb, "--yes", "--state-dir", state.to_str().unwrap()]);
    let events = log.stop();
    assert_eq!(ran.code, Some(2), "{ran}");
    let out = format!("{}{}", ran.stdout, ran.stderr);
    assert!(
        out.contains("pre-flight failed") && out.contains("authentication failed"),
        "{ran}"
    );
    assert!(
        fleet
            .names
            .iter()
            .any(|n| out.contains(&format!("container {n} "))),
        "the failure names the container\n{ran}"
    );
    assert!(starts(&events).is_empty(), "nothing restarted: {events:?}");
    // A survey with the wrong password: refused once by its pre-flight,
    // not "authentication failed" as every container's finding.
    let surveyed = rekindle(&["survey", &pb]);
    assert_eq!(surveyed.code, Some(2), "{surveyed}");
    let said = format!("{}{}", surveyed.stdout, surveyed.stderr);
    assert!(
        said.contains("authentication failed") && !said.contains("Not ok:"),
        "{surveyed}"
    );
    assert!(
        said.matches("authentication failed").count() < fleet.names.len(),
        "named once, not per container: {surveyed}"
    );
    for text in [&ran.stdout, &ran.stderr, &all_text_under(&state)] {
        assert!(
            !text.contains(WRONG) && !text.contains(RIGHT),
            "the password leaked"
        );
    }

    // The file readable by everyone, or missing: a located error (exit 2).
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let ran = rekindle(&["run", &pb, "--yes", "--state-dir", state.to_str().unwrap()]);
    assert_eq!(ran.code, Some(2), "{ran}");
    assert!(
        ran.stderr.contains("mongo.password_file") && ran.stderr.contains("readable by every user"),
        "{ran}"
    );
    let missing = write_playbook(&dir, "missing.toml", &gated(&dir.path().join("nope")));
    let ran = rekindle(&[
        "run",
        &missing,
        "--yes",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert_eq!(ran.code, Some(2), "{ran}");
    assert!(
        ran.stderr.contains("mongo.password_file") && ran.stderr.contains("nope"),
        "{ran}"
    );
    assert!(!ran.stderr.contains(WRONG));
}

#[test]
fn rolling_restart_steps_each_primary_down_and_restarts_it_last_never_two_members_of_a_set_down() {
    if !docker_available("rolling_restart_steps_each_primary_down_and_restarts_it_last_never_two_members_of_a_set_down") {
        return;
    }
    let id = TestFleet::id_for("roll");
    // 1 cluster: 3 config servers, 2 shards × 3, 1 router. Member 1 of each
    // set is its primary (not first, not last by name: the plan must ask).
    let mut specs = sharded_specs(&id, 1, 2, 1);
    for s in specs.iter_mut() {
        if s.name.ends_with("-1") && !s.name.contains("-mongos-") {
            s.env.push(("DBNODE_PRIMARY".into(), "1".into()));
        }
    }
    let fleet = TestFleet::start(&id, on_two_hosts(specs));
    let dir = tempfile::tempdir().unwrap();
    // MongoDB's procedure: config servers, then shards, then routers; one
    // member of a set at a time, secondaries first, the primary stepped
    // down and restarted last.
    let rolling = run_playbook(&id, "", "fail")
        .replace(
            r#"health = { kind = "exec", command = ["/dbnode", "health"], interval = "250ms", deadline = "30s" }"#,
            r#"health = { kind = "mongo", port = 27019, step_down = "5s", interval = "250ms", deadline = "30s" }"#,
        )
        .replace(
            r#"health = { kind = "docker", interval = "250ms", deadline = "30s" }"#,
            r#"health = { kind = "mongo", port = 27018, step_down = "5s", interval = "250ms", deadline = "30s" }"#,
        )
        .replace(
            "name = \"shard\"\nselector = { \"db.role\" = \"shard\" }\n",
            "name = \"shard\"\nselector = { \"db.role\" = \"shard\" }\nafter = [\"configsvr\"]\n",
        );
    assert!(rolling.contains("after = [\"configsvr\"]\n"), "{rolling}");
    assert!(rolling.contains("max_unavailable_per_replset = 1"));
    let pb = write_playbook(&dir, "rolling.toml", &rolling);
    let state = dir.path().join("state");
    let log = EventLog::follow(&id);
    let ran = rekindle(&["run", &pb, "--yes", "--state-dir", state.to_str().unwrap()]);
    let events = log.stop();
    assert_eq!(ran.code, Some(0), "{ran}");
    assert!(ran.stderr.contains("3 primaries found"), "{ran}");
    let time = |name: &str, action: &str| -> i64 {
        let t: Vec<i64> = events
            .iter()
            .filter(|e| e.name == name && e.action == action)
            .map(|e| e.time_nano)
            .collect();
        assert_eq!(t.len(), 1, "{name} {action}: {t:?}\n{ran}");
        t[0]
    };
    let sets: BTreeMap<String, Vec<String>> = {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for n in fleet.names.iter().filter(|n| !n.contains("-mongos-")) {
            m.entry(n[..n.rfind('-').unwrap()].to_string())
                .or_default()
                .push(n.clone());
        }
        m
    };
    assert_eq!(sets.len(), 3);
    for (set, members) in &sets {
        let primary = format!("{set}-1");
        // Down from its die to its start; no two members' spans overlap.
        let mut spans: Vec<(i64, i64, &String)> = members
            .iter()
            .map(|m| (time(m, "die"), time(m, "start"), m))
            .collect();
        spans.sort();
        for pair in spans.windows(2) {
            assert!(
                pair[0].1 < pair[1].0,
                "{} was down until {} but {} went down at {}: two members of {set} down\n{ran}",
                pair[0].2,
                pair[0].1,
                pair[1].2,
                pair[1].0
            );
        }
        assert_eq!(
            spans.last().unwrap().2,
            &primary,
            "the primary goes last in {set}: {spans:?}"
        );
        // Asked to step down before it went down.
        let logs = std::process::Command::new("docker")
            .args(["logs", &primary])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&logs.stdout);
        let asked_ms: i64 = text
            .lines()
            .find_map(|l| l.strip_prefix("replSetStepDown at "))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|ms| ms.parse().ok())
            .unwrap_or_else(|| panic!("{primary} was never asked to step down: {text}"));
        assert!(
            asked_ms * 1_000_000 <= time(&primary, "die"),
            "{primary} stepped down after it went down"
        );
        for m in members.iter().filter(|m| **m != primary) {
            let text = std::process::Command::new("docker")
                .args(["logs", m])
                .output()
                .unwrap();
            assert!(
                !String::from_utf8_lossy(&text.stdout).contains("replSetStepDown"),
                "{m} is no primary"
            );
        }
    }
    // Config servers before shards before the router.
    let last_start = |part: &str| {
        fleet
            .names
            .iter()
            .filter(|n| n.contains(part))
            .map(|n| time(n, "start"))
            .max()
            .unwrap()
    };
    let first_die = |part: &str| {
        fleet
            .names
            .iter()
            .filter(|n| n.contains(part))
            .map(|n| time(n, "die"))
            .min()
            .unwrap()
    };
    assert!(
        last_start("-cfg-") < first_die("-rs"),
        "config servers first\n{ran}"
    );
    assert!(
        last_start("-rs") < first_die("-mongos-"),
        "routers last\n{ran}"
    );

    // A primary that cannot step down (no secondary caught up) is never
    // restarted: the run halts naming it and MongoDB's refusal.
    let stuck = format!("{id}-c0-rs00-1");
    let out = std::process::Command::new("docker")
        .args(["rm", "-f", &stuck])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut refusing: Vec<Spec> = sharded_specs(&id, 1, 2, 1)
        .into_iter()
        .filter(|s| s.name == stuck)
        .collect();
    refusing[0].env.push(("DBNODE_PRIMARY".into(), "1".into()));
    refusing[0]
        .env
        .push(("DBNODE_STEPDOWN_FAIL".into(), "1".into()));
    let _refusing = TestFleet::start(&id, on_two_hosts(refusing));
    let state = dir.path().join("state-refusing");
    let log = EventLog::follow(&id);
    let ran = rekindle(&["run", &pb, "--yes", "--state-dir", state.to_str().unwrap()]);
    let events = log.stop();
    assert_eq!(ran.code, Some(3), "{ran}");
    let why = format!("{}{}", ran.stdout, ran.stderr);
    assert!(
        why.contains(&stuck) && why.contains("step-down") && why.contains("code 262"),
        "{ran}"
    );
    assert!(
        !events.iter().any(|e| e.name == stuck && e.action == "die"),
        "a primary that did not step down must not be restarted\n{ran}"
    );
}

#[test]
fn gates_over_tls_with_client_certificates_and_a_refused_handshake_stops_the_run_in_preflight() {
    if !docker_available("gates_over_tls_with_client_certificates_and_a_refused_handshake_stops_the_run_in_preflight") {
        return;
    }
    let id = TestFleet::id_for("tls");
    // Fixed addresses, so that each certificate can carry the address
    // rekindle dials (and the name the mongos dials).
    let pid = std::process::id();
    let subnet = format!("10.{}.{}", 100 + pid % 100, (pid / 100) % 250);
    let net = TestNetwork::create_with(&id, &["--subnet", &format!("{subnet}.0/24")]);
    let dir = tempfile::tempdir().unwrap();
    let ca = common::tls::Ca::new(dir.path(), "mongo");
    let pem = |path: &str| std::fs::read_to_string(path).unwrap();
    // 1 cluster: 3 config servers, 1 shard of 3, 1 router; TLS only, client
    // certificates required.
    let mut specs = gated_specs_with(&id, 1, 1, 1, 0);
    for (i, s) in specs.iter_mut().enumerate() {
        let ip = format!("{subnet}.{}", 10 + i);
        let leaf = ca.issue(
            &s.name,
            &format!(
                "subjectAltName=DNS:{},IP:{ip}\nextendedKeyUsage=serverAuth,clientAuth\n",
                s.name
            ),
        );
        s.env.push(("DBNODE_TLS_CERT".into(), pem(&leaf.cert)));
        s.env.push(("DBNODE_TLS_KEY".into(), pem(&leaf.key)));
        s.env.push(("DBNODE_TLS_CA".into(), pem(&ca.cert)));
        s.ip = Some(ip);
    }
    let ports = ports_of(&specs);
    let fleet = TestFleet::start_on(&id, on_two_hosts(specs), Some(&net));
    wait_listening(&ports);
    let client = ca.client("rekindle");
    let playbook = |tls: &str| {
        run_playbook(&id, "", "fail")
            .replace(
                r#"health = { kind = "exec", command = ["/dbnode", "health"], interval = "250ms", deadline = "30s" }"#,
                r#"health = { kind = "mongo", port = 27019, max_lag = "5s", interval = "250ms", deadline = "30s" }"#,
            )
            .replace(
                r#"health = { kind = "docker", interval = "250ms", deadline = "30s" }"#,
                r#"health = { kind = "mongo", port = 27018, max_lag = "5s", interval = "250ms", deadline = "30s" }"#,
            )
            .replace(
                r#"health = { kind = "tcp", port = 27017, interval = "250ms", deadline = "30s" }"#,
                r#"health = { kind = "mongos", port = 27017, stuck_after = "2s", interval = "250ms", deadline = "30s" }"#,
            )
            + "[mongo.tls]\n"
            + tls
    };
    let pb = write_playbook(
        &dir,
        "tls.toml",
        &playbook(&format!(
            "ca = {:?}\ncert = {:?}\nkey = {:?}\n",
            ca.cert, client.cert, client.key
        )),
    );
    let state = dir.path().join("state");
    let log = EventLog::follow(&id);
    let ran = rekindle(&["run", &pb, "--yes", "--state-dir", state.to_str().unwrap()]);
    let events = log.stop();
    assert_eq!(ran.code, Some(0), "{ran}");
    assert!(
        ran.stderr.contains("(TLS, ") && ran.stderr.contains("connPoolStats"),
        "{ran}"
    );
    for name in &fleet.names {
        assert_eq!(starts(&events).get(name).copied(), Some(1), "{name}\n{ran}");
    }

    // No client certificate: the servers refuse the handshake; pre-flight
    // stops the run, nothing restarted.
    let pb = write_playbook(
        &dir,
        "no-cert.toml",
        &playbook(&format!("ca = {:?}\n", ca.cert)),
    );
    let state = dir.path().join("state-no-cert");
    let log = EventLog::follow(&id);
    let ran = rekindle(&["run", &pb, "--yes", "--state-dir", state.to_str().unwrap()]);
    let events = log.stop();
    assert_eq!(ran.code, Some(2), "{ran}");
    assert!(
        ran.stderr.contains("pre-flight failed") && ran.stderr.contains("TLS"),
        "{ran}"
    );
    assert!(starts(&events).is_empty(), "nothing restarted: {events:?}");
}

/// The shipped gates (`mongo` on members, `mongos` on routers), as
/// docs/playbook.md recommends them.
fn shipped_gates_playbook(id: &str, member_extra: &str) -> String {
    run_playbook(id, "", "fail")
        .replace(
            r#"health = { kind = "exec", command = ["/dbnode", "health"], interval = "250ms", deadline = "30s" }"#,
            &format!(r#"health = {{ kind = "mongo", port = 27019, interval = "250ms", deadline = "30s"{member_extra} }}"#),
        )
        .replace(
            r#"health = { kind = "docker", interval = "250ms", deadline = "30s" }"#,
            &format!(r#"health = {{ kind = "mongo", port = 27018, interval = "250ms", deadline = "30s"{member_extra} }}"#),
        )
        .replace(
            r#"health = { kind = "tcp", port = 27017, interval = "250ms", deadline = "30s" }"#,
            r#"health = { kind = "mongos", port = 27017, stuck_after = "2s", interval = "250ms", deadline = "30s" }"#,
        )
        .replace("max_unavailable_per_replset = 1", "max_unavailable_per_replset = \"all\"")
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

/// Issue 24: SCRAM-SHA-1 end to end (a server that offers only SHA-1, and
/// wants the empty last SASL round of servers before 4.4): every gate
/// authenticates (the member gate's `replSetGetStatus`, the router gate's
/// `connPoolStats`) and the run passes; a wrong password is refused in the
/// pre-flight.
#[test]
fn scram_sha1_with_the_extra_sasl_round_authenticates_every_gate() {
    if !docker_available("scram_sha1_with_the_extra_sasl_round_authenticates_every_gate") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    const RIGHT: &str = "sha1-horse-4Lp";
    let id = TestFleet::id_for("sha1");
    let net = TestNetwork::create(&id);
    let mut specs = gated_specs_with(&id, 1, 1, 1, 0);
    for s in specs.iter_mut() {
        s.env.push(("DBNODE_AUTH_USER".into(), "rekindle".into()));
        s.env.push(("DBNODE_AUTH_PASSWORD".into(), RIGHT.into()));
        s.env
            .push(("DBNODE_AUTH_MECHS".into(), "SCRAM-SHA-1".into()));
        s.env.push(("DBNODE_SASL_EXTRA_ROUND".into(), "1".into()));
    }
    let ports = ports_of(&specs);
    let fleet = TestFleet::start_on(&id, on_two_hosts(specs), Some(&net));
    wait_listening(&ports);
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("mongo-password");
    let text = shipped_gates_playbook(&id, r#", max_lag = "5s""#)
        + &format!(
            "[mongo]\nuser = \"rekindle\"\npassword_file = {:?}\n",
            pw.to_str().unwrap()
        );
    let pb = write_playbook(&dir, "sha1.toml", &text);
    std::fs::write(&pw, format!("{RIGHT}\n")).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let state = dir.path().join("state");
    let log = EventLog::follow(&id);
    let ran = rekindle(&["run", &pb, "--yes", "--state-dir", state.to_str().unwrap()]);
    let events = log.stop();
    assert_eq!(ran.code, Some(0), "{ran}");
    assert!(ran.stderr.contains("authenticated, connPoolStats"), "{ran}");
    assert!(
        ran.stderr.contains("authenticated, replSetGetStatus"),
        "{ran}"
    );
    for name in &fleet.names {
        assert_eq!(starts(&events).get(name).copied(), Some(1), "{name}\n{ran}");
    }
    std::fs::write(&pw, "not-the-password\n").unwrap();
    let ran = rekindle(&[
        "run",
        &pb,
        "--yes",
        "--state-dir",
        dir.path().join("s2").to_str().unwrap(),
    ]);
    assert_eq!(ran.code, Some(2), "{ran}");
    assert!(
        format!("{}{}", ran.stdout, ran.stderr).contains("authentication failed"),
        "{ran}"
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
    let out = std::process::Command::new("docker")
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
