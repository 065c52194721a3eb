//! The daemon's HA mode (feature `etcd`; docs/ha.md): daemons started with
//! the same `--cluster` name on one etcd join it (refused when another
//! live member serves a different set of playbooks) and campaign; the
//! leader serves everything and runs; the others serve reads and answer
//! mutating calls with 503 and the leader's address. The leader writes the
//! real run it drives to etcd and replicates its journal there, each write
//! fenced by its leadership; a daemon that wins leadership restores that
//! run and its journal and resumes it as `--resume` does. A leader whose
//! write is refused, or whose lease etcd says is gone, starts no more
//! restarts and campaigns again.

use super::{ApiState, Daemon, Run, RunView};
use crate::coord::{CoordError, Coordinator, EtcdReplica, EtcdSettings, Leadership, Member};
use crate::journal::Journal;
use crate::session::JournalMode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why a new leader could not take over the cluster's run.
#[derive(Debug, thiserror::Error)]
pub enum TakeoverError {
    /// etcd did not give the run or its journal.
    #[error(transparent)]
    Coord(#[from] CoordError),
    /// The run's record in etcd does not parse.
    #[error("the cluster's run record: {0}")]
    Record(serde_json::Error),
    /// The run is of a playbook this daemon does not serve.
    #[error(
        "the cluster's run {run} is of playbook {playbook:?}, which this daemon does not serve"
    )]
    Playbook {
        /// The run.
        run: String,
        /// Its playbook.
        playbook: String,
    },
    /// The journal could not be restored.
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    /// A local file could not be written or removed.
    #[error("{path}: {source}", path = .0.display(), source = .1)]
    Local(std::path::PathBuf, std::io::Error),
}

/// This daemon's place in its cluster.
pub struct Ha {
    /// The cluster's etcd client.
    pub coord: Arc<Coordinator>,
    /// This daemon's address, as followers tell clients (set when it
    /// listens).
    me: std::sync::OnceLock<String>,
    digest: String,
    lead: Mutex<Option<Arc<Leadership>>>,
    member: Mutex<Option<Member>>,
}

impl Ha {
    /// Connects to etcd (an error names the endpoints); joining and
    /// campaigning wait for [`Ha::run`], once the daemon listens.
    pub fn connect(settings: EtcdSettings, digest: String) -> Result<Ha, CoordError> {
        Ok(Ha {
            coord: Arc::new(Coordinator::connect(settings)?),
            me: std::sync::OnceLock::new(),
            digest,
            lead: Mutex::new(None),
            member: Mutex::new(None),
        })
    }

    /// This daemon's address, as followers tell clients.
    pub fn me(&self) -> &str {
        self.me.get().map(String::as_str).unwrap_or("")
    }

    /// Joins the cluster as `me`: refused when a live member serves
    /// another set of playbooks.
    pub fn join(&self, me: &str) -> Result<(), CoordError> {
        let _ = self.me.set(me.to_string());
        let m = self.coord.join(self.me(), &self.digest)?;
        *self.member.lock().unwrap() = Some(m);
        Ok(())
    }

    /// This daemon's leadership, while it leads.
    pub fn leading(&self) -> Option<Arc<Leadership>> {
        self.lead
            .lock()
            .unwrap()
            .as_ref()
            .filter(|l| !l.lost())
            .cloned()
    }

    /// The leader's address, as etcd says.
    pub fn leader(&self) -> Option<String> {
        self.coord.leader().ok().flatten()
    }

    fn lead_or_refuse(&self) -> Result<Arc<Leadership>, CoordError> {
        self.leading().ok_or_else(|| CoordError::NotLeading {
            cluster: self.coord.settings().cluster.clone(),
        })
    }

    /// The fence of a run this leader drives: its lease confirmed.
    pub fn fence(&self) -> Result<Arc<dyn crate::runtime::Fence>, CoordError> {
        Ok(Arc::new(LeaseFence {
            lead: self.lead_or_refuse()?,
            ttl: self.coord.settings().ttl,
        }))
    }

    /// The journal's replica for a run this leader starts or resumes.
    pub fn replica(&self) -> Result<Box<dyn crate::journal::Replica>, CoordError> {
        let lead = self.lead_or_refuse()?;
        Ok(Box::new(EtcdReplica {
            coord: self.coord.clone(),
            lead,
        }))
    }

    /// Records the run this leader drives (fenced).
    pub fn put_run(&self, view: &RunView) -> Result<(), CoordError> {
        let lead = self.lead_or_refuse()?;
        let bytes = serde_json::to_vec(view).expect("run views serialize");
        self.coord.fenced_put(&lead, "run", bytes)
    }

