//! What the API asks of the daemon, each answer a value or a [`Refusal`]:
//! the runs it knows, starting one (checked, recorded, audited, announced,
//! spawned), pausing, resuming, aborting and retuning one, and the
//! metrics' snapshot; and the requests those calls take.

use super::{metrics, mode_name, runs, store, Daemon, Refusal};
use super::{ApiState, Mode, Run, RunView};
use crate::config::Playbook;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// `POST /v1/runs`: what to start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// A playbook the daemon serves, by name.
    pub playbook: String,
    /// Run, rehearse or plan.
    pub mode: Mode,
    /// For rehearse and plan: a scenario the daemon serves, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
    /// Why (the audit log keeps it).
    pub reason: String,
    /// Mode run: continue the unfinished run in the playbook's journal.
    #[serde(default)]
    pub resume: bool,
    /// Modes run, rehearse and plan: `"broken"` restarts only what a
    /// survey finds broken (default: the playbook's `[policy] only`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only: Option<crate::config::Only>,
    /// Mode rehearse: seconds of the rehearsal's clock per second of the
    /// wall's (`10`: ten times faster than real), for a rehearsal people
    /// watch; default: as fast as the machine goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<f64>,
}

/// The fastest watched rehearsal: faster is "as fast as it goes" (no speed).
pub const MAX_SPEED: f64 = 10_000.0;

/// `PATCH /v1/runs/{id}`: a new DNS budget ceiling and/or restart rate.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retune {
    /// The DNS budget's ceiling, in lookups per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_budget_qps: Option<f64>,
    /// The restart rate, in restarts per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_rate: Option<f64>,
    /// Why (the audit log keeps it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a run's control can ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Stop starting restarts; those in flight finish.
    Pause,
    /// Go on after a pause.
    Resume,
    /// End the run for good (restarts in flight finish).
    Abort,
}

impl std::str::FromStr for Action {
    type Err = Refusal;
    fn from_str(s: &str) -> Result<Self, Refusal> {
        match s {
            "pause" => Ok(Action::Pause),
            "resume" => Ok(Action::Resume),
            "abort" => Ok(Action::Abort),
            _ => Err(Refusal::NotFound(format!(
                "no action {s:?}: pause, resume or abort"
            ))),
        }
    }
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Abort => "abort",
        }
    }
}

/// What the API asks of the daemon, each answer a value or a [`Refusal`].
impl Daemon {
    /// The runs the daemon knows, oldest first.
    pub fn runs(&self) -> Vec<Arc<Run>> {
        self.runs.lock().unwrap().clone()
    }

    /// A subscription that turns `true` when the daemon shuts down (event
    /// streams end then).
    pub fn shutdown_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Where a run's report file `file` is (written when the run ends).
    pub fn report_path(&self, run: &Run, file: &str) -> PathBuf {
        runs::report_dir(self, &run.id()).join(file)
    }

    /// Starts a run for `who`: validated, recorded, audited, announced, and
    /// its task spawned. Returns its id.
    pub fn start(self: &Arc<Self>, who: &str, req: StartRequest) -> Result<String, Refusal> {
        let (pb, scenario) = self.check_start(&req)?;
        let journal = crate::recovery::journal_path(&runs::journal_dir(self), &pb.name);
        let run = self.record_run(who, &req, scenario.as_ref().map(|s| s.0.clone()), &journal)?;
        let id = run.id();
        self.audit(
            who,
            &format!(
                "start {id} {:?} of {}{}",
                req.mode,
                req.playbook,
                if req.resume { " (resume)" } else { "" }
            ),
            &req.reason,
        );
        self.note_started(&run);
        match (req.mode, scenario) {
            (Mode::Run, _) => {
                let mode = if req.resume {
                    crate::session::JournalMode::Resume
                } else {
                    crate::session::JournalMode::New
                };
                self.spawn_real(run, pb, mode);
            }
            (mode, Some((_, path))) => runs::spawn_simulated(self.clone(), run, pb, path, mode),
            (Mode::Survey, None) => self.spawn_survey(run, pb),
            (_, None) => unreachable!("checked above"),
        }
        Ok(id)
    }

