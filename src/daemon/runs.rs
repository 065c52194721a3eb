//! How the daemon drives a run: rehearsals and plans on a thread of their
//! own (a paused-clock runtime, like `rekindle rehearse`), real runs as a
//! task over the Docker runtime with a durable journal (like `rekindle
//! run`). Every engine event goes through [`Daemon::on_event`]; every end
//! goes through [`Run::end`], so the record on disk always says where a
//! run stands.

use super::{ApiState, Daemon, Mode, Run};
use crate::config::{Only, Playbook};
use crate::engine::{Event, Handle, RunState};
use crate::inventory::InventorySource;
use crate::pipeline::{self, DockerFleet, Simulated};
use crate::recovery::journal_path;
use crate::session::{JournalMode, JournalSpec, Observer};
use crate::survey::select::Selection;
use crate::survey::{Survey, Verdict};
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Where the daemon keeps real runs' journals.
pub(super) fn journal_dir(d: &Daemon) -> PathBuf {
    d.state_dir.join("journals")
}

/// Where an ended run's timeline files are (`GET /v1/runs/{id}/report`).
pub(super) fn report_dir(d: &Daemon, id: &str) -> PathBuf {
    d.state_dir.join("runs").join(format!("{id}.report"))
}

fn api_state(s: RunState) -> ApiState {
    match s {
        RunState::Succeeded => ApiState::Succeeded,
        RunState::Halted => ApiState::Halted,
        RunState::Aborted => ApiState::Aborted,
        RunState::Running | RunState::Paused => ApiState::Failed,
    }
}

