//! The daemon: named playbooks and scenarios from a config file; runs
//! (real, rehearsal, plan) started, paused, resumed, retuned and aborted
//! (the API's calls, in `calls.rs`);
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
mod calls;
mod live;
pub mod metrics;
pub mod notify;
mod runs;
pub mod store;

use crate::config::Playbook;
use crate::engine::Event;
pub use calls::{Action, Retune, StartRequest, MAX_SPEED};
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

pub(crate) fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Run => "run",
        Mode::Rehearse => "rehearse",
        Mode::Plan => "plan",
        Mode::Survey => "survey",
    }
}
