//! `--chaos`: mid-run faults while rekindle runs. Once a quarter of the
//! fleet has started, one host refuses connections and another hangs for
//! `--chaos-host-s` seconds; once half has, unbound is stopped (by PID) for
//! `--dns-outage-s` seconds and started again.

use crate::procs::{self, Proc};
use crate::say;
use crate::services::{FakeFleet, Unbound};
use anyhow::{Context, Result};
use std::time::Duration;

/// What chaos did (fleet clock, seconds).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ChaosRecord {
    /// The host that refused connections.
    pub refused: String,
    /// The host that hung.
    pub hung: String,
    /// When the host faults began and ended.
    pub hosts_from: Option<f64>,
    pub hosts_to: Option<f64>,
    /// When unbound was stopped and started again.
    pub dns_from: Option<f64>,
    pub dns_to: Option<f64>,
}

/// The hosts at a third and two thirds of the fleet's host list.
pub fn chosen_hosts(hosts_toml: &str) -> Result<(String, String)> {
    let t: toml::Table = toml::from_str(hosts_toml).context("the fake fleet's hosts file")?;
    let names: Vec<&str> = t
        .get("hosts")
        .and_then(|h| h.as_array())
        .into_iter()
        .flatten()
        .filter_map(|h| h.get("name")?.as_str())
        .collect();
    anyhow::ensure!(!names.is_empty(), "the fake fleet has no hosts");
    let n = names.len();
    Ok((names[n / 3].into(), names[2 * n / 3].into()))
}

/// Injects the faults while `run` lives; returns what was done.
pub fn inject(
    fleet: &FakeFleet,
    unbound: &mut Unbound,
    run: &Proc,
    hosts_toml: &str,
    host_s: u64,
    outage_s: u64,
) -> Result<ChaosRecord> {
    let n = fleet.stat("containers")?;
    let (a, b) = chosen_hosts(hosts_toml)?;
    let mut rec = ChaosRecord {
        refused: a.clone(),
        hung: b.clone(),
        ..ChaosRecord::default()
    };
    if fleet.wait_starts((n as u64 / 4) as f64, || run.running())? {
        let t0 = fleet.stat("now_s")?;
        say!(
            "== chaos: host {a} refuses, host {b} hangs for {host_s}s (fleet clock {}s)",
            t0 as u64
        );
        fleet.set_mode(&a, "refuse")?;
        fleet.set_mode(&b, "hang")?;
        procs::sleep(Duration::from_secs(host_s))?;
        fleet.set_mode(&a, "ok")?;
        fleet.set_mode(&b, "ok")?;
        rec.hosts_from = Some(t0);
        rec.hosts_to = Some(fleet.stat("now_s")?);
    }
    if fleet.wait_starts((n as u64 / 2) as f64, || run.running())? {
        let d0 = fleet.stat("now_s")?;
        say!(
            "== chaos: unbound (pid {}) stopped for {outage_s}s (fleet clock {}s)",
            unbound.proc.pid(),
            d0 as u64
        );
        unbound.stop();
        procs::sleep(Duration::from_secs(outage_s))?;
        unbound.restart()?;
        let d1 = fleet.stat("now_s")?;
        say!(
            "== chaos: unbound started again (pid {}, fleet clock {}s)",
            unbound.proc.pid(),
            d1 as u64
        );
        rec.dns_from = Some(d0);
        rec.dns_to = Some(d1);
    }
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chaos_picks_the_hosts_at_a_third_and_two_thirds() {
        let hosts: String = (0..10)
            .map(|i| format!("[[hosts]]\nname = \"h{i}\"\nurl = \"tcp://x\"\n\n"))
            .collect();
        assert_eq!(chosen_hosts(&hosts).unwrap(), ("h3".into(), "h6".into()));
        assert!(chosen_hosts("").is_err());
    }
}
