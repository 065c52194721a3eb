//! The fake fleet (`rekindle-fakefleet`) on the real path: its Docker
//! Engine API through bollard (list with label filters, inspect, restart,
//! stop + start, the events stream), its containers' real DNS queries to a
//! real unbound (whose own counters are the witness), unbound's
//! `ip-ratelimit` dropping a router's burst, and `rekindle run` recovering
//! the smoke scenario's fleet end to end. Every process a test starts is
//! killed by its guard, also when the test fails.

use crate::common;

use bollard::query_parameters::{
    EventsOptionsBuilder, InspectContainerOptions, ListContainersOptions, RestartContainerOptions,
    StartContainerOptions, StopContainerOptions,
};
use bollard::Docker;
use common::fakefleet::{http_get_json, http_post_json, smoke_playbook, zone_names, FakeFleet};
use common::unbound::{unbound_available, Unbound};
use futures_util::StreamExt;
use rekindle::scenario::{ResolverMode, Scenario, SimRole};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

const SMOKE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/scenarios/smoke.toml");
const SMOKE_PARTIAL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/config/scenarios/smoke-partial.toml"
);
const REALPATH_SMALL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/benches/scenarios/realpath-small.toml"
);
const REALPATH_4K: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/benches/scenarios/realpath-4k.toml"
);

/// The smoke scenario's fake fleet, its zone served by a real unbound, in
/// a temporary folder. Bound in this order, they drop in reverse: the
/// fleet first, unbound last.
fn smoke_fleet() -> (Scenario, Unbound, tempfile::TempDir, FakeFleet) {
    let scenario = Scenario::load(Path::new(SMOKE)).unwrap();
    let unbound = Unbound::start_zone(&scenario.domain, &zone_names(&scenario), "");
    let dir = tempfile::tempdir().unwrap();
    let ff = FakeFleet::start(Path::new(SMOKE), &unbound.addr(), dir.path());
    (scenario, unbound, dir, ff)
}

