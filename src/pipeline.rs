//! The one sequence of a run, for `plan`, `run`, `rehearse` and the
//! daemon alike: a playbook is **prepared** on a fleet (the inventory and
//! the plan), **checked** before the first restart (the runtime and the
//! gates' probe connected, the adaptive budget's probe, the pre-flight),
//! **run** as a session (the journal, the engine, an observer), and
//! **finished** (the report, the journal archived). Each stage is a type
//! that only the one before it makes, so no caller can skip the pre-flight
//! or run without a journal; callers choose only a [`Fleet`] (the Docker
//! hosts, or the simulated fleet) and an [`Observer`].
//!
//! It decides nothing about restarts (the engine's) and renders nothing
//! (the callers'). Every journal this project archives is archived here.

use crate::config::Playbook;
use crate::dns::budget::DnsProbe;
use crate::engine::{Outcome, RunState};
use crate::inventory::InventorySource;
use crate::journal::JournalError;
use crate::journal::Record;
use crate::model::Inventory;
use crate::plan::{Plan, PlanError};
use crate::probe::{HealthProbe, PreflightProbe, Prober};
use crate::recovery::preflight::Preflight;
use crate::recovery::prepare::{Connection, PrepareError};
use crate::recovery::ProbeNameError;
use crate::report::Collector;
use crate::runtime::docker::DockerRuntime;
use crate::runtime::ContainerRuntime;
use crate::session::{JournalMode, JournalSpec, Observer, Session, SessionError};
use crate::sim::{SimDnsProbe, SimFleet, SimProbe, SimRuntime};
use crate::survey::select::Selection;
use crate::survey::Survey;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a run's containers are and how they are reached: the inventory,
/// the runtime that restarts them, the probe that gates them, the DNS
/// budget's probe.
pub trait Fleet: Send + Sized + 'static {
    /// What restarts the containers.
    type Runtime: ContainerRuntime;
    /// What asks them whether they pass their gate (and the pre-flight).
    type Probe: HealthProbe + PreflightProbe;

    /// The fleet as found, and the plan cut from it (for MongoDB's rolling
    /// order, with each primary last in its set: how many were found).
    fn discover(
        &mut self,
        pb: &Playbook,
    ) -> impl Future<Output = Result<(Inventory, Plan, Option<usize>), PrepareError>> + Send;

    /// Whether the runtime is connected already (a pre-flight then costs
    /// no new connection: `plan` runs it only then).
    fn connected(&self) -> bool;

    /// The runtime and the probe over the containers found.
    fn connect(
        &mut self,
        pb: &Playbook,
    ) -> impl Future<Output = (Arc<Self::Runtime>, Self::Probe)> + Send;

    /// The adaptive DNS budget's probe (`None`: the static budget).
    fn dns_probe(
        &self,
        pb: &Playbook,
        inv: &Inventory,
        no_pacing: bool,
        runtime: &Arc<Self::Runtime>,
    ) -> impl Future<Output = Result<Option<Arc<dyn DnsProbe>>, ProbeNameError>> + Send;
}

/// The real fleet: containers on the playbook's Docker hosts, found by
/// discovery (or listed in an inventory file, or generated from a
/// scenario for `plan`), restarted through bollard, gated by the real
/// probes, paced by probing the resolver the hosts' containers use.
pub struct DockerFleet {
    source: InventorySource,
    connection: Option<Connection>,
}

impl DockerFleet {
    /// The fleet `source` names.
    pub fn new(source: InventorySource) -> DockerFleet {
        DockerFleet {
            source,
            connection: None,
        }
    }
}

impl Fleet for DockerFleet {
    type Runtime = DockerRuntime;
    type Probe = Prober<DockerRuntime>;

    async fn discover(
        &mut self,
        pb: &Playbook,
    ) -> Result<(Inventory, Plan, Option<usize>), PrepareError> {
        let (inventory, plan, primaries, conn) =
            crate::recovery::prepare::prepare(pb, &self.source).await?;
        self.connection = Some(conn);
        Ok((inventory, plan, primaries))
    }

    fn connected(&self) -> bool {
        self.connection.as_ref().is_some_and(|c| c.on_docker())
    }

    async fn connect(&mut self, pb: &Playbook) -> (Arc<DockerRuntime>, Prober<DockerRuntime>) {
        // Discovered first (only `prepare` makes the stage that connects).
        let prober = self
            .connection
            .as_mut()
            .expect("a fleet is discovered before it is connected")
            .prober(pb)
            .await;
        (prober.runtime().clone(), prober)
    }

