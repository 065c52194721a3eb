//! What a watcher of a run (the live page, any SSE client) draws beyond
//! the engine's own events: the plan's outline when the engine starts
//! (`plan`), and the run's figures about once a second of its clock
//! (`load`): healthy containers, the DNS queries rekindle granted per
//! second against the budget, and what the resolver's own counters say
//! when they are read.

use crate::engine::Handle;
use serde_json::{json, Value};

/// The `plan` event: every wave with its role, group and size, and how
/// the run's DNS is paced.
pub(super) fn plan_event(h: &Handle) -> Value {
    let mut v = serde_json::to_value(h.outline()).unwrap_or_default();
    v["event"] = json!("plan");
    v
}

/// Takes a `load` sample at most once a second of the run's clock.
#[derive(Default)]
pub struct Sampler {
    /// The run's clock at which the next sample is due.
    next_at: f64,
    /// The last sample's clock and DNS queries granted so far.
    last: Option<(f64, u64)>,
}

impl Sampler {
    /// A `load` event if one is due at `at_s` (or `last`: the run ended).
    pub(super) fn sample(&mut self, at_s: f64, last: bool, h: &Handle) -> Option<Value> {
        if at_s < self.next_at && !last {
            return None;
        }
        self.next_at = at_s.floor() + 1.0;
        let st = h.status();
        let pace = st.pace.unwrap_or_default();
        let granted = pace.dns_lookups_granted;
        let granted_qps = match self.last {
            Some((t, g)) if at_s > t => Some(granted.saturating_sub(g) as f64 / (at_s - t)),
            _ => None,
        };
        self.last = Some((at_s, granted));
        Some(json!({
            "event": "load",
            "at_s": at_s,
            "healthy": st.healthy,
            "failed": st.failed,
            "restarts": st.restarts,
            "waves_passed": st.waves_passed,
            "waves_running": st.waves_running.len(),
            "dns_granted_qps": granted_qps,
            "dns_budget_qps": pace.dns_budget_qps,
            "dns_ceiling_qps": pace.dns_ceiling_qps,
            "restart_rate": pace.restart_rate,
            "waiting": pace.waiting,
            "resolver_received_qps": st.resolver.map(|r| r.received_qps),
            "resolver_dropped_qps": st.resolver.and_then(|r| r.dropped_qps),
        }))
    }
}
