//! The daemon's HTTP API (axum): named playbooks and scenarios from a
//! config file; runs (real, rehearsal, plan) started, watched, paused,
//! resumed, retuned and aborted over JSON under `/v1`. Mutating calls need
//! a bearer token (compared in constant time) and go to an audit log;
//! bodies are size-capped. Runs are recorded on disk ([`store`]) so a
//! restarted daemon resumes real runs from their journals. It holds no
//! planning or restart logic: runs go through the same engine as the CLI.

#[cfg(feature = "etcd")]
pub mod ha;
#[cfg(feature = "etcd")]
pub use ha::Ha;
/// The daemon's place in an HA cluster: none without the `etcd` feature.
#[cfg(not(feature = "etcd"))]
pub enum Ha {}
pub mod metrics;
pub mod notify;
mod runs;
pub mod store;

use crate::config::Playbook;
use crate::engine::Event;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use notify::{Note, Notifier, WebhookConfig};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
pub use store::{ApiState, Mode, Run, RunView};

/// The API's description, kept in the repo (docs/openapi.json).
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

/// Ended runs whose events stay in memory for `/events` (older ones keep
/// only their `run_ended`; real runs' events stay on disk).
pub const EVENT_HISTORY_RUNS: usize = 8;

/// Request bodies above this are refused with 413.
pub const BODY_LIMIT: usize = 16 * 1024;

/// The daemon's config file (TOML).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonFile {
    /// `host:port` or `unix:/path/to.sock`.
    #[serde(default)]
    pub listen: Option<String>,
    /// Where journals, run records and the audit log live (`--state-dir` wins).
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// Env var holding the token (default REKINDLE_TOKEN).
    #[serde(default)]
    pub token_env: Option<String>,
    /// A file holding the token (relative to the config file); it wins over the variable.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// The name the token's holder has in the audit log (default "token").
    #[serde(default)]
    pub token_name: Option<String>,
    /// name → playbook path (relative to the config file).
    pub playbooks: BTreeMap<String, PathBuf>,
    /// name → scenario path, for rehearsals.
    #[serde(default)]
    pub scenarios: BTreeMap<String, PathBuf>,
    /// Where to send notes of runs (`[[webhooks]]`).
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
}

/// What a daemon serves, read from its config file.
pub struct DaemonSetup {
    /// The playbooks, by name, loaded and validated.
    pub playbooks: BTreeMap<String, Playbook>,
    /// Scenario paths, by name, for rehearsals.
    pub scenarios: BTreeMap<String, PathBuf>,
    /// (name for the audit log, secret); `None`: no token asked.
    pub token: Option<(String, String)>,
    /// Where journals, run records and the audit log live.
    pub state_dir: PathBuf,
    /// Delivers the webhooks' notes.
    pub notifier: Notifier,
    /// The cluster this daemon belongs to (HA mode), if any.
    pub ha: Option<Arc<Ha>>,
}

