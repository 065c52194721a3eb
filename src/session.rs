//! A session: the one path every run takes once its playbook, inventory
//! and plan are known — `rekindle run`, `rehearse` and the daemon alike.
//! It opens (or resumes) the journal, wires the engine to the runtime, the
//! health gate's probe and the DNS budget's probe it is given, hands the
//! control handle to the caller's [`Observer`], feeds it every engine event
//! and a periodic tick, collects the timeline, and returns the outcome.
//! Callers differ only in what they plug in (runtime, probes, journal
//! place, observer); none of them builds
//! an engine or opens a journal itself. It decides nothing about restarts:
//! that is the engine's.

use crate::config::Playbook;
use crate::dns::budget::DnsProbe;
use crate::engine::{Engine, EngineError, Event, Handle, Outcome};
use crate::journal::{Journal, JournalError, Record, Replay};
use crate::model::Inventory;
use crate::plan::Plan;
use crate::probe::HealthProbe;
use crate::report::Collector;
use crate::runtime::ContainerRuntime;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// How to open a run's journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalMode {
    /// A new run: refuses an unfinished journal.
    New,
    /// Continue the journal's run: it must exist.
    Resume,
    /// Continue if a journal exists, else start one (a daemon picking up a
    /// run it had accepted: a journal is written before any restart, so
    /// without one nothing was restarted yet).
    ResumeOrNew,
    /// A rehearsal: a journal left by an earlier rehearsal of the same
    /// names is replaced (nothing real depends on it).
    Replace,
}

/// Where a session's journal lives and how it is opened.
#[derive(Debug, Clone)]
pub struct JournalSpec {
    /// The journal file.
    pub path: PathBuf,
    /// How it is opened.
    pub mode: JournalMode,
    /// Sync every record to disk (real runs); a rehearsal need not.
    pub durable: bool,
}

/// What a session runs: the plan, and what it is plugged into.
pub struct Session<R, P> {
    /// The containers it restarts through.
    pub runtime: Arc<R>,
    /// The health gate's probe (over the same containers).
    pub health: P,
    /// The playbook.
    pub playbook: Arc<Playbook>,
    /// The fleet as discovered.
    pub inventory: Arc<Inventory>,
    /// The plan to run.
    pub plan: Arc<Plan>,
    /// Where the journal lives and how it is opened.
    pub journal: JournalSpec,
    /// The adaptive DNS budget's probe; `None` paces at the static budget.
    pub dns_probe: Option<Arc<dyn DnsProbe>>,
    /// Pace nothing (`run --no-pacing`): the budget and the restart rate
    /// are lifted before the first restart.
    pub no_pacing: bool,
    /// Where each journal record must also go before it counts (the
    /// daemon's HA mode: etcd, fenced by its leadership).
    pub replica: Option<Box<dyn crate::journal::Replica>>,
}

/// Who watches a session: the CLI's progress and Ctrl-C, the daemon's run
/// record, a rehearsal's caller.
pub trait Observer: Send {
    /// The run's control handle, once, before the first restart.
    fn started(&mut self, handle: &Handle) {
        let _ = handle;
    }
    /// Every engine event, in order, with the seconds since the start on
    /// the run's clock (virtual in a rehearsal).
    fn event(&mut self, e: &Event, at_s: f64);
    /// About four times a second of the run's clock, for what is polled
    /// (the pacer's status).
    fn tick(&mut self, handle: &Handle) {
        let _ = handle;
    }
}

/// How a session ended.
pub struct Finished {
    /// How the run ended.
    pub outcome: Outcome,
    /// The timeline collected from the events, for the report.
    pub timeline: Collector,
    /// The session continued a journal's run.
    pub resumed: bool,
}

/// Why a session could not run to its end.
#[derive(Debug, Error)]
pub enum SessionError {
    /// The journal could not be opened, or it belongs to another run.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The engine could not start.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The run's task panicked or was cancelled.
    #[error("the run's task ended: {0}")]
    Task(String),
}

