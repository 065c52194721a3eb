//! A real run's timeline (`rekindle run --report`, and the daemon's real
//! runs): the same files as a rehearsal's, from the engine's events. Its
//! DNS series is what rekindle granted its starts, counted in the second
//! each start was sent; with the resolver's counters configured, what the
//! resolver itself received (and dropped) is shown beside it.

use super::{write_chart, Chart, Collector, WaveSpan};
use crate::config::Playbook;
use crate::engine::{Outcome, RunState};
use crate::model::Inventory;
use std::path::Path;

/// A real run's report: `timeline.json` holds it whole.
#[derive(Debug, serde::Serialize)]
pub struct RunReport {
    /// The playbook's name.
    pub playbook: String,
    /// How the run ended.
    pub state: RunState,
    /// Why it halted, if it did.
    pub reason: Option<String>,
    /// Whether this process continued a journaled run (its figures cover this part).
    pub resumed: bool,
    /// Containers in the plan.
    pub total: usize,
    /// Containers that passed their gate.
    pub healthy: usize,
    /// Names of the containers that failed.
    pub failed: Vec<String>,
    /// Restart calls issued, retries included.
    pub restarts: u64,
    /// Seconds the run took.
    pub elapsed_s: f64,
    /// Names of the Docker hosts that did not answer discovery.
    pub unreachable_hosts: Vec<String>,
    /// Whether restarts were paced by the DNS budget (`--no-pacing` turns it off).
    pub pacing: bool,
    /// The resolver's capacity the playbook claims, in q/s.
    pub dns_capacity_qps: f64,
    /// The playbook's static DNS budget, in q/s.
    pub dns_budget_qps: f64,
    /// The adaptive budget over time: (seconds, q/s).
    pub dns_budget: Vec<(f64, f64)>,
    /// The sum of `dns_per_second`.
    pub dns_queries_budgeted: u64,
    /// DNS queries granted to the starts sent in each second.
    pub dns_per_second: Vec<u64>,
    /// The resolver's own counters per adaptation sample, when read.
    pub resolver_load: Vec<crate::engine::ResolverLoad>,
    /// Containers healthy by the end of each second.
    pub healthy_per_second: Vec<u64>,
    /// Each wave's span.
    pub wave_spans: Vec<WaveSpan>,
}

impl RunReport {
    /// The report of a run from its outcome and timeline; `total` is the plan's containers.
    pub fn new(
        pb: &Playbook,
        inv: &Inventory,
        o: &Outcome,
        t: &Collector,
        total: usize,
        resumed: bool,
        pacing: bool,
    ) -> RunReport {
        let seconds = o.elapsed_s.ceil() as usize;
        let mut dns_per_second = o.dns_granted_per_second.clone();
        if dns_per_second.len() < seconds {
            dns_per_second.resize(seconds, 0);
        }
        RunReport {
            playbook: pb.name.clone(),
            state: o.state,
            reason: o.reason.clone(),
            resumed,
            total,
            healthy: o.healthy,
            failed: o.failed.clone(),
            restarts: o.restarts,
            elapsed_s: o.elapsed_s,
            unreachable_hosts: inv.unreachable_hosts().map(|h| h.name.clone()).collect(),
            pacing,
            dns_capacity_qps: pb.dns.capacity_qps,
            dns_budget_qps: pb.dns.budget_qps(),
            dns_budget: o.dns_budget.clone(),
            dns_queries_budgeted: dns_per_second.iter().sum(),
            healthy_per_second: t.healthy_per_second(dns_per_second.len().max(seconds)),
            dns_per_second,
            resolver_load: o.resolver_load.clone(),
            wave_spans: t.spans.clone(),
        }
    }

    /// What the page and the Markdown draw.
    pub fn chart(&self) -> Chart<'_> {
        let peak = self.dns_per_second.iter().copied().max().unwrap_or(0);
        Chart {
            title: format!(
                "Run: {}{}",
                self.playbook,
                if self.resumed { " (resumed)" } else { "" }
            ),
            total: self.total,
            dns_per_second: &self.dns_per_second,
            dns_series: "DNS queries budgeted to the restarts sent",
            resolver: &self.resolver_load,
            dns_capacity_qps: self.dns_capacity_qps,
            dns_budget_qps: if self.pacing {
                self.dns_budget_qps
            } else {
                0.0
            },
            dns_budget: &self.dns_budget,
            dns_totals: format!(
                "{} queries budgeted, peak {peak} q/s{}",
                self.dns_queries_budgeted,
                if self.pacing { "" } else { " (pacing off)" }
            ),
            healthy_per_second: &self.healthy_per_second,
            wave_spans: &self.wave_spans,
        }
    }

    /// Writes the three timeline files into `dir`; `summary` heads them.
    pub fn write(&self, dir: &Path, summary: &str) -> std::io::Result<()> {
        write_chart(dir, self, &self.chart(), summary)
    }

    /// A short summary table, for reports written without one of their own.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "Run of playbook {:?}: {:?}{}\n",
            self.playbook,
            self.state,
            if self.resumed { " (resumed)" } else { "" }
        );
        if let Some(r) = &self.reason {
            s += &format!("  {r}\n");
        }
        s += &format!(
            "  healthy     {} of {}\n  failed      {}\n  restarts    {}\n  elapsed     {:.1}s\n",
            self.healthy,
            self.total,
            self.failed.len(),
            self.restarts,
            self.elapsed_s
        );
        for h in &self.unreachable_hosts {
            s += &format!("  NOT RESTARTED: host {h} unreachable\n");
        }
        s
    }
}
