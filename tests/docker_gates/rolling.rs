//! A rolling restart: each primary stepped down and restarted last, never
//! two members of a set down at once.

use super::*;

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
    let rolling = rolling_playbook(&id);
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
        assert_rolled_primary_last(set, members, &time, &ran);
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
    let out = common::docker()
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

/// The run playbook with the mongo gate (and its step-down) for config
/// servers and shards, and shards after the config servers.
fn rolling_playbook(id: &str) -> String {
    run_playbook(id, "", "fail")
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
        )
}

/// One replica set of a rolling restart, from the engine's events (`time`
/// of a container's one die or start) and the containers' logs: down from
/// its die to its start, no two members' spans overlap, the primary goes
/// last, asked to step down before it went down, and no other member was
/// asked.
fn assert_rolled_primary_last(
    set: &str,
    members: &[String],
    time: &dyn Fn(&str, &str) -> i64,
    ran: &common::Ran,
) {
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
    let logs = common::docker().args(["logs", &primary]).output().unwrap();
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
        let text = common::docker().args(["logs", m]).output().unwrap();
        assert!(
            !String::from_utf8_lossy(&text.stdout).contains("replSetStepDown"),
            "{m} is no primary"
        );
    }
}
