//! What a run tells its sinks: one [`Event`] per thing that happened (the
//! journal, the progress line, the API's stream), and each as a log line.

use super::RunState;
use serde::Serialize;

/// One thing that happened, for every sink (journal, progress, API).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A wave's restarts began.
    WaveStarted {
        /// The wave's index in the plan.
        wave: usize,
        /// Its role's name.
        role: String,
        /// Its group (cluster label value).
        group: String,
        /// Containers in the wave.
        containers: usize,
        /// Seconds since the run started.
        at_s: f64,
    },
    /// Every container of a wave settled, within the failure policy.
    WavePassed {
        /// The wave's index in the plan.
        wave: usize,
        /// Containers that passed.
        healthy: usize,
        /// Containers that failed (no more than the policy allows).
        failed: usize,
        /// Seconds since the run started.
        at_s: f64,
    },
    /// A wave failed more containers than the policy allows: the run halts.
    WaveHalted {
        /// The wave's index in the plan.
        wave: usize,
        /// Names of the containers that failed.
        failed: Vec<String>,
        /// Seconds since the run started.
        at_s: f64,
    },
    /// A restart is about to be issued.
    Restarting {
        /// The container's name.
        container: String,
        /// Its host's name.
        host: String,
        /// Its wave's index.
        wave: usize,
        /// Attempts before this one (0 for the first).
        attempt: u32,
    },
    /// A container passed its gate.
    Healthy {
        /// The container's name.
        container: String,
        /// Its wave's index.
        wave: usize,
    },
    /// A container failed for good: retries spent, or refused.
    ContainerFailed {
        /// The container's name.
        container: String,
        /// Its wave's index.
        wave: usize,
        /// Why, as its last probe or call said.
        reason: String,
    },
    /// Up but failing its gate (a router that cannot reach a shard): it
    /// will be restarted again once its cluster's members are healthy.
    Stuck {
        /// The container's name.
        container: String,
        /// Its wave's index.
        wave: usize,
        /// What its gate said.
        reason: String,
    },
    /// An operator paused the run.
    Paused,
    /// An operator resumed the run.
    Resumed,
    /// An operator changed the ceilings.
    Retuned {
        /// The DNS budget now, in q/s.
        dns_budget_qps: f64,
        /// The restart rate now, in restarts per second (0 = unlimited).
        restart_rate: f64,
    },
    /// The adaptive budget moved (see [`crate::dns::budget`]).
    BudgetAdapted {
        /// The new budget, in q/s.
        dns_budget_qps: f64,
        /// The latency of the probe that moved it, in ms (`None`: it failed).
        probe_latency_ms: Option<f64>,
        /// Seconds since the run started.
        at_s: f64,
    },
    /// The run ended.
    Finished {
        /// How it ended.
        state: RunState,
        /// Seconds since the run started.
        at_s: f64,
    },
}

/// Every event as a structured log line: waves and controls at info
/// (debug would hide them; a rehearsal's thousands of waves log at debug),
/// containers at debug, failures at warn.
pub(super) fn log(e: &Event) {
    match e {
        Event::WaveStarted {
            wave,
            role,
            group,
            containers,
            ..
        } => tracing::debug!(wave, role, group, containers, "wave started"),
        Event::WavePassed {
            wave,
            healthy,
            failed,
            ..
        } => tracing::debug!(wave, healthy, failed, "wave passed"),
        Event::WaveHalted { wave, failed, .. } => {
            tracing::error!(wave, failed = failed.join("; "), "wave halted")
        }
        Event::Restarting {
            container,
            host,
            wave,
            attempt,
        } => tracing::debug!(container, host, wave, attempt, "restarting"),
        Event::Healthy { container, wave } => tracing::debug!(container, wave, "healthy"),
        Event::ContainerFailed {
            container,
            wave,
            reason,
        } => tracing::warn!(container, wave, reason, "container failed"),
        Event::Stuck {
            container,
            wave,
            reason,
        } => tracing::warn!(container, wave, reason, "stuck: restarting again"),
        Event::Paused => tracing::info!("paused"),
        Event::Resumed => tracing::info!("resumed"),
        Event::Retuned {
            dns_budget_qps,
            restart_rate,
        } => tracing::info!(dns_budget_qps, restart_rate, "retuned"),
        Event::BudgetAdapted {
            dns_budget_qps,
            probe_latency_ms,
            ..
        } => tracing::debug!(dns_budget_qps, probe_latency_ms, "DNS budget adapted"),
        Event::Finished { state, at_s } => tracing::info!(state = ?state, at_s, "finished"),
    }
}