    /// Steps down (a daemon shutting down): the next leader need not wait
    /// for the lease to expire.
    pub fn resign(&self) {
        if let Some(l) = self.lead.lock().unwrap().take() {
            self.coord.resign(&l);
        }
    }

    /// The run ended for good: its record and journal leave etcd (the
    /// local journal stays, for a resume on this daemon).
    pub fn clear_run(&self) {
        if let Some(lead) = self.leading() {
            if let Err(e) = self.coord.clear_run(&lead) {
                tracing::warn!(error = %e, "the ended run could not be cleared from etcd");
            }
        }
    }
}

/// The Docker runtime's fence in HA mode: this daemon's lease confirmed.
struct LeaseFence {
    lead: Arc<Leadership>,
    ttl: Duration,
}

impl crate::runtime::Fence for LeaseFence {
    fn holds(&self) -> bool {
        self.lead.confirmed(self.ttl)
    }
}

impl Daemon {
    /// The HA loop, on a thread of its own: join, campaign, take over the
    /// cluster's run, watch the leadership; step down and campaign again
    /// when it is lost. Returns when the daemon stops.
    pub(crate) fn lead_forever(self: Arc<Self>, rt: tokio::runtime::Handle) {
        let Some(ha) = self.ha.clone() else { return };
        loop {
            if self.stopping() {
                return;
            }
            let lead = match ha.coord.campaign(ha.me(), &self.stopping) {
                Ok(l) => Arc::new(l),
                Err(e) => {
                    if self.stopping() {
                        return;
                    }
                    tracing::warn!(error = %e, "campaign failed; trying again");
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            };
            *ha.lead.lock().unwrap() = Some(lead.clone());
            tracing::info!(cluster = %ha.coord.settings().cluster, me = %ha.me(), "this daemon leads");
            if let Err(e) = rt.block_on(self.take_over(&ha)) {
                tracing::error!(error = %e, "taking over the cluster's run failed");
            }
            // Watch: etcd says the lease is gone, or another daemon leads.
            loop {
                std::thread::sleep(Duration::from_millis(500));
                if self.stopping() {
                    return;
                }
                let deposed = lead.lost()
                    || matches!(ha.coord.leader_revision(), Ok(Some(r)) if r != lead.revision());
                if deposed {
                    tracing::warn!(cluster = %ha.coord.settings().cluster, "no longer the leader: no more restarts from this daemon; campaigning again");
                    *ha.lead.lock().unwrap() = None;
                    break;
                }
            }
        }
    }

    /// A new leader continues the cluster's run, if one is recorded: its
    /// journal restored from etcd, resumed as `--resume` does.
    async fn take_over(self: &Arc<Self>, ha: &Ha) -> Result<(), TakeoverError> {
        let Some(bytes) = ha.coord.get("run")? else {
            return Ok(());
        };
        let mut view: RunView = serde_json::from_slice(&bytes).map_err(TakeoverError::Record)?;
        let Some(pb) = self.playbooks.get(&view.playbook).cloned() else {
            return Err(TakeoverError::Playbook {
                run: view.id,
                playbook: view.playbook,
            });
        };
        let records = ha.coord.journal()?;
        let path = crate::recovery::journal_path(&super::runs::journal_dir(self), &pb.name);
        if !records.is_empty() {
            Journal::restore(&path, &records)?;
        } else if path.exists() {
            // Nothing of this run reached etcd: nothing was restarted.
            std::fs::remove_file(&path).map_err(|e| TakeoverError::Local(path.clone(), e))?;
        }
        view.state = ApiState::Pending;
        view.resumed += 1;
        view.note = Some(format!(
            "taken over by {} from the cluster's journal ({} records)",
            ha.me(),
            records.len()
        ));
        let number: u64 = view.id.trim_start_matches('r').parse().unwrap_or(0);
        self.next_id.fetch_max(number + 1, Ordering::SeqCst);
        let run = {
            let mut runs = self.runs.lock().unwrap();
            runs.retain(|r| r.id() != view.id);
            let run = Run::new(&self.runs_dir, view, true)
                .map_err(|e| TakeoverError::Local(self.runs_dir.clone(), e))?;
            runs.push(run.clone());
            run
        };
        run.push(serde_json::json!({ "event": "run_taken_over", "by": ha.me(), "records": records.len() }));
        tracing::info!(run = %run.id(), records = records.len(), "taking over the cluster's run");
        self.spawn_real(run, pb, JournalMode::ResumeOrNew);
        Ok(())
    }
}
