//! One container's restart as a state machine: each [`Step`] is a small
//! function that does one thing and says what comes next, and one retry
//! rule ([`Restart::failed`]) decides after every error whether to back off
//! and try again or give up. The engine's wave loop runs one
//! [`restart_container`] per container; everything it journals and emits
//! is here.
//!
//! ```text
//!  (in doubt) ──settle──► restarted? ──────────────────────────► Gating
//!      │ no                                                       ▲
//!      ▼                                                          │
//!  Admitting ──► Inspecting ──► SteppingDown ──► Restarting ──────┘
//!      ▲             │               │               │     (call failed:
//!      │             ▼               ▼               ▼      settled restarted → Gating)
//!      └──────── BackingOff ◄──── failed(reason) ◄───┴── Gating: unhealthy,
//!                    │ (retries spent, or the run closed)       or stuck → Admitting
//!                    ▼
//!                GivingUp ──► Failed          Gating: healthy ──► Healthy
//! ```

use super::pacer::{self, Flow};
use super::{ContainerResult, Event, Shared};
use crate::config::{GrantAt, HealthCheck, HealthKind, Role};
use crate::journal::Record;
use crate::model::{Container, ContainerState, Health};
use crate::probe::HealthProbe;
use crate::runtime::{ContainerRuntime, RuntimeError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Where one container's restart stands.
enum Step {
    /// A restart journaled without an outcome (before a crash): did it
    /// happen? (With the wave's admission, if it brought one.)
    InDoubt(String, Option<pacer::Admission>),
    /// Waiting for the pacer's admission (or holding the one the wave got).
    Admitting(Option<pacer::Admission>),
    /// Admitted: its start time is read before anything is asked of it.
    Inspecting(pacer::Admission),
    /// MongoDB's rolling order: a primary steps down before its restart.
    SteppingDown(pacer::Admission, String),
    /// Journaled, then stopped and started.
    Restarting(pacer::Admission, String),
    /// Restarted: its health gate is watched.
    Gating,
    /// An attempt failed: wait, then try again.
    BackingOff,
    /// Retries spent, or the run closed after an attempt: failed.
    GivingUp,
    /// The end.
    Done(ContainerResult),
}

/// One container's restart and what it has been through.
struct Restart<'a, R, P> {
    s: &'a Arc<Shared<R, P>>,
    c: &'a Container,
    w: usize,
    role: &'a Role,
    check: Arc<HealthCheck>,
    priority: (u32, u32),
    /// Restarts journaled for it (this run and those before a resume).
    attempt: u32,
    /// Failed attempts of this run (the retry rule's count).
    failures: u32,
    /// Restarts after it was found stuck.
    stuck: u32,
    /// Why the last attempt failed.
    last_reason: String,
    /// How long the inspect before a restart may take: the probe's
    /// timeout, doubled each time a slow host lets it pass, until the
    /// role's deadline from the start (a slow host is slow, not failed).
    inspect_limit: Duration,
    slow_until: tokio::time::Instant,
}

/// One container: restart, watch, retry. Journaled before and after.
pub(super) async fn restart_container<R: ContainerRuntime, P: HealthProbe>(
    s: &Arc<Shared<R, P>>,
    w: usize,
    ci: u32,
    admitted: Option<pacer::Admission>,
) -> ContainerResult {
    let c: &Container = &s.inv.containers[ci as usize];
    let role_index = s.plan.waves[w].role;
    if s.replay.healthy.contains(&c.id) {
        s.status.lock().unwrap().healthy += 1;
        s.gates.healthy(c);
        return ContainerResult::Healthy;
    }
    let role = &s.pb.roles[role_index];
    let mut r = Restart {
        s,
        c,
        w,
        role,
        check: s.gates.check(role_index, c),
        priority: (s.depth[role_index], w as u32),
        attempt: s.replay.attempts.get(&c.id).copied().unwrap_or(0),
        failures: 0,
        stuck: 0,
        last_reason: String::new(),
        inspect_limit: role.health.timeout,
        slow_until: tokio::time::Instant::now() + role.health.deadline,
    };
    let mut step = match s.replay.in_doubt.get(&c.id) {
        Some(before) => Step::InDoubt(before.clone(), admitted),
        None => Step::Admitting(admitted),
    };
    loop {
        step = match step {
            Step::InDoubt(before, a) => r.in_doubt(&before, a).await,
            Step::Admitting(a) => r.admitting(a).await,
            Step::Inspecting(a) => r.inspecting(a).await,
            Step::SteppingDown(a, before) => r.stepping_down(a, before).await,
            Step::Restarting(a, before) => r.restarting(a, before).await,
            Step::Gating => r.gating().await,
            Step::BackingOff => {
                backoff(s, r.failures).await;
                Step::Admitting(None)
            }
            Step::GivingUp => r.giving_up(),
            Step::Done(result) => return result,
        }
    }
}