/// The journal fingerprint of a plan: the playbook's name and the ids of
/// the containers it restarts. A resume must bring the same one.
pub fn fingerprint(pb: &Playbook, inv: &Inventory, plan: &Plan) -> String {
    let mut ids: Vec<&str> = plan
        .waves
        .iter()
        .flat_map(|w| {
            w.containers
                .iter()
                .map(|&c| inv.containers[c as usize].id.as_str())
        })
        .collect();
    ids.sort_unstable();
    let mut h = crc32c::crc32c(pb.name.as_bytes());
    for id in ids {
        h = crc32c::crc32c_append(h, id.as_bytes());
    }
    format!("{h:08x}")
}

/// Opens the journal at `path` for this playbook, fleet and plan.
pub fn open_journal(
    spec: &JournalSpec,
    pb: &Playbook,
    inv: &Inventory,
    plan: &Plan,
) -> Result<(Journal, Replay), JournalError> {
    open_replicated(spec, pb, inv, plan, None)
}

/// [`open_journal`], each record of it (from the start of a new run, from
/// the next of a resumed one) also written to `replica` before it counts.
pub fn open_replicated(
    spec: &JournalSpec,
    pb: &Playbook,
    inv: &Inventory,
    plan: &Plan,
    replica: Option<Box<dyn crate::journal::Replica>>,
) -> Result<(Journal, Replay), JournalError> {
    let path = &spec.path;
    let fp = fingerprint(pb, inv, plan);
    let resume = match spec.mode {
        JournalMode::New => false,
        JournalMode::Resume => true,
        JournalMode::ResumeOrNew => path.exists(),
        JournalMode::Replace => {
            if path.exists() {
                std::fs::remove_file(path).map_err(|e| JournalError::Io {
                    path: path.clone(),
                    source: e,
                })?;
            }
            false
        }
    };
    if resume {
        let (mut j, r) = Journal::resume(path, &pb.name, &fp, spec.durable)?;
        if let Some(replica) = replica {
            j.set_replica(replica);
        }
        if let Some(t) = &r.torn {
            tracing::warn!(journal = %path.display(), "journal ended in a torn record (dropped): {t}");
        }
        tracing::info!(journal = %path.display(), healthy = r.healthy.len(), in_doubt = r.in_doubt.len(), "resuming");
        Ok((j, r))
    } else {
        // A plan cut to what a survey chose records its choice, so that a
        // resume cuts the same one (see `pipeline`).
        let only = (!plan.left_out.is_empty()).then(|| {
            plan.waves
                .iter()
                .flat_map(|w| &w.containers)
                .map(|&c| inv.containers[c as usize].id.clone())
                .collect()
        });
        let start = Record::Start {
            playbook: pb.name.clone(),
            fingerprint: fp,
            containers: plan.containers,
            only,
        };
        Ok((
            Journal::create_replicated(path, start, spec.durable, replica)?,
            Replay::default(),
        ))
    }
}

/// Prepares and executes one run to its end.
pub async fn run<R: ContainerRuntime, P: HealthProbe>(
    s: Session<R, P>,
    obs: &mut dyn Observer,
) -> Result<Finished, SessionError> {
    let (journal, replay) =
        open_replicated(&s.journal, &s.playbook, &s.inventory, &s.plan, s.replica)?;
    let resumed = replay.continues_a_run();
    let mut engine = Engine::new(
        s.runtime,
        s.health,
        s.playbook,
        s.inventory,
        s.plan,
        journal,
        replay,
    );
    if let Some(p) = s.dns_probe {
        engine = engine.with_dns_probe(p);
    }
    let handle = engine.handle();
    if s.no_pacing {
        // A new engine is open: the retune cannot be refused.
        let _ = handle.retune(Some(0.0), Some(0.0));
    }
    // The record's reader: every event, in order, none skipped.
    let mut events = engine.record_events();
    obs.started(&handle);
    let start = tokio::time::Instant::now();
    let task = tokio::spawn(engine.run());
    let mut timeline = Collector::default();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            e = events.recv() => match e {
                Some(e) => {
                    let at = start.elapsed().as_secs_f64();
                    timeline.on(&e, at);
                    obs.event(&e, at);
                    if matches!(e, Event::Finished { .. }) {
                        break;
                    }
                }
                None => break,
            },
            _ = tick.tick() => obs.tick(&handle),
        }
    }
    let outcome = task
        .await
        .map_err(|e| SessionError::Task(e.to_string()))??;
    Ok(Finished {
        outcome,
        timeline,
        resumed,
    })
}
