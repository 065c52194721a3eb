//! The fake fleet's Docker Engine API through bollard: list, inspect, restart,
//! stop + start and the events stream, its containers' real DNS queries to a
//! real unbound, unbound's `ip-ratelimit` cutting a router's burst, and a
//! stop whose fence fails after the runtime checked it.

use super::*;

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

    assert_label_filters(&docker, target, &cluster, &expected).await;

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
    let (mut events, follower) = follow_events(&docker, &cluster).await;

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
    assert_one_restart_answered(&ff, &unbound, &target.name, q0, lookups);

    stop_then_start(&docker, &ff, &unbound, target, &after, q0, lookups).await;
}

/// After one restart: its `lookups` startup queries sent, reached unbound
/// (its own counter, from `q0`) and answered at the first try; one restart
/// call, one start, one container healthy.
fn assert_one_restart_answered(
    ff: &FakeFleet,
    unbound: &Unbound,
    name: &str,
    q0: u64,
    lookups: u64,
) {
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
    assert_eq!(ff.containers()[name]["starts"], 1);
}

/// A host's list with label filters: the filters are ANDed (a config
/// server's cluster gives exactly its config servers on that host, with
/// their names and labels), and a key alone matches every container
/// carrying it.
async fn assert_label_filters(
    docker: &Docker,
    target: &rekindle::model::Container,
    cluster: &str,
    expected: &[&str],
) {
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
    let mut want = expected.to_vec();
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
}

/// Follows the container events (start, die, health_status) of one
/// cluster from a task of its own: the receiver and the task to abort.
async fn follow_events(
    docker: &Docker,
    cluster: &str,
) -> (
    tokio::sync::mpsc::UnboundedReceiver<bollard::models::EventMessage>,
    tokio::task::JoinHandle<()>,
) {
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
    let (tx, events) = tokio::sync::mpsc::unbounded_channel();
    let follower = tokio::spawn(async move {
        while let Some(Ok(e)) = stream.next().await {
            if tx.send(e).is_err() {
                break;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    (events, follower)
}

/// stop + start of a container just restarted: exited in between, a
/// second stop is 304 (bollard: Ok), healthy again, one more start and the
/// same startup lookups again.
async fn stop_then_start(
    docker: &Docker,
    ff: &FakeFleet,
    unbound: &Unbound,
    target: &rekindle::model::Container,
    after: &bollard::models::ContainerState,
    q0: u64,
    lookups: u64,
) {
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
    let stopped = inspect(docker, &target.id).await;
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
    let restarted = inspect(docker, &target.id).await;
    assert_eq!(restarted.running, Some(true));
    assert_ne!(restarted.started_at, after.started_at);
    let healthy = eventually(Duration::from_secs(10), async || {
        health(&inspect(docker, &target.id).await) == "healthy"
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