impl<R: ContainerRuntime, P: HealthProbe> Restart<'_, R, P> {
    /// The one retry rule: an attempt failed for `reason`; back off and try
    /// again, or give up once the playbook's retries are spent.
    fn failed(&mut self, reason: String) -> Step {
        self.last_reason = reason;
        self.failures += 1;
        if self.failures > self.s.pb.policy.retries {
            Step::GivingUp
        } else {
            Step::BackingOff
        }
    }

    /// The run is closing: a container not touched yet is left as it was
    /// (cancelled); one that failed an attempt, or was found stuck, is
    /// reported failed.
    fn closing(&self) -> Step {
        if self.failures + self.stuck == 0 {
            Step::Done(ContainerResult::Cancelled)
        } else {
            Step::GivingUp
        }
    }

    /// A restart outlives the client that asked for it: it may have been
    /// issued and still be stopping the old process, or starting the new.
    async fn in_doubt(&mut self, before: &str, admitted: Option<pacer::Admission>) -> Step {
        let (s, c) = (self.s, self.c);
        if Box::pin(settle(s, c, before, true)).await == Settled::Restarted {
            tracing::info!(container = %c.name, "restarted before the crash: not restarting again");
            Step::Gating
        } else {
            tracing::info!(container = %c.name, "restart journaled but never done: restarting");
            Step::Admitting(admitted)
        }
    }

    /// The pacer's admission: the right to stop it now, its start's
    /// lookups to be granted when the host will serve the start.
    async fn admitting(&mut self, admitted: Option<pacer::Admission>) -> Step {
        let cost = self.s.pb.restart_queries(self.s.plan.waves[self.w].role);
        let admission = match admitted {
            Some(a) => Some(a),
            None => self.s.pacer.admit(self.priority, cost).await,
        };
        match admission {
            Some(a) => Step::Inspecting(a),
            None => self.closing(),
        }
    }

    /// Its start time before the restart (what settles a restart in
    /// doubt). Admitted just before a pause or an abort, but not stopped
    /// yet: a pause holds it (nothing new is stopped while paused; only
    /// restarts already under way finish), an abort cancels it. A pause
    /// that comes while inspecting means inspecting again.
    async fn inspecting(&mut self, admission: pacer::Admission) -> Step {
        let (s, c) = (self.s, self.c);
        let inspected = loop {
            if s.pacer.flow() == Flow::Paused {
                s.pacer.while_paused().await;
            }
            if s.pacer.flow() == Flow::Closed {
                break None;
            }
            let inspected =
                tokio::time::timeout(self.inspect_limit, Box::pin(s.rt.inspect(c))).await;
            if s.pacer.flow() == Flow::Open {
                break Some(inspected);
            }
        };
        let Some(inspected) = inspected else {
            return self.closing();
        };
        match inspected {
            Ok(Ok(st)) => Step::SteppingDown(admission, st.started_at),
            Err(_) if tokio::time::Instant::now() + self.inspect_limit * 2 <= self.slow_until => {
                // A slow host, not a failed container: the host answered no
                // inspect within the limit. Ask again with twice the
                // patience, within the container's deadline, without
                // counting a failure (issue 23: a host whose Engine API
                // answered in seconds failed whole waves). The admission
                // goes back: it is asked for again.
                tracing::info!(container = %c.name, host = %c.host, limit_s = self.inspect_limit.as_secs_f64(),
                    "inspect slower than its limit: asking again with a longer one");
                self.inspect_limit *= 2;
                drop(admission);
                Step::Admitting(None)
            }
            Ok(Err(e)) => self.failed(e.to_string()),
            Err(_) => self.failed(format!(
                "inspect timed out after {}s",
                self.inspect_limit.as_secs_f64()
            )),
        }
    }

    /// MongoDB's rolling order: a primary steps down before its restart (it
    /// goes last in its set; the plan saw to that). A primary that would
    /// not step down is never restarted.
    async fn stepping_down(&mut self, admission: pacer::Admission, before: String) -> Step {
        let HealthKind::Mongo {
            step_down: Some(catch_up),
            ..
        } = &self.check.kind
        else {
            return Step::Restarting(admission, before);
        };
        let (s, c) = (self.s, self.c);
        let bound = *catch_up + Duration::from_secs(30);
        let stepped = tokio::time::timeout(
            bound,
            Box::pin(s.health.step_down(c, &self.check, *catch_up)),
        )
        .await;
        match stepped {
            Ok(Ok(true)) => {
                tracing::info!(container = %c.name, "primary stepped down before its restart");
                Step::Restarting(admission, before)
            }
            Ok(Ok(false)) => Step::Restarting(admission, before),
            Ok(Err(e)) => self.failed(format!("step-down before the restart: {e}")),
            Err(_) => self.failed(format!(
                "step-down did not finish within {}s",
                bound.as_secs()
            )),
        }
    }

    /// The intent journaled (synced: a crash after it leaves the restart
    /// in doubt, never forgotten), then the stop and the start. A call that
    /// failed may still have been done by the host (an answer lost, a stop
    /// that outlived its timeout): one intent, one restart, so it is looked
    /// at before anything is asked again.
    async fn restarting(&mut self, admission: pacer::Admission, before: String) -> Step {
        let (s, c) = (self.s, self.c);
        if let Err(e) = s
            .record_synced(Record::Intent {
                id: c.id.clone(),
                wave: self.w,
                attempt: self.attempt,
                before: before.clone(),
            })
            .await
        {
            return Step::Done(ContainerResult::Failed(format!("journal: {e}")));
        }
        self.attempt = self.attempt.saturating_add(1);
        s.status.lock().unwrap().restarts += 1;
        s.emit(Event::Restarting {
            container: c.name.clone(),
            host: c.host.clone(),
            wave: self.w,
            attempt: self.attempt,
        });
        let Err(CallFailed {
            reason: e,
            answered,
        }) = Box::pin(stop_then_start(s, c, &before, admission)).await
        else {
            return Step::Gating;
        };
        // An answer that came back (an error status) needs one look, a
        // lost one a watch until the restart would be over.
        match Box::pin(settle(s, c, &before, !answered)).await {
            Settled::Restarted => {
                tracing::info!(container = %c.name, error = %e,
                    "the restart call failed but the container was restarted: not asking again");
                Step::Gating
            }
            Settled::Unknown(why) => self.failed(format!("{e} (then: {why})")),
            _ => self.failed(e),
        }
    }

    /// Its health gate, watched until it passes, fails, or the deadline
    /// passes. Up but failing its gate is stuck: restarted again (bounded)
    /// once its cluster's replica-set members are healthy, since a router
    /// started before them stays stuck.
    async fn gating(&mut self) -> Step {
        let (s, c, w) = (self.s, self.c, self.w);
        let (health, why) = Box::pin(watch_health(s, c, &self.check)).await;
        let next = match health {
            Health::Healthy => {
                s.gates.healthy(c);
                let _ = s.record_deferred(Record::Outcome {
                    id: c.id.clone(),
                    healthy: true,
                    reason: None,
                });
                s.status.lock().unwrap().healthy += 1;
                s.emit(Event::Healthy {
                    container: c.name.clone(),
                    wave: w,
                });
                return Step::Done(ContainerResult::Healthy);
            }
            Health::Unhealthy if self.stuck < s.pb.policy.stuck_rerestarts => {
                self.stuck += 1;
                self.last_reason = match &why {
                    Some(why) => format!("stuck: {why}"),
                    None => "up but unhealthy (stuck)".into(),
                };
                s.emit(Event::Stuck {
                    container: c.name.clone(),
                    wave: w,
                    reason: self.last_reason.clone(),
                });
                let left = s
                    .gates
                    .members_healthy(c, self.role.health.deadline, || {
                        s.pacer.flow() == Flow::Closed
                    })
                    .await;
                if left > 0 {
                    tracing::warn!(container = %c.name, members = left,
                        "re-restarting a stuck router before all its cluster's members passed");
                }
                Step::Admitting(None)
            }
            h => {
                let deadline = self.role.health.deadline.as_secs();
                let attempt = self.attempt;
                let reason = match (h, &why) {
                    (Health::Down, _) => "not running after restart".into(),
                    (Health::Unhealthy, Some(why)) => {
                        format!("unhealthy after restart {attempt}: {why}")
                    }
                    (Health::Unhealthy, None) => {
                        format!("unhealthy (its health check fails) after restart {attempt}")
                    }
                    (_, Some(why)) => format!("not healthy within {deadline}s: {why}"),
                    (_, None) => format!("not healthy within {deadline}s"),
                };
                self.failed(reason)
            }
        };
        if s.pacer.flow() == Flow::Closed {
            return Step::GivingUp;
        }
        next
    }

    /// Failed: journaled with its reason, counted, said.
    fn giving_up(&mut self) -> Step {
        let (s, c) = (self.s, self.c);
        let _ = s.record(Record::Outcome {
            id: c.id.clone(),
            healthy: false,
            reason: Some(self.last_reason.clone()),
        });
        s.status.lock().unwrap().failed += 1;
        s.emit(Event::ContainerFailed {
            container: c.name.clone(),
            wave: self.w,
            reason: self.last_reason.clone(),
        });
        Step::Done(ContainerResult::Failed(self.last_reason.clone()))
    }
}