/// The daemon: its playbooks, its runs, and their records.
pub struct Daemon {
    /// The playbooks, by name.
    pub playbooks: BTreeMap<String, Playbook>,
    /// Scenario paths, by name, for rehearsals.
    pub scenarios: BTreeMap<String, PathBuf>,
    /// (name for the audit log, secret).
    token: Option<(String, String)>,
    /// Where journals, run records and the audit log live.
    pub state_dir: PathBuf,
    runs_dir: PathBuf,
    runs: Mutex<Vec<Arc<Run>>>,
    next_id: AtomicU64,
    audit: Mutex<std::fs::File>,
    notifier: Notifier,
    stopping: AtomicBool,
    /// Tells event streams the daemon is going away.
    shutdown: tokio::sync::watch::Sender<bool>,
    /// Real runs' tasks, awaited on shutdown.
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// The cluster this daemon belongs to (HA mode), if any.
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    ha: Option<Arc<Ha>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartRequest {
    playbook: String,
    mode: Mode,
    #[serde(default)]
    scenario: Option<String>,
    reason: String,
    /// mode run: continue the unfinished run in the playbook's journal.
    #[serde(default)]
    resume: bool,
}

/// A mutating call's caller and JSON body: 401 before 400.
// The error is the answer itself, returned once per refused call: boxing
// it would buy nothing.
#[allow(clippy::result_large_err)]
fn authorized_body<T: serde::de::DeserializeOwned>(
    d: &Daemon,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(String, T), Response> {
    let who = d.authorize(headers)?;
    let req = serde_json::from_slice(body)
        .map_err(|e| err(StatusCode::BAD_REQUEST, format!("request body: {e}")))?;
    Ok((who, req))
}

fn err(code: StatusCode, msg: impl Into<String>) -> Response {
    (code, Json(json!({ "error": msg.into() }))).into_response()
}

/// Equal in time whatever the inputs share (their lengths aside).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

impl Daemon {
    /// Opens the state dir (audit log, run records). Call [`Daemon::recover`]
    /// next, inside the runtime, to pick up what a previous daemon left.
    pub fn new(setup: DaemonSetup) -> std::io::Result<Daemon> {
        let runs_dir = setup.state_dir.join("runs");
        std::fs::create_dir_all(&runs_dir)?;
        let audit = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(setup.state_dir.join("audit.log"))?;
        Ok(Daemon {
            playbooks: setup.playbooks,
            scenarios: setup.scenarios,
            token: setup.token,
            state_dir: setup.state_dir,
            runs_dir,
            runs: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            audit: Mutex::new(audit),
            notifier: setup.notifier,
            stopping: AtomicBool::new(false),
            shutdown: tokio::sync::watch::channel(false).0,
            tasks: Mutex::new(Vec::new()),
            ha: setup.ha,
        })
    }

    /// Loads the recorded runs. A rehearsal or plan that was active when
    /// the daemon stopped is reported `interrupted`; a real run that was
    /// active resumes from its journal. Returns (interrupted, resumed).
    pub fn recover(self: &Arc<Self>) -> std::io::Result<(usize, usize)> {
        let loaded = Run::load_all(&self.runs_dir)?;
        let next = loaded.iter().map(|r| r.number()).max().unwrap_or(0) + 1;
        self.next_id.store(next, Ordering::SeqCst);
        let (mut interrupted, mut resumed) = (0, 0);
        let mut to_resume = Vec::new();
        for run in &loaded {
            let v = run.view.lock().unwrap().clone();
            if !v.state.active() {
                continue;
            }
            #[cfg(feature = "etcd")]
            if self.ha.is_some() && v.mode == Mode::Run {
                // HA mode: a real run is the cluster's; its leader
                // continues it from etcd (this daemon too, if it wins).
                run.end(ApiState::Interrupted, None, Some("the daemon stopped while this run was active; in HA mode the cluster's leader continues it from etcd".into()));
                continue;
            }
            match (v.mode, self.playbooks.get(&v.playbook)) {
                (Mode::Run, Some(pb)) => to_resume.push((run.clone(), pb.clone())),
                (Mode::Run, None) => {
                    run.end(ApiState::Failed, None, Some(format!("the daemon restarted without playbook {:?}: this run cannot resume (its journal is kept)", v.playbook)));
                }
                _ => {
                    interrupted += 1;
                    run.end(ApiState::Interrupted, None, Some(format!("the daemon stopped while this {:?} was {}; it is not resumed: start it again", v.mode, v.state.name())));
                }
            }
        }
        *self.runs.lock().unwrap() = loaded;
        for (run, pb) in to_resume {
            resumed += 1;
            {
                let mut v = run.view.lock().unwrap();
                v.resumed += 1;
                v.state = ApiState::Pending;
                v.note = Some("resuming from its journal after a daemon restart".into());
                // The operator's standing controls go on: paused stays
                // paused, a retune stays (applied when the engine starts).
                let c = v.controls.clone();
                if c.paused {
                    run.pause_asked.store(true, Ordering::SeqCst);
                    v.note = Some("resumed from its journal after a daemon restart, and paused as the operator left it: resume it to go on".into());
                }
                if c.dns_budget_qps.is_some() || c.restart_rate.is_some() {
                    *run.retune_asked.lock().unwrap() = Some((c.dns_budget_qps, c.restart_rate));
                }
            }
            run.persist();
            run.push(
                json!({ "event": "run_resumed", "resumed": run.view.lock().unwrap().resumed }),
            );
            tracing::info!(run = %run.id(), playbook = %pb.name, "resuming a real run from its journal");
            self.spawn_real(run, pb, crate::session::JournalMode::ResumeOrNew);
        }
        Ok((interrupted, resumed))
    }

    /// Whether the daemon is shutting down.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Graceful shutdown: real runs stop starting restarts (those in flight
    /// finish and are journaled) and stay recorded as active, to resume
    /// when a daemon starts again; rehearsals are recorded interrupted;
    /// event streams end. Waits up to `grace` for real runs to settle.
    pub async fn shut_down(&self, grace: std::time::Duration) {
        self.stopping.store(true, Ordering::SeqCst);
        let runs: Vec<Arc<Run>> = self.runs.lock().unwrap().clone();
        for run in runs.iter().filter(|r| !r.ended()) {
            let mode = run.view.lock().unwrap().mode;
            if let Some(h) = run.handle.lock().unwrap().as_ref() {
                h.abort();
            }
            if mode != Mode::Run {
                run.end(ApiState::Interrupted, None, Some("the daemon stopped while this run was active; it is not resumed: start it again".into()));
            }
        }
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock().unwrap());
        if tokio::time::timeout(grace, futures_util::future::join_all(tasks))
            .await
            .is_err()
        {
            tracing::warn!(
                ?grace,
                "real runs did not settle in time; their journals say where they stopped"
            );
        }
        #[cfg(feature = "etcd")]
        if let Some(ha) = &self.ha {
            ha.resign();
        }
        self.shutdown.send_replace(true);
    }

    /// Checks the bearer token of a mutating call; `Err` is the 401.
    #[allow(clippy::result_large_err)]
    fn authorize(&self, headers: &HeaderMap) -> Result<String, Response> {
        self.check_leading()?;
        let Some((name, token)) = &self.token else {
            return Ok("anonymous".into());
        };
        let given = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match given {
            Some(g) if same(g.as_bytes(), token.as_bytes()) => Ok(name.clone()),
            Some(_) => Err(err(StatusCode::UNAUTHORIZED, "wrong token")),
            None => Err(err(
                StatusCode::UNAUTHORIZED,
                "missing Authorization: Bearer <token>",
            )),
        }
    }

    /// In HA mode only the leader acts: a follower's answer to a mutating
    /// call is 503 with the leader's address.
    #[allow(clippy::result_large_err)]
    fn check_leading(&self) -> Result<(), Response> {
        #[cfg(feature = "etcd")]
        if let Some(ha) = &self.ha {
            if ha.leading().is_none() {
                let leader = ha.leader();
                return Err((
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({
                        "error": format!("this daemon does not lead cluster {}: send mutating calls to the leader", ha.coord.settings().cluster),
                        "leader": leader,
                    })),
                )
                    .into_response());
            }
        }
        Ok(())
    }