/// Rehearsals and plans run on a thread of their own (a paused-clock runtime).
pub(super) fn spawn_simulated(
    d: Arc<Daemon>,
    run: Arc<Run>,
    pb: Playbook,
    scenario: PathBuf,
    mode: Mode,
) {
    std::thread::spawn(move || {
        let end = |state: ApiState, result: Option<serde_json::Value>, error: Option<String>| {
            // A daemon shutting down has already said "interrupted".
            if run.ended() {
                return;
            }
            run.end(state, result, error);
            d.note_finished(&run);
        };
        let scenario = match crate::scenario::Scenario::load(&scenario) {
            Ok(s) => s,
            Err(e) => return end(ApiState::Failed, None, Some(e.to_string())),
        };
        let only = run.view.lock().unwrap().only.unwrap_or(pb.policy.only);
        if matches!(mode, Mode::Plan | Mode::Survey) {
            // The scenario's world as it starts, through the pipeline (a
            // plan of only what is broken surveys it first).
            let clock = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build();
            let clock = match clock {
                Ok(c) => c,
                Err(e) => return end(ApiState::Failed, None, Some(e.to_string())),
            };
            let result = clock.block_on(async {
                let world = Simulated {
                    sim: crate::sim::SimFleet::new(&scenario),
                    static_budget: true,
                };
                let mut checked = pipeline::prepare(world, pb)
                    .await
                    .map_err(|e| e.to_string())?
                    .check(true)
                    .await
                    .map_err(|e| e.to_string())?;
                if mode == Mode::Survey {
                    return Ok(survey_result(&checked.survey().await, None));
                }
                let selection = match only {
                    Only::Broken => {
                        let (survey, sel) = checked.only_broken().await.map_err(|e| e.to_string())?;
                        Some(survey_result(&survey, Some(&sel)))
                    }
                    Only::All => None,
                };
                let p = &checked.plan;
                Ok::<_, String>(json!({
                    "containers": p.containers, "left_alone": p.left_out.len(), "waves": p.waves.len(),
                    "dns_queries": p.dns_queries, "estimate_s": p.estimate.as_secs_f64(), "selection": selection,
                }))
            });
            return match result {
                Ok(v) => end(ApiState::Succeeded, Some(v), None),
                Err(e) => end(ApiState::Failed, None, Some(e)),
            };
        }
        let (tx, rx) = std::sync::mpsc::channel::<Handle>();
        let journals = d.state_dir.join("rehearsals");
        let opts = crate::rehearse::Options {
            compare: false,
            static_budget: false,
            state_dir: Some(journals),
            handle_tx: Some(tx),
            only,
        };
        set_running(&run);
        let (d2, run2) = (d.clone(), run.clone());
        let speed = run.view.lock().unwrap().speed;
        let wall = std::time::Instant::now();
        let result = crate::rehearse::rehearse(&pb, &scenario, &opts, move |e, at_s| {
            if let Ok(h) = rx.try_recv() {
                run2.attach(h);
            }
            // A watched rehearsal: its clock holds until the wall's catches
            // up (the virtual clock stands still while this thread sleeps).
            if let Some(speed) = speed {
                let due = std::time::Duration::from_secs_f64(at_s / speed);
                if let Some(wait) = due.checked_sub(wall.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            d2.on_event(&run2, e, at_s);
        });
        if let Ok(report) = &result {
            let mut summary = Vec::new();
            let _ = crate::report::rehearsal_table(&mut summary, report, 0.0);
            if let Err(e) = crate::report::write(
                &report_dir(&d, &run.id()),
                report,
                &String::from_utf8_lossy(&summary),
            ) {
                tracing::warn!(run = %run.id(), error = %e, "the rehearsal's report could not be written");
            }
        }
        match result {
            Ok(report) => end(
                api_state(report.state),
                Some(json!({
                    "healthy": report.healthy, "total": report.total, "makespan_s": report.makespan_s,
                    "dns_queries": report.dns_queries, "dns_dropped": report.dns_dropped, "stuck": report.stuck, "reason": report.reason,
                    "selection": report.selection,
                })),
                None,
            ),
            Err(e) => end(ApiState::Failed, None, Some(e.to_string())),
        }
    });
}

/// A survey as a run's result: the counts, what is not ok (each with
/// why), the sets without a primary, and, for a run of only what is
/// broken, what the rules chose.
pub(super) fn survey_result(s: &Survey, sel: Option<&Selection>) -> serde_json::Value {
    let not_ok: Vec<_> = s
        .findings
        .iter()
        .filter(|f| f.verdict != Verdict::Ok)
        .collect();
    json!({
        "containers": s.findings.len(),
        "ok": s.count(&Verdict::Ok),
        "broken": s.count(&Verdict::Broken),
        "down": s.count(&Verdict::Down),
        "unknown": s.count(&Verdict::Unknown),
        "not_ok": not_ok,
        "restart": sel.map(Selection::restarts),
        "left_alone": sel.map(Selection::left_alone),
        "by_rule": sel.map(|sel| sel.counts().iter().map(|(w, n)| json!({"why": w.describe(), "restarts": w.restarts(), "containers": n})).collect::<Vec<_>>()),
        "sets_without_primary": sel.map(Selection::sets_without_primary),
        "hosts_silent": s.hosts_silent,
    })
}

fn set_running(run: &Run) {
    {
        let mut v = run.view.lock().unwrap();
        if v.state == ApiState::Pending {
            v.state = ApiState::Running;
        }
        v.note = None;
    }
    run.persist();
}

impl Daemon {
    /// A survey of the playbook's Docker hosts, as a task the daemon awaits
    /// on shutdown: every container asked its gate once, nothing restarted.
    pub(super) fn spawn_survey(self: &Arc<Self>, run: Arc<Run>, pb: Playbook) {
        let d = self.clone();
        let task = tokio::spawn(async move {
            set_running(&run);
            let surveyed = async {
                let fleet = DockerFleet::new(InventorySource::Docker);
                let checked = pipeline::prepare(fleet, pb)
                    .await
                    .map_err(|e| e.to_string())?
                    .check(true)
                    .await
                    .map_err(|e| e.to_string())?;
                run.push(json!({ "event": "preflight", "checks": checked.preflight.checks }));
                if let Some(failed) = checked.refusal() {
                    return Err(failed);
                }
                Ok::<_, String>(checked.survey().await)
            };
            match surveyed.await {
                Ok(s) => run.end(ApiState::Succeeded, Some(survey_result(&s, None)), None),
                Err(e) => run.end(ApiState::Failed, None, Some(e)),
            }
            d.note_finished(&run);
        });
        let mut tasks = self.tasks.lock().unwrap();
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }

    /// A real run on the playbook's Docker hosts, as a task the daemon
    /// awaits on shutdown.
    pub(super) fn spawn_real(self: &Arc<Self>, run: Arc<Run>, pb: Playbook, journal: JournalMode) {
        let d = self.clone();
        let task = tokio::spawn(async move { real_run(&d, &run, pb, journal).await });
        let mut tasks = self.tasks.lock().unwrap();
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }
}

async fn real_run(d: &Arc<Daemon>, run: &Arc<Run>, pb: Playbook, journal: JournalMode) {
    let fail = |error: String| {
        tracing::error!(run = %run.id(), %error, "run failed");
        run.end(ApiState::Failed, None, Some(error));
        d.note_finished(run);
    };
    // One connection setup per Docker host for the whole run.
    let fleet = DockerFleet::new(InventorySource::Docker);
    let prepared = match pipeline::prepare(fleet, pb).await {
        Ok(p) => p,
        Err(e) => return fail(e.to_string()),
    };
    if d.stopping() {
        // Nothing restarted yet; the record stays active and resumes.
        return;
    }
    let mut checked = match prepared.check(false).await {
        Ok(c) => c,
        Err(e) => return fail(e.to_string()),
    };
    let path = journal_path(&journal_dir(d), &checked.playbook.name);
    // Only what is broken: a new run surveys and chooses; a resumed one
    // restarts what its journal chose (`pipeline::Checked::run`).
    let only = run
        .view
        .lock()
        .unwrap()
        .only
        .unwrap_or(checked.playbook.policy.only);
    let resuming = match journal {
        JournalMode::Resume => true,
        JournalMode::ResumeOrNew => path.exists(),
        JournalMode::New | JournalMode::Replace => false,
    };
    let selective = only == Only::Broken && !resuming;
    if selective && checked.refusal().is_none() {
        match select_broken(d, run, &mut checked).await {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => return fail(e),
        }
    }
    let unreachable: Vec<_> = checked
        .inventory
        .unreachable_hosts()
        .map(|h| json!({ "host": h.name, "error": h.error }))
        .collect();
    let total = checked.plan.containers;
    run.push(json!({ "event": "preflight", "checks": checked.preflight.checks }));
    if let Some(failed) = checked.refusal() {
        return fail(failed);
    }
    *run.resolver.lock().unwrap() = checked.runtime().resolver().cloned();
    let replica = match ha_replica(d, run, &checked) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let spec = JournalSpec {
        path: path.clone(),
        mode: journal,
        durable: true,
    };
    let mut record = Record { d, run };
    let finished = match checked.run(spec, replica, &mut record).await {
        Ok(f) => f,
        Err(e) => return fail(e.to_string()),
    };
    // A run of only what was broken closes with a survey of everything.
    let post_flight = match finished.left_out > 0 {
        true => Some(survey_result(&finished.survey().await, None)),
        false => None,
    };
    let outcome = &finished.outcome;
    if outcome.state == RunState::Aborted && d.stopping() && !run.abort_asked.load(Ordering::SeqCst)
    {
        // Stopped by the daemon's shutdown, not by anyone's decision: the
        // record stays active and the next daemon resumes it.
        {
            let mut v = run.view.lock().unwrap();
            v.state = ApiState::Running;
            v.note = Some(format!("the daemon stopped: {} of {total} healthy; this run resumes from {} when a daemon starts again", outcome.healthy, path.display()));
        }
        run.persist();
        run.push(json!({ "event": "daemon_stopping", "healthy": outcome.healthy }));
        return;
    }
    let result = json!({
        "healthy": outcome.healthy, "total": total, "failed": outcome.failed, "restarts": outcome.restarts,
        "elapsed_s": outcome.elapsed_s, "reason": outcome.reason, "unreachable_hosts": unreachable,
        "post_flight": post_flight,
    });
    end_real_run(d, run, &finished, result, &path);
}

/// Before a new run of only what is broken: the survey and what it
/// chose, recorded as the run's `selection` event. `Ok(true)`: nothing is
/// broken, and the run has ended, succeeded with nothing restarted.
async fn select_broken(
    d: &Arc<Daemon>,
    run: &Arc<Run>,
    checked: &mut pipeline::Checked<DockerFleet>,
) -> Result<bool, String> {
    let (survey, sel) = checked.only_broken().await.map_err(|e| e.to_string())?;
    let chosen = survey_result(&survey, Some(&sel));
    run.push(json!({ "event": "selection", "selection": chosen }));
    if sel.restarts() > 0 {
        return Ok(false);
    }
    run.end(
        ApiState::Succeeded,
        Some(json!({ "healthy": 0, "total": 0, "restarts": 0, "note": "nothing is broken: nothing restarted", "selection": chosen })),
        None,
    );
    d.note_finished(run);
    Ok(true)
}

/// HA mode: the run is the cluster's, recorded in etcd, and its journal
/// replicated there (the replica returned), fenced by this daemon's
/// leadership (the fence set on the runtime). Without a cluster, no replica.
#[cfg(feature = "etcd")]
fn ha_replica(
    d: &Daemon,
    run: &Run,
    checked: &pipeline::Checked<DockerFleet>,
) -> Result<Option<Box<dyn crate::journal::Replica>>, String> {
    let Some(ha) = &d.ha else {
        return Ok(None);
    };
    let view = run.view.lock().unwrap().clone();
    if let Err(e) = ha.put_run(&view) {
        return Err(format!("recording the run in etcd: {e}"));
    }
    match (ha.replica(), ha.fence()) {
        (Ok(r), Ok(f)) => {
            checked.runtime().set_fence(f);
            Ok(Some(r))
        }
        (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
    }
}

/// Without the `etcd` feature a run has no cluster, so no replica.
#[cfg(not(feature = "etcd"))]
fn ha_replica(
    _d: &Daemon,
    _run: &Run,
    _checked: &pipeline::Checked<DockerFleet>,
) -> Result<Option<Box<dyn crate::journal::Replica>>, String> {
    Ok(None)
}

/// The end of a real run that was not stopped by the daemon's shutdown:
/// its report written, its record ended with `result` (and where its
/// journal at `path` goes), the cluster's record of it cleared, and a
/// succeeded run's journal archived.
fn end_real_run(
    d: &Arc<Daemon>,
    run: &Arc<Run>,
    finished: &pipeline::Finished<DockerFleet>,
    mut result: serde_json::Value,
    path: &std::path::Path,
) {
    let report = finished.report();
    if let Err(e) = report.write(&report_dir(d, &run.id()), &report.summary()) {
        tracing::warn!(run = %run.id(), error = %e, "the run's report could not be written");
    }
    // The record says the run ended before its journal is archived: a crash
    // between the two leaves an ended record and a journal whose last
    // record says it succeeded, which the next new run archives (see
    // `pipeline::Checked::run`) — never an active record without a
    // journal, which would start the fleet over.
    let done = finished.archive_name();
    let kept = match &done {
        Some(done) => format!("archived as {}", done.display()),
        None => format!(
            "kept at {}: start the run again with \"resume\": true to continue it",
            path.display()
        ),
    };
    result["journal"] = json!(kept);
    run.end(api_state(finished.outcome.state), Some(result), None);
    // The cluster's record of it goes, if this daemon still leads (a
    // deposed leader's run is the next leader's to continue).
    #[cfg(feature = "etcd")]
    if let Some(ha) = &d.ha {
        ha.clear_run();
    }
    crash_point("run-ended");
    if let Some(done) = done {
        if let Err(e) = finished.archive(&done) {
            tracing::warn!(run = %run.id(), journal = %path.display(), error = %e, "the succeeded run's journal could not be archived; the next new run archives it");
        }
    }
    d.note_finished(run);
}

/// A crash on purpose, for the crash-safety tests: with
/// `REKINDLE_CRASH_AT=NAME` in its environment the daemon aborts at the
/// point of that name (`run-ended`: a run's record says it ended, its
/// journal is not archived yet), as a kill -9 there would.
fn crash_point(name: &str) {
    if std::env::var("REKINDLE_CRASH_AT").is_ok_and(|v| v == name) {
        tracing::error!(point = name, "REKINDLE_CRASH_AT: aborting here");
        std::process::abort();
    }
}

/// The daemon's view of a real run's session: the run record gets the
/// control handle and every event.
struct Record<'a> {
    d: &'a Arc<Daemon>,
    run: &'a Arc<Run>,
}

impl Observer for Record<'_> {
    fn started(&mut self, handle: &Handle) {
        self.run.attach(handle.clone());
        set_running(self.run);
    }
    fn event(&mut self, e: &Event, at_s: f64) {
        self.d.on_event(self.run, e, at_s);
    }
}
