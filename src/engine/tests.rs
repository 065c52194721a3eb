//! The engine's own tests, on the simulated fleet and a paused clock: a
//! journal that cannot be written, a restart whose answer is lost or refused.

use super::*;
use crate::model::{Container, Health};
use crate::runtime::RuntimeError;
use crate::sim::{SimFleet, SimProbe, SimRuntime};
use std::path::Path;

/// The shipped playbook, the smoke scenario, and a paused clock.
fn smoke() -> (Playbook, crate::scenario::Scenario, tokio::runtime::Runtime) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let pb = Playbook::load(&root.join("config/mongo-sharded.toml")).unwrap();
    let scenario =
        crate::scenario::Scenario::load(&root.join("config/scenarios/smoke.toml")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    (pb, scenario, rt)
}

#[test]
fn a_journal_that_cannot_be_written_halts_the_run_before_any_restart() {
    let (pb, scenario, rt) = smoke();
    rt.block_on(async {
        let sim = SimFleet::new(&scenario);
        let inv = Arc::new(sim.fleet().inventory());
        let plan = Arc::new(Plan::build(&inv, &pb).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::unwritable(&dir.path().join("j"));
        let engine = Engine::new(
            Arc::new(SimRuntime(sim.clone())),
            SimProbe(sim.clone()),
            Arc::new(pb.clone()),
            inv,
            plan,
            journal,
            Replay::default(),
        );
        let out = engine.run().await.unwrap();
        assert_eq!(out.state, RunState::Halted, "{out:?}");
        let reason = out.reason.unwrap_or_default();
        assert!(
            reason.contains("the journal could not be written"),
            "{reason}"
        );
        assert_eq!(out.restarts, 0, "no restart without its record");
        assert_eq!(sim.restart_counts().iter().sum::<u32>(), 0);
    });
}

/// The simulator whose answers go wrong: every third stop is refused
/// with an error status before it acts; every other start happens and
/// then its answer is lost (a timeout); every fifth stop happens and
/// its answer is lost.
struct LostAnswers {
    sim: SimRuntime,
    calls: Mutex<HashMap<(&'static str, String), u32>>,
}

impl LostAnswers {
    fn nth(&self, op: &'static str, c: &Container) -> u32 {
        let mut calls = self.calls.lock().unwrap();
        let n = calls.entry((op, c.id.clone())).or_default();
        *n += 1;
        *n
    }
    fn lost(c: &Container, op: &'static str) -> RuntimeError {
        RuntimeError::Timeout {
            host: c.host.clone(),
            container: c.name.clone(),
            op,
            secs: 1.0,
        }
    }
}

impl ContainerRuntime for LostAnswers {
    async fn inspect(
        &self,
        c: &Container,
    ) -> Result<crate::runtime::ContainerStatus, RuntimeError> {
        self.sim.inspect(c).await
    }
    async fn stop(&self, c: &Container) -> Result<(), RuntimeError> {
        let n = self.nth("stop", c);
        let id: u64 = c.id.bytes().map(u64::from).sum();
        if (id + n as u64).is_multiple_of(3) {
            return Err(RuntimeError::Api {
                host: c.host.clone(),
                container: c.name.clone(),
                op: "stop",
                reason: "500: injected".into(),
            });
        }
        self.sim.stop(c).await?;
        if (id + n as u64).is_multiple_of(5) {
            return Err(Self::lost(c, "stop"));
        }
        Ok(())
    }
    async fn start(&self, c: &Container, before: &str) -> Result<(), RuntimeError> {
        let n = self.nth("start", c);
        self.sim.start(c, before).await?;
        if n % 2 == 1 {
            return Err(Self::lost(c, "start"));
        }
        Ok(())
    }
    async fn exec(&self, c: &Container, cmd: &[String]) -> Result<i64, RuntimeError> {
        self.sim.exec(c, cmd).await
    }
    async fn health(&self, c: &Container) -> Result<Health, RuntimeError> {
        self.sim.health(c).await
    }
}

#[test]
fn a_restart_whose_answer_is_lost_or_refused_is_settled_and_never_sent_twice() {
    let (pb, mut scenario, rt) = smoke();
    scenario.restart_failure_rate = 0.0;
    rt.block_on(async {
        let sim = SimFleet::new(&scenario);
        let inv = Arc::new(sim.fleet().inventory());
        let plan = Arc::new(Plan::build(&inv, &pb).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::create(
            &dir.path().join("j"),
            Record::Start {
                fingerprint: String::new(),
                playbook: String::new(),
                containers: 0,
                only: None,
            },
            false,
        )
        .unwrap();
        let runtime = LostAnswers {
            sim: SimRuntime(sim.clone()),
            calls: Mutex::default(),
        };
        let engine = Engine::new(
            Arc::new(runtime),
            SimProbe(sim.clone()),
            Arc::new(pb.clone()),
            inv.clone(),
            plan,
            journal,
            Replay::default(),
        );
        let out = engine.run().await.unwrap();
        assert_eq!(out.state, RunState::Succeeded, "{out:?}");
        let counts = sim.restart_counts();
        let twice: Vec<_> = counts.iter().enumerate().filter(|(_, &n)| n != 1).collect();
        assert!(
            twice.is_empty(),
            "every container started exactly once, not {twice:?}"
        );
        assert!(sim.all_healthy());
    });
}