    /// Starts the HA loop (join, campaign, take over) on a thread of its
    /// own, once the daemon listens at `me`. Refused membership is an
    /// error; without HA mode, nothing.
    pub fn start_ha(self: &Arc<Self>, me: &str) -> anyhow::Result<()> {
        #[cfg(feature = "etcd")]
        if let Some(ha) = &self.ha {
            ha.join(me)?;
            let d = self.clone();
            let rt = tokio::runtime::Handle::current();
            std::thread::Builder::new()
                .name("rekindle-leader".into())
                .spawn(move || d.lead_forever(rt))?;
        }
        let _ = me;
        Ok(())
    }

    /// `GET /v1/cluster`: the cluster, this daemon, the leader.
    fn cluster_view(&self) -> serde_json::Value {
        #[cfg(feature = "etcd")]
        if let Some(ha) = &self.ha {
            return json!({
                "cluster": ha.coord.settings().cluster,
                "me": ha.me(),
                "leader": ha.leader(),
                "leading": ha.leading().is_some(),
            });
        }
        json!({ "cluster": null, "leading": true })
    }

    fn audit(&self, who: &str, what: &str, reason: &str) {
        let mut f = self.audit.lock().unwrap();
        let line = json!({ "at": store::unix_now(), "who": who, "what": what, "reason": reason });
        if let Err(e) = writeln!(f, "{line}").and_then(|_| f.sync_data()) {
            tracing::error!(error = %e, "cannot write the audit log");
        }
    }