    /// The checks of a start request that need no run: the playbook and
    /// scenario served, a reason given, and each option only for the modes
    /// it means something to. Returns the playbook and the scenario (name,
    /// path), if the mode takes one.
    fn check_start(
        &self,
        req: &StartRequest,
    ) -> Result<(Playbook, Option<(String, PathBuf)>), Refusal> {
        use Refusal::BadRequest;
        if self.stopping() {
            return Err(Refusal::Unavailable("the daemon is shutting down".into()));
        }
        let Some(pb) = self.playbooks.get(&req.playbook).cloned() else {
            return Err(BadRequest(format!(
                "playbook {:?} is not served (GET /v1/playbooks lists them)",
                req.playbook
            )));
        };
        if req.reason.trim().is_empty() {
            return Err(BadRequest(
                "reason: say why this run starts (it goes to the audit log)".into(),
            ));
        }
        let scenario = match (req.mode, &req.scenario) {
            (Mode::Run, Some(_)) => return Err(BadRequest(
                "scenario: only for rehearse and plan (a run acts on the playbook's Docker hosts)"
                    .into(),
            )),
            (Mode::Run, None) => None,
            // A survey asks the playbook's Docker hosts, or a scenario's world.
            (Mode::Survey, None) => None,
            (_, None) => {
                return Err(BadRequest(
                    "scenario: required for rehearse and plan".into(),
                ))
            }
            (_, Some(s)) => match self.scenarios.get(s) {
                Some(p) => Some((s.clone(), p.clone())),
                None => return Err(BadRequest(format!("scenario {s:?} is not served"))),
            },
        };
        if req.resume && req.mode != Mode::Run {
            return Err(BadRequest("resume: only for mode run".into()));
        }
        if req.only.is_some() && req.mode == Mode::Survey {
            return Err(BadRequest(
                "only: for run, rehearse and plan (a survey restarts nothing)".into(),
            ));
        }
        match req.speed {
            Some(_) if req.mode != Mode::Rehearse => {
                return Err(BadRequest("speed: only for rehearse".into()))
            }
            Some(x) if !(x > 0.0 && x <= MAX_SPEED) => {
                return Err(BadRequest(format!(
                    "speed: expected rehearsal seconds per wall second, above 0 and at most {MAX_SPEED}, found {x}"
                )))
            }
            _ => {}
        }
        Ok((pb, scenario))
    }

    /// Records a new run of the request, under the runs' lock, so that two
    /// starts cannot both pass: refused while a run of the playbook is
    /// active, and for a real run while `journal` holds an unfinished run
    /// not asked to resume (or, asked to resume, holds none).
    fn record_run(
        &self,
        who: &str,
        req: &StartRequest,
        scenario: Option<String>,
        journal: &std::path::Path,
    ) -> Result<Arc<Run>, Refusal> {
        use Refusal::Conflict;
        let mut runs = self.runs.lock().unwrap();
        if let Some(active) = runs.iter().find(|r| {
            let v = r.view.lock().unwrap();
            v.playbook == req.playbook && v.state.active()
        }) {
            return Err(Conflict(format!(
                "run {} of playbook {:?} is still active",
                active.id(),
                req.playbook
            )));
        }
        if req.mode == Mode::Run {
            match (journal.exists(), req.resume) {
                (true, false) => {
                    return Err(Conflict(format!(
                        "journal {} holds an unfinished run of playbook {:?} (halted or aborted): start with \"resume\": true to continue it without restarting anything twice",
                        journal.display(),
                        req.playbook
                    )))
                }
                (false, true) => {
                    return Err(Conflict(format!(
                        "nothing to resume: no journal {}",
                        journal.display()
                    )))
                }
                _ => {}
            }
        }
        let id = format!("r{}", self.next_id.fetch_add(1, Ordering::SeqCst));
        let view = RunView {
            id,
            playbook: req.playbook.clone(),
            mode: req.mode,
            scenario,
            reason: req.reason.clone(),
            state: ApiState::Pending,
            result: None,
            error: None,
            created_at: store::unix_now(),
            ended_at: None,
            resumed: 0,
            note: None,
            controls: Default::default(),
            only: req.only,
            started_by: Some(who.to_string()),
            speed: req.speed,
        };
        let run = Run::new(&self.runs_dir, view, req.mode == Mode::Run).map_err(|e| {
            Refusal::Internal(format!(
                "cannot record the run in {}: {e}",
                self.runs_dir.display()
            ))
        })?;
        runs.push(run.clone());
        Ok(run)
    }

