//! The daemon's runs and their records on disk: one JSON file per run
//! (`runs/<id>.json`, replaced atomically at every change of state) and,
//! for real runs, its events (`runs/<id>.events`, one JSON line each), so a
//! daemon that was stopped or killed knows every run it had accepted. It
//! holds no run logic: the daemon decides what a loaded record means.

use crate::dns::CachedResolver;
use crate::engine::Handle;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// What a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Restart the fleet for real.
    Run,
    /// Rehearse on a simulated fleet.
    Rehearse,
    /// Plan only: nothing restarts.
    Plan,
    /// Ask every container its gate once: nothing restarts.
    Survey,
}

/// Where a run stands, as the API says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiState {
    /// Accepted, not started yet.
    Pending,
    /// Restarting.
    Running,
    /// New restarts held by an operator.
    Paused,
    /// Every wave passed.
    Succeeded,
    /// Stopped by the failure policy.
    Halted,
    /// Stopped by an operator.
    Aborted,
    /// Could not run (an error before or outside the engine).
    Failed,
    /// The daemon stopped while a rehearsal or plan was active: it is not
    /// resumed (start it again); real runs resume instead.
    Interrupted,
}

impl ApiState {
    /// Whether the run may still change: pending, running or paused.
    pub fn active(self) -> bool {
        matches!(
            self,
            ApiState::Pending | ApiState::Running | ApiState::Paused
        )
    }

    /// Every state, in the order above.
    pub const ALL: [ApiState; 8] = [
        ApiState::Pending,
        ApiState::Running,
        ApiState::Paused,
        ApiState::Succeeded,
        ApiState::Halted,
        ApiState::Aborted,
        ApiState::Failed,
        ApiState::Interrupted,
    ];

    /// Its lowercase name, as the API writes it.
    pub fn name(self) -> &'static str {
        match self {
            ApiState::Pending => "pending",
            ApiState::Running => "running",
            ApiState::Paused => "paused",
            ApiState::Succeeded => "succeeded",
            ApiState::Halted => "halted",
            ApiState::Aborted => "aborted",
            ApiState::Failed => "failed",
            ApiState::Interrupted => "interrupted",
        }
    }
}

/// What the API shows of a run, and what its record holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunView {
    /// The run's id.
    pub id: String,
    /// The playbook's name.
    pub playbook: String,
    /// What the run does.
    pub mode: Mode,
    /// The scenario's name, for a rehearsal.
    pub scenario: Option<String>,
    /// Why the run was started, as its caller said (it goes to the audit log).
    pub reason: String,
    /// Where it stands.
    pub state: ApiState,
    /// What it produced once ended: a summary of the plan, the rehearsal or the run.
    pub result: Option<serde_json::Value>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Unix seconds.
    pub created_at: f64,
    /// When it ended (Unix seconds).
    #[serde(default)]
    pub ended_at: Option<f64>,
    /// How many times a daemon picked this run up again from its journal.
    #[serde(default)]
    pub resumed: u32,
    /// The last thing the daemon has to say about it (e.g. why it waits).
    #[serde(default)]
    pub note: Option<String>,
    /// The operator's standing controls, kept with the record so that a
    /// daemon that picks the run up again applies them (a paused run stays
    /// paused; a retune stays).
    #[serde(default)]
    pub controls: Controls,
    /// What the run restarts, when its start said (`"broken"`: only what
    /// a survey finds broken); else the playbook's `[policy] only`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only: Option<crate::config::Only>,
    /// Who started it: the token's name (never its secret), or
    /// `anonymous` where no token is asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_by: Option<String>,
    /// A watched rehearsal's speed: its clock's seconds per wall second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<f64>,
}

/// An operator's standing controls of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Controls {
    /// New restarts held.
    pub paused: bool,
    /// The operator's DNS budget ceiling, in q/s.
    pub dns_budget_qps: Option<f64>,
    /// The operator's restart rate, in restarts per second.
    pub restart_rate: Option<f64>,
}

/// The wall clock now, in Unix seconds (0 if before 1970).
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// One event as the API sends it: its kind and its JSON text.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Its `event` field (e.g. `wave_started`, `run_ended`).
    pub kind: String,
    /// Its JSON text.
    pub data: String,
}

impl StoredEvent {
    /// An event's JSON text and its kind, the `event` field (first in
    /// engine events; found by parsing in the daemon's own, whose keys
    /// come sorted).
    fn from_text(data: String) -> StoredEvent {
        let kind = match data
            .strip_prefix("{\"event\":\"")
            .and_then(|r| r.split('"').next())
        {
            Some(k) => k.to_string(),
            None => serde_json::from_str::<serde_json::Value>(&data)
                .ok()
                .and_then(|v| v["event"].as_str().map(String::from))
                .unwrap_or_else(|| "event".into()),
        };
        StoredEvent { kind, data }
    }
}