    fn find(&self, id: &str) -> Option<Arc<Run>> {
        self.runs
            .lock()
            .unwrap()
            .iter()
            .find(|r| r.view.lock().unwrap().id == id)
            .cloned()
    }

    /// One engine event of a run: its state, metrics, notes, the event log.
    /// Called for every event of every run (a braze rehearsal has ~45k):
    /// short locks, nothing cloned but for the rare notes.
    fn on_event(&self, run: &Run, e: &Event) {
        if matches!(e, Event::Paused | Event::Resumed) {
            {
                let mut v = run.view.lock().unwrap();
                if v.state.active() {
                    v.state = if matches!(e, Event::Paused) {
                        ApiState::Paused
                    } else {
                        ApiState::Running
                    };
                }
            }
            run.persist();
        }
        run.stats.lock().unwrap().observe(e);
        if let Event::WaveHalted { wave, failed, .. } = e {
            let v = run.view.lock().unwrap().clone();
            self.notifier.send(Note {
                kind: "wave_halted",
                text: format!(
                    "rekindle: run {} of {} ({}) halted at wave {wave}: {} failed ({})",
                    v.id,
                    v.playbook,
                    mode_name(v.mode),
                    failed.len(),
                    failed.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
                ),
                details: json!({ "run": v.id, "playbook": v.playbook, "mode": v.mode, "wave": wave, "failed": failed }),
            });
        }
        run.push_event(e);
    }

    /// Says a run started (webhooks).
    fn note_started(&self, run: &Run) {
        let v = run.view.lock().unwrap().clone();
        self.notifier.send(Note {
            kind: "run_started",
            text: format!("rekindle: run {} of {} ({:?}) started: {}", v.id, v.playbook, v.mode, v.reason),
            details: json!({ "run": v.id, "playbook": v.playbook, "mode": v.mode, "scenario": v.scenario, "reason": v.reason, "resumed": v.resumed }),
        });
    }

    /// Says a run finished (webhooks), and lets go of the events of ended
    /// runs but the newest few (a braze-sized rehearsal has ~70k).
    fn note_finished(&self, run: &Run) {
        {
            let runs = self.runs.lock().unwrap();
            for r in runs
                .iter()
                .rev()
                .filter(|r| r.ended())
                .skip(EVENT_HISTORY_RUNS)
            {
                r.let_go_of_events();
            }
        }
        let v = run.view.lock().unwrap().clone();
        let why = v
            .error
            .clone()
            .or_else(|| {
                v.result
                    .as_ref()
                    .and_then(|r| r["reason"].as_str().map(String::from))
            })
            .map(|w| format!(": {w}"))
            .unwrap_or_default();
        self.notifier.send(Note {
            kind: "run_finished",
            text: format!("rekindle: run {} of {} ({:?}) {}{why}", v.id, v.playbook, v.mode, v.state.name()),
            details: json!({ "run": v.id, "playbook": v.playbook, "mode": v.mode, "state": v.state, "result": v.result, "error": v.error }),
        });
    }
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Run => "run",
        Mode::Rehearse => "rehearse",
        Mode::Plan => "plan",
    }
}

/// The HTTP API's routes, served by daemon `d`.
pub fn router(d: Arc<Daemon>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({ "ok": true })) }))
        .route("/v1/playbooks", get(playbooks))
        .route("/v1/runs", get(list_runs).post(start_run))
        .route("/v1/runs/{id}", get(get_run).patch(retune_run))
        .route("/v1/runs/{id}/events", get(run_events))
        .route("/v1/runs/{id}/report", get(run_report))
        .route(
            "/v1/openapi.json",
            get(|| async { ([("content-type", "application/json")], OPENAPI) }),
        )
        .route("/metrics", get(metrics_text))
        .route(
            "/v1/cluster",
            get(|State(d): State<Arc<Daemon>>| async move { Json(d.cluster_view()) }),
        )
        .route("/v1/runs/{id}/{action}", post(control_run))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(d)
}

async fn playbooks(State(d): State<Arc<Daemon>>) -> Json<serde_json::Value> {
    Json(json!({
        "playbooks": d.playbooks.iter().map(|(n, p)| json!({ "name": n, "playbook": p.name, "roles": p.roles.iter().map(|r| &r.name).collect::<Vec<_>>() })).collect::<Vec<_>>(),
        "scenarios": d.scenarios.keys().collect::<Vec<_>>(),
    }))
}

