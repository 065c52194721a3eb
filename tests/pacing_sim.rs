//! The DNS budget as the resolver receives it, on the simulated fleet and a
//! virtual clock: what reaches the resolver in any second stays under the
//! budget (the simulated resolver's own per-second counts are the witness),
//! a retune never releases a burst, an operator's lower ceiling holds while
//! the budget adapts, with nothing dropping the adaptive budget is as fast
//! as the whole capacity, and a playbook claiming twice the resolver's
//! capacity drops under 0.5% of the run's queries.

use rekindle::config::Playbook;
use rekindle::engine::{Engine, RunState};
use rekindle::journal::{Journal, Record, Replay};
use rekindle::plan::Plan;
use rekindle::scenario::Scenario;
use rekindle::session::fingerprint;
use rekindle::sim::{SimDnsProbe, SimFleet, SimRuntime};
use rekindle::source::SourceText;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn root(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// Smoke with eight clusters (88 containers, 504 startup lookups) and a
/// resolver of 40 q/s in the given mode.
fn scenario(mode: &str) -> Scenario {
    let text = std::fs::read_to_string(root("config/scenarios/smoke.toml"))
        .unwrap()
        .replace("count = 2", "count = 8")
        .replace("queue = 20", mode);
    Scenario::parse(&SourceText::new("smoke8.toml", text)).unwrap()
}

/// The shipped playbook, claiming `capacity` q/s with `headroom`.
fn playbook(capacity: f64, headroom: f64, adaptive: bool) -> Playbook {
    playbook_with(capacity, headroom, adaptive, 9)
}

/// The same, with routers of `lookups` startup lookups.
fn playbook_with(capacity: f64, headroom: f64, adaptive: bool, lookups: u32) -> Playbook {
    let text = std::fs::read_to_string(root("config/mongo-sharded.toml"))
        .unwrap()
        .replace(
            "capacity_qps = 5000",
            &format!("capacity_qps = {capacity}\nadaptive = {adaptive}"),
        )
        .replace("headroom = 0.98", &format!("headroom = {headroom}"))
        .replace(
            "startup_lookups = 81",
            &format!("startup_lookups = {lookups}"),
        );
    Playbook::parse(&SourceText::new("pb.toml", text)).unwrap()
}

struct Run {
    sim: Arc<SimFleet>,
    engine: Engine<SimRuntime, rekindle::sim::SimProbe>,
    _dir: tempfile::TempDir,
}

fn prepare(sc: &Scenario, pb: Playbook, probe: bool) -> Run {
    let sim = SimFleet::new(sc);
    let inv = Arc::new(sim.fleet().inventory());
    let pb = Arc::new(pb);
    let plan = Arc::new(Plan::build(&inv, &pb).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::create(
        &dir.path().join("j"),
        Record::Start {
            playbook: pb.name.clone(),
            fingerprint: fingerprint(&pb, &inv, &plan),
            containers: plan.containers,
            only: None,
        },
        false,
    )
    .unwrap();
    let mut engine = Engine::new(
        Arc::new(SimRuntime(sim.clone())),
        rekindle::sim::SimProbe(sim.clone()),
        pb,
        inv,
        plan,
        j,
        Replay::default(),
    );
    if probe {
        engine = engine.with_dns_probe(Arc::new(SimDnsProbe {
            fleet: sim.clone(),
            counters: true,
        }));
    }
    Run {
        sim,
        engine,
        _dir: dir,
    }
}

fn paused() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

#[test]
fn what_the_resolver_receives_never_passes_the_static_budget_in_any_second() {
    for mode in ["mode = \"per_second\"", "queue = 20"] {
        paused().block_on(async {
            // 40 q/s claimed, budget 32: restarts of routers (9 lookups)
            // and data nodes (5) mixed, on 4 hosts.
            let r = prepare(&scenario(mode), playbook(40.0, 0.8, false), false);
            let out = r.engine.run().await.unwrap();
            assert_eq!(out.state, RunState::Succeeded, "{mode}: {out:?}");
            let stats = r.sim.stats();
            let per_second = r.sim.dns_per_second();
            println!(
                "{mode}: {per_second:?}, peak {} q/s in any 1 s window",
                stats.dns_peak_qps
            );
            assert!(
                per_second.iter().all(|&n| n <= 32),
                "{mode}: a second above the budget of 32: {per_second:?}"
            );
            // Any window of ten 100 ms slots, not only whole seconds.
            assert!(
                stats.dns_peak_qps <= 32,
                "{mode}: peak {}",
                stats.dns_peak_qps
            );
            assert_eq!((stats.dns_dropped, stats.stuck), (0, 0), "{mode}");
            assert_eq!(stats.healthy, stats.total);
        });
    }
}

#[test]
fn a_retune_never_releases_a_burst() {
    paused().block_on(async {
        let r = prepare(
            &scenario("mode = \"per_second\""),
            playbook(40.0, 0.8, false),
            false,
        );
        let h = r.engine.handle();
        let run = tokio::spawn(r.engine.run());
        // Slow to 4 q/s for ten seconds (credit would build up in a
        // bucket), then back to 32.
        tokio::time::sleep(Duration::from_secs(3)).await;
        h.retune(Some(4.0), None).unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        h.retune(Some(32.0), None).unwrap();
        let out = run.await.unwrap().unwrap();
        assert_eq!(out.state, RunState::Succeeded);
        let per_second = r.sim.dns_per_second();
        println!("{per_second:?}");
        // While slow: one restart's cost (9) at most per second, once the
        // second of the retune has passed.
        assert!(
            per_second[4..13].iter().all(|&n| n <= 9),
            "slow seconds: {:?}",
            &per_second[4..13]
        );
        // Raised again: no burst of the credit a bucket would have saved.
        assert!(per_second.iter().all(|&n| n <= 32), "{per_second:?}");
        assert!(
            per_second[13..].iter().any(|&n| n > 20),
            "the raised budget is used: {per_second:?}"
        );
    });
}

#[test]
fn an_operators_lower_ceiling_holds_while_adapting() {
    paused().block_on(async {
        let r = prepare(
            &scenario("mode = \"per_second\""),
            playbook(40.0, 0.98, true),
            true,
        );
        let h = r.engine.handle();
        let run = tokio::spawn(r.engine.run());
        tokio::time::sleep(Duration::from_secs(3)).await;
        h.retune(Some(12.0), None).unwrap();
        let out = run.await.unwrap().unwrap();
        assert_eq!(out.state, RunState::Succeeded);
        let after: Vec<f64> = out
            .dns_budget
            .iter()
            .filter(|(t, _)| *t > 3.0)
            .map(|&(_, q)| q)
            .collect();
        assert!(
            after.iter().all(|&q| q <= 12.0),
            "the adaptive budget passed the operator's ceiling: {:?}",
            out.dns_budget
        );
        assert_eq!(
            h.status().pace.unwrap().dns_budget_qps.min(12.0),
            h.status().pace.unwrap().dns_budget_qps
        );
        // The resolver saw at most the ceiling (or one router's 9 lookups)
        // plus the probes (4 a second) in any second after the retune.
        let per_second = r.sim.dns_per_second();
        assert!(
            per_second[4..].iter().all(|&n| n <= 12 + 4),
            "{per_second:?}"
        );
    });
}

/// With nothing dropping, the adaptive budget costs the run nothing: it
/// finishes as fast as a static budget of the whole capacity, and it never
/// cuts. (It grows only a rate the run used, so a run whose waves ask for
/// less than the capacity does not end at the capacity: what it would
/// settle at is the controller's own test.)
#[test]
fn with_nothing_dropping_the_adaptive_budget_is_as_fast_as_the_whole_capacity() {
    let text = std::fs::read_to_string(root("config/scenarios/smoke.toml"))
        .unwrap()
        .replace("count = 2", "count = 32")
        .replace("capacity_qps = 40", "capacity_qps = 400")
        .replace("queue = 20", "queue = 200");
    let sc = Scenario::parse(&SourceText::new("smoke32.toml", text)).unwrap();
    let run = |adaptive: bool| {
        paused().block_on(async {
            let r = prepare(&sc, playbook(400.0, 0.98, adaptive), adaptive);
            let out = r.engine.run().await.unwrap();
            assert_eq!(out.state, RunState::Succeeded);
            (out, r.sim.stats())
        })
    };
    let (adaptive, stats) = run(true);
    let (fixed, _) = run(false);
    println!(
        "budget over time: {:?}; dropped {}; {:.1} s against {:.1} s",
        adaptive.dns_budget, stats.dns_dropped, adaptive.elapsed_s, fixed.elapsed_s
    );
    assert_eq!(stats.dns_dropped, 0);
    assert!(
        adaptive.dns_budget.windows(2).all(|w| w[1].1 >= w[0].1),
        "a cut with nothing dropped: {:?}",
        adaptive.dns_budget
    );
    assert!(
        adaptive.elapsed_s <= 1.05 * fixed.elapsed_s,
        "{:.1} s adaptive against {:.1} s at the whole capacity",
        adaptive.elapsed_s,
        fixed.elapsed_s
    );
}

/// The playbook claims twice what a per-second resolver serves: the start
/// (half the claim) is the truth, and no queue warns before it drops. The
/// start grows by a quarter at a time and to at most a quarter above what
/// the resolver received, so it overshoots for one second by at most a
/// quarter, and the drops' retries get room: under 0.5% of the run's
/// queries dropped on a fleet whose lookups keep the resolver busy for a
/// minute (a start that doubles drops half a second's, and its retries
/// are dropped again: 2.8% here). The real path's fleet (4,120
/// containers), as the real-path benchmark runs it with `--claim 2`
/// (`rekindle-bench real-path`, `CLAIM=2 scripts/bench-real-path.sh`).
#[test]
fn a_resolver_half_as_strong_as_claimed_drops_under_half_a_percent() {
    paused().block_on(async {
        let sc = Scenario::load(&root("benches/scenarios/realpath-4k.toml")).unwrap();
        let r = prepare(&sc, playbook_with(3000.0, 0.98, true, 41), true);
        let out = r.engine.run().await.unwrap();
        assert_eq!(out.state, RunState::Succeeded);
        let stats = r.sim.stats();
        println!(
            "budget over time: {:?}; dropped {} of {}",
            out.dns_budget, stats.dns_dropped, stats.dns_queries
        );
        assert_eq!(stats.stuck, 0);
        assert!(
            (stats.dns_dropped as f64) < 0.005 * stats.dns_queries as f64,
            "dropped {} of {}",
            stats.dns_dropped,
            stats.dns_queries
        );
    });
}
