//! Pre-flight: before the first restart, check what the run will depend
//! on, so that a run that cannot succeed stops with nothing restarted and
//! says what failed:
//!
//! - every Docker host answered discovery (an unreachable host is what the
//!   playbook's `discovery.on_unreachable` says: refused already, or
//!   warned about here);
//! - for each role gated on MongoDB, one of its containers answers, the
//!   credentials (`[mongo]`) authenticate, and the gate's own command is
//!   allowed (`connPoolStats`, `replSetGetStatus`).
//!
//! The resolver's probe name is checked by [`super::dns_probe`], also
//! before anything restarts.
//!
//! During a recovery a container may answer nothing (that is why it is
//! being restarted; a mongos cut from its config servers cannot even look
//! a user up). So a role's check tries up to three containers: a refusal of
//! the credentials or of the command is final and fails the pre-flight; a
//! container that does not answer is a warning, not a verdict.

use crate::config::{HealthKind, Playbook};
use crate::model::{ContainerState, Inventory};
use crate::plan::Plan;
use crate::probe::PreflightProbe;
use serde::Serialize;

/// One check and what it found.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked: `Docker hosts`, or a role's MongoDB gate.
    pub what: String,
    /// What it found.
    pub verdict: Verdict,
    /// The details: what answered, what refused, what to fix.
    pub detail: String,
}

/// What a check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Passed.
    Ok,
    /// Worth saying, not a reason to stop.
    Warn,
    /// The run must not start.
    Fail,
}

/// Every check, in order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Preflight {
    /// The checks, in the order they ran.
    pub checks: Vec<Check>,
}

impl Verdict {
    /// Its name, as the JSON says it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
        }
    }
}

impl Preflight {
    /// The failures, one line each; `None` when the run may go on.
    pub fn failure(&self) -> Option<String> {
        let failed: Vec<String> = self
            .checks
            .iter()
            .filter(|c| c.verdict == Verdict::Fail)
            .map(|c| format!("{}: {}", c.what, c.detail))
            .collect();
        (!failed.is_empty()).then(|| {
            format!(
                "pre-flight failed, nothing was restarted: {}",
                failed.join("; ")
            )
        })
    }

    /// A few lines for a terminal.
    pub fn render(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        writeln!(out, "Pre-flight:")?;
        for c in &self.checks {
            let mark = match c.verdict {
                Verdict::Ok => "ok  ",
                Verdict::Warn => "WARN",
                Verdict::Fail => "FAIL",
            };
            writeln!(out, "  {mark} {:<28} {}", c.what, c.detail)?;
        }
        Ok(())
    }
}

/// How many containers of a role are tried before giving up on checking it.
const TRIES_PER_ROLE: usize = 3;

/// Runs the checks against the hosts the run will use.
pub async fn preflight<P: PreflightProbe>(
    pb: &Playbook,
    inv: &Inventory,
    plan: &Plan,
    probe: &P,
) -> Preflight {
    let mut checks = Vec::new();
    let unreachable: Vec<String> = inv
        .unreachable_hosts()
        .map(|h| format!("{} ({})", h.name, h.error.as_deref().unwrap_or("no answer")))
        .collect();
    checks.push(if unreachable.is_empty() {
        Check {
            what: "Docker hosts".into(),
            verdict: Verdict::Ok,
            detail: format!("{} answered", inv.hosts.len()),
        }
    } else {
        Check {
            what: "Docker hosts".into(),
            verdict: Verdict::Warn,
            detail: format!(
                "{} of {} did not answer (discovery.on_unreachable = warn: their containers are left out): {}",
                unreachable.len(),
                inv.hosts.len(),
                unreachable.join(", ")
            ),
        }
    });
    for (ri, role) in pb.roles.iter().enumerate() {
        if !matches!(
            role.health.kind,
            HealthKind::Mongo { .. } | HealthKind::Mongos { .. }
        ) {
            continue;
        }
        let what = format!("role {} (MongoDB gate)", role.name);
        let candidates: Vec<&crate::model::Container> = plan
            .waves
            .iter()
            .filter(|w| w.role == ri)
            .flat_map(|w| w.containers.iter())
            .map(|&ci| &inv.containers[ci as usize])
            .filter(|c| c.state == ContainerState::Running)
            .take(TRIES_PER_ROLE)
            .collect();
        if candidates.is_empty() {
            checks.push(Check {
                what,
                verdict: Verdict::Warn,
                detail: "no running container to check".into(),
            });
            continue;
        }
        let mut unanswered = Vec::new();
        let mut verdict = None;
        for c in candidates {
            match probe.preflight(c, &role.health).await {
                Ok(detail) => {
                    verdict = Some((Verdict::Ok, detail));
                    break;
                }
                Err(e) if e.refused => {
                    verdict = Some((Verdict::Fail, e.to_string()));
                    break;
                }
                Err(e) => unanswered.push(e.to_string()),
            }
        }
        let (verdict, detail) = verdict.unwrap_or_else(|| {
            (
                Verdict::Warn,
                format!(
                    "could not be checked, no container answered: {}",
                    unanswered.join("; ")
                ),
            )
        });
        checks.push(Check {
            what,
            verdict,
            detail,
        });
    }
    Preflight { checks }
}
