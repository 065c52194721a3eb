//! A run that restarts only what is broken (issue 25), on the simulated
//! world of a scenario whose `[broken]` says which containers the outage
//! left broken: the survey finds exactly those, the rules add the members of
//! sets left without a primary, the run restarts exactly that and nothing
//! else, the post-flight finds every container ok, and a resumed run
//! restarts what its journal chose without surveying again.

use rekindle::config::Playbook;
use rekindle::engine::{Event, RunState};
use rekindle::journal;
use rekindle::pipeline::{prepare, Checked, Simulated};
use rekindle::scenario::Scenario;
use rekindle::session::{open_journal, JournalMode, JournalSpec, Observer};
use rekindle::sim::SimFleet;
use rekindle::source::SourceText;
use rekindle::survey::Verdict;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

fn root(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// smoke (2 clusters: a config set of 3, 2 shards of 3 members, 2 routers
/// each) with half the routers, a third of the config servers and half
/// the shard members broken (so that some sets keep a primary and some,
/// with two of three members broken, have none).
fn scenario() -> Scenario {
    let text = std::fs::read_to_string(root("config/scenarios/smoke.toml")).unwrap()
        + "\n[broken]\nroles = { configsvr = 0.34, shard = 0.5, router = 0.5 }\n";
    Scenario::parse(&SourceText::new("smoke-partial.toml", text)).unwrap()
}

fn playbook() -> Playbook {
    let text = std::fs::read_to_string(root("config/mongo-sharded.toml"))
        .unwrap()
        .replace("capacity_qps = 5000", "capacity_qps = 40")
        .replace("headroom = 0.98", "headroom = 0.8")
        .replace("startup_lookups = 81", "startup_lookups = 9");
    Playbook::parse(&SourceText::new("pb.toml", text)).unwrap()
}

fn paused() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

struct Quiet;
impl Observer for Quiet {
    fn event(&mut self, _: &Event, _: f64) {}
}

/// What the rules must choose, computed from the world's own facts (not
/// from the survey): every broken container, and every member of a set
/// whose healthy members are not a majority (they cannot elect a primary).
fn expected(sim: &SimFleet) -> BTreeSet<String> {
    let fleet = sim.fleet();
    let mut sets: HashMap<&str, (usize, usize)> = HashMap::new();
    for (i, c) in fleet.all.iter().enumerate() {
        if let Some(rs) = c.labels.get("db.replset") {
            let e = sets.entry(rs).or_default();
            e.0 += 1;
            e.1 += usize::from(!fleet.broken[i]);
        }
    }
    fleet
        .all
        .iter()
        .enumerate()
        .filter(|(i, c)| {
            fleet.broken[*i]
                || c.labels
                    .get("db.replset")
                    .is_some_and(|rs| 2 * sets[rs].1 <= sets[rs].0)
        })
        .map(|(_, c)| c.name.clone())
        .collect()
}

async fn checked(sim: &Arc<SimFleet>) -> Checked<Simulated> {
    let world = Simulated {
        sim: sim.clone(),
        static_budget: true,
    };
    let checked = prepare(world, playbook())
        .await
        .unwrap()
        .check(false)
        .await
        .unwrap();
    assert_eq!(checked.refusal(), None);
    checked
}

fn restarted(sim: &SimFleet) -> BTreeSet<String> {
    sim.restart_counts()
        .iter()
        .zip(&sim.fleet().all)
        .filter(|(n, _)| **n > 0)
        .map(|(_, c)| c.name.clone())
        .collect()
}

#[test]
fn only_what_is_broken_restarts_the_post_flight_finds_all_ok_and_the_journal_says_what_was_chosen()
{
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.journal");
    paused().block_on(async {
        let s = scenario();
        let sim = SimFleet::new(&s);
        let want = expected(&sim);
        let broken = sim.fleet().broken.iter().filter(|&&b| b).count();
        assert!(
            want.len() > broken && want.len() < sim.fleet().all.len(),
            "the world has sets without a primary and containers left alone: {want:?}"
        );

        let mut checked = checked(&sim).await;
        let (survey, selection) = checked.only_broken().await.unwrap();
        // The survey: exactly the broken ones, by the world's count.
        let found: BTreeSet<&str> = survey
            .findings
            .iter()
            .filter(|f| f.verdict != Verdict::Ok)
            .map(|f| f.container.as_str())
            .collect();
        let truth: BTreeSet<&str> = sim
            .fleet()
            .all
            .iter()
            .zip(&sim.fleet().broken)
            .filter(|(_, b)| **b)
            .map(|(c, _)| c.name.as_str())
            .collect();
        assert_eq!(found, truth, "0 false positives, 0 missed");
        let chosen: BTreeSet<String> = selection
            .chosen()
            .map(|i| checked.inventory.containers[i as usize].name.clone())
            .collect();
        assert_eq!(
            chosen, want,
            "the rules: broken, plus sets without a primary"
        );
        assert_eq!(checked.plan.containers, want.len());
        assert_eq!(
            checked.plan.left_out.len(),
            sim.fleet().all.len() - want.len()
        );

        let spec = JournalSpec {
            path: path.clone(),
            mode: JournalMode::New,
            durable: false,
        };
        let finished = checked.run(spec, None, &mut Quiet).await.unwrap();
        assert_eq!(
            finished.outcome.state,
            RunState::Succeeded,
            "{:?}",
            finished.outcome.reason
        );
        sim.settle(std::time::Duration::from_secs(600)).await;
        assert_eq!(restarted(&sim), want, "exactly what was chosen restarted");
        let post = finished.survey().await;
        assert_eq!(
            post.count(&Verdict::Ok),
            post.findings.len(),
            "post-flight: all ok"
        );
        assert!(sim.all_healthy());

        let (replay, _) = journal::read(&path).unwrap();
        let Some(journal::Record::Start {
            only: Some(ids),
            containers,
            ..
        }) = replay.records.first()
        else {
            panic!(
                "the journal's start records the choice: {:?}",
                replay.records.first()
            );
        };
        assert_eq!(*containers, want.len());
        let named: BTreeSet<String> = ids
            .iter()
            .map(|id| {
                let c = sim.fleet().all.iter().find(|c| &c.id == id).unwrap();
                c.name.clone()
            })
            .collect();
        assert_eq!(named, want);
    });
}

#[test]
fn a_resumed_run_restarts_what_its_journal_chose_without_surveying_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.journal");
    paused().block_on(async {
        let s = scenario();
        // The first run chose, recorded its start, and died before any
        // restart.
        let first = SimFleet::new(&s);
        let want = expected(&first);
        let mut checked1 = checked(&first).await;
        checked1.only_broken().await.unwrap();
        let spec = |mode| JournalSpec {
            path: path.clone(),
            mode,
            durable: false,
        };
        let pb = checked1.playbook.clone();
        drop(
            open_journal(
                &spec(JournalMode::New),
                &pb,
                &checked1.inventory,
                &checked1.plan,
            )
            .unwrap(),
        );

        // The resumed run: a world where every container is now broken, so
        // a survey would choose all of them; the journal's choice holds.
        let all_broken = Scenario::parse(&SourceText::new(
            "smoke.toml",
            std::fs::read_to_string(root("config/scenarios/smoke.toml")).unwrap(),
        ))
        .unwrap();
        let second = SimFleet::new(&all_broken);
        let checked2 = checked(&second).await;
        assert_eq!(
            checked2.plan.left_out.len(),
            0,
            "nothing chosen before the run"
        );
        let finished = checked2
            .run(spec(JournalMode::Resume), None, &mut Quiet)
            .await
            .unwrap();
        assert_eq!(
            finished.total,
            want.len(),
            "the journal's choice, not a new one"
        );
        second.settle(std::time::Duration::from_secs(600)).await;
        // Nothing outside the choice restarted. (In this world the routers
        // chosen start beside members that were never chosen, so they may
        // come up stuck and the run halt: the choice still holds.)
        let done = restarted(&second);
        assert!(done.is_subset(&want), "{done:?} ⊄ {want:?}");
        let members: BTreeSet<String> = want
            .iter()
            .filter(|n| !n.contains("mongos"))
            .cloned()
            .collect();
        assert!(
            members.is_subset(&done),
            "every member chosen restarted: {done:?}"
        );
    });
}