    async fn dns_probe(
        &self,
        pb: &Playbook,
        inv: &Inventory,
        no_pacing: bool,
        runtime: &Arc<DockerRuntime>,
    ) -> Result<Option<Arc<dyn DnsProbe>>, ProbeNameError> {
        crate::recovery::dns_probe(pb, inv, no_pacing, runtime.resolver()).await
    }
}

/// The simulated fleet of a scenario: its containers, its Docker-like
/// hosts and its resolver, on the caller's (virtual) clock.
pub struct Simulated {
    /// The world.
    pub sim: Arc<SimFleet>,
    /// Pace at the playbook's static budget even when it says adaptive.
    pub static_budget: bool,
}

impl Fleet for Simulated {
    type Runtime = SimRuntime;
    type Probe = SimProbe;

    async fn discover(
        &mut self,
        pb: &Playbook,
    ) -> Result<(Inventory, Plan, Option<usize>), PrepareError> {
        let inv = self.sim.fleet().inventory();
        let plan = Plan::build(&inv, pb)?;
        Ok((inv, plan, None))
    }

    fn connected(&self) -> bool {
        true
    }

    async fn connect(&mut self, _pb: &Playbook) -> (Arc<SimRuntime>, SimProbe) {
        (
            Arc::new(SimRuntime(self.sim.clone())),
            SimProbe(self.sim.clone()),
        )
    }

    async fn dns_probe(
        &self,
        pb: &Playbook,
        _inv: &Inventory,
        no_pacing: bool,
        _runtime: &Arc<SimRuntime>,
    ) -> Result<Option<Arc<dyn DnsProbe>>, ProbeNameError> {
        Ok(
            (!no_pacing && !self.static_budget && pb.dns.adaptive).then(|| {
                Arc::new(SimDnsProbe {
                    fleet: self.sim.clone(),
                    counters: pb.dns.counter.is_some(),
                }) as Arc<dyn DnsProbe>
            }),
        )
    }
}

/// Stage 1: the fleet found and the plan cut.
pub struct Prepared<F> {
    /// The fleet, still holding its connections.
    pub fleet: F,
    /// The playbook.
    pub playbook: Arc<Playbook>,
    /// The fleet as found.
    pub inventory: Inventory,
    /// The plan.
    pub plan: Plan,
    /// For the rolling order: how many primaries were found.
    pub primaries: Option<usize>,
}

/// Discovers the fleet and cuts the plan.
pub async fn prepare<F: Fleet>(mut fleet: F, pb: Playbook) -> Result<Prepared<F>, PrepareError> {
    let (inventory, plan, primaries) = fleet.discover(&pb).await?;
    Ok(Prepared {
        fleet,
        playbook: Arc::new(pb),
        inventory,
        plan,
        primaries,
    })
}

impl<F: Fleet> Prepared<F> {
    /// What is checked before anything is restarted: the runtime and the
    /// probes connected, the adaptive budget's probe name resolved (unless
    /// `no_pacing`), the pre-flight run. A pre-flight that fails is in
    /// [`Checked::refusal`]: the caller shows it, then refuses.
    pub async fn check(mut self, no_pacing: bool) -> Result<Checked<F>, ProbeNameError> {
        let (runtime, probe) = self.fleet.connect(&self.playbook).await;
        let dns_probe = self
            .fleet
            .dns_probe(&self.playbook, &self.inventory, no_pacing, &runtime)
            .await?;
        let preflight = crate::recovery::preflight::preflight(
            &self.playbook,
            &self.inventory,
            &self.plan,
            &probe,
        )
        .await;
        let plan = Arc::new(self.plan);
        Ok(Checked {
            fleet: self.fleet,
            playbook: self.playbook,
            inventory: Arc::new(self.inventory),
            whole: plan.clone(),
            plan,
            runtime,
            probe: Arc::new(probe),
            dns_probe,
            preflight,
            no_pacing,
        })
    }
}

/// Stage 2: connected and checked, nothing restarted yet.
pub struct Checked<F: Fleet> {
    /// The fleet.
    pub fleet: F,
    /// The playbook.
    pub playbook: Arc<Playbook>,
    /// The fleet as found.
    pub inventory: Arc<Inventory>,
    /// The plan: every container its roles select, or what a survey chose
    /// ([`Checked::only_broken`]).
    pub plan: Arc<Plan>,
    /// What the pre-flight found.
    pub preflight: Preflight,
    /// The plan of every container its roles select (what a survey asks).
    whole: Arc<Plan>,
    runtime: Arc<F::Runtime>,
    probe: Arc<F::Probe>,
    dns_probe: Option<Arc<dyn DnsProbe>>,
    no_pacing: bool,
}

