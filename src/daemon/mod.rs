//! The daemon: named playbooks and scenarios from a config file; runs
//! (real, rehearsal, plan) started, paused, resumed, retuned and aborted;
//! their records on disk ([`store`]) so a restarted daemon resumes real
//! runs from their journals; the audit log; webhooks ([`notify`]); the
//! metrics' counts ([`metrics`]); and, with the `etcd` feature, its place
//! in an HA cluster ([`ha`]). It knows nothing of HTTP: the routes in
//! [`crate::api`] call it, and each refusal is a [`Refusal`] that the API
//! turns into its answer. It holds no planning or restart logic: runs go
//! through the same session as the CLI.

#[cfg(feature = "etcd")]
pub mod ha;
#[cfg(feature = "etcd")]
pub use ha::Ha;
/// The daemon's place in an HA cluster: none without the `etcd` feature.
#[cfg(not(feature = "etcd"))]
pub enum Ha {}
mod live;
pub mod metrics;
pub mod notify;
mod runs;
pub mod store;

use crate::config::Playbook;
use crate::engine::Event;
use notify::{Note, Notifier, WebhookConfig};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
pub use store::{ApiState, Mode, Run, RunView};

/// Ended runs whose events stay in memory for `/events` (older ones keep
/// only their `run_ended`; real runs' events stay on disk).
pub const EVENT_HISTORY_RUNS: usize = 8;

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
    /// Tokens with roles (`[[tokens]]`): each a `name` (what the audit log
    /// and run records say), a `role` (`viewer` or `operator`) and its
    /// secret in `env` (a variable) or `file` (relative to the config
    /// file; refused when group or others may read it).
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// Serve `/metrics` without a token (a Prometheus scrape); every other
    /// route but `/healthz` needs one.
    #[serde(default)]
    pub metrics_public: bool,
    /// TLS: the certificate chain (PEM, relative to the config file).
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// TLS: its private key (PEM; refused when group or others may read it).
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// TLS: a CA (PEM) whose client certificate every caller must present.
    #[serde(default)]
    pub tls_client_ca: Option<PathBuf>,
    /// name → playbook path (relative to the config file).
    pub playbooks: BTreeMap<String, PathBuf>,
    /// name → scenario path, for rehearsals.
    #[serde(default)]
    pub scenarios: BTreeMap<String, PathBuf>,
    /// Where to send notes of runs (`[[webhooks]]`).
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
}

/// One `[[tokens]]` entry of the daemon's config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Its holder's name in the audit log and run records (never the secret).
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The variable holding its secret.
    #[serde(default)]
    pub env: Option<String>,
    /// The file holding its secret (relative to the config file).
    #[serde(default)]
    pub file: Option<PathBuf>,
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Every GET: runs, events, reports, metrics, the cluster.
    Viewer,
    /// Also start, pause, resume, abort and retune runs.
    Operator,
}