/// A run's events in memory, packed: one text buffer and each event's
/// span in it (a braze rehearsal has ~45k events; one small allocation
/// each fragmented the heap and slowed later rehearsals by a third). The
/// first `offset` events were let go (see [`Run::let_go_of_events`]).
#[derive(Default)]
struct Events {
    offset: u64,
    text: String,
    spans: Vec<(u32, u32)>,
}

impl Events {
    fn push(&mut self, data: &str) {
        self.spans.push((self.text.len() as u32, data.len() as u32));
        self.text.push_str(data);
    }

    fn get(&self, i: usize) -> Option<&str> {
        self.spans
            .get(i)
            .map(|&(at, len)| &self.text[at as usize..(at + len) as usize])
    }

    fn count(&self) -> u64 {
        self.offset + self.spans.len() as u64
    }
}

/// One run the daemon accepted: its view, its control handle and its events.
pub struct Run {
    /// What the API shows of it.
    pub view: Mutex<RunView>,
    /// The engine's control handle, once the engine started.
    pub handle: Mutex<Option<Handle>>,
    /// The run's events (SSE id = index + 1), the last being `run_ended`.
    events: Mutex<Events>,
    /// The number of events pushed so far, watched by event streams.
    pub seq: tokio::sync::watch::Sender<u64>,
    /// The real run's resolver, for /metrics.
    pub resolver: Mutex<Option<CachedResolver>>,
    /// Its counts for /metrics.
    pub stats: Mutex<super::metrics::RunStats>,
    /// Abort asked through the API (not by the daemon stopping).
    pub abort_asked: AtomicBool,
    /// Pause asked before the engine started: applied when it does.
    pub pause_asked: AtomicBool,
    /// A retune (DNS budget, restart rate) asked before the engine started.
    pub retune_asked: Mutex<Option<(Option<f64>, Option<f64>)>>,
    /// Its `load` samples (the live page's figures over time).
    sampler: Mutex<super::live::Sampler>,
    record: PathBuf,
    event_log: Mutex<Option<std::fs::File>>,
}