/// Why a restart call did not succeed, and whether the host answered (an
/// error status) or the answer was lost (a timeout, a dropped connection):
/// only a lost answer leaves the restart in doubt for long.
struct CallFailed {
    reason: String,
    answered: bool,
}

impl CallFailed {
    fn of(e: RuntimeError) -> CallFailed {
        let answered = !matches!(
            e,
            RuntimeError::Timeout { .. } | RuntimeError::Unreachable { .. }
        );
        CallFailed {
            reason: e.to_string(),
            answered,
        }
    }

    fn timed_out(op: &str, limit: Duration) -> CallFailed {
        CallFailed {
            reason: format!("{op} timed out after {}s", limit.as_secs()),
            answered: false,
        }
    }
}

/// One restart: a stop (no DNS cost) under a host slot, then, with a host
/// slot in hand, the start's DNS budget and at once the start, so the
/// process's lookups reach the resolver when the pacer says. A container
/// that was stopped is started even when the run is closing.
async fn stop_then_start<R: ContainerRuntime, P: HealthProbe>(
    s: &Arc<Shared<R, P>>,
    c: &Container,
    before: &str,
    admission: pacer::Admission,
) -> Result<(), CallFailed> {
    let slots = s
        .host_slots
        .get(&c.host)
        .cloned()
        .unwrap_or_else(|| Arc::new(Semaphore::new(1)));
    let limit = s.pb.limits.stop_timeout + Duration::from_secs(60);
    let mut admission = Some(admission);
    if s.pb.dns.grant_at == GrantAt::Restart {
        // The whole restart's grant up front (for comparison only): the
        // lookups begin after the stop and a second wait for the slot.
        s.pacer.start(admission.take().expect("granted once")).await;
    }
    {
        let _slot = slots.acquire().await.expect("never closed");
        // The last moment before the host is asked: does this run still
        // lead (HA mode)? Nothing stopped otherwise.
        if let Err(e) = s.may_act() {
            return Err(CallFailed {
                reason: format!("journal: {e}"),
                answered: true,
            });
        }
        let t0 = tokio::time::Instant::now();
        match tokio::time::timeout(limit, Box::pin(s.rt.stop(c))).await {
            Ok(Ok(())) => s.pacer.observe_stop(t0.elapsed()),
            Ok(Err(e)) => return Err(CallFailed::of(e)),
            Err(_) => return Err(CallFailed::timed_out("stop", limit)),
        }
    }
    // A start is granted its lookups once the host will serve it at once:
    // its process begins at the end of the call, so a start that queued
    // behind others would bring its lookups seconds after their grant.
    let starting = s
        .start_slots
        .get(&c.host)
        .cloned()
        .unwrap_or_else(|| Arc::new(Semaphore::new(1)));
    let _starting = starting.acquire().await.expect("never closed");
    let _slot = slots.acquire().await.expect("never closed");
    if let Some(a) = admission {
        s.pacer.start(a).await;
    }
    let t0 = tokio::time::Instant::now();
    match tokio::time::timeout(limit, Box::pin(s.rt.start(c, before))).await {
        Ok(r) => {
            if r.is_ok() {
                s.pacer.observe_start(t0.elapsed());
            }
            r.map_err(CallFailed::of)
        }
        Err(_) => Err(CallFailed::timed_out("start", limit)),
    }
}