/// A token the daemon accepts.
#[derive(Clone)]
pub struct Token {
    /// Its holder's name (the audit log's actor).
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The secret a caller sends as `Authorization: Bearer`.
    pub secret: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// What a daemon serves, read from its config file.
pub struct DaemonSetup {
    /// The playbooks, by name, loaded and validated.
    pub playbooks: BTreeMap<String, Playbook>,
    /// Scenario paths, by name, for rehearsals.
    pub scenarios: BTreeMap<String, PathBuf>,
    /// The tokens it accepts; none: every call is served (a unix socket,
    /// or `--insecure-no-auth` on loopback).
    pub tokens: Vec<Token>,
    /// `/metrics` served without a token.
    pub metrics_public: bool,
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
    tokens: Vec<Token>,
    /// `/metrics` served without a token.
    pub metrics_public: bool,
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

/// Why the daemon refused a call. The API answers each with its status
/// (400, 401, 404, 409, 503, 500) and the text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// The request is wrong (a field, the body).
    #[error("{0}")]
    BadRequest(String),
    /// No token, or the wrong one.
    #[error("{0}")]
    Unauthorized(String),
    /// A token whose role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// No such run or action.
    #[error("{0}")]
    NotFound(String),
    /// The request clashes with what is (an active run, an ended one, a
    /// journal that holds an unfinished run).
    #[error("{0}")]
    Conflict(String),
    /// The daemon cannot take it now (it is shutting down).
    #[error("{0}")]
    Unavailable(String),
    /// HA mode: this daemon does not lead; the leader's address, if known.
    #[error("this daemon does not lead cluster {cluster}: send mutating calls to the leader")]
    NotLeading {
        /// The cluster's name.
        cluster: String,
        /// The leader's address, as etcd says.
        leader: Option<String>,
    },
    /// The daemon failed (its state dir).
    #[error("{0}")]
    Internal(String),
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
        let audit = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(setup.state_dir.join("audit.log"))?
        };
        Ok(Daemon {
            playbooks: setup.playbooks,
            scenarios: setup.scenarios,
            tokens: setup.tokens,
            metrics_public: setup.metrics_public,
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

    /// The token a bearer secret names (every token compared in constant
    /// time).
    fn token_of(&self, bearer: &str) -> Option<&Token> {
        self.tokens.iter().fold(None, |found, t| {
            match same(bearer.as_bytes(), t.secret.as_bytes()) {
                true => Some(t),
                false => found,
            }
        })
    }

    /// What a known bearer token may do (an operator's everything where
    /// no token is asked); `None` for an unknown one.
    pub fn role(&self, bearer: Option<&str>) -> Option<Role> {
        if self.tokens.is_empty() {
            return Some(Role::Operator);
        }
        bearer.and_then(|b| self.token_of(b)).map(|t| t.role)
    }

    /// Who calls, for the audit log: the token's name, "unauthenticated"
    /// (no token, or a wrong one), or "anonymous" when no token is asked.
    pub fn actor(&self, bearer: Option<&str>) -> String {
        if self.tokens.is_empty() {
            return "anonymous".into();
        }
        bearer
            .and_then(|b| self.token_of(b))
            .map_or_else(|| "unauthenticated".into(), |t| t.name.clone())
    }

    /// Who makes a call that needs `role`, from its bearer token (`None`:
    /// no `Authorization: Bearer` header): 401 without a known token, 403
    /// when its role is too weak. In HA mode only the leader acts on an
    /// operator's call.
    pub fn authorize(&self, bearer: Option<&str>, role: Role) -> Result<String, Refusal> {
        if role == Role::Operator {
            self.check_leading()?;
        }
        if self.tokens.is_empty() {
            return Ok("anonymous".into());
        }
        let token = match bearer {
            Some(b) => self
                .token_of(b)
                .ok_or_else(|| Refusal::Unauthorized("wrong token".into()))?,
            None => {
                return Err(Refusal::Unauthorized(
                    "missing Authorization: Bearer <token>".into(),
                ))
            }
        };
        if token.role < role {
            return Err(Refusal::Forbidden(format!(
                "token {:?} is a viewer's: starting and steering runs needs an operator's",
                token.name
            )));
        }
        Ok(token.name.clone())
    }

    /// One line of the audit log for a call: every mutating call and
    /// every refused one (401, 403, 409, 413), with who, from where, the
    /// route and its answer.
    pub fn audit_call(&self, who: &str, remote: &str, method: &str, route: &str, status: u16) {
        let mut f = self.audit.lock().unwrap();
        let line = json!({ "at": store::unix_now(), "who": who, "remote": remote, "call": format!("{method} {route}"), "status": status });
        if let Err(e) = writeln!(f, "{line}").and_then(|_| f.sync_data()) {
            tracing::error!(error = %e, "cannot write the audit log");
        }
    }

    /// In HA mode only the leader acts: a follower refuses mutating calls
    /// and names the leader.
    fn check_leading(&self) -> Result<(), Refusal> {
        #[cfg(feature = "etcd")]
        if let Some(ha) = &self.ha {
            if ha.leading().is_none() {
                return Err(Refusal::NotLeading {
                    cluster: ha.coord.settings().cluster.clone(),
                    leader: ha.leader(),
                });
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
    pub fn cluster_view(&self) -> serde_json::Value {
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

    /// The run `id`; a refusal naming it when the daemon does not know it.
    pub fn run(&self, id: &str) -> Result<Arc<Run>, Refusal> {
        self.find(id)
            .ok_or_else(|| Refusal::NotFound(format!("no run {id:?}")))
    }

    /// The run `id`, if the daemon knows it.
    pub fn find(&self, id: &str) -> Option<Arc<Run>> {
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
    fn on_event(&self, run: &Run, e: &Event, at_s: f64) {
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
        run.sample(at_s, matches!(e, Event::Finished { .. }));
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
        use Refusal::{BadRequest, Conflict};
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
        let journal = crate::recovery::journal_path(&runs::journal_dir(self), &pb.name);
        let run = {
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
            run
        };
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

pub(crate) fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Run => "run",
        Mode::Rehearse => "rehearse",
        Mode::Plan => "plan",
        Mode::Survey => "survey",
    }
}
