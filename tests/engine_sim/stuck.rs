//! Stuck routers and members in the simulator: a router that never reaches
//! a shard, what a weak gate costs, baselines that look through the gates,
//! and members held in STARTUP without their config.

use super::*;

/// The simulated fleet, where every router answers but never reaches one
/// replica set of its cluster (a shard the router gate must name), and
/// each router check's replica sets are kept for the test to read.
struct Stranded {
    probe: SimProbe,
    sets_seen: std::sync::Mutex<HashMap<String, Vec<String>>>,
}

impl Stranded {
    fn router(c: &rekindle::model::Container) -> bool {
        c.name.contains("-mongos-")
    }
}

impl rekindle::probe::HealthProbe for Stranded {
    async fn check(
        &self,
        c: &rekindle::model::Container,
        check: &rekindle::config::HealthCheck,
    ) -> Result<rekindle::probe::Probed, rekindle::runtime::RuntimeError> {
        let p = self.probe.check(c, check).await?;
        if let rekindle::config::HealthKind::Mongos { sets, .. } = &check.kind {
            self.sets_seen
                .lock()
                .unwrap()
                .insert(c.name.clone(), sets.clone());
        }
        Ok(
            if Stranded::router(c) && p.health == rekindle::model::Health::Healthy {
                let cluster = c.name.split("-mongos-").next().unwrap();
                rekindle::probe::Probed {
                    health: rekindle::model::Health::Unhealthy,
                    note: Some(format!(
                        "mongos at 10.0.0.1:27017 cannot reach {cluster}-rs01 (no primary reachable)"
                    )),
                    primary: false,
                }
            } else {
                p
            },
        )
    }
}

#[test]
fn a_router_that_never_reaches_a_shard_is_restarted_stuck_rerestarts_times_then_fails_naming_it() {
    paused().block_on(async {
        let s = setup(&smoke(|t| t), playbook(40.0, |t| t));
        assert!(matches!(
            s.pb.roles
                .iter()
                .find(|r| r.name == "router")
                .unwrap()
                .health
                .kind,
            rekindle::config::HealthKind::Mongos { .. }
        ));
        let dir = tempfile::tempdir().unwrap();
        let probe = Arc::new(Stranded {
            probe: SimProbe(s.sim.clone()),
            sets_seen: Default::default(),
        });
        let e = Engine::new(
            Arc::new(SimRuntime(s.sim.clone())),
            probe.clone(),
            s.pb.clone(),
            s.inv.clone(),
            s.plan.clone(),
            new_journal(&s, &dir.path().join("j")),
            Replay::default(),
        );
        let mut events = e.record_events();
        let out = e.run().await.unwrap();
        let mut stuck = HashMap::<String, u32>::new();
        let mut failed = HashMap::<String, String>::new();
        while let Ok(ev) = events.try_recv() {
            match ev {
                Event::Stuck {
                    container, reason, ..
                } => {
                    assert!(
                        reason.contains("cannot reach") && reason.contains("-rs01"),
                        "{reason}"
                    );
                    *stuck.entry(container).or_default() += 1;
                }
                Event::ContainerFailed {
                    container, reason, ..
                } => {
                    failed.insert(container, reason);
                }
                _ => {}
            }
        }
        let routers: Vec<&rekindle::model::Container> = s
            .inv
            .containers
            .iter()
            .filter(|c| Stranded::router(c))
            .collect();
        assert!(!routers.is_empty());
        assert_eq!(out.state, RunState::Halted);
        for r in &routers {
            // policy.stuck_rerestarts = 2 in the shipped playbook.
            assert_eq!(stuck.get(&r.name).copied(), Some(2), "{}", r.name);
            let why = failed
                .get(&r.name)
                .unwrap_or_else(|| panic!("{} not failed", r.name));
            assert!(
                why.contains("cannot reach") && why.contains("-rs01"),
                "{why}"
            );
        }
        // The gate was asked about every replica set of the router's
        // cluster, from the inventory's replset labels.
        let seen = probe.sets_seen.lock().unwrap();
        for r in &routers {
            let cluster = r.labels.get("db.cluster").unwrap();
            let mut want: Vec<String> = s
                .inv
                .containers
                .iter()
                .filter(|c| c.labels.get("db.cluster") == Some(cluster))
                .filter_map(|c| c.labels.get("db.replset").map(str::to_string))
                .collect();
            want.sort();
            want.dedup();
            assert!(want.len() >= 2, "{want:?}");
            assert_eq!(seen.get(&r.name), Some(&want), "{}", r.name);
        }
    });
}

#[test]
fn a_rehearsal_shows_what_a_weak_gate_costs_stuck_containers_left_where_the_router_gate_leaves_none(
) {
    // A resolver weaker than the playbook claims, paced statically at the
    // claim: lookups time out and containers come up stuck.
    let weak = smoke(|t| {
        t.replace("capacity_qps = 40", "capacity_qps = 15")
            .replace("queue = 20", "queue = 5")
    });
    let opts = rekindle::rehearse::Options {
        compare: false,
        static_budget: true,
        handle_tx: None,
        state_dir: None,
        only: rekindle::config::Only::All,
    };
    let gated = playbook(40.0, |t| t.replace("headroom = 0.8", "headroom = 1.0"));
    let hello_only = playbook(40.0, |t| {
        t.replace("headroom = 0.8", "headroom = 1.0")
            .replace("kind = \"mongos\"", "kind = \"mongo\"")
            .replace(", max_lag = \"10s\"", "")
    });
    let strong = rekindle::rehearse::rehearse(&gated, &weak, &opts, |_, _| {}).unwrap();
    let weak_gate = rekindle::rehearse::rehearse(&hello_only, &weak, &opts, |_, _| {}).unwrap();
    // The hello-only gate "succeeds" with stuck containers left; the
    // router and member gates see them and restart them until they pass.
    assert_eq!(weak_gate.state, RunState::Succeeded);
    assert!(weak_gate.stuck > 0, "{} stuck", weak_gate.stuck);
    assert!(strong.stuck_events > 0);
    assert_eq!(
        strong.stuck, 0,
        "{} stuck left by the router gate",
        strong.stuck
    );
    assert_eq!(strong.healthy, strong.total);
    // A stuck member is restarted again at once (only routers wait for
    // their cluster's members), not after its gate's 120 s deadline.
    let makespan = strong.makespan_s.unwrap();
    assert!(makespan < 60.0, "stuck members waited: {makespan:.1} s");
}