/// How long past the stop timeout (or the slowest stop seen, if longer) a
/// restart in doubt is watched for.
const IN_DOUBT_GRACE: Duration = Duration::from_secs(5);

/// How long a start call in flight may still take to land, at least
/// (the slowest start seen, if longer): the real engine served lone
/// starts in 0.2–0.55 s and 16 at once in up to 2.2 s (docs/docker-world.md).
const START_GRACE: Duration = Duration::from_secs(3);

/// What a restart whose call failed, timed out, or outlived its client left.
#[derive(Debug, Clone, PartialEq)]
enum Settled {
    /// A new process started (its start time moved): the restart happened.
    Restarted,
    /// The old process is gone and no new one started: start it.
    Stopped,
    /// The old process still runs at the bound: the stop never took.
    NotRestarted,
    /// The container could not be inspected until the bound: why.
    Unknown(String),
}

/// Settles a restart in doubt by inspecting `c` until its start time moves
/// away from `before` (restarted) or the bound passes: what a call in
/// flight may still do has been done by then. The bound is the stop
/// timeout plus the slowest stop this run has seen (at least
/// [`IN_DOUBT_GRACE`]) plus the slowest start (at least [`START_GRACE`]):
/// a stop shows only when its process exits, and a call outlives the
/// client that sent it (a crashed run's, or one whose answer was lost), so
/// a stop may still land and a start may still follow it. Until the bound
/// nothing is concluded but "restarted": an exited container may yet be
/// started by a start in flight, a running one stopped by a stop in
/// flight. Without `patient`, one look decides (the host answered the
/// call: nothing of it is in flight).
async fn settle<R: ContainerRuntime, P: HealthProbe>(
    s: &Shared<R, P>,
    c: &Container,
    before: &str,
    patient: bool,
) -> Settled {
    let slowest = s.pacer.stop_high().max(IN_DOUBT_GRACE) + s.pacer.start_high().max(START_GRACE);
    let give_up = tokio::time::Instant::now() + s.pb.limits.stop_timeout + slowest;
    let call = Duration::from_secs(10).min(s.pb.limits.stop_timeout + slowest);
    loop {
        let seen = match tokio::time::timeout(call, s.rt.inspect(c)).await {
            Ok(Ok(now)) => {
                if now.started_at != before
                    && !now.started_at.is_empty()
                    && now.state != ContainerState::Restarting
                {
                    return Settled::Restarted;
                }
                if now.started_at == before
                    && matches!(now.state, ContainerState::Exited | ContainerState::Created)
                {
                    Settled::Stopped
                } else {
                    Settled::NotRestarted
                }
            }
            Ok(Err(e)) => Settled::Unknown(format!("inspect: {e}")),
            Err(_) => Settled::Unknown(format!("inspect took over {}s", call.as_secs())),
        };
        if !patient || tokio::time::Instant::now() >= give_up {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Exponential backoff with full jitter, capped.
async fn backoff<R, P>(s: &Shared<R, P>, failures: u32) {
    let p = &s.pb.policy;
    let exp =
        p.backoff_initial.as_secs_f64() * 2f64.powi(failures.saturating_sub(1).min(20) as i32);
    let cap = exp.min(p.backoff_max.as_secs_f64());
    let j = s.jitter.lock().unwrap().uniform(cap / 2.0, cap);
    tokio::time::sleep(Duration::from_secs_f64(j)).await;
}

/// The longest a health gate waits for the runtime to hear of a change
/// before probing again (a runtime that hears nothing probes every
/// interval).
const HEARD_WAIT: Duration = Duration::from_secs(5);

/// Polls a container's health until it is decided or the deadline passes.
async fn watch_health<R: ContainerRuntime, P: HealthProbe>(
    s: &Shared<R, P>,
    c: &Container,
    check: &crate::config::HealthCheck,
) -> (Health, Option<String>) {
    let deadline = tokio::time::Instant::now() + check.deadline;
    // A probe slower than its timeout (a slow host's inspect) is given
    // twice the time next, within the deadline: slow is not unhealthy.
    let mut limit = check.timeout;
    loop {
        let (h, why) = match tokio::time::timeout(limit, s.health.check(c, check)).await {
            Ok(Ok(p)) => (p.health, p.note),
            Ok(Err(e)) => (Health::Starting, Some(e.to_string())),
            Err(_) => {
                let took = limit;
                limit = (limit * 2).min(
                    deadline
                        .saturating_duration_since(tokio::time::Instant::now())
                        .max(check.timeout),
                );
                (
                    Health::Starting,
                    Some(format!(
                        "the probe took longer than {}s",
                        took.as_secs_f64()
                    )),
                )
            }
        };
        match h {
            Health::Healthy | Health::Down => return (h, None),
            // Why it fails its gate, when the probe knows more.
            Health::Unhealthy => return (h, why),
            Health::Starting => {}
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return (Health::Starting, why);
        }
        let longest = (deadline - now).min(HEARD_WAIT).max(check.interval);
        s.rt.changed(c, check.interval, longest).await;
    }
}