fn view_of(run: &Run) -> serde_json::Value {
    let v = run.view.lock().unwrap().clone();
    let mut j = serde_json::to_value(&v).unwrap();
    if let Some(h) = run.handle.lock().unwrap().as_ref() {
        j["status"] = serde_json::to_value(h.status()).unwrap();
    }
    j
}

async fn list_runs(State(d): State<Arc<Daemon>>) -> Json<serde_json::Value> {
    let runs: Vec<_> = d.runs.lock().unwrap().iter().map(|r| view_of(r)).collect();
    Json(json!({ "runs": runs }))
}

async fn get_run(State(d): State<Arc<Daemon>>, Path(id): Path<String>) -> Response {
    match d.find(&id) {
        Some(r) => Json(view_of(&r)).into_response(),
        None => err(StatusCode::NOT_FOUND, format!("no run {id:?}")),
    }
}

#[derive(Deserialize)]
struct ReportQuery {
    #[serde(default)]
    format: Option<String>,
}

/// An ended rehearsal's or real run's timeline: the HTML page, or
/// `?format=json|md`.
async fn run_report(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    query: Result<axum::extract::Query<ReportQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(axum::extract::Query(q)) = query else {
        return err(StatusCode::BAD_REQUEST, "format: expected html, json or md");
    };
    let (file, content_type) = match q.format.as_deref().unwrap_or("html") {
        "html" => ("timeline.html", "text/html; charset=utf-8"),
        "json" => ("timeline.json", "application/json"),
        "md" => ("timeline.md", "text/markdown; charset=utf-8"),
        other => {
            return err(
                StatusCode::BAD_REQUEST,
                format!("format: expected html, json or md, found {other:?}"),
            )
        }
    };
    let Some(run) = d.find(&id) else {
        return err(StatusCode::NOT_FOUND, format!("no run {id:?}"));
    };
    match tokio::fs::read(runs::report_dir(&d, &run.id()).join(file)).await {
        Ok(bytes) => ([("content-type", content_type)], bytes).into_response(),
        Err(_) if !run.ended() => err(StatusCode::NOT_FOUND, format!("run {id} has not ended: its report is written when it does")),
        Err(_) => {
            err(StatusCode::NOT_FOUND, format!("run {id} has no report (plans, runs that failed before the engine started, and runs ended before reports existed have none)"))
        }
    }
}