/// Polls `f` every 100 ms until it holds or `limit` passes.
async fn eventually(limit: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

async fn inspect(d: &Docker, id: &str) -> bollard::models::ContainerState {
    d.inspect_container(id, None::<InspectContainerOptions>)
        .await
        .unwrap()
        .state
        .unwrap()
}

fn health(s: &bollard::models::ContainerState) -> String {
    s.health
        .as_ref()
        .and_then(|h| h.status)
        .map(|x| x.to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fakefleet_serves_bollard_and_a_restart_sends_real_queries_then_turns_healthy() {
    if !unbound_available(
        "fakefleet_serves_bollard_and_a_restart_sends_real_queries_then_turns_healthy",
    ) {
        return;
    }
    let (scenario, unbound, _dir, ff) = smoke_fleet();
    let fleet_model = scenario.fleet();
    assert_eq!(ff.hosts.len(), scenario.hosts as usize);

    // A config server and what its host holds of its cluster's config servers.
    let i = fleet_model
        .sim
        .iter()
        .position(|s| s.role == SimRole::Configsvr && !fleet_model.down[s.host as usize])
        .unwrap();
    let target = &fleet_model.all[i];
    let cluster = target.labels.get("db.cluster").unwrap().to_string();
    let expected: Vec<&str> = fleet_model
        .all
        .iter()
        .filter(|c| {
            c.host == target.host
                && c.labels.get("db.role") == Some("configsvr")
                && c.labels.get("db.cluster") == Some(cluster.as_str())
        })
        .map(|c| c.id.as_str())
        .collect();
    let docker = ff.docker(&target.host).await;

    let filters = HashMap::from([(
        "label".to_string(),
        vec![
            "db.role=configsvr".to_string(),
            format!("db.cluster={cluster}"),
        ],
    )]);
    let listed = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .unwrap();
    let mut ids: Vec<&str> = listed.iter().map(|c| c.id.as_deref().unwrap()).collect();
    ids.sort();
    let mut want = expected.clone();
    want.sort();
    assert_eq!(ids, want, "label filters are ANDed, per host");
    let summary = listed
        .iter()
        .find(|c| c.id.as_deref() == Some(target.id.as_str()))
        .unwrap();
    assert_eq!(
        summary.names.as_ref().unwrap(),
        &vec![format!("/{}", target.name)]
    );
    assert_eq!(
        summary
            .labels
            .as_ref()
            .unwrap()
            .get("db.replset")
            .map(String::as_str),
        target.labels.get("db.replset")
    );
    // A key alone matches every container carrying it.
    let with_key = HashMap::from([("label".to_string(), vec!["db.replset".to_string()])]);
    let keyed = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(with_key),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert!(
        keyed
            .iter()
            .all(|c| c.labels.as_ref().unwrap().contains_key("db.replset"))
            && keyed.len() >= expected.len()
    );

    let before = inspect(&docker, &target.id).await;
    assert_eq!(before.running, Some(true));
    assert_eq!(
        health(&before),
        "unhealthy",
        "at start every container is disconnected"
    );
    let missing = docker
        .inspect_container("no-such-container", None::<InspectContainerOptions>)
        .await
        .unwrap_err();
    assert!(
        matches!(
            missing,
            bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                ..
            }
        ),
        "{missing}"
    );

    // Events of this cluster, live from before the restart.
    let ev_filters = HashMap::from([
        ("type".to_string(), vec!["container".to_string()]),
        (
            "event".to_string(),
            vec![
                "start".to_string(),
                "die".to_string(),
                "health_status".to_string(),
            ],
        ),
        ("label".to_string(), vec![format!("db.cluster={cluster}")]),
    ]);
    // bollard sends the request when the stream is first polled: follow it
    // from a task of its own, and give the subscription a moment.
    let mut stream = docker.events(Some(
        EventsOptionsBuilder::new().filters(&ev_filters).build(),
    ));
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let follower = tokio::spawn(async move {
        while let Some(Ok(e)) = stream.next().await {
            if tx.send(e).is_err() {
                break;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let q0 = unbound.queries();
    docker
        .restart_container(
            &target.id,
            Some(RestartContainerOptions {
                t: Some(1),
                signal: None,
            }),
        )
        .await
        .unwrap();
    let after = inspect(&docker, &target.id).await;
    assert_ne!(
        after.started_at, before.started_at,
        "a restart moves StartedAt"
    );
    assert_eq!(after.running, Some(true));

    // die (the old process), then start, then healthy, in that order.
    let mut seen = Vec::new();
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(e) = events.recv().await {
            let actor = e.actor.unwrap();
            assert_eq!(
                actor.attributes.as_ref().unwrap().get("db.cluster"),
                Some(&cluster),
                "label filter on events"
            );
            if actor.id.as_deref() == Some(target.id.as_str()) {
                assert_eq!(actor.attributes.unwrap().get("name"), Some(&target.name));
                seen.push(e.action.unwrap());
                if seen.last().map(String::as_str) == Some("health_status: healthy") {
                    return;
                }
            }
        }
    })
    .await;
    follower.abort();
    assert!(
        got.is_ok(),
        "no healthy event within 10 s; saw {seen:?}\n{}",
        ff.log()
    );
    assert_eq!(seen, vec!["die", "start", "health_status: healthy"]);
    assert_eq!(health(&inspect(&docker, &target.id).await), "healthy");

    // Its startup lookups reached unbound, each answered at the first try.
    let lookups = scenario.startup_lookups[SimRole::Configsvr as usize] as u64;
    let stats = ff.stats();
    let reached = unbound.queries() - q0;
    assert_eq!(stats["queries_sent"], lookups, "{stats}");
    assert_eq!(reached, lookups, "unbound's own counter: {stats}");
    assert_eq!(stats["answers"], lookups, "{stats}");
    assert_eq!(stats["timeouts"], 0, "{stats}");
    assert_eq!(
        (
            stats["restart_calls"].as_u64(),
            stats["starts_total"].as_u64(),
            stats["started_once"].as_u64()
        ),
        (Some(1), Some(1), Some(1)),
        "{stats}"
    );
    assert_eq!(stats["healthy"], 1, "{stats}");
    assert_eq!(ff.containers()[&target.name]["starts"], 1);

    // stop + start: exited in between; a second stop is 304 (bollard: Ok).
    docker
        .stop_container(
            &target.id,
            Some(StopContainerOptions {
                t: Some(1),
                signal: None,
            }),
        )
        .await
        .unwrap();
    let stopped = inspect(&docker, &target.id).await;
    assert_eq!(
        (stopped.status.map(|s| s.to_string()), stopped.running),
        (Some("exited".to_string()), Some(false))
    );
    docker
        .stop_container(&target.id, None::<StopContainerOptions>)
        .await
        .unwrap();
    docker
        .start_container(&target.id, None::<StartContainerOptions>)
        .await
        .unwrap();
    let restarted = inspect(&docker, &target.id).await;
    assert_eq!(restarted.running, Some(true));
    assert_ne!(restarted.started_at, after.started_at);
    let healthy = eventually(Duration::from_secs(10), async || {
        health(&inspect(&docker, &target.id).await) == "healthy"
    })
    .await;
    assert!(healthy, "healthy again after stop + start\n{}", ff.log());
    let stats = ff.stats();
    assert_eq!(
        (
            stats["stop_calls"].as_u64(),
            stats["start_calls"].as_u64(),
            stats["starts_total"].as_u64()
        ),
        (Some(2), Some(1), Some(2)),
        "{stats}"
    );
    assert_eq!(ff.containers()[&target.name]["starts"], 2);
    assert_eq!(unbound.queries() - q0, 2 * lookups);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fakefleet_router_burst_is_cut_by_unbound_ip_ratelimit() {
    if !unbound_available("fakefleet_router_burst_is_cut_by_unbound_ip_ratelimit") {
        return;
    }
    // The smoke scenario, one cluster of one config server, one shard
    // member and one router (9 lookups), and data nodes that look up 2
    // names each: they pass a limit of 3 q/s one at a time, the router's
    // burst of 9 does not (not even split across a second's boundary).
    let text = std::fs::read_to_string(SMOKE)
        .unwrap()
        .replace("count = 2", "count = 1")
        .replace("config_members = 3", "config_members = 1")
        .replace("shards = 2", "shards = 1")
        .replace("members_per_shard = 3", "members_per_shard = 1")
        .replace("routers = 2", "routers = 1")
        .replace("configsvr = 5", "configsvr = 2")
        .replace("shard = 5", "shard = 2");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ratelimit.toml");
    std::fs::write(&path, &text).unwrap();
    let scenario = Scenario::load(&path).unwrap();
    assert_eq!(scenario.startup_lookups, [2, 2, 9], "the derived scenario");
    let fleet_model = scenario.fleet();
    assert_eq!(fleet_model.all.len(), 3);
    let unbound = Unbound::start_zone(
        &scenario.domain,
        &zone_names(&scenario),
        "    ip-ratelimit: 3\n    ip-ratelimit-factor: 0\n",
    );
    let ff = FakeFleet::start(&path, &unbound.addr(), dir.path());

    // Data nodes first, one at a time, each until healthy.
    for (c, s) in fleet_model
        .all
        .iter()
        .zip(&fleet_model.sim)
        .filter(|(_, s)| s.role.is_data())
    {
        let d = ff.docker(&c.host).await;
        d.restart_container(&c.id, None::<RestartContainerOptions>)
            .await
            .unwrap();
        let ok = eventually(Duration::from_secs(8), async || {
            health(&inspect(&d, &c.id).await) == "healthy"
        })
        .await;
        assert!(
            ok,
            "{} ({:?}) healthy under the limit: {}\n{}",
            c.name,
            s.role,
            ff.stats(),
            unbound.log()
        );
    }
    assert_eq!(
        unbound.ratelimited(),
        0,
        "the data nodes stayed under the limit"
    );

    let router = fleet_model
        .all
        .iter()
        .zip(&fleet_model.sim)
        .find(|(_, s)| s.role == SimRole::Router)
        .map(|(c, _)| c)
        .unwrap();
    let d = ff.docker(&router.host).await;
    let q0 = unbound.queries();
    d.restart_container(&router.id, None::<RestartContainerOptions>)
        .await
        .unwrap();
    // It settles once its lookups (2 tries of 1 s at most) and ready delay are over.
    let settled = eventually(Duration::from_secs(10), async || {
        matches!(
            ff.containers()[&router.name]["phase"].as_str(),
            Some("healthy" | "stuck")
        )
    })
    .await;
    assert!(settled, "router settled: {}", ff.containers());
    let stats = ff.stats();
    let limited = unbound.ratelimited();
    println!(
        "router burst: unbound total.num.queries +{}, ip-ratelimited {limited}; fake fleet {stats}",
        unbound.queries() - q0
    );
    assert!(
        limited > 0,
        "unbound dropped part of the router's burst of 9 at 3 q/s: {stats}"
    );
    assert!(
        stats["timeouts"].as_u64().unwrap() >= 1,
        "dropped queries time out at the client: {stats}"
    );
    let phase = ff.containers()[&router.name]["phase"]
        .as_str()
        .unwrap()
        .to_string();
    if stats["lookups_failed"].as_u64().unwrap() > 0 {
        assert_eq!(
            phase, "stuck",
            "a router whose lookups failed stays stuck: {stats}"
        );
        let s = inspect(&d, &router.id).await;
        assert_eq!(
            (health(&s), s.running),
            ("unhealthy".to_string(), Some(true))
        );
    } else {
        assert_eq!(phase, "healthy", "every retry was answered: {stats}");
    }
}

/// `rekindle run --yes --output json` of playbook `text` (written to
/// `dir/pb.toml`), its journal in `dir/state`.
fn run_json(dir: &Path, text: &str) -> common::Ran {
    let pb = dir.join("pb.toml");
    std::fs::write(&pb, text).unwrap();
    let state = dir.join("state");
    common::rekindle(&[
        "run",
        pb.to_str().unwrap(),
        "--yes",
        "--output",
        "json",
        "--state-dir",
        state.to_str().unwrap(),
    ])
}

/// `rekindle run --yes` of playbook `text` against the fake fleet, which
/// must exit 0; its output and the fleet's stats after it.
fn run_to_success(ff: &FakeFleet, dir: &Path, text: &str) -> (common::Ran, Value) {
    let ran = run_json(dir, text);
    let stats = ff.stats();
    assert_eq!(
        ran.code,
        Some(0),
        "{ran}\nfake fleet: {stats}\n{}",
        ff.log()
    );
    (ran, stats)
}

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
    let injector = std::thread::spawn(move || {
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
    });
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
    let mut intents: HashMap<String, u64> = HashMap::new();
    for entry in std::fs::read_dir(&state).unwrap() {
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

/// The real-path benchmark's scenarios (scripts/bench-real-path.sh) model
/// what the script runs: unbound's `ip-ratelimit`, a per-second resolver.
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

/// A fence that holds the first time it is asked, and never again.
struct HoldsOnce(std::sync::atomic::AtomicUsize);

impl rekindle::runtime::Fence for HoldsOnce {
    fn holds(&self) -> bool {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0
    }
}

/// HA fencing's last check is in the connection itself: a leader paused
/// after its stop passed the runtime's own check (waiting for a pooled
/// connection, opening one) must not send it when it wakes deposed. Here
/// the fence holds for the runtime's check and fails by the time the
/// stop's bytes would be written: the call answers `Fenced`, the host
/// never hears a stop, the container runs on as it was, and calls other
/// than stops still go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fakefleet_a_stop_whose_fence_fails_after_the_runtime_checked_never_reaches_the_host() {
    use rekindle::runtime::docker::{DockerHosts, DockerRuntime};
    use rekindle::runtime::{ContainerRuntime, RuntimeError};
    if !unbound_available(
        "fakefleet_a_stop_whose_fence_fails_after_the_runtime_checked_never_reaches_the_host",
    ) {
        return;
    }
    let (scenario, _unbound, _dir, ff) = smoke_fleet();
    let text = smoke_playbook(&scenario, &std::fs::read_to_string(&ff.hosts_file).unwrap());
    let pb =
        rekindle::config::Playbook::parse(&rekindle::source::SourceText::new("fenced.toml", text))
            .unwrap();
    let hosts = DockerHosts::connect(&pb).await;
    let inv = rekindle::runtime::docker::discover::discover(&pb, &hosts)
        .await
        .unwrap();
    let rt = DockerRuntime::from_hosts(&pb, hosts);
    let c = inv.containers[0].clone();
    let before = rt.inspect(&c).await.unwrap();
    rt.set_fence(std::sync::Arc::new(HoldsOnce(0.into())));
    let err = rt.stop(&c).await.unwrap_err();
    assert!(
        matches!(err, RuntimeError::Fenced { op: "stop", .. }),
        "{err:?}"
    );
    let stats = ff.stats();
    assert_eq!(stats["stop_calls"], 0, "the host heard a stop: {stats}");
    let after = rt.inspect(&c).await.unwrap();
    assert_eq!(after, before, "the container runs on as it was");
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
