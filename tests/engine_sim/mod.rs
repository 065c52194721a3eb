//! The engine against the simulated fleet on a virtual clock: dependency
//! order, gates, halt policy, pause/resume/abort/retune, crash safety
//! (the engine dropped at many points, sometimes with a torn journal tail,
//! then resumed: every container restarted exactly once), random fleets.

use proptest::prelude::*;
use rekindle::config::Playbook;
use rekindle::engine::{Engine, Event, RunClosed, RunState};
use rekindle::journal::{Journal, Record, Replay};
use rekindle::model::Inventory;
use rekindle::plan::Plan;
use rekindle::scenario::Scenario;
use rekindle::session::fingerprint;
use rekindle::sim::{SimFleet, SimProbe, SimRuntime};
use rekindle::source::SourceText;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

mod control;
mod resume;
mod stuck;

fn root(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// The smoke scenario, edited.
fn smoke(edit: impl Fn(String) -> String) -> Scenario {
    let text = std::fs::read_to_string(root("config/scenarios/smoke.toml")).unwrap();
    Scenario::parse(&SourceText::new("smoke.toml", edit(text))).unwrap()
}

/// The shipped recovery playbook, fitted to a resolver of `capacity` q/s.
fn playbook(capacity: f64, edit: impl Fn(String) -> String) -> Playbook {
    let text = std::fs::read_to_string(root("config/mongo-sharded.toml"))
        .unwrap()
        .replace("capacity_qps = 5000", &format!("capacity_qps = {capacity}"))
        .replace("headroom = 0.98", "headroom = 0.8")
        .replace("startup_lookups = 81", "startup_lookups = 9");
    Playbook::parse(&SourceText::new("pb.toml", edit(text))).unwrap()
}

fn paused() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

struct Setup {
    sim: Arc<SimFleet>,
    inv: Arc<Inventory>,
    plan: Arc<Plan>,
    pb: Arc<Playbook>,
}

fn setup(scenario: &Scenario, pb: Playbook) -> Setup {
    let sim = SimFleet::new(scenario);
    let inv = Arc::new(sim.fleet().inventory());
    let plan = Arc::new(Plan::build(&inv, &pb).unwrap());
    Setup {
        sim,
        inv,
        plan,
        pb: Arc::new(pb),
    }
}

fn new_journal(s: &Setup, path: &Path) -> Journal {
    Journal::create(
        path,
        Record::Start {
            playbook: s.pb.name.clone(),
            fingerprint: fingerprint(&s.pb, &s.inv, &s.plan),
            containers: s.plan.containers,
            only: None,
        },
        false,
    )
    .unwrap()
}

fn engine(s: &Setup, journal: Journal, replay: Replay) -> Engine<SimRuntime, SimProbe> {
    Engine::new(
        Arc::new(SimRuntime(s.sim.clone())),
        SimProbe(s.sim.clone()),
        s.pb.clone(),
        s.inv.clone(),
        s.plan.clone(),
        journal,
        replay,
    )
}

/// Runs to the end, collecting (virtual time, event).
async fn run_collect(
    e: Engine<SimRuntime, SimProbe>,
) -> (rekindle::engine::Outcome, Vec<(f64, Event)>) {
    let mut rx = e.handle().subscribe();
    let start = tokio::time::Instant::now();
    let run = tokio::spawn(e.run());
    let mut events = Vec::new();
    while let Ok(ev) = rx.recv().await {
        let done = matches!(ev, Event::Finished { .. });
        events.push((start.elapsed().as_secs_f64(), ev));
        if done {
            break;
        }
    }
    (run.await.unwrap().unwrap(), events)
}

/// A fresh run of `s` from the start (a new journal in a temporary
/// directory), to the end.
async fn run_fresh(s: &Setup) -> (rekindle::engine::Outcome, Vec<(f64, Event)>) {
    let dir = tempfile::tempdir().unwrap();
    run_collect(engine(
        s,
        new_journal(s, &dir.path().join("j")),
        Replay::default(),
    ))
    .await
}

/// Routers restart only after every data node of their cluster was
/// reported healthy, in the event log.
fn check_dependency_order(events: &[(f64, Event)]) {
    let cluster = |name: &str| name.split('-').next().unwrap().to_string();
    let mut healthy: HashMap<String, usize> = HashMap::new();
    for (_, e) in events {
        match e {
            Event::Healthy { container, .. } if !container.contains("mongos") => {
                *healthy.entry(cluster(container)).or_default() += 1
            }
            Event::Restarting { container, .. } if container.contains("mongos") => {
                let c = cluster(container);
                // 3 config servers + 2 shards x 3 members in the smoke clusters.
                assert_eq!(
                    healthy.get(&c).copied().unwrap_or(0),
                    9,
                    "{container} restarted before its cluster's data nodes were healthy"
                );
            }
            _ => {}
        }
    }
}

#[test]
fn smoke_recovers_in_dependency_order_with_every_container_once() {
    paused().block_on(async {
        let s = setup(&smoke(|t| t), playbook(40.0, |t| t));
        let (out, events) = run_fresh(&s).await;
        assert_eq!(out.state, RunState::Succeeded, "{:?}", out.reason);
        assert!(s.sim.all_healthy());
        // Each of the 22 containers started once and is healthy now.
        assert_eq!(s.sim.restart_counts().len(), 22);
        assert!(
            s.sim.restart_counts().iter().all(|&n| n == 1),
            "{:?}",
            s.sim.restart_counts()
        );
        check_dependency_order(&events);
        let st = s.sim.stats();
        assert_eq!(st.stuck_events, 0);
        assert_eq!(
            st.dns_dropped, 0,
            "the budget kept the resolver within capacity"
        );
        // No wave passes before all its containers were healthy.
        let mut healthy_per_wave: HashMap<usize, usize> = HashMap::new();
        for (_, e) in &events {
            match e {
                Event::Healthy { wave, .. } => *healthy_per_wave.entry(*wave).or_default() += 1,
                Event::WavePassed { wave, failed, .. } => {
                    assert_eq!(*failed, 0);
                    assert_eq!(
                        healthy_per_wave.get(wave).copied().unwrap_or(0),
                        s.plan.waves[*wave].containers.len(),
                        "wave {wave} passed early"
                    );
                }
                _ => {}
            }
        }
    });
}

#[test]
fn halt_policy_halts_and_names_the_failed_containers() {
    paused().block_on(async {
        // Every restart fails: the first wave cannot pass.
        let scenario = smoke(|t| t.replace("restart_failure_rate = 0.0", "restart_failure_rate = 0.99"));
        let s = setup(&scenario, playbook(40.0, |t| t.replace("retries = 3", "retries = 1")));
        let (out, events) = run_fresh(&s).await;
        assert_eq!(out.state, RunState::Halted);
        let reason = out.reason.unwrap();
        assert!(reason.contains("halted") && reason.contains("not running after restart"), "{reason}");
        assert!(!out.failed.is_empty());
        assert!(reason.contains(out.failed[0].split(':').next().unwrap()), "{reason}");
        assert!(events.iter().any(|(_, e)| matches!(e, Event::WaveHalted { .. })));
        assert!(!events.iter().any(|(_, e)| matches!(e, Event::Restarting { container, .. } if container.contains("mongos"))), "no router wave after a halt");
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Random small fleets: the run succeeds, every container restarted
    /// once, routers after their cluster's data nodes, nothing stuck.
    #[test]
    fn random_small_fleets_recover(count in 1u32..4, shards in 0u32..3, members in 1u32..4, routers in 0u32..4, hosts in 3u32..7, seed in 0u64..1000) {
        let scenario = smoke(|t| t
            .replace("count = 2", &format!("count = {count}"))
            .replace("shards = 2", &format!("shards = {shards}"))
            .replace("members_per_shard = 3", &format!("members_per_shard = {members}"))
            .replace("routers = 2", &format!("routers = {routers}"))
            .replace("hosts = 4", &format!("hosts = {hosts}"))
            .replace("seed = 7", &format!("seed = {seed}")));
        paused().block_on(async {
            let s = setup(&scenario, playbook(40.0, |t| t));
            let dir = tempfile::tempdir().unwrap();
            let (out, events) = run_collect(engine(&s, new_journal(&s, &dir.path().join("j")), Replay::default())).await;
            assert_eq!(out.state, RunState::Succeeded, "{:?}", out.reason);
            assert!(s.sim.restart_counts().iter().all(|&n| n == 1));
            assert_eq!(s.sim.stats().stuck_events, 0);
            let mut healthy_data: HashMap<String, u32> = HashMap::new();
            let per_cluster = 3 + shards * members;
            for (_, e) in &events {
                match e {
                    Event::Healthy { container, .. } if !container.contains("mongos") => *healthy_data.entry(container.split('-').next().unwrap().into()).or_default() += 1,
                    Event::Restarting { container, .. } if container.contains("mongos") => {
                        assert_eq!(healthy_data.get(container.split('-').next().unwrap()).copied().unwrap_or(0), per_cluster);
                    }
                    _ => {}
                }
            }
        });
    }
}

/// A host whose Engine API answers every inspect (and so every probe of
/// Docker's state) in 3 s: slower than the checks' 2 s timeout.
struct SlowHost(SimRuntime);

const SLOW: Duration = Duration::from_secs(3);

impl rekindle::runtime::ContainerRuntime for SlowHost {
    async fn inspect(
        &self,
        c: &rekindle::model::Container,
    ) -> Result<rekindle::runtime::ContainerStatus, rekindle::runtime::RuntimeError> {
        tokio::time::sleep(SLOW).await;
        self.0.inspect(c).await
    }
    async fn stop(
        &self,
        c: &rekindle::model::Container,
    ) -> Result<(), rekindle::runtime::RuntimeError> {
        self.0.stop(c).await
    }
    async fn start(
        &self,
        c: &rekindle::model::Container,
        before: &str,
    ) -> Result<(), rekindle::runtime::RuntimeError> {
        self.0.start(c, before).await
    }
    async fn exec(
        &self,
        c: &rekindle::model::Container,
        cmd: &[String],
    ) -> Result<i64, rekindle::runtime::RuntimeError> {
        self.0.exec(c, cmd).await
    }
    async fn health(
        &self,
        c: &rekindle::model::Container,
    ) -> Result<rekindle::model::Health, rekindle::runtime::RuntimeError> {
        tokio::time::sleep(SLOW).await;
        self.0.health(c).await
    }
}

/// The simulator's probe, as slow as the host it asks.
struct SlowProbe(SimProbe);

impl rekindle::probe::HealthProbe for SlowProbe {
    async fn check(
        &self,
        c: &rekindle::model::Container,
        check: &rekindle::config::HealthCheck,
    ) -> Result<rekindle::probe::Probed, rekindle::runtime::RuntimeError> {
        tokio::time::sleep(SLOW).await;
        self.0.check(c, check).await
    }
}

/// Issue 23, item 7: a slow host is slow, not failed. Every inspect and
/// every probe takes 3 s against checks whose timeout is 2 s: the run
/// asks again with more patience within each container's deadline and
/// succeeds, every container restarted once (it halted at the first wave:
/// "inspect timed out after 2s").
#[test]
fn a_host_slower_than_the_checks_timeout_is_waited_for_not_failed() {
    paused().block_on(async {
        let s = setup(&smoke(|t| t), playbook(40.0, |t| t));
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::new(
            Arc::new(SlowHost(SimRuntime(s.sim.clone()))),
            SlowProbe(SimProbe(s.sim.clone())),
            s.pb.clone(),
            s.inv.clone(),
            s.plan.clone(),
            new_journal(&s, &dir.path().join("j")),
            Replay::default(),
        );
        let out = e.run().await.unwrap();
        assert_eq!(out.state, RunState::Succeeded, "{:?}", out.reason);
        assert!(s.sim.all_healthy());
        assert!(
            s.sim.restart_counts().iter().all(|&n| n == 1),
            "{:?}",
            s.sim.restart_counts()
        );
    });
}