#[test]
fn baselines_look_through_the_playbooks_gates_a_hello_only_script_stops_with_stuck_routers() {
    // The incident script (everything at once) on the shipped world: its
    // routers come up before their shards and stick. Through the router
    // gate it sees them and restarts them until they pass; through a
    // hello-only gate it stops, believing them up.
    let world = smoke(|t| t.to_string());
    let opts = rekindle::rehearse::Options {
        compare: true,
        static_budget: false,
        handle_tx: None,
        state_dir: None,
        only: rekindle::config::Only::All,
    };
    let gated = playbook(40.0, |t| t.to_string());
    let hello_only = playbook(40.0, |t| {
        t.replace("kind = \"mongos\"", "kind = \"mongo\"")
            .replace(", max_lag = \"10s\"", "")
    });
    let all_at_once = |pb| {
        let r = rekindle::rehearse::rehearse(pb, &world, &opts, |_, _| {}).unwrap();
        r.baselines
            .into_iter()
            .find(|b| b.policy == "all-at-once")
            .unwrap()
    };
    let strong = all_at_once(&gated);
    let weak = all_at_once(&hello_only);
    assert!(strong.stuck_events > 0, "{strong:?}");
    assert!(strong.converged, "{strong:?}");
    assert_eq!(strong.stuck_passed, 0, "{strong:?}");
    assert!(!weak.converged, "{weak:?}");
    assert!(weak.stuck_passed > 0, "{weak:?}");
    assert_eq!(weak.still_down, weak.stuck_passed, "{weak:?}");
}

/// Issue 24: the simulator knows mongod's STARTUP without a replica-set
/// config (`timing.no_config`): a data node is not ready before it, the
/// member gate does not pass it and says RSGhost when its deadline comes
/// first; a `tcp` gate (listening is all it sees) passes it, so routers
/// start on members with no config and stick.
#[test]
fn the_no_config_phase_holds_members_and_their_routers_and_a_gate_names_rsghost() {
    let long_startup = || {
        smoke(|t| {
            t.replace(
                "restart = [0.5, 1.5]",
                "restart = [0.5, 1.5]\nno_config = [4.0, 4.0]",
            )
        })
    };
    assert_eq!(long_startup().no_config.min, 4.0);
    paused().block_on(async {
        let s = setup(&long_startup(), playbook(40.0, |t| t));
        let (out, events) = run_fresh(&s).await;
        assert_eq!(out.state, RunState::Succeeded, "{:?}", out.reason);
        check_dependency_order(&events);
        // Every member is healthy no sooner than 4 s after its restart
        // began (the stop, then 4 s of STARTUP without config).
        let mut began: HashMap<String, f64> = HashMap::new();
        for (t, e) in &events {
            match e {
                Event::Restarting { container, .. } => {
                    began.insert(container.clone(), *t);
                }
                Event::Healthy { container, .. } if !container.contains("mongos") => {
                    let since = t - began[container];
                    assert!(
                        since >= 4.0,
                        "{container} healthy {since:.2} s after its restart"
                    );
                }
                _ => {}
            }
        }
        assert_eq!(s.sim.stats().stuck, 0);
    });
    // A member gate whose deadline comes before the config: the failure
    // names what hello would say.
    paused().block_on(async {
        let pb = playbook(40.0, |t| {
            t.replace(
                "health = { kind = \"mongo\", port = 27019, timeout = \"2s\", max_lag = \"10s\", deadline = \"120s\" }",
                "health = { kind = \"mongo\", port = 27019, timeout = \"2s\", max_lag = \"10s\", deadline = \"2s\" }",
            )
            .replace("retries = 3", "retries = 0")
        });
        let s = setup(&long_startup(), pb);
        let (out, _) = run_fresh(&s).await;
        assert_eq!(out.state, RunState::Halted);
        let why = format!("{:?} {:?}", out.reason, out.failed);
        assert!(why.contains("RSGhost (no replica-set config yet)"), "{why}");
    });
    // A tcp gate on members passes them in STARTUP: routers start on
    // members without config and come up stuck.
    let opts = rekindle::rehearse::Options {
        compare: false,
        static_budget: false,
        handle_tx: None,
        state_dir: None,
        only: rekindle::config::Only::All,
    };
    let tcp = playbook(40.0, |t| {
        t.replace(
            "kind = \"mongo\", port = 27019, timeout = \"2s\", max_lag = \"10s\"",
            "kind = \"tcp\", port = 27019, timeout = \"2s\"",
        )
        .replace(
            "kind = \"mongo\", port = 27018, timeout = \"2s\", max_lag = \"10s\"",
            "kind = \"tcp\", port = 27018, timeout = \"2s\"",
        )
    });
    let weak = rekindle::rehearse::rehearse(&tcp, &long_startup(), &opts, |_, _| {}).unwrap();
    assert!(weak.stuck_events > 0, "{} stuck events", weak.stuck_events);
}