impl Run {
    /// A new run; `keep_events` writes its events beside its record.
    pub fn new(dir: &Path, view: RunView, keep_events: bool) -> std::io::Result<Arc<Run>> {
        let record = dir.join(format!("{}.json", view.id));
        let event_log = if keep_events {
            Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(record.with_extension("events"))?,
            )
        } else {
            None
        };
        let run = Run::assemble(record, view, Vec::new(), event_log);
        run.save()?;
        Ok(run)
    }

    fn assemble(
        record: PathBuf,
        view: RunView,
        list: Vec<String>,
        event_log: Option<std::fs::File>,
    ) -> Arc<Run> {
        let n = list.len() as u64;
        let mut events = Events::default();
        for e in &list {
            events.push(e);
        }
        Arc::new(Run {
            view: Mutex::new(view),
            handle: Mutex::new(None),
            events: Mutex::new(events),
            seq: tokio::sync::watch::channel(n).0,
            resolver: Mutex::new(None),
            stats: Mutex::new(Default::default()),
            abort_asked: AtomicBool::new(false),
            pause_asked: AtomicBool::new(false),
            retune_asked: Mutex::new(None),
            sampler: Mutex::new(Default::default()),
            record,
            event_log: Mutex::new(event_log),
        })
    }

    /// Every run recorded in `dir`, oldest first. A record that cannot be
    /// read is reported and skipped (never deleted).
    pub fn load_all(dir: &Path) -> std::io::Result<Vec<Arc<Run>>> {
        let mut runs = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let view: RunView = match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(record = %path.display(), error = %e, "unreadable run record skipped");
                    continue;
                }
            };
            let events_path = path.with_extension("events");
            let (events, log) = if events_path.exists() {
                // A line torn by a crash is dropped; the file is then
                // appended to after it.
                let f = std::fs::File::open(&events_path)?;
                let events: Vec<String> = std::io::BufReader::new(f)
                    .lines()
                    .map_while(Result::ok)
                    .filter(|l| serde_json::from_str::<serde::de::IgnoredAny>(l).is_ok())
                    .collect();
                let mut log = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&events_path)?;
                log.write_all(b"\n")?;
                (events, Some(log))
            } else {
                (Vec::new(), None)
            };
            runs.push(Run::assemble(path, view, events, log));
        }
        runs.sort_by_key(|r| r.number());
        Ok(runs)
    }

    /// The number in the run's id (`r12` → 12).
    pub fn number(&self) -> u64 {
        self.view
            .lock()
            .unwrap()
            .id
            .trim_start_matches('r')
            .parse()
            .unwrap_or(0)
    }

    /// Gives the run its engine's handle, applying what was asked before
    /// the engine started (a retune, a pause, an abort).
    pub fn attach(&self, h: Handle) {
        // A fresh engine is open: neither can be refused here.
        if let Some((dns, rate)) = self.retune_asked.lock().unwrap().take() {
            let _ = h.retune(dns, rate);
        }
        if self.abort_asked.load(Ordering::SeqCst) {
            h.abort();
        } else if self.pause_asked.load(Ordering::SeqCst) {
            let _ = h.pause();
        }
        self.push(super::live::plan_event(&h));
        *self.handle.lock().unwrap() = Some(h);
    }

    /// A `load` event, about once a second of the run's clock (`at_s`),
    /// and at its end (`last`).
    pub fn sample(&self, at_s: f64, last: bool) {
        let sample = match self.handle.lock().unwrap().as_ref() {
            Some(h) => self.sampler.lock().unwrap().sample(at_s, last, h),
            None => None,
        };
        if let Some(s) = sample {
            self.push(s);
        }
    }

    /// The run's id.
    pub fn id(&self) -> String {
        self.view.lock().unwrap().id.clone()
    }

    /// Where it stands now.
    pub fn state(&self) -> ApiState {
        self.view.lock().unwrap().state
    }

    /// Whether it ended.
    pub fn ended(&self) -> bool {
        !self.state().active()
    }

    /// Writes the record: a temporary file, fsync, rename.
    pub fn save(&self) -> std::io::Result<()> {
        let bytes =
            serde_json::to_vec_pretty(&*self.view.lock().unwrap()).expect("views serialize");
        let tmp = self.record.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_data()?;
        std::fs::rename(&tmp, &self.record)?;
        Ok(())
    }

    /// Saves, logging (not failing) when the disk refuses: a run is not
    /// stopped because its record could not be written.
    pub fn persist(&self) {
        if let Err(e) = self.save() {
            tracing::error!(record = %self.record.display(), error = %e, "cannot write the run record");
        }
    }

    /// Pushes one event (and, for real runs, appends it to the events file).
    pub fn push(&self, e: serde_json::Value) {
        self.push_text(&e.to_string());
    }

    /// Pushes an engine event (serialized once, straight to text).
    pub fn push_event(&self, e: &crate::engine::Event) {
        self.push_text(&serde_json::to_string(e).unwrap_or_default());
    }

    fn push_text(&self, data: &str) {
        if let Some(f) = self.event_log.lock().unwrap().as_mut() {
            if let Err(err) = writeln!(f, "{data}") {
                tracing::warn!(record = %self.record.display(), error = %err, "cannot append the run's event");
            }
        }
        let n = {
            let mut ev = self.events.lock().unwrap();
            ev.push(data);
            ev.count()
        };
        self.seq.send_replace(n);
    }

    /// The event with index `i` or, if that one was let go, the first
    /// still held; with its index.
    pub fn event_from(&self, i: u64) -> Option<(u64, StoredEvent)> {
        let ev = self.events.lock().unwrap();
        let i = i.max(ev.offset);
        ev.get((i - ev.offset) as usize)
            .map(|e| (i, StoredEvent::from_text(e.to_string())))
    }

    /// How many events the run has had.
    pub fn event_count(&self) -> u64 {
        self.events.lock().unwrap().count()
    }

    /// Frees an ended run's events but its last (`run_ended`); ids stay.
    /// A real run's events remain in its events file.
    pub fn let_go_of_events(&self) {
        if !self.ended() {
            return;
        }
        let mut ev = self.events.lock().unwrap();
        if ev.spans.len() > 1 {
            let last = ev.get(ev.spans.len() - 1).unwrap_or_default().to_string();
            let dropped = ev.spans.len() as u64 - 1;
            *ev = Events {
                offset: ev.offset + dropped,
                ..Events::default()
            };
            ev.push(&last);
        }
    }

    /// Ends the run: its final state, result or error, the record saved and
    /// the `run_ended` event pushed.
    pub fn end(&self, state: ApiState, result: Option<serde_json::Value>, error: Option<String>) {
        {
            // The event goes out under the view's lock: whoever sees the run
            // ended also finds its `run_ended` event.
            let mut v = self.view.lock().unwrap();
            v.state = state;
            if result.is_some() {
                v.result = result;
            }
            v.error = error;
            v.ended_at = Some(unix_now());
            self.push(serde_json::json!({ "event": "run_ended", "state": v.state, "result": v.result, "error": v.error }));
        }
        self.persist();
    }
}