    /// Pauses, resumes or aborts run `id` for `who`. Before the engine
    /// starts (discovery, planning), a pause or abort is kept and applied
    /// when it does. An abort (or a halt) is final: a pause or resume after
    /// it is refused. The record keeps the operator's pause for a daemon
    /// that picks the run up again.
    pub fn control(
        &self,
        id: &str,
        action: Action,
        who: &str,
        reason: &str,
    ) -> Result<Arc<Run>, Refusal> {
        use Refusal::Conflict;
        let run = self.run(id)?;
        let state = run.state();
        if !state.active() {
            return Err(Conflict(format!("run {id} has ended ({})", state.name())));
        }
        let h = run.handle.lock().unwrap().clone();
        let closed =
            run.abort_asked.load(Ordering::SeqCst) || h.as_ref().is_some_and(|h| h.is_closed());
        if action != Action::Abort && closed {
            return Err(Conflict(format!("run {id}: {}", crate::engine::RunClosed)));
        }
        let refused = |e: crate::engine::RunClosed| Conflict(format!("run {id}: {e}"));
        let now = match action {
            Action::Pause => {
                run.pause_asked.store(true, Ordering::SeqCst);
                if let Some(h) = &h {
                    h.pause().map_err(refused)?;
                }
                Some(ApiState::Paused)
            }
            Action::Resume => {
                run.pause_asked.store(false, Ordering::SeqCst);
                if let Some(h) = &h {
                    h.resume().map_err(refused)?;
                }
                Some(ApiState::Running)
            }
            Action::Abort => {
                run.abort_asked.store(true, Ordering::SeqCst);
                if let Some(h) = &h {
                    h.abort();
                }
                None
            }
        };
        // The answer shows the new state at once (the event that says so
        // is handled on the run's own task, a moment later).
        if let Some(st) = now {
            let mut v = run.view.lock().unwrap();
            if v.state.active() {
                v.state = st;
            }
            v.controls.paused = st == ApiState::Paused;
        }
        run.persist();
        self.audit(who, &format!("{} {id}", action.name()), reason);
        Ok(run)
    }

    /// A new DNS budget ceiling and/or restart rate for run `id`, for
    /// `who`; kept with the record, so a daemon that picks the run up again
    /// retunes it the same.
    pub fn retune(&self, id: &str, who: &str, req: &Retune) -> Result<Arc<Run>, Refusal> {
        use Refusal::{BadRequest, Conflict};
        for (name, v) in [
            ("dns_budget_qps", req.dns_budget_qps),
            ("restart_rate", req.restart_rate),
        ] {
            if let Some(x) = v {
                if !(x.is_finite() && x > 0.0) {
                    return Err(BadRequest(format!(
                        "{name}: expected a positive number, found {x}"
                    )));
                }
            }
        }
        if req.dns_budget_qps.is_none() && req.restart_rate.is_none() {
            return Err(BadRequest(
                "expected dns_budget_qps and/or restart_rate".into(),
            ));
        }
        let run = self.run(id)?;
        if run.ended() {
            return Err(Conflict(format!("run {id} has ended")));
        }
        if run.abort_asked.load(Ordering::SeqCst) {
            return Err(Conflict(format!("run {id}: {}", crate::engine::RunClosed)));
        }
        match run.handle.lock().unwrap().clone() {
            Some(h) => h
                .retune(req.dns_budget_qps, req.restart_rate)
                .map_err(|e| Conflict(format!("run {id}: {e}")))?,
            None => {
                let mut asked = run.retune_asked.lock().unwrap();
                let (dns, rate) = asked.unwrap_or((None, None));
                *asked = Some((req.dns_budget_qps.or(dns), req.restart_rate.or(rate)));
            }
        }
        {
            let mut v = run.view.lock().unwrap();
            if req.dns_budget_qps.is_some() {
                v.controls.dns_budget_qps = req.dns_budget_qps;
            }
            if req.restart_rate.is_some() {
                v.controls.restart_rate = req.restart_rate;
            }
        }
        run.persist();
        self.audit(
            who,
            &format!(
                "retune {id} dns_budget_qps={:?} restart_rate={:?}",
                req.dns_budget_qps, req.restart_rate
            ),
            req.reason.as_deref().unwrap_or(""),
        );
        Ok(run)
    }

    /// The metrics' snapshot: runs by state; restarts by role and outcome,
    /// wave durations; per active run healthy, failed, restarts, waves
    /// passed, DNS budget; per real run its resolver's cache counters.
    pub fn scrape(&self) -> metrics::Scrape {
        let mut by_state: BTreeMap<&'static str, u64> = BTreeMap::new();
        let mut scrape = metrics::Scrape::default();
        for r in &self.runs() {
            let v = r.view.lock().unwrap().clone();
            *by_state.entry(v.state.name()).or_default() += 1;
            scrape
                .totals
                .add(&v.playbook, mode_name(v.mode), &r.stats.lock().unwrap());
            if let Some(h) = r.handle.lock().unwrap().as_ref() {
                let st = h.status();
                scrape.runs.push(metrics::RunGauges {
                    run: v.id.clone(),
                    playbook: v.playbook.clone(),
                    healthy: st.healthy as u64,
                    failed: st.failed as u64,
                    restarts: st.restarts,
                    waves_passed: st.waves_passed as u64,
                    pace: st.pace.map(|p| (p.dns_budget_qps, p.dns_lookups_granted)),
                });
            }
            if let Some(res) = r.resolver.lock().unwrap().as_ref() {
                scrape
                    .resolvers
                    .push((v.id.clone(), v.playbook.clone(), res.metrics()));
            }
        }
        scrape.runs_by_state = ApiState::ALL
            .iter()
            .map(|s| (s.name(), by_state.get(s.name()).copied().unwrap_or(0)))
            .collect();
        scrape
    }
}