impl<F: Fleet> Checked<F> {
    /// Why the run must not start (a failed pre-flight check), if it must not.
    pub fn refusal(&self) -> Option<String> {
        self.preflight.failure()
    }

    /// Every container its roles select asked its gate once, nothing
    /// restarted: how broken the fleet is.
    pub async fn survey(&self) -> Survey {
        crate::survey::survey(&self.playbook, &self.inventory, &self.whole, &*self.probe).await
    }

    /// A new run that restarts only what is broken: surveys, applies the
    /// rules ([`crate::survey::select`]), and cuts the plan to what they
    /// chose (nothing restarted yet). A run that resumes a journal does not
    /// call this: [`Checked::run`] cuts the plan its journal chose.
    pub async fn only_broken(&mut self) -> Result<(Survey, Selection), PlanError> {
        let survey = self.survey().await;
        let selection = crate::survey::select::select(&self.playbook, &survey);
        self.cut(selection.chosen().map(|i| i as usize))?;
        Ok((survey, selection))
    }

    /// The plan cut to the containers at `chosen` (inventory indexes).
    fn cut(&mut self, chosen: impl Iterator<Item = usize>) -> Result<(), PlanError> {
        let mut keep = vec![false; self.inventory.containers.len()];
        for i in chosen {
            keep[i] = true;
        }
        self.plan = Arc::new(Plan::build_only(
            &self.inventory,
            &self.playbook,
            Some(&keep),
        )?);
        Ok(())
    }

    /// A run resumed from a journal that recorded a choice restarts what
    /// it chose: the plan cut to those ids (an id no longer found is left
    /// out, and the fingerprint then refuses the resume, naming both).
    fn cut_as_journaled(&mut self, journal: &JournalSpec) -> Result<(), SessionError> {
        let resuming = match journal.mode {
            JournalMode::Resume => true,
            JournalMode::ResumeOrNew => journal.path.exists(),
            JournalMode::New | JournalMode::Replace => false,
        };
        if !resuming || !journal.path.exists() {
            return Ok(());
        }
        let (replay, _) = crate::journal::read(&journal.path)?;
        if let Some(Record::Start {
            only: Some(ids), ..
        }) = replay.records.first()
        {
            let ids: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
            let chosen: Vec<usize> = (0..self.inventory.containers.len())
                .filter(|&i| ids.contains(self.inventory.containers[i].id.as_str()))
                .collect();
            self.cut(chosen.into_iter())
                .map_err(|e| SessionError::Task(format!("the journal's choice: {e}")))?;
        }
        Ok(())
    }

    /// The runtime the run restarts through (the daemon fences it, and
    /// reads its resolver's figures).
    pub fn runtime(&self) -> &Arc<F::Runtime> {
        &self.runtime
    }

    /// Runs the session to its end: the journal at `journal` (a new run
    /// first archives a journal left by a run that had succeeded), each
    /// record also to `replica` before it counts (HA), every event to `obs`.
    pub async fn run(
        mut self,
        journal: JournalSpec,
        replica: Option<Box<dyn crate::journal::Replica>>,
        obs: &mut dyn Observer,
    ) -> Result<Finished<F>, SessionError> {
        if journal.mode == JournalMode::New {
            archive_succeeded(&journal.path)?;
        }
        self.cut_as_journaled(&journal)?;
        let path = journal.path.clone();
        let session = Session {
            runtime: self.runtime,
            health: self.probe.clone(),
            playbook: self.playbook.clone(),
            inventory: self.inventory.clone(),
            plan: self.plan.clone(),
            journal,
            dns_probe: self.dns_probe,
            no_pacing: self.no_pacing,
            replica,
        };
        let f = crate::session::run(session, obs).await?;
        Ok(Finished {
            fleet: self.fleet,
            playbook: self.playbook,
            inventory: self.inventory,
            probe: self.probe,
            whole: self.whole,
            left_out: self.plan.left_out.len(),
            total: self.plan.containers,
            waves: self.plan.waves.len(),
            outcome: f.outcome,
            timeline: f.timeline,
            resumed: f.resumed,
            journal: path,
            paced: !self.no_pacing,
        })
    }
}