async fn start_run(State(d): State<Arc<Daemon>>, headers: HeaderMap, body: Bytes) -> Response {
    let (who, req) = match authorized_body::<StartRequest>(&d, &headers, &body) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if d.stopping() {
        return err(
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon is shutting down",
        );
    }
    let Some(pb) = d.playbooks.get(&req.playbook).cloned() else {
        return err(
            StatusCode::BAD_REQUEST,
            format!(
                "playbook {:?} is not served (GET /v1/playbooks lists them)",
                req.playbook
            ),
        );
    };
    if req.reason.trim().is_empty() {
        return err(
            StatusCode::BAD_REQUEST,
            "reason: say why this run starts (it goes to the audit log)",
        );
    }
    let scenario =
        match (req.mode, &req.scenario) {
            (Mode::Run, Some(_)) => return err(
                StatusCode::BAD_REQUEST,
                "scenario: only for rehearse and plan (a run acts on the playbook's Docker hosts)",
            ),
            (Mode::Run, None) => None,
            (_, None) => {
                return err(
                    StatusCode::BAD_REQUEST,
                    "scenario: required for rehearse and plan",
                )
            }
            (_, Some(s)) => match d.scenarios.get(s) {
                Some(p) => Some((s.clone(), p.clone())),
                None => {
                    return err(
                        StatusCode::BAD_REQUEST,
                        format!("scenario {s:?} is not served"),
                    )
                }
            },
        };
    if req.resume && req.mode != Mode::Run {
        return err(StatusCode::BAD_REQUEST, "resume: only for mode run");
    }
    let journal = crate::recovery::journal_path(&runs::journal_dir(&d), &pb.name);
    let run = {
        let mut runs = d.runs.lock().unwrap();
        if let Some(active) = runs.iter().find(|r| {
            let v = r.view.lock().unwrap();
            v.playbook == req.playbook && v.state.active()
        }) {
            return err(
                StatusCode::CONFLICT,
                format!(
                    "run {} of playbook {:?} is still active",
                    active.id(),
                    req.playbook
                ),
            );
        }
        if req.mode == Mode::Run {
            match (journal.exists(), req.resume) {
                (true, false) => {
                    return err(
                        StatusCode::CONFLICT,
                        format!(
                            "journal {} holds an unfinished run of playbook {:?} (halted or aborted): start with \"resume\": true to continue it without restarting anything twice",
                            journal.display(),
                            req.playbook
                        ),
                    )
                }
                (false, true) => return err(StatusCode::CONFLICT, format!("nothing to resume: no journal {}", journal.display())),
                _ => {}
            }
        }
        let id = format!("r{}", d.next_id.fetch_add(1, Ordering::SeqCst));
        let view = RunView {
            id,
            playbook: req.playbook.clone(),
            mode: req.mode,
            scenario: scenario.as_ref().map(|s| s.0.clone()),
            reason: req.reason.clone(),
            state: ApiState::Pending,
            result: None,
            error: None,
            created_at: store::unix_now(),
            ended_at: None,
            resumed: 0,
            note: None,
            controls: Default::default(),
        };
        let run = match Run::new(&d.runs_dir, view, req.mode == Mode::Run) {
            Ok(r) => r,
            Err(e) => {
                return err(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot record the run in {}: {e}", d.runs_dir.display()),
                )
            }
        };
        runs.push(run.clone());
        run
    };
    let id = run.id();
    d.audit(
        &who,
        &format!(
            "start {id} {:?} of {}{}",
            req.mode,
            req.playbook,
            if req.resume { " (resume)" } else { "" }
        ),
        &req.reason,
    );
    d.note_started(&run);
    match (req.mode, scenario) {
        (Mode::Run, _) => {
            let mode = if req.resume {
                crate::session::JournalMode::Resume
            } else {
                crate::session::JournalMode::New
            };
            d.spawn_real(run, pb, mode);
        }
        (mode, Some((_, path))) => runs::spawn_simulated(d.clone(), run, pb, path, mode),
        (_, None) => unreachable!("checked above"),
    }
    (StatusCode::CREATED, Json(json!({ "id": id }))).into_response()
}

async fn control_run(
    State(d): State<Arc<Daemon>>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let who = match d.authorize(&headers) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let reason = if body.is_empty() {
        String::new()
    } else {
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(v) if v.is_object() => v["reason"].as_str().unwrap_or_default().to_string(),
            Ok(_) => {
                return err(
                    StatusCode::BAD_REQUEST,
                    "request body: expected a JSON object such as {\"reason\": \"...\"}",
                )
            }
            Err(e) => return err(StatusCode::BAD_REQUEST, format!("request body: {e}")),
        }
    };
    if !matches!(action.as_str(), "pause" | "resume" | "abort") {
        return err(
            StatusCode::NOT_FOUND,
            format!("no action {action:?}: pause, resume or abort"),
        );
    }
    let Some(run) = d.find(&id) else {
        return err(StatusCode::NOT_FOUND, format!("no run {id:?}"));
    };
    let state = run.state();
    if !state.active() {
        return err(
            StatusCode::CONFLICT,
            format!("run {id} has ended ({})", state.name()),
        );
    }
    // Before the engine starts (discovery, planning), a pause or abort is
    // kept and applied when it does. An abort (or a halt) is final: a pause
    // or resume after it is refused.
    let h = run.handle.lock().unwrap().clone();
    let closed =
        run.abort_asked.load(Ordering::SeqCst) || h.as_ref().is_some_and(|h| h.is_closed());
    if action != "abort" && closed {
        return err(
            StatusCode::CONFLICT,
            format!("run {id}: {}", crate::engine::RunClosed),
        );
    }
    let refused = |r: Result<(), crate::engine::RunClosed>| {
        r.err()
            .map(|e| err(StatusCode::CONFLICT, format!("run {id}: {e}")))
    };
    let now = match action.as_str() {
        "pause" => {
            run.pause_asked.store(true, Ordering::SeqCst);
            if let Some(resp) = h.as_ref().and_then(|h| refused(h.pause())) {
                return resp;
            }
            Some(ApiState::Paused)
        }
        "resume" => {
            run.pause_asked.store(false, Ordering::SeqCst);
            if let Some(resp) = h.as_ref().and_then(|h| refused(h.resume())) {
                return resp;
            }
            Some(ApiState::Running)
        }
        _ => {
            run.abort_asked.store(true, Ordering::SeqCst);
            if let Some(h) = &h {
                h.abort();
            }
            None
        }
    };
    // The answer shows the new state at once (the event that says so is
    // handled on the run's own task, a moment later); the record keeps the
    // operator's pause for a daemon that picks the run up again.
    if let Some(st) = now {
        let mut v = run.view.lock().unwrap();
        if v.state.active() {
            v.state = st;
        }
        v.controls.paused = st == ApiState::Paused;
    }
    run.persist();
    d.audit(&who, &format!("{action} {id}"), &reason);
    Json(view_of(&run)).into_response()
}