/// Stage 3: the session ended.
pub struct Finished<F: Fleet> {
    /// The fleet (a rehearsal reads its world's figures).
    pub fleet: F,
    /// Containers the plan left alone (a run of only what was broken).
    pub left_out: usize,
    probe: Arc<F::Probe>,
    whole: Arc<Plan>,
    /// The playbook.
    pub playbook: Arc<Playbook>,
    /// The fleet as found.
    pub inventory: Arc<Inventory>,
    /// Containers in the plan.
    pub total: usize,
    /// Waves in the plan.
    pub waves: usize,
    /// How the run ended.
    pub outcome: Outcome,
    /// The timeline collected from its events.
    pub timeline: Collector,
    /// The run continued a journal's.
    pub resumed: bool,
    /// Where its journal is.
    pub journal: PathBuf,
    /// Whether it was paced.
    pub paced: bool,
}

impl<F: Fleet> Finished<F> {
    /// The closing survey (post-flight): every container its roles select
    /// asked its gate again, after the run: what is still broken.
    pub async fn survey(&self) -> Survey {
        crate::survey::survey(&self.playbook, &self.inventory, &self.whole, &*self.probe).await
    }

    /// The run's report (timeline files and their summary).
    pub fn report(&self) -> crate::report::RunReport {
        crate::report::RunReport::new(
            &self.playbook,
            &self.inventory,
            &self.outcome,
            &self.timeline,
            self.total,
            self.resumed,
            self.paced,
        )
    }

    /// Where a succeeded run's journal goes when [`Finished::archive`]
    /// moves it (to record before the move); `None` for any other outcome:
    /// its journal stays for `--resume`.
    pub fn archive_name(&self) -> Option<PathBuf> {
        (self.outcome.state == RunState::Succeeded)
            .then(|| crate::recovery::archive_name(&self.journal))
    }

    /// Moves a succeeded run's journal to `done` (from
    /// [`Finished::archive_name`]).
    pub fn archive(&self, done: &Path) -> std::io::Result<()> {
        std::fs::rename(&self.journal, done)
    }
}

/// A run that succeeded but whose journal was not archived yet (a crash
/// right after its end was recorded): archived now, so a new run can start.
/// A halted or aborted run's journal stays, and opening it refuses.
fn archive_succeeded(path: &Path) -> Result<(), JournalError> {
    if !path.exists() {
        return Ok(());
    }
    let (replay, _) = crate::journal::read(path)?;
    if replay.ended.as_deref() == Some("succeeded") {
        let done = crate::recovery::archive(path).map_err(|e| JournalError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        tracing::info!(journal = %path.display(), archived = %done.display(), "archived the journal of a run that had succeeded");
    }
    Ok(())
}

/// Refuses early (before a confirmation is asked) when a new run would
/// find an unfinished journal at `path`; a succeeded run's journal left
/// there is archived first, as [`Checked::run`] would.
pub fn check_new(path: &Path, playbook: &str) -> Result<(), JournalError> {
    archive_succeeded(path)?;
    if path.exists() {
        return Err(JournalError::Exists {
            path: path.to_path_buf(),
            playbook: playbook.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Record;
    use crate::session::open_journal;

    #[test]
    fn a_new_run_archives_a_succeeded_runs_journal_and_refuses_a_halted_one() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let pb = Playbook::load(&root.join("config/mongo-sharded.toml")).unwrap();
        let scenario =
            crate::scenario::Scenario::load(&root.join("config/scenarios/smoke.toml")).unwrap();
        let inv = scenario.fleet().into_inventory();
        let plan = Plan::build(&inv, &pb).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let spec = |mode| JournalSpec {
            path: dir.path().join("p.journal"),
            mode,
            durable: false,
        };
        for (end, archived) in [("succeeded", true), ("halted", false)] {
            let (mut j, _) = open_journal(&spec(JournalMode::New), &pb, &inv, &plan).unwrap();
            j.append(&Record::End { state: end.into() }).unwrap();
            drop(j);
            let again = check_new(&spec(JournalMode::New).path, &pb.name);
            let done = std::fs::read_dir(dir.path())
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .path()
                        .to_string_lossy()
                        .ends_with(".done")
                })
                .count();
            if archived {
                assert!(again.is_ok(), "{:?}", again.err());
                assert_eq!(done, 1, "the succeeded run's journal is archived");
                let (j, _) = open_journal(&spec(JournalMode::New), &pb, &inv, &plan).unwrap();
                drop(j);
                std::fs::remove_file(dir.path().join("p.journal")).unwrap();
            } else {
                assert!(
                    matches!(again, Err(JournalError::Exists { .. })),
                    "a halted run's journal is kept for --resume: {:?}",
                    again.err()
                );
                assert!(
                    open_journal(&spec(JournalMode::New), &pb, &inv, &plan).is_err(),
                    "and opening it as new refuses"
                );
            }
        }
    }
}