/// Server-Sent Events of a run, from the start or after `Last-Event-ID`;
/// the stream ends after the `run_ended` event, or when the daemon stops.
async fn run_events(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
    let Some(run) = d.find(&id) else {
        return err(StatusCode::NOT_FOUND, format!("no run {id:?}"));
    };
    let after: u64 = match headers
        .get("last-event-id")
        .map(|v| v.to_str().ok().and_then(|s| s.trim().parse().ok()))
    {
        None => 0,
        Some(Some(n)) => n,
        Some(None) => {
            return err(
                StatusCode::BAD_REQUEST,
                "Last-Event-ID: expected the number of an event",
            )
        }
    };
    let rx = run.seq.subscribe();
    let stop = d.shutdown.subscribe();
    let stream = futures_util::stream::unfold(
        (run, after, rx, stop, false),
        |(run, next, mut rx, mut stop, finished)| async move {
            if finished {
                return None;
            }
            loop {
                if let Some((i, e)) = run.event_from(next) {
                    let last = e.kind == "run_ended";
                    let ev = SseEvent::default()
                        .id((i + 1).to_string())
                        .event(e.kind)
                        .data(e.data);
                    return Some((
                        Ok::<_, std::convert::Infallible>(ev),
                        (run, i + 1, rx, stop, last),
                    ));
                }
                if run.ended() && run.event_count() <= next {
                    return None;
                }
                if *stop.borrow() {
                    return None;
                }
                tokio::select! {
                    r = rx.changed() => if r.is_err() { return None },
                    _ = stop.changed() => {}
                }
            }
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Retune {
    #[serde(default)]
    dns_budget_qps: Option<f64>,
    #[serde(default)]
    restart_rate: Option<f64>,
    #[serde(default)]
    reason: Option<String>,
}

/// PATCH a running run: a new DNS budget ceiling or restart rate.
async fn retune_run(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (who, req) = match authorized_body::<Retune>(&d, &headers, &body) {
        Ok(x) => x,
        Err(r) => return r,
    };
    for (name, v) in [
        ("dns_budget_qps", req.dns_budget_qps),
        ("restart_rate", req.restart_rate),
    ] {
        if let Some(x) = v {
            if !(x.is_finite() && x > 0.0) {
                return err(
                    StatusCode::BAD_REQUEST,
                    format!("{name}: expected a positive number, found {x}"),
                );
            }
        }
    }
    if req.dns_budget_qps.is_none() && req.restart_rate.is_none() {
        return err(
            StatusCode::BAD_REQUEST,
            "expected dns_budget_qps and/or restart_rate",
        );
    }
    let Some(run) = d.find(&id) else {
        return err(StatusCode::NOT_FOUND, format!("no run {id:?}"));
    };
    if run.ended() {
        return err(StatusCode::CONFLICT, format!("run {id} has ended"));
    }
    if run.abort_asked.load(Ordering::SeqCst) {
        return err(
            StatusCode::CONFLICT,
            format!("run {id}: {}", crate::engine::RunClosed),
        );
    }
    match run.handle.lock().unwrap().clone() {
        Some(h) => {
            if let Err(e) = h.retune(req.dns_budget_qps, req.restart_rate) {
                return err(StatusCode::CONFLICT, format!("run {id}: {e}"));
            }
        }
        None => {
            let mut asked = run.retune_asked.lock().unwrap();
            let (dns, rate) = asked.unwrap_or((None, None));
            *asked = Some((req.dns_budget_qps.or(dns), req.restart_rate.or(rate)));
        }
    }
    // Kept with the record: a daemon that picks the run up again retunes it
    // the same.
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
    d.audit(
        &who,
        &format!(
            "retune {id} dns_budget_qps={:?} restart_rate={:?}",
            req.dns_budget_qps, req.restart_rate
        ),
        req.reason.as_deref().unwrap_or(""),
    );
    Json(view_of(&run)).into_response()
}

/// Prometheus text: runs by state; restarts by role and outcome, wave
/// durations; per active run healthy, failed, restarts, waves passed, DNS
/// budget; per real run its resolver's cache counters.
async fn metrics_text(State(d): State<Arc<Daemon>>) -> Response {
    use std::fmt::Write as _;
    let runs: Vec<Arc<Run>> = d.runs.lock().unwrap().clone();
    let mut by_state: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut out = String::new();
    let mut per_run = String::new();
    let mut dns = String::new();
    let mut totals = metrics::Totals::default();
    for r in &runs {
        let v = r.view.lock().unwrap().clone();
        *by_state.entry(v.state.name()).or_default() += 1;
        totals.add(&v.playbook, mode_name(v.mode), &r.stats.lock().unwrap());
        let l = format!(
            "run=\"{}\",playbook=\"{}\"",
            v.id,
            metrics::escape(&v.playbook)
        );
        if let Some(h) = r.handle.lock().unwrap().as_ref() {
            let st = h.status();
            let _ = write!(
                per_run,
                "rekindle_run_healthy{{{l}}} {}\nrekindle_run_failed{{{l}}} {}\nrekindle_run_restarts_total{{{l}}} {}\nrekindle_run_waves_passed{{{l}}} {}\n",
                st.healthy, st.failed, st.restarts, st.waves_passed
            );
            if let Some(p) = st.pace {
                let _ = write!(per_run, "rekindle_run_dns_budget_qps{{{l}}} {}\nrekindle_run_dns_lookups_granted_total{{{l}}} {}\n", p.dns_budget_qps, p.dns_lookups_granted);
            }
        }
        if let Some(res) = r.resolver.lock().unwrap().as_ref() {
            let m = res.metrics();
            let _ = write!(
                dns,
                "rekindle_resolver_cache_hits_total{{{l}}} {}\nrekindle_resolver_cache_misses_total{{{l}}} {}\nrekindle_resolver_collapsed_total{{{l}}} {}\nrekindle_resolver_stale_served_total{{{l}}} {}\nrekindle_resolver_upstream_queries_total{{{l}}} {}\nrekindle_resolver_upstream_errors_total{{{l}}} {}\nrekindle_resolver_upstream_latency_mean_ms{{{l}}} {}\n",
                m.hits, m.misses, m.collapsed, m.stale_served, m.upstream_queries, m.upstream_errors, m.upstream_latency_mean_ms
            );
        }
    }
    out += "# HELP rekindle_runs Runs the daemon knows, by state.\n# TYPE rekindle_runs gauge\n";
    for s in ApiState::ALL {
        let _ = writeln!(
            out,
            "rekindle_runs{{state=\"{}\"}} {}",
            s.name(),
            by_state.get(s.name()).copied().unwrap_or(0)
        );
    }
    totals.render(&mut out);
    out += "# TYPE rekindle_run_healthy gauge\n# TYPE rekindle_run_failed gauge\n# TYPE rekindle_run_restarts_total counter\n# TYPE rekindle_run_waves_passed gauge\n# TYPE rekindle_run_dns_budget_qps gauge\n# TYPE rekindle_run_dns_lookups_granted_total counter\n";
    out += &per_run;
    out += "# TYPE rekindle_resolver_cache_hits_total counter\n# TYPE rekindle_resolver_cache_misses_total counter\n# TYPE rekindle_resolver_collapsed_total counter\n# TYPE rekindle_resolver_stale_served_total counter\n# TYPE rekindle_resolver_upstream_queries_total counter\n# TYPE rekindle_resolver_upstream_errors_total counter\n# TYPE rekindle_resolver_upstream_latency_mean_ms gauge\n";
    out += &dns;
    ([("content-type", "text/plain; version=0.0.4")], out).into_response()
}
